"""``create_app``: the FastAPI app of one service replica (no work at import time).

Routes: ``POST /solve`` (JSON, or SSE with ``"stream": true``), ``POST/GET/DELETE /jobs``,
the OpenAI-compatible ``/v1`` facade, ``/healthz``, ``/readyz``, ``/metrics``.
"""
from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from srca.config import SearchConfig
from srca.engines.base import Engine

from .auth import AuthError
from .config import ServiceConfig
from .engine_guard import EngineFailure, EngineRejected, error_id
from .http import EdgeMiddleware
from .http import read_body as _read_body
from .jobs import job_view
from .limits import Overloaded, check_request
from .metrics import MetricsMiddleware
from .redis_conn import RedisUnavailable
from .request_log import RequestLogMiddleware
from .responses import JSON, error_body, html_response, json_response
from .runtime import EngineNotReady, Runtime, SolveTimeout
from .schemas import InputError, SolveInput, parse_solve, request_body, solve_request_model
from .streaming import ClientGone, EventStreamResponse, cancel_on_disconnect, sse

log = logging.getLogger("srca.service")


def wants_html(request: Request) -> bool:
    """Whether the client asks for a page: ``text/html`` in Accept, ahead of any JSON type (a
    browser; API clients send ``application/json`` or ``*/*``)."""
    accept = [a.split(";")[0].strip().lower() for a in request.headers.get("accept", "").split(",")]
    if "text/html" not in accept:
        return False
    json_at = [i for i, a in enumerate(accept) if a == JSON or a.endswith("+json")]
    return not json_at or accept.index("text/html") < json_at[0]


def _job_page(view: dict[str, Any]) -> Response:
    """A finished job's Solution drawn by the trace viewer; otherwise a small page that reloads."""
    from srca.viewer import render_html

    if isinstance(view.get("result"), dict):
        return html_response(render_html(view["result"]))
    state = html.escape(str(view.get("state")))
    waiting = state in ("queued", "running")
    body = ("<!doctype html><meta charset=utf-8>" + ("<meta http-equiv=refresh content=2>" if waiting else "")
            + f"<title>srca job {state}</title><p>Job {html.escape(str(view.get('id')))} is {state}."
            + ("" if waiting else f" {html.escape(str(view.get('error') or ''))}") + "</p>")
    return html_response(body)


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

    # FastAPI's own /docs and /redoc load their scripts from a CDN (a blank page offline): the
    # service serves its own (see _install_docs)
    app = FastAPI(title="srca", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="SRCA test-time-scaling reasoning service")
    app.state.runtime = rt
    # the last added is the outermost: the metrics wrap the edge checks (host, origin, the
    # last-resort 500), so a refused or failed request is counted with the status it got; the
    # request id wraps them all, so every response carries it and every request is logged
    app.add_middleware(EdgeMiddleware, config=config)
    app.add_middleware(MetricsMiddleware, metrics=rt.metrics)
    app.add_middleware(RequestLogMiddleware)
    _install_docs(app)
    _install_error_handlers(app, rt)

    async def guard(request: Request) -> str | None:
        """The caller's key id (``None`` when keys are off); 401/429 otherwise."""
        if rt.auth.enabled:
            return await rt.auth.check(request.headers.get("authorization"))
        return None

    async def read_body(request: Request, max_bytes: int) -> Any:
        return await _read_body(request, max_bytes, config.body_timeout_s)

    def checked(inp: SolveInput) -> SolveInput:
        check_request(inp.problem, inp.config, config.max_n, config.max_request_tokens, config.max_deadline_s)
        return inp

    def owner(key_id: str | None) -> str | None:
        """Whose jobs a caller may see: its own when keys are on (``None``: any, keys off)."""
        return (key_id or "") if rt.auth.enabled else None

    solve_body = request_body(solve_request_model())

    # -- solve ----------------------------------------------------------------------------
    @app.post("/solve", openapi_extra=solve_body, summary="Solve one problem (JSON, or SSE with stream=true)")
    async def solve(request: Request) -> Response:
        key_id = await guard(request)
        inp = checked(parse_solve(await read_body(request, config.max_body_bytes), rt.base_config))
        rt.require_solver()
        if inp.stream:
            return EventStreamResponse(lambda: _solve_events(rt, inp.problem, inp.config, key_id))
        try:
            out = await cancel_on_disconnect(rt.solve(inp.problem, inp.config, key_id), request.receive)
        except ClientGone:
            return Response(status_code=499)
        return Response(out.text, 200, {"X-SRCA-Cache": "hit" if out.cached else "miss"}, JSON)

    # -- jobs -----------------------------------------------------------------------------
    @app.post("/jobs", status_code=202, openapi_extra=solve_body, summary="Queue a solve; poll GET /jobs/{id}")
    async def submit_job(request: Request) -> Response:
        key_id = await guard(request)
        inp = checked(parse_solve(await read_body(request, config.max_body_bytes), rt.base_config))
        if inp.stream:
            raise InputError.one("stream", "jobs do not stream; poll GET /jobs/{id}")
        rt.redis.require()
        job_id = await rt.jobs.submit({"problem": inp.problem, "config": inp.config.to_dict()}, key_id or "")
        return json_response({"id": job_id, "state": "queued", "url": f"/jobs/{job_id}"}, 202, {"Location": f"/jobs/{job_id}"})

    @app.get("/jobs/{job_id}", summary="A job's state, and its result or error")
    async def get_job(job_id: str, request: Request) -> Response:
        key_id = await guard(request)
        h = await rt.jobs.get(job_id, owner(key_id))
        if h is None:  # also another key's job: its existence is not told
            return json_response({"detail": f"no job {job_id[:64]!r}"}, 404)
        view = job_view(h)
        if wants_html(request):  # a browser: the trace viewer for a finished job
            return _job_page(view)
        return json_response(view)

    @app.get("/view", include_in_schema=False)
    async def live_view() -> Response:
        """The trace viewer, empty, set to follow a solve streamed from this service's POST /solve
        (same origin, so the service's cross-site write checks let it through)."""
        from srca.viewer import render_html

        return html_response(render_html(None, stream_url="/solve", title="srca: follow a solve"))

    @app.delete("/jobs/{job_id}", summary="Cancel a job (its solve stops on whichever replica runs it)")
    async def cancel_job(job_id: str, request: Request) -> Response:
        key_id = await guard(request)
        state = await rt.jobs.cancel(job_id, owner(key_id))
        if state == "missing":
            return json_response({"detail": f"no job {job_id[:64]!r}"}, 404)
        h = await rt.jobs.get(job_id, owner(key_id))
        view = job_view(h) if h else {"id": job_id, "state": state}
        if state != "cancelled":
            view["detail"] = f"job already {state}"
            return json_response(view, 409)
        return json_response(view)

    # -- health ---------------------------------------------------------------------------
    @app.get("/healthz", summary="The process answers")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", summary="Engine and Redis state; 503 until the engine is ready")
    async def readyz() -> Response:
        ready = rt.solver is not None and rt.engine_state == "ready"
        body = {"ready": ready, "engine": rt.engine_state, "model": rt.model, "redis": rt.redis.state(),
                "jobs": "on" if rt.redis.up else "off", "cache": "on" if (config.cache and rt.redis.up) else "off"}
        return json_response(body, 200 if ready else 503)

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

    app.include_router(make_router(rt, guard, read_body, checked=lambda p, c: check_request(
        p, c, config.max_n, config.max_request_tokens, config.max_deadline_s)))
    return app


async def _solve_events(rt: Runtime, problem: str, cfg: SearchConfig, key_id: str | None) -> AsyncIterator[bytes]:
    """SSE chunks of one solve: its step/checkpoint/select events as they happen, then ``final``
    carrying the whole Solution (or ``error``). The solve is the shared one: a cached result is
    streamed as its ``final`` at once, and an identical solve already running is joined (its
    events so far first)."""
    queue: asyncio.Queue = asyncio.Queue()
    final: dict = {}

    def on_event(ev: dict) -> None:
        if ev.get("type") == "final":
            final.update(ev)
        else:
            queue.put_nowait(ev)

    task = asyncio.ensure_future(rt.solve(problem, cfg, key_id, on_event=on_event))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (ev := await queue.get()) is not None:
            yield sse(ev["type"], ev)
        try:
            out = task.result()
        except Exception as e:  # the status is already 200: say so in-band, details to the log
            status, message = _public(e)
            yield sse("error", {"type": "error", "status": status, "message": message})
            return
        d = out.data
        yield sse("final", {"answer": d.get("answer"), "confidence": d.get("confidence"),
                            "stop_reason": d.get("stop_reason"), **final, "type": "final",
                            "cache": "hit" if out.cached else "miss", "solution": d})
    finally:
        task.cancel()


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from files served by this service: the scripts ship
    in the ``fastapi-offline`` package (the service extra), so the pages work with no network.
    Without that package both answer 404 with the reason, and ``/openapi.json`` still works."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from starlette.responses import HTMLResponse

    try:
        from importlib.resources import files

        static = files("fastapi_offline") / "static"
    except ImportError:
        static = None
    if static is None or not static.is_dir():
        @app.get("/docs", include_in_schema=False)
        @app.get("/redoc", include_in_schema=False)
        async def no_docs() -> Response:
            return json_response({"detail": "API docs need the fastapi-offline package (pip install 'srca[service]'); "
                                    "the schema is at /openapi.json"}, 404)
        return
    from starlette.staticfiles import StaticFiles

    assets = "/docs-assets"
    app.mount(assets, StaticFiles(directory=str(static)), name="docs-assets")
    # validatorUrl off: Swagger UI would otherwise send the schema to its online validator
    params = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"), title=app.title + " - API docs",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js", swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png", oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            swagger_ui_parameters=params)

    @app.get(app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=root + (app.openapi_url or "/openapi.json"), title=app.title + " - ReDoc",
                              redoc_js_url=f"{root}{assets}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{assets}/favicon.png", with_google_fonts=False)


def _public(e: BaseException) -> tuple[int, str]:
    """(status, message) a client may see for a failed solve; the details go to the log."""
    if isinstance(e, EngineFailure):
        return 503, str(e)
    if isinstance(e, SolveTimeout):
        return 504, str(e)
    if isinstance(e, Overloaded):
        return 429, str(e)
    if isinstance(e, (EngineRejected, InputError)):
        return 422, str(e)
    eid = error_id()
    log.error("solve failed [error id %s]", eid, exc_info=e)
    return 500, f"internal error (error id {eid})"


def _error(request: Request, status: int, message: str, kind: str, param: str | None = None,
           detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    return json_response(error_body(request.url.path, message, kind, param, detail), status, headers)


def _install_error_handlers(app: FastAPI, rt: Runtime) -> None:
    retry_engine = str(max(1, int(rt.config.engine_retry_s + 0.999)))

    @app.exception_handler(InputError)
    async def _input(request: Request, e: InputError) -> Response:
        first = e.errors[0]["loc"] if e.errors else ["body"]
        param = ".".join(str(x) for x in first[1:]) or None
        # refused before its body was read to the end: the connection cannot carry another request
        headers = {"Connection": "close"} if e.status in (408, 413, 415) else None
        return _error(request, e.status, str(e), "invalid_request_error", param, e.errors, headers)

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
        # the cause (it names Redis's address) is in the log already
        return _error(request, 503, "redis is unavailable: job endpoints need Redis (/solve still works)",
                      "service_unavailable", headers={"Retry-After": "1"})

    @app.exception_handler(EngineNotReady)
    async def _engine(request: Request, e: EngineNotReady) -> Response:
        return _error(request, 503, str(e), "service_unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(EngineFailure)
    async def _engine_failed(request: Request, e: EngineFailure) -> Response:
        return _error(request, 503, str(e), "service_unavailable", headers={"Retry-After": retry_engine})

    @app.exception_handler(EngineRejected)
    async def _engine_rejected(request: Request, e: EngineRejected) -> Response:
        err = InputError.one("problem", f"the engine refused the request: {e}")
        return _error(request, 422, str(err), "invalid_request_error", "problem", err.errors)

    @app.exception_handler(SolveTimeout)
    async def _timeout(request: Request, e: SolveTimeout) -> Response:
        return _error(request, 504, str(e), "timeout")

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, e: Overloaded) -> Response:
        return _error(request, 429, f"{e}; retry shortly", "rate_limit_error", headers={"Retry-After": "1"})
