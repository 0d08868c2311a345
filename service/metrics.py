"""Prometheus metrics, on a registry per app (several apps can live in one test process),
and a pure ASGI middleware that counts requests and their latency by route."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("srca_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("srca_request_latency_seconds", "HTTP request latency (to the last byte)",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("srca_tokens", "tokens spent by solves run here", ["kind"], registry=r)
        self.cache = Counter("srca_cache_lookups", "result cache lookups", ["result"], registry=r)
        self.solves = Counter("srca_solves", "solves run here", ["method", "stop_reason"], registry=r)
        self.in_flight = Gauge("srca_solves_in_flight", "solves running in this replica", registry=r)
        self.queue_depth = Gauge("srca_queue_depth", "jobs waiting in the shared queue", registry=r)
        self.jobs_running = Gauge("srca_jobs_running", "jobs running in this replica", registry=r)
        self.jobs = Counter("srca_jobs_finished", "jobs finished by this replica", ["state"], registry=r)
        self.redis_up = Gauge("srca_redis_up", "1 when Redis answers", registry=r)

    def observe_solution(self, d: dict[str, Any]) -> None:
        u = d.get("usage", {})
        for kind in ("generated_tokens", "prompt_tokens", "cached_tokens", "probe_tokens"):
            self.tokens.labels(kind.removesuffix("_tokens")).inc(u.get(kind, 0))
        self.solves.labels(d.get("method", "?"), d.get("stop_reason", "?")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (``/jobs/{job_id}``, not the id)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
