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

``--take K`` asks the question at equal compute: each vote draws ``K`` of each run's ``n``
samples per problem (without replacement, ``--draws`` times; a sample that gave no answer is
drawn too, and does not vote), so ``--take 8`` over two runs of 16 is a joint vote of 16
samples, half of them programs, against the CoT run's own vote of all 16. Accuracy, wins and
losses are then means over the draws, and the tokens are scaled by ``K / n``.

Several ``--cot`` runs (independent draws of the same method) are replayed each against the one
``--pot`` run, and pooled: per ``w``, the mean accuracy over the runs against their own CoT
votes, the difference in points with its 95% bootstrap interval over problems and the
sign-flip p-value (:func:`pooled_runs.compare`), on all problems and on each half. The pooled
interval holds the CoT side's draws; the PoT side is one run, so its own sampling noise is not
in it.

    python benchmarks/mixed_vote.py --cot RESULTS/majority_n16.jsonl.gz --pot RESULTS/pot_n16.jsonl.gz \\
        --weights 0,0.5,1,2 --out benchmarks/results/mixed_vote.json
    python benchmarks/mixed_vote.py --cot RUN1/majority_n16.jsonl.gz RUN2/majority_n16.jsonl.gz \\
        --pot RESULTS/pot_n16.jsonl.gz --take 8 --out benchmarks/results/mixed_vote_pooled.json

``--reread`` reads each program answer of the ``--pot`` run again by the product's current rule
(:func:`srca.execution.read_printed`: a label's value, Python's or SymPy's syntax as LaTeX) and
grades it again against the gold, so that a run recorded before the rule is replayed as the
method reads programs now.

``--joint`` replays a ``majority-pot`` run at other weights instead: its result lines count each
answer group's programs apart from its chains (``programs`` within ``paths``), so one run splits
into its chains' vote (the base here) and its programs', which vote again at each ``w``; several
runs (seeds) are pooled the same way. Tokens are the run's own (``tokens_x_cot`` is 1).

    python benchmarks/mixed_vote.py --joint RUN/majority-pot_n16.jsonl.gz --weights 1,1.25,1.5,2
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


def reread(lines: dict[str, dict]) -> int:
    """Each answer group of a program run read again as :func:`srca.execution.program_answer`
    reads a printed line now (:func:`srca.execution.read_printed`: a label's value, Python's or
    SymPy's syntax as LaTeX) and graded again, in place; how many samples' answers changed."""
    from srca.eval.grading import grade
    from srca.execution import read_printed

    changed = 0
    for line in lines.values():
        for a in line["answers"]:
            new = read_printed(a["answer"]) if a.get("answer") is not None else None
            if new is not None and new != a["answer"]:
                a["answer"], a["correct"] = new, bool(grade(new, line["gold"]))
                changed += a.get("paths", 0)
    return changed


def split_joint(line: dict) -> tuple[dict, dict]:
    """A ``majority-pot`` result line as two: its chains' answer groups (with the run's tokens and
    ``n``) and its programs' (no tokens), for :func:`replay`. A program sample that wrote a chain
    of thought instead voted as a chain, so it is one here."""
    chains, programs = [], []
    for a in line["answers"]:
        k = int(a.get("programs", 0))
        chains.append(dict(a, paths=a.get("paths", 0) - k))
        programs.append(dict(a, paths=k))
    return dict(line, answers=chains), dict(line, answers=programs, usage=dict(line["usage"], generated_tokens=0))


def take(line: dict, k: int, rng) -> list[dict]:
    """The answer groups of ``k`` of the result line's ``n`` samples, drawn without replacement
    (the samples that gave no answer are drawn too and vote for nothing)."""
    answers = [a for a in line["answers"] if a.get("answer") is not None and a.get("paths")]
    n = int(line["n"])
    if k > n:
        raise SystemExit(f"--take {k}: {line['unique_id']} has only n = {n} samples")
    pool = [g for g, a in enumerate(answers) for _ in range(a["paths"])]
    pool += [-1] * (n - len(pool))
    counts = [0] * len(answers)
    for g in rng.sample(pool, k):
        if g >= 0:
            counts[g] += 1
    return [dict(a, paths=c) for a, c in zip(answers, counts)]


def replay(cot: dict[str, dict], pot: dict[str, dict], weights: list[float], pot_alone: bool = False,
           k: int | None = None, draws: int = 1, seed: int = 0) -> dict:
    import random

    from srca.eval.bank import half

    ids = sorted(set(cot) & set(pot))
    if not ids:
        raise SystemExit("the two runs share no problem")
    frac_cot = {i: 1.0 if k is None else k / int(cot[i]["n"]) for i in ids}
    frac_pot = {i: 1.0 if k is None else k / int(pot[i]["n"]) for i in ids}
    tok_cot = sum(cot[i]["usage"]["generated_tokens"] for i in ids)
    tok_pot = sum(pot[i]["usage"]["generated_tokens"] for i in ids)
    tok_joint = sum(frac_cot[i] * cot[i]["usage"]["generated_tokens"] + frac_pot[i] * pot[i]["usage"]["generated_tokens"]
                    for i in ids)
    base = {i: joint_vote(cot[i]["answers"], [], 0.0) for i in ids}  # the CoT run's own vote, all its samples
    if k is None:
        draws = 1
        picks = [{i: (cot[i]["answers"], pot[i]["answers"]) for i in ids}]
    else:
        rng = random.Random(seed)
        picks = [{i: (take(cot[i], k, rng), take(pot[i], k, rng)) for i in ids} for _ in range(draws)]
    rows = []
    variants = [(f"w={w:g}", lambda c, p, w=w: joint_vote(c, p, w)) for w in weights]
    if pot_alone:
        variants.append(("pot alone", lambda c, p: joint_vote([], p, 1.0)))
    per_problem = {}
    for name, vote in variants:
        right = {i: sum(vote(*d[i]) for d in picks) / draws for i in ids}  # the share of draws right
        per_problem[name] = right
        row = {"vote": name, "problems": len(ids), "accuracy": round(100 * sum(right.values()) / len(ids), 2),
               "wins": round(sum(right[i] for i in ids if not base[i]), 2),
               "losses": round(sum(1 - right[i] for i in ids if base[i]), 2)}
        for h in ("tune", "test"):
            sub = [i for i in ids if half(i) == h]
            row[f"{h}_accuracy"] = round(100 * sum(right[i] for i in sub) / len(sub), 2) if sub else None
        rows.append(row)
    recorded = round(100 * sum(bool(cot[i].get("correct")) for i in ids) / len(ids), 2)
    cot_vote = {"accuracy": round(100 * sum(base.values()) / len(ids), 2)}  # all the CoT run's samples
    for h in ("tune", "test"):
        sub = [i for i in ids if half(i) == h]
        cot_vote[f"{h}_accuracy"] = round(100 * sum(base[i] for i in sub) / len(sub), 2) if sub else None
    return {"problems": len(ids), "cot_recorded_accuracy": recorded, "cot_vote": cot_vote,
            "cot_tokens": tok_cot, "pot_tokens": tok_pot, "take": k, "draws": draws,
            "tokens_x_cot": round(tok_joint / tok_cot, 3) if tok_cot else None, "rows": rows,
            "_right": per_problem, "_base": base}  # per problem, for pool(); not written out


def pool(results: list[dict], resamples: int = 10_000) -> list[dict]:
    """Per vote of :func:`replay`'s rows, its results over several CoT runs pooled against those
    runs' own votes (:func:`pooled_runs.compare`), on all problems and on each half."""
    from pooled_runs import compare

    from srca.eval.bank import half

    ids = sorted(set.intersection(*(set(r["_base"]) for r in results)))
    out = []
    for row in results[0]["rows"]:
        name = row["vote"]
        a = [r["_right"][name] for r in results]
        b = [r["_base"] for r in results]
        entry = {"vote": name, **{k: v for k, v in compare(a, b, ids, resamples).items()
                                   if k not in ("a_draws", "b_draws")}}
        for h in ("tune", "test"):
            sub = [i for i in ids if half(i) == h]
            c = compare(a, b, sub, resamples) if sub else None
            entry[h] = {k: c[k] for k in ("problems", "a_accuracy", "b_accuracy", "difference", "ci95")} if c else None
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cot", nargs="+", default=None, help="eval result lines of the chain-of-thought vote "
                    "(majority); several runs (independent draws) are also pooled")
    ap.add_argument("--pot", default=None, help="eval result lines of the program-of-thought run (pot)")
    ap.add_argument("--reread", action="store_true", help="read the --pot run's answers again by the current "
                    "rule (a label's value, Python's or SymPy's syntax as LaTeX) and grade them again")
    ap.add_argument("--joint", nargs="+", default=None, help="instead of --cot and --pot: majority-pot runs, "
                    "each split into its chains and its programs (pooled when several)")
    ap.add_argument("--weights", default="0,0.5,1,2", help="comma list of the weight of a PoT path (>= 0)")
    ap.add_argument("--pot-alone", action="store_true", help="also the PoT vote alone")
    ap.add_argument("--take", type=int, default=None, metavar="K",
                    help="draw K of each run's n samples a problem (equal compute: K = n / 2)")
    ap.add_argument("--draws", type=int, default=50, help="draws of --take (default 50)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --take's draws")
    ap.add_argument("--out", default=None, help="JSON result path")
    args = ap.parse_args(argv)
    if args.joint is not None and (args.cot or args.pot or args.take is not None or args.pot_alone or args.reread):
        ap.error("--joint: not with --cot, --pot, --take, --pot-alone or --reread (a run's chains and programs "
                 "are its own)")
    if args.joint is None and not (args.cot and args.pot):
        ap.error("--cot and --pot are required (or --joint)")
    if args.take is not None and args.take < 1:
        ap.error(f"--take: at least 1, got {args.take}")
    if args.draws < 1:
        ap.error(f"--draws: at least 1, got {args.draws}")
    try:
        weights = [float(x) for x in args.weights.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--weights: numbers separated by commas, got {args.weights!r}")
    if not weights or any(w < 0 for w in weights):
        ap.error(f"--weights: at least one, each >= 0, got {args.weights!r}")
    paths = args.joint if args.joint is not None else [*args.cot, args.pot]
    for p in paths:
        if not os.path.isfile(p):
            ap.error(f"no such file: {p}")
    if args.joint is not None:
        results, names = [], args.joint
        for p in args.joint:
            lines = read_lines(p)
            if not any(a.get("programs") for r in lines.values() for a in r["answers"]):
                raise SystemExit(f"{p}: no answer group counts programs (not a majority-pot run)")
            split = {i: split_joint(r) for i, r in lines.items()}
            results.append(replay({i: c for i, (c, _) in split.items()}, {i: q for i, (_, q) in split.items()},
                                  weights))
    else:
        pot = read_lines(args.pot)
        if args.reread:
            print(f"--reread: {reread(pot)} program answers read anew")
        names = args.cot
        results = [replay(read_lines(c), pot, weights, args.pot_alone, args.take, args.draws, args.seed)
                   for c in args.cot]
    for cot, res in zip(names, results):
        if len(results) > 1:
            print(f"== {cot}")
        show(res, args)
    pooled = pool(results) if len(results) > 1 else None
    if pooled:
        print(f"pooled over {len(results)} CoT runs against each run's own vote (95% bootstrap interval, points)")
        print(f"{'vote':<10} {'acc %':>7} {'CoT %':>7} {'diff':>6} {'95%':>15} {'test diff':>10} {'test 95%':>15}")
        for r in pooled:
            t = r["test"] or {}
            print(f"{r['vote']:<10} {r['a_accuracy']:>7} {r['b_accuracy']:>7} {r['difference']:>6} "
                  f"{str(r['ci95']):>15} {str(t.get('difference')):>10} {str(t.get('ci95')):>15}")
    if args.out:
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        if pooled:
            write_result(args.out, "mixed_vote", args, runs=[dict(r, cot=c) for r, c in zip(clean, names)],
                         pooled=pooled)
        else:
            write_result(args.out, "mixed_vote", args, **clean[0])
    return 0


def show(res: dict, args: argparse.Namespace) -> None:
    drawn = f" ({args.take} of each run's samples, mean of {args.draws} draws)" if args.take else ""
    print(f"{res['problems']} problems{drawn}; tokens {res['tokens_x_cot']}x the CoT run's; the CoT run's "
          f"own decisions {res['cot_recorded_accuracy']}% (w=0 differs only where its top groups tie)")
    print(f"{'vote':<10} {'acc %':>7} {'tune %':>7} {'test %':>7} {'+/- vs CoT':>11}")
    cv = res["cot_vote"]
    print(f"{'CoT, all':<10} {cv['accuracy']:>7} {str(cv['tune_accuracy']):>7} {str(cv['test_accuracy']):>7} "
          f"{'(the base)':>11}")
    for r in res["rows"]:
        print(f"{r['vote']:<10} {r['accuracy']:>7} {str(r['tune_accuracy']):>7} {str(r['test_accuracy']):>7} "
              f"{'+' + str(r['wins']) + ' / -' + str(r['losses']):>11}")


if __name__ == "__main__":
    sys.exit(main())
