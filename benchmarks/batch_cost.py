"""What a decode iteration cost each job of a real-workload run, from its stored JSON (no GPU).

    python benchmarks/batch_cost.py benchmarks/results/real_workload_h200_ninth.json.gz \\
        --out benchmarks/results/batch_cost_h200_ninth.json

``real_workload.py`` polls SGLang's load once a second (``sglang_loads.series``: running and
waiting requests) and parses its log (``sglang_log``: prefill batches). Per job: the seconds the
engine had requests running, their mean number, so the decode iterations it ran (generated
tokens / mean running: each iteration decodes one token per running request), the milliseconds
per iteration, and the prefill batches per iteration (each a forward of its own between decode
iterations, unless SGLang mixes them into the decode batch). A job whose iterations cost more
at the same running batch pays for something besides decoding; one with few running requests
leaves the batch empty.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402


def job_cost(job: dict) -> dict | None:
    """The row of one job, or None when the run recorded no SGLang load series for it."""
    series = (job.get("sglang_loads") or {}).get("series") or []
    busy = [r for r in series if r[1] > 0]  # (t_s, running, waiting, ...) polls with work running
    if not busy:
        return None
    running = sum(r[1] for r in busy) / len(busy)
    # the time from each poll with work running to the next poll (polls are about a second apart)
    gaps = [b[0] - a[0] for a, b in zip(series, series[1:]) if a[1] > 0]
    busy_s = sum(gaps) + (1.0 if series[-1][1] > 0 else 0.0)
    iters = job["generated_tokens"] / running
    prefills = (job.get("sglang_log") or {}).get("prefill_batches")
    return {"job": job["job"], "concurrency": job.get("concurrency"), "wall_s": job["wall_s"],
            "busy_s": round(busy_s, 1), "mean_running": round(running), "decode_iterations": round(iters),
            "ms_per_iteration": round(1000 * busy_s / iters, 1),
            "prefill_batches": prefills, "prefills_per_iteration": round(prefills / iters, 2) if prefills is not None else None,
            "tok_s_per_running": round(job["generated_tokens"] / busy_s / running, 1),
            "engine_requests": job.get("engine_requests"), "gen_tok_s": job.get("gen_tok_s")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a real_workload.py JSON")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    with (gzip.open if args.run.endswith(".gz") else open)(args.run, "rt") as f:  # the stored runs are gzipped
        run = json.load(f)
    rows = [r for r in (job_cost(j) for j in run.get("jobs", [])) if r is not None]
    print("| job | c | wall s | running (mean) | decode iterations | ms / iteration | prefill batches / iteration |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['job']} | {r['concurrency']} | {r['wall_s']} | {r['mean_running']} | {r['decode_iterations']} "
              f"| {r['ms_per_iteration']} | {r['prefills_per_iteration']} |")
    if args.out:
        write_result(args.out, "batch_cost", args, source_machine=run.get("machine"), source_commit=run.get("commit"),
                     rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
