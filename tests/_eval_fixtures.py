"""Shared pieces for the eval tests: a tiny benchmark and a scripted engine that makes SRCA's
checkpoints rescue one problem (no model)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from srca.engines.fake import ScriptedEngine

PROBLEMS = [
    {"unique_id": "test/algebra/1.json", "problem": "Compute 2+2.", "answer": "4", "subject": "Algebra", "level": 1},
    {"unique_id": "test/algebra/2.json", "problem": "Compute 3*3.", "answer": "9", "subject": "Algebra", "level": 2},
    {"unique_id": "test/geometry/3.json", "problem": "Name the shape.", "answer": "\\text{square}",
     "subject": "Geometry", "level": 2},
    {"unique_id": "test/geometry/4.json", "problem": "Compute 5-1.", "answer": "4", "subject": "Geometry", "level": 3},
]


def write_data(path: Path) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS), encoding="utf-8")
    return path


def script(prompt: str, req, i: int):
    """2+2: finished paths say 5, checkpoints say 4 (a CCA rescue). 3*3: everything says 9.
    Others: paths say 1, checkpoints 7. Answers vary with the sample seed, like real sampling."""
    right = "4" if "2+2" in prompt else "9" if "3*3" in prompt else "7"
    if prompt.endswith("\\boxed{"):  # a checkpoint probe: confident
        return f"{right}}}", -0.01
    path_ans = "9" if "3*3" in prompt else ("5" if "2+2" in prompt else str(1 + ((req.seed or 0) + i) % 2))
    if not req.stop:  # whole-path sampling (cot, majority, best_of_n)
        return f"Step a.\n\nStep b.\n\nThe answer is \\boxed{{{path_ans}}}.", -0.5
    steps = prompt.count("Step ")
    if steps >= 2:
        return f"Step end: \\boxed{{{path_ans}}}.", -2.0
    return f"Step {steps + 1}{'x' * (i % 2)}.\n\n", -0.3


def engine(latency_s: float = 0.0) -> ScriptedEngine:
    return ScriptedEngine(script, latency_s=latency_s)


def count_in_flight(eng, delay_s: float = 0.0, sequences: bool = False) -> dict:
    """Wrap ``eng.generate`` to count what is in flight, ``{"now", "most"}``: its calls, or with
    ``sequences`` the sequences they may decode (``n`` of each request). ``delay_s``: each call
    waits that long before the engine answers."""
    seen = {"now": 0, "most": 0}
    inner = eng.generate

    async def counting(requests):
        k = sum(r.n for r in requests) if sequences else 1
        seen["now"] += k
        seen["most"] = max(seen["most"], seen["now"])
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            return await inner(requests)
        finally:
            seen["now"] -= k

    eng.generate = counting
    return seen
