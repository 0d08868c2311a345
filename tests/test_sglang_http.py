"""SGLangServerEngine against a fake SGLang server (CPU, no model, no SGLang)."""
from __future__ import annotations

import asyncio

import pytest

from fake_sglang_server import CONTINUATION, Server, State, free_port, make_app, server  # noqa: F401 (server is a fixture)
from srca.engines.base import GenRequest
from srca.engines.sglang_http import SGLangServerEngine


def items(bodies: list[dict]) -> list[dict]:
    """One dict per sample from /generate bodies, single or batched (``prompt``: ids or text)."""
    out = []
    for b in bodies:
        key = "input_ids" if "input_ids" in b else "text"
        batched = isinstance(b["rid"], list)
        prompts = b[key] if batched else [b[key]]
        rids = b["rid"] if batched else [b["rid"]]
        params = b["sampling_params"] if batched else [b["sampling_params"]]
        for j, (pr, rid, sp) in enumerate(zip(prompts, rids, params)):
            out.append(dict(prompt=pr, rid=rid, sampling_params=sp, routed_dp_rank=b.get("routed_dp_rank")))
    return out


def make(srv, **kw) -> SGLangServerEngine:
    kw.setdefault("backoff_s", 0.01)
    return SGLangServerEngine(srv.url, **kw)


async def test_generate_maps_meta_info(server):
    eng = make(server)
    assert eng.info.token_ids and eng.remote_tokenizer  # fake tokenizer path: falls back to /tokenize
    assert eng.model == "fake-model"
    ids = eng.encode("Q: 1+1?\n")
    assert ids == [ord(c) for c in "Q: 1+1?\n"]
    [[a, b]] = await eng.generate([GenRequest(input_ids=ids, n=2, temperature=0.7, seed=3, stop=("\n\n",),
                                              max_new_tokens=64, group="p0")])
    for g in (a, b):
        assert g.finish_reason == "stop" and g.stop_str == "\n\n"
        assert g.text == "First step.\n\n"  # stop string kept, as the contract asks
        assert g.token_ids == eng.encode(g.text)
        assert g.generated_tokens == len(g.token_ids) == len(g.logprobs)
        assert g.prompt_tokens == len(ids)
    assert len(server.state.bodies) == 1  # the two samples went as one batched request
    samples = items(server.state.bodies)
    assert len(samples) == 2 and samples[0]["prompt"] == samples[1]["prompt"] == ids
    assert samples[0]["sampling_params"]["sampling_seed"] != samples[1]["sampling_params"]["sampling_seed"]
    assert all(x["sampling_params"]["no_stop_trim"] for x in samples)
    assert len({x["rid"] for x in samples}) == 2
    # the same prefix again comes from the (fake) radix cache
    [[c]] = await eng.generate([GenRequest(input_ids=ids + a.token_ids, max_new_tokens=8)])
    assert c.cached_tokens >= len(ids) + len(a.token_ids) - 1
    assert c.finish_reason == "length" and c.stop_str is None and c.generated_tokens == 8
    await eng.close()


async def test_eos_text_prompt_and_top_logprobs(server):
    eng = make(server)
    [[g]] = await eng.generate([GenRequest(prompt="hello", max_new_tokens=200, top_logprobs=2, top_logprobs_steps=1)])
    assert g.text == CONTINUATION and g.hit_eos
    assert len(g.top_logprobs) == 1 and len(g.top_logprobs[0]) == 2
    assert g.top_logprobs[0][0] == (ord("F"), -0.1) and g.top_logprobs[0][0][1] >= g.top_logprobs[0][1][1]
    assert server.state.bodies[-1]["text"] == "hello" and server.state.bodies[-1]["top_logprobs_num"] == 2
    [[h]] = await eng.generate([GenRequest(prompt="hello", max_new_tokens=5, logprobs=False)])
    assert h.logprobs == [] and server.state.bodies[-1]["return_logprob"] is False
    await eng.close()


async def test_retries_on_503_then_success(server):
    eng = make(server, max_retries=3)
    server.state.fail_next = 2
    [[g]] = await eng.generate([GenRequest(prompt="x", max_new_tokens=4)])
    assert g.generated_tokens == 4 and eng.retries == 2
    rids = [b["rid"] for b in server.state.bodies]
    assert len(set(rids)) == 3  # a fresh rid per try
    server.state.fail_next = 10
    eng2 = make(server, max_retries=1)
    with pytest.raises(RuntimeError, match="503"):
        await eng2.generate([GenRequest(prompt="x", max_new_tokens=4)])
    await eng.close()
    await eng2.close()


async def test_cancel_aborts_in_flight_requests(server):
    eng = make(server)
    task = asyncio.create_task(eng.generate([GenRequest(prompt="SLOW please", n=2, max_new_tokens=4)]))
    for _ in range(500):
        if server.state.started_slow:
            break
        await asyncio.sleep(0.01)
    assert server.state.started_slow
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sent = {x["rid"] for x in items(server.state.bodies)}
    for _ in range(500):
        if set(server.state.aborted) >= sent:
            break
        await asyncio.sleep(0.01)
    assert set(server.state.aborted) >= sent and eng.aborts >= 2
    await eng.close()


async def test_abort_by_group_answers_the_call_instead_of_cancelling_it(server):
    """abort(group): the server is asked to abort that solve's requests and the call returns
    them (finish_reason abort, the tokens the server had generated: none in this stand-in); a
    request of another group is left alone."""
    eng = make(server)
    mine = asyncio.create_task(eng.generate([GenRequest(prompt="SLOW mine", n=2, max_new_tokens=4, group="a")]))
    other = asyncio.create_task(eng.generate([GenRequest(prompt="SLOW other", n=1, max_new_tokens=4, group="b")]))
    for _ in range(500):
        if len(server.state.started_slow) >= 3:
            break
        await asyncio.sleep(0.01)
    eng.abort("a")
    (got,) = await asyncio.wait_for(mine, 10)
    assert [r.finish_reason for r in got] == ["abort", "abort"] and not other.done()
    eng.abort("b")
    (rest,) = await asyncio.wait_for(other, 10)
    assert rest[0].finish_reason == "abort" and len(server.state.aborted) == 3
    assert len(eng._in_flight) == 0
    await eng.close()


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=url.replace(".", r"\.")):
        SGLangServerEngine(url)


async def test_server_down_at_generate_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    eng = SGLangServerEngine(url, model="m", tokenizer=False, max_retries=1, backoff_s=0.01)
    assert not eng.info.token_ids  # no tokenizer anywhere: text mode
    with pytest.raises(ConnectionError, match="not reachable") as e:
        await eng.generate([GenRequest(prompt="x")])
    assert url in str(e.value)
    await eng.close()


async def test_text_mode_without_tokenizer(server):
    server.state.with_tokenize = False
    eng = make(server)
    assert not eng.info.token_ids
    with pytest.raises(RuntimeError, match="text mode"):
        eng.encode("x")
    [[g]] = await eng.generate([GenRequest(prompt="hi", max_new_tokens=5)])
    assert g.text == CONTINUATION[:5]
    assert "<|im_start|>user\nhi<|im_end|>" in eng.chat_prompt([{"role": "user", "content": "hi"}])
    await eng.close()


async def test_affinity_over_two_servers():
    s1, s2 = State(), State()
    with Server(make_app(s1)) as a, Server(make_app(s2)) as b:
        eng = SGLangServerEngine([a.url, b.url], model="m")
        reqs = [GenRequest(prompt=f"p{g}-{k}", group=f"g{g}", max_new_tokens=4) for k in range(3) for g in range(4)]
        await eng.generate(reqs)
        await eng.generate([GenRequest(prompt=f"p{g}-x", group=f"g{g}", max_new_tokens=4) for g in range(4)])
        seen1 = {x["prompt"].split("-")[0] for x in items(s1.bodies)}
        seen2 = {x["prompt"].split("-")[0] for x in items(s2.bodies)}
        assert seen1 and seen2 and not seen1 & seen2  # every group stayed on one server
        assert len(seen1) == len(seen2) == 2  # new groups were spread
        st = eng.stats()
        assert [r["requests"] for r in st["replicas"]] == [8, 8]
        assert len(s1.bodies) == len(s2.bodies) == 2  # one batched request per server and call
        assert all(r["requests_in_flight"] == 0 and r["tokens_in_flight"] == 0 for r in st["replicas"])
        # flush_cache empties every server's prefix cache: the same prompt is prefilled again
        [[before]] = await eng.generate([GenRequest(prompt="p0-x", group="g0", max_new_tokens=4)])
        assert await eng.flush_cache() and (s1.flushes, s2.flushes) == (1, 1)
        [[after]] = await eng.generate([GenRequest(prompt="p0-x", group="g0", max_new_tokens=4)])
        assert before.cached_tokens == before.prompt_tokens and after.cached_tokens == 0
        await eng.close()


async def test_dp_routing_on_one_server(server):
    server.state.dp_size = 2
    eng = make(server, dp_size=2)
    reqs = [GenRequest(prompt=f"q{g}", group=f"g{g}", n=2, max_new_tokens=3) for g in range(4)]
    await eng.generate(reqs)
    by_group: dict[str, set] = {}
    for x in items(server.state.bodies):
        by_group.setdefault(x["prompt"], set()).add(x["routed_dp_rank"])
    assert all(len(v) == 1 for v in by_group.values())
    assert sorted(next(iter(v)) for v in by_group.values()) == [0, 0, 1, 1]
    assert eng.stats()["dp_rank_reported"] == {0: 4, 1: 4}
    await eng.close()


def test_usable_from_several_event_loops(server):
    eng = make(server)
    for _ in range(2):  # a new loop each time: the pooled client is rebuilt per loop
        [[g]] = asyncio.run(eng.generate([GenRequest(prompt="x", max_new_tokens=3)]))
        assert g.generated_tokens == 3
    asyncio.run(eng.close())


async def test_batching_per_replica_and_per_sample_mode(server):
    ids = [ord(c) for c in "Q?"]
    reqs = [GenRequest(input_ids=ids, n=3, max_new_tokens=4, group="a"), GenRequest(prompt="text prompt", max_new_tokens=4)]
    eng = make(server)
    [[a0, a1, a2], [t]] = await eng.generate(reqs)
    # one batch for the token-id prompts, one for the text prompt (a SGLang batch is one kind)
    assert len(server.state.bodies) == 2 and len(server.state.bodies[0]["input_ids"]) == 3
    assert a0.generated_tokens == a1.generated_tokens == t.generated_tokens == 4
    server.state.bodies.clear()
    server.state.fail_next = 1  # a busy answer retries the whole batch under fresh rids
    await eng.generate(reqs[:1])
    first, second = server.state.bodies
    assert len(first["rid"]) == 3 and not set(first["rid"]) & set(second["rid"]) and eng.retries == 1
    await eng.close()
    server.state.bodies.clear()
    per_sample = make(server, batch=False)
    [[b0, b1, b2], [u]] = await per_sample.generate(reqs)
    assert len(server.state.bodies) == 4 and all(isinstance(b["rid"], str) for b in server.state.bodies)
    assert [g.text for g in (b0, b1, b2, u)] == [g.text for g in (a0, a1, a2, t)]
    await per_sample.close()


async def test_server_placed_batches_keep_one_group_each(server):
    """routing="sglang": the server (or a router) places requests; a batch never mixes solves."""
    server.state.dp_size = 2
    eng = make(server, dp_size=2, routing="sglang")
    reqs = [GenRequest(prompt=f"q{g}", group=f"g{g}", n=2, max_new_tokens=3) for g in range(3)]
    await eng.generate(reqs)
    assert sorted(tuple(b["text"]) for b in server.state.bodies) == [("q0", "q0"), ("q1", "q1"), ("q2", "q2")]
    assert all("routed_dp_rank" not in b for b in server.state.bodies)
    await eng.close()


async def test_read_timeout_is_a_timeout_error_and_aborts(server):
    eng = make(server, timeout_s=0.5)
    with pytest.raises(TimeoutError, match="no answer within 0.5 s"):
        await eng.generate([GenRequest(prompt="SLOW please", n=2, max_new_tokens=4)])
    sent = {x["rid"] for x in items(server.state.bodies)}
    for _ in range(500):  # the aborts are sent in the background
        if set(server.state.aborted) >= sent:
            break
        await asyncio.sleep(0.01)
    assert len(sent) == 2 and set(server.state.aborted) >= sent and eng.errors == 1
    await eng.close()


async def test_connection_lost_is_retried():
    """A server that accepts and drops every connection: retried, then a ConnectionError naming it."""
    import socket
    import threading

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.settimeout(0.2)
    stop = threading.Event()

    def drop():  # in a thread: the engine's constructor makes blocking calls too
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            conn.recv(100)
            conn.close()

    t = threading.Thread(target=drop, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{lsock.getsockname()[1]}"
    try:
        eng = SGLangServerEngine(url, model="m", tokenizer=False, max_retries=2, backoff_s=0.01)
        with pytest.raises(ConnectionError, match="not reachable"):
            await eng.generate([GenRequest(prompt="x", max_new_tokens=2)])
        assert eng.retries == 2 and eng.aborts == 3  # it may have reached the server: each try aborted
        await eng.close()
    finally:
        stop.set()
        t.join(timeout=2)
        lsock.close()


async def test_tail_logprobs_scored_by_a_prefill_after_sampling(server):
    """As the in-process engine: a request with ``logprob_tail`` (and token ids) is sampled
    without logprobs, then one batched prefill-only /generate scores each sample's tail."""
    import math

    from fake_sglang_server import prefill_lp

    eng = make(server)
    ids = eng.encode("Q: 1+1?\n")
    [[a, b]] = await eng.generate([GenRequest(input_ids=ids, n=2, temperature=0.7, seed=3, max_new_tokens=64,
                                              logprob_tail=4)])
    gen, score = server.state.bodies[-2:]
    assert gen["return_logprob"] == [False, False]
    assert score["sampling_params"] == [{"max_new_tokens": 0}] * 2 and score["return_logprob"] == [True, True]
    for r, full, start in zip((a, b), score["input_ids"], score["logprob_start_len"]):
        k = min(4, len(r.token_ids))
        assert full == ids + r.token_ids and start == len(full) - k - 1
        assert all(math.isnan(x) for x in r.logprobs[:-k]) and r.logprobs[-k:] == [prefill_lp(t) for t in r.token_ids[-k:]]
    # text prompts and inline mode keep logprobs on the sampling call
    n = len(server.state.bodies)
    [[c]] = await eng.generate([GenRequest(prompt="Q: 2+2?\n", max_new_tokens=8, logprob_tail=4)])
    eng.tail_logprobs = "inline"
    [[d]] = await eng.generate([GenRequest(input_ids=ids, max_new_tokens=8, logprob_tail=4)])
    assert len(server.state.bodies) == n + 2 and server.state.bodies[-1]["return_logprob"] is True
    assert not any(math.isnan(x) for x in c.logprobs + d.logprobs)
    with pytest.raises(ValueError, match="tail_logprobs"):
        make(server, tail_logprobs="never")
    await eng.close()


async def test_the_submit_window_holds_steps_only_while_busy(server):
    """As in process: a tree step (may_wait) waits for the window only while this client has
    submit_window_busy samples in flight; other requests, and a step on an idle client, go at
    once. 200 ms and 256 by default; bad values name the field."""
    import time

    default = make(server)
    assert (default.gate.window_s, default.gate.busy) == (0.2, 256)
    await default.close()
    for bad, field in ((-1, "submit_window_ms"), (20_000, "submit_window_ms"), (-2, "submit_window_busy")):
        with pytest.raises(ValueError, match=field):
            make(server, **{field: bad})
    server.state.slow_s = 1.5
    eng = make(server, submit_window_ms=1000, submit_window_busy=2)

    async def timed(req: GenRequest) -> float:
        t = time.monotonic()
        await eng.generate([req])
        return time.monotonic() - t

    idle_step = await timed(GenRequest(prompt="q", n=1, max_new_tokens=4, may_wait=True))
    slow = asyncio.create_task(eng.generate([GenRequest(prompt="SLOW please", n=2, max_new_tokens=4)]))
    for _ in range(500):
        if server.state.started_slow:
            break
        await asyncio.sleep(0.01)
    plain, step = await asyncio.gather(timed(GenRequest(prompt="a", n=1, max_new_tokens=4)),
                                       timed(GenRequest(prompt="b", n=1, max_new_tokens=4, may_wait=True)))
    await slow
    assert idle_step < 0.7 and plain < 0.7, (idle_step, plain)  # no window (1 s) for them
    assert step >= 0.99, step
    assert eng.window_stats() == {"window_ms": 1000.0, "busy": 2, "held": 1, "windows": 1}
    await eng.close()


def test_loop_gates_give_each_event_loop_its_own_window():
    """LoopGates: a gate per event loop (a window is one loop's future), with the template's
    settings; a new template (a benchmark's ':window0') takes effect on the next call."""
    from srca.engines.sglang_common import LoopGates, SubmitGate

    gates, tpl = LoopGates(), SubmitGate(0.3, 7)

    async def one(t):
        return gates.get(t), gates.get(t)

    a1, a2 = asyncio.run(one(tpl))
    b1, _ = asyncio.run(one(tpl))
    assert a1 is a2 and a1 is not b1 and (a1.window_s, a1.busy) == (0.3, 7)

    async def swap():
        first = gates.get(tpl)
        return first, gates.get(SubmitGate(0, 7))

    first, second = asyncio.run(swap())
    assert first is not second and second.window_s == 0.0

    async def held_once():  # a gate that holds (busy 0): counted over every loop's gate
        await gates.get(SubmitGate(0.01, 0)).wait(0)

    asyncio.run(held_once())
    asyncio.run(held_once())
    assert gates.stats(tpl) == {"window_ms": 300.0, "busy": 7, "held": 2, "windows": 2}
