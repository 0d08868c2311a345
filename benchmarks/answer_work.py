"""The answer work of a burst of finishing solves, on the event loop or in worker processes.

Replays stored MATH-500 result lines (default: the one-H200 majority@16 and srca@16 lines of
``results/math500_h200_tail``): each line's candidate pool is rebuilt (every answer group
repeated by its count of paths and checkpoints, the scores from the group's best), and all of
them "finish" at once, as a concurrency-256 eval's solves did on the GPU: each then runs
:func:`srca.answer_work.decide_pool` (canonical forms, clustering, the decision) and
:func:`srca.eval.records.make_record` (grading) through :class:`srca.answer_work.AnswerWorkers`,
the way the Solver and ``arun_eval`` do. A ticker on the same loop records how long the loop was
held. Each variant starts cold (fresh workers; the inline variant's caches cleared).

    python benchmarks/answer_work.py                  # workers 0, 1, 2 (this machine's cores)
    python benchmarks/answer_work.py --workers 0,4,8  # a larger host

Writes ``results/answer_work_<tag>.json`` and prints a table (wall and the longest loop stall,
as ratios to inline). The rebuilt pools hold one spelling per group, so the clustering here is
cheaper than the live one; grading is the same.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from _common import write_result  # noqa: E402

DEFAULT_LINES = [os.path.join(HERE, "results", "math500_h200_tail", f"math500_{m}_n16.jsonl.gz")
                 for m in ("majority", "srca")]


def load_pools(paths: list[str], limit: int):
    from srca.eval.data import Problem
    from srca.solution import Candidate

    out = []
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else open
        with opener(p, "rt") as f:
            for line in list(f)[:limit]:
                r = json.loads(line)
                pool = []
                for g in r["answers"]:
                    for kind, k in (("path", g["paths"]), ("checkpoint", g["checkpoints"])):
                        pool += [Candidate(answer=g["answer"], canonical="", score=g["best_score"], source=kind,
                                           step=1, node=len(pool)) for _ in range(k)]
                prob = Problem(unique_id=r["unique_id"], problem="(stored)", answer=r["gold"])
                rule = "majority" if r["method"] == "majority" else "confidence_vote"
                out.append((prob, r["method"], r["n"], pool, rule))
    return out


def graded(prob, method, n, pool, win, conf):
    """A result line for the decided pool (make_record's grading, in whichever process)."""
    from srca.eval.records import make_record
    from srca.solution import Solution

    w = pool[win] if win is not None else None
    sol = Solution(answer=w.answer if w else None, canonical=w.canonical if w else None, confidence=conf,
                   method=method, candidates=pool, trace=[], problem=prob.problem)
    return make_record(prob, method, n, sol, 0)


async def burst(pools, workers: int) -> dict:
    from srca.answer_work import AnswerWorkers, decide_pool

    aw = AnswerWorkers(workers)
    if workers:  # start the processes before the clock, as a long-running solver has them
        await asyncio.gather(*(aw.run(os.getpid) for _ in range(workers)))
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    async def one(prob, method, n, pool, rule):
        pool, win, conf = await aw.run(decide_pool, pool, rule, 0.5, 0.0, 8)
        return await aw.run(graded, prob, method, n, pool, win, conf)

    tick = asyncio.create_task(ticker())
    t = time.perf_counter()
    recs = await asyncio.gather(*(one(*p) for p in pools))
    wall = time.perf_counter() - t
    stop = True
    await tick
    aw.close()
    return {"workers": workers, "wall_s": round(wall, 2), "max_loop_stall_s": round(max(lags, default=0.0), 3),
            "loop_held_s": round(sum(x for x in lags if x > 0.002), 2), "correct": sum(r["correct"] for r in recs),
            "records": len(recs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", nargs="+", default=DEFAULT_LINES, help="result lines (.jsonl or .jsonl.gz)")
    ap.add_argument("--limit", type=int, default=500, help="lines per file")
    ap.add_argument("--workers", default="0,1,2", help="comma list of pool sizes (0: inline)")
    ap.add_argument("--tag", default="cpu")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sizes = [int(x) for x in a.workers.split(",")]
    if any(x < 0 for x in sizes):
        ap.error("--workers: integers >= 0")
    pools = load_pools(a.lines, a.limit)
    rows = []
    for w in sizes:
        from srca.answers import clear_caches

        clear_caches()
        rows.append(asyncio.run(burst(pools, w)))
        print(f"# workers {w}: {json.dumps(rows[-1])}", flush=True)
    base = next((r for r in rows if r["workers"] == 0), rows[0])
    for r in rows:
        r["x_inline_wall"] = round(r["wall_s"] / base["wall_s"], 3) if base["wall_s"] else None
    if len({r["correct"] for r in rows}) != 1:
        raise SystemExit(f"the variants graded differently: {[r['correct'] for r in rows]}")
    print(f"\n{len(pools)} pools from {len(a.lines)} file(s), {os.cpu_count()} cores")
    print("| workers | wall s | x inline wall | longest loop stall s | loop held s |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workers']} | {r['wall_s']} | {r['x_inline_wall']} | {r['max_loop_stall_s']} | {r['loop_held_s']} |")
    out = a.out or os.path.join(HERE, "results", f"answer_work_{a.tag}.json")
    write_result(out, "answer_work", a, pools=len(pools), rows=rows)


if __name__ == "__main__":
    main()
