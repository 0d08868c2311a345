"""MATH-500 (or GSM8K, ``--dataset gsm8k``) accuracy-versus-compute study on SGLang, one engine
for every job.

Runs ``--jobs`` (method:n, in priority order) with ``srca.eval.arun_eval``, one JSONL per job
under ``--out-dir`` (resumable: a call that runs out of time is continued by the next), stops
starting new jobs after ``--budget-s`` seconds of jobs (the engine's start not counted: two
servers took 155 s to start on an H100 and a budget that counted them ran nothing), and prints a
report of everything done so far. With the in-process SGLang engine, SGLang's log goes to
``--out-dir``/sglang.log and each job's line carries what its decode iterations cost
(:func:`decode_cost`): the walls of two jobs of one engine are then explained by their batches.

    python benchmarks/gpu_eval.py --model /tmp/q15hf --data .gpu-data/math500.jsonl \
        --out-dir /tmp/evals --jobs cot:1,majority:4,srca:4 --budget-s 500
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import concurrency  # noqa: E402


def parse_jobs(text: str) -> list[tuple[str, int, int | None]]:
    """``method:n[:limit],...`` as ``(method, n, limit)`` in order; ``ValueError`` naming the bad job
    (an unknown method or variant, a budget that is not a positive integer, or one its config refuses)."""
    from srca.eval import config_for

    jobs = []
    for spec in (s.strip() for s in text.split(",")):
        parts = spec.split(":")
        if not spec or len(parts) not in (2, 3):
            raise ValueError(f"--jobs: {spec!r} is not method:n[:limit]")
        try:
            n, limit = int(parts[1]), (int(parts[2]) if len(parts) == 3 else None)
        except ValueError:
            raise ValueError(f"--jobs: {spec!r}: n and limit must be integers") from None
        if n < 1 or (limit is not None and limit < 1):
            raise ValueError(f"--jobs: {spec!r}: n and limit must be >= 1")
        try:
            config_for(parts[0], n)
        except (TypeError, ValueError) as e:
            raise ValueError(f"--jobs: {spec!r}: {e}") from None
        jobs.append((parts[0], n, limit))
    return jobs


def decode_cost(log: dict) -> dict:
    """A job's decode iterations from SGLang's log over its time (``real_workload.SGLangLog.take``):
    the running requests at each decode log line (mean), the milliseconds per iteration (each
    line's running requests over its generated tok/s, averaged over the lines: every line covers
    the same number of iterations), the prefill batches and the retractions."""
    rows = [r for r in log.get("decode_series") or [] if r[1] and r[4]]
    return {"decode_logs": log.get("decode_logs", 0),
            "running_mean": (log.get("running_req") or {}).get("mean"),
            "ms_per_iteration": round(1000 * sum(r[1] / r[4] for r in rows) / len(rows), 1) if rows else None,
            "prefill_batches": log.get("prefill_batches"), "retractions": log.get("retractions")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/q15hf")
    ap.add_argument("--data", required=True)
    ap.add_argument("--dataset", default="math500", choices=["math500", "gsm8k"],
                    help="how --data reads (srca.eval.data) and the result files' prefix: a second data set "
                         "beside MATH-500 (GSM8K: one the default's rules were not tuned on)")
    ap.add_argument("--out-dir", default="/tmp/evals")
    ap.add_argument("--jobs", required=True, help="method:n[:limit],... in priority order")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=500.0,
                    help="start no new job after this many seconds of jobs (counted from the engine being ready)")
    ap.add_argument("--concurrency", type=concurrency, default=None,
                    help="solves in flight: an integer, or auto (the default; srca.admission: by the sequences "
                         "each solve decodes at once, against the engine's batch)")
    ap.add_argument("--prompt", default="qwen")
    ap.add_argument("--mem", type=float, default=0.85)
    ap.add_argument("--dp", type=int, default=1, help="SGLang data-parallel replicas (one per GPU)")
    ap.add_argument("--engine", default="sglang", choices=["sglang", "sglang-servers", "local"],
                    help="sglang: in process; sglang-servers: --replicas sglang.launch_server on this GPU (their "
                         "logs in --out-dir/servers), through HTTP; local: a CPU dry run")
    ap.add_argument("--replicas", type=int, default=None, help="servers for --engine sglang-servers (default 2: two "
                    "scheduler processes for one GPU, --mem split between them)")
    ap.add_argument("--seed-dir", default=None, help="result lines of an earlier session (*.jsonl) copied into "
                    "--out-dir first, where no file of that name is there yet: the jobs resume from them")
    ap.add_argument("--loop-stops", action="store_true", help="--engine sglang: stop looping samples inside SGLang "
                    "(SGLangEngine(loop_stops=True), a custom logit processor) instead of splitting their requests")
    ap.add_argument("--seeds", default="0", help="run every job once per seed (comma-separated): independent draws "
                    "of a method on the same engine, for pooled comparisons (benchmarks/pooled_runs.py), every job of "
                    "a seed before the next seed; seed 0's file is <dataset>_<method>_n<n>.jsonl, seed s's ends "
                    "_seed<s>; the report reads the first seed's")
    ap.add_argument("--check", action="store_true", help="validate the jobs and read the data; no engine")
    a = ap.parse_args()
    try:
        seeds = [int(x) for x in a.seeds.split(",")]
        if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
            raise ValueError
    except ValueError:
        ap.error(f"--seeds: {a.seeds!r}: distinct integers >= 0, comma-separated")
    try:
        jobs = parse_jobs(a.jobs)
    except ValueError as e:
        ap.error(str(e))
    if a.replicas is not None and (a.replicas < 1 or a.engine != "sglang-servers"):
        ap.error(f"--replicas: {a.replicas}: an integer >= 1, with --engine sglang-servers only")
    replicas = 2 if a.replicas is None else a.replicas
    if a.loop_stops and a.engine != "sglang":
        ap.error(f"--loop-stops: with --engine sglang only (the local engine always stops loops itself), got {a.engine}")

    from srca.config import SearchConfig
    from srca.eval.data import DataError, load_problems
    from srca.engines import make_engine
    from srca.eval import arun_eval
    from srca.eval.records import read_records
    from srca.eval.report import render

    t0 = time.monotonic()
    try:
        problems = load_problems(a.dataset, a.data, a.limit)
    except (DataError, OSError) as e:
        ap.error(str(e) if "--data" in str(e) else f"--data {a.data}: {e}")
    if a.check:
        print(f"# arguments ok: {len(problems)} problems" + (f" of {a.dataset}" if a.dataset != "math500" else "")
              + f", jobs {', '.join(f'{m}:{n}' for m, n, _ in jobs)}" + (f", seeds {a.seeds}" if seeds != [0] else ""))
        return
    os.makedirs(a.out_dir, exist_ok=True)
    for f in sorted(glob.glob(os.path.join(a.seed_dir, "*.jsonl"))) if a.seed_dir else []:
        dest = os.path.join(a.out_dir, os.path.basename(f))
        if not os.path.exists(dest):
            shutil.copyfile(f, dest)
            print(f"resuming from {f}", flush=True)
    sglang_log = None  # the in-process engine's log, read per job (servers keep theirs under servers/)
    if a.engine == "sglang":
        from real_workload import SGLangLog, sglang_log_config

        sglang_log = SGLangLog(sglang_log_config(a.out_dir))
        os.environ["SGLANG_LOGGING_CONFIG_PATH"] = os.path.join(a.out_dir, "sglang_logging.json")
    if a.engine == "local":
        engine = make_engine("local", model=a.model)
    elif a.engine == "sglang-servers":  # the in-process engine's settings, as server flags
        engine = make_engine("sglang-servers", model=a.model, replicas=replicas, mem_fraction=a.mem,
                             server_args=["--attention-backend", "triton", "--sampling-backend", "flashinfer"],
                             log_dir=os.path.join(a.out_dir, "servers"))
    else:
        engine = make_engine("sglang", model_path=a.model, mem_fraction_static=a.mem, sampling_backend="flashinfer",
                             dp_size=a.dp, **({"loop_stops": True} if a.loop_stops else {}))
    shape = f"{replicas} servers" if a.engine == "sglang-servers" else f"dp={a.dp}" + (", loop stops in SGLang" if a.loop_stops else "")
    print(f"engine ready in {time.monotonic() - t0:.1f} s ({a.engine}, {shape}); {len(problems)} problems", flush=True)
    base = SearchConfig(prompt=a.prompt, seed=0)
    t_jobs = time.monotonic()
    for seed, (m, n, lim) in ((s, j) for s in seeds for j in jobs):  # seed by seed: a run cut short keeps paired draws
        spec = f"{m}:{n}" + (f":{lim}" if lim else "") + (f" seed {seed}" if seed else "")
        if time.monotonic() - t_jobs > a.budget_s:
            print(f"budget spent: not starting {spec}", flush=True)
            break
        subset = problems[:lim] if lim else problems
        out = os.path.join(a.out_dir, f"{a.dataset}_{m}_n{n}" + (f"_first{lim}" if lim else "")
                           + (f"_seed{seed}" if seed else "") + ".jsonl")
        t, t_epoch = time.monotonic(), time.time()  # SGLang's log lines carry epoch times
        recs = asyncio.run(arun_eval(subset, [m], [n], engine, out, base=base, seed=seed,
                                     concurrency=a.concurrency, resume=True, progress=False))
        acc = sum(r["correct"] for r in recs) / max(1, len(recs))
        gen = sum(r["usage"]["generated_tokens"] for r in recs) / max(1, len(recs))
        line = {"job": spec, "problems": len(recs), "accuracy": round(acc, 4),
                "mean_generated_tokens": round(gen, 1), "wall_s": round(time.monotonic() - t, 1)}
        if sglang_log is not None:
            line["sglang"] = decode_cost(sglang_log.take(t_epoch, time.time()))
        print(json.dumps(line), flush=True)
    asyncio.run(engine.close())
    tag = f"_seed{seeds[0]}" if seeds[0] else ""  # the report: the first seed's files (one draw per cell)
    records = [r for f in sorted(glob.glob(os.path.join(a.out_dir, f"{a.dataset}_*{tag}.jsonl")))
               if "_first" not in f and (tag or "_seed" not in f)
               for r in read_records(f, repair=True)]
    print(render(records), flush=True)


if __name__ == "__main__":
    main()
