"""Issue 19, items 2-4, against real ``srca serve`` processes (scripted engine) and redis-server:
the OpenAI facade streams the search as ``reasoning_content`` while it runs, JSON logs carry the
request and solve ids, ``X-Request-ID``, offline ``/docs`` and ``/redoc``; and the CLI's
``--log-format``. The narrator (events -> reasoning text) is also checked on its own, on real
searches over the scripted engine."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from srca import Solver
from srca.config import SearchConfig
from srca.engines import make_engine

from scripts import stepwise

ROOT = Path(__file__).resolve().parents[1]


# -- the narrator on its own (no service) ---------------------------------------------------------
def _narrate(method: str, **cfg) -> tuple[list[dict], str, dict]:
    pytest.importorskip("fastapi")
    from srca.service.cache import solution_dict
    from srca.service.reasoning import Narrator

    events: list[dict] = []
    answers = {1: "5", 2: "7", 3: "7"}
    solver = Solver(engine=make_engine("fake", script=stepwise(lambda k, tag: answers.get(k, "7"))))
    sol = solver.solve("What is 3+4?", SearchConfig(method=method, n=4, seed=1, **cfg), on_event=events.append)
    narrator = Narrator()
    text = "".join(narrator.feed(ev) for ev in events)
    d = solution_dict(sol)
    return events, text + narrator.finish(d), d


def test_narrator_tells_a_finished_lineage_its_verdict():
    pytest.importorskip("fastapi")
    from srca.service.reasoning import Narrator

    nar = Narrator()
    events = [
        {"type": "step", "depth": 1, "nodes": [
            {"id": 1, "parent": 0, "depth": 1, "text": "So \\boxed{72}.", "finished": True, "answer": "72"},
            {"id": 2, "parent": 0, "depth": 1, "text": "Maybe \\boxed{24}.", "finished": True, "answer": "24"},
            {"id": 3, "parent": 0, "depth": 1, "text": "Hmm", "finished": False, "answer": None}]},
        {"type": "verify", "nodes": [{"id": 1, "answer": "72", "log_odds": math.log(9)},
                                     {"id": 2, "answer": "24", "log_odds": None}]},
        {"type": "select", "depth": 1, "kept": [{"id": 3, "answer": None}],
         "ended": [{"id": 1, "kind": "path", "answer": "72"}, {"id": 2, "kind": "path", "answer": "24"}]}]
    text = "".join(nar.feed(ev) for ev in events)
    # letters follow the select's order: the open lineage first, then the two that ended
    assert "  B: So \\boxed{72}. => 72 (finished; P(yes) 0.90)\n" in text
    assert "  C: Maybe \\boxed{24}. => 24 (finished; no verdict)\n" in text
    assert "  A: Hmm\n" in text


def test_narrator_tells_each_kept_step_its_checkpoint_and_the_tally():
    # the checkpoints after every step are told; one wave, so that all four lineages run
    events, text, d = _narrate("srca", probe_at="step", waves=1)
    selects = [e for e in events if e["type"] == "select"]
    assert selects, "the default method emits select events"
    steps = {n["id"]: n for e in events if e["type"] == "step" for n in e["nodes"]}
    for e in selects:  # every kept or ended step's text is told, once
        for k in [*e["kept"], *e["ended"]]:
            assert " ".join(steps[k["id"]]["text"].split()) in text
    assert text.count("Step 1:") == 1 and "-> 5" in text  # the first step's checkpoints answered 5
    assert "answers now:" in text
    assert text.rstrip().splitlines()[-1].startswith(f"Decision: {d['answer']}")
    # lineages keep their letter from step to step
    assert re.search(r"^  A: ", text, re.M) and re.search(r"^  D: ", text, re.M)


@pytest.mark.parametrize("method", ["beam", "majority", "dvts"])
def test_narrator_every_method_ends_with_the_decision(method):
    events, text, d = _narrate(method)
    assert "Step 1:" in text and text.rstrip().splitlines()[-1].startswith(f"Decision: {d['answer']}")
    finished = [n for e in events if e["type"] == "step" for n in e["nodes"] if n["finished"]]
    assert finished and f"=> {finished[0]['answer']} (finished)" in text


# -- the service ----------------------------------------------------------------------------------
openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from redis_fixture import ServiceProcess, redis_url, unique_prefix  # noqa: E402,F401

# a search of several steps, each engine call 0.25 s: a stream has time to show its progress
ENGINE = "fake:0.25:steps=4"


@pytest.fixture(scope="module")
def service(redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream_logs")
    svc = ServiceProcess(["--redis-url", redis_url, "--redis-prefix", unique_prefix(), "--log-format", "json"],
                         tmp / "serve.log", env={"SRCA_SERVE_TEST_ENGINE": ENGINE, "SRCA_API_KEYS": ""}).start()
    yield svc
    svc.stop()


def _client(svc) -> "openai.OpenAI":
    return openai.OpenAI(base_url=svc.url + "/v1", api_key="none", max_retries=0, timeout=60)


def _in_flight(svc) -> float:
    text = httpx.get(svc.url + "/metrics", timeout=10).text
    return float(re.search(r"^srca_solves_in_flight (\S+)$", text, re.M).group(1))


def _read(stream, on_first_reasoning=None) -> list[tuple[str, str]]:
    """The stream as (kind, text) items: reasoning, content, finish, usage."""
    items: list[tuple[str, str]] = []
    for ch in stream:
        if not ch.choices:
            items.append(("usage", str(ch.usage.completion_tokens)))
            continue
        delta = ch.choices[0].delta
        reasoning = (delta.model_extra or {}).get("reasoning_content")
        if reasoning:
            if on_first_reasoning is not None and not any(k == "reasoning" for k, _ in items):
                on_first_reasoning()
            items.append(("reasoning", reasoning))
        if delta.content:
            items.append(("content", delta.content))
        if ch.choices[0].finish_reason:
            items.append(("finish", ch.choices[0].finish_reason))
    return items


def _log_lines(svc, until=None, timeout: float = 20.0) -> list[dict]:
    """The service's log as JSON records; with ``until``, read again (bounded) until
    ``until(records)`` holds: an access line is written just after its response is sent."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(ln) for ln in svc.log().splitlines() if ln.strip()]
        if until is None or until(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _access(lines: list[dict], rid: str) -> list[dict]:
    return [ln for ln in lines if ln["logger"] == "srca.access" and ln.get("request_id") == rid]


@pytest.mark.redis
def test_stream_sends_reasoning_while_the_search_runs(service):
    client = _client(service)
    seen_running: list[float] = []
    # step by step, each step's checkpoints told (the default tells a wave's steps when it ends)
    extra = {"n": 3, "probe_at": "step"}
    stream = client.chat.completions.create(
        model="srca", messages=[{"role": "user", "content": "What is 4+5? (stream)"}], stream=True,
        stream_options={"include_usage": True}, extra_body=extra)
    # when the first reasoning delta arrives the solve is still running on the server: streamed,
    # not sent together at the end
    items = _read(stream, on_first_reasoning=lambda: seen_running.append(_in_flight(service)))
    assert seen_running == [1.0]
    kinds = [k for k, _ in items]
    first_content = kinds.index("content")
    assert kinds[0] == "reasoning" and "reasoning" not in kinds[first_content:]
    assert kinds[-2:] == ["finish", "usage"]
    reasoning = "".join(t for k, t in items if k == "reasoning")
    assert "Step 1: 3 open" in reasoning and "A: Step 1: think it over. -> 0" in reasoning
    assert "answers now: 0 x3" in reasoning and "Decision: 0" in reasoning
    # several deltas, not one block: one per step at least
    assert sum(1 for k in kinds if k == "reasoning") >= 3
    # the content is the non-streamed response's message (the same request, now a cache hit)
    content = "".join(t for k, t in items if k == "content")
    plain = client.chat.completions.create(model="srca", messages=[{"role": "user", "content": "What is 4+5? (stream)"}],
                                           extra_body=extra)
    assert plain.choices[0].message.content == content and plain.model_extra["srca"]["cache"] == "hit"


@pytest.mark.redis
def test_non_stream_response_is_unchanged(service):
    r = httpx.post(service.url + "/v1/chat/completions", timeout=60, json={
        "model": "srca", "messages": [{"role": "user", "content": "What is 1+1? (plain)"}], "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "srca"}
    assert body["object"] == "chat.completion" and len(body["choices"]) == 1
    choice = body["choices"][0]
    assert set(choice) == {"index", "message", "finish_reason", "logprobs"}
    assert set(choice["message"]) == {"role", "content"}  # no reasoning_content outside streams
    assert choice["message"]["content"].startswith("Step 1: think it over.")
    assert set(body["srca"]) == {"answer", "canonical", "confidence", "stop_reason", "method", "cache", "candidates"}
    assert body["srca"]["answer"] == "0" and body["usage"]["completion_tokens"] > 0
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


@pytest.mark.redis
def test_cached_stream_tells_the_decision_at_once_and_a_joined_stream_replays(service):
    client = _client(service)
    msgs = [{"role": "user", "content": "What is 2+6? (joined)"}]
    extra = {"n": 2, "probe_at": "step"}  # step by step: a solve with steps to tell while it runs
    first_items: list = []
    started = threading.Event()

    def lead() -> None:
        first_items.extend(_read(client.chat.completions.create(model="srca", messages=msgs, stream=True,
                                                                extra_body=extra), started.set))

    t = threading.Thread(target=lead)
    t.start()
    assert started.wait(60)
    # joins the running solve: the steps told so far are replayed, then the rest as it runs
    joined = _read(client.chat.completions.create(model="srca", messages=msgs, stream=True, extra_body=extra))
    t.join(60)
    lead_reasoning = "".join(x for k, x in first_items if k == "reasoning")
    joined_reasoning = "".join(x for k, x in joined if k == "reasoning")
    assert "Step 1: 2 open" in joined_reasoning and joined_reasoning == lead_reasoning
    # a cached result: no steps to tell, the decision at once, the same answer text
    cached = _read(client.chat.completions.create(model="srca", messages=msgs, stream=True, extra_body=extra))
    cached_reasoning = "".join(x for k, x in cached if k == "reasoning")
    assert "Step 1" not in cached_reasoning and "cached result" in cached_reasoning and "Decision: 0" in cached_reasoning
    content = ["".join(x for k, x in items if k == "content") for items in (first_items, joined, cached)]
    assert content[0] and content[0] == content[1] == content[2]


@pytest.mark.redis
def test_json_logs_carry_request_and_solve_ids(service):
    r = httpx.post(service.url + "/solve", headers={"X-Request-ID": "client-req-42"}, timeout=60,
                   json={"problem": "What is 7+8? (logs)", "n": 2})
    assert r.status_code == 200 and r.headers["x-request-id"] == "client-req-42"
    bad = httpx.post(service.url + "/solve", headers={"X-Request-ID": "no spaces \"or quotes\""}, timeout=60,
                     json={"problem": "What is 7+8? (logs)", "n": 2})
    assert bad.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
    refused = httpx.post(service.url + "/solve", timeout=60, json={"problem": "What is 7+8?", "n": 0})
    assert refused.status_code == 422 and refused.headers["x-request-id"]

    ids = ("client-req-42", bad.headers["x-request-id"], refused.headers["x-request-id"])
    # every line of the process is JSON (json.loads raises otherwise)
    lines = _log_lines(service, until=lambda lines: all(_access(lines, rid) for rid in ids))
    for ln in lines:
        assert {"time", "level", "logger", "message"} <= set(ln)
    access = _access(lines, "client-req-42")
    assert len(access) == 1
    a = access[0]
    assert a["http_method"] == "POST" and a["path"] == "/solve" and a["status"] == 200 and a["cache"] == "miss"
    assert a["method"] == "srca" and a["n"] == 2 and a["tokens"] > 0 and a["stop_reason"] and a["latency_ms"] >= 0
    solves = [ln for ln in lines if ln["message"] == "solve done" and ln.get("solve_id") == a["solve_id"]]
    assert len(solves) == 1 and solves[0]["request_id"] == "client-req-42" and solves[0]["tokens"] == a["tokens"]
    # the second request was a cache hit: its line says so, under its own id
    hit = _access(lines, bad.headers["x-request-id"])
    assert len(hit) == 1 and hit[0]["cache"] == "hit" and "solve_id" not in hit[0]
    refused_line = _access(lines, refused.headers["x-request-id"])
    assert len(refused_line) == 1 and refused_line[0]["status"] == 422 and "solve_id" not in refused_line[0]


@pytest.mark.redis
def test_a_jobs_solve_is_logged_under_the_job_id(service):
    r = httpx.post(service.url + "/jobs", timeout=30, json={"problem": "What is 3+3? (job)", "n": 2})
    assert r.status_code == 202
    job = r.json()["id"]
    deadline = time.monotonic() + 60
    while httpx.get(f"{service.url}/jobs/{job}", timeout=30).json()["state"] != "done":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    lines = _log_lines(service, until=lambda lines: any(ln.get("job_id") == job and ln["message"] == "solve done"
                                                        for ln in lines))
    solve = [ln for ln in lines if ln.get("job_id") == job and ln["message"] == "solve done"]
    assert len(solve) == 1 and solve[0]["solve_id"] and solve[0]["method"] == "srca" and solve[0]["tokens"] > 0


@pytest.mark.redis
def test_streams_that_share_a_solve_log_the_same_solve_id(service):
    # (after the joined-stream test: both of its streams were logged when they ended)
    def shared(lines: list[dict]) -> dict[str, int]:
        by_solve: dict[str, int] = {}
        for ln in lines:
            if ln["logger"] == "srca.access" and ln.get("path") == "/v1/chat/completions" and ln.get("solve_id"):
                by_solve[ln["solve_id"]] = by_solve.get(ln["solve_id"], 0) + 1
        return by_solve

    lines = _log_lines(service, until=lambda lines: 2 in shared(lines).values())
    assert 2 in shared(lines).values()  # the lead stream and the one that joined it


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.redis
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_need_no_network(service, page):
    r = httpx.get(service.url + page, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text, re.I), "the page names another host"
    parser = _Refs()
    parser.feed(r.text)
    assert len(parser.refs) >= 2  # its script (and style or icon)
    for ref in parser.refs:  # each served here
        got = httpx.get(service.url + ref, timeout=30)
        assert got.status_code == 200 and len(got.content) > 100, ref
    schema = httpx.get(service.url + "/openapi.json", timeout=30).json()
    assert "/v1/chat/completions" in schema["paths"]


# -- the CLI --------------------------------------------------------------------------------------
def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "srca.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT), env={**os.environ, "SRCA_LOG_FORMAT": "", **(env or {})})


def test_cli_log_format_json_and_the_env_var():
    # an engine that is down: a runtime failure whose one line is a JSON record
    problem = "What is 1+1?"
    down = ("solve", "--engine", "openai", "--engine-url", "http://127.0.0.1:9/v1", "--model", "m", problem)
    for args, env in ((("--log-format", "json", *down), None), (down, {"SRCA_LOG_FORMAT": "json"}),
                      ((*down[:1], "--log-format", "json", *down[1:]), None)):
        p = _cli(*args, env=env)
        assert p.returncode == 1, p.stderr
        lines = [json.loads(ln) for ln in p.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln["level"] == "error"]
        assert len(errors) == 1 and "SRCA_DEBUG=1" in errors[0]["message"]
        assert any(ln["logger"] == "srca.solve" and "loading" in ln["message"] for ln in lines)
    text = _cli(*down)
    assert text.returncode == 1 and text.stderr.splitlines()[-1].startswith("srca: error: ")
    bad = _cli("solve", problem, env={"SRCA_LOG_FORMAT": "yaml"})
    assert bad.returncode == 2 and "SRCA_LOG_FORMAT" in bad.stderr
