"""Score SRCA lineage policies and majority voting over a recorded sample bank, on the CPU.

    python benchmarks/bank_replay.py BANK_DIR --n 16 --tune          # search the rules on the tune half
    python benchmarks/bank_replay.py BANK_DIR --n 4,8,16 --policy '{"settle": 3, "consensus": 0.5}'
    python benchmarks/bank_replay.py BANK_DIR --verify-signal --policy '{"verify": 1}'   # self-verification
    python benchmarks/loop_rules.py BANK_DIR --rule '{"share": 0.4, "start": 512, "every": 1024}' --write-bank CUT
    python benchmarks/bank_replay.py CUT --n 16 --reference BANK_DIR --wave-grid   # loop stops + srca-margin's waves

The bank comes from ``benchmarks/gpu_study.py`` (:mod:`srca.eval.bank`). Every policy is replayed
on the same samples as majority voting, so the comparison is paired: accuracy, mean generated
tokens (probes included) and the token ratio to majority, the critical path (tokens decoded one
after another: per engine call in sequence its longest sample, a solve's latency in decode
steps; ``Outcome.critical_path``), wins and losses against it, per half
of the data (``tune`` / ``test`` by a hash of ``unique_id``: tune on one, report the other).
``--tune`` runs a coordinate search on the tune half (the vote rule with early exits off, then
the early exits with that vote) and prints the chosen policy on both halves. ``--wave-grid``
picks srca-margin's waves x lead on the tune half instead (the cheapest that reaches majority
voting's accuracy there). ``--reference`` names the bank as recorded where ``BANK`` is one a
loop rule cut: majority voting, the bar and the token ratios are then that bank's.
Writes ``--out`` (JSON) and prints a table.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
from functools import lru_cache

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.config import SearchConfig  # noqa: E402
from srca.eval.bank import Policy, bank_files, half, read_bank, replay_lineages, replay_majority, subsets  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.eval.report import ci95  # noqa: E402


@lru_cache(maxsize=None)
def _grade(ans: str | None, gold: str) -> bool:
    return grade(ans, gold)


def score(lines: list[dict], policy: Policy | None, n: int, draws: int, shuffle: bool = False) -> dict:
    """Accuracy and tokens of ``policy`` (None: majority) over ``lines`` at budget ``n``, over
    ``draws`` subsets of the samples (in a random order with ``shuffle``: :func:`subsets`)."""
    outs, correct = [], []
    for ln in lines:
        for idx in subsets(ln, n, draws, shuffle=shuffle):
            out = replay_majority(ln, idx) if policy is None else replay_lineages(ln, idx, policy)
            outs.append(out)
            correct.append(_grade(out.answer, ln["answer"]))
    runs = max(1, len(outs))
    acc = sum(correct) / runs
    lo, hi = acc - ci95(acc, len(outs)), acc + ci95(acc, len(outs))  # the report's interval
    stops: dict[str, int] = {}
    for o in outs:
        stops[o.stop] = stops.get(o.stop, 0) + 1
    crit = sorted(o.critical_path for o in outs)
    return {"n": n, "runs": len(outs), "accuracy": acc, "ci95": [lo, hi],
            "tokens": sum(o.tokens for o in outs) / runs, "probe_tokens": sum(o.probe_tokens for o in outs) / runs,
            "stops": stops, "critical_path": sum(crit) / runs,
            "critical_path_p90": crit[int(0.9 * (len(crit) - 1))] if crit else 0, "correct": correct}


def _auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties half (Mann-Whitney)."""
    if not pos or not neg:
        return None
    allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        r = (i + j + 1) / 2  # mean 1-based rank of the tie block
        rank_sum += r * sum(lab for _, lab in allv[i:j])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def verify_signal(lines: list[dict]) -> dict:
    """How well the self-verification log-odds (``vf``) tell right finished samples from wrong
    ones: pooled AUROC, the mean AUROC within problems that have both, and P(yes) by class."""
    from srca.methods.verify import verify_factor

    pos, neg, within, n = [], [], [], 0
    for ln in lines:
        p_, n_ = [], []
        for smp in ln["samples"]:
            if smp.get("vf") is None or smp["answer"] is None:
                continue
            n += 1
            (p_ if _grade(smp["answer"], ln["answer"]) else n_).append(smp["vf"])
        pos += p_
        neg += n_
        a = _auc(p_, n_)
        if a is not None:
            within.append(a)
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"verified": n, "right": len(pos), "wrong": len(neg), "auroc": _auc(pos, neg),
            "auroc_within": mean(within), "problems_within": len(within),
            "p_yes_right": mean([verify_factor(v, 1) for v in pos]), "p_yes_wrong": mean([verify_factor(v, 1) for v in neg])}


def compare(pol: dict, maj: dict) -> dict:
    wins = sum(1 for a, b in zip(pol["correct"], maj["correct"]) if a and not b)
    losses = sum(1 for a, b in zip(pol["correct"], maj["correct"]) if b and not a)
    return {"accuracy": round(100 * pol["accuracy"], 2), "ci95": [round(100 * x, 1) for x in pol["ci95"]],
            "tokens": round(pol["tokens"], 1), "probe_tokens": round(pol["probe_tokens"], 1),
            "token_ratio": round(pol["tokens"] / maj["tokens"], 3) if maj["tokens"] else None,
            "critical_path": round(pol["critical_path"], 1), "critical_path_p90": pol["critical_path_p90"],
            "critical_path_ratio": round(pol["critical_path"] / maj["critical_path"], 3) if maj["critical_path"] else None,
            "vs_majority": f"+{wins}/-{losses}", "stops": pol["stops"]}


def tune(lines: list[dict], n: int, draws: int, base: Policy, shuffle: bool = False) -> Policy:
    """Coordinate search on ``lines``: the vote first (no early exits), then the exits."""
    best, best_acc = base, -1.0
    votes = itertools.product(["none", "mean", "tail", "lowest"], [64, 256], [1.0, 0.75, 0.5, 0.3], [0.0, 0.25, 0.5])
    for conf, win, keep, cw in votes:
        if conf in ("none", "mean") and win != 64 or conf == "none" and keep < 1:
            continue
        p = dataclasses.replace(base, settle=0, consensus=0.0, probe_at="cut", confidence=conf, confidence_window=win,
                                keep_top=keep, checkpoint_weight=cw)
        acc = score(lines, p, n, draws, shuffle)["accuracy"]
        print(f"  vote {conf:6s} w={win:3d} keep={keep:.2f} cw={cw:.2f}: {100 * acc:.2f}", flush=True)
        if acc > best_acc + 1e-9:
            best, best_acc = p, acc
    maj = score(lines, None, n, draws, shuffle)
    print(f"  majority: {100 * maj['accuracy']:.2f}, {maj['tokens']:.0f} tokens", flush=True)
    vote_best, exits = best, []
    for settle, cons in itertools.product([0, 2, 3, 4, 6], [0.0, 0.5, 0.6, 0.75]):
        p = dataclasses.replace(vote_best, settle=settle, consensus=cons, probe_at="step" if settle else vote_best.probe_at)
        r = score(lines, p, n, draws, shuffle)
        exits.append((p, r))
        print(f"  exits settle={settle} consensus={cons:.1f}: {100 * r['accuracy']:.2f}, "
              f"{r['tokens']:.0f} tokens ({r['tokens'] / maj['tokens']:.2f}x majority)", flush=True)
    # the cheapest policy within 0.2 points of the best accuracy of the vote alone
    ref = max(r["accuracy"] for p, r in exits if p.settle == 0 and p.consensus == 0)
    ok = [(r["tokens"], p) for p, r in exits if r["accuracy"] >= ref - 0.002]
    return min(ok, key=lambda x: x[0])[1] if ok else vote_best


WAVE_GRID = list(itertools.product((4, 5, 6, 8), (0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.35)))


def wave_grid(lines: list[dict], ref: list[dict], n: int, draws: int, base: Policy,
              shuffle: bool = False) -> Policy | None:
    """srca-margin's waves (``waves`` x ``wave_margin``, the mean-confidence vote of every
    lineage) on ``lines``: the cheapest whose accuracy reaches majority voting's on ``ref`` (the
    same problems' bank as recorded, when ``lines`` is one a loop rule cut), or None."""
    maj = score(ref, None, n, draws, shuffle)
    print(f"  majority (reference): {100 * maj['accuracy']:.2f}, {maj['tokens']:.0f} tokens", flush=True)
    rows = []
    for waves, margin in WAVE_GRID:
        p = dataclasses.replace(base, waves=waves, wave_margin=margin, confidence="mean", keep_top=1.0)
        r = score(lines, p, n, draws, shuffle)
        rows.append((r["tokens"], p, r["accuracy"]))
        print(f"  waves {waves} lead {margin:.3f}: {100 * r['accuracy']:.2f}, {r['tokens']:.0f} tokens "
              f"({r['tokens'] / maj['tokens']:.3f}x majority)", flush=True)
    ok = [(t, p) for t, p, acc in rows if acc >= maj["accuracy"] - 1e-9]
    return min(ok, key=lambda x: x[0])[1] if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank", help="bank folder (chunk_*.jsonl.gz) or files")
    ap.add_argument("--n", default="16")
    ap.add_argument("--draws", type=int, default=1, help="subsets of n samples per problem (1: the first n)")
    ap.add_argument("--shuffle", action="store_true", help="draws after the first take their samples in a random "
                    "order (the waves' order: draws of srca even at n = the bank's samples)")
    ap.add_argument("--policy", action="append", default=[], help="JSON fields of a Policy (repeatable)")
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--wave-grid", action="store_true", help="pick srca-margin's waves x lead on the tune half "
                    "(the cheapest at majority's accuracy there: WAVE_GRID)")
    ap.add_argument("--reference", default=None, help="the bank as recorded, when BANK is one a loop rule cut "
                    "(loop_rules.py --write-bank): majority voting is scored there")
    ap.add_argument("--topk-only", action="store_true", help="only problems whose bank has top-k confidences")
    ap.add_argument("--split-salt", default="", help="split by hash(unique_id + salt) (srca.eval.bank.half)")
    ap.add_argument("--verify-signal", action="store_true", help="AUROC of the self-verification probes per half")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    files = bank_files(a.bank)
    lines = read_bank(files)
    ref_by_id: dict[str, dict] = {}
    if a.reference:
        ref_by_id = {ln["unique_id"]: ln for ln in read_bank(bank_files(a.reference))}
        missing = [ln["unique_id"] for ln in lines if ln["unique_id"] not in ref_by_id]
        if missing:
            ap.error(f"--reference {a.reference}: holds no line of {missing[0]} ({len(missing)} problems missing)")

    def ref(hl: list[dict]) -> list[dict]:  # majority's lines: the reference bank's, in hl's order
        return [ref_by_id[ln["unique_id"]] for ln in hl] if ref_by_id else hl
    if a.topk_only:
        lines = [ln for ln in lines if ln["samples"] and ln["samples"][0].get("tc")]
    halves = {"tune": [ln for ln in lines if half(ln["unique_id"], a.split_salt) == "tune"],
              "test": [ln for ln in lines if half(ln["unique_id"], a.split_salt) == "test"], "all": lines}
    print(f"{len(lines)} problems ({len(halves['tune'])} tune, {len(halves['test'])} test), "
          f"{len(lines[0]['samples']) if lines else 0} samples each", flush=True)
    ns = [int(x) for x in a.n.split(",")]
    # "default": SearchConfig's defaults, read from the library (one source of defaults)
    policies = {"default": Policy.from_config(SearchConfig())}
    for i, js in enumerate(a.policy):
        policies[f"policy{i + 1}"] = dataclasses.replace(policies["default"], **json.loads(js))
    if a.tune:
        print(f"tuning at n = {ns[-1]} on the tune half", flush=True)
        policies["tuned"] = tune(halves["tune"], ns[-1], a.draws, Policy.from_config(SearchConfig(n=ns[-1])), a.shuffle)
        print("tuned:", json.dumps(dataclasses.asdict(policies["tuned"])), flush=True)
    if a.wave_grid:
        print(f"waves x lead at n = {ns[-1]} on the tune half", flush=True)
        pick = wave_grid(halves["tune"], ref(halves["tune"]), ns[-1], a.draws, Policy.from_config(SearchConfig(n=ns[-1])),
                         a.shuffle)
        print("wave-grid pick:", json.dumps(dataclasses.asdict(pick)) if pick else None, flush=True)
        if pick is not None:
            policies["wave-grid"] = pick
    result = {"bank": files, "reference": a.reference, "problems": len(lines), "draws": a.draws, "rows": []}
    if a.verify_signal:
        result["verify_signal"] = {h: verify_signal(hl) for h, hl in halves.items()}
        for h, r in result["verify_signal"].items():
            print(f"verify signal ({h}): " + ", ".join(f"{k} {round(v, 3) if isinstance(v, float) else v}"
                                                       for k, v in r.items()), flush=True)
    print("\n| half | n | policy | accuracy % | 95% CI | tokens | x majority tokens | critical path (p90) | x majority's "
          "| vs majority@n | stops |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for hname in ("tune", "test", "all"):
        hl = halves[hname]
        if not hl:
            continue
        for n in ns:
            maj = score(ref(hl), None, n, a.draws, a.shuffle)
            rows = [("majority", compare(maj, maj), None)]
            for name, pol in policies.items():
                p = dataclasses.replace(pol, n=n)
                rows.append((name, compare(score(hl, p, n, a.draws, a.shuffle), maj), dataclasses.asdict(p)))
            for name, r, pd in rows:
                print(f"| {hname} | {n} | {name} | {r['accuracy']:.1f} | {r['ci95'][0]}-{r['ci95'][1]} | {r['tokens']:.0f} "
                      f"| {r['token_ratio']} | {r['critical_path']:.0f} ({r['critical_path_p90']}) "
                      f"| {r['critical_path_ratio']} | {r['vs_majority']} | {r['stops']} |", flush=True)
                result["rows"].append({"half": hname, "n": n, "policy": name, "settings": pd, **r})
    if a.out:  # with the machine, the arguments and the time, as every benchmark's result
        write_result(a.out, "bank_replay", a, **result)


if __name__ == "__main__":
    main()
