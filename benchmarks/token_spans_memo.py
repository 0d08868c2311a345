"""What the shared per-token memo of ``token_spans`` saves a best_of_n solve's controller.

    python benchmarks/token_spans_memo.py --data ../shared/data/math500.jsonl --out benchmarks/results/token_spans_memo_cpu.json

best_of_n (and srca's tree) find each finished sample's answer tokens with
:func:`srca.engines.token_spans.token_spans`, on the controller's event loop. Before the shared
memo every call decoded each token of its sample alone (one ``decode([t])`` per token per
sample); with it, each token of the vocabulary is decoded alone once per engine. This times
both over real text in the real tokenizer (the embedded Qwen2.5 model's, the 1.5B's family):
MATH-500 reference solutions as samples, 16 per problem (the same text 16 times stands for 16
samples of one problem, which share most of their tokens), in rounds that alternate the two.
Writes JSON and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from srca.engines.local.engine import LocalEngine
    from srca.engines.token_spans import shared_pieces, token_spans

    eng = LocalEngine()
    tok = eng.tokenizer
    rows = [json.loads(x) for x in open(a.data) if x.strip()][: a.problems]
    seqs = [tok.encode(r["solution"], add_special_tokens=False) for r in rows]

    class Fresh:  # the old behaviour: the same tokenizer, a memo that lives for one call
        decode = staticmethod(tok.decode)

    def per_call() -> float:
        t = time.perf_counter()
        for ids in seqs:
            for _ in range(a.samples):
                token_spans(Fresh(), ids, {})
        return time.perf_counter() - t

    def shared() -> float:
        shared_pieces(tok).clear()  # each round starts cold, as a fresh engine does
        t = time.perf_counter()
        for ids in seqs:
            for _ in range(a.samples):
                token_spans(tok, ids)
        return time.perf_counter() - t

    runs: dict[str, list[float]] = {"per_call": [], "shared": []}
    for _ in range(a.rounds):
        runs["per_call"].append(per_call())
        runs["shared"].append(shared())
    tokens = sum(len(s) for s in seqs) * a.samples
    res = {"tokenizer": type(tok).__name__, "problems": len(seqs), "samples": a.samples, "tokens": tokens,
           "rounds": a.rounds, "s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
           "median_s": {k: round(sorted(v)[len(v) // 2], 3) for k, v in runs.items()}}
    res["ratio_shared_to_per_call"] = round(res["median_s"]["shared"] / res["median_s"]["per_call"], 3)
    print(f"| memo | median s ({len(seqs)} problems x {a.samples} samples, {tokens:,} tokens) | x per call |")
    print("| --- | --- | --- |")
    for k in ("per_call", "shared"):
        print(f"| {k} | {res['median_s'][k]} | {round(res['median_s'][k] / res['median_s']['per_call'], 3)} |")
    if a.out:
        write_result(a.out, "token_spans_memo", a, **res)


if __name__ == "__main__":
    main()
