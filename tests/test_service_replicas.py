"""``srca serve`` processes, started as a user would: curl against /solve, a job that survives a
restart, and two replicas on one Redis sharing 100 jobs while one of them is killed."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("redis")

from redis_fixture import ServiceProcess, redis_url, unique_prefix  # noqa: E402,F401

pytestmark = pytest.mark.redis


def replica(tmp_path, name: str, redis: str, prefix: str, latency: float, *extra: str) -> ServiceProcess:
    return ServiceProcess(["--redis-url", redis, "--redis-prefix", prefix, "--job-lease-s", "1", "--lock-ttl-s", "1", *extra],
                          tmp_path / f"{name}.log", env={"SRCA_SERVE_TEST_ENGINE": f"fake:{latency}"})


def test_srca_serve_then_curl(tmp_path, redis_url):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    svc = replica(tmp_path, "serve", redis_url, unique_prefix(), 0.0).start()
    try:
        out = subprocess.run(["curl", "-s", f"localhost:{svc.port}/solve", "-H", "Content-Type: application/json",
                              "-d", '{"problem": "What is 2+3?"}'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        sol = json.loads(out)
        # the scripted engine always says 0: the first wave agrees and the solve stops there
        assert sol["answer"] == "0" and sol["stop_reason"] == "consensus"
        bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"localhost:{svc.port}/solve",
                              "-H", "Content-Type: application/json", "-d", '{"problem": "q", "n": 0}'],
                             capture_output=True, text=True, timeout=30).stdout
        assert bad == "422"
    finally:
        svc.stop()
    assert "listening on http://127.0.0.1" in svc.log()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_job_survives_a_service_restart(tmp_path, redis_url, how):
    """SIGKILL: the lease lapses and the next process re-runs the job (attempt 2). SIGTERM: the
    process hands the job back at once, and the attempt does not count."""
    prefix = unique_prefix()
    first = replica(tmp_path, "first", redis_url, prefix, 2.0).start()
    try:
        job = httpx.post(first.url + "/jobs", json={"problem": "survive"}).json()["id"]
        deadline = time.monotonic() + 10
        while httpx.get(f"{first.url}/jobs/{job}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        first.kill() if how == "kill" else first.stop()
    second = replica(tmp_path, "second", redis_url, prefix, 0.0).start()
    try:
        deadline = time.monotonic() + 15
        while (view := httpx.get(f"{second.url}/jobs/{job}").json())["state"] != "done":
            assert view["state"] in ("queued", "running") and time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view["attempts"] == (2 if how == "kill" else 1) and view["result"]["answer"] == "0"
    finally:
        second.stop()


def test_two_replicas_100_jobs_one_killed_each_finished_once(tmp_path, redis_url):
    prefix = unique_prefix()
    a = replica(tmp_path, "a", redis_url, prefix, 0.15, "--job-concurrency", "4")
    b = replica(tmp_path, "b", redis_url, prefix, 0.15, "--job-concurrency", "4")
    a.start(wait=False), b.start(wait=False)
    a.wait_ready(), b.wait_ready()
    try:
        with httpx.Client(timeout=30) as c:
            ids = []
            for i in range(100):
                r = c.post((a.url, b.url)[i % 2] + "/jobs", json={"problem": f"job number {i}", "seed": i})
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])

            def states() -> Counter:
                return Counter(c.get(f"{b.url}/jobs/{j}").json()["state"] for j in ids)

            deadline = time.monotonic() + 30
            while states()["done"] < 30:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            a.kill()  # midway, with jobs running on it
            deadline = time.monotonic() + 60
            while (s := states())["done"] < 100:
                assert set(s) <= {"queued", "running", "done"} and time.monotonic() < deadline, s
                time.sleep(0.2)
            views = [c.get(f"{b.url}/jobs/{j}").json() for j in ids]
    finally:
        a.kill()
        b.stop()
    assert all(v["state"] == "done" and v["result"]["problem"] == f"job number {i}" for i, v in enumerate(views))
    # each job's result was written exactly once, across both processes' logs; a replica logs a
    # finish after storing it, so a job that `a` finished as it was killed may have lost its line
    # with it (at most its 4 running jobs, each on its first attempt)
    finished = Counter(re.findall(r"job ([0-9a-f]{32}) done", a.log() + b.log()))
    assert set(finished) <= set(ids) and set(finished.values()) == {1}
    unlogged = [v for j, v in zip(ids, views) if j not in finished]
    assert len(unlogged) <= 4 and all(v["attempts"] == 1 for v in unlogged), unlogged
    by_a = sum(1 for j in ids if f"job {j} done" in a.log())
    assert 0 < by_a < 100  # both replicas took work
    assert any(v["attempts"] == 2 for v in views), "no job was re-run after the kill"


@pytest.mark.slow
def test_srca_serve_on_the_real_local_model(tmp_path, redis_url):
    """The fast test model end to end: ``srca serve --model smollm2-135m``, /solve and the facade."""
    pytest.importorskip("srca.engines.local")
    openai = pytest.importorskip("openai")
    svc = ServiceProcess(["--redis-url", redis_url, "--redis-prefix", unique_prefix(), "--model", "smollm2-135m"],
                         tmp_path / "local.log", env={"SRCA_THREADS": "1"})
    svc.start(timeout=600)
    try:
        r = httpx.post(svc.url + "/solve", timeout=300, json={
            "problem": "What is 2 + 3?", "method": "srca", "n": 2, "max_steps": 2, "max_step_tokens": 24})
        assert r.status_code == 200, r.text
        sol = r.json()
        assert sol["method"] == "srca" and sol["usage"]["generated_tokens"] > 0
        assert sol["stop_reason"] in ("finished", "max_steps", "budget")
        assert httpx.get(svc.url + "/readyz").json()["model"] == "smollm2-135m"
        client = openai.OpenAI(base_url=svc.url + "/v1", api_key="none", max_retries=0, timeout=300)
        out = client.chat.completions.create(model="srca-cot", messages=[{"role": "user", "content": "What is 2+3?"}],
                                             max_tokens=24)
        assert out.usage.completion_tokens > 0 and out.choices[0].finish_reason in ("stop", "length")
    finally:
        svc.stop()
