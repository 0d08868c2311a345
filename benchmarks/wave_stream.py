"""A stop inside a wave against the wave's barrier, over the sample bank (CPU only).

    python benchmarks/wave_stream.py /tmp/cutA --reference /work/gpu_out/bank_ids_h100 --draws 10 \\
        --out benchmarks/results/wave_stream_bank19.json.gz

SRCA's waves decide whether to stop once a whole wave has ended (``wave_settled`` after the
wave's barrier), so the stop pays every lineage of the wave to its end, the longest included.
A stop inside the wave would check the vote each time a lineage finishes and abort the ones
still running (the engines can: ``abort(group)``), counting the lineages still running or not
started as the ones to come. Its ballots come from the lineages that finish first, the shorter
ones, which with this model are more often right. Does that move issue 16's frontier (majority@16's
accuracy at <= 0.60x its tokens)?

The model, per problem and draw (``srca.eval.bank.subsets``, shuffled): waves of the given sizes
start one after another; inside a wave the lineages start together and decode in lockstep, so
they finish in the order of their lengths and a stop when one finishes cuts the others at its
length. Ballots: each answered sample's answer weighted by its mean log-probability
(``srca-margin``'s vote: confidence ``mean``, ``keep_top`` 1); cut samples do not vote (in both
arms). The stop: :func:`srca.methods.consensus.wave_settled` with the lead rule (``margin``).
Majority@16 is the reference bank's (the uncut samples, when ``BANK`` is one a loop rule cut) on
the same samples. Reported per half of the problems (``srca.eval.bank.half``).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from bank_replay import _grade  # noqa: E402
from srca.answers import equivalent  # noqa: E402
from srca.eval.bank import Policy, _conf, bank_files, half, read_bank, replay_majority, subsets  # noqa: E402
from srca.methods.consensus import Ballot, vote, wave_settled  # noqa: E402

VOTE = Policy(confidence="mean", keep_top=1.0)


def _winner(ballots: list[Ballot]) -> str | None:
    t = vote(ballots, equivalent, keep_top=1.0)
    return None if t.winner is None else ballots[t.winner].answer


def solve(line: dict, idx: list[int], sizes: tuple[int, ...], margin: float, stream: bool) -> tuple[str | None, int]:
    """The answer and generated tokens of one solve over samples ``idx`` (module doc)."""
    s, ballots, tokens, started, n = line["samples"], [], 0, 0, len(idx)
    for w, size in enumerate(sizes):
        wave = sorted(idx[started:started + size], key=lambda i: s[i]["tokens"])
        started += size
        last = w == len(sizes) - 1
        for k, i in enumerate(wave):
            if s[i]["answer"] is not None and s[i].get("finish") != "length":
                ballots.append(Ballot(s[i]["answer"], "path", _conf(s[i], s[i]["tokens"], VOTE)))
            running = len(wave) - k - 1
            if stream and not last and wave_settled(ballots, equivalent, 0.5, 2, margin=margin,
                                                    remaining=n - started + running):
                return _winner(ballots), tokens + sum(s[j]["tokens"] for j in wave[:k + 1]) + running * s[i]["tokens"]
        tokens += sum(s[j]["tokens"] for j in wave)
        if not stream and not last and wave_settled(ballots, equivalent, 0.5, 2, margin=margin, remaining=n - started):
            break
    return _winner(ballots), tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank")
    ap.add_argument("--reference", default=None, help="the bank as recorded, when BANK is one a loop rule cut")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--rules", default="4x4:0.125,4x4:0.15,4x4:0.2,2x8:0.2,5+5+6:0.15",
                    help="waves:lead, comma-separated; waves as SIZExCOUNT or sizes joined by +")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rules = []
    for spec in a.rules.split(","):
        try:
            w, m = spec.split(":")
            sizes = tuple([int(w.split("x")[0])] * int(w.split("x")[1])) if "x" in w else tuple(int(x) for x in w.split("+"))
            rules.append((spec, sizes, float(m)))
        except ValueError:
            ap.error(f"--rules: {spec!r} is not waves:lead (e.g. 4x4:0.15 or 5+5+6:0.15)")
    if any(sum(sz) != 16 for _, sz, _ in rules):
        ap.error("--rules: every schedule must add up to 16 lineages")
    lines = list(read_bank(bank_files(a.bank)))
    ref = {ln["unique_id"]: ln for ln in read_bank(bank_files(a.reference or a.bank))}
    rows = []
    print("| rule | stop | half | accuracy % | majority@16 % | difference | x majority's tokens |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec, sizes, margin in rules:
        for stream in (False, True):
            acc: dict[str, list[float]] = {"tune": [0, 0, 0, 0, 0], "test": [0, 0, 0, 0, 0]}
            for ln in lines:
                r, h = ref[ln["unique_id"]], half(ln["unique_id"])
                for idx in subsets(ln, 16, a.draws, shuffle=True):
                    ans, tok = solve(ln, idx, sizes, margin, stream)
                    mj = replay_majority(r, idx)
                    x = acc[h]
                    x[0] += _grade(ans, ln["answer"]); x[1] += tok; x[2] += _grade(mj.answer, r["answer"])
                    x[3] += mj.tokens; x[4] += 1
            acc["all"] = [acc["tune"][i] + acc["test"][i] for i in range(5)]
            for h in ("tune", "test", "all"):
                x = acc[h]
                row = {"rule": spec, "stop": "inside the wave" if stream else "after the wave", "half": h,
                       "accuracy": round(100 * x[0] / x[4], 2), "majority": round(100 * x[2] / x[4], 2),
                       "difference": round(100 * (x[0] - x[2]) / x[4], 2), "token_ratio": round(x[1] / x[3], 3),
                       "solves": int(x[4])}
                rows.append(row)
                print(f"| {spec} | {row['stop']} | {h} | {row['accuracy']} | {row['majority']} | "
                      f"{row['difference']:+.2f} | {row['token_ratio']} |", flush=True)
    if a.out:
        write_result(a.out, "wave_stream", a, rows=rows)


if __name__ == "__main__":
    main()
