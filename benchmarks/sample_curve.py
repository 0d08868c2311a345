"""What more samples buy majority voting, from one stored run with many samples per problem (CPU).

    python benchmarks/sample_curve.py benchmarks/results/math500_h200/math500_majority_n64.jsonl.gz \\
        --k 4,8,16,24,32,48,64 --out sample_curve.json

A majority@N result line keeps its answer groups and how many samples gave each (``answers``), so
the N samples of a problem are known up to their order, and samples are exchangeable: majority@k
for any k <= N is a vote over k of them drawn without replacement (``--draws`` random draws per
problem; ties broken at random, as the order of arrival would). Also replays adaptive sampling in
waves over the same pools, up to N samples (``--waves``, a JSON list of
``[wave sizes, leader share, minimum votes]``; a solve stops after a wave when its leader holds
that share of the samples started with at least that many votes), with tokens as samples times the
problem's mean tokens per sample. Each row per half of the problems (``tune``/``test`` by a hash of
``unique_id``, :func:`srca.eval.bank.half`) against majority@16 on the same draws.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.eval.bank import half  # noqa: E402

DEFAULT_WAVES = [[[5, 5, 6], 0.5, 2], [[5, 5, 6, 16], 0.7, 2], [[5, 5, 6, 8, 8], 0.5, 2],
                 [[8, 8, 16, 32], 0.6, 2], [[5, 5, 6, 8, 8, 16, 16], 0.7, 2]]


def pools(path: str) -> list[tuple[str, list[tuple[int, bool]], float]]:
    """Per problem: (unique_id, one (group, correct) per sample, -1 for a sample without an
    answer; mean generated tokens per sample)."""
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rt") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            pool = [(g, bool(a["correct"])) for g, a in enumerate(r["answers"]) for _ in range(a["paths"])]
            pool += [(-1, False)] * (int(r["n"]) - len(pool))
            out.append((r["unique_id"], pool, r["usage"]["generated_tokens"] / int(r["n"])))
    return out


def _counts(samples: list[tuple[int, bool]]) -> dict[int, int]:
    c: dict[int, int] = {}
    for g, _ in samples:
        if g >= 0:
            c[g] = c.get(g, 0) + 1
    return c


def vote(samples: list[tuple[int, bool]], rng: random.Random) -> bool:
    """Whether majority voting over ``samples`` is right (a tie at the top broken at random)."""
    c = _counts(samples)
    if not c:
        return False
    top = max(c.values())
    g = rng.choice(sorted(x for x in c if c[x] == top))
    return next(ok for gg, ok in samples if gg == g)


def run(problems, waves: list[int], share: float, min_votes: int, draws: int, seed: int) -> tuple[float, float]:
    """(accuracy, mean tokens) of sampling in ``waves`` (one wave of k: majority@k)."""
    rng = random.Random(seed)
    right = tokens = 0.0
    for _ in range(draws):
        for _, pool, per_sample in problems:
            order = pool[:]
            rng.shuffle(order)
            used = 0
            for i, w in enumerate(waves):
                used += w
                if i < len(waves) - 1:
                    c = _counts(order[:used])
                    if c and max(c.values()) >= min_votes and max(c.values()) / used >= share:
                        break
            right += vote(order[:used], rng)
            tokens += used * per_sample
    runs = draws * len(problems)
    return right / runs, tokens / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a majority@N result file (JSONL, .gz or not)")
    ap.add_argument("--k", default="4,8,16,24,32,48,64")
    ap.add_argument("--waves", default=None, help="JSON list of [sizes, share, min_votes]")
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    probs = pools(a.results)
    n = min(len(p) for _, p, _ in probs)
    parts = {"all": probs, **{h: [p for p in probs if half(p[0]) == h] for h in ("tune", "test")}}
    base = {h: run(ps, [16], 1.0, 1, a.draws, a.seed) for h, ps in parts.items()}
    rows = []
    print(f"{len(probs)} problems x {n} samples, {a.draws} draws each\n")
    print("| policy | half | accuracy % | vs majority@16 (points) | tokens / majority@16's |")
    print("| --- | --- | --- | --- | --- |")
    specs = [([k], 1.0, 1, f"majority@{k}") for k in (int(x) for x in a.k.split(",")) if k <= n]
    for sizes, share, mv in (json.loads(a.waves) if a.waves else DEFAULT_WAVES):
        if sum(sizes) <= n:
            specs.append((sizes, share, mv, f"waves {'+'.join(map(str, sizes))} at {share}, {mv} votes"))
    for sizes, share, mv, name in specs:
        for h, ps in parts.items():
            acc, tok = run(ps, sizes, share, mv, a.draws, a.seed)
            row = {"policy": name, "half": h, "accuracy": acc, "vs_majority16": acc - base[h][0],
                   "token_ratio": tok / base[h][1], "tokens": tok}
            rows.append(row)
            print(f"| {name} | {h} | {100 * acc:.2f} | {100 * row['vs_majority16']:+.2f} | {row['token_ratio']:.3f} |")
    if a.out:
        write_result(a.out, "sample_curve", a, problems=len(probs), samples=n, rows=rows)


if __name__ == "__main__":
    main()
