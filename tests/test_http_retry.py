"""One retry policy for every HTTP client (srca.engines.httpclient.RetryPolicy): its rules, and
each client (SGLang server engine, OpenAI-compatible engine, PRM scorer) against a real local
aiohttp server that answers what each test scripts."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from fake_sglang_server import free_port
from srca.engines.base import GenRequest
from srca.engines.httpclient import (ConnectFailed, ConnectionLost, HTTPStatusError, ReadTimedOut, Response,
                                     RetryPolicy, retry_after_s, retry_policy, send_with_retries)
from srca.engines.openai_compat import OpenAIEngine
from srca.engines.sglang_http import SGLangServerEngine
from srca.scorers import ScoreInput
from srca.scorers.prm import PRMScorer

FAST = RetryPolicy(attempts=4, backoff_s=0.01)


# -- a scripted server ------------------------------------------------------------------------
@dataclass
class Script:
    """Answers to give, in order, per path (then the path's normal answer), and what came in."""

    answers: dict[str, list[tuple[int, object, dict]]] = field(default_factory=dict)
    hits: list[tuple[str, dict]] = field(default_factory=list)

    def fail(self, path: str, *answers: tuple[int, object, dict]) -> None:
        self.answers.setdefault(path, []).extend(answers)

    def tries(self, path: str) -> int:
        return sum(p == path for p, _ in self.hits)


def ok_answer(path: str, body: dict) -> object:
    if path == "/generate":  # SGLang's native answer, single or batched
        one = {"text": "ok", "meta_info": {"finish_reason": {"type": "length", "length": 2}, "prompt_tokens": 1,
                                           "completion_tokens": 2}}
        return [one] * len(body["text"]) if isinstance(body["text"], list) else one
    if path == "/v1/completions":
        return {"choices": [{"index": i, "text": "ok", "finish_reason": "length"} for i in range(body["n"])],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2 * body["n"]}}
    if path == "/classify":
        return [{"embedding": [2.0]} for _ in body["text"]]
    return None


def make_app(script: Script) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.json() if request.can_read_body else {}
        script.hits.append((path, body))
        queued = script.answers.get(path)
        if queued:
            status, payload, headers = queued.pop(0)
            if isinstance(payload, str):
                return web.Response(status=status, text=payload, headers=headers)
            return web.json_response(payload, status=status, headers=headers)
        payload = ok_answer(path, body)
        if payload is None:  # no /tokenize here: the SGLang engine runs in text mode
            return web.Response(status=404, text="not found")
        return web.json_response(payload)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class AioServer:
    """An aiohttp app on a free port, served from its own thread and loop (the SGLang engine's
    constructor makes blocking calls, which would stall a server on the test's own loop)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def __enter__(self) -> "AioServer":
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            runner = web.AppRunner(self.app)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = "http://127.0.0.1:%d" % runner.addresses[0][1]
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10), "the test server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def scripted():
    script = Script()
    with AioServer(make_app(script)) as srv:
        yield script, srv.url


# -- the three clients, driven the same way -----------------------------------------------------
class _EngineClient:
    async def call(self) -> None:
        [[g]] = await self.obj.generate([GenRequest(prompt="x", max_new_tokens=2)])
        assert g.text == "ok"


class SGLangClient(_EngineClient):
    path = "/generate"

    def __init__(self, url: str, retry: RetryPolicy) -> None:
        self.obj = SGLangServerEngine(url, model="m", tokenizer=False, retry=retry)


class OpenAIClient(_EngineClient):
    path = "/v1/completions"

    def __init__(self, url: str, retry: RetryPolicy) -> None:
        self.obj = OpenAIEngine(url, model="m", retry=retry)


class PRMClient:
    path = "/classify"

    def __init__(self, url: str, retry: RetryPolicy) -> None:
        self.obj = PRMScorer(url=url, mode="reward", retry=retry)

    async def call(self) -> None:
        [s] = await self.obj.score([ScoreInput("q", ["a step\n\n"])])
        assert s == pytest.approx(1 / (1 + 2.718281828459045 ** -2.0))


CLIENTS = [SGLangClient, OpenAIClient, PRMClient]
IDS = ["sglang", "openai", "prm"]


@pytest.mark.parametrize("kind", CLIENTS, ids=IDS)
async def test_transient_failures_then_success(scripted, kind):
    script, url = scripted
    c = kind(url, FAST)
    script.fail(c.path, (503, {"error": "busy"}, {}), (429, "slow down", {"Retry-After": "0"}),
                (502, "bad gateway", {}))
    await c.call()
    assert script.tries(c.path) == 4 and c.obj.retries == 3
    await c.obj.close()


@pytest.mark.parametrize("kind", CLIENTS, ids=IDS)
async def test_a_client_error_surfaces_at_once_with_the_servers_message(scripted, kind):
    script, url = scripted
    c = kind(url, FAST)
    script.fail(c.path, (400, {"error": {"message": "prompt is longer than the context"}}, {}))
    with pytest.raises(HTTPStatusError, match="answered 400 on .*: prompt is longer than the context") as e:
        await c.call()
    assert e.value.status == 400 and e.value.message == "prompt is longer than the context"
    assert url in str(e.value)
    assert script.tries(c.path) == 1 and c.obj.retries == 0
    script.fail(c.path, (422, {"detail": "n: must be >= 1"}, {}), (500, "boom", {}))  # FastAPI's spelling
    with pytest.raises(RuntimeError, match="answered 422 on .*: n: must be >= 1"):
        await c.call()
    with pytest.raises(HTTPStatusError, match="answered 500 on .*: boom"):  # a 500 is not retried either
        await c.call()
    assert script.tries(c.path) == 3 and c.obj.retries == 0
    await c.obj.close()


@pytest.mark.parametrize("kind", CLIENTS, ids=IDS)
async def test_exhausted_retries_name_the_status_and_the_tries(scripted, kind):
    script, url = scripted
    c = kind(url, RetryPolicy(attempts=3, backoff_s=0.01))
    script.fail(c.path, *[(503, {"error": {"message": "server overloaded"}}, {})] * 5)
    with pytest.raises(HTTPStatusError, match="still answered 503 on .* after 3 tries: server overloaded") as e:
        await c.call()
    assert e.value.status == 503 and url in str(e.value)
    assert script.tries(c.path) == 3 and c.obj.retries == 2
    await c.obj.close()


@pytest.mark.parametrize("kind", CLIENTS, ids=IDS)
async def test_unreachable_server_is_a_connection_error_after_the_tries(kind):
    url = f"http://127.0.0.1:{free_port()}"
    c = kind(url, RetryPolicy(attempts=2, backoff_s=0.01))
    with pytest.raises(ConnectionError, match="not reachable .* after 2 tries") as e:
        await c.call()
    assert url in str(e.value) and c.obj.retries == 1
    await c.obj.close()


async def test_retry_after_is_honoured(scripted):
    script, url = scripted
    c = OpenAIClient(url, RetryPolicy(attempts=2, backoff_s=0.0))
    script.fail(c.path, (429, "slow down", {"Retry-After": "1"}))
    t = time.monotonic()
    await c.call()
    assert time.monotonic() - t >= 0.9 and script.tries(c.path) == 2
    await c.obj.close()


# -- the policy's rules -----------------------------------------------------------------------
def resp(status: int, **headers: str) -> Response:
    return Response(status, {k.lower().replace("_", "-"): v for k, v in headers.items()}, b"")


def test_backoff_is_exponential_jittered_and_bounded():
    p = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0, jitter=0.25)
    assert [p.delay_s(k, rand=lambda: 0.5) for k in (1, 2, 3, 4, 9)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert p.delay_s(1, rand=lambda: 0.0) == 0.375 and p.delay_s(1, rand=lambda: 1.0) == 0.625
    assert p.delay_s(3, rand=lambda: 1.0) == 2.5 and p.delay_s(4, rand=lambda: 1.0) == 3.0  # never above the cap
    assert p.delay_s(10_000) == 3.0  # no overflow
    ds = {p.delay_s(2) for _ in range(50)}
    assert len(ds) > 1 and all(0.75 <= d <= 1.25 for d in ds)  # jittered, within +-25%


def test_retry_after_seconds_or_date_capped():
    p = RetryPolicy(max_retry_after_s=30.0)
    assert p.delay_s(1, resp(429, retry_after="2")) == 2.0
    assert p.delay_s(1, resp(503, retry_after="3600")) == 30.0
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    assert 15 <= p.delay_s(1, resp(503, retry_after=soon)) <= 20
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    for junk in ("soon", "nan", "inf", ""):
        assert retry_after_s(junk) is None
    assert 0.1875 <= p.delay_s(1, resp(503, retry_after="soon")) <= 0.3125  # unreadable: the backoff
    assert p.delay_s(1, resp(503)) <= 0.3125
    assert RetryPolicy(retry_after=False).delay_s(1, resp(429, retry_after="9"), rand=lambda: 0.5) == 0.25


def test_policy_validates_itself():
    assert RetryPolicy(statuses=[429, 503]).statuses == frozenset({429, 503})
    assert RetryPolicy().retries_status(504) and not RetryPolicy().retries_status(500)
    with pytest.raises(ValueError, match="only 429 and 5xx"):
        RetryPolicy(statuses={404})
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(TypeError, match="attempts"):
        RetryPolicy(attempts=2.0)
    with pytest.raises(ValueError, match="backoff_s"):
        RetryPolicy(backoff_s=-1)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.0)
    with pytest.raises(TypeError, match="statuses"):
        RetryPolicy(statuses="503")
    # the clients' options: a policy, a dict of its fields, and the engines' two shorthands
    assert retry_policy("E", {"attempts": 2}).attempts == 2
    assert retry_policy("E", FAST, max_retries=0, backoff_s=1.0) == RetryPolicy(attempts=1, backoff_s=1.0)
    with pytest.raises(ValueError, match=r"E\.max_retries: must be >= 0"):
        retry_policy("E", max_retries=-1)
    with pytest.raises(TypeError, match=r"E\.retry"):
        retry_policy("E", {"tries": 2})  # unknown keys are refused
    with pytest.raises(ValueError, match="OpenAIEngine.max_retries"):
        OpenAIEngine("http://127.0.0.1:1", model="m", max_retries=-1)


async def test_only_idempotent_requests_are_retried_after_a_broken_connection():
    calls = []

    async def broken() -> Response:
        calls.append(1)
        raise ConnectionLost("reset by peer")

    with pytest.raises(ConnectionError, match="not retried, the request may have taken effect"):
        await send_with_retries(broken, FAST, what="S", path="/p", timeout_s=1.0)
    assert len(calls) == 1
    with pytest.raises(ConnectionError, match="not reachable .* after 4 tries"):
        await send_with_retries(broken, FAST, what="S", path="/p", timeout_s=1.0, idempotent=True)
    assert len(calls) == 5

    async def refused() -> Response:  # never reached the server: retried either way
        calls.append(1)
        raise ConnectFailed("refused")

    with pytest.raises(ConnectionError, match="not reachable"):
        await send_with_retries(refused, FAST, what="S", path="/p", timeout_s=1.0)
    assert len(calls) == 9

    async def slow() -> Response:  # a read timeout is not retried
        calls.append(1)
        raise ReadTimedOut("no answer")

    with pytest.raises(TimeoutError, match="S: no answer within 1.0 s on /p"):
        await send_with_retries(slow, FAST, what="S", path="/p", timeout_s=1.0, idempotent=True)
    assert len(calls) == 10
