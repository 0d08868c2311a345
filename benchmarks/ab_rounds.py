"""Same-run A/B rounds on one engine: two variants of a setting, each phase run once per variant
per round, in alternating order (round r: the first variant first when r is even), then the
medians per variant and their ratios. Used by ``sampler_ab.py`` (SGLang's sampler) and by
``real_workload.py --ab-workers N1,N2`` / ``--ab-gc`` (the controller's answer workers, this
process's garbage collector frozen or not), so a setting's effect is a ratio from one run on
one machine, not a comparison across hosts.
"""
from __future__ import annotations

import json
import statistics
from typing import Any, Callable, Sequence

KEYS = ("wall_s", "gen_tok_s", "per_sample")


def orders(variants: Sequence[str], rounds: int) -> list[str]:
    """[a, b, b, a, a, b, ...]: each round runs both, the first variant first in even rounds."""
    a, b = variants
    out: list[str] = []
    for r in range(rounds):
        out += [a, b] if r % 2 == 0 else [b, a]
    return out


def summarize(runs: list[dict], variants: Sequence[str], key: str = "variant") -> dict:
    """Per variant the medians of ``KEYS`` (and the accuracies as a list), then
    ``<b>_vs_<a>_wall`` and ``..._tok_s``: the second variant's median over the first's."""
    out: dict[str, Any] = {}
    for v in variants:
        rs = [r for r in runs if r[key] == v]
        out[v] = {k: round(statistics.median(r[k] for r in rs), 3) for k in KEYS
                  if rs and all(r.get(k) is not None for r in rs)}
        for k in ("accuracy", "loop_blocked_s", "gc2_s", "outside_engine_max_s"):
            if rs and all(k in r for r in rs):
                out[v][k] = [r[k] for r in rs]
    a, b = (out[v] for v in variants)
    if a.get("wall_s") and b.get("wall_s"):
        out[f"{variants[1]}_vs_{variants[0]}_wall"] = round(b["wall_s"] / a["wall_s"], 3)
        out[f"{variants[1]}_vs_{variants[0]}_tok_s"] = round(b["gen_tok_s"] / a["gen_tok_s"], 3)
    return out


def run_rounds(phases: dict[str, Callable[[], dict]], variants: dict[str, Callable[[], None]], rounds: int,
               label: str = "A/B", key: str = "variant") -> dict:
    """Each phase ``rounds`` times per variant (``variants``: name -> a callable that puts it in
    place). A phase returns a row with ``wall_s``, ``gen_tok_s``, ``generated_tokens`` and the
    ``samples`` it drew (and ``accuracy``, ``loop``, ``gc_main``, ``solve_outside_engine_s`` for
    jobs). Returns {"rounds", "order", "phases": {name: {"runs", <summary>}}}."""
    names = list(variants)
    res: dict[str, Any] = {"rounds": rounds, "order": orders(names, rounds), "phases": {}}
    for name, fn in phases.items():
        runs = []
        for v in orders(names, rounds):
            variants[v]()
            row = fn()
            keep: dict[str, Any] = {k: row.get(k) for k in ("wall_s", "gen_tok_s", "generated_tokens", "accuracy")
                                    if k in row}
            keep["per_sample"] = round(row["generated_tokens"] / max(1, row["samples"]), 1)
            if "loop" in row:
                keep["loop_blocked_s"] = row["loop"]["blocked_s"]
            if "gc_main" in row:
                keep["gc2_s"] = row["gc_main"]["gen2"]["total_s"]
            if "solve_outside_engine_s" in row:
                keep["outside_engine_max_s"] = row["solve_outside_engine_s"].get("max")
            runs.append({key: v, **keep})
            print(f"# {label} {name} [{v}]: {json.dumps(keep)}", flush=True)
        res["phases"][name] = {"runs": runs, **summarize(runs, names, key)}
    return res


def print_table(res: dict, variants: Sequence[str], title: str) -> None:
    a, b = variants
    print(f"\n{title} (same engine; medians over the runs; ratio = {b} / {a})")
    hdr = ["phase", f"{a} wall s", f"{b} wall s", "wall ratio", "tok/s ratio", f"tokens/sample {a} / {b}"]
    lines = [hdr]
    for name, p in res.get("phases", {}).items():
        pa, pb = p[a], p[b]
        lines.append([name, str(pa.get("wall_s")), str(pb.get("wall_s")), str(p.get(f"{b}_vs_{a}_wall")),
                      str(p.get(f"{b}_vs_{a}_tok_s")), f"{pa.get('per_sample')} / {pb.get('per_sample')}"])
    w = [max(len(x[i]) for x in lines) for i in range(len(hdr))]
    for x in lines:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(x)))
