"""MATH-500 accuracy-versus-compute study on SGLang, one engine for every job.

Runs ``--jobs`` (method:n, in priority order) with ``srca.eval.arun_eval``, one JSONL per job
under ``--out-dir`` (resumable: a call that runs out of time is continued by the next), stops
starting new jobs after ``--budget-s``, and prints a report of everything done so far.

    python benchmarks/gpu_eval.py --model /tmp/q15hf --data .gpu-data/math500.jsonl \
        --out-dir /tmp/evals --jobs cot:1,majority:4,srca:4 --budget-s 500
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import concurrency  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--jobs", required=True, help="method:n[:limit],... in priority order")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=500.0, help="start no new job after this many seconds")
    ap.add_argument("--concurrency", type=concurrency, default=None,
                    help="solves in flight: an integer, or auto (the default; srca.admission: by the sequences "
                         "each solve decodes at once, against the engine's batch)")
    ap.add_argument("--prompt", default="qwen")
    ap.add_argument("--mem", type=float, default=0.85)
    ap.add_argument("--dp", type=int, default=1, help="SGLang data-parallel replicas (one per GPU)")
    ap.add_argument("--engine", default="sglang", choices=["sglang", "local"], help="local: a CPU dry run")
    a = ap.parse_args()

    from srca.config import SearchConfig
    from srca.eval.data import load_problems
    from srca.engines import make_engine
    from srca.eval import arun_eval
    from srca.eval.records import read_records
    from srca.eval.report import render

    t0 = time.monotonic()
    os.makedirs(a.out_dir, exist_ok=True)
    problems = load_problems("math500", a.data, a.limit)
    if a.engine == "local":
        engine = make_engine("local", model=a.model)
    else:
        engine = make_engine("sglang", model_path=a.model, mem_fraction_static=a.mem, sampling_backend="flashinfer",
                             dp_size=a.dp)
    print(f"engine ready in {time.monotonic() - t0:.1f} s (dp={a.dp}); {len(problems)} problems", flush=True)
    base = SearchConfig(prompt=a.prompt, seed=0)
    for spec in a.jobs.split(","):
        m, n, *lim = spec.split(":")
        if time.monotonic() - t0 > a.budget_s:
            print(f"budget spent: not starting {spec}", flush=True)
            break
        subset = problems[: int(lim[0])] if lim else problems
        out = os.path.join(a.out_dir, f"math500_{m}_n{n}" + (f"_first{lim[0]}" if lim else "") + ".jsonl")
        t = time.monotonic()
        recs = asyncio.run(arun_eval(subset, [m], [int(n)], engine, out, base=base, seed=0,
                                     concurrency=a.concurrency, resume=True, progress=False))
        acc = sum(r["correct"] for r in recs) / max(1, len(recs))
        gen = sum(r["usage"]["generated_tokens"] for r in recs) / max(1, len(recs))
        print(json.dumps({"job": spec, "problems": len(recs), "accuracy": round(acc, 4),
                          "mean_generated_tokens": round(gen, 1), "wall_s": round(time.monotonic() - t, 1)}), flush=True)
    asyncio.run(engine.close())
    records = [r for f in sorted(glob.glob(os.path.join(a.out_dir, "*.jsonl"))) if "_first" not in f
               for r in read_records(f, repair=True)]
    print(render(records), flush=True)


if __name__ == "__main__":
    main()
