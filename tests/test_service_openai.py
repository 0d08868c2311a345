"""The official openai client (plain and streaming) against the OpenAI-compatible facade."""
from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from redis_fixture import redis_url  # noqa: E402,F401
from test_service_http import serve  # noqa: E402

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url, monkeypatch):
    monkeypatch.setenv("SRCA_TEST_FACADE_KEYS", "sk-test")
    with serve(redis_url, api_keys_env="SRCA_TEST_FACADE_KEYS") as srv:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
        c.srv = srv
        yield c
        c.close()


def test_models_list_the_methods(client):
    ids = {m.id for m in client.models.list()}
    assert {"srca", "srca-beam", "srca-dvts", "srca-majority", "srca-best-of-n", "srca-cot"} <= ids
    assert client.models.retrieve("srca-beam").id == "srca-beam"
    assert {"srca-lean", "srca-paper", "srca-margin-loops"} <= ids  # the named variants too


def test_a_variant_as_the_model(client):
    r = client.chat.completions.create(model="srca-lean", messages=[{"role": "user", "content": "What is 19+23?"}],
                                       extra_body={"n": 4, "waves": 2})
    assert r.model == "srca-lean" and "\\boxed{42}" in r.choices[0].message.content
    assert r.model_extra["srca"]["method"] == "srca"


def test_chat_completion_plain(client):
    r = client.chat.completions.create(model="srca-beam", messages=[
        {"role": "system", "content": "You are careful."}, {"role": "user", "content": "What is 19+23?"}],
        temperature=0.5, extra_body={"n": 2, "max_steps": 8})
    assert r.object == "chat.completion" and r.model == "srca-beam"
    msg = r.choices[0].message
    assert msg.role == "assistant" and "\\boxed{42}" in msg.content and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens > 0  # the scripted engine's prefix cache
    extra = r.model_extra["srca"]
    assert extra["answer"] == "42" and extra["method"] == "beam"


def test_chat_completion_streaming_with_usage(client):
    stream = client.chat.completions.create(model="srca", messages=[{"role": "user", "content": "What is 5+6?"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "\\boxed{11}" in text and text.startswith("Step 0")
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens >= 0


def test_budget_maps_to_length_and_errors_are_openai_shaped(client):
    r = client.chat.completions.create(model="srca", messages=[{"role": "user", "content": "What is 1+2?"}],
                                       max_completion_tokens=60, extra_body={"settle": 0})  # no settling within budget
    assert r.choices[0].finish_reason == "length" and r.model_extra["srca"]["stop_reason"] == "budget"
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["param"] == "model"
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="srca", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"top_p": 7})
    assert e.value.body["param"] == "top_p"
    bad = openai.OpenAI(base_url=client.srv.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
