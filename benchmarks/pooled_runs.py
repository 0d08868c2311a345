"""Two methods' accuracy pooled over several independent eval runs, problem by problem (no GPU).

    python benchmarks/pooled_runs.py \\
        --a benchmarks/results/math500_h200_waves/math500_srca_n16.jsonl.gz \\
            benchmarks/results/math500_h200_graphs/math500_srca_n16.jsonl.gz \\
            benchmarks/results/math500_h100_eleventh/srca_n16_c256.jsonl.gz \\
            benchmarks/results/math500_h100_eleventh/srca_n16_cauto.jsonl.gz \\
        --b benchmarks/results/math500_h200_waves/math500_majority_n16.jsonl.gz \\
            benchmarks/results/math500_h100_eleventh/majority_n16_c256.jsonl.gz \\
            benchmarks/results/math500_h100_eleventh/majority_n16_cauto.jsonl.gz \\
        --tuned-on benchmarks/results/srca_study_h200/tuned_on.txt \\
        --out benchmarks/results/pooled_srca_majority_n16.json

One eval run of a sampling method on 500 problems moves by a few points from draw to draw (two
runs of the same method disagree on about 70 problems), so one pair of runs cannot tell a
3-point difference from noise. Each run here is an independent draw of every problem's samples;
for each problem the method's runs that hold it are averaged (its success rate over those
draws: a run on the first 200 problems adds a draw to those 200), and the difference of the two
methods' rates is averaged over the problems both methods have a run of. The interval is a
bootstrap over problems (10,000 resamples of the problems, the runs of each kept together); the
p-value a sign-flip test of the per-problem differences (each problem's difference kept or
negated at random). With ``--tuned-on`` (a file of ``unique_id``s a rule was chosen on) the
held-out problems and the tuned ones are reported apart too; ``--split-at K`` reports the
first K problems and the rest apart (runs of different lengths): with ``--data`` (the problems'
JSONL) the data set's first K, else those of the run files' first K lines, which a run that
writes its lines as its solves finish (``--concurrency auto``) does not keep in data order.

A ``--a`` or ``--b`` item ``RESULT.json:a`` (or ``:b``) stands for the files of that side of an
earlier result of this script, so a new draw is added to a stored pool without copying its list:

    python benchmarks/pooled_runs.py --a benchmarks/results/pooled_srca-wide_majority_n16.json:a NEW_SRCA_WIDE \
        --b benchmarks/results/pooled_srca-wide_majority_n16.json:b NEW_MAJORITY \
        --tuned-on benchmarks/results/math500_h100_twentieth/tuned_on.txt
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import read_result_lines, write_result  # noqa: E402

from srca.eval.data import DataError, read_jsonl  # noqa: E402


def read_run(path: str) -> dict[str, bool]:
    """``unique_id -> correct`` of one eval result file (:func:`_common.read_result_lines`)."""
    return {r["unique_id"]: bool(r["correct"]) for r in read_result_lines(path)}


def expand(items: list[str]) -> list[str]:
    """The run files of ``--a``/``--b``: each item as given, except ``RESULT.json:a`` or ``:b``,
    the files of that side of an earlier pooled_runs result (its ``args``), in their order.
    ``ValueError`` naming the item when it is not such a result."""
    out: list[str] = []
    for item in items:
        head, sep, side = item.rpartition(":")
        if not (sep and head.endswith(".json") and side in ("a", "b")):
            out.append(item)
            continue
        try:
            with open(head, encoding="utf-8") as f:
                res = json.load(f)
            files = res["args"][side] if res.get("benchmark") == "pooled_runs" else None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{item}: not a pooled_runs result ({e})") from None
        if not isinstance(files, list) or not all(isinstance(x, str) for x in files):
            raise ValueError(f"{item}: not a pooled_runs result (no list of files at args.{side})")
        out += files
    return out


def compare(a: list[dict[str, bool]], b: list[dict[str, bool]], ids: list[str], resamples: int = 10_000,
            seed: int = 0) -> dict:
    """Pooled accuracies of ``a`` and ``b`` over ``ids``, their difference (points), its 95%
    bootstrap interval and the two-sided sign-flip p-value."""
    ids = [i for i in ids if any(i in r for r in a) and any(i in r for r in b)]
    if not ids:
        raise ValueError("compare: no problem both methods have a run of")
    rate_a = [_rate(a, i) for i in ids]
    rate_b = [_rate(b, i) for i in ids]
    d = [x - y for x, y in zip(rate_a, rate_b)]
    n = len(d)
    mean = sum(d) / n
    rng = random.Random(seed)
    boot = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo, hi = boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1]
    extreme = sum(abs(sum(v if rng.random() < 0.5 else -v for v in d)) >= abs(mean) * n - 1e-12
                  for _ in range(resamples))
    draws = lambda runs: [sum(i in r for r in runs) for i in ids]  # noqa: E731
    return {"problems": n, "a_accuracy": round(100 * sum(rate_a) / n, 2), "b_accuracy": round(100 * sum(rate_b) / n, 2),
            "difference": round(100 * mean, 2), "ci95": [round(100 * lo, 2), round(100 * hi, 2)],
            "p_sign_flip": round(extreme / resamples, 4),
            "a_draws": [min(draws(a)), max(draws(a))], "b_draws": [min(draws(b)), max(draws(b))],
            "a_per_run": [_run_accuracy(r, ids) for r in a], "b_per_run": [_run_accuracy(r, ids) for r in b]}


def _rate(runs: list[dict[str, bool]], i: str) -> float:
    held = [r[i] for r in runs if i in r]
    return sum(held) / len(held)


def _run_accuracy(run: dict[str, bool], ids: list[str]) -> float | None:
    """A run's accuracy on the problems of ``ids`` it holds (None if it holds none)."""
    held = [run[i] for i in ids if i in run]
    return round(100 * sum(held) / len(held), 2) if held else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", nargs="+", required=True, help="eval result files of the first method, one run each "
                    "(RESULT.json:a or :b: the files of that side of an earlier result of this script)")
    ap.add_argument("--b", nargs="+", required=True, help="eval result files of the second method (the same forms)")
    ap.add_argument("--tuned-on", default=None, help="unique_ids a rule was tuned on (reported apart)")
    ap.add_argument("--split-at", type=int, default=0, help="also report the first K problems and the others "
                    "apart (the data's first K with --data, else the run files' first K lines)")
    ap.add_argument("--data", default=None, help="the problems' JSONL (unique_id per line), for --split-at's order")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.resamples < 100:
        ap.error("--resamples: at least 100")
    order: list[str] = []
    if a.data:
        try:  # the eval CLI's reader: the same ids (and the same errors) as the runs were made with
            order = [pr.unique_id for pr in read_jsonl(a.data)]
        except DataError as e:
            ap.error(str(e))
    try:
        a.a, a.b = expand(a.a), expand(a.b)
    except ValueError as e:
        ap.error(str(e))
    runs_a, runs_b = [read_run(p) for p in a.a], [read_run(p) for p in a.b]
    ids = sorted(set.union(*(set(r) for r in runs_a)) & set.union(*(set(r) for r in runs_b)))
    parts = {"all": ids}
    if a.split_at:
        if order:
            first = set(order[: a.split_at])
        else:
            first = {i for r in runs_a + runs_b for i in list(r)[: a.split_at]}
        parts[f"first {a.split_at}"] = [i for i in ids if i in first]
        parts["the others"] = [i for i in ids if i not in first]
    if a.tuned_on:
        with open(a.tuned_on, encoding="utf-8") as f:
            tuned = set(f.read().split())
        parts["held-out"] = [i for i in ids if i not in tuned]
        parts["tuned on"] = [i for i in ids if i in tuned]
    rows = {}
    print(f"{len(runs_a)} runs of a, {len(runs_b)} of b")
    print("| part | problems | draws of a, b | a (pooled) | b (pooled) | a - b, points | 95% interval | p (sign flip) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, sub in parts.items():
        if not sub:
            continue
        r = rows[name] = compare(runs_a, runs_b, sub, a.resamples)
        span = lambda d: f"{d[0]}" if d[0] == d[1] else f"{d[0]}-{d[1]}"  # noqa: E731
        print(f"| {name} | {r['problems']} | {span(r['a_draws'])}, {span(r['b_draws'])} | {r['a_accuracy']}% "
              f"| {r['b_accuracy']}% | {r['difference']:+.2f} | {r['ci95'][0]:+.2f} to {r['ci95'][1]:+.2f} "
              f"| {r['p_sign_flip']} |")
    if a.out:
        write_result(a.out, "pooled_runs", a, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
