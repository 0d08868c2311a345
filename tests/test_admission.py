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


def test_an_eval_of_mixed_methods_keeps_the_engines_batch_full_and_no_fuller(tmp_path):
    problems = read_jsonl(write_data(tmp_path / "data.jsonl"))
    many = [replace(p, unique_id=f"{p.unique_id}-{k}") for k in range(6) for p in problems]  # 24 problems
    eng = engine()
    eng.info = replace(eng.info, concurrent_sequences=12)
    seen = count_in_flight(eng, delay_s=0.01, sequences=True)
    recs = run_eval(many, ["majority", "srca"], [4], eng, tmp_path / "out.jsonl", progress=False)
    assert len(recs) == 48
    # majority@4 holds 4, srca@4 (waves of 2 and 2) 2: never more than the 12 the engine decodes together
    assert seen["most"] <= 12
    assert seen["most"] >= 10  # and the batch is filled: 3 majority solves, or a mix, at once


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
