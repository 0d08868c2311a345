"""``create_app``: the FastAPI app of one service replica (no work at import time).

Routes: ``POST /solve`` (JSON, or SSE with ``"stream": true``), ``POST/GET/DELETE /jobs``,
the OpenAI-compatible ``/v1`` facade, ``/healthz``, ``/readyz``, ``/metrics``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.responses import Response

from srca.config import SearchConfig
from srca.engines.base import Engine

from .auth import AuthError
from .config import ServiceConfig
from .jobs import job_view
from .metrics import MetricsMiddleware
from .redis_conn import RedisUnavailable
from .runtime import EngineNotReady, Runtime
from .schemas import InputError, parse_json, parse_solve, solve_request_model
from .streaming import ClientGone, EventStreamResponse, cancel_on_disconnect, sse

log = logging.getLogger("srca.service")

JSON = "application/json"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, separators=(",", ":")), status, headers, JSON)


async def read_body(request: Request, max_bytes: int) -> Any:
    """The JSON body, whatever the Content-Type (``curl -d`` sends a form type)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise InputError.one(None, f"request body larger than {max_bytes} bytes", "too_large", status=413)
    raw = await request.body()
    if len(raw) > max_bytes:
        raise InputError.one(None, f"request body larger than {max_bytes} bytes", "too_large", status=413)
    if not raw.strip():
        raise InputError([{"loc": ["body"], "msg": "a JSON object is required", "type": "missing"}])
    return parse_json(raw)


def create_app(config: ServiceConfig | None = None, *, engine: Engine | None = None,
               engine_factory: Callable[[], Engine] | None = None,
               search_config: SearchConfig | None = None) -> FastAPI:
    """The app. Pass a ready ``engine``, or an ``engine_factory`` that is called in a thread at
    startup (``/readyz`` answers 503 until it is ready). ``search_config`` holds the defaults
    that request fields override."""
    config = config or ServiceConfig()
    rt = Runtime(config, engine=engine, engine_factory=engine_factory, base_config=search_config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="srca", version="0.1.0", lifespan=lifespan,
                  description="SRCA test-time-scaling reasoning service")
    app.state.runtime = rt
    app.add_middleware(MetricsMiddleware, metrics=rt.metrics)
    _install_error_handlers(app)

    async def guard(request: Request) -> None:
        if rt.auth.enabled:
            await rt.auth.check(request.headers.get("authorization"))

    solve_body = {"requestBody": {"required": True, "content": {JSON: {"schema": solve_request_model().model_json_schema()}}}}

    # -- solve ----------------------------------------------------------------------------
    @app.post("/solve", openapi_extra=solve_body, summary="Solve one problem (JSON, or SSE with stream=true)")
    async def solve(request: Request) -> Response:
        await guard(request)
        inp = parse_solve(await read_body(request, config.max_body_bytes), rt.base_config)
        rt.require_solver()
        if inp.stream:
            return EventStreamResponse(lambda: _solve_events(rt, inp.problem, inp.config))
        try:
            out = await cancel_on_disconnect(rt.solve(inp.problem, inp.config), request.receive)
        except ClientGone:
            return Response(status_code=499)
        return Response(out.text, 200, {"X-SRCA-Cache": "hit" if out.cached else "miss"}, JSON)

    # -- jobs -----------------------------------------------------------------------------
    @app.post("/jobs", status_code=202, openapi_extra=solve_body, summary="Queue a solve; poll GET /jobs/{id}")
    async def submit_job(request: Request) -> Response:
        await guard(request)
        inp = parse_solve(await read_body(request, config.max_body_bytes), rt.base_config)
        if inp.stream:
            raise InputError.one("stream", "jobs do not stream; poll GET /jobs/{id}")
        rt.redis.require()
        job_id = await rt.jobs.submit({"problem": inp.problem, "config": inp.config.to_dict()})
        return _json({"id": job_id, "state": "queued", "url": f"/jobs/{job_id}"}, 202, {"Location": f"/jobs/{job_id}"})

    @app.get("/jobs/{job_id}", summary="A job's state, and its result or error")
    async def get_job(job_id: str, request: Request) -> Response:
        await guard(request)
        h = await rt.jobs.get(job_id)
        if h is None:
            return _json({"detail": f"no job {job_id!r}"}, 404)
        return _json(job_view(h))

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its solve stops on whichever replica runs it)")
    async def cancel_job(job_id: str, request: Request) -> Response:
        await guard(request)
        state = await rt.jobs.cancel(job_id)
        if state == "missing":
            return _json({"detail": f"no job {job_id!r}"}, 404)
        h = await rt.jobs.get(job_id)
        view = job_view(h) if h else {"id": job_id, "state": state}
        if state != "cancelled":
            view["detail"] = f"job already {state}"
            return _json(view, 409)
        return _json(view)

    # -- health ---------------------------------------------------------------------------
    @app.get("/healthz", summary="The process answers")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", summary="Engine and Redis state; 503 until the engine is ready")
    async def readyz() -> Response:
        ready = rt.solver is not None
        body = {"ready": ready, "engine": rt.engine_state, "model": rt.model, "redis": rt.redis.state(),
                "jobs": "on" if rt.redis.up else "off", "cache": "on" if (config.cache and rt.redis.up) else "off"}
        return _json(body, 200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        m = rt.metrics
        m.redis_up.set(1 if rt.redis.up else 0)
        m.jobs_running.set(len(rt.worker.running) if rt.worker else 0)
        if rt.redis.up:
            with contextlib.suppress(RedisUnavailable):
                m.queue_depth.set(await asyncio.wait_for(rt.jobs.depth(), 1.0))
        return Response(m.render(), 200, media_type=m.content_type)

    from .openai_facade import make_router

    app.include_router(make_router(rt, guard, read_body))
    return app


async def _solve_events(rt: Runtime, problem: str, cfg: SearchConfig) -> AsyncIterator[bytes]:
    """SSE chunks of one solve: its step/checkpoint/select events as they happen, then ``final``
    carrying the whole Solution (or ``error``)."""
    queue: asyncio.Queue = asyncio.Queue()
    final: dict = {}

    def on_event(ev: dict) -> None:
        if ev.get("type") == "final":
            final.update(ev)
        else:
            queue.put_nowait(ev)

    task = asyncio.ensure_future(rt.solve_streaming(problem, cfg, on_event))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (ev := await queue.get()) is not None:
            yield sse(ev["type"], ev)
        try:
            out = task.result()
        except Exception as e:  # the engine failed: say so in-band, the status is already 200
            log.exception("streamed solve failed")
            yield sse("error", {"type": "error", "message": f"{type(e).__name__}: {e}"})
            return
        yield sse("final", {**final, "type": "final", "solution": out.data})
    finally:
        task.cancel()


def _is_facade(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _error(request: Request, status: int, message: str, kind: str, param: str | None = None,
           detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    if _is_facade(request):  # OpenAI's error envelope
        return _json({"error": {"message": message, "type": kind, "param": param, "code": None}}, status, headers)
    return _json({"detail": detail if detail is not None else message}, status, headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(request: Request, e: InputError) -> Response:
        first = e.errors[0]["loc"] if e.errors else ["body"]
        param = ".".join(str(x) for x in first[1:]) or None
        return _error(request, e.status, str(e), "invalid_request_error", param, e.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> Response:
        errs = [{"loc": list(x["loc"]), "msg": x["msg"], "type": x["type"]} for x in e.errors()]
        return _error(request, 422, "; ".join(x["msg"] for x in errs), "invalid_request_error", None, errs)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, e: AuthError) -> Response:
        kind = "authentication_error" if e.status == 401 else "rate_limit_error"
        return _error(request, e.status, e.message, kind, headers=e.headers)

    @app.exception_handler(RedisUnavailable)
    async def _redis(request: Request, e: RedisUnavailable) -> Response:
        return _error(request, 503, f"{e}: job endpoints need Redis (/solve still works)", "service_unavailable",
                      headers={"Retry-After": "1"})

    @app.exception_handler(EngineNotReady)
    async def _engine(request: Request, e: EngineNotReady) -> Response:
        return _error(request, 503, str(e), "service_unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(request, 500, f"internal error: {type(e).__name__}", "server_error")
