"""The controller's garbage collections under a step-by-step search, at Python's thresholds and
at raised ones.

    python benchmarks/gc_thresholds.py --out benchmarks/results/gc_thresholds_cpu.json

On one H200 (ninth real-workload run) DVTS@16 over 200 problems spent 7.9 s of its 107 s in 25
full collections in the controller's process, which also runs SGLang's tokenizer manager
(every thread waits meanwhile). SGLang can raise that process's thresholds
(``ServerArgs.gc_threshold``, ``--sglang-arg gc_threshold=[...]`` in ``real_workload.py``). This
measures the controller's own share on the CPU: ``--method`` (DVTS by default) at n = 16 over
``--problems`` solves at once on the scripted engine (no model: steps of fixed text, an answer
after ``--steps`` steps), in rounds that alternate the thresholds, with every collection timed
(``gc.callbacks``). Writes JSON and prints a table.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _common import write_result  # noqa: E402


class Timer:
    """Counts and times collections per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.t0 = 0.0
        self.rows = {g: [0, 0.0, 0.0] for g in range(3)}

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.t0 = time.perf_counter()
            return
        d = time.perf_counter() - self.t0
        r = self.rows[info["generation"]]
        r[0] += 1
        r[1] += d
        r[2] = max(r[2], d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="dvts")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--raised", default="50000,20,100", help="the thresholds compared with Python's")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from srca import Solver
    from srca.engines.fake import ScriptedEngine
    from srca.eval import config_for

    def script(prompt, req, i):
        k = prompt.count("\n\n")
        if k >= a.steps:
            return f"So the answer is \\boxed{{{(req.seed or 0) % 3}}}.", -0.2
        return "We compute the next quantity carefully and simplify the expression to a value " * 2 + f"{k}.\n\n", -0.3

    cfg = config_for(a.method, 16)
    python = gc.get_threshold()
    raised = tuple(int(x) for x in a.raised.split(","))
    gc.freeze()  # the imports, as SGLangEngine(freeze_gc=True) leaves them

    async def solve_all(solver) -> None:
        await asyncio.gather(*[solver.asolve(f"Problem {k}: compute.", config=cfg) for k in range(a.problems)])

    def one(thresholds) -> dict:
        solver = Solver(engine=ScriptedEngine(script), answer_workers=0)
        gc.collect()
        gc.set_threshold(*thresholds)
        timer = Timer()
        gc.callbacks.append(timer)
        t = time.thread_time()
        try:
            asyncio.run(solve_all(solver))
        finally:
            gc.callbacks.remove(timer)
            gc.set_threshold(*python)
        cpu = time.thread_time() - t
        return {"cpu_s": cpu, "gc_s": sum(r[1] for r in timer.rows.values()),
                "full": timer.rows[2][0], "full_s": timer.rows[2][1], "longest_s": max(r[2] for r in timer.rows.values())}

    one(python)  # warm-up
    runs: dict[str, list[dict]] = {"python": [], "raised": []}
    for _ in range(a.rounds):
        runs["python"].append(one(python))
        runs["raised"].append(one(raised))
    table = []
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        table.append({"thresholds": list(python if name == "python" else raised), **{k: round(v, 3) for k, v in med.items()}})
    print(f"\n| thresholds ({a.method}@16, {a.problems} solves, median of {a.rounds}) | controller CPU s | in collections s "
          "| full collections (s) | longest pause s |\n| --- | --- | --- | --- | --- |")
    for t in table:
        print(f"| {tuple(t['thresholds'])} | {t['cpu_s']} | {t['gc_s']} | {t['full']:.0f} ({t['full_s']}) | {t['longest_s']} |")
    write_result(a.out or os.path.join(os.path.dirname(__file__), "results", "gc_thresholds_cpu.json"),
                 "gc_thresholds", a, rows=table)


if __name__ == "__main__":
    main()
