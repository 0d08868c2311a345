"""Where a confidence-weighted vote differs from majority voting on a sample bank, on the CPU.

    python benchmarks/vote_ties.py BANK_DIR --n 4,8,16 --out vote_ties.json

For each problem and each budget ``n`` (the bank's first ``n`` samples: the samples of an
``n``-sample solve), majority voting (:func:`srca.methods.consensus.vote` unweighted: ties go to
the answer seen first) against the same vote weighted by each sample's trace confidence
(``--confidence``, :func:`~srca.methods.consensus.trace_confidence` over the sample's
log-probabilities, every sample kept). Prints how often the top of majority's tally is tied, and
the problems the weighted vote wins and loses against majority, split into those whose majority
tally was tied at the top and the others, and how many count leads the weights overturned (a
win or loss where none was overturned is the grading of two equivalent answer strings of one
group). No search is replayed: all ``n`` samples vote.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.answers import equivalent  # noqa: E402
from srca.eval.bank import bank_files, read_bank, unpack  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.methods.consensus import Ballot, trace_confidence, vote  # noqa: E402


def compare_line(line: dict, n: int, confidence: str, window: int) -> dict:
    """``{"tied", "majority", "weighted"}`` for one bank line at budget ``n`` (correctness of each)."""
    ballots = []
    for s in line["samples"][:n]:
        if s["answer"] is not None:
            ballots.append(Ballot(s["answer"], "path", trace_confidence(unpack(s.get("lp")), confidence, window)))
    if not ballots:
        return {"tied": False, "overturned": False, "majority": False, "weighted": False}
    # majority: every ballot weighs 1 (its winner then the first of its group, whatever the confidences)
    plain = vote([Ballot(b.answer, b.kind) for b in ballots], equivalent)
    weighted = vote(ballots, equivalent)
    top = sorted(plain.weights.values(), reverse=True)
    tied = len(top) > 1 and top[0] == top[1]
    # a lead the weights overturned (the two votes pick different groups without a tie); a win or
    # loss without one is the grading of two equivalent answer strings of the same group
    return {"tied": tied, "overturned": not tied and plain.groups[plain.winner] != weighted.groups[weighted.winner],
            "majority": grade(ballots[plain.winner].answer, line["answer"]),
            "weighted": grade(ballots[weighted.winner].answer, line["answer"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank", help="bank folder (chunk_*.jsonl.gz) or a file")
    ap.add_argument("--n", default="4,8,16")
    ap.add_argument("--confidence", default="mean", choices=("mean", "tail", "lowest"))
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    files = bank_files(a.bank)
    lines = read_bank(files)
    rows = []
    print(f"{len(lines)} problems, confidence {a.confidence} (window {a.window})\n")
    print("| n | tied at the top | majority % | weighted % | wins / losses when tied | when not tied | leads overturned |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(x) for x in a.n.split(",")):
        res = [compare_line(ln, n, a.confidence, a.window) for ln in lines]
        count = lambda tied, w, m: sum(1 for r in res if r["tied"] == tied and r["weighted"] == w and r["majority"] == m)
        row = {"n": n, "problems": len(res), "tied": sum(r["tied"] for r in res),
               "majority": sum(r["majority"] for r in res) / len(res), "weighted": sum(r["weighted"] for r in res) / len(res),
               "tied_wins": count(True, True, False), "tied_losses": count(True, False, True),
               "untied_wins": count(False, True, False), "untied_losses": count(False, False, True),
               "overturned": sum(r["overturned"] for r in res)}
        rows.append(row)
        print(f"| {n} | {row['tied']} ({100 * row['tied'] / len(res):.1f}%) | {100 * row['majority']:.1f} "
              f"| {100 * row['weighted']:.1f} | +{row['tied_wins']} / -{row['tied_losses']} "
              f"| +{row['untied_wins']} / -{row['untied_losses']} | {row['overturned']} |")
    if a.out:
        write_result(a.out, "vote_ties", a, bank=files, rows=rows)


if __name__ == "__main__":
    main()
