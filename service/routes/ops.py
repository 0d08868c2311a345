"""``/healthz``, ``/readyz`` and ``/metrics``: what an orchestrator and a scraper ask of a replica."""
from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter
from starlette.responses import Response

from ..redis_conn import RedisUnavailable
from ..responses import json_response
from ..runtime import Runtime


def router(rt: Runtime) -> APIRouter:
    r = APIRouter()

    @r.get("/healthz", summary="The process answers")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @r.get("/readyz", summary="Engine and Redis state; 503 until the engine is ready")
    async def readyz() -> Response:
        ready = rt.solver is not None and rt.engine_state == "ready"
        body = {"ready": ready, "engine": rt.engine_state, "model": rt.model, "redis": rt.redis.state(),
                "jobs": "on" if rt.redis.up else "off",
                "cache": "on" if (rt.config.cache and rt.redis.up) else "off"}
        return json_response(body, 200 if ready else 503)

    @r.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        m = rt.metrics
        m.redis_up.set(1 if rt.redis.up else 0)
        m.jobs_running.set(len(rt.worker.running) if rt.worker else 0)
        if rt.redis.up:
            with contextlib.suppress(RedisUnavailable):
                m.queue_depth.set(await asyncio.wait_for(rt.jobs.depth(), 1.0))
        return Response(m.render(), 200, media_type=m.content_type)

    return r
