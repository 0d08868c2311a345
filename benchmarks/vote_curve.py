"""How far voting alone goes: the plain vote's accuracy at each budget, from pooled majority runs
(CPU only).

    python benchmarks/vote_curve.py $(python -c "import json; print(' '.join(json.load(open(
        'benchmarks/results/pooled_srca-wide_majority_n16.json'))['args']['b']))") \\
        --n 1,2,4,8,16,32,64,128,192 --split-salt "" --out benchmarks/results/vote_curve_majority24.json

Each problem's samples of every file are one pool (``vote_exit.merge``); at a budget ``n`` the
vote is replayed over ``--draws`` random draws of ``n`` of them without replacement
(``vote_exit.replay`` with one wave: the full vote, ties broken at random), and ``pass@n`` is how
often a draw holds a right sample at all (what a perfect verifier could reach). The last row, ``all``,
is the plurality of the whole pool: what a vote tends to as its budget grows. Tokens are a
problem's mean tokens per sample times ``n``, as a ratio to ``--base`` (16: majority@16's). Both
halves (``srca.eval.bank.half`` with ``--split-salt``) are reported apart.

What it answers for issue 16: a method that only reallocates votes (early exits, waves, caps)
cannot pass the ``all`` row, and its accuracy at a given token ratio sits on or under this
curve unless it adds a signal beyond the answers' counts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from vote_exit import draw_orders, load, merge, pools, replay  # noqa: E402

from srca.eval.bank import half  # noqa: E402


def curve(pool: list[dict], budgets: list[int], draws: int, seed: int, base: int) -> list[dict]:
    """One row per budget (then ``all``): accuracy, pass@n and token ratio, overall and per half."""
    rows = []
    for n in budgets:
        orders = draw_orders(pool, n, draws, seed + n)
        rng = np.random.default_rng(seed + 10_000 + n)
        acc: dict[str, list[tuple[float, float]]] = {"all": [], "tune": [], "test": []}
        for p, seq in zip(pool, orders):
            tie = rng.random((draws, len(p["correct"]))) * 0.5
            ok, _ = replay(p, seq, [n], ("none", 0.0), 1, tie)
            right = np.flatnonzero(p["correct"])
            hit = np.isin(seq, right).any(axis=1) if right.size else np.zeros(draws, dtype=bool)
            for k in ("all", p["half"]):
                acc[k].append((ok.mean(), hit.mean()))
        rows.append(_row(str(n), acc, n / base))
    # the whole pool's plurality (ties: the share of tied groups that are right)
    acc = {"all": [], "tune": [], "test": []}
    for p in pool:
        lab = p["labels"][p["labels"] >= 0]
        counts = np.bincount(lab, minlength=len(p["correct"]) - 1) if lab.size else np.zeros(1)
        top = np.flatnonzero(counts == counts.max()) if lab.size else np.array([], dtype=int)
        ok = float(p["correct"][top].mean()) if top.size else 0.0
        for k in ("all", p["half"]):
            acc[k].append((ok, float(p["correct"][:-1].any())))
    rows.append(_row("all", acc, None))
    return rows


def _row(n: str, acc: dict[str, list[tuple[float, float]]], ratio: float | None) -> dict:
    out: dict = {"n": n, "x_tokens": None if ratio is None else round(ratio, 4)}
    for k, v in acc.items():
        a = np.array(v) if v else None
        out[k] = {"problems": len(v), "accuracy": round(float(a[:, 0].mean()), 4) if v else None,
                  "pass_at_n": round(float(a[:, 1].mean()), 4) if v else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="+", help="majority@N eval result files (.jsonl or .jsonl.gz): each problem's "
                    "samples of all of them in one pool")
    ap.add_argument("--n", default="1,2,4,8,16,32,64", help="budgets, comma-separated (default 1,2,4,8,16,32,64)")
    ap.add_argument("--base", type=int, default=16, help="the budget token ratios are to (default 16)")
    ap.add_argument("--draws", type=int, default=200, help="random draws per problem and budget (default 200)")
    ap.add_argument("--split-salt", default=":b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        budgets = [int(x) for x in a.n.split(",") if x.strip()]
        if not budgets or min(budgets) < 1 or a.draws < 1 or a.base < 1:
            raise ValueError("--n: budgets >= 1; --draws and --base >= 1")
        pool = pools(load(a.run[0])) if len(a.run) == 1 else merge([ln for r in a.run for ln in load(r)])
        for p in pool:
            p["half"] = half(p["unique_id"], a.split_salt)
        rows = curve(pool, budgets, a.draws, a.seed, a.base)
    except (OSError, ValueError, KeyError) as e:
        print(f"vote_curve: {e}", file=sys.stderr)
        return 2
    sizes = [len(p["labels"]) for p in pool]
    print(f"{len(pool)} problems, {min(sizes)} to {max(sizes)} samples each, {a.draws} draws per budget")
    print("| n | x tokens | accuracy | tune half | test half | pass@n |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        x = "-" if r["x_tokens"] is None else f"{r['x_tokens']:g}"
        print(f"| {r['n']} | {x} | {r['all']['accuracy']:.4f} | {r['tune']['accuracy'] or 0:.4f} | "
              f"{r['test']['accuracy'] or 0:.4f} | {r['all']['pass_at_n']:.4f} |")
    if a.out:
        write_result(a.out, "vote_curve", a, problems=len(pool), samples_min=min(sizes), samples_max=max(sizes),
                     rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
