"""``create_app``: the FastAPI app of one service replica (no work at import time).

The app is its :class:`Runtime` (engine, solver, Redis, cache, jobs, worker, metrics), the edge
middlewares, the error handlers (:mod:`.errors`) and one router per concern (:mod:`.routes`):
``POST /solve`` (JSON, or SSE with ``"stream": true``), ``POST/GET/DELETE /jobs``, the
OpenAI-compatible ``/v1`` facade, ``/healthz``, ``/readyz``, ``/metrics``, and the pages
``/view``, ``/docs``, ``/redoc``. Every route checks its request through one :class:`Gate`.
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

from fastapi import FastAPI

from srca.config import SearchConfig
from srca.engines.base import Engine

from .config import ServiceConfig
from .errors import install_error_handlers
from .gate import Gate
from .http import EdgeMiddleware
from .metrics import MetricsMiddleware
from .request_log import RequestLogMiddleware
from .routes import jobs, openai, ops, pages, solve
from .runtime import Runtime


def create_app(config: ServiceConfig | None = None, *, engine: Engine | None = None,
               engine_factory: Callable[[], Engine] | None = None,
               search_config: SearchConfig | None = None) -> FastAPI:
    """The app. Pass a ready ``engine``, or an ``engine_factory`` that is called in a thread at
    startup (``/readyz`` answers 503 until it is ready). ``search_config`` holds the defaults
    that request fields override."""
    config = config or ServiceConfig()
    rt = Runtime(config, engine=engine, engine_factory=engine_factory, base_config=search_config)
    # FastAPI's own /docs and /redoc load their scripts from a CDN (a blank page offline): the
    # service serves its own (routes/pages.py)
    app = FastAPI(title="srca", version="0.1.0", lifespan=_lifespan(rt), docs_url=None, redoc_url=None,
                  description="SRCA test-time-scaling reasoning service")
    app.state.runtime = rt
    # the last added is the outermost: the metrics wrap the edge checks (host, origin, the
    # last-resort 500), so a refused or failed request is counted with the status it got; the
    # request id wraps them all, so every response carries it and every request is logged
    app.add_middleware(EdgeMiddleware, config=config)
    app.add_middleware(MetricsMiddleware, metrics=rt.metrics)
    app.add_middleware(RequestLogMiddleware)
    pages.install_docs(app)
    install_error_handlers(app, config.engine_retry_s)
    gate = Gate(rt)
    for router in (solve.router(rt, gate), jobs.router(rt, gate), pages.router(), ops.router(rt),
                   openai.router(rt, gate)):
        app.include_router(router)
    return app


def _lifespan(rt: Runtime) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The replica's start (engine, Redis, worker) and stop, around the app's life."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    return lifespan
