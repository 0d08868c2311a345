"""DVTS's subtrees run independently: none waits at a step for another, and the result does
not depend on which engine call returns first (seeds keyed by subtree and depth)."""
import asyncio
import random

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.seeds import request_seed

CFG = SearchConfig(method="dvts", n=8, expand=4, max_steps=6, seed=5)  # 2 subtrees of 4 children each


def _subtree(prompt: str, req) -> int:
    """The subtree a request belongs to: its first step names it ("T<t>")."""
    body = prompt.split("<assistant>", 1)[1]
    if body.startswith("T"):
        return int(body[1:].split(" ", 1)[0])
    return req.seed - request_seed(CFG.seed, 0, 0)  # the first step: salted by the subtree


def script(prompt, req, i):
    """Subtree t writes ``2 + t`` steps then boxes ``7 + t``; child i of a step scores -0.1 * (i + 1)."""
    t = _subtree(prompt, req)
    body = prompt.split("<assistant>", 1)[1]
    k = body.count("\n\n")
    if k + 1 < 2 + t:
        text = (f"T{t} " if not body else "") + f"s{k} c{i}\n\n"
    else:
        text = f"so \\boxed{{{7 + t}}}"
    return text, -0.1 * (i + 1)


class Gated(ScriptedEngine):
    """Holds every call of subtree 0 until ``gate`` opens; jitters the others."""

    def __init__(self, jitter_seed=None):
        super().__init__(script)
        self.gate = asyncio.Event()
        self.rnd = random.Random(jitter_seed) if jitter_seed is not None else None
        self.order: list[int] = []

    async def generate(self, requests):
        ts = {_subtree(self.decode(r.input_ids) if r.input_ids else r.prompt, r) for r in requests}
        if self.rnd is None and 0 in ts:
            await self.gate.wait()
        if self.rnd is not None:
            await asyncio.sleep(self.rnd.random() * 0.05)  # above a loaded CI machine's own noise
        out = await super().generate(requests)
        self.order.extend(sorted(ts))
        return out


def test_a_subtree_never_waits_for_another():
    eng = Gated()
    solver = Solver(engine=eng)

    async def go():
        task = asyncio.ensure_future(solver.asolve("q", CFG))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if eng.order.count(1) == 3:  # subtree 1: two steps and its box, all answered
                break
        assert eng.order == [1, 1, 1] and not task.done()  # while subtree 0 is still held
        eng.gate.set()
        return await task

    sol = asyncio.run(go())
    assert eng.order == [1, 1, 1, 0, 0]
    assert sorted(c.answer for c in sol.candidates) == ["7", "8"] and sol.stop_reason == "finished"
    assert [c.answer for c in sol.candidates] == ["7", "8"]  # the pool in subtree order


def test_the_result_does_not_depend_on_which_call_returns_first():
    runs = []
    for jitter in (1, 2, 3):
        eng = Gated(jitter_seed=jitter)
        sol = Solver(engine=eng).solve("q", CFG)
        runs.append((eng.order, sol.answer, [(c.answer, c.score) for c in sol.candidates],
                     sorted((t.depth, t.text) for t in sol.trace)))
    assert len({tuple(r[0]) for r in runs}) > 1  # the calls did come back in other orders
    assert all(r[1:] == runs[0][1:] for r in runs)


def test_engine_time_counts_concurrent_calls_once():
    """``timings["engine_s"]`` is the wall time with any of the solve's calls in flight: DVTS's
    subtrees call the engine at the same time, and a sum of their calls' times would exceed the
    solve's own wall (the real-workload benchmark once showed DVTS solves negative time outside
    the engine)."""
    eng = ScriptedEngine(script, latency_s=0.1)
    sol = Solver(engine=eng).solve("q", CFG)
    t = sol.timings
    # subtree 1 makes 3 sequential calls (2 steps, then the boxed answer), each waiting out the
    # latency, while subtree 0's 2 calls overlap them: summed, the calls' times would be 5
    # latencies, more than the solve's wall of about 3
    assert 0.3 <= t["engine_s"] <= t["total_s"]


def test_tree_steps_may_wait_for_a_batch_and_nothing_else_does():
    """GenRequest.may_wait: a tree search's steps (DVTS, beam) may be held by an engine's submit
    window to go out with other solves'; majority's samples and srca's lineages and probes go at
    once (the in-process SGLang engine holds only may_wait requests)."""
    from srca.engines.fake import ScriptedEngine as Plain

    def flags(method: str, **kw) -> set[bool]:
        eng = Plain(script)
        Solver(engine=eng).solve("q", SearchConfig(method=method, seed=5, **kw))
        return {r.may_wait for call in eng.calls for r in call}

    assert flags("dvts", n=8, expand=4, max_steps=6) == {True}
    assert flags("beam", n=4, expand=2, max_steps=6) == {True}
    assert flags("majority", n=4) == {False}
    assert flags("srca", n=4, max_steps=6) == {False}
