"""PRMScorer over HTTP against the fake SGLang server (CPU), and its formatting."""
from __future__ import annotations

import math

import pytest

from fake_sglang_server import free_port, server  # noqa: F401 (server is a fixture)
from srca.scorers import ScoreInput
from srca.scorers.prm import PRMScorer, good_bad_prob, reward_to_prob


def items():
    return [ScoreInput("What is 1+1?", ["1+1 is 2.\n\n", "So 2.\n\n"]),
            ScoreInput("What is 1+1?", ["1+1 is 3.\n\n", "WRONG\n\n"]),
            ScoreInput("What is 1+1?", [])]


async def test_reward_mode_reads_last_separator(server):
    prm = PRMScorer(url=server.url, mode="reward")
    s = await prm.score(items())
    assert s[0] == pytest.approx(1 / (1 + math.exp(-2.0))) and s[1] == pytest.approx(1 / (1 + math.exp(2.0)))
    assert s[2] == 0.5 and prm.calls == 1  # one batched call; a path with no steps is neutral
    text = server.state.bodies[-1]["text"][0]
    # Qwen2.5-Math-PRM layout: chat turns, steps stripped and each closed by <extra_0>, nothing after
    assert text.startswith("<|im_start|>system\nPlease reason step by step")
    assert text.endswith("<|im_start|>assistant\n1+1 is 2.<extra_0>So 2.<extra_0>")
    await prm.close()


async def test_token_mode_good_bad_probability(server):
    prm = PRMScorer(url=server.url, mode="token", good_token_id=10, bad_token_id=11, max_batch=1)
    s = await prm.score(items())
    assert s[0] > 0.9 and s[1] < 0.1 and prm.calls == 2
    body = server.state.bodies[-1]
    assert body["token_ids_logprob"] == [10, 11] and body["sampling_params"]["max_new_tokens"] == 1
    assert body["text"] == ["What is 1+1? 1+1 is 3. ки\nWRONG ки"]
    await prm.close()


def test_conversions_and_validation():
    assert reward_to_prob([0.0]) == 0.5 and reward_to_prob([0.0, 0.0]) == 0.5
    assert reward_to_prob([5.0, 0.0], label_index=0) > 0.99
    with pytest.raises(ValueError):
        reward_to_prob([1.0, 2.0, 3.0])
    assert good_bad_prob([[math.log(0.3), 7, None], [math.log(0.1), 8, None]], 7, 8) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        good_bad_prob([[0.0, 7, None]], 7, 8)
    with pytest.raises(ValueError):
        PRMScorer(url="http://x", model_path="/m")
    with pytest.raises(ValueError):
        PRMScorer(url="http://x", mode="nope")
    with pytest.raises(ValueError):
        PRMScorer(url="http://x", mode="token")  # no tokenizer, no token ids


async def test_server_down():
    url = f"http://127.0.0.1:{free_port()}"
    prm = PRMScorer(url=url, retry={"backoff_s": 0.01})
    with pytest.raises(ConnectionError, match=url):
        await prm.score(items()[:1])
    assert prm.retries == 4  # retried like the engines (RetryPolicy's 5 tries)
    await prm.close()
