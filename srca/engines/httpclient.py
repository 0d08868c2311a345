"""The async HTTP client of the HTTP engines and the served PRM: one pooled ``aiohttp`` session
per event loop (a session's connections belong to the loop that opened them, and engines are
used from several loops: ``Solver.solve`` keeps its own).

Why aiohttp and not httpx: with 128 solves in flight, httpx spent 7.1 ms of client CPU per
batched request (16 samples), aiohttp 1.2 ms, and the engine with orjson for the bodies 1.1 ms
(benchmarks/http_client.py, 2-core CPU sandbox, benchmarks/results/http_client_cpu.json). At the
search's request rates that difference was the HTTP engine's limit.

Failures come as four exception types, so callers can decide what is safe to retry:

* :class:`ConnectFailed` (and :class:`ConnectTimedOut`): no connection was made; the request
  never reached the server (refused, unknown host, connect timeout);
* :class:`ReadTimedOut`: connected and sent, no complete answer within the timeout;
* :class:`ConnectionLost`: the connection broke after it was made (the server may have the request).
"""
from __future__ import annotations

import asyncio
import json as _json
from dataclasses import dataclass
from typing import Any, Mapping


try:  # orjson when installed: several times faster than json on token-id lists
    import orjson as _orjson

    _dumps, _loads = _orjson.dumps, _orjson.loads
except ImportError:  # pragma: no cover - the standard library
    def _dumps(obj: Any) -> bytes:
        return _json.dumps(obj, separators=(",", ":")).encode()

    _loads = _json.loads


class HTTPFailure(Exception):
    """Base of the transport failures below (never raised itself)."""


class ConnectFailed(HTTPFailure):
    """No connection was made: the request never reached the server."""


class ConnectTimedOut(ConnectFailed):
    """Connecting took longer than the connect timeout."""


class ReadTimedOut(HTTPFailure):
    """The request was sent; no complete answer came within the timeout."""


class ConnectionLost(HTTPFailure):
    """The connection broke after it was made (the server may have got the request)."""


@dataclass
class Response:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _loads(self.content)


class _Session:
    """One aiohttp session, used only from the loop that opened it."""

    def __init__(self, timeout_s: float, connect_timeout_s: float, max_connections: int,
                 headers: Mapping[str, str] | None) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
            headers=dict(headers or {}), timeout=self._timeout(timeout_s))

    def _timeout(self, read_s: float) -> Any:
        # sock_connect: the TCP connect; sock_read: the wait for the answer once sent (a whole
        # generation: the server sends nothing before it is done). Waiting for a free pooled
        # connection is not limited (requests beyond max_connections queue, as with a busy server).
        return self._aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout_s,
                                           sock_read=read_s)

    async def post(self, url: str, json: Any = None, headers: Mapping[str, str] | None = None,
                   timeout_s: float | None = None) -> Response:
        aiohttp = self._aiohttp
        kw: dict[str, Any] = {}
        if timeout_s is not None:
            kw["timeout"] = self._timeout(timeout_s)
        if json is not None:
            kw["data"] = _dumps(json)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            async with self.session.post(url, headers=headers, **kw) as r:
                content = await r.read()
                return Response(r.status, r.headers.copy(), content)
        except aiohttp.ConnectionTimeoutError as e:  # the TCP connect timed out
            raise ConnectTimedOut(f"connect to {url} timed out after {self.connect_timeout_s} s") from e
        except aiohttp.ClientConnectorError as e:  # refused, unreachable, DNS
            raise ConnectFailed(str(e)) from e
        except asyncio.TimeoutError as e:
            raise ReadTimedOut(f"no complete answer from {url} within the timeout") from e
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise ConnectionLost(f"{type(e).__name__}: {e}") from e

    async def close(self) -> None:
        await self.session.close()

    def abandon(self) -> None:
        """Drop a session whose loop is gone (or not running here): close its sockets without
        awaiting, so nothing is reported as leaked."""
        connector = self.session.connector
        self.session.detach()
        if connector is not None:
            try:
                connector._close()  # aiohttp's synchronous part of close(): sockets and pool
            except Exception:  # best effort on an interpreter-internal path
                pass


class LoopClient:
    """A pooled client per event loop.

    Args:
        timeout_s: time for a whole answer once connected (a long generation must fit in it).
        connect_timeout_s: time to make a TCP connection (waiting for a free pooled one is not limited).
        max_connections: connections at once across hosts (requests beyond it wait).
        headers: sent with every request (e.g. ``Authorization``).
    """

    def __init__(self, *, timeout_s: float = 600.0, connect_timeout_s: float = 5.0, max_connections: int = 512,
                 headers: Mapping[str, str] | None = None) -> None:
        self._args = (timeout_s, connect_timeout_s, max_connections, dict(headers or {}))
        self._session: _Session | None = None
        self._loop: Any = None

    def get(self) -> _Session:
        """The session of the running loop, opened on first use."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            if self._session is not None:
                self._session.abandon()
            self._session = _Session(*self._args)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            if self._loop is asyncio.get_running_loop():
                await self._session.close()
            else:  # opened on another loop: it cannot be awaited from here
                self._session.abandon()
            self._session = None
