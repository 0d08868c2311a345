"""Stopping samples that repeat themselves, scored over a recorded sample bank (CPU only).

    python benchmarks/loop_rules.py BANK_DIR --out benchmarks/results/loop_rules.json
    python benchmarks/loop_rules.py BANK_DIR --write-bank /tmp/bank_loops \\
        --rule '{"share": 0.8, "start": 384}'      # then: bank_replay.py /tmp/bank_loops ...

Samples cut at the 1,024-token limit hold about a fifth of majority voting's tokens on MATH-500
and are right almost never; length rules that find them early also kill long right answers
(README, "The SRCA study", "Waves"). This scores the other sign, a sample writing n-grams it
already wrote (:class:`srca.repetition.LoopRule`), for a grid of rules, on banks that
hold token ids (recorded since that module; older banks are refused by name). Per rule and per
half of the problems (``srca.eval.bank.half`` with ``--split-salt``):

* of the samples cut at the limit: the share the rule stops, and where;
* of the samples that finished with an answer: the share it stops (false stops), and how many of
  those answers were right;
* tokens saved, as a share of all the bank's tokens (every sample run whole, as majority does);
* majority@n over the first ``--n`` samples of each problem with the stopped samples' votes
  removed, against the plain vote, paired (problems won and lost).

``--write-bank DIR --rule JSON`` writes the bank as the rule would have left it (a stopped sample
keeps its first ``p`` tokens, the steps that ended by then with their probes, no answer, finish
``length``), for ``bank_replay.py`` to replay srca's waves and votes on it. The online search
checks once, at ``loop_after`` tokens (``SearchConfig.loop_share``, :func:`~srca.repetition.rule_for`):
``--rule '{"share": S, "start": A, "every": 1024}'`` is that rule.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from functools import lru_cache

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from srca.eval.bank import bank_files, half, pack, read_bank, replay_majority, unpack, unpack_ids  # noqa: E402
from srca.eval.grading import grade  # noqa: E402
from srca.methods.paths import CUT  # noqa: E402
from srca.repetition import LoopRule, loop_at  # noqa: E402


@lru_cache(maxsize=None)
def _grade(ans: str | None, gold: str) -> bool:
    return ans is not None and grade(ans, gold)


def check_ids(lines: list[dict]) -> None:
    missing = sum(1 for ln in lines for s in ln["samples"] if "ids" not in s)
    if missing:
        raise ValueError(f"{missing} bank samples hold no token ids (a bank recorded before "
                         f"srca.repetition): record a new one (benchmarks/gpu_study.py)")


def stops(lines: list[dict], rule: LoopRule) -> list[list[int | None]]:
    """Per problem, per sample: where ``rule`` stops it (None: it runs to its end)."""
    out = []
    for ln in lines:
        row = []
        for s in ln["samples"]:
            if "_ids" not in s:
                s["_ids"] = unpack_ids(s["ids"])
            p = loop_at(s["_ids"], rule)
            row.append(p if p is not None and p < s["tokens"] else None)
        out.append(row)
    return out


def cut_sample(s: dict, p: int) -> dict:
    """A bank sample as a stop after ``p`` tokens leaves it: the steps that ended before ``p``
    with their probes, then one step cut at ``p`` with no probe (as srca's online loop stop,
    ``SearchConfig.loop_share``, leaves a lineage: no probe, so no checkpoint ballot where the
    search probes only at the cut)."""
    t = {k: v for k, v in s.items() if not k.startswith("_")}
    steps, done = [], 0
    for st in s["steps"]:
        if done + st[0] >= p:
            break
        steps.append(list(st))
        done += st[0]
    steps.append([p - done, CUT, None, 0])
    t.update(answer=None, tokens=p, finish="length", steps=steps,
             lp=pack(unpack(s.get("lp"))[:p]), tc=pack(unpack(s.get("tc"))[:p]) if s.get("tc") else "")
    if "vf" in t:
        t["vf"] = None
    return t


def score(lines: list[dict], at: list[list[int | None]], n: int, salt: str) -> dict:
    out = {}
    for part in ("all", "tune", "test"):
        idx = [i for i, ln in enumerate(lines) if part == "all" or half(ln["unique_id"], salt) == part]
        cut = stopped_cut = fin = false_stops = false_right = 0
        cut_at: list[int] = []
        tokens = saved = 0
        won = lost = plain_right = kept_right = 0
        for i in idx:
            ln = lines[i]
            for s, p in zip(ln["samples"], at[i]):
                tokens += s["tokens"]
                if p is not None:
                    saved += s["tokens"] - p
                if s["finish"] == "length":
                    cut += 1
                    if p is not None:
                        stopped_cut += 1
                        cut_at.append(p)
                elif s["answer"] is not None:
                    fin += 1
                    if p is not None:
                        false_stops += 1
                        false_right += _grade(s["answer"], ln["answer"])
            first = list(range(min(n, len(ln["samples"]))))
            plain = _grade(replay_majority(ln, first).answer, ln["answer"])
            kept_line = {**ln, "samples": [s if p is None else {**s, "answer": None}
                                           for s, p in zip(ln["samples"], at[i])]}
            kept = _grade(replay_majority(kept_line, first).answer, ln["answer"])
            plain_right += plain
            kept_right += kept
            won += kept and not plain
            lost += plain and not kept
        m = max(1, len(idx))
        out[part] = {
            "problems": len(idx),
            "cut_samples": cut, "cut_stopped_share": round(stopped_cut / max(1, cut), 4),
            "cut_stopped_at_mean": round(sum(cut_at) / len(cut_at), 1) if cut_at else None,
            "finished_samples": fin, "false_stops": false_stops, "false_stops_right": false_right,
            "tokens_saved_share": round(saved / max(1, tokens), 4),
            f"majority@{n}": round(plain_right / m, 4), f"majority@{n}_with_stops": round(kept_right / m, 4),
            "won": won, "lost": lost,
        }
    return out


GRID = [{"share": sh, "start": st} for st in (256, 384, 512) for sh in (0.5, 0.6, 0.7, 0.8, 0.9)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank", help="bank folder (chunk_*.jsonl.gz) or a file")
    ap.add_argument("--rule", action="append", default=[], help="LoopRule fields as JSON (repeatable; default: "
                    "a grid of share 0.5-0.9 x start 256, 384, 512 with n 8, window 128, every 32)")
    ap.add_argument("--n", type=int, default=16, help="majority@n over each problem's first n samples")
    ap.add_argument("--split-salt", default=":b", help="the halves: srca.eval.bank.half(unique_id, salt)")
    ap.add_argument("--write-bank", default=None, help="write the bank as the one --rule leaves it to this folder")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    try:
        rules = [LoopRule(**json.loads(r)) for r in a.rule] or [LoopRule(**g) for g in GRID]
    except (ValueError, TypeError) as e:  # JSON, unknown fields, or a field LoopRule refuses
        ap.error(f"--rule: {e}")
    if a.write_bank and len(rules) != 1:
        ap.error("--write-bank: give exactly one --rule")
    if a.n < 1:
        ap.error("--n: an integer >= 1")
    files = bank_files(a.bank)
    if not files or not all(os.path.exists(f) for f in files):
        ap.error(f"bank: no chunk_*.jsonl(.gz) at {a.bank}")
    lines = read_bank(files)
    try:
        check_ids(lines)
    except ValueError as e:
        print(f"loop_rules.py: {e}", file=sys.stderr)
        sys.exit(1)
    rows = []
    print("| rule | half | cut stopped | at | false stops (right) | tokens saved | majority | with stops | won / lost |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for rule in rules:
        at = stops(lines, rule)
        sc = score(lines, at, a.n, a.split_salt)
        rows.append({"rule": rule.__dict__, "halves": sc})
        for part, r in sc.items():
            print(f"| share {rule.share} from {rule.start} | {part} | {r['cut_stopped_share']:.1%} of "
                  f"{r['cut_samples']} | {r['cut_stopped_at_mean']} | {r['false_stops']} of {r['finished_samples']}"
                  f" ({r['false_stops_right']}) | {r['tokens_saved_share']:.1%} | {r[f'majority@{a.n}']:.1%} | "
                  f"{r[f'majority@{a.n}_with_stops']:.1%} | +{r['won']} / -{r['lost']} |")
        if a.write_bank:
            os.makedirs(a.write_bank, exist_ok=True)
            with gzip.open(os.path.join(a.write_bank, "chunk_000.jsonl.gz"), "wt") as f:
                for ln, row in zip(lines, at):
                    samples = [cut_sample(s, p) if p is not None else {k: v for k, v in s.items() if not k.startswith("_")}
                               for s, p in zip(ln["samples"], row)]
                    f.write(json.dumps({**ln, "samples": samples}) + "\n")
            print(f"# wrote {a.write_bank}/chunk_000.jsonl.gz")
    if a.out:
        write_result(a.out, "loop_rules", a, rules=rows, bank_files=len(files), problems=len(lines))


if __name__ == "__main__":
    main()
