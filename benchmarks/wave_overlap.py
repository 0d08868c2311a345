"""Overlapping waves against waves one after another, on a real model: one srca solve's latency
and generated tokens, and whether the answers agree.

    python benchmarks/wave_overlap.py --data ../shared/data/gsm8k_test.jsonl --model qwen2.5-coder-0.5b \
        --problems 6 --max-new-tokens 256 --overlap 64

The default srca starts its lineages in waves and stops once a wave's vote is clear; each wave
waits for the one before to end. With ``wave_overlap=D`` the next wave starts once the current
one has run D tokens, and a clear vote aborts the waves it did not need (their tokens counted).
This runs both, one solve at a time (latency is the point), on the embedded engine with a real
small model (``--model``, default smollm2-135m), the same problems and seeds, in rounds that
alternate the two. Writes JSON and prints a table: wall per solve, generated tokens per solve,
their ratios, and each one's accuracy (the two draw different samples: a wave's rest continues
under its own seed, so their answers differ as two runs of one search do).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="JSONL with a 'question' or 'problem' field (GSM8K, MATH)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--overlap", type=int, default=48, help="tokens of a wave before the next starts")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from srca import SearchConfig, Solver

    from srca.eval.data import gsm8k_answer
    from srca.eval.grading import grade

    rows = [json.loads(x) for x in open(a.data) if x.strip()][: a.problems]
    texts = [r.get("question") or r.get("problem") for r in rows]
    golds = [gsm8k_answer(r["answer"]) if "question" in r else r["answer"] for r in rows]
    solver = Solver(model=a.model, threads=os.cpu_count(), answer_workers=0)
    base = dict(method="srca", n=a.n, max_new_tokens=a.max_new_tokens, seed=0)
    variants = {"waves": SearchConfig(**base), f"overlap {a.overlap}": SearchConfig(**base, wave_overlap=a.overlap)}
    solver.solve(texts[0], variants["waves"])  # warm-up
    per: dict[str, dict[str, list]] = {k: {"wall": [], "tokens": [], "answers": []} for k in variants}
    for _ in range(a.rounds):
        for i, t in enumerate(texts):
            for name, cfg in variants.items():
                t0 = time.perf_counter()
                sol = solver.solve(t, cfg)
                per[name]["wall"].append(time.perf_counter() - t0)
                per[name]["tokens"].append(sol.usage.generated_tokens)
                per[name]["answers"].append(sol.answer)
    solver.close()
    names = list(variants)
    b = per[names[0]]
    table = []
    for name in names:
        v = per[name]
        table.append({"variant": name, "wall_s": round(statistics.mean(v["wall"]), 2),
                      "tokens": round(statistics.mean(v["tokens"]), 1),
                      "x_wall": round(sum(v["wall"]) / sum(b["wall"]), 3),
                      "x_tokens": round(sum(v["tokens"]) / max(1, sum(b["tokens"])), 3),
                      "accuracy": round(sum(grade(x, golds[i % len(golds)]) for i, x in enumerate(v["answers"]))
                                        / len(v["answers"]), 3)})
    print(f"\n| variant (srca, n = {a.n}, {len(texts)} problems x {a.rounds}, {a.model}) | wall per solve s "
          "| tokens per solve | x wall | x tokens | accuracy |\n| --- | --- | --- | --- | --- | --- |")
    for t in table:
        print(f"| {t['variant']} | {t['wall_s']} | {t['tokens']} | {t['x_wall']} | {t['x_tokens']} | {t['accuracy']} |")
    write_result(a.out or os.path.join(os.path.dirname(__file__), "results", "wave_overlap_cpu.json"),
                 "wave_overlap", a, rows=table, per_solve=per)


if __name__ == "__main__":
    main()
