"""The controller's own CPU per solve, with the engine's work taken out: what a search costs the
event loop beside SGLang.

    python benchmarks/controller_cost.py --data ../shared/data/math500.jsonl --out benchmarks/results/controller_cost_cpu.json

On one H200 (ninth real-workload run) srca-nowaves@16 took 5.8 s of the controller's main-thread
CPU for 200 solves against majority@16's 0.8 s, most of it cutting every whole sample into the
steps the step-by-step search would have seen, and that work lands at the end of the run, when
most solves finish together. This replays the same shape on the CPU: an engine that returns
prepared samples at once (real MATH-500 reference solutions in the real Qwen2.5 tokenizer, the
embedded model's, one sentence a step, a boxed answer at the end, tail log-probabilities as
SGLang returns them), ``--problems`` solves of ``--samples`` samples for each method, in rounds
that alternate the methods. The figure is the main thread's CPU time (``time.thread_time``) per
solve; decisions run in one answer-worker process, as ``srca eval`` runs them. Writes JSON and
prints a table with each method's ratio to majority voting.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402


class PreparedEngine:
    """Returns prepared samples in turn; costs the controller nothing but the objects."""

    def __init__(self, tok, samples: list[tuple[str, list[int]]]) -> None:
        from srca.engines.base import EngineInfo

        self.info = EngineInfo(name="prepared", model="qwen2.5-tokenizer")
        self.tok, self.samples, self.i = tok, samples, 0
        try:  # decode as the engines do
            from srca.engines.hf_decode import hf_decoder

            self._decode = hf_decoder(tok)
        except ImportError:  # a checkout from before it (the "before" figures): the engines' decode then
            self._decode = lambda ids: tok.decode(list(ids), skip_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self._decode(ids)

    def chat_prompt(self, messages: list[dict]) -> str:
        return "".join(m["content"] for m in messages)

    async def close(self) -> None:
        pass

    async def generate(self, requests):
        from srca.engines.base import GenResult

        out = []
        for r in requests:
            rs = []
            for _ in range(r.n):
                text, ids = self.samples[self.i % len(self.samples)]
                self.i += 1
                ids = ids[: r.max_new_tokens]
                lp = []
                if r.logprobs:
                    lp = [-0.05 - (k % 7) * 0.01 for k in range(len(ids))]
                    if r.logprob_tail:
                        lp = [float("nan")] * max(0, len(ids) - r.logprob_tail) + lp[-r.logprob_tail:]
                rs.append(GenResult(text=text, token_ids=list(ids), finish_reason="stop", logprobs=lp,
                                    prompt_tokens=len(r.input_ids or []), generated_tokens=len(ids)))
            out.append(rs)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="MATH-500 JSONL (problem, solution)")
    ap.add_argument("--methods", default="majority,best_of_n,srca,srca-nowaves")
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from srca import Solver
    from srca.engines.local.engine import LocalEngine
    from srca.eval import config_for

    tok = LocalEngine().tokenizer
    rows = [json.loads(x) for x in open(a.data) if x.strip()][: a.problems]
    samples = []
    for k, r in enumerate(rows):
        steps = [p.strip() for p in re.split(r"(?<=[.:])\s+", r["solution"]) if p.strip()]
        text = "\n\n".join(steps) + f"\n\nSo the answer is $\\boxed{{{k % 3}}}$."
        ids = tok.encode(text, add_special_tokens=False)
        samples.append((tok.decode(ids), ids))
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    solver = Solver(engine=PreparedEngine(tok, samples), answer_workers=1)
    solver.answer_work.start(wait=True)

    async def solve_all(method: str) -> None:
        cfg = config_for(method, a.samples)
        await asyncio.gather(*[solver.asolve(r["problem"], config=cfg) for r in rows])

    for m in methods:  # warm-up: imports, the tokenizer's memo, the worker's math-verify
        asyncio.run(solve_all(m))
    per: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(a.rounds):
        for m in methods:
            t = time.thread_time()
            asyncio.run(solve_all(m))
            per[m].append((time.thread_time() - t) / len(rows) * 1e3)
    solver.answer_work.close()
    base = statistics.median(per[methods[0]])
    table = [{"method": m, "ms_per_solve": round(statistics.median(v), 2), "min": round(min(v), 2),
              "max": round(max(v), 2), "x_first": round(statistics.median(v) / base, 2)} for m, v in per.items()]
    print(f"\n| method (n = {a.samples}, {len(rows)} solves) | main-thread CPU ms per solve (median; min-max) "
          f"| x {methods[0]} |\n| --- | --- | --- |")
    for t in table:
        print(f"| {t['method']} | {t['ms_per_solve']} ({t['min']}-{t['max']}) | {t['x_first']} |")
    write_result(a.out or os.path.join(os.path.dirname(__file__), "results", "controller_cost_cpu.json"),
                 "controller_cost", a, commit=os.environ.get("SRCA_COMMIT"), rows=table,
                 mean_tokens_per_sample=round(statistics.mean(len(ids) for _, ids in samples), 1))


if __name__ == "__main__":
    main()
