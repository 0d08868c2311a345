"""The Engine contract suite: every backend must pass these (see ``srca/engines/base.py``).

Each ``test_*`` here is an async test taking an ``engine`` fixture. A test module runs the suite
by defining that fixture and star-importing this module, as ``test_engine_contract.py`` does::

    from engine_contract import *  # noqa: F401,F403  (pytest collects the imported tests)

    @pytest.fixture(scope="module", params=[...])
    def engine(request): ...

To add a backend (for example SGLang in-process or an SGLang server), either add a param to
``ENGINES`` in ``test_engine_contract.py`` (a name -> factory entry, with marks such as
``pytest.mark.gpu``), or write a new module ``tests/test_engine_contract_<backend>.py`` with its
own module-scoped ``engine`` fixture and the import above. A factory returns a ready engine;
the fixture closes it with ``asyncio.run(engine.close())`` at teardown.

The prompts are chosen so that any real language model gives the behaviour checked (counting
continues with digits, a "random word" prompt samples diverse text); the scripted fake engine
in ``test_engine_contract.py`` imitates that. Checks that only make sense for some engines read
``engine.info`` (``token_ids``, ``reports_cached_tokens``).
"""
from __future__ import annotations

import asyncio
import uuid

import pytest

from srca.engines.base import Engine, EngineInfo, GenRequest, GenResult
from srca.repetition import LoopRule, loop_at

COUNT = "1, 2, 3, 4, 5, 6,"  # any model continues " 7, 8, 9, ..."
RANDOM = "Write a random word:"  # sampling-friendly: many plausible continuations

__all__ = [
    "COUNT", "RANDOM",
    "test_protocol_and_info", "test_n_results_per_request", "test_token_ids_decode_to_text",
    "test_max_new_tokens", "test_stop_strings", "test_greedy_deterministic", "test_seeded_sampling",
    "test_counts_consistent", "test_prefix_cache_reuse", "test_logprobs", "test_top_logprobs",
    "test_text_and_input_ids", "test_mixed_batch", "test_bad_requests", "test_cancelled_caller",
    "test_concurrent_callers", "test_loop_stops",
]


def _check_result(engine, req: GenRequest, res: GenResult) -> None:
    """Invariants every result must satisfy."""
    assert isinstance(res, GenResult)
    assert res.finish_reason in (("stop", "length", "loop") if req.loop_stop and engine.info.loop_stops
                                 else ("stop", "length"))
    assert res.generated_tokens == len(res.token_ids)
    assert 1 <= len(res.token_ids) <= req.max_new_tokens
    assert 0 <= res.cached_tokens <= res.prompt_tokens
    if req.input_ids is not None:
        assert res.prompt_tokens == len(req.input_ids)
    if res.finish_reason == "length":
        assert len(res.token_ids) == req.max_new_tokens and res.stop_str is None
    if res.stop_str is not None:
        assert res.finish_reason == "stop" and res.stop_str in req.stop
        assert res.text.endswith(res.stop_str)
    if engine.info.token_ids:
        assert engine.decode(res.token_ids).startswith(res.text)
    if req.logprobs:
        assert len(res.logprobs) == len(res.token_ids)
        assert all(lp <= 1e-4 for lp in res.logprobs)
    else:
        assert res.logprobs == []


async def _gen(engine, *reqs: GenRequest) -> list[list[GenResult]]:
    out = await engine.generate(list(reqs))
    assert len(out) == len(reqs)
    for req, results in zip(reqs, out):
        assert len(results) == req.n
        for res in results:
            _check_result(engine, req, res)
    return out


def _fresh(text: str) -> str:
    """``text`` behind a unique tag, so no earlier test has cached it."""
    return f"[{uuid.uuid4().hex[:8]}] {text}"


async def test_protocol_and_info(engine):
    assert isinstance(engine, Engine)
    assert isinstance(engine.info, EngineInfo)
    assert engine.info.max_context > 0
    prompt = engine.chat_prompt([{"role": "user", "content": "Say hi."}])
    assert isinstance(prompt, str) and "Say hi." in prompt


async def test_n_results_per_request(engine):
    out = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=4),
                     GenRequest(prompt=RANDOM, max_new_tokens=4, n=3, temperature=1.0, seed=3),
                     GenRequest(prompt=COUNT, max_new_tokens=4, n=2))
    assert [len(r) for r in out] == [1, 3, 2]


async def test_token_ids_decode_to_text(engine):
    (res,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=8))
    assert res.text.strip()
    if engine.info.token_ids:
        assert engine.decode(res.token_ids) == res.text or res.finish_reason == "stop"
        assert engine.decode(engine.encode(COUNT)) == COUNT


async def test_max_new_tokens(engine):
    for m in (1, 5):
        (res,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=m))
        assert len(res.token_ids) == m and res.finish_reason == "length"


async def test_stop_strings(engine):
    req = GenRequest(prompt=COUNT, max_new_tokens=40, stop=("9", "8"))
    (res,), = await _gen(engine, req)
    # counting reaches " 8" before " 9": the earliest match ends the text
    assert res.finish_reason == "stop" and res.stop_str == "8"
    assert res.text.endswith("8") and "9" not in res.text and res.text.count("8") == 1
    assert "7" in res.text
    # a stop string that never appears changes nothing
    (a,), (b,) = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=6),
                            GenRequest(prompt=COUNT, max_new_tokens=6, stop=("@@never@@",)))
    assert a.token_ids == b.token_ids and b.stop_str is None


async def test_greedy_deterministic(engine):
    req = GenRequest(prompt=_fresh(RANDOM), max_new_tokens=12)
    (a,), = await _gen(engine, req)
    (b,), = await _gen(engine, req)
    assert a.token_ids == b.token_ids and a.text == b.text
    (c1, c2), = await _gen(engine, GenRequest(prompt=req.prompt, max_new_tokens=12, n=2))
    assert c1.token_ids == c2.token_ids == a.token_ids


async def test_seeded_sampling(engine):
    def req(seed):
        return GenRequest(prompt=RANDOM, max_new_tokens=10, temperature=1.0, n=4, seed=seed)

    a, b, c = await _gen(engine, req(11), req(11), req(12))  # in one batch
    (d,) = await _gen(engine, req(11))  # alone
    ids = lambda rs: [r.token_ids for r in rs]  # noqa: E731
    assert ids(a) == ids(b) == ids(d)
    assert ids(a) != ids(c)
    assert len({tuple(t) for t in ids(a) + ids(c)}) > 1  # samples differ


async def test_counts_consistent(engine):
    prompt = _fresh(COUNT)
    (res,), = await _gen(engine, GenRequest(prompt=prompt, max_new_tokens=6))
    assert res.prompt_tokens >= 1 and res.cached_tokens < res.prompt_tokens
    if engine.info.token_ids:
        assert res.prompt_tokens == len(engine.encode(prompt))


async def test_prefix_cache_reuse(engine):
    if not engine.info.reports_cached_tokens:
        pytest.skip("engine does not report cached tokens")
    ids = engine.encode(_fresh(COUNT))
    (first,), = await _gen(engine, GenRequest(input_ids=ids, max_new_tokens=6))
    assert first.cached_tokens < len(ids)
    # the next step of the path: prompt + generated + more text
    path = ids + first.token_ids + engine.encode(" and")
    (second,), = await _gen(engine, GenRequest(input_ids=path, max_new_tokens=3))
    assert second.prompt_tokens == len(path)
    assert second.cached_tokens >= len(ids)  # at least the first prompt came from the cache
    # a probe off the same path (a checkpoint cue) reuses it as well
    (probe,), = await _gen(engine, GenRequest(input_ids=path + engine.encode(" so"), max_new_tokens=2))
    assert probe.cached_tokens >= len(path) - 1


async def test_logprobs(engine):
    (g,), (s,), (n,) = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=6),
                                  GenRequest(prompt=RANDOM, max_new_tokens=6, temperature=1.0, seed=1),
                                  GenRequest(prompt=COUNT, max_new_tokens=3, logprobs=False))
    assert len(g.logprobs) == 6 and len(s.logprobs) == len(s.token_ids) >= 1 and n.logprobs == []
    assert any(lp < 0 for lp in s.logprobs)  # a sampled token is never certain here


async def test_top_logprobs(engine):
    (res,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=5, top_logprobs=3, top_logprobs_steps=2))
    assert len(res.top_logprobs) == 2
    for alts in res.top_logprobs:
        assert len(alts) == 3
        lps = [lp for _, lp in alts]
        assert all(lp <= 1e-4 for lp in lps) and lps == sorted(lps, reverse=True)
        assert len({t for t, _ in alts}) == 3
    # greedy: the chosen token is the best alternative, with the same logprob
    assert res.top_logprobs[0][0][0] == res.token_ids[0]
    assert abs(res.top_logprobs[0][0][1] - res.logprobs[0]) < 1e-3
    (plain,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=2))
    assert plain.top_logprobs == []


async def test_text_and_input_ids(engine):
    if not engine.info.token_ids:
        pytest.skip("engine works on text only")
    (a,), (b,) = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=6),
                            GenRequest(input_ids=engine.encode(COUNT), max_new_tokens=6))
    assert a.token_ids == b.token_ids and a.text == b.text


async def test_mixed_batch(engine):
    reqs = [
        GenRequest(prompt=COUNT, max_new_tokens=7),
        GenRequest(prompt=RANDOM, max_new_tokens=5, temperature=0.8, top_p=0.9, top_k=40, n=3, seed=4),
        GenRequest(prompt=COUNT, max_new_tokens=30, stop=("9",)),
        GenRequest(input_ids=engine.encode("The capital of France is") if engine.info.token_ids else None,
                   prompt=None if engine.info.token_ids else "The capital of France is", max_new_tokens=3),
        GenRequest(prompt=COUNT, max_new_tokens=2, n=2, top_logprobs=2),
    ]
    out = await _gen(engine, *reqs)
    assert out[2][0].stop_str == "9"
    assert [len(r[0].token_ids) for r in (out[0], out[3], out[4])] == [7, 3, 2]
    # batching does not change a greedy result
    (solo,), = await _gen(engine, reqs[0])
    assert solo.token_ids == out[0][0].token_ids


async def test_bad_requests(engine):
    for kwargs in ({}, {"prompt": "x", "input_ids": [1]}, {"input_ids": []}, {"prompt": "x", "max_new_tokens": 0},
                   {"prompt": "x", "temperature": -1.0}, {"prompt": "x", "top_p": 0.0}, {"prompt": "x", "top_p": 1.5},
                   {"prompt": "x", "top_k": -1}, {"prompt": "x", "n": 0}, {"prompt": "x", "top_logprobs": -1}):
        with pytest.raises(ValueError):
            GenRequest(**kwargs)
    # the engine still works afterwards
    await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=2))


async def test_cancelled_caller(engine):
    task = asyncio.ensure_future(engine.generate([GenRequest(prompt=COUNT, max_new_tokens=20, n=2, temperature=1.0)]))
    await asyncio.sleep(0)  # the call is queued / in flight
    if task.cancel():
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # it had already finished
        assert len(task.result()[0]) == 2
    (res,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=4))
    assert len(res.token_ids) == 4


async def test_concurrent_callers(engine):
    """Many solves calling at once each get their own results."""
    reqs = [GenRequest(prompt=COUNT, max_new_tokens=3 + i) for i in range(4)]
    outs = await asyncio.gather(*(_gen(engine, r) for r in reqs))
    assert [len(o[0][0].token_ids) for o in outs] == [3, 4, 5, 6]
    lead = outs[-1][0][0].token_ids
    assert all(lead[:len(o[0][0].token_ids)] == o[0][0].token_ids for o in outs)  # greedy: prefixes agree


async def test_loop_stops(engine):
    # an engine that stops repeating samples (info.loop_stops) ends one at the first check point
    # of GenRequest.loop_stop's rule, keeping the tokens so far; other engines ignore the rule
    (plain,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=24))
    rule = LoopRule(n=1, window=2, share=1.0, every=1, start=2)  # a token written before, 2 back
    p = loop_at(plain.token_ids, rule)
    (res,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=24, loop_stop=rule))
    if engine.info.loop_stops:
        assert p is not None and p < len(plain.token_ids)  # counting repeats its commas
        assert res.finish_reason == "loop" and res.stop_str is None and res.token_ids == plain.token_ids[:p]
    else:
        assert res.token_ids == plain.token_ids and res.finish_reason == plain.finish_reason
    # a rule whose first check point lies past the limit stops nothing
    late = LoopRule(n=1, window=2, share=1.0, every=1, start=25)
    (same,), = await _gen(engine, GenRequest(prompt=COUNT, max_new_tokens=24, loop_stop=late))
    assert same.token_ids == plain.token_ids and same.finish_reason == plain.finish_reason
    with pytest.raises(TypeError, match="loop_stop"):
        GenRequest(prompt=COUNT, loop_stop={"share": 0.5})
