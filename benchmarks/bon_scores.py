"""Which trace confidence best-of-N should pick by, on a sample bank, on the CPU.

    python benchmarks/bon_scores.py BANK_DIR --n 16 --split-salt ":b" --out bon_scores.json

best_of_n reads every generated token's log-probability (``self_confidence``: the whole
sample's mean), which costs the engine a logprob at every decode step or a prefill of the whole
sample after it (``tail_logprobs="rescore_all"``). A score from the last tokens only would be
cheap (the engines score a tail by one short prefill). For each problem, the bank's first ``n``
samples: the one with the highest :func:`~srca.methods.consensus.trace_confidence` (``mean``,
``tail`` or ``lowest`` over a window; samples without an answer never win) against majority
voting over the same samples, per half of the problems (``--split-salt``) and all. The bank's
log-probabilities are SGLang's decode-time ones; no answer-span factor (the scorer's second
term) is applied here.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.eval.bank import bank_files, half, read_bank, replay_majority, unpack  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.eval.report import ci95  # noqa: E402
from srca.methods.consensus import trace_confidence  # noqa: E402

RULES = [("mean", 0), ("tail", 64), ("tail", 256), ("lowest", 64), ("lowest", 256)]


def pick(line: dict, n: int, how: str, window: int) -> str | None:
    """The answer of the first ``n`` samples' most confident one (ties: the earlier sample)."""
    best, best_c = None, -1.0
    for s in line["samples"][:n]:
        if s["answer"] is None:
            continue
        c = trace_confidence([x for x in unpack(s.get("lp")) if x == x], how, window or 64)
        if c > best_c:
            best, best_c = s["answer"], c
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--split-salt", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    lines = read_bank(bank_files(a.bank))
    if not lines:
        raise SystemExit(f"bon_scores: no bank chunks under {a.bank}")
    names = ["majority"] + [f"{how}{w or ''}" for how, w in RULES]
    correct: dict[str, dict[str, bool]] = {k: {} for k in names}
    for ln in lines:
        uid = ln["unique_id"]
        correct["majority"][uid] = grade(replay_majority(ln, range(min(a.n, len(ln["samples"])))).answer, ln["answer"])
        for (how, w), name in zip(RULES, names[1:]):
            correct[name][uid] = grade(pick(ln, a.n, how, w), ln["answer"])
    rows = []
    for name in names:
        row = {"rule": name}
        for h in ("tune", "test", "all"):
            uids = [u for u in correct[name] if h == "all" or half(u, a.split_salt) == h]
            acc = sum(correct[name][u] for u in uids) / len(uids)
            row[h] = {"problems": len(uids), "accuracy": round(100 * acc, 2),
                      "ci95": round(100 * ci95(acc, len(uids)), 1),
                      "vs_majority": [sum(correct[name][u] and not correct["majority"][u] for u in uids),
                                      sum(correct["majority"][u] and not correct[name][u] for u in uids)]}
        rows.append(row)
    print(f"| best-of-{a.n} by | tune | test | all | vs majority (all) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        w, l_ = r["all"]["vs_majority"]
        print(f"| {r['rule']} | {r['tune']['accuracy']}% | {r['test']['accuracy']}% | {r['all']['accuracy']}% | +{w} / -{l_} |")
    write_result(a.out, "bon_scores", a, bank_problems=len(lines), rows=rows)


if __name__ == "__main__":
    main()
