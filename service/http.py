"""The HTTP edge: connection limits (uvicorn over h11), request bodies, host and origin checks,
and the last-resort 500.

Limits (``ServiceConfig``; service/README.md gives the reasons):

* request line + headers at most ``max_header_bytes`` (h11's incomplete-event limit; uvicorn's
  default httptools parser has none, so h11 is used), complete within ``header_timeout_s`` of the
  connection opening or of the next request's first byte (a slow-header client, or one that
  connects and says nothing, is disconnected);
* body at most ``max_body_bytes``, counted as it arrives (a chunked body is refused at the limit,
  not after reading it all), complete within ``body_timeout_s`` (a slow body, or a
  ``Content-Length`` larger than what is sent, gets 408);
* idle keep-alive ``keep_alive_s``; at most ``max_connections`` connections (then 503).

A response to a request whose body was not read to its end, and every 500, carries
``Connection: close``, so the client does not send its next request into a dead connection.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from .config import ServiceConfig
from .responses import JSON, error_body, json_text
from .schemas import InputError, parse_json

log = logging.getLogger("srca.service")

JSON_TYPES = (JSON,)


async def read_body(request: Any, max_bytes: int, timeout_s: float = 30.0) -> Any:
    """The JSON body of a request whose ``Content-Type`` is JSON (415 otherwise: a browser can
    send ``text/plain`` or a form cross-site without asking, never ``application/json``)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise InputError([{"loc": ["header", "content-type"], "type": "unsupported_media_type",
                           "msg": f"the body must be JSON sent as Content-Type: application/json, "
                                  f"got {ctype[:100] or 'none'!r}"}], status=415)
    too_large = InputError.one(None, f"request body larger than {max_bytes} bytes", "too_large", status=413)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large
    chunks, size = [], 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except asyncio.TimeoutError:
        raise InputError.one(None, f"the request body did not arrive within {timeout_s:g} s", "timeout",
                             status=408) from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise InputError([{"loc": ["body"], "msg": "a JSON object is required", "type": "missing"}])
    return parse_json(raw)


# -- ASGI middlewares ----------------------------------------------------------------------------
async def _send_json(send: Any, status: int, body: dict, close: bool = True) -> None:
    data = json_text(body).encode()
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class EdgeMiddleware:
    """Outermost checks of every HTTP request:

    * ``Host`` must be one of ``allowed_hosts`` (400 otherwise): a page on another site that
      resolves its own name to this address (DNS rebinding) is refused;
    * a request that changes state and carries an ``Origin`` (browsers send one) must come from
      this origin (403 otherwise): this service has no CORS, so a cross-site write is never
      legitimate;
    * an exception that escapes a route becomes a clean 500 with an error id and ``Connection:
      close`` (the details go to the log), never a dropped connection.
    """

    def __init__(self, app: Any, config: ServiceConfig) -> None:
        self.app = app
        allowed = config.host_allowlist()
        self.any_host = "*" in allowed
        self.hosts = {h.lower() for h in allowed}

    @staticmethod
    def _host_name(host: str) -> str:
        host = host.strip().lower()
        if host.startswith("["):  # [::1]:8000
            return host.split("]", 1)[0] + "]"
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k in (b"host", b"origin")}
        host = headers.get(b"host", b"").decode("latin-1")
        path = scope.get("path", "")
        if not self.any_host and self._host_name(host) not in self.hosts:
            await _send_json(send, 400, error_body(path, "this Host is not served here (allowed_hosts)",
                                                   "invalid_request_error"))
            return
        origin = headers.get(b"origin")
        if origin is not None and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            o = urlsplit(origin.decode("latin-1"))
            if origin == b"null" or o.netloc.lower() != host.lower():
                await _send_json(send, 403, error_body(path, "cross-origin requests are not accepted",
                                                       "permission_error"))
                return
        started = False

        async def send_wrapper(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as e:
            eid = uuid.uuid4().hex[:12]
            log.exception("unhandled error on %s %s [error id %s]", scope.get("method"), path, eid)
            if not started:
                await _send_json(send, 500, error_body(path, f"internal error (error id {eid})", "server_error"))
            else:
                raise e from None  # the response is under way: the server can only close the connection


# -- the server ----------------------------------------------------------------------------------
def uvicorn_config(app: Any, config: ServiceConfig) -> Any:
    """A ``uvicorn.Config`` that enforces the connection limits above."""
    import uvicorn

    return uvicorn.Config(
        app, host=config.host, port=config.port, http=guarded_h11_protocol(config.header_timeout_s),
        h11_max_incomplete_event_size=config.max_header_bytes, timeout_keep_alive=int(max(1, config.keep_alive_s)),
        limit_concurrency=config.max_connections, log_level=config.log_level.lower(), access_log=False,
        timeout_graceful_shutdown=10,
    )


def guarded_h11_protocol(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol with a deadline on receiving each request's head."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                log.info("closing a connection that sent no complete request head within %.1f s", header_timeout_s)
                self.transport.close()

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()  # a connection that never sends anything is closed too

        def data_received(self, data: bytes) -> None:
            if self._between_requests():
                self._arm()  # the first bytes of the next request: its head is now due
            super().data_received(data)
            if not self._between_requests():
                self._disarm()  # the head arrived; the body has its own timeout

        def on_response_complete(self) -> None:
            self._disarm()  # idle now: the keep-alive timeout applies until the next byte
            super().on_response_complete()
            if not self._between_requests():  # a pipelined request was already parsed
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
