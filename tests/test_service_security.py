"""Issue 18: what a probe of ``srca serve`` found, each item reproduced against a real ``srca
serve`` process and a real ``redis-server`` (the scripted engine where the model does not
matter; the fake SGLang server where an engine must fail over the network)."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("redis")

from redis_fixture import ROOT, ServiceProcess, own_redis, redis_url, unique_prefix  # noqa: E402,F401

pytestmark = pytest.mark.redis

K1, K2 = {"Authorization": "Bearer key-one"}, {"Authorization": "Bearer key-two"}


def start(tmp: Path, name: str, redis: str, *args: str, engine: str = "fake:0.02", env: dict | None = None,
          prefix: str | None = None) -> ServiceProcess:
    return ServiceProcess(["--redis-url", redis, "--redis-prefix", prefix or unique_prefix(), "--job-lease-s", "1",
                           "--redis-retry-s", "0.2", *args], tmp / f"{name}.log",
                          env={"SRCA_SERVE_TEST_ENGINE": engine, "SRCA_API_KEYS": "", **(env or {})}).start()


@pytest.fixture(scope="module")
def svc(tmp_path_factory, redis_url):
    """A keyless service with small limits, and an operator prompt folder holding ``custom``."""
    tmp = tmp_path_factory.mktemp("svc")
    (tmp / "prompts").mkdir()
    (tmp / "prompts" / "custom.json").write_text(json.dumps({"user": "CUSTOM {problem}"}))
    s = start(tmp, "svc", redis_url, "--max-n", "8", "--max-request-tokens", "20000", "--max-inflight-tokens", "40000",
              "--max-body-bytes", "100000", "--header-timeout-s", "1", "--body-timeout-s", "1", "--keep-alive-s", "1",
              env={"SRCA_PROMPTS_DIR": str(tmp / "prompts")})
    s.tmp = tmp
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, redis_url):
    s = start(tmp_path_factory.mktemp("keyed"), "keyed", redis_url, env={"SRCA_API_KEYS": "key-one,key-two"})
    yield s
    s.stop()


def solves_run(url: str) -> float:
    """Solves this replica ran (``srca_solves_total``, all labels)."""
    text = httpx.get(url + "/metrics").text
    return sum(float(m) for m in re.findall(r"^srca_solves_total\{[^}]*\} (\S+)$", text, re.M))


def jobs_finished(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(m) for m in re.findall(r"^srca_jobs_finished_total\{[^}]*\} (\S+)$", text, re.M))


def wait_job(c: httpx.Client, job_id: str, headers=None, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/jobs/{job_id}", headers=headers)
        view = r.json()
        if r.status_code == 503:  # Redis coming back
            time.sleep(0.1)
            continue
        if view["state"] in ("done", "failed", "cancelled"):
            return view
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {view}")


def raw(port: int, data: bytes = b"", wait_s: float = 8.0) -> tuple[bytes, bool]:
    """Send ``data`` on a fresh connection, then read until the server closes it (or ``wait_s``
    passes): (what came back, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        if data:
            s.sendall(data)
        out, deadline = b"", time.monotonic() + wait_s
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False


# -- 1. prompt names ----------------------------------------------------------------------------
def test_1_prompt_is_a_template_name_never_a_path(svc):
    evil = svc.tmp / "evil.json"
    evil.write_text(json.dumps({"user": "EVIL {problem}"}))
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        msgs = []
        for name in (str(svc.tmp / "evil"), str(svc.tmp / "nothing-here"), "../../../../" + str(svc.tmp / "evil"),
                     "../prompts/math", "math/../math", "."):
            for path in ("/solve", "/jobs"):
                r = c.post(path, json={"problem": "What is 1+1?", "prompt": name})
                assert r.status_code == 422, (name, r.status_code, r.text)
                assert r.json()["detail"][0]["loc"] == ["body", "prompt"]
                msgs.append(r.json()["detail"][0]["msg"].replace(name, "NAME"))
        # the answer is the same whether the path exists or not: it tells nothing about the host
        assert len(set(msgs)) == 1 and "evil" not in msgs[0]
        # the shipped names, and the operator's folder ($SRCA_PROMPTS_DIR), work
        assert c.post("/solve", json={"problem": "What is 1+1?", "prompt": "plain"}).status_code == 200
        assert c.post("/solve", json={"problem": "What is 1+1?", "prompt": "custom"}).status_code == 200
        assert "500" not in re.findall(r'status="(\d+)"', c.get("/metrics").text)


# -- 2 and 3. API keys: jobs and the cache --------------------------------------------------------
def test_2_jobs_belong_to_the_key_that_made_them(keyed):
    with httpx.Client(base_url=keyed.url, timeout=30) as c:
        job = c.post("/jobs", json={"problem": "What is 2+2?"}, headers=K1).json()["id"]
        assert wait_job(c, job, K1)["state"] == "done"
        other = c.get(f"/jobs/{job}", headers=K2)
        assert other.status_code == 404 and "result" not in other.text
        assert c.delete(f"/jobs/{job}", headers=K2).status_code == 404
        assert c.get(f"/jobs/{job}", headers=K1).json()["result"]["answer"] == "0"
        # a queued job another key tries to cancel keeps running
        slow = c.post("/jobs", json={"problem": "What is 3+3?", "n": 2}, headers=K1).json()["id"]
        assert c.delete(f"/jobs/{slow}", headers=K2).status_code == 404
        assert wait_job(c, slow, K1)["state"] == "done"
        assert c.delete(f"/jobs/{slow}", headers=K1).status_code == 409  # its owner sees it, finished


def test_3_the_cache_is_per_key(keyed):
    body = {"problem": "What is 5+8?", "seed": 31}
    with httpx.Client(base_url=keyed.url, timeout=30) as c:
        assert c.post("/solve", json=body, headers=K1).headers["x-srca-cache"] == "miss"
        assert c.post("/solve", json=body, headers=K1).headers["x-srca-cache"] == "hit"
        before = solves_run(keyed.url)
        r = c.post("/solve", json=body, headers=K2)
        assert r.status_code == 200 and r.headers["x-srca-cache"] == "miss"
        assert solves_run(keyed.url) == before + 1  # key two's own solve, not key one's result


def test_3_shared_cache_when_the_operator_says_so(tmp_path, redis_url):
    s = start(tmp_path, "shared", redis_url, "--shared-cache", env={"SRCA_API_KEYS": "key-one,key-two"})
    try:
        body = {"problem": "What is 5+9?"}
        assert httpx.post(s.url + "/solve", json=body, headers=K1, timeout=30).headers["x-srca-cache"] == "miss"
        assert httpx.post(s.url + "/solve", json=body, headers=K2, timeout=30).headers["x-srca-cache"] == "hit"
    finally:
        s.stop()


# -- 4. cross-site requests ---------------------------------------------------------------------
def test_4_no_cross_site_writes(svc):
    body = json.dumps({"problem": "What is 1+1?"}).encode()
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        finished = jobs_finished(svc.url)
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"Origin": "http://evil.example"} if ctype else {}
            req = c.build_request("POST", "/jobs", content=body, headers=headers)
            if ctype:
                req.headers["content-type"] = ctype
            r = c.send(req)
            assert r.status_code in (403, 415), (ctype, r.status_code, r.text)
        r = c.post("/jobs", content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["detail"][0]["loc"] == ["header", "content-type"]
        # JSON from a foreign page (a browser sends its Origin) or under a foreign Host name
        r = c.post("/jobs", content=body, headers={"content-type": "application/json", "Origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/jobs", content=body, headers={"content-type": "application/json", "Host": "evil.example"})
        assert r.status_code == 400
        time.sleep(0.5)  # a job accepted by mistake would have finished by now (the engine is fast)
        assert jobs_finished(svc.url) == finished
        # the same-origin page and plain clients still work
        ok = {"content-type": "application/json", "Origin": svc.url}
        assert c.post("/solve", content=body, headers=ok).status_code == 200
        assert c.post("/solve", content=body, headers={"content-type": "application/json; charset=utf-8",
                                                        "Host": "localhost"}).status_code == 200


# -- 5 and 10. engine failures: a reason and an id, never the engine's URL ------------------------
@pytest.fixture
def fake_server():
    from fake_sglang_server import Server, State, make_app

    srv = Server(make_app(State())).__enter__()
    yield srv
    srv.__exit__(None, None, None)


def test_5_10_unreachable_engine_is_503_with_retry_after_and_no_internal_details(tmp_path, own_redis, fake_server):
    port = str(fake_server.port)
    s = start(tmp_path, "http", own_redis.url, "--engine", "http", "--engine-url", fake_server.url, "--model", "fake",
              "--engine-retry-s", "1", engine="", env={"HF_HUB_OFFLINE": "1"})
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            assert c.post("/solve", json={"problem": "What is 1+1?", "n": 2}).status_code == 200
            fake_server.__exit__(None, None, None)  # the engine goes away
            r = c.post("/solve", json={"problem": "What is 1+4?", "n": 2})
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            assert "engine" in r.json()["detail"] and re.search(r"error id [0-9a-f]{12}", r.json()["detail"])
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["engine"] == "down"
            with c.stream("POST", "/solve", json={"problem": "What is 1+6?", "stream": True}) as st:
                text = st.read().decode()
            assert "event: error" in text and '"status":503' in text
            r = c.post("/v1/chat/completions", json={"model": "srca", "messages": [{"role": "user", "content": "1+7?"}]})
            assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
            job = c.post("/jobs", json={"problem": "What is 1+8?"}).json()["id"]
            view = wait_job(c, job)
            assert view["state"] == "failed" and "engine is unavailable" in view["error"]
            own_redis.kill()
            deadline = time.monotonic() + 10
            while (r := c.post("/jobs", json={"problem": "What is 1+9?"})).status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            leaks = [r.text, text, json.dumps(view), ready.text]
            for blob in leaks:  # neither the engine's nor Redis's address reaches a client
                assert port not in blob and str(own_redis.port) not in blob and "127.0.0.1" not in blob, blob
        assert port in s.log()  # the details are in the log
    finally:
        s.stop()


def test_10_serve_with_an_unreachable_engine_exits_1_with_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        r = subprocess.run([sys.executable, "-m", "srca.cli", "serve", "--redis-url", "none", "--engine", "http",
                            "--engine-url", f"http://127.0.0.1:{dead}", "--model", "x", "--port", "0"],
                           capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                           env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "did not start" in ln]
    assert len(lines) == 1 and "not reachable" in lines[0]


# -- 6 and 7. admission and bounded fields ------------------------------------------------------
def test_6_admission_caps_are_422_naming_the_field(svc):
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for body, field in (({"n": 4096, "method": "majority", "max_new_tokens": 1024}, "n"),
                            ({"n": 9}, "n"),
                            # 8 rows at once (srca@8 decodes 3 at once: its waves of 2, 3 and 3 fit)
                            ({"n": 8, "method": "majority", "max_new_tokens": 4000}, "max_new_tokens"),
                            ({"probe_max_tokens": 10**9}, "probe_max_tokens"),
                            ({"deadline_s": 1e9}, "deadline_s")):
            for path in ("/solve", "/jobs"):
                r = c.post(path, json={"problem": "What is 1+1?", **body})
                assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], (body, r.text)
        r = c.post("/v1/chat/completions", json={"model": "srca-majority", "n": 64,
                                                 "messages": [{"role": "user", "content": "1+1?"}]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "n"
        assert c.post("/solve", json={"problem": "What is 1+1?", "n": 8, "method": "majority"}).status_code == 200


def test_6_in_flight_budget_429_and_9_hung_engine_504(tmp_path, redis_url):
    """A hung engine: the default deadline ends the solve (504 with a reason, there is no answer
    yet); while it runs, a second solve that does not fit the in-flight budget gets 429."""
    # the default srca@4 holds 2 rows at once (waves of 2 and 2): about 2,300 tokens; two do not fit 4,000
    s = start(tmp_path, "hung", redis_url, "--default-deadline-s", "2", "--max-request-tokens", "4000",
              "--max-inflight-tokens", "4000", engine="fake:100000")
    try:
        async def go():
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as c:
                first = asyncio.ensure_future(c.post("/solve", json={"problem": "What is 1+1?"}))
                await asyncio.sleep(0.5)
                second = await c.post("/solve", json={"problem": "What is 2+2?"})
                return await first, second

        t0 = time.monotonic()
        first, second = asyncio.run(go())
        assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
        assert first.status_code == 504 and "deadline" in first.json()["detail"]
        assert time.monotonic() - t0 < 20  # bounded by the deadline, not by the engine
        # room again once the hung solve gave up
        r = httpx.post(s.url + "/solve", json={"problem": "What is 3+3?", "deadline_s": 0.5}, timeout=30)
        assert r.status_code == 504
    finally:
        s.stop()


def test_7_every_string_field_is_bounded(svc):
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for field, value in (("checkpoint_cue", "x" * 900), ("step_delimiter", "\n" * 100), ("prompt", "p" * 200),
                             ("method", "m" * 5000), ("scorer", "s" * 5000), ("aggregation", "a" * 5000),
                             ("decision", "d" * 5000)):
            for path in ("/solve", "/jobs"):
                r = c.post(path, json={"problem": "What is 1+1?", field: value})
                assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], (field, r.text[:200])
        r = c.post("/solve", json={"problem": "What is 1+1?", "checkpoint_cue": "x" * 900_000})
        assert r.status_code == 413
        r = c.post("/v1/chat/completions", json={"model": "srca", "messages": [{"role": "user", "content": "q"}] * 300})
        assert r.status_code == 422 and r.json()["error"]["param"].startswith("messages")


# -- 8. HTTP limits -----------------------------------------------------------------------------
def test_8_http_limits(svc):
    port = svc.port
    head = f"POST /solve HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
    # headers far beyond the cap: refused and closed
    out, closed = raw(port, head + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert closed and (out == b"" or out.split(b" ")[1][:1] == b"4")
    # a chunked body over --max-body-bytes is refused at the limit, not read to its end
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sk:
        sk.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 50_000
        sent, reply = 0, b""
        sk.settimeout(0.2)
        for _ in range(200):  # up to 10 MB, stopping as soon as the server answers
            try:
                sk.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                reply += sk.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if reply:
                break
        assert reply.startswith(b"HTTP/1.1 413") and b"connection: close" in reply.lower()
        assert sent < 2_000_000
    # slow headers, an idle connection, a slow body and a Content-Length lie are all cut off
    out, closed = raw(port, head[:30], wait_s=8)
    assert closed and out == b""
    out, closed = raw(port, b"", wait_s=8)
    assert closed and out == b""
    out, closed = raw(port, head + b"Content-Length: 100\r\n\r\n{\"problem\": ", wait_s=8)
    assert closed and out.startswith(b"HTTP/1.1 408")
    # keep-alive connections do not stay open forever either, but serve several requests meanwhile
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sk:
        get = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(3):
            sk.sendall(get)
            got = b""
            while not got.endswith(b'{"status":"ok"}'):
                got += sk.recv(65536)
            assert got.startswith(b"HTTP/1.1 200")
        sk.settimeout(8)
        assert sk.recv(65536) == b""  # closed after --keep-alive-s idle


# -- 11. clean 500s; client input never gets one ------------------------------------------------
def test_11_client_input_never_500_and_connection_stays_usable(svc):
    bad = [{"problem": "q", "prompt": "../../etc/passwd"}, {"problem": "q", "prompt": "/etc/hosts"},
           {"problem": "q", "n": 10**30}, {"problem": "q", "deadline_s": 1e308}, {"problem": "q", "seed": -1},
           {"problem": " "}, {"problem": "q", "temperature": 1e300}, {"problem": "q", "top_p": 0}]
    with httpx.Client(base_url=svc.url, timeout=30) as c:
        for body in bad:
            r = c.post("/solve", json=body)
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text[:300])
        for body in bad:  # the same connection carried every request: none was reset
            assert c.post("/jobs", json=body).status_code < 500
        assert c.get("/healthz").status_code == 200


def test_11_a_500_closes_its_connection_cleanly(redis_url):
    """A bug (a route that raises) gets a 500 with an error id and ``Connection: close``."""
    from redis_fixture import ServerThread

    from srca.engines import make_engine
    from srca.service import ServiceConfig, create_app

    app = create_app(ServiceConfig(redis_url=redis_url, redis_prefix=unique_prefix()), engine=make_engine("fake"))

    async def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    app.state.runtime.solve = boom
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/solve", json={"problem": "What is 1+1?"})
        assert r.status_code == 500 and r.headers["connection"] == "close"
        assert "secret" not in r.text and re.search(r"error id [0-9a-f]{12}", r.text)
        assert c.get("/healthz").status_code == 200  # the client's next request goes through


# -- 13. streams share the cache and single-flight ----------------------------------------------
def _stream(url: str, body: dict) -> list[dict]:
    events = []
    with httpx.stream("POST", url + "/solve", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_13_streams_use_the_cache_and_single_flight(tmp_path, redis_url):
    s = start(tmp_path, "streams", redis_url, engine="fake:0.1")
    try:
        body = {"problem": "What is 6+7?", "n": 2, "seed": 5}
        before = solves_run(s.url)

        async def many():
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(loop.run_in_executor(None, _stream, s.url, body) for _ in range(8)))

        runs = asyncio.run(many())
        finals = [ev[-1] for ev in runs]
        assert all(f["type"] == "final" and f["solution"]["answer"] == "0" for f in finals)
        assert solves_run(s.url) == before + 1  # eight identical streams, one solve
        assert any(len(ev) > 1 for ev in runs)  # the events of the shared solve were streamed
        again = _stream(s.url, body)
        assert again[-1]["cache"] == "hit" and again[-1]["solution"] == finals[0]["solution"]
        assert solves_run(s.url) == before + 1
        # a plain request for the same problem is a hit too
        assert httpx.post(s.url + "/solve", json=body, timeout=30).headers["x-srca-cache"] == "hit"
    finally:
        s.stop()


# -- 14. a Redis outage longer than the lease loses no finished result -------------------------
def test_14_redis_outage_longer_than_the_lease_reruns_nothing(tmp_path, own_redis):
    import redis as redis_sync

    prefix = unique_prefix()
    a = start(tmp_path, "a", own_redis.url, "--job-concurrency", "2", engine="fake:1.5", prefix=prefix)
    b = start(tmp_path, "b", own_redis.url, "--job-concurrency", "2", engine="fake:1.5", prefix=prefix)
    try:
        with httpx.Client(timeout=30) as c:
            ids = [c.post(a.url + "/jobs", json={"problem": f"What is {i}+1?", "n": 1, "method": "cot"}).json()["id"]
                   for i in range(4)]
            deadline = time.monotonic() + 15
            while sum(c.get(f"{a.url}/jobs/{j}").json()["state"] == "running" for j in ids) < 4:
                assert time.monotonic() < deadline, "jobs never all ran"
                time.sleep(0.05)
            own_redis.kill()
            time.sleep(2.5)  # > the 1 s lease: every lease lapses, the solves finish meanwhile
            own_redis.start()
            views = [wait_job(httpx.Client(base_url=a.url, timeout=30), j) for j in ids]
        assert [v["state"] for v in views] == ["done"] * 4
        assert [v["attempts"] for v in views] == [1] * 4  # nobody was declared dead, nothing re-ran
        r = redis_sync.Redis.from_url(own_redis.url, decode_responses=True)
        assert [r.hget(f"{prefix}job:{j}", "completions") for j in ids] == ["1"] * 4
        r.close()
    finally:
        a.stop()
        b.stop()


def test_14_a_late_result_of_a_taken_over_job_is_kept(redis_url):
    """The store itself: a worker declared dead (its job requeued, even claimed again by another)
    that then finishes writes its result once; the second worker's finish is refused."""
    from srca.service.jobs import JobStore
    from srca.service.redis_conn import RedisHandle

    async def go():
        h = RedisHandle(redis_url, unique_prefix())
        await h.start()
        store = JobStore(h)
        job = await store.submit({"problem": "p", "config": {}})
        assert await store.take("w1", 1) == job and (await store.claim("w1", job))[0] == "running"
        assert await store.requeue("w1") == 1  # w1 has no lease: declared dead, its job queued again
        assert (await store.get(job))["state"] == "queued"
        assert await store.finish("w1", job, 1, "done", "result", '{"answer": "late"}')  # kept, not discarded
        view = await store.get(job)
        assert view["state"] == "done" and view["result"] == '{"answer": "late"}' and view["completions"] == "1"
        assert await store.depth() == 0  # no longer queued: nobody runs it again
        # taken over and running elsewhere: the late result still wins, the other finish is refused
        job2 = await store.submit({"problem": "q", "config": {}})
        await store.take("w1", 1), await store.claim("w1", job2), await store.requeue("w1")
        assert await store.take("w2", 1) == job2 and (await store.claim("w2", job2)) == ("running", 2)
        assert await store.finish("w1", job2, 1, "done", "result", "{}")
        assert not await store.finish("w2", job2, 2, "done", "result", "{}")
        assert (await store.get(job2))["completions"] == "1" and (await store.get(job2))["worker"] == "w1"
        # a failure of a stale attempt is not written over the live one
        job3 = await store.submit({"problem": "r", "config": {}})
        await store.take("w1", 1), await store.claim("w1", job3), await store.requeue("w1")
        assert not await store.finish("w1", job3, 1, "failed", "error", "x")
        await h.close()

    asyncio.run(go())


def test_6_a_large_fan_out_runs_in_batches_of_the_engine_cap():
    from srca.engines.base import GenRequest
    from srca.engines.fake import ScriptedEngine
    from srca.service.engine_guard import GuardedEngine

    inner = ScriptedEngine()
    inner.max_batch = 16  # as the local engine's batch cap
    g = GuardedEngine(inner)
    reqs = [GenRequest(prompt="a", n=40, temperature=0.7, seed=3), GenRequest(prompt="b", n=5, temperature=0.7),
            GenRequest(prompt="c", n=64, temperature=0.0)]
    out = asyncio.run(g.generate(reqs))
    assert [len(o) for o in out] == [40, 5, 64]
    sent = inner.calls[0]
    assert [r.n for r in sent] == [16, 16, 8, 5, 64]  # greedy rows decode once: never split
    assert sent[0].seed == 3 and len({r.seed for r in sent[:3]}) == 3  # each piece samples its own stream


# -- 12. a client that goes away stops the local engine's work at the next decode step ----------
def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/solve", "/v1/chat/completions"])
def test_12_a_closed_stream_frees_the_local_engine(tmp_path, route):
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    s = ServiceProcess(["--redis-url", "none", "--engine", "local", "--model", "smollm2-135m"], tmp_path / "local.log",
                       env={"SRCA_THREADS": "1", "SRCA_SERVE_TEST_ENGINE": ""}).start(timeout=600)
    try:
        long = {"method": "majority", "n": 8, "max_new_tokens": 512, "temperature": 1.0, "seed": 1, "stream": True}
        if route == "/solve":
            body = {"problem": "Write a very long story about a lighthouse keeper.", **long}
        else:
            body = {"model": "srca-majority", "messages": [{"role": "user", "content": "Write a very long story."}],
                    **{k: v for k, v in long.items() if k != "method"}}
        pid = s.proc.pid
        with httpx.stream("POST", s.url + route, json=body, timeout=30) as r:
            assert r.status_code == 200
            t0 = _cpu_seconds(pid)
            time.sleep(2.0)  # the batch (8 rows x 512 tokens: tens of CPU-seconds) is under way
            assert _cpu_seconds(pid) - t0 > 0.5, "the engine was not working on the stream"
        time.sleep(1.0)  # the disconnect reaches the solve; its rows end at the next decode step
        t1 = _cpu_seconds(pid)
        time.sleep(3.0)
        assert _cpu_seconds(pid) - t1 < 0.5, "the engine kept decoding for a client that left"
        assert httpx.get(s.url + "/readyz").status_code == 200
    finally:
        s.stop()


def test_14_a_worker_is_dead_only_once_its_lease_stayed_missing_for_a_lease(redis_url):
    from srca.service.jobs import JobStore
    from srca.service.redis_conn import RedisHandle

    async def go():
        h = RedisHandle(redis_url, unique_prefix())
        await h.start()
        store = JobStore(h)
        job = await store.submit({"problem": "p", "config": {}})
        await store.take("w1", 1), await store.claim("w1", job)
        await store.heartbeat("w1", 0.3)
        seen: dict[str, float] = {}
        assert await store.reap(seen, now=0.0, grace_s=1.0) == {} and seen == {}  # alive
        await asyncio.sleep(0.4)  # its lease lapses (as in an outage longer than the lease)
        assert await store.reap(seen, now=10.0, grace_s=1.0) == {} and seen == {"w1": 10.0}  # first look
        await store.heartbeat("w1", 0.3)  # it reconnects and renews in time
        assert await store.reap(seen, now=11.5, grace_s=1.0) == {} and seen == {}
        assert (await store.get(job))["state"] == "running"
        await asyncio.sleep(0.4)  # now it is really gone
        assert await store.reap(seen, now=20.0, grace_s=1.0) == {}
        assert await store.reap(seen, now=21.0, grace_s=1.0) == {"w1": 1}
        assert (await store.get(job))["state"] == "queued" and seen == {}
        await h.close()

    asyncio.run(go())
