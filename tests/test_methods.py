"""Search methods on the scripted engine: probes, ACS, CCA, budgets, accounting."""
import asyncio

import pytest

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.methods import METHODS

from scripts import stepwise

CUE = "So, the answer is \\boxed{"


def solver(script, **cfg):
    eng = ScriptedEngine(script)
    return Solver(engine=eng, config=SearchConfig(**cfg)), eng


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_answers(method):
    s, _ = solver(stepwise(), method=method, n=4, max_steps=5)
    sol = s.solve("What is 3 + 4?")
    assert sol.answer == "7", (method, sol.candidates)
    assert sol.method == method and sol.usage.generated_tokens > 0 and sol.usage.engine_calls >= 1
    assert 0 < sol.confidence <= 1


def test_srca_probes_after_every_step_and_discards_the_probe():
    s, eng = solver(stepwise(), method="srca", lineages=False, n=4, max_steps=5)  # the paper's tree
    sol = s.solve("q")
    probe_batches = [b for b in eng.calls if b[0].temperature == 0.0]
    step_batches = [b for b in eng.calls if b[0].temperature > 0.0]
    assert len(step_batches) == 3 and len(probe_batches) == 2  # the 3rd step finishes every path
    for b in probe_batches:
        assert all(eng.decode(r.input_ids).endswith(CUE) for r in b)
        assert all(r.max_new_tokens == 16 for r in b)
    for b in step_batches:  # paths continue from the step, never from a cue
        assert not any("\\boxed{" in eng.decode(r.input_ids).split("<assistant>")[1] for r in b)
    probed = [t for t in sol.trace if t.checkpoint is not None]
    assert len(probed) == 2 + 4 and all(t.checkpoint == "7" for t in probed)
    assert sol.usage.probe_tokens == 6 * len("7}.")  # root -> 2 children, then 2 beams x 2


def test_cca_rescues_a_checkpoint_answer_the_paths_lost():
    # Checkpoints say 7 confidently; finished paths drift to 9 with low confidence.
    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        if body.endswith("\\boxed{"):
            return ("7}.", -0.01)
        if body.count("\n\n") >= 1:
            return ("Then \\boxed{9}", -2.0)
        return (f"Step {i}\n\n", -0.05)

    s, _ = solver(script, method="srca", lineages=False, decision="best_score", n=4)  # srca-paper
    sol = s.solve("q")
    srcs = {c.source for c in sol.candidates}
    assert srcs == {"path", "checkpoint"}
    assert sol.answer == "7" and sol.from_checkpoint
    no_cca = s.solve("q", cca=False)
    assert no_cca.answer == "9" and {c.source for c in no_cca.candidates} == {"path"}


def test_acs_selection_is_recorded_in_the_trace():
    answers = {"0": "1", "1": "1", "2": "2", "3": "1"}
    s, _ = solver(stepwise(answers_by_step=lambda k, tag: answers[tag]), method="srca", lineages=False, n=8,
                  beam_width=2, expand=4)
    sol = s.solve("q")
    kept = sorted((t for t in sol.trace if t.depth == 1 and t.kept), key=lambda t: t.selected_rank)
    assert len(kept) == 2 and {t.checkpoint for t in kept} == {"1", "2"}  # both answer groups survive
    plain = s.solve("q", acs=False)
    kept = [t for t in plain.trace if t.depth == 1 and t.kept]
    assert len(kept) == 2


def test_usage_accounting_matches_engine_results():
    seen = {"gen": 0, "prompt": 0, "cached": 0, "requests": 0, "calls": 0}

    class Counting(ScriptedEngine):
        async def generate(self, requests):
            res = await super().generate(requests)
            seen["calls"] += 1
            seen["requests"] += len(requests)
            for rs in res:
                for r in rs:
                    seen["gen"] += r.generated_tokens
                    seen["prompt"] += r.prompt_tokens
                    seen["cached"] += r.cached_tokens
            return res

    eng = Counting(stepwise())
    sol = Solver(engine=eng, config=SearchConfig(method="srca", n=4)).solve("q")
    u = sol.usage
    assert (u.generated_tokens, u.prompt_tokens, u.cached_tokens) == (seen["gen"], seen["prompt"], seen["cached"])
    assert (u.engine_calls, u.engine_requests) == (seen["calls"], seen["requests"])
    assert 0 < u.cached_tokens < u.prompt_tokens
    assert u.scorer_calls == 0  # SRCA's lineages vote by token confidence: no scorer call
    paper = Solver(engine=Counting(stepwise()), config=SearchConfig(method="srca", lineages=False, n=4)).solve("q")
    assert paper.usage.scorer_calls == sum(1 for t in paper.trace if t.depth > 0)


def test_token_budget_stops_with_best_so_far():
    s, _ = solver(stepwise(steps_to_finish=50), method="srca", n=4, max_steps=40, settle=0)
    sol = s.solve("q", max_tokens_total=60)
    assert sol.stop_reason == "budget"
    assert sol.usage.generated_tokens <= 60 + 16  # one last call may share what was left
    assert sol.answer == "7"  # from the checkpoints seen so far


def test_deadline_stops_the_search():
    eng = ScriptedEngine(stepwise(steps_to_finish=50), latency_s=0.05)
    # step by step (a probe after every step); whole lineages have a test of their own (test_srca_lineage)
    sol = Solver(engine=eng, config=SearchConfig(method="srca", n=4, max_steps=40, deadline_s=0.3,
                                                 probe_at="step")).solve("q")
    assert sol.stop_reason == "deadline" and sol.timings["total_s"] < 1.0


def test_solve_many_batches_concurrent_solves_and_keeps_order():
    eng = ScriptedEngine(stepwise(final=lambda tag: "7"), latency_s=0.01)
    s = Solver(engine=eng, config=SearchConfig(method="beam", n=4))
    sols = s.solve_many([f"problem {k}" for k in range(6)], concurrency=6)
    assert [x.problem for x in sols] == [f"problem {k}" for k in range(6)]
    assert all(x.answer == "7" for x in sols)


def test_cancelling_a_solve_propagates():
    eng = ScriptedEngine(stepwise(steps_to_finish=50), latency_s=0.2)
    s = Solver(engine=eng, config=SearchConfig(method="srca", n=4, max_steps=40))

    async def go():
        t = asyncio.create_task(s.asolve("q"))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(go())


def test_bad_problem_is_rejected_at_the_boundary():
    s, _ = solver(stepwise())
    with pytest.raises(ValueError, match="problem"):
        s.solve("   ")
    with pytest.raises(TypeError, match="problem"):
        s.solve(42)
    with pytest.raises(ValueError, match="SearchConfig.n"):
        s.solve("q", n=0)
    with pytest.raises(ValueError, match="unknown field"):
        s.solve("q", bogus=1)


def test_events_stream_in_order():
    s, _ = solver(stepwise(), method="srca", n=4, probe_at="step")  # a checkpoint event after the first step
    events = []
    s.solve("q", on_event=events.append)
    kinds = [e["type"] for e in events]
    # srca@4 starts its lineages in two waves of 2: each wave is told first
    assert kinds[:3] == ["wave", "step", "checkpoint"] and "select" in kinds and kinds[-1] == "final"


def test_solution_json_round_trip():
    s, _ = solver(stepwise(), method="srca", n=4)
    sol = s.solve("q")
    d = sol.to_dict()
    for key in ("answer", "canonical", "confidence", "method", "candidates", "trace", "usage", "timings", "stop_reason"):
        assert key in d
    assert {"generated_tokens", "prompt_tokens", "cached_tokens", "probe_tokens", "scorer_calls", "engine_calls"} <= set(d["usage"])
    from srca import Solution

    assert Solution.from_dict(d).to_dict() == d
