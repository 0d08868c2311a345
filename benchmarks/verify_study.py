"""Self-verification on a sample bank: is P(yes) worth a vote weight, and how much of it?

    python benchmarks/verify_study.py BANK_DIR --out verify_study.json.gz [--queue QUEUE.jsonl]

The bank must hold verification probes (``vf``, recorded by ``benchmarks/gpu_study.py``;
:mod:`srca.methods.verify`). Prints (1) how well the probe's log-odds separate right from wrong
finished samples (AUROC, pooled and within problems), (2) a fixed grid of lineage policies (the
default SRCA with ``verify`` in 0..8, and with a plain or unfiltered vote) replayed against
majority voting on the same samples at n = 16, per half of the data, and (3) the one policy
picked on the ``tune`` half alone (the most accurate of those spending no more tokens than
majority; ties to fewer tokens, then the smaller weight): the ``test`` half is the report. With ``--queue`` it appends eval jobs for the pick and majority@16 on all
problems (``gpu_study.py`` reads that queue), so the pick is confirmed by independent samples
in the same GPU session. Policies run in parallel processes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402
from bank_replay import compare, score, verify_signal  # noqa: E402
from srca.config import SearchConfig  # noqa: E402
from srca.eval.bank import Policy, bank_files, half, read_bank  # noqa: E402

# fixed in advance: (name, Policy fields over the default)
GRID = [(f"verify{v:g}", {"verify": v}) for v in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)]
GRID += [(f"keep100-verify{v:g}", {"verify": v, "keep_top": 1.0}) for v in (1.0, 2.0, 4.0)]
GRID += [(f"plain-verify{v:g}", {"verify": v, "keep_top": 1.0, "confidence": "none"}) for v in (1.0, 2.0, 4.0)]
GRID += [(f"nowaves-verify{v:g}", {"verify": v, "waves": 1}) for v in (0.0, 1.0, 2.0)]

_LINES: dict[str, list[dict]] = {}


def _init(files: list[str]) -> None:
    lines = read_bank(files)
    _LINES.update({h: [ln for ln in lines if half(ln["unique_id"]) == h] for h in ("tune", "test")})
    _LINES["all"] = lines


def _run(job: tuple[str, str, dict | None, int]) -> tuple[str, str, dict]:
    hname, name, fields, n = job
    pol = None if fields is None else dataclasses.replace(Policy.from_config(SearchConfig(n=n)), **fields)
    return hname, name, score(_LINES[hname], pol, n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--out", default=None)
    ap.add_argument("--queue", default=None, help="append eval jobs for the pick and majority@n to this queue file")
    a = ap.parse_args()
    files = bank_files(a.bank)
    _init(files)
    if not all("vf" in s for ln in _LINES["all"] for s in ln["samples"]):
        sys.exit("verify_study: the bank holds no verification probes (vf); record it with gpu_study.py")
    result: dict = {"bank": files, "problems": len(_LINES["all"]), "n": a.n,
                    "signal": {h: verify_signal(_LINES[h]) for h in ("tune", "test", "all")}, "rows": []}
    for h, r in result["signal"].items():
        print(f"signal ({h}): " + ", ".join(f"{k} {round(v, 3) if isinstance(v, float) else v}" for k, v in r.items()))
    jobs = [(h, name, f, a.n) for h in ("tune", "test", "all") for name, f in [("majority", None)] + GRID]
    with ProcessPoolExecutor(a.workers, initializer=_init, initargs=(files,)) as ex:
        got = {(h, name): r for h, name, r in ex.map(_run, jobs)}
    # the pick: the most accurate on the tune half among those spending no more tokens than
    # majority there; ties to fewer tokens, then the smaller weight
    t_maj = got[("tune", "majority")]["tokens"]
    ok = [g for g in GRID if got[("tune", g[0])]["tokens"] <= t_maj] or GRID
    pick = max(ok, key=lambda g: (round(got[("tune", g[0])]["accuracy"], 9), -got[("tune", g[0])]["tokens"],
                                  -g[1]["verify"]))
    result["pick"] = {"name": pick[0], "fields": pick[1], "picked_on": "tune"}
    print(f"\nn = {a.n}; picked on the tune half: {pick[0]} {pick[1]}\n")
    print("| half | policy | accuracy % | 95% CI | tokens | x majority tokens | vs majority |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for h in ("tune", "test", "all"):
        maj = got[(h, "majority")]
        for name, f in [("majority", None)] + GRID:
            r = compare(got[(h, name)], maj)
            mark = " **(pick)**" if name == pick[0] else ""
            print(f"| {h} | {name}{mark} | {r['accuracy']:.1f} | {r['ci95'][0]}-{r['ci95'][1]} | {r['tokens']:.0f} "
                  f"| {r['token_ratio']} | {r['vs_majority']} |")
            result["rows"].append({"half": h, "policy": name, "fields": f, **r})
    if a.queue:
        fields = dict(pick[1])
        os.makedirs(os.path.dirname(a.queue) or ".", exist_ok=True)
        with open(a.queue, "a") as q:
            q.write(json.dumps({"name": f"srca_{pick[0]}_n{a.n}", "method": "srca", "n": a.n, "overrides": fields}) + "\n")
            q.write(json.dumps({"name": f"majority_n{a.n}", "method": "majority", "n": a.n}) + "\n")
        print(f"queued srca {fields} and majority at n = {a.n} in {a.queue}")
    if a.out:
        write_result(a.out, "verify_study", a, **result)


if __name__ == "__main__":
    main()
