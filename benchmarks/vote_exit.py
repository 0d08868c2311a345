"""Early-exit rules for a vote, replayed over the answers of a larger majority run (CPU only).

    python benchmarks/vote_exit.py benchmarks/results/math500_h100_sixteenth/study/math500_majority_n32.jsonl.gz \\
        --n 16 --out benchmarks/results/vote_exit_h100_sixteenth.json.gz

Several files (independent majority runs of the same problems) pool each problem's samples
(:func:`merge`), so the replay draws from a few hundred samples of a problem instead of one run's
N. The twentieth run's pool, the 21 majority@16 runs of ``benchmarks/results/pooled_srca_majority_n16.json``:

    python benchmarks/vote_exit.py $(python -c "import json; print(' '.join(json.load(open(
        'benchmarks/results/pooled_srca_majority_n16.json'))['args']['b']))") --n 16 --split-salt "" \\
        --waves 5,5,6 --waves 4,4,4,4 --waves 4,2,2,2,2,2,2 --waves 2,2,2,2,2,2,2,2 \\
        --waves 3,1,1,1,1,1,1,1,1,1,1,1,1,1 --out benchmarks/results/vote_exit_pooled_majority21.json.gz

A majority@N eval line keeps how many of its N i.i.d. samples gave each answer and whether that
answer is right (``answers[].paths``, ``answers[].correct``; samples with no answer are the
rest). So each problem's N samples are a pool, and drawing ``n`` of them without replacement in
a random order is a fresh draw of a sequential solve at budget ``n`` (the samples are
exchangeable). Every rule below sees the same orders (paired), ``--draws`` of them per problem.

A rule launches the ``n`` samples in waves (``--waves``: e.g. ``5,5,6``, srca's default 3 waves
at n = 16, or ``4,2,2,2,2,2,2``) and after each wave but the last may stop:

* ``share tau``: the leading answer holds at least ``tau`` of the ballots so far (samples with
  an answer; ESC-like; srca's ``wave_consensus`` with a plain vote);
* ``margin c``: the leader's lead over the runner-up is at least ``c`` times the samples still
  to come (``c = 1``: the rest can no longer overturn the vote, so the decision is the full
  vote's up to tie-breaking; smaller ``c`` trusts the lead more, as Adaptive-Consistency's
  posterior stop does);

* ``beta x``: Adaptive-Consistency's Beta stop: the leader's answer is more likely than the
  runner-up's with posterior probability at least ``x`` (Beta(top + 1, second + 1) > 1/2);

* ``oracle``: a bound, not a rule: the first wave whose leader is the full vote's (what any stop
  would spend at no loss, if it could know);

the first two with at least ``--min-votes`` ballots for the leader: the rules of
:func:`srca.methods.consensus.wave_settled` with equal weights, vectorized over the orders (a
test holds the two to the same stops). The decision is the plurality of the
samples drawn (ties broken at random). Cost: samples drawn, weighted by the problem's mean tokens
per sample (``usage.generated_tokens / N``), as a ratio to the full ``n``.

Rules are picked on one half of the problems (``srca.eval.bank.half`` with ``--split-salt``; the
cheapest rule per wave schedule whose tune-half accuracy is within ``--tolerance`` of the full
vote's) and
reported on the other half apart. The pool's answers carry no confidences, so this measures the
stop rule under a plain vote; srca's lineages vote with their confidence on top.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from srca.eval.bank import half  # noqa: E402


def load(path: str) -> list[dict]:
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def pools(lines: list[dict]) -> list[dict]:
    """Per problem: group label per sample (-1: no answer), group correctness, mean tokens."""
    out = []
    for ln in lines:
        size = int(ln["n"])
        labels: list[int] = []
        correct = []
        for g, a in enumerate(ln.get("answers") or []):
            labels += [g] * int(a["paths"])
            correct.append(bool(a["correct"]))
        if len(labels) > size:
            raise ValueError(f"{ln['unique_id']}: {len(labels)} answered samples in a run of n={size}")
        labels += [-1] * (size - len(labels))
        out.append({"unique_id": ln["unique_id"], "labels": np.array(labels), "correct": np.array(correct + [False]),
                    "tokens": ln["usage"]["generated_tokens"] / size})
    return out


def merge(lines: list[dict]) -> list[dict]:
    """One pool per problem from several runs' lines (independent draws of the same method): the
    samples of every run of the problem, in one pool. The groups of different runs are joined by
    the answer: every right group is one group (each is equivalent to the reference), wrong groups
    by their answer text with spaces removed (two runs' equivalent but differently written wrong
    answers stay apart, which can only split a wrong vote: a small bias for the vote). A
    problem's ``tokens`` is its mean tokens per sample over the runs."""
    by: dict[str, list[dict]] = {}
    for ln in lines:
        by.setdefault(ln["unique_id"], []).append(ln)
    out = []
    for uid, lns in by.items():
        keys: dict[object, int] = {}
        labels: list[int] = []
        tokens = 0.0
        for ln in lns:
            size = int(ln["n"])
            got = 0
            for a in ln.get("answers") or []:
                key = True if a["correct"] else "".join(str(a["answer"]).split())
                g = keys.setdefault(key, len(keys))
                labels += [g] * int(a["paths"])
                got += int(a["paths"])
            if got > size:
                raise ValueError(f"{uid}: {got} answered samples in a run of n={size}")
            labels += [-1] * (size - got)
            tokens += ln["usage"]["generated_tokens"] / size / len(lns)
        correct = [False] * len(keys)
        if True in keys:
            correct[keys[True]] = True
        out.append({"unique_id": uid, "labels": np.array(labels), "correct": np.array(correct + [False]),
                    "tokens": tokens, "runs": len(lns)})
    return out


def draw_orders(pool: list[dict], n: int, draws: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    orders = []
    for p in pool:
        if len(p["labels"]) < n:
            raise ValueError(f"the pool holds {len(p['labels'])} samples per problem; --n {n} needs at least that many")
        idx = np.argsort(rng.random((draws, len(p["labels"]))), axis=1)[:, :n]
        orders.append(p["labels"][idx])  # (draws, n) group labels, -1 = no answer
    return orders


def _beta_win(top: np.ndarray, second: np.ndarray) -> np.ndarray:
    """P(p > 1/2) for p ~ Beta(top + 1, second + 1): the chance that the leader's answer is more
    likely than the runner-up's, given their counts (Adaptive-Consistency's Beta stop). For
    integer counts, P(Binomial(top + second + 1, 1/2) <= top)."""
    t = _beta_table(int(max(top.max(), second.max())) + 1)
    return t[top, second]


@functools.lru_cache(maxsize=None)
def _beta_table(k: int) -> np.ndarray:
    from math import comb

    t = np.zeros((k + 1, k + 1))
    for a in range(k + 1):
        for b in range(k + 1):
            m = a + b + 1
            t[a, b] = sum(comb(m, j) for j in range(a + 1)) / 2 ** m
    return t


def replay(p: dict, seq: np.ndarray, waves: list[int], rule: tuple[str, float], min_votes: int,
           tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct, samples used) per draw for one problem."""
    draws, n = seq.shape
    groups = len(p["correct"])  # the last slot stands for "no answer"
    onehot = np.zeros((draws, n, groups))
    lab = np.where(seq < 0, groups - 1, seq)
    onehot[np.arange(draws)[:, None], np.arange(n)[None, :], lab] = 1.0
    onehot[:, :, groups - 1] = 0.0  # unanswered samples cast no ballot
    cum = np.cumsum(onehot, axis=1)
    used = np.full(draws, n)
    open_ = np.ones(draws, dtype=bool)
    ends = np.cumsum(waves)
    kind, x = rule

    def leader(e: int) -> np.ndarray:  # the vote's winner after e samples (-1: no ballot yet)
        v = cum[:, e - 1, :] + tie[:, :groups]
        v[:, groups - 1] = -1.0
        return np.where(cum[:, e - 1, :].sum(axis=1) > 0, np.argmax(v, axis=1), -1)

    full = leader(n) if kind == "oracle" else None
    for e in ends[:-1]:
        c = np.sort(cum[:, e - 1, :], axis=1)
        top, second = c[:, -1], (c[:, -2] if groups > 1 else np.zeros(draws))
        if kind == "share":  # of the ballots cast, as srca.methods.consensus.wave_settled
            stop = (top >= x * c.sum(axis=1) - 1e-9) & (top >= min_votes)
        elif kind == "margin":
            stop = (top - second >= x * (n - e) - 1e-9) & (top >= min_votes)
        elif kind == "beta":  # Adaptive-Consistency's stop: P(leader's rate > runner-up's) >= x
            stop = (_beta_win(top.astype(int), second.astype(int)) >= x) & (top >= min_votes)
        elif kind == "oracle":  # a bound, not a rule: it knows the full vote's winner
            stop = (leader(e) == full) & (full >= 0)
        else:
            stop = np.zeros(draws, dtype=bool)
        hit = open_ & stop
        used[hit] = e
        open_ &= ~stop
    final = cum[np.arange(draws), used - 1, :] + tie[:, :groups]  # tie-break by a fixed random jitter
    final[:, groups - 1] = -1.0
    win = np.argmax(final, axis=1)
    none = cum[np.arange(draws), used - 1, :].sum(axis=1) == 0
    ok = p["correct"][win] & ~none
    return ok.astype(float), used


def evaluate(pool: list[dict], orders: list[np.ndarray], ties: list[np.ndarray], waves: list[int],
             rule: tuple[str, float], min_votes: int, n: int) -> dict[str, dict]:
    by: dict[str, list] = {"all": [], "tune": [], "test": []}
    ends = np.cumsum(waves)
    for p, seq, tie in zip(pool, orders, ties):
        ok, used = replay(p, seq, waves, rule, min_votes, tie)
        run = np.searchsorted(ends, used) + 1  # the waves a draw ran, one after another
        row = (ok.mean(), used.mean() * p["tokens"], n * p["tokens"], run.mean(), (run == len(waves)).mean())
        by["all"].append(row)
        by[p["half"]].append(row)
    out: dict[str, dict] = {}
    for k, rows in by.items():
        a = np.array(rows) if rows else None
        out[k] = {"problems": len(rows), "accuracy": round(float(a[:, 0].mean()), 4) if rows else None,
                  "token_ratio": round(float(a[:, 1].sum() / a[:, 2].sum()), 4) if rows else None,
                  # a solve's latency is its waves one after another: their mean, and how often all ran
                  "waves_run": round(float(a[:, 3].mean()), 3) if rows else None,
                  "all_waves": round(float(a[:, 4].mean()), 4) if rows else None}
    return out


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="+", help="a majority@N eval result file (.jsonl or .jsonl.gz), N >= --n; several "
                    "files (independent runs of one method): each problem's samples of all of them in one pool (merge())")
    ap.add_argument("--n", type=int, default=16, help="the budget replayed (default 16)")
    ap.add_argument("--waves", action="append", default=None,
                    help="a wave schedule summing to n, e.g. 5,5,6 (repeatable; default: a few)")
    ap.add_argument("--min-votes", type=int, default=2)
    ap.add_argument("--draws", type=int, default=200, help="random orders per problem (default 200)")
    ap.add_argument("--split-salt", default=":b")
    ap.add_argument("--tolerance", type=float, default=0.005,
                    help="a rule is picked on the tune half if it is at most this far below the full vote (0.005: half a point)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        if a.n < 2 or a.draws < 1:
            raise ValueError("--n must be >= 2 and --draws >= 1")
        schedules = [[int(x) for x in w.split(",")] for w in (a.waves or [])] or \
            [[5, 5, 6], [4, 4, 4, 4], [4, 4, 2, 2, 2, 2], [4, 2, 2, 2, 2, 2, 2]]
        if a.n != 16 and not a.waves:
            schedules = [[a.n]]
        for w in schedules:
            if sum(w) != a.n or min(w) < 1:
                raise ValueError(f"--waves {','.join(map(str, w))} must be positive and sum to --n {a.n}")
        pool = pools(load(a.run[0])) if len(a.run) == 1 else merge([ln for r in a.run for ln in load(r)])
        orders = draw_orders(pool, a.n, a.draws, a.seed)
    except (OSError, ValueError, KeyError) as e:
        print(f"vote_exit: {e}", file=sys.stderr)
        return 2
    for p in pool:
        p["half"] = half(p["unique_id"], a.split_salt)
    rng = np.random.default_rng(a.seed + 1)
    ties = [rng.random((a.draws, len(p["correct"]))) * 0.5 for p in pool]
    full = evaluate(pool, orders, ties, [a.n], ("none", 0.0), a.min_votes, a.n)
    rules = [("share", t) for t in (0.4, 0.5, 0.6, 0.7, 0.8)] + [("margin", c) for c in (1.0, 0.75, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.125, 0.1)]
    rules += [("beta", x) for x in (0.8, 0.9, 0.95, 0.99)]
    rules.append(("oracle", 0.0))  # stops once the leader is the full vote's: the least any stop could spend
    results = []
    for w in schedules:
        for r in rules:
            results.append({"waves": w, "rule": r[0], "x": r[1], **evaluate(pool, orders, ties, w, r, a.min_votes, a.n)})
    picks = []
    for w in schedules if full["tune"]["problems"] and full["test"]["problems"] else []:
        ok = [r for r in results if r["waves"] == w and r["rule"] != "oracle" and r["tune"]["accuracy"] >= full["tune"]["accuracy"] - a.tolerance - 1e-9]
        if ok:
            picks.append(min(ok, key=lambda r: r["tune"]["token_ratio"]))
    print(f"full vote @{a.n}: all {fmt(full['all']['accuracy'], '.4f')}  tune {fmt(full['tune']['accuracy'], '.4f')}  "
          f"test {fmt(full['test']['accuracy'], '.4f')}  ({len(pool)} problems x {a.draws} orders)")
    print("| waves | rule | all: accuracy | all: x tokens | all: waves run (mean) | all: all waves | tune: accuracy | test: accuracy | test: x tokens |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {','.join(map(str, r['waves']))} | {r['rule']} {r['x']} | {fmt(r['all']['accuracy'], '.4f')} | "
              f"{fmt(r['all']['token_ratio'], '.3f')} | {fmt(r['all']['waves_run'], '.2f')} | "
              f"{fmt(r['all']['all_waves'], '.3f')} | {fmt(r['tune']['accuracy'], '.4f')} | "
              f"{fmt(r['test']['accuracy'], '.4f')} | {fmt(r['test']['token_ratio'], '.3f')} |")
    print(f"picked on the tune half (the cheapest within {a.tolerance:.3f} of the full vote's tune accuracy):")
    for r in picks:
        print(f"  waves {','.join(map(str, r['waves']))}: {r['rule']} {r['x']}: test {r['test']['accuracy']:.4f} "
              f"(full {full['test']['accuracy']:.4f}) at {r['test']['token_ratio']:.3f}x tokens")
    if a.out:
        write_result(a.out, "vote_exit", a, full_vote=full, rules=results, picked_on_tune=picks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
