"""CPU cost of the search controller itself: the engine_fanout workload against an engine that
answers at once, so every second measured is Python in the one process that drives the search.

Why: with data parallelism the GPUs get faster together, the controller does not; at dp=4 on a
4x H200 host the whole 128-problem run took 6.6 s in process (benchmarks/README.md), so a
controller that needs seconds of CPU per run caps the speed-up. This finds how many.

The instant engine builds each answer the way SGLang reports it (``output_ids``, ``text``,
``meta_info`` with token logprobs) and maps it with the SGLang engines' own ``to_result``
(stop handling included), so the per-result work of :class:`SGLangEngine` / :class:`SGLangServerEngine`
is counted; tokens are real Qwen2.5 tokenizer ids of plain words (their text precomputed, as SGLang's
detokenizer runs in another process). Steps end at length (the step delimiter never matches),
probes answer a small integer, as in ``engine_fanout.py``.

    python benchmarks/controller_overhead.py [--problems 128] [--profile 25]

Writes JSON (``--out``) and prints the wall/CPU seconds per run, per solve and per engine call, and
with ``--profile N`` the N functions with the most cumulative time.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import write_result  # noqa: E402
from engine_fanout import NEVER, problems  # noqa: E402

WORDS = ("so we have the value of x is then and add multiply both sides by two three four five "
         "equation square root sum product integer gives").split()


class InstantEngine:
    """An Engine that answers at once (see module docstring)."""

    def __init__(self, tokenizer, seed: int = 0) -> None:
        from srca.engines.base import EngineInfo

        self.tok = tokenizer
        self.info = EngineInfo(name="instant", model="instant (Qwen2.5 tokenizer)")
        self.rng = random.Random(seed)
        self.pool = sorted({t for w in WORDS for t in tokenizer.encode(" " + w, add_special_tokens=False)})
        self.piece = {t: tokenizer.decode([t]) for t in self.pool}
        self.answers = {k: tokenizer.encode(f"{k}}}.", add_special_tokens=False) for k in range(8)}
        self.bank: dict[int, list[tuple[list[int], str]]] = {}  # length -> 64 random outputs (cheap to serve)
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict]) -> str:
        from srca.engines.chat_template import apply_chat_template

        return apply_chat_template(self.tok, messages)

    def _out(self, req) -> dict:
        if req.temperature == 0:  # a checkpoint probe: a short answer
            ids = self.answers[self.rng.randrange(8)][: req.max_new_tokens]
            text = self.tok.decode(ids)
        else:
            bank = self.bank.get(req.max_new_tokens)
            if bank is None:
                outs = [[self.rng.choice(self.pool) for _ in range(req.max_new_tokens)] for _ in range(64)]
                bank = self.bank[req.max_new_tokens] = [(o, "".join(self.piece[t] for t in o)) for o in outs]
            ids, text = self.rng.choice(bank)
            ids = list(ids)
        meta = {"finish_reason": {"type": "length", "length": len(ids)}, "prompt_tokens": len(req.input_ids or ()),
                "cached_tokens": max(0, len(req.input_ids or ()) - 64), "completion_tokens": len(ids)}
        if req.logprobs:
            meta["output_token_logprobs"] = [[-0.5, t, None] for t in ids]
        return {"text": text, "output_ids": ids, "meta_info": meta}

    async def generate(self, requests):
        from srca.engines.sglang_common import to_result

        self.calls += 1
        await asyncio.sleep(0)  # a real engine yields; let other solves run
        return [[to_result(self._out(r), r, decode=self.decode) for _ in range(r.n)] for r in requests]

    async def close(self) -> None:
        return None


def run(a, eng, profile: bool):
    from srca import SearchConfig, Solver

    cfg = SearchConfig(method=a.method, n=a.beams * a.expand, beam_width=a.beams, expand=a.expand, max_steps=a.steps,
                       max_step_tokens=a.step_tokens, probe_max_tokens=a.probe_tokens, step_delimiter=NEVER,
                       max_new_tokens=a.steps * a.step_tokens, checkpoints=True, temperature=0.8, top_p=1.0)
    solver = Solver(engine=eng, config=cfg)
    probs = problems(a.problems, a.problem_words)
    solver.solve("warm up: 1+1?", n=2, beam_width=1, expand=2, max_steps=1)  # imports, math-verify
    eng.calls = 0
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    sols = asyncio.run(solver.asolve_many(probs, concurrency=a.problems))
    if prof:
        prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(sols) == a.problems
    return wall, cpu, eng.calls, prof


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=128)
    ap.add_argument("--problem-words", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--expand", type=int, default=4)
    ap.add_argument("--step-tokens", type=int, default=64)
    ap.add_argument("--probe-tokens", type=int, default=8)
    ap.add_argument("--method", default="srca")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokenizer", default="qwen2.5-coder-0.5b", help="model name or folder whose tokenizer to use")
    ap.add_argument("--profile", type=int, default=0, help="print the top N functions of one profiled run")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "controller_overhead.json"))
    a = ap.parse_args()

    from transformers import AutoTokenizer

    from srca.models import resolve_model

    tok = AutoTokenizer.from_pretrained(str(resolve_model(a.tokenizer)))
    eng = InstantEngine(tok)
    runs = []
    for _ in range(a.repeats):
        wall, cpu, calls, _ = run(a, eng, profile=False)
        runs.append(dict(wall_s=round(wall, 3), cpu_s=round(cpu, 3), engine_calls=calls))
    best = min(runs, key=lambda r: r["wall_s"])
    row = dict(best, per_solve_ms=round(1000 * best["wall_s"] / a.problems, 2),
               per_call_ms=round(1000 * best["wall_s"] / max(1, best["engine_calls"]), 3))
    print(f"{a.method}: {a.problems} problems, {a.steps} steps, {a.beams}x{a.expand}, probes on; best of {a.repeats}")
    print(f"{'wall s':>8} {'cpu s':>8} {'calls':>6} {'ms/solve':>9} {'ms/call':>8}")
    print(f"{row['wall_s']:>8.3f} {row['cpu_s']:>8.3f} {row['engine_calls']:>6} {row['per_solve_ms']:>9.2f} {row['per_call_ms']:>8.3f}")
    top = None
    if a.profile:
        _, _, _, prof = run(a, eng, profile=True)
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(a.profile)
        top = s.getvalue()
        print(top)
    write_result(a.out, "controller_overhead", a, runs=runs, best=row)


if __name__ == "__main__":
    main()
