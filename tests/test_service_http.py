"""The service over real HTTP (uvicorn in a thread) against a real redis-server, with the
scripted engine."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("redis")

from redis_fixture import ServerThread, own_redis, redis_url, unique_prefix  # noqa: E402,F401

from srca.engines import make_engine  # noqa: E402
from srca.engines.fake import ScriptedEngine  # noqa: E402
from srca.service import ServiceConfig, create_app  # noqa: E402

pytestmark = pytest.mark.redis


def arith(prompt: str, req, i: int) -> str:
    """Three steps, then a boxed sum of the last 'What is A+B' in the prompt; probes answer it too.
    A request without stop strings (a whole sample) writes what is left of them at once."""
    m = re.findall(r"What is (\d+) ?\+ ?(\d+)", prompt)
    ans = int(m[-1][0]) + int(m[-1][1]) if m else 0
    if prompt.endswith("\\boxed{"):
        return f"{ans}}}"
    steps = prompt.count("Step ")
    rest = "".join(f"Step {k}: add the numbers.\n\n" for k in range(steps, 3))
    if not req.stop:
        return rest + f"The answer is \\boxed{{{ans}}}."
    return rest[: rest.index("\n\n") + 2] if rest else f"The answer is \\boxed{{{ans}}}."


def solves_run(engine) -> int:
    """How many solves reached the engine (each solve tags its requests with its own group)."""
    return len({r.group for batch in engine.calls for r in batch})


@contextlib.contextmanager
def serve(redis: str | None, engine=None, **cfg):
    engine = engine or make_engine("fake", script=arith)
    conf = ServiceConfig(redis_url=redis, redis_prefix=cfg.pop("redis_prefix", unique_prefix()), job_lease_s=1.0,
                         redis_retry_s=0.2, **cfg)
    with ServerThread(create_app(conf, engine=engine)) as srv:
        srv.engine = engine
        yield srv


def wait_job(client: httpx.Client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] in states:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {states}: {r.json()}")


# -- /solve ---------------------------------------------------------------------------------
def test_solve_json_cache_and_curl_style_body(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/solve", json={"problem": "What is 2+3?", "n": 2})
        assert r.status_code == 200, r.text
        sol = r.json()
        assert sol["answer"] == "5" and sol["stop_reason"] == "finished" and sol["config"]["n"] == 2
        assert sol["usage"]["generated_tokens"] > 0 and r.headers["x-srca-cache"] == "miss"
        # same problem + config + model + seed: from the cache, no engine work
        before = solves_run(srv.engine)
        r2 = c.post("/solve", json={"problem": "What is 2+3?", "n": 2})
        assert r2.headers["x-srca-cache"] == "hit" and r2.json() == sol
        assert solves_run(srv.engine) == before
        # another seed is another key
        r3 = c.post("/solve", json={"problem": "What is 2+3?", "n": 2, "seed": 7})
        assert r3.headers["x-srca-cache"] == "miss" and solves_run(srv.engine) == before + 1
        # a form body (what curl -d sends without -H) is refused: a browser may send one cross-site
        r4 = c.post("/solve", content=b'{"problem": "What is 4+4?"}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
        assert r4.status_code == 415 and r4.json()["detail"][0]["loc"] == ["header", "content-type"]


def test_a_variant_name_as_the_method(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/solve", json={"problem": "What is 2+3?", "method": "srca-lean", "n": 4, "waves": 2})
        assert r.status_code == 200, r.text
        cfg = r.json()["config"]  # srca-lean's fields, the request's waves over its 4
        assert (cfg["method"], cfg["wave_consensus"], cfg["confidence"], cfg["waves"]) == ("srca", 0.4, "mean", 2)
        assert r.json()["answer"] == "5"
        bad = c.post("/solve", json={"problem": "q", "method": "srca-nope"})
        assert bad.status_code == 422 and "srca-lean" in bad.text


def test_stream_sse_events_as_they_happen(redis_url):
    engine = make_engine("fake", script=arith, latency_s=0.05)
    with serve(redis_url, engine) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        events, arrivals = [], []
        with c.stream("POST", "/solve", json={"problem": "What is 20+22?", "stream": True, "n": 2,
                                                 "probe_at": "step"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    ev = json.loads(line[6:])
                    assert ev["type"] == name
                    events.append(ev)
                    arrivals.append(time.monotonic())
        kinds = [e["type"] for e in events]
        assert kinds[-1] == "final" and {"step", "checkpoint", "select"} <= set(kinds)
        assert events[-1]["answer"] == "42" and events[-1]["solution"]["answer"] == "42"
        # streamed, not buffered: the first event came well before the last (>= 3 engine calls apart)
        assert arrivals[-1] - arrivals[0] > 0.1


def test_a_quiet_stream_sends_keepalive_comments(redis_url, monkeypatch):
    import srca.service.streaming as streaming

    monkeypatch.setattr(streaming, "KEEPALIVE_S", 0.05)  # each engine call below takes 0.3 s
    engine = make_engine("fake", script=arith, latency_s=0.3)
    with serve(redis_url, engine) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        with c.stream("POST", "/solve", json={"problem": "What is 1+2?", "stream": True, "n": 2}) as r:
            lines = [x for x in r.iter_lines() if x]
    assert lines.count(": keepalive") >= 3 and lines[-2] == "event: final"
    assert json.loads(lines[-1][6:])["answer"] == "3"


@pytest.mark.parametrize("step_by_step", [False, True])
def test_budget_and_deadline_return_best_so_far(redis_url, step_by_step):
    # whole lineages (the default): the first wave's call would take 2 s; the deadline stops it
    # at 0.84 s, when its samples had written about two fifths of their steps (none its answer), and they
    # are probed (quick calls) before the deadline. Step by step: a call per step of 0.3 s, each
    # probed; the deadline comes after a few of them
    class SlowWhole(ScriptedEngine):
        async def generate(self, requests):
            self.latency_s = 2.0 if not requests[0].stop and requests[0].temperature > 0 else 0.0
            return await super().generate(requests)

    slow = make_engine("fake", script=arith, latency_s=0.3) if step_by_step else SlowWhole(arith)
    extra = {"probe_at": "step"} if step_by_step else {}
    with serve(redis_url, slow) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        t0 = time.monotonic()
        r = c.post("/solve", json={"problem": "What is 1+2?", "deadline_s": 1.05, **extra})
        assert r.status_code == 200 and r.json()["stop_reason"] == "deadline"
        assert r.json()["answer"] == "3"
        assert time.monotonic() - t0 < 2.5
        assert {c["source"] for c in r.json()["candidates"]} == {"checkpoint"}  # no path had ended
    slow = make_engine("fake", script=arith, latency_s=0.3)
    with serve(redis_url, slow) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        # a token budget goes step by step; the arith probes answer at every step
        r = c.post("/solve", json={"problem": "What is 1+2?", "max_tokens_total": 60, "settle": 0, **extra})
        assert r.status_code == 200 and r.json()["stop_reason"] == "budget" and r.json()["answer"] == "3"


def test_client_disconnect_cancels_the_solve(redis_url):
    never_done = make_engine("fake", script=lambda p, r, i: "\\boxed{1}" if p.endswith("{") else "Step.\n\n",
                             latency_s=0.1)
    with serve(redis_url, never_done) as srv:
        async def go():
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
                with pytest.raises(httpx.TimeoutException):
                    # step by step: a solve that keeps calling the engine
                    await c.post("/solve", json={"problem": "loop forever", "max_steps": 1000, "n": 1,
                                                 "probe_at": "step"}, timeout=0.6)

        asyncio.run(go())
        time.sleep(0.4)
        calls = len(never_done.calls)
        time.sleep(0.5)
        assert len(never_done.calls) == calls, "engine still working after the client left"
        m = httpx.get(srv.url + "/metrics").text
        assert re.search(r"^srca_solves_in_flight 0\.0$", m, re.M)


def test_200_concurrent_solves(redis_url):
    engine = make_engine("fake", script=arith, latency_s=0.01)
    with serve(redis_url, engine) as srv:
        async def go():
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as c:
                rs = await asyncio.gather(*(c.post("/solve", json={"problem": f"What is {i}+{i % 50}?", "n": 2})
                                            for i in range(200)))
            return rs

        rs = asyncio.run(go())
        assert [r.status_code for r in rs] == [200] * 200
        assert all(r.json()["answer"] == str(i + i % 50) for i, r in enumerate(rs))


def test_single_flight_in_process_and_across_replicas(redis_url):
    slow = make_engine("fake", script=arith, latency_s=0.2)
    prefix = unique_prefix()
    with serve(redis_url, slow, redis_prefix=prefix) as a, serve(redis_url, slow, redis_prefix=prefix) as b:
        async def go():
            async with httpx.AsyncClient(timeout=30) as c:
                body = {"problem": "What is 7+8?", "n": 2, "seed": 99}
                return await asyncio.gather(*(c.post((a.url, b.url)[i % 2] + "/solve", json=body) for i in range(20)))

        rs = asyncio.run(go())
        assert all(r.status_code == 200 and r.json()["answer"] == "15" for r in rs)
        assert solves_run(slow) == 1  # 20 requests over two replicas, one solve


# -- jobs -----------------------------------------------------------------------------------
def test_job_lifecycle(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/jobs", json={"problem": "What is 30+12?", "method": "beam", "n": 2})
        assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['id']}"
        job = wait_job(c, r.json()["id"])
        assert job["state"] == "done" and job["result"]["answer"] == "42" and job["attempts"] == 1
        assert job["result"]["method"] == "beam"
        assert c.delete(f"/jobs/{job['id']}").status_code == 409  # already done
        assert c.get("/jobs/nope").status_code == 404 and c.delete("/jobs/nope").status_code == 404


@pytest.mark.parametrize("step_by_step", [False, True])
def test_job_cancel_stops_the_engine(redis_url, step_by_step):
    # step by step: a solve that keeps calling the engine; whole lineages (the default): one call
    # that would take a minute
    forever = make_engine("fake", script=lambda p, r, i: "\\boxed{1}" if p.endswith("{") else "Step.\n\n",
                          latency_s=0.05 if step_by_step else 60.0)
    extra = {"probe_at": "step"} if step_by_step else {}
    with serve(redis_url, forever) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        job_id = c.post("/jobs", json={"problem": "loop", "max_steps": 10000, "n": 1, **extra}).json()["id"]
        wait_job(c, job_id, ("running",))
        time.sleep(0.2)
        assert len(forever.calls) > 0
        r = c.delete(f"/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        time.sleep(0.4)  # the worker polls job states every 0.1 s
        calls = len(forever.calls)
        time.sleep(0.4)
        assert len(forever.calls) == calls, "engine still working on a cancelled job"
        assert not forever._waiting, "an engine call of the cancelled job is still waiting"
        assert c.get(f"/jobs/{job_id}").json()["state"] == "cancelled"


def test_redis_outage_solve_works_jobs_503_then_recovers(own_redis):
    with serve(own_redis.url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        job_before = c.post("/jobs", json={"problem": "What is 1+1?"}).json()["id"]
        assert wait_job(c, job_before)["state"] == "done"
        own_redis.kill()
        r = c.post("/solve", json={"problem": "What is 3+3?"})
        assert r.status_code == 200 and r.json()["answer"] == "6" and r.headers["x-srca-cache"] == "miss"
        r = c.post("/jobs", json={"problem": "What is 3+3?"})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert c.get(f"/jobs/{job_before}").status_code == 503
        ready = c.get("/readyz").json()
        assert ready["redis"] == "down" and ready["engine"] == "ready"
        assert c.get("/metrics").status_code == 200
        own_redis.start()
        deadline = time.monotonic() + 10
        while c.post("/jobs", json={"problem": "What is 5+5?"}).status_code != 202:
            assert time.monotonic() < deadline, "no recovery after Redis came back"
            time.sleep(0.1)
        assert c.get("/readyz").json()["redis"] == "up"
        assert c.get(f"/jobs/{job_before}").json()["state"] == "done"  # appendonly kept it
        job = c.post("/jobs", json={"problem": "What is 6+6?"}).json()["id"]
        assert wait_job(c, job)["result"]["answer"] == "12"
        c.post("/solve", json={"problem": "What is 9+9?"})
        assert c.post("/solve", json={"problem": "What is 9+9?"}).headers["x-srca-cache"] == "hit"


# -- auth, health, metrics ------------------------------------------------------------------
def test_api_keys_and_rate_limit(redis_url, monkeypatch):
    monkeypatch.setenv("SRCA_TEST_KEYS", "k-alpha, k-beta")
    with serve(redis_url, api_keys_env="SRCA_TEST_KEYS", rate_limit_per_min=3) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        body = {"problem": "What is 1+1?"}
        assert c.post("/solve", json=body).status_code == 401
        r = c.post("/solve", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/models").status_code == 401
        ok = {"Authorization": "Bearer k-alpha"}
        assert [c.post("/solve", json=body, headers=ok).status_code for _ in range(3)] == [200] * 3
        r = c.post("/solve", json=body, headers=ok)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert c.post("/solve", json=body, headers={"Authorization": "Bearer k-beta"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_health_ready_metrics(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
        assert ready["ready"] and ready["engine"] == "ready" and ready["redis"] == "up" and ready["model"] == "scripted"
        c.post("/solve", json={"problem": "What is 2+2?"})
        c.post("/solve", json={"problem": "What is 2+2?"})
        c.post("/solve", json={"problem": ""})
        m = c.get("/metrics").text
        assert 'srca_requests_total{method="POST",route="/solve",status="200"} 2.0' in m
        assert 'srca_requests_total{method="POST",route="/solve",status="422"} 1.0' in m
        assert 'srca_cache_lookups_total{result="hit"} 1.0' in m
        assert re.search(r'srca_tokens_total\{kind="generated"\} [1-9]', m)
        assert "srca_request_latency_seconds_bucket" in m and "srca_queue_depth 0.0" in m


# -- bad input: every one a 4xx naming the field, never a 500 ----------------------------------
BAD = [
    ("/solve", {"problem": ""}, 422, "problem"),
    ("/solve", {"problem": "   "}, 422, "problem"),
    ("/solve", {"problem": "x" * 20_001}, 422, "problem"),
    ("/solve", {}, 422, "problem"),
    ("/solve", {"problem": 12}, 422, "problem"),
    ("/solve", {"problem": "q", "n": 0}, 422, "n"),
    ("/solve", {"problem": "q", "n": 5000}, 422, "n"),
    ("/solve", {"problem": "q", "n": "4"}, 422, "n"),
    ("/solve", {"problem": "q", "n": 2.5}, 422, "n"),
    ("/solve", {"problem": "q", "temperature": "hot"}, 422, "temperature"),
    ("/solve", {"problem": "q", "temperature": 9}, 422, "temperature"),
    ("/solve", {"problem": "q", "method": "nope"}, 422, "method"),
    ("/solve", {"problem": "q", "scorer": "nope"}, 422, "scorer"),
    ("/solve", {"problem": "q", "bogus": 1}, 422, "bogus"),
    ("/solve", {"problem": "q", "checkpoints": 1}, 422, "checkpoints"),
    ("/solve", {"problem": "q", "beam_width": 3}, 422, "beam_width"),
    ("/solve", {"problem": "q", "deadline_s": -1}, 422, "deadline_s"),
    ("/solve", {"problem": "q", "max_tokens_total": 0}, 422, "max_tokens_total"),
    ("/solve", {"problem": "q", "stream": "yes"}, 422, "stream"),
    ("/solve", b"{not json", 422, None),
    ("/solve", b'{"problem": "\\ud800 lone surrogate"}', 422, None),
    ("/solve", b'{"problem": "q", "deadline_s": Infinity}', 422, None),
    ("/solve", b"[" * 100_000 + b"]" * 100_000, 422, None),
    ("/solve", b"\xff\xfe", 422, None),
    ("/solve", b"", 422, None),
    ("/solve", [1, 2], 422, None),
    ("/solve", {"problem": "q" * 1_100_000}, 413, None),
    ("/jobs", {"problem": "q", "stream": True}, 422, "stream"),
    ("/jobs", {"problem": "q", "n": -1}, 422, "n"),
    ("/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "q"}]}, 422, "model"),
    ("/v1/chat/completions", {"model": "srca", "messages": []}, 422, "messages"),
    ("/v1/chat/completions", {"model": "srca", "messages": [{"role": "system", "content": "q"}]}, 422, "messages"),
    ("/v1/chat/completions", {"model": "srca", "messages": [{"role": "user", "content": "q"}], "n": 0}, 422, "n"),
    ("/v1/chat/completions", {"model": "srca", "messages": [{"role": "user", "content": "q"}], "method": "cot"}, 422,
     "model"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}]}, 422, "model"),
]


def test_bad_inputs_are_4xx_naming_the_field(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        for path, body, status, field in BAD:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = c.post(path, content=raw, headers={"content-type": "application/json"})
            assert r.status_code == status, (path, str(body)[:80], r.status_code, r.text[:300])
            err = r.json()
            if field is not None:
                if path.startswith("/v1/"):
                    assert err["error"]["param"].split(".")[0] == field, (body, err)
                else:
                    assert field in [d["loc"][1] for d in err["detail"] if len(d["loc"]) > 1], (body, err)
        assert c.get("/jobs/" + "x" * 300).status_code == 404
        assert c.put("/solve").status_code == 405
        assert "500" not in c.get("/metrics").text.split("srca_requests_created")[0]


def test_a_held_job_that_is_not_running_goes_back_to_the_queue(redis_url):
    """A job id stuck in a live worker's list (e.g. a BLMOVE whose reply was lost) is requeued."""
    import redis as redis_sync

    prefix = unique_prefix()
    engine = make_engine("fake", script=arith)
    app = create_app(ServiceConfig(redis_url=redis_url, redis_prefix=prefix, job_lease_s=0.6, job_concurrency=0),
                     engine=engine)
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        job_id = c.post("/jobs", json={"problem": "What is 1+1?"}).json()["id"]
        worker = app.state.runtime.worker.id
        assert r.lmove(prefix + "jobs:pending", f"{prefix}jobs:proc:{worker}", "RIGHT", "LEFT") == job_id
        deadline = time.monotonic() + 5
        while r.lrange(prefix + "jobs:pending", 0, -1) != [job_id]:
            assert time.monotonic() < deadline, "held job never requeued"
            time.sleep(0.05)
        assert r.llen(f"{prefix}jobs:proc:{worker}") == 0 and c.get(f"/jobs/{job_id}").json()["state"] == "queued"
    r.close()


# -- the trace viewer from the service (issue 19) ---------------------------------------------
def test_a_job_as_a_page_for_browsers_and_json_for_clients(redis_url):
    with serve(redis_url) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        job = c.post("/jobs", json={"problem": "What is 2+3?", "n": 2}).json()["id"]
        done = wait_job(c, job)
        assert done["result"]["answer"] == "5"
        browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        page = c.get(f"/jobs/{job}", headers={"Accept": browser})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        body = page.text
        assert "<script" in body and '"answer":"5"' in body.replace(" ", "")  # the Solution is embedded
        assert not re.search(r"""(src|href)=["']?https?://""", body)  # nothing from another host
        # API clients keep JSON: no Accept, */*, or JSON ahead of HTML
        for accept in (None, "*/*", "application/json, text/html"):
            r = c.get(f"/jobs/{job}", headers={"Accept": accept} if accept else {})
            assert r.headers["content-type"].startswith("application/json") and r.json() == done
        # a job still queued: a small page that reloads itself
        srv.engine.latency_s = 2.0
        slow = c.post("/jobs", json={"problem": "What is 4+4?"}).json()["id"]
        waiting = c.get(f"/jobs/{slow}", headers={"Accept": browser})
        assert waiting.status_code == 200 and "http-equiv=refresh" in waiting.text
        live = c.get("/view", headers={"Accept": browser})
        assert live.status_code == 200 and live.headers["content-type"].startswith("text/html")
        assert '"stream_url":"/solve"' in live.text.replace(" ", "")
