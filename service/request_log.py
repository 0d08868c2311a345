"""Request ids and the access log.

Every HTTP request gets an id: the client's ``X-Request-ID`` when it is sane (a proxy or the
client already named the request), else a new one. It is bound to every log line the request
causes (``srca.logs.bind``), sent back as the ``X-Request-ID`` response header, and closes the
request with one access log line (logger ``srca.access``): method, path, status, latency, bytes,
and what the request's solve noted (solve id, cache hit, method, n, tokens, stop reason).
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from srca import logs

log = logging.getLogger("srca.access")

HEADER = b"x-request-id"
# what a client may name its request: printable, no spaces or quotes (the id goes into log lines
# and a response header as it is), short enough for a log field
SANE_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")
# probes and scrapes arrive every few seconds: at INFO they would drown the requests that matter
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for k, v in headers:
        if k == HEADER:
            value = v.decode("latin-1").strip()
            if SANE_ID.fullmatch(value):
                return value
            break
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Outermost ASGI middleware: the request id (bound, and sent back as ``X-Request-ID``) and
    one access log line per request, written when its response has ended (for a stream: when
    the stream ends or the client goes)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers") or [])
        t0 = time.perf_counter()
        status: list[int | None] = [None]
        sent = [0]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode("latin-1"))]}
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        path = scope.get("path", "")
        error: str | None = None
        with logs.bind(request_id=rid), logs.request_notes() as notes:
            try:
                await self.app(scope, receive, send_wrapper)
            except BaseException as e:  # logged with the line below, then re-raised as it was
                error = type(e).__name__
                raise
            finally:
                client = scope.get("client")
                fields = {"http_method": scope.get("method"), "path": path, "status": status[0],
                          "latency_ms": round((time.perf_counter() - t0) * 1000, 1), "bytes": sent[0],
                          "client": client[0] if client else None, **notes}
                if error is not None:
                    fields["error"] = error
                level = logging.DEBUG if path in QUIET_PATHS and (status[0] or 500) < 400 else logging.INFO
                log.log(level, "%s %s %s", scope.get("method"), path, status[0] if status[0] is not None else "-",
                        extra={k: v for k, v in fields.items() if v is not None})
