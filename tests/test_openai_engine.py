"""OpenAIEngine against a fake OpenAI-compatible /v1/completions server (CPU, no model)."""
from __future__ import annotations

import asyncio
import logging

import pytest

from fake_sglang_server import free_port, server  # noqa: F401 (server is a fixture)
from srca.engines.base import GenRequest
from srca.engines.openai_compat import OpenAIEngine


def make(srv, **kw) -> OpenAIEngine:
    kw.setdefault("backoff_s", 0.01)
    return OpenAIEngine(srv.url, model="fake", **kw)


async def test_completions_n_stop_seed_logprobs(server):
    eng = make(server)
    assert eng.base_url.endswith("/v1") and not eng.info.token_ids
    [[a, b]] = await eng.generate([GenRequest(prompt="Q?", n=2, temperature=1.0, seed=5, stop=("\n\n",),
                                              max_new_tokens=64, top_logprobs=2)])
    body = server.state.completions[-1]
    assert body["n"] == 2 and body["seed"] == 5 and body["stop"] == ["\n\n"] and body["logprobs"] == 2
    assert body["prompt"] == "Q?" and body["max_tokens"] == 64
    for g in (a, b):
        assert g.finish_reason == "stop" and g.stop_str == "\n\n" and g.text == "First step.\n\n"
        assert g.generated_tokens == len(g.logprobs) == len("First step.")  # the stop is trimmed server-side
        assert g.token_ids == []  # text mode without a tokenizer
        assert len(g.top_logprobs) == 1 and [lp for _, lp in g.top_logprobs[0]] == [-0.1, -2.5]
        assert g.prompt_tokens == 2
    assert eng.info.reports_cached_tokens
    [[c]] = await eng.generate([GenRequest(prompt="Q?", max_new_tokens=3)])
    assert c.finish_reason == "length" and c.stop_str is None and c.cached_tokens == 2 and c.generated_tokens == 3
    [[d]] = await eng.generate([GenRequest(prompt="Z", max_new_tokens=500, logprobs=False)])
    assert d.hit_eos and d.logprobs == []
    await eng.close()


async def test_no_cached_tokens_reported_warns_once(server, caplog):
    server.state.report_cached = False
    eng = make(server)
    with caplog.at_level(logging.WARNING, logger="srca.engines.openai_compat"):
        await eng.generate([GenRequest(prompt="a", max_new_tokens=2)])
        await eng.generate([GenRequest(prompt="a", max_new_tokens=2)])
    warnings = [r for r in caplog.records if "cached_tokens" in r.getMessage()]
    assert len(warnings) == 1 and not eng.info.reports_cached_tokens
    await eng.close()


async def test_stop_fallback_without_matched_stop(server, caplog):
    server.state.report_matched_stop = False
    eng = make(server)
    with caplog.at_level(logging.WARNING, logger="srca.engines.openai_compat"):
        [[g]] = await eng.generate([GenRequest(prompt="a", max_new_tokens=64, stop=("\n\n",))])
    assert g.stop_str == "\n\n" and g.text.endswith("\n\n")
    assert any("stop string" in r.getMessage() for r in caplog.records)
    await eng.close()


async def test_retries_then_success_and_give_up(server):
    eng = make(server, max_retries=2)
    server.state.fail_next = 2
    [[g]] = await eng.generate([GenRequest(prompt="x", max_new_tokens=2)])
    assert g.generated_tokens == 2 and eng.retries == 2
    server.state.fail_next = 5
    with pytest.raises(RuntimeError, match="503"):
        await eng.generate([GenRequest(prompt="x", max_new_tokens=2)])
    await eng.close()


async def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    eng = OpenAIEngine(url, model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(ConnectionError, match="not reachable") as e:
        await eng.generate([GenRequest(prompt="x")])
    assert url in str(e.value)
    await eng.close()


async def test_cancel_closes_the_request(server):
    eng = make(server)
    task = asyncio.create_task(eng.generate([GenRequest(prompt="SLOW", max_new_tokens=2)]))
    for _ in range(300):
        if server.state.started_slow:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [[g]] = await eng.generate([GenRequest(prompt="x", max_new_tokens=2)])  # still usable
    assert g.generated_tokens == 2
    await eng.close()


def test_chat_prompt_generic_chatml():
    eng = OpenAIEngine("http://127.0.0.1:1", model="m")
    p = eng.chat_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert p == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
