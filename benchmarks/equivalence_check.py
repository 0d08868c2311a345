"""srca's cheap disproofs of answer equivalence against math-verify, on every stored answer pair.

``srca.answers.equivalent`` answers "not equivalent" without math-verify when a cheap check shows
two answers differ (numbers, expressions evaluated at fixed points, finite sets of numbers,
linear equations, intervals). This replays every answer pair the stored
MATH-500 result lines hold (each line's answer groups pairwise, and each group against the gold
answer; a random sample of them by default) and compares ``equivalent`` with and without the
disproofs; then every (gold, answer) pair the lines graded correct (all of them: the equivalent
pairs, where a disproof must never fire) is checked again. A pair math-verify alone calls
equivalent and ``equivalent`` does not is a mismatch, and the run exits 1. It also times
``equivalent`` on the sampled pairs with and without the disproofs (cold caches each).

    python benchmarks/equivalence_check.py                  # 12,000 pairs of every results/**/*.jsonl.gz
    python benchmarks/equivalence_check.py --sample 0       # all of them (about 280,000: hours)
    python benchmarks/equivalence_check.py --lines A.jsonl.gz
    python benchmarks/equivalence_check.py --pools results/math500_h200/math500_majority_n16.jsonl.gz \
        results/math500_h200/math500_majority_n64.jsonl.gz --tag pools_cpu
        # whole pools as a solve clusters and grades them (real_workload.py's --answer-pools
        # timing), with the disproofs, without, and with again: the same process, cold caches each

Writes ``results/equivalence_check_<tag>.json`` and prints the counts.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import json
import os
import random
import sys
import time
from multiprocessing import get_context

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from _common import write_result  # noqa: E402


def read_lines(paths: list[str]):
    """Every result line of ``paths`` (.jsonl or .jsonl.gz), parsed."""
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else open
        with opener(p, "rt") as f:
            for line in f:
                yield json.loads(line)


def load_pairs(paths: list[str]) -> list[tuple[str, str]]:
    """Distinct (first, second) pairs: gold with each answer, and answers of a line pairwise."""
    out: dict[tuple[str, str], None] = {}  # insertion-ordered set
    for r in read_lines(paths):
        answers = [g["answer"] for g in r.get("answers", []) if g.get("answer") is not None]
        if r.get("gold") is not None:
            out.update(((r["gold"], a), None) for a in answers)
        out.update(((answers[i], answers[j]), None) for j in range(len(answers)) for i in range(j))
    return list(out)


def load_positives(paths: list[str]) -> list[tuple[str, str]]:
    """Distinct (gold, answer) pairs the stored lines graded correct: equivalent pairs, where a
    disproof must never fire."""
    return sorted({(r["gold"], g["answer"]) for r in read_lines(paths) for g in r.get("answers", [])
                   if g.get("correct") and g.get("answer") is not None and r.get("gold") is not None})


@contextlib.contextmanager
def without_disproofs():
    """``srca.answers.equivalent`` as math-verify alone decides it (the disproofs never fire)."""
    from srca import answers

    saved = answers._differs_numerically, answers._sets_differ, answers._lines_differ
    answers._differs_numerically = answers._sets_differ = answers._lines_differ = lambda g, p: False
    try:
        yield
    finally:
        answers._differs_numerically, answers._sets_differ, answers._lines_differ = saved


def check_positives(pairs: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
    """In a worker: the stored-correct pairs ``equivalent`` now calls different, with what
    math-verify alone says of each (True there: a disproof was wrong)."""
    from srca import answers

    bad = [(a, b) for a, b in pairs if not answers.equivalent(a, b)]
    answers.clear_caches()
    with without_disproofs():
        return [(a, b, answers.equivalent(a, b)) for a, b in bad]


def check(pairs: list[tuple[str, str]]) -> dict:
    """In a worker: where a disproof fires, what math-verify says; and both timings."""
    from srca import answers

    def timed(disproofs: bool) -> tuple[float, list[bool]]:
        answers.clear_caches()
        with contextlib.nullcontext() if disproofs else without_disproofs():
            t = time.perf_counter()
            got = [answers.equivalent(a, b) for a, b in pairs]
            return time.perf_counter() - t, got

    t_off, ref = timed(False)
    t_on, new = timed(True)
    mism = [(a, b, r) for (a, b), r, n in zip(pairs, ref, new) if r != n]
    return {"pairs": len(pairs), "s_math_verify": t_off, "s_with_disproofs": t_on,
            "equivalent": sum(ref), "mismatches": mism}


def pools_ab(files: list[str], limit: int) -> dict:
    """``real_workload.answer_pools`` (cluster and grade every stored pool, cold caches) with the
    disproofs, without them, and with them again; per file the time per 200 problems and the
    slowest pool."""
    import real_workload

    a = argparse.Namespace(answer_pools=files, pools_limit=limit)
    out: dict[str, list] = {}
    for mode in ("with", "without", "with_again"):
        with without_disproofs() if mode == "without" else contextlib.nullcontext():
            r = real_workload.answer_pools(a)
        out[mode] = [{"file": os.path.relpath(f["file"], HERE), "per_200_problems_s": f["cold"]["per_200_problems_s"],
                      "cluster_ms": f["cold"]["cluster_ms"], "grade_ms": f["cold"]["grade_ms"],
                      "slowest": f["cold"]["slowest"][:3]} for f in r["files"]]
        print(f"# disproofs {mode}: " + ", ".join(f"{x['file']} {x['per_200_problems_s']} s per 200, slowest pool "
                                                   f"{x['cluster_ms']['max']:.0f} ms" for x in out[mode]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", nargs="+", default=None, help="result lines (default: every results/**/*.jsonl.gz)")
    ap.add_argument("--sample", type=int, default=12000, help="pairs drawn at random (seed 0); 0: all")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--tag", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--pools", nargs="+", default=None, metavar="LINES",
                    help="instead: time whole pools of these result lines with and without the disproofs")
    ap.add_argument("--pools-limit", type=int, default=500)
    a = ap.parse_args()
    if a.pools:
        res = pools_ab(a.pools, a.pools_limit)
        print("| file | with s per 200 | without | with, again | x time | slowest pool ms with / without |")
        print("| --- | --- | --- | --- | --- | --- |")
        for w, wo, w2 in zip(res["with"], res["without"], res["with_again"]):
            x = (w["per_200_problems_s"] + w2["per_200_problems_s"]) / 2 / wo["per_200_problems_s"]
            print(f"| {w['file']} | {w['per_200_problems_s']} | {wo['per_200_problems_s']} | {w2['per_200_problems_s']} "
                  f"| {x:.2f} | {w['cluster_ms']['max']:.0f} / {wo['cluster_ms']['max']:.0f} |")
        write_result(a.out or os.path.join(HERE, "results", f"equivalence_check_{a.tag}.json"), "equivalence_check", a,
                     pools=res)
        return
    paths = a.lines or sorted(glob.glob(os.path.join(HERE, "results", "**", "*.jsonl.gz"), recursive=True))
    pairs = load_pairs(paths)
    total = len(pairs)
    if a.sample and a.sample < total:
        pairs = random.Random(0).sample(pairs, a.sample)
    chunks = [pairs[i::a.jobs * 8] for i in range(a.jobs * 8)]
    t = time.perf_counter()
    with get_context("spawn").Pool(a.jobs) as pool:
        parts = pool.map(check, [c for c in chunks if c])
        wall = time.perf_counter() - t
        positives = load_positives(paths)
        pos = [m for part in pool.map(check_positives, [positives[i::a.jobs * 4] for i in range(a.jobs * 4)])
               for m in part]
    mism = [m for p in parts for m in p["mismatches"]]
    mism += [(g, b, True) for g, b, ref in pos if ref]  # a disproof fired where math-verify proves equality
    row = {"files": len(paths), "pairs_stored": total, "pairs": len(pairs), "equivalent_pairs": sum(p["equivalent"] for p in parts),
           "stored_correct_pairs": len(positives), "stored_correct_now_different": len(pos),
           "mismatches": len(mism), "mismatch_pairs": mism[:50],
           "cpu_s_math_verify": round(sum(p["s_math_verify"] for p in parts), 1),
           "cpu_s_with_disproofs": round(sum(p["s_with_disproofs"] for p in parts), 1), "wall_s": round(wall, 1)}
    row["x_time"] = round(row["cpu_s_with_disproofs"] / row["cpu_s_math_verify"], 3) if row["cpu_s_math_verify"] else None
    print(f"{len(positives)} stored-correct (gold, answer) pairs: {len(pos)} now not equivalent, "
          f"{sum(1 for p in pos if p[2])} of them equivalent by math-verify alone")
    print(f"{row['pairs']} of {total} pairs from {row['files']} files ({row['equivalent_pairs']} equivalent by math-verify): "
          f"{row['mismatches']} mismatches; equivalent() {row['cpu_s_math_verify']} s -> "
          f"{row['cpu_s_with_disproofs']} s CPU ({row['x_time']}x)")
    for m in mism[:20]:
        print("  mismatch:", m)
    out = a.out or os.path.join(HERE, "results", f"equivalence_check_{a.tag}.json")
    write_result(out, "equivalence_check", a, **row)
    if mism:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
