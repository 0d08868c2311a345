"""srca.admission: solves admitted by the sequences they decode at once, in arrival order."""
from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from srca.admission import BatchAdmission, Slots, admission_for, width
from srca.config import SearchConfig
from srca.eval import run_eval
from srca.eval.data import read_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from _eval_fixtures import count_in_flight, engine, write_data  # noqa: E402


def test_width_is_what_a_solve_decodes_at_once():
    assert width(SearchConfig(method="majority", n=16)) == 16
    assert width(SearchConfig(method="best_of_n", n=16)) == 16
    assert width(SearchConfig(method="dvts", n=16)) == 16
    assert width(SearchConfig(method="cot", n=16)) == 1  # one greedy path whatever n is
    assert width(SearchConfig(method="srca", n=16)) == 6  # waves of 5, 5 and 6: the largest
    assert width(SearchConfig(method="srca", n=8)) == 3  # 2, 3, 3
    assert width(SearchConfig(method="srca", n=16, waves=1)) == 16
    assert width(SearchConfig(method="srca", n=16, wave_overlap=384)) == 16  # the waves may all run at once
    assert width(SearchConfig(method="srca", n=16, lineages=False)) == 16  # the paper's tree


def test_slots_admit_in_arrival_order_and_never_pass_a_wide_waiter():
    async def go():
        slots = Slots(10)
        order: list[str] = []
        release = {k: asyncio.Event() for k in "abc"}

        async def solve(name: str, units: int):
            async with slots.hold(units):
                order.append(f"+{name}")
                await release[name].wait()
            order.append(f"-{name}")

        a = asyncio.create_task(solve("a", 6))
        await asyncio.sleep(0)
        b = asyncio.create_task(solve("b", 6))  # 6 + 6 > 10: waits
        await asyncio.sleep(0)
        c = asyncio.create_task(solve("c", 2))  # would fit beside a, but b came first
        await asyncio.sleep(0.01)
        assert order == ["+a"] and slots.used == 6 and slots.holders == 1
        release["a"].set()
        await asyncio.sleep(0.01)
        assert order == ["+a", "-a", "+b", "+c"] and slots.used == 8 and slots.holders == 2
        release["b"].set()
        release["c"].set()
        await asyncio.gather(a, b, c)
        assert slots.used == 0 and slots.holders == 0

    asyncio.run(go())


def test_slots_run_a_request_wider_than_the_capacity_alone_and_cap_the_holders():
    async def go():
        slots = Slots(4, max_holders=2)
        most = {"holders": 0, "used": 0}

        async def solve(units: int):
            async with slots.hold(units):
                most["holders"] = max(most["holders"], slots.holders)
                most["used"] = max(most["used"], slots.used)
                await asyncio.sleep(0.01)

        await asyncio.gather(solve(9), solve(1), solve(1), solve(1), solve(1))
        assert most == {"holders": 2, "used": 4}  # the wide one alone took all 4; then 2 holders of 1
        assert slots.used == 0 and slots.holders == 0

    asyncio.run(go())


def test_a_cancelled_waiter_takes_nothing_and_blocks_no_one():
    async def go():
        slots = Slots(2)
        got = []

        async def solve(name: str, units: int, hold_s: float):
            async with slots.hold(units):
                got.append(name)
                await asyncio.sleep(hold_s)

        a = asyncio.create_task(solve("a", 1, 0.2))
        await asyncio.sleep(0)
        b = asyncio.create_task(solve("b", 2, 0))  # 1 + 2 > 2: waits
        c = asyncio.create_task(solve("c", 1, 0))  # fits, but waits behind b
        await asyncio.sleep(0.01)
        assert got == ["a"]
        b.cancel()  # gone without taking anything: c starts at once, beside a
        await asyncio.sleep(0.01)
        assert got == ["a", "c"] and not a.done()
        await asyncio.gather(a, c, b, return_exceptions=True)
        assert b.cancelled() and slots.used == 0 and slots.holders == 0

    asyncio.run(go())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="capacity"):
        Slots(0)
    with pytest.raises(ValueError, match="max_holders"):
        Slots(4, max_holders=0)
    with pytest.raises(ValueError, match="exactly one"):
        BatchAdmission()

    async def go():
        async with Slots(4).hold(0):
            pass

    with pytest.raises(ValueError, match="units"):
        asyncio.run(go())


def test_admission_for_names_the_rule():
    eng = engine()
    assert admission_for(eng, 3, floor=8).describe() == "3 solve(s) in flight"  # given by the caller
    assert admission_for(eng, None, floor=8).describe() == "8 solve(s) in flight"  # the engine does not say
    eng.info = replace(eng.info, concurrent_sequences=4096)
    adm = admission_for(eng, None, floor=8)
    assert adm.by_width and adm.slots.capacity == 4096 and "4096" in adm.describe()
    from srca.admission import EngineLoad

    adm = admission_for(eng, None, floor=8, load=EngineLoad(4096))
    assert adm.by_load and adm.slots.capacity == 4096 and "in flight leave room" in adm.describe()
    assert not admission_for(eng, 3, floor=8, load=EngineLoad(4096)).by_width  # the caller's number wins


def test_an_eval_of_mixed_methods_keeps_the_engines_batch_full_and_bounded(tmp_path):
    problems = read_jsonl(write_data(tmp_path / "data.jsonl"))
    many = [replace(p, unique_id=f"{p.unique_id}-{k}") for k in range(6) for p in problems]  # 24 problems
    eng = engine()
    eng.info = replace(eng.info, concurrent_sequences=12)
    seen = count_in_flight(eng, delay_s=0.01, sequences=True)
    from srca import Solver

    recs = run_eval(many, ["majority", "srca"], [4], Solver(engine=eng, admit="load"), tmp_path / "out.jsonl",
                    progress=False)
    assert len(recs) == 48
    # majority@4 holds 4, srca@4 (waves of 2 and 2) 2. Admitted by load: a solve starts when what
    # is in flight leaves room for its width, so a srca solve admitted while another was between
    # its waves can take the engine past its 12 (it queues them); the widths held stay under 1.5x
    assert seen["most"] <= 18
    assert seen["most"] >= 10  # and the batch is filled: 3 majority solves, or a mix, at once


def test_the_eval_by_width_never_passes_the_batch(tmp_path):
    """Without the solver's load (``admission_for(..., load=None)``) solves are admitted by their
    widths alone: never more in flight than the batch."""
    from srca import Solver

    problems = read_jsonl(write_data(tmp_path / "data.jsonl"))
    eng = engine()
    eng.info = replace(eng.info, concurrent_sequences=12)
    seen = count_in_flight(eng, delay_s=0.01, sequences=True)
    solver = Solver(engine=eng)
    adm = admission_for(eng, None, floor=8)
    assert adm.by_width and not adm.by_load

    async def go():
        async def one(p, method):
            cfg = SearchConfig(method=method, n=4)
            async with adm.slot(cfg):
                await solver.asolve(p.problem, cfg)

        await asyncio.gather(*(one(p, m) for k in range(3) for p in problems for m in ("majority", "srca")))

    asyncio.run(go())
    assert 10 <= seen["most"] <= 12


def test_load_slots_admit_by_what_is_in_flight_and_reserved():
    """Capacity 10: a (6) starts alone and reserves 6 until its first call; b (6) waits (6 + 6).
    a's first call sends 3 (in flight 3, nothing reserved): b fits (3 + 6). c (2) then waits:
    3 + 6 reserved + 2 > 10. b's call of 6 goes out (9 in flight): c still waits; a's call
    returns (6 in flight): c starts. The widths held stay under 1.5x 10 and the holders under
    the cap; a solve that finds none held starts whatever its width."""
    from srca.admission import EngineLoad, LoadSlots, release_admission

    async def go():
        load = EngineLoad(10)
        slots = LoadSlots(load, 10, max_holders=3)
        order: list[str] = []
        step = {k: asyncio.Event() for k in ("a_call", "a_back", "b_call", "done")}

        async def call(k: int, back: str | None):  # a solve's engine call, as SearchContext.generate counts it
            load.add(k)
            release_admission()
            if back is not None:
                await step[back].wait()
                load.add(-k)

        async def a():
            async with slots.hold(6):
                order.append("+a")
                await step["a_call"].wait()
                await call(3, "a_back")
                await step["done"].wait()

        async def b():
            async with slots.hold(6):
                order.append("+b")
                await step["b_call"].wait()
                await call(6, "done")

        async def c():
            async with slots.hold(2):
                order.append("+c")
                await step["done"].wait()

        ta = asyncio.create_task(a())
        await asyncio.sleep(0)
        tb = asyncio.create_task(b())
        await asyncio.sleep(0.01)
        assert order == ["+a"] and (load.in_flight, load.reserved) == (0, 6)
        step["a_call"].set()
        await asyncio.sleep(0.01)
        assert order == ["+a", "+b"] and (load.in_flight, load.reserved, load.room()) == (3, 6, 1)
        tc = asyncio.create_task(c())
        await asyncio.sleep(0.01)
        assert order == ["+a", "+b"]
        step["b_call"].set()
        await asyncio.sleep(0.01)
        assert order == ["+a", "+b"] and (load.in_flight, load.reserved) == (9, 0)
        step["a_back"].set()
        await asyncio.sleep(0.01)
        assert order == ["+a", "+b", "+c"] and (load.in_flight, load.reserved) == (6, 2)
        step["done"].set()
        await asyncio.gather(ta, tb, tc)
        assert (load.in_flight, load.reserved, slots.used, slots.holders) == (0, 0, 0, 0)
        assert load._watchers == []  # nothing left waiting: the admission stopped listening

        wide = LoadSlots(EngineLoad(4), 4)
        async with wide.hold(9):  # alone: starts, wider than the batch
            assert wide.holders == 1

    asyncio.run(go())
    with pytest.raises(ValueError, match="overcommit"):
        from srca.admission import EngineLoad, LoadSlots

        LoadSlots(EngineLoad(4), 4, overcommit=0.5)


def test_the_services_cost_and_budget_follow_the_same_width():
    from srca.service.limits import Admission as TokenBudget, Overloaded, solve_cost

    problem = "Compute 2+2."
    srca, majority = SearchConfig(method="srca", n=16), SearchConfig(method="majority", n=16)
    assert solve_cost(problem, srca) * 16 == solve_cost(problem, majority) * 6  # 6 rows at once against 16
    assert solve_cost(problem, SearchConfig(method="cot", n=16)) * 16 == solve_cost(problem, majority)

    async def go():
        budget = TokenBudget(100)
        async with budget.hold(60, wait=False):
            with pytest.raises(Overloaded, match="100 in-flight tokens"):
                async with budget.hold(50, wait=False):
                    pass
            waiter = asyncio.create_task(_hold(budget, 50))  # a job waits for room instead
            await asyncio.sleep(0.01)
            assert not waiter.done() and budget.used == 60
        await waiter
        assert budget.used == 0

    asyncio.run(go())


async def _hold(budget, cost: int) -> None:
    async with budget.hold(cost, wait=True):
        await asyncio.sleep(0)


def test_admission_by_load_under_uneven_latencies_finishes_every_solve_and_leaves_nothing_counted(tmp_path):
    """160 solves of four methods at n = 6 (srca in three waves, speculating) on an engine that says it
    decodes 10 sequences and answers each call after a random delay: every solve ends with its
    line, at most 1.5x the batch was ever in flight, and the solver's load ends at zero with no
    reservation and no admission still listening."""
    import random

    from srca import Solver

    problems = read_jsonl(write_data(tmp_path / "data.jsonl"))
    many = [replace(p, unique_id=f"{p.unique_id}-{k}") for k in range(10) for p in problems]
    eng = engine()
    eng.info = replace(eng.info, concurrent_sequences=10)
    inner = eng.generate
    rng = random.Random(7)
    seen = {"now": 0, "most": 0}

    async def uneven(requests):
        k = sum(r.n for r in requests)
        seen["now"] += k
        seen["most"] = max(seen["most"], seen["now"])
        try:
            await asyncio.sleep(rng.uniform(0.0, 0.01))
            return await inner(requests)
        finally:
            seen["now"] -= k

    eng.generate = uneven
    solver = Solver(engine=eng, answer_workers=0, admit="load")
    base = SearchConfig(wave_speculate=True, waves=3)
    recs = run_eval(many, ["majority", "srca", "best_of_n", "cot"], [6], solver, tmp_path / "out.jsonl",
                    base=base, progress=False)
    assert len(recs) == 160 and all(r["answer"] is not None for r in recs)
    assert seen["most"] <= 15 and seen["now"] == 0
    assert (solver.load.in_flight, solver.load.reserved, solver.load.waiting) == (0, 0, False)
