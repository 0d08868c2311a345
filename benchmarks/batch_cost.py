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
leaves the batch empty. Several servers polled together (``--server-replicas``) are read one
series per replica (:func:`job_cost`).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402


def job_cost(job: dict, replicas: int = 1) -> dict | None:
    """The row of one job, or None when the run recorded no SGLang load series for it.

    ``replicas``: schedulers polled together (``real_workload.py --server --server-replicas K``
    appends one row per replica to each poll, in the same order): each replica's busy seconds and
    mean running requests are read from its own rows, and the iteration cost is the generated
    tokens over the request-seconds of all of them (each iteration decodes one token per running
    request), as if the replicas iterated at one rate. ``mean_running`` is then their sum."""
    series = (job.get("sglang_loads") or {}).get("series") or []
    stats = []  # (busy seconds, mean running) per replica
    for rows in (series[r::replicas] for r in range(replicas)):
        busy = [r for r in rows if r[1] > 0]  # (t_s, running, waiting, ...) polls with work running
        if not busy:
            continue
        # the time from each poll with work running to the next poll (polls are about a second apart)
        gaps = [b[0] - a[0] for a, b in zip(rows, rows[1:]) if a[1] > 0]
        stats.append((sum(gaps) + (1.0 if rows[-1][1] > 0 else 0.0), sum(r[1] for r in busy) / len(busy)))
    if not stats:
        return None
    tokens = job["generated_tokens"]
    work = sum(b * r for b, r in stats)  # request-seconds
    busy_s = max(b for b, _ in stats)
    iters = tokens * sum(b for b, _ in stats) / work
    prefills = (job.get("sglang_log") or {}).get("prefill_batches")
    return {"job": job["job"], "concurrency": job.get("concurrency"), "wall_s": job["wall_s"], "replicas": replicas,
            "busy_s": round(busy_s, 1), "mean_running": round(sum(r for _, r in stats)), "decode_iterations": round(iters),
            "ms_per_iteration": round(1000 * work / tokens, 1),
            "prefill_batches": prefills, "prefills_per_iteration": round(prefills / iters, 2) if prefills is not None else None,
            "tok_s_per_running": round(tokens / work, 1),
            "engine_requests": job.get("engine_requests"), "gen_tok_s": job.get("gen_tok_s")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a real_workload.py JSON")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    with (gzip.open if args.run.endswith(".gz") else open)(args.run, "rt") as f:  # the stored runs are gzipped
        run = json.load(f)
    run_args = run.get("args") or {}
    replicas = int(run_args.get("server_replicas") or 1) if run_args.get("server") else 1
    rows = [r for r in (job_cost(j, replicas) for j in run.get("jobs", [])) if r is not None]
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
