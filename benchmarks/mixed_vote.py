"""Offline: one vote over chain-of-thought and program-of-thought answers together (issue 16).

The vote curve (``vote_curve.py``) shows that more samples of the same kind cannot take
majority@16 three points up; the samples need a signal of another kind. A program the model
writes and Python runs (``--method pot``) errs differently from a chain of thought: this replays
a joint vote from two eval runs on the same problems, without the GPU.

For each problem, every answer group of the ``--cot`` run (its result line's ``answers``:
``answer``, ``paths``, ``correct``) and of the ``--pot`` run joins a group of equivalent answers
(:func:`srca.answers.equivalent`); a CoT path counts 1, a PoT path ``w``; the heaviest group
wins, ties to the group seen first (the CoT run's in its order, then the PoT run's). A problem
with no vote at all is wrong. Reported for each ``w`` of ``--weights``: accuracy on all shared
problems and on each half of the tune/test split (:func:`srca.eval.bank.half`, by a hash of
``unique_id``: pick ``w`` on ``tune``, report ``test``), paired wins and losses against the CoT
vote alone, and the tokens of both runs against the CoT run's. ``w = 0`` is the CoT vote alone
(it can differ from the run's recorded decisions where its top groups tie);
``--pot-alone`` adds the PoT vote alone.

    python benchmarks/mixed_vote.py --cot RESULTS/majority_n16.jsonl.gz --pot RESULTS/pot_n16.jsonl.gz \\
        --weights 0,0.5,1,2 --out benchmarks/results/mixed_vote.json
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import read_result_lines, write_result  # noqa: E402


def read_lines(path: str) -> dict[str, dict]:
    """``unique_id -> result line`` of one eval result file (:func:`_common.read_result_lines`)."""
    return {r["unique_id"]: r for r in read_result_lines(path)}


def joint_vote(cot: list[dict], pot: list[dict], w: float, equivalent=None) -> bool:
    """Whether the joint vote of one problem's answer groups (``cot``, ``pot``: result lines'
    ``answers``) is right; see the module's docstring for the rule."""
    if equivalent is None:
        from srca.answers import equivalent
    groups: list[list] = []  # [answer, weight, correct]
    for answers, weight in ((cot, 1.0), (pot, w)):
        if weight == 0:  # its groups could only add nothing: spare the equivalence checks
            continue
        for a in answers:
            if a.get("answer") is None or not a.get("paths"):
                continue
            for g in groups:
                if g[0] == a["answer"] or equivalent(g[0], a["answer"]):
                    g[1] += weight * a["paths"]
                    break
            else:
                groups.append([a["answer"], weight * a["paths"], bool(a.get("correct"))])
    groups = [g for g in groups if g[1] > 0]
    if not groups:
        return False
    best = max(groups, key=lambda g: g[1])  # max keeps the first of equal weights
    return best[2]


def replay(cot: dict[str, dict], pot: dict[str, dict], weights: list[float], pot_alone: bool = False) -> dict:
    from srca.eval.bank import half

    ids = sorted(set(cot) & set(pot))
    if not ids:
        raise SystemExit("the two runs share no problem")
    tok_cot = sum(cot[i]["usage"]["generated_tokens"] for i in ids)
    tok_pot = sum(pot[i]["usage"]["generated_tokens"] for i in ids)
    base = {i: joint_vote(cot[i]["answers"], [], 0.0) for i in ids}
    rows = []
    variants = [(f"w={w:g}", lambda i, w=w: joint_vote(cot[i]["answers"], pot[i]["answers"], w)) for w in weights]
    if pot_alone:
        variants.append(("pot alone", lambda i: joint_vote([], pot[i]["answers"], 1.0)))
    for name, vote in variants:
        right = {i: vote(i) for i in ids}
        row = {"vote": name, "problems": len(ids), "accuracy": round(100 * sum(right.values()) / len(ids), 2),
               "wins": sum(right[i] and not base[i] for i in ids), "losses": sum(base[i] and not right[i] for i in ids)}
        for h in ("tune", "test"):
            sub = [i for i in ids if half(i) == h]
            row[f"{h}_accuracy"] = round(100 * sum(right[i] for i in sub) / len(sub), 2) if sub else None
        rows.append(row)
    recorded = round(100 * sum(bool(cot[i].get("correct")) for i in ids) / len(ids), 2)
    return {"problems": len(ids), "cot_recorded_accuracy": recorded, "cot_tokens": tok_cot, "pot_tokens": tok_pot,
            "tokens_x_cot": round((tok_cot + tok_pot) / tok_cot, 3) if tok_cot else None, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cot", required=True, help="eval result lines of the chain-of-thought vote (majority)")
    ap.add_argument("--pot", required=True, help="eval result lines of the program-of-thought run (pot)")
    ap.add_argument("--weights", default="0,0.5,1,2", help="comma list of the weight of a PoT path (>= 0)")
    ap.add_argument("--pot-alone", action="store_true", help="also the PoT vote alone")
    ap.add_argument("--out", default=None, help="JSON result path")
    args = ap.parse_args(argv)
    try:
        weights = [float(x) for x in args.weights.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--weights: numbers separated by commas, got {args.weights!r}")
    if not weights or any(w < 0 for w in weights):
        ap.error(f"--weights: at least one, each >= 0, got {args.weights!r}")
    for p in (args.cot, args.pot):
        if not os.path.isfile(p):
            ap.error(f"no such file: {p}")
    res = replay(read_lines(args.cot), read_lines(args.pot), weights, args.pot_alone)
    print(f"{res['problems']} problems; tokens of both runs {res['tokens_x_cot']}x the CoT run's; the CoT run's "
          f"own decisions {res['cot_recorded_accuracy']}% (w=0 differs only where its top groups tie)")
    print(f"{'vote':<10} {'acc %':>7} {'tune %':>7} {'test %':>7} {'+/- vs CoT':>11}")
    for r in res["rows"]:
        print(f"{r['vote']:<10} {r['accuracy']:>7} {str(r['tune_accuracy']):>7} {str(r['test_accuracy']):>7} "
              f"{'+' + str(r['wins']) + ' / -' + str(r['losses']):>11}")
    if args.out:
        write_result(args.out, "mixed_vote", args, **res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
