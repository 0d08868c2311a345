"""Answer work in worker processes (srca.answer_work): the same decisions, records and
candidates as inline, the pool size rules, and a broken pool losing nothing."""
import asyncio
import json
import os

import pytest

from srca import SearchConfig, Solver
from srca.answer_work import AnswerWorkers, auto_workers, check_workers, decide_pool
from srca.engines.fake import ScriptedEngine
from srca.eval import arun_eval
from srca.eval.data import Problem
from srca.solution import Candidate


def _script(prompt, req, i):
    """Sample i answers one of several spellings of 1/2 or other values; greedy says 0.5."""
    spell = ["\\frac{1}{2}", "0.5", "\\frac{2}{4}", "3", "\\sqrt{2}/2", "1/2", "x+1", "\\dfrac12"]
    ans = "0.5" if req.greedy else spell[(i * 5 + (req.seed or 0)) % len(spell)]
    return f" Work it out.\n\nSo the answer is \\boxed{{{ans}}}.", -0.1 - 0.05 * (i % 3)


def _solutions(workers, methods=("majority", "best_of_n", "srca", "cot")):
    """The methods' solves in flight together (the engine answers after 20 ms), as an eval's are."""
    with Solver(engine=ScriptedEngine(_script, latency_s=0.02), answer_workers=workers) as s:
        async def go():
            return await asyncio.gather(*(s.asolve("q", SearchConfig(method=m, n=8, seed=3)) for m in methods))
        out = s._run(go())
        stats = s.answer_work.stats()
    return out, stats


def test_workers_decide_exactly_as_inline():
    inline, st0 = _solutions(0)
    pooled, st2 = _solutions(2)
    # four decisions, and srca@8's two checks after its first two waves (2, 3, 3: never settled,
    # the spellings disagree)
    assert st0 == {"workers": 0, "calls": 6, "inline_calls": 6, "broken": 0, "timed_out": 0}
    assert st2["workers"] == 2 and st2["calls"] == 6 and st2["inline_calls"] == 0
    for a, b in zip(inline, pooled):
        assert (a.answer, a.canonical, a.confidence) == (b.answer, b.canonical, b.confidence)
        assert [(c.answer, c.canonical, c.group, c.votes, c.score) for c in a.candidates] == \
            [(c.answer, c.canonical, c.group, c.votes, c.score) for c in b.candidates]
    maj = inline[0]
    # the spellings of 1/2 are one group, with its canonical form filled in by the decision
    assert maj.canonical == "1/2" and max(c.votes for c in maj.candidates) == 5
    assert all(c.canonical for s in inline for c in s.candidates)
    # a solve alone in flight decides inline: it never starts the processes
    with Solver(engine=ScriptedEngine(_script), answer_workers=2) as s:
        alone = s.solve("q", SearchConfig(method="majority", n=8, seed=3))
        assert s.answer_work.stats()["inline_calls"] == 1 and s.answer_work._pool is None
    assert (alone.answer, alone.confidence) == (maj.answer, maj.confidence)


def test_eval_records_are_the_same_with_workers(tmp_path):
    probs = [Problem(unique_id=f"p{k}", problem=f"q{k}", answer="\\frac12") for k in range(3)]
    lines = {}
    for w in (0, 2):
        solver = Solver(engine=ScriptedEngine(_script, latency_s=0.02), answer_workers=w)
        out = tmp_path / f"w{w}.jsonl"
        asyncio.run(arun_eval(probs, ["majority", "srca"], [4], solver, out, progress=False))
        lines[w] = [{k: v for k, v in json.loads(x).items() if k != "timings"} for x in out.read_text().splitlines()]
        st = solver.answer_work.stats()
        # 6 decisions, 6 gradings and each srca@4's check after its first wave (2, 2)
        assert st["calls"] == 15 and (st["inline_calls"] == 15 if w == 0 else st["inline_calls"] < 6)
        solver.close()
    assert lines[0] == lines[2] and len(lines[0]) == 6 and all(r["correct"] for r in lines[0] if r["method"] == "majority")


def test_workers_start_before_an_eval_runs_its_first_solve(tmp_path):
    w = AnswerWorkers(2)
    w.start(wait=True)  # every process up at once, not when the first task finds none idle
    procs = dict(w._pool._processes)
    assert len(procs) == 2 and all(p.is_alive() for p in procs.values())
    w.start()  # started: nothing more
    assert dict(w._pool._processes) == procs
    w.close()
    none = AnswerWorkers(0)
    none.start(wait=True)
    assert none._pool is None
    # an eval of several problems starts them before its first engine call
    seen = []
    solver = Solver(engine=ScriptedEngine(lambda p, r, i: (seen.append(solver.answer_work._pool is not None),
                                                           " \\boxed{1}")[1]), answer_workers=2)
    probs = [Problem(unique_id=f"p{k}", problem=f"q{k}", answer="1") for k in range(2)]
    asyncio.run(arun_eval(probs, ["majority"], [2], solver, tmp_path / "o.jsonl", progress=False))
    assert seen and all(seen)
    solver.close()


def _die(_):
    os._exit(3)


def test_a_broken_pool_runs_the_call_inline_and_recovers():
    w = AnswerWorkers(1)
    pool = [Candidate(answer="2", canonical="", score=1.0, source="path", step=1, node=1)]

    async def crash_then_decide():  # a worker that dies breaks the pool; the next call runs inline
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(w._executor(), _die, None)
        with pytest.raises(Exception):
            await fut
        return await w.run(decide_pool, pool, "majority", 1.0, 0.0, 1)

    got, win, conf = asyncio.run(crash_then_decide())
    assert win == 0 and conf == 1.0 and got[0].canonical == "2"
    assert w.stats()["broken"] == 1 and w.stats()["inline_calls"] == 1
    # and the next call has a fresh pool
    got, win, _ = asyncio.run(w.run(decide_pool, pool, "majority", 1.0, 0.0, 1))
    assert win == 0 and w.stats()["inline_calls"] == 1
    w.close()


def _stuck_unless_text_only(x):
    """Never returns in a worker (as sympy stuck in a huge exact power); at once under text_only."""
    import time

    from srca import answers

    while not answers.is_text_only():
        time.sleep(1)
    return ("text only", x)


def _plus_one(x):
    return x + 1


def test_a_call_past_its_deadline_is_stopped_and_finishes_on_text_alone():
    w = AnswerWorkers(1, deadline_s=4.0)  # room for a new pool to start within a retried call's deadline

    async def later(delay, call):
        await asyncio.sleep(delay)
        return await call

    async def go():
        w.start(wait=True)
        # the stuck call holds the one worker; the next, sent a second later, waits behind it
        # in the same pool (a deadline counts from the call: its own comes after the stuck one's)
        return await asyncio.gather(w.run(_stuck_unless_text_only, 7), later(1.0, w.run(_plus_one, 1)))

    stuck, other = asyncio.run(go())
    assert stuck == ("text only", 7)  # finished inline, answers by their text
    assert other == 2  # its pool was killed under it: it ran again on a new pool, not inline
    assert w.stats() == {"workers": 1, "calls": 2, "inline_calls": 1, "broken": 0, "timed_out": 1}
    assert asyncio.run(w.run(_plus_one, 41)) == 42 and w.stats()["inline_calls"] == 1
    w.close()
    with pytest.raises(ValueError, match="deadline_s"):
        AnswerWorkers(1, deadline_s=0)


def test_pool_size_rules(monkeypatch):
    assert [auto_workers(c) for c in (1, 2, 4, 7, 8, 16, 64)] == [0, 0, 0, 0, 4, 8, 8]
    monkeypatch.delenv("SRCA_ANSWER_WORKERS", raising=False)
    # the library never spawns unless asked (an unguarded script would run again in each worker)
    assert check_workers(None) == 0 and AnswerWorkers().workers == 0 and check_workers(3) == 3
    assert check_workers(None, default="auto") == check_workers("auto") == auto_workers()
    monkeypatch.setenv("SRCA_ANSWER_WORKERS", "2")
    assert check_workers(None) == 2 and check_workers(None, default="auto") == 2 and AnswerWorkers().workers == 2
    monkeypatch.setenv("SRCA_ANSWER_WORKERS", "auto")
    assert check_workers(None) == auto_workers()
    monkeypatch.setenv("SRCA_ANSWER_WORKERS", "two")
    with pytest.raises(ValueError, match="SRCA_ANSWER_WORKERS"):
        check_workers(None)
    for bad in (-1, 1.5, True, "2", "many"):
        with pytest.raises(ValueError, match="answer_workers"):
            check_workers(bad)
    with pytest.raises(ValueError, match="answer_workers"):
        Solver(engine=ScriptedEngine(_script), answer_workers=-2)


def test_an_eval_whose_answer_work_runs_late_still_writes_every_line_and_says_so(tmp_path, caplog):
    probs = [Problem(unique_id=f"p{k}", problem=f"q{k}", answer="\\frac12") for k in range(2)]
    solver = Solver(engine=ScriptedEngine(_script, latency_s=0.02), answer_workers=1)
    solver.answer_work.deadline_s = 0.001  # every call in a worker is late: each runs again inline, on text
    with caplog.at_level("WARNING"):
        recs = asyncio.run(arun_eval(probs, ["majority"], [4], solver, tmp_path / "out.jsonl", seed=0, progress=False))
    assert [r["unique_id"] for r in recs] == ["p0", "p1"]
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    late = solver.answer_work.timed_out
    assert late >= 1
    assert f"{late} call(s) of this eval ran past" in caplog.text
    solver.close()
