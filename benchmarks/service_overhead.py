"""Latency the HTTP service adds over a direct ``Solver.asolve`` call.

Starts ``srca serve`` (scripted engine, so the solve itself is sub-millisecond and the service's
own cost dominates) as a child process, plus a private ``redis-server``, and sends sequential
``POST /solve`` requests over keep-alive HTTP. Per request, overhead = client-side latency minus
the solve time the Solver measured inside the server (``timings.total_s``). Modes:

* ``miss``: every request a new cache key (cache lookup, single-flight lock, solve, cache write);
* ``hit``: the same request again (served from the Redis cache);
* ``no_redis``: ``--redis-url none`` (no cache, no jobs).

The direct ``Solver`` latency of the same solve is measured in-process for reference.
Writes ``benchmarks/results/service_overhead.json`` and prints a table.

    python benchmarks/service_overhead.py [--requests 500]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import free_port  # noqa: E402

PROBLEM = "What is 2 + 3?"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(xs_s: list[float]) -> dict:
    ms = [x * 1000 for x in xs_s]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 3), "p90_ms": round(pct(ms, 90), 3),
            "p99_ms": round(pct(ms, 99), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def direct(n: int) -> dict:
    from srca import SearchConfig, Solver, make_engine

    solver = Solver(engine=make_engine("fake"))

    async def go() -> list[float]:
        await solver.asolve(PROBLEM, SearchConfig())  # warm-up (lazy imports)
        out = []
        for i in range(n):
            t = time.perf_counter()
            await solver.asolve(PROBLEM, SearchConfig(seed=i))
            out.append(time.perf_counter() - t)
        return out

    return summary(asyncio.run(go()))


def start_redis(tmp: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                          "no", "--dir", tmp, "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return p, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def start_service(redis_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = shutil.which("srca")
    cmd = [exe] if exe else [sys.executable, "-m", "srca.cli"]
    env = {**os.environ, "SRCA_SERVE_TEST_ENGINE": "fake:0"}
    p = subprocess.Popen([*cmd, "serve", "--port", str(port), "--redis-url", redis_url, "--log-level", "warning"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return p, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("srca serve did not start")


def measure(url: str, n: int, same: bool) -> dict:
    total, over = [], []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(20):  # warm-up
            c.post("/solve", json={"problem": PROBLEM, "seed": 10**6 + i})
        for i in range(n):
            body = {"problem": PROBLEM, "seed": 0 if same else i + 1}
            t = time.perf_counter()
            r = c.post("/solve", json=body)
            dt = time.perf_counter() - t
            r.raise_for_status()
            solve_s = 0.0 if r.headers.get("x-srca-cache") == "hit" else r.json()["timings"]["total_s"]
            total.append(dt)
            over.append(dt - solve_s)
    return {"latency": summary(total), "overhead": summary(over)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "service_overhead.json"))
    args = ap.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "python": platform.python_version()},
                     "requests": args.requests, "direct_solver": direct(args.requests), "service": {}}
    with tempfile.TemporaryDirectory() as tmp:
        redis, redis_url = start_redis(tmp)
        try:
            for mode, url_arg, same in (("miss", redis_url, False), ("hit", redis_url, True),
                                        ("no_redis", "none", False)):
                svc, url = start_service(url_arg)
                try:
                    results["service"][mode] = measure(url, args.requests, same)
                finally:
                    svc.terminate()
                    svc.wait(10)
        finally:
            redis.kill()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    d = results["direct_solver"]
    print(f"{'path':<22} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}   (machine: {os.cpu_count()} CPUs)")
    print(f"{'direct Solver call':<22} {d['p50_ms']:>8.3f} {d['p90_ms']:>8.3f} {d['p99_ms']:>8.3f}")
    for mode, r in results["service"].items():
        for kind in ("latency", "overhead"):
            s = r[kind]
            print(f"{mode + ' ' + kind:<22} {s['p50_ms']:>8.3f} {s['p90_ms']:>8.3f} {s['p99_ms']:>8.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
