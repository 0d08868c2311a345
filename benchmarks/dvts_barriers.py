"""DVTS with and without step barriers between its subtrees, on a latency model (CPU, no model).

DVTS grows ``n / expand`` subtrees; each step of a subtree is one request of ``expand`` samples.
The lockstep version (``LOCKSTEP`` below, the code before the subtrees ran as tasks of their own)
sends every live subtree's step in one engine call, so each step waits for the slowest subtree;
``srca.methods.tree.run_dvts`` lets every subtree step on its own. The engine here is the
scripted one with a latency model: a call returns after ``--ms-per-token`` times the longest
sample in it (a GPU batch returns when its longest row is done), steps of random lengths
(``--min-step``..``--max-step`` tokens, fixed by the seed), paths of 3 to 8 steps. Every solve
of ``--problems`` runs at once. Same searches, same seeds: the two variants differ only in
when they send.

    python benchmarks/dvts_barriers.py          # 64 problems, n = 16, expand 4

Writes ``results/dvts_barriers_cpu.json`` and prints the wall and solve latencies as ratios.
What the GPU makes of it (batch occupancy, SGLang's scheduling) is not modelled here.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from _common import write_result  # noqa: E402


async def LOCKSTEP(ctx) -> None:
    """DVTS as it was: all live subtrees step together, in one engine call per step (seeded as
    the independent version is, so both draw the same samples)."""
    from srca.methods.select import mark_kept, topk_select

    c = ctx.config
    width, expand = c.tree_shape
    active = [(t, ctx.root) for t in range(width)]
    ctx.stop_reason = "max_steps"
    for d in range(c.max_steps):
        res = await ctx.generate([ctx.step_request(node, expand, salt=t, index=d) for t, node in active])
        groups = [[ctx.add_step(node, r) for r in rs] for (_, node), rs in zip(active, res)]
        await ctx.score([k for ks in groups for k in ks])
        nxt = []
        for (t, _), ks in zip(active, groups):
            (best,) = topk_select(ks, 1)
            mark_kept([best])
            if best.finished:
                ctx.add_candidate(best, "path")
            elif not best.truncated:
                nxt.append((t, best))
        if not nxt:
            ctx.stop_reason = "finished"
            return
        active = nxt


def make_engine(ms_per_token: float, lo: int, hi: int):
    from srca.engines.fake import ScriptedEngine

    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        rnd = random.Random(f"{req.seed}:{i}:{len(body)}")
        steps_done = body.count("\n\n")
        if steps_done + 1 >= 3 + rnd.randrange(6):
            return f"so \\boxed{{{rnd.randrange(3)}}}", -0.1 - rnd.random()
        return "x" * rnd.randrange(lo, hi + 1) + "\n\n", -0.1 - rnd.random()

    class Timed(ScriptedEngine):
        async def generate(self, requests):
            out = await super().generate(requests)
            longest = max((r.generated_tokens for rs in out for r in rs), default=0)
            await asyncio.sleep(longest * ms_per_token / 1000)
            return out

    return Timed(script)


async def run_variant(name: str, a) -> dict:
    import srca.methods.tree as tree
    from srca import SearchConfig, Solver

    saved = tree.run_dvts
    if name == "lockstep":
        tree.run_dvts = LOCKSTEP
    try:
        eng = make_engine(a.ms_per_token, a.min_step, a.max_step)
        solver = Solver(engine=eng, answer_workers=0)
        cfg = SearchConfig(method="dvts", n=a.n, expand=a.expand, max_steps=12, max_step_tokens=a.max_step + 8,
                           max_new_tokens=4096)
        lat: list[float] = []

        async def one(k: int):
            t = time.perf_counter()
            sol = await solver.asolve(f"problem {k}", cfg.replace(seed=k))
            lat.append(time.perf_counter() - t)
            return sol

        t = time.perf_counter()
        sols = await asyncio.gather(*(one(k) for k in range(a.problems)))
        wall = time.perf_counter() - t
    finally:
        tree.run_dvts = saved
    return {"variant": name, "wall_s": round(wall, 3), "solve_s_mean": round(statistics.mean(lat), 3),
            "solve_s_max": round(max(lat), 3), "engine_calls": len(eng.calls),
            "answers": [s.answer for s in sols], "tokens": sum(s.usage.generated_tokens for s in sols)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--expand", type=int, default=4)
    ap.add_argument("--ms-per-token", type=float, default=0.5)
    ap.add_argument("--min-step", type=int, default=20)
    ap.add_argument("--max-step", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "dvts_barriers_cpu.json"))
    a = ap.parse_args()
    rows = [asyncio.run(run_variant(v, a)) for v in ("lockstep", "independent")]
    same = rows[0]["answers"] == rows[1]["answers"]
    base = rows[0]
    for r in rows:
        r["x_lockstep_wall"] = round(r["wall_s"] / base["wall_s"], 3)
        r["x_lockstep_solve_mean"] = round(r["solve_s_mean"] / base["solve_s_mean"], 3)
    print(f"{a.problems} DVTS solves at once, n = {a.n}, expand {a.expand}, {a.ms_per_token} ms per token of "
          f"a call's longest sample; same answers in both: {same}")
    print("| variant | wall s | x lockstep | mean solve s | x lockstep | max solve s | engine calls | tokens |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['variant']} | {r['wall_s']} | {r['x_lockstep_wall']} | {r['solve_s_mean']} | "
              f"{r['x_lockstep_solve_mean']} | {r['solve_s_max']} | {r['engine_calls']} | {r['tokens']} |")
    for r in rows:
        r.pop("answers")
    write_result(a.out, "dvts_barriers", a, rows=rows, same_answers=same)


if __name__ == "__main__":
    main()
