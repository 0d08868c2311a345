"""Rules that stop or weigh samples by their length or by an early agreement, over the sample
bank (CPU only): the offline look behind SRCA's waves (README, "The SRCA study", "Waves").

    python benchmarks/length_rules.py benchmarks/results/srca_study_h200/bank \\
        --out benchmarks/results/srca_study_h200/length_rules.json.gz

All 16 samples of a problem start at once and decode at the same rate, so a sample that has
written ``t`` tokens stands at time ``t``; a rule that stops the solve at time ``T`` pays
``min(tokens, T)`` per sample, and only samples that finished (EOS or a boxed answer, not the
1,024-token cut) by then vote. Rules:

* ``cap L``: every sample is killed at ``L`` tokens;
* ``relative j c``: once ``j`` samples have finished, the solve stops at ``c`` times their median
  length (the rest are killed);
* ``token-stop m tau``: the solve stops the moment ``m`` finished samples have a leader with two
  ballots and ``tau`` of the confidence weight (a consensus stop inside one wave of 16,
  DeepConf-online's shape);
* ``short-m``: a vote among the first ``m`` samples to finish (short-m@k, Hassid et al. 2025);
* ``length-weighted L``: every finished sample votes, weighted by ``exp(-tokens / L)`` (times
  its confidence with ``*conf``).

Votes are plain counts unless said; the confidence is SRCA's (the mean log-probability of a
sample's last 64 tokens, :func:`srca.methods.consensus.trace_confidence`). The reference row
``majority`` is the same counting over all finished samples, all tokens paid. Halves: the
``":b"`` split of :func:`srca.eval.bank.half` (the one the waves were tuned on). Also printed:
accuracy by sample length.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from srca.answers import equivalent  # noqa: E402
from srca.eval.bank import bank_files, half, read_bank, unpack  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.methods.consensus import group_labels, trace_confidence  # noqa: E402

CUT = 1024


def prepare(line: dict) -> dict:
    """Per problem: tokens, answer group (-1: no answer of its own), group correctness, confidence."""
    S = line["samples"]
    ans = [s["answer"] if s["finish"] == "stop" else None for s in S]
    idx = [i for i, a in enumerate(ans) if a is not None]
    labs = group_labels([ans[i] for i in idx], equivalent)
    lab = np.full(len(S), -1)
    lab[idx] = labs
    ok = np.zeros(max(labs, default=-1) + 1, bool)
    for i, g in zip(idx, labs):
        ok[g] |= grade(ans[i], line["answer"])
    return {"tok": np.array([s["tokens"] for s in S]), "lab": lab, "ok": ok,
            "conf": np.array([trace_confidence(unpack(s["lp"]), "tail", 64) for s in S]),
            "half": half(line["unique_id"], ":b"),
            "right": [bool(a is not None and grade(a, line["answer"])) for a in (s["answer"] for s in S)]}


def pick(p: dict, voters: list[int], weight: Callable[[int], float]) -> bool:
    """Whether the weighted vote of ``voters`` is right (ties: the group seen first)."""
    W: dict[int, float] = {}
    for i in voters:
        if p["lab"][i] >= 0:
            W[p["lab"][i]] = W.get(p["lab"][i], 0.0) + weight(i)
    return bool(W) and bool(p["ok"][max(W, key=lambda g: (W[g], -g))])


def finished(p: dict, by: float) -> list[int]:
    return [i for i in np.argsort(p["tok"], kind="stable") if p["tok"][i] < CUT and p["tok"][i] <= by]


def stop_at(p: dict, T: float, weight: Callable[[int], float] = lambda i: 1.0) -> tuple[bool, float]:
    return pick(p, finished(p, T), weight), float(np.minimum(p["tok"], T).sum())


def cap(L: int):
    return lambda p: stop_at(p, L)


def relative(j: int, c: float):
    def rule(p):
        done = finished(p, CUT)
        for k in range(j, len(done) + 1):  # the k-th finisher sets the stop time; the next must come before it
            T = c * float(np.median(p["tok"][done[:k]]))
            if k == len(done) or p["tok"][done[k]] > T:
                return stop_at(p, min(T, float(p["tok"].max())))
        return stop_at(p, float(p["tok"].max()))
    return rule


def token_stop(m: int, tau: float):
    def rule(p):
        done = finished(p, CUT)
        for k in range(m, len(done) + 1):
            W: dict[int, float] = {}
            C: dict[int, int] = {}
            for i in done[:k]:
                g = p["lab"][i]
                W[g], C[g] = W.get(g, 0.0) + p["conf"][i], C.get(g, 0) + 1
            g = max(W, key=W.get)
            if C[g] >= 2 and W[g] / sum(W.values()) >= tau:
                return stop_at(p, float(p["tok"][done[k - 1]]), lambda i: p["conf"][i])
        return stop_at(p, float(p["tok"].max()), lambda i: p["conf"][i])
    return rule


def short(m: int):
    def rule(p):
        done = finished(p, CUT)[:m]
        T = float(p["tok"][done[-1]]) if len(done) == m else float(p["tok"].max())
        return pick(p, done, lambda i: 1.0), float(np.minimum(p["tok"], T).sum())
    return rule


def length_weighted(L: float, conf: bool = False):
    return lambda p: stop_at(p, float(p["tok"].max()),
                             lambda i: np.exp(-p["tok"][i] / L) * (p["conf"][i] if conf else 1.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    paths = bank_files(a.bank)
    P = [prepare(line) for line in read_bank(paths)]
    rules: dict[str, Callable] = {"majority": lambda p: stop_at(p, float(p["tok"].max()))}
    rules.update({f"cap {L}": cap(L) for L in (512, 640, 768, 896)})
    rules.update({f"relative {j} {c}": relative(j, c) for j in (4, 8, 12) for c in (1.0, 1.5, 2.0)})
    rules.update({f"token-stop {m} {t}": token_stop(m, t) for m in (3, 4, 6, 8) for t in (0.5, 0.6, 0.7, 0.8)})
    rules.update({f"short-{m}": short(m) for m in (4, 6, 8, 10, 12)})
    rules.update({f"length-weighted {L}{'*conf' if c else ''}": length_weighted(L, c)
                  for L in (200, 400, 800, 1600) for c in (False, True)})
    rows = []
    print("| rule | half | problems | accuracy % | tokens / majority's |\n| --- | --- | --- | --- | --- |")
    for name, rule in rules.items():
        for h in ("tune", "test", "all"):
            ps = [p for p in P if h == "all" or p["half"] == h]
            res = [rule(p) for p in ps]
            acc = 100 * sum(r[0] for r in res) / len(ps)
            ratio = sum(r[1] for r in res) / sum(float(p["tok"].sum()) for p in ps)
            rows.append({"rule": name, "half": h, "problems": len(ps), "accuracy": round(acc, 2),
                         "token_ratio": round(ratio, 3)})
            print(f"| {name} | {h} | {len(ps)} | {acc:.1f} | {ratio:.3f} |")
    bins = []
    for lo in range(0, CUT + 1, 128):
        rs = [p["right"][i] for p in P for i in range(len(p["tok"])) if lo <= min(p["tok"][i], CUT) < lo + 128]
        if rs:
            bins.append({"tokens_from": lo, "samples": len(rs), "right": round(sum(rs) / len(rs), 3)})
    tot = sum(float(p["tok"].sum()) for p in P)
    at_cut = sum(float(p["tok"][p["tok"] >= CUT].sum()) for p in P)
    print("\nsamples by length (tokens from, samples, share right):",
          ", ".join(f"{b['tokens_from']}: {b['samples']}, {b['right']}" for b in bins))
    print(f"share of all tokens in samples cut at {CUT}: {at_cut / tot:.3f}")
    if a.out:
        with (gzip.open(a.out, "wt") if a.out.endswith(".gz") else open(a.out, "w")) as f:
            json.dump({"bank": paths, "split_salt": ":b", "rows": rows, "by_length": bins,
                       "cut_token_share": round(at_cut / tot, 4)}, f, indent=1)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
