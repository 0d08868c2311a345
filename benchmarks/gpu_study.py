"""One engine, one GPU session: record the sample bank, then run eval jobs from a queue file.

    python benchmarks/gpu_study.py --model /tmp/q15hf --data .gpu-data/math500.jsonl \
        --out-dir /tmp/study --queue /path/to/live/checkout/.gpu-data/queue.jsonl

1. Starts one engine (SGLang in process; ``--engine local`` for a CPU dry run).
2. Records the bank (:mod:`srca.eval.bank`): ``--bank-samples`` samples per problem with probes,
   the problems of the ``tune`` half first (:func:`srca.eval.bank.half`), in chunks written as
   ``bank/chunk_NNN.jsonl.gz`` as they finish (a restarted run skips finished chunks).
3. Then runs eval jobs read from ``--queue`` (JSON lines ``{"name", "method", "n", "overrides",
   "limit"}``), re-read before each job, so a tuned configuration can be sent while the bank is
   still recording; each job is ``srca.eval.arun_eval`` into ``evals/NAME.jsonl`` (resumable);
   ``"half": "tune" | "test"`` keeps one half of the problems.
   A line ``{"stop": true}`` ends the run; so does ``--idle-exit`` seconds without a new job.

Progress and one JSON summary line per chunk and job go to stdout (``status.jsonl`` too).
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import time


def log(out_dir: str, **rec) -> None:
    rec["t"] = round(time.time(), 1)
    line = json.dumps(rec)
    print(line, flush=True)
    with open(os.path.join(out_dir, "status.jsonl"), "a") as f:
        f.write(line + "\n")


def read_queue(path: str) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(x) for x in f if x.strip()]
    except (OSError, ValueError):
        return []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--queue", default=None)
    ap.add_argument("--engine", default="sglang", choices=["sglang", "local"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--prompt", default="qwen")
    ap.add_argument("--mem", type=float, default=0.85)
    ap.add_argument("--bank-samples", type=int, default=16)
    ap.add_argument("--bank-chunk", type=int, default=64)
    ap.add_argument("--bank-topk-chunks", type=int, default=1, help="chunks that also record top-20 logprobs")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--no-bank", action="store_true")
    ap.add_argument("--concurrency", type=int, default=512)
    ap.add_argument("--idle-exit", type=float, default=600.0)
    a = ap.parse_args()

    from srca.config import SearchConfig
    from srca.eval.data import load_problems
    from srca.engines import make_engine
    from srca.eval import arun_eval
    from srca.eval.bank import RecordSettings, half, record_chunk

    t0 = time.monotonic()
    os.makedirs(os.path.join(a.out_dir, "bank"), exist_ok=True)
    os.makedirs(os.path.join(a.out_dir, "evals"), exist_ok=True)
    problems = load_problems("math500", a.data, a.limit)
    if a.engine == "local":
        engine = make_engine("local", model=a.model)
    else:
        engine = make_engine("sglang", model_path=a.model, mem_fraction_static=a.mem, sampling_backend="flashinfer")
    log(a.out_dir, event="engine_ready", s=round(time.monotonic() - t0, 1), problems=len(problems))

    base = SearchConfig(prompt=a.prompt, seed=0, max_new_tokens=a.max_new_tokens)  # the bank's and the jobs'
    if not a.no_bank:
        order = [p for p in problems if half(p.unique_id) == "tune"] + [p for p in problems if half(p.unique_id) == "test"]
        chunks = [order[i:i + a.bank_chunk] for i in range(0, len(order), a.bank_chunk)]
        for ci, chunk in enumerate(chunks):
            path = os.path.join(a.out_dir, "bank", f"chunk_{ci:03d}.jsonl.gz")
            if os.path.exists(path):
                continue
            s = RecordSettings(samples=a.bank_samples, topk=20 if ci < a.bank_topk_chunks else 0, config=base)
            t = time.monotonic()
            lines = asyncio.run(record_chunk(engine, chunk, s))
            tmp = path + ".tmp"
            with gzip.open(tmp, "wt") as f:
                for line in lines:
                    f.write(json.dumps(line) + "\n")
            os.replace(tmp, path)
            gen = sum(x["tokens"] for ln in lines for x in ln["samples"])
            probes = sum(1 for ln in lines for x in ln["samples"] for st in x["steps"] if st[1] != "path")
            log(a.out_dir, event="bank_chunk", chunk=ci, problems=len(chunk), topk=s.topk,
                wall_s=round(time.monotonic() - t, 1), sample_tokens=gen, probes=probes,
                halves=sorted({half(p.unique_id) for p in chunk}))

    done: set[str] = set()
    idle = time.monotonic()
    while a.queue:
        jobs = [j for j in read_queue(a.queue) if j.get("stop") or j.get("name") not in done]
        if jobs and jobs[0].get("stop"):
            break
        if not jobs:
            if time.monotonic() - idle > a.idle_exit:
                log(a.out_dir, event="idle_exit")
                break
            time.sleep(5)
            continue
        j = jobs[0]
        done.add(j["name"])
        subset = [p for p in problems if not j.get("half") or half(p.unique_id) == j["half"]]
        subset = subset[: j["limit"]] if j.get("limit") else subset
        out = os.path.join(a.out_dir, "evals", f"{j['name']}.jsonl")
        t = time.monotonic()
        try:
            cfg = base.replace(**j.get("overrides", {}))
            recs = asyncio.run(arun_eval(subset, [j["method"]], [int(j["n"])], engine, out, base=cfg, seed=0,
                                         concurrency=a.concurrency, resume=True, progress=False))
        except Exception as e:  # a bad job must not end the session's other jobs
            log(a.out_dir, event="job_failed", job=j, error=repr(e)[:500])
            continue
        acc = sum(r["correct"] for r in recs) / max(1, len(recs))
        gen = sum(r["usage"]["generated_tokens"] for r in recs) / max(1, len(recs))
        log(a.out_dir, event="job", job=j, problems=len(recs), accuracy=round(acc, 4),
            mean_generated_tokens=round(gen, 1), wall_s=round(time.monotonic() - t, 1))
        idle = time.monotonic()
    asyncio.run(engine.close())
    log(a.out_dir, event="done", s=round(time.monotonic() - t0, 1))


if __name__ == "__main__":
    main()
