"""A token cap on each lineage on top of SRCA's waves, over the sample bank (CPU only): can the
two together reach majority@16's accuracy at <= 60% of its tokens (issue 16's early-exit goal)?

    python benchmarks/cap_waves.py /work/bank_v/bank --split-salt ":b" \\
        --out benchmarks/results/srca_study_h200/cap_waves_bank2.json

The waves alone reach majority's accuracy at about 0.72x its tokens, and 4 waves at 0.4 reach
0.59x but lose about 1.5 points held out; a cap alone within a point of majority saves under 8%
(length_rules.py: the samples the 1,024-token limit cuts are right 0.1% of the time, but those
of 640 tokens and more are right 11 to 22% of the time). This replays both at once: every bank
sample is cut at ``cap`` tokens (:func:`cap_line`), then :func:`srca.eval.bank.replay_lineages`
runs the lineage policy on the cut samples, paired against majority@16 on the uncut ones.

The cut is conservative where the bank cannot say what the search would see: the bank probed
each sample after every whole step, not at the cap, so a lineage cut inside a step votes the
probe after its previous step (none when the cap falls in its first step), and a step that
boxes its answer past the cap counts as cut (the box may come at its end). It pays the cap and
that probe's tokens.

Grid (fixed before the run): cap 1024 (none), 896, 768, 640, 512 x waves 1, 3, 4 x
wave_consensus 0.4, 0.5 x the vote (the default: tail confidence, keep_top 0.5; the tie-breaker:
mean confidence, keep_top 1). Pick, on the tune half only: the fewest tokens at <= 0.60x
majority's among the policies at least as accurate as majority there; then its held-out figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from bank_replay import _grade  # noqa: E402
from srca.eval.bank import Policy, bank_files, half, read_bank, replay_lineages, replay_majority  # noqa: E402

VOTES = {"default": {}, "tiebreak": {"confidence": "mean", "keep_top": 1.0}}


def cap_sample(s: dict, cap: int) -> dict:
    """Sample ``s`` as a search with ``max_new_tokens = cap`` would have it (see module doc)."""
    if s["tokens"] <= cap:
        return s
    steps, used, prev = [], 0, None
    for ntok, end, ans, ptok in s["steps"]:
        if used + ntok <= cap and not (end == "cut"):
            steps.append([ntok, end, ans, ptok])
            used += ntok
            if end:
                break
            prev = ans
            continue
        steps.append([cap - used, "cut", prev, ptok])  # cut inside this step: the probe before it
        break
    out = dict(s, steps=steps, tokens=cap if steps[-1][1] != "path" else min(s["tokens"], cap))
    if steps[-1][1] == "cut":
        out.update(finish="length", answer=None)
    return out


def cap_line(line: dict, cap: int) -> dict:
    return dict(line, samples=[cap_sample(s, cap) for s in line["samples"]])


def run(lines: list[dict], pol: Policy | None, cap: int, n: int) -> list[tuple[bool, int]]:
    out = []
    for ln in lines:
        idx = list(range(n))
        o = replay_majority(ln, idx) if pol is None else replay_lineages(cap_line(ln, cap) if cap < 1024 else ln, idx, pol)
        out.append((_grade(o.answer, ln["answer"]), o.tokens))
    return out


def summary(res: list[tuple[bool, int]], maj: list[tuple[bool, int]]) -> dict:
    k = len(res)
    win = sum(1 for (a, _), (b, _) in zip(res, maj) if a and not b)
    loss = sum(1 for (a, _), (b, _) in zip(res, maj) if b and not a)
    return {"problems": k, "accuracy": round(100 * sum(a for a, _ in res) / k, 2),
            "token_ratio": round(sum(t for _, t in res) / sum(t for _, t in maj), 3), "wins": win, "losses": loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank")
    ap.add_argument("--split-salt", default=":b")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    files = bank_files(args.bank)
    lines = [ln for ln in read_bank(files) if len(ln["samples"]) >= args.n]
    parts = {h: [ln for ln in lines if half(ln["unique_id"], args.split_salt) == h] for h in ("tune", "test")}
    maj = {h: run(parts[h], None, 1024, args.n) for h in parts}
    rows = []
    for cap in (1024, 896, 768, 640, 512):
        for waves in (1, 3, 4):
            for cons in ((0.5,) if waves == 1 else (0.4, 0.5)):
                for vname, vote in VOTES.items():
                    pol = dataclasses.replace(Policy(n=args.n, waves=waves, wave_consensus=cons), **vote)
                    r = {"cap": cap, "waves": waves, "wave_consensus": cons, "vote": vname}
                    for h in parts:
                        r[h] = summary(run(parts[h], pol, cap, args.n), maj[h])
                    rows.append(r)
                    print(f"cap {cap:4d} waves {waves} cons {cons} {vname:8s} | tune {r['tune']['accuracy']:5.1f} "
                          f"{r['tune']['token_ratio']:.3f} | test {r['test']['accuracy']:5.1f} {r['test']['token_ratio']:.3f}",
                          flush=True)
    majs = {h: summary(maj[h], maj[h]) for h in parts}
    ok = [r for r in rows if r["tune"]["token_ratio"] <= 0.60 and r["tune"]["accuracy"] >= majs["tune"]["accuracy"]]
    pick = min(ok, key=lambda r: r["tune"]["token_ratio"]) if ok else None
    print(f"majority@{args.n}: tune {majs['tune']['accuracy']} ({majs['tune']['problems']}), "
          f"test {majs['test']['accuracy']} ({majs['test']['problems']})")
    print("pick (tune half):", pick)
    if args.out:
        write_result(args.out, "cap_waves", args, majority=majs, rows=rows, pick=pick,
                     pick_rule="fewest tune tokens at <= 0.60x among policies at least as accurate as majority on tune")


if __name__ == "__main__":
    main()
