"""Failures as HTTP answers: what a client may see of a failed solve (:func:`public_error`), and
the app's exception handlers (``{"detail": ...}``, OpenAI's envelope under ``/v1/``)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from .auth import AuthError
from .engine_guard import EngineFailure, EngineRejected, error_id
from .limits import Overloaded
from .redis_conn import RedisUnavailable
from .responses import error_body, json_response
from .runtime import EngineNotReady, SolveTimeout
from .schemas import InputError

log = logging.getLogger("srca.service")


def public_error(e: BaseException) -> tuple[int, str]:
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


def install_error_handlers(app: FastAPI, engine_retry_s: float) -> None:
    retry_engine = str(max(1, int(engine_retry_s + 0.999)))

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
