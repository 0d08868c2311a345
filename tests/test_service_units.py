"""Service pieces without HTTP: schemas generated from SearchConfig, ServiceConfig validation,
the fast Solution dict, the cache key, the OpenAI facade's request mapping."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("fastapi")

from srca import SearchConfig, Solver, make_engine  # noqa: E402
from srca.service import ServiceConfig  # noqa: E402
from srca.service.cache import cache_key, solution_dict  # noqa: E402
from srca.service.openai_facade import model_names, parse_chat  # noqa: E402
from srca.service.schemas import InputError, parse_solve, solve_request_model  # noqa: E402


def test_request_schema_is_generated_from_search_config():
    fields = solve_request_model().model_fields
    for f in dataclasses.fields(SearchConfig):
        assert f.name in fields and fields[f.name].default == f.default
    assert set(fields) == {f.name for f in dataclasses.fields(SearchConfig)} | {"problem", "stream"}


def test_parse_solve_overrides_only_given_fields():
    base = SearchConfig(n=8, temperature=0.3)
    inp = parse_solve({"problem": " What is 1+1? ", "method": "beam", "beam_width": None}, base)
    assert inp.problem == "What is 1+1?" and inp.config.n == 8 and inp.config.temperature == 0.3
    assert inp.config.method == "beam" and not inp.stream
    with pytest.raises(InputError) as e:
        parse_solve({"problem": "q", "n": 0}, base)
    assert e.value.errors[0]["loc"] == ["body", "n"]


def test_service_config_validates_itself():
    with pytest.raises(ValueError, match="ServiceConfig.port"):
        ServiceConfig(port=70000)
    with pytest.raises(ValueError, match="redis_url"):
        ServiceConfig(redis_url="http://x")
    with pytest.raises(ValueError, match="unknown field"):
        ServiceConfig.from_dict({"prot": 1})
    assert ServiceConfig(redis_url=None).redis_url is None


def test_api_keys_come_from_the_named_env_var(monkeypatch):
    monkeypatch.setenv("MY_KEYS", " a ,b,, ")
    assert ServiceConfig(api_keys_env="MY_KEYS").api_keys() == {"a", "b"}
    monkeypatch.delenv("MY_KEYS")
    assert ServiceConfig(api_keys_env="MY_KEYS").api_keys() == frozenset()


@pytest.mark.parametrize("method", ["srca", "beam", "majority", "cot_decoding", "dvts"])
def test_solution_dict_equals_to_dict(method):
    sol = Solver(engine=make_engine("fake")).solve("What is 2+3?", method=method)
    assert solution_dict(sol) == sol.to_dict()


def test_cache_key_covers_problem_config_model_and_seed():
    c = SearchConfig()
    k = cache_key("p", c, "m")
    assert k == cache_key("p", SearchConfig(), "m")
    assert len({k, cache_key("q", c, "m"), cache_key("p", c, "m2"), cache_key("p", c.replace(seed=1), "m"),
                cache_key("p", c.replace(n=8), "m")}) == 5


def test_facade_maps_model_and_openai_fields():
    assert model_names()["srca-best-of-n"] == "best_of_n" and model_names()["srca"] == "srca"
    model, problem, cfg, stream, usage = parse_chat(
        {"model": "srca-dvts", "messages": [{"role": "system", "content": "s"},
                                            {"role": "user", "content": [{"type": "text", "text": "What is 1+1?"}]}],
         "max_tokens": 100, "temperature": 0.2, "seed": 3, "n": 6, "stream": True, "user": "u1",
         "stream_options": {"include_usage": True}}, SearchConfig())
    assert (model, problem, stream, usage) == ("srca-dvts", "What is 1+1?", True, True)
    assert (cfg.method, cfg.max_new_tokens, cfg.max_tokens_total, cfg.temperature, cfg.seed, cfg.n) == (
        "dvts", 100, None, 0.2, 3, 6)


def test_facade_max_tokens_caps_the_completion_and_max_completion_tokens_the_solve():
    """As OpenAI defines them for reasoning models: max_completion_tokens counts every token the
    solve generates (max_tokens_total), max_tokens the completion the client sees, one path
    (max_new_tokens), never above the server's per-path cap; the search's budget n stays."""
    def cfg(**fields):
        body = {"model": "srca", "messages": [{"role": "user", "content": "What is 1+1?"}], **fields}
        return parse_chat(body, SearchConfig(max_new_tokens=1024))[2]

    c = cfg(max_tokens=256)
    assert (c.max_new_tokens, c.max_tokens_total, c.n) == (256, None, 4)
    assert cfg(max_tokens=10**6).max_new_tokens == 1024  # a client's large default cannot raise the server's cap
    c = cfg(max_completion_tokens=3000, max_tokens=512)
    assert (c.max_new_tokens, c.max_tokens_total) == (512, 3000)
    assert cfg(max_tokens=100, max_new_tokens=300).max_new_tokens == 300  # the SearchConfig field itself wins
    assert cfg(max_completion_tokens=50, max_tokens_total=70).max_tokens_total == 70
    for name in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(InputError) as e:
            cfg(**{name: 0})
        assert e.value.errors[0]["loc"] == ["body", name]


def test_cancel_all_outlasts_a_swallowed_cancellation():
    # the asyncio Redis client can swallow a cancel that lands inside a command; srca serve then
    # hung on SIGTERM waiting for its heartbeat task
    import asyncio

    from srca.service.worker import cancel_all

    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallowed, as the Redis client did
        await asyncio.sleep(10)

    async def go():
        t = asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_all([t], patience_s=5), timeout=3)
        return t.cancelled()

    assert asyncio.run(go())
