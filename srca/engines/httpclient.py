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

:class:`RetryPolicy` and :func:`send_with_retries` are the one retry rule of every HTTP client
here (the SGLang and OpenAI-compatible engines, the served PRM): what is retried, how long to
wait, and the errors raised when a call fails for good (:class:`HTTPStatusError`,
``ConnectionError``, ``TimeoutError``).
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json as _json
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

log = logging.getLogger(__name__)


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


# -- retries ----------------------------------------------------------------------------------
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class HTTPStatusError(RuntimeError):
    """The server answered an error ``status``: one retrying cannot fix (a 4xx other than 429, or
    a 5xx the policy does not retry), or a retried one that outlasted the policy's tries.
    ``message`` is the server's own error text."""

    def __init__(self, text: str, status: int, message: str) -> None:
        super().__init__(text)
        self.status, self.message = status, message


@dataclass(frozen=True)
class RetryPolicy:
    """How an HTTP call is retried; one rule for every HTTP client of srca.

    A try is repeated, up to ``attempts`` tries in all, when

    * no connection was made (:class:`ConnectFailed`, :class:`ConnectTimedOut`): the server never
      saw the request, so trying again is always safe;
    * the connection broke after the request was sent (:class:`ConnectionLost`), only for a call
      declared idempotent (:func:`send_with_retries`): the server may have acted on it. Generation
      and scoring are (the SGLang engine also aborts the broken try's rids);
    * the answer's status is one of ``statuses`` (default 429 Too Many Requests, and 502, 503, 504:
      a busy, restarting or unreachable server behind a proxy).

    Never retried: any other 4xx (the request itself is wrong, the same bytes would fail again:
    the server's message is raised at once), other 5xx unless listed, and a read timeout (the
    timeout already bounds one whole answer; repeating it would multiply the wait).

    The wait before retry ``k`` (1 for the first) is the answer's ``Retry-After`` (seconds or an
    HTTP date) when ``retry_after`` is on and the answer has one, at most ``max_retry_after_s``;
    otherwise ``backoff_s * 2**(k-1)`` times a random factor in ``[1 - jitter, 1 + jitter]``
    (so many clients failing together do not come back together), at most ``max_backoff_s``.
    """

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    jitter: float = 0.25
    statuses: frozenset[int] = RETRY_STATUSES
    retry_after: bool = True
    max_retry_after_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"RetryPolicy.attempts: an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts: tries in all, must be >= 1, got {self.attempts}")
        for name in ("backoff_s", "max_backoff_s", "max_retry_after_s", "jitter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"RetryPolicy.{name}: a number, got {v!r}")
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"RetryPolicy.{name}: must be a finite number >= 0, got {v}")
        if self.jitter >= 1:
            raise ValueError(f"RetryPolicy.jitter: must be < 1 (a fraction of the wait), got {self.jitter}")
        if isinstance(self.statuses, (str, bytes)) or not hasattr(self.statuses, "__iter__"):
            raise TypeError(f"RetryPolicy.statuses: HTTP status codes, got {self.statuses!r}")
        statuses = frozenset(self.statuses)
        for st in statuses:
            if isinstance(st, bool) or not isinstance(st, int):
                raise TypeError(f"RetryPolicy.statuses: HTTP status codes (ints), got {st!r}")
            if st != 429 and not 500 <= st <= 599:
                raise ValueError(f"RetryPolicy.statuses: only 429 and 5xx can be retried (a 4xx means the request "
                                 f"is wrong and would fail again), got {st}")
        object.__setattr__(self, "statuses", statuses)
        if not isinstance(self.retry_after, bool):
            raise TypeError(f"RetryPolicy.retry_after: True or False, got {self.retry_after!r}")

    def retries_status(self, status: int) -> bool:
        return status in self.statuses

    def delay_s(self, retry: int, response: Response | None = None,
                rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry ``retry`` (1 for the first), after ``response`` when the
        last try was answered (its ``Retry-After`` counts), else after a failed connection."""
        if retry < 1:
            raise ValueError(f"RetryPolicy.delay_s: retry counts from 1, got {retry}")
        if self.retry_after and response is not None:
            after = retry_after_s(response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_retry_after_s)
        base = self.backoff_s * 2.0 ** min(retry - 1, 62)
        factor = 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return min(self.max_backoff_s, base * factor)


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds from now (delay-seconds or an HTTP date; 0 for a date
    already past), or None when there is none or it does not parse."""
    if value is None:
        return None
    try:
        s = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        s = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, s) if math.isfinite(s) else None


def retry_policy(owner: str, retry: RetryPolicy | Mapping[str, Any] | None = None, *,
                 max_retries: int | None = None, backoff_s: float | None = None) -> RetryPolicy:
    """The policy of a client built with ``retry`` (a :class:`RetryPolicy`, its fields as a dict
    as from ``--engine-option retry={...}``, or None for the defaults) and the engines' two
    shorthand options on top: ``max_retries`` (retries after the first try) and ``backoff_s``.
    Bad values raise ``ValueError``/``TypeError`` naming ``owner``."""
    if retry is None:
        retry = RetryPolicy()
    elif isinstance(retry, Mapping):
        try:
            retry = RetryPolicy(**retry)
        except TypeError as e:
            raise TypeError(f"{owner}.retry: {e}") from None
        except ValueError as e:
            raise ValueError(f"{owner}.retry: {e}") from None
    elif not isinstance(retry, RetryPolicy):
        raise TypeError(f"{owner}.retry: a RetryPolicy or a dict of its fields, got {type(retry).__name__}")
    changes: dict[str, Any] = {}
    if max_retries is not None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError(f"{owner}.max_retries: an int, got {max_retries!r}")
        if max_retries < 0:
            raise ValueError(f"{owner}.max_retries: must be >= 0, got {max_retries}")
        changes["attempts"] = max_retries + 1
    if backoff_s is not None:
        changes["backoff_s"] = backoff_s
    try:
        return dataclasses.replace(retry, **changes)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{owner}: {e}") from None


def server_message(resp: Response, limit: int = 500) -> str:
    """The error text of an answer: ``error.message``, ``error``, ``detail`` or ``message`` of a
    JSON body (OpenAI, FastAPI and SGLang spell it so), else the body; at most ``limit`` chars."""
    text = resp.text
    try:
        data = _loads(resp.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            v = data.get(key)
            if isinstance(v, dict):
                v = v.get("message")
            if isinstance(v, str) and v:
                text = v
                break
    return text[:limit]


async def send_with_retries(send: Callable[[], Awaitable[Response]], policy: RetryPolicy, *, what: str,
                            path: str, timeout_s: float, idempotent: bool = False,
                            on_retry: Callable[[], None] | None = None) -> Response:
    """Call ``send`` (one try of one request) under ``policy`` and return the first answer that
    is not an error status.

    Args:
        send: makes one try (a fresh one each call, e.g. with new request ids) and returns its
            :class:`Response`, raising this module's :class:`HTTPFailure` types.
        what: the server for messages, e.g. ``"SGLang server at http://host:30000"``.
        path: the endpoint for messages, e.g. ``"/generate"``.
        timeout_s: the read timeout ``send`` runs under (for the message).
        idempotent: whether repeating the request has no effect beyond its answer; only then is a
            try whose connection broke after it was sent repeated.
        on_retry: called before each retry (counters).

    Raises:
        HTTPStatusError: an error status that is not retried (at once, with the server's
            message), or a retried one still answered by the last try.
        ConnectionError: no try got an answer (refused, unreachable, connection broken), or the
            connection of a non-idempotent request broke after it was sent.
        TimeoutError: a try got no complete answer within ``timeout_s`` (not retried).
    """
    last_err: HTTPFailure | None = None
    last_resp: Response | None = None
    for attempt in range(policy.attempts):
        if attempt:
            wait = policy.delay_s(attempt, last_resp)
            log.info("%s: retrying %s in %.2f s (%s)", what, path, wait,
                     f"answered {last_resp.status_code}" if last_resp is not None else type(last_err).__name__)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(wait)
        try:
            resp = await send()
        except ReadTimedOut as e:
            raise TimeoutError(f"{what}: no answer within {timeout_s} s on {path}") from e
        except ConnectionLost as e:
            if not idempotent:
                raise ConnectionError(f"{what}: the connection broke after {path} was sent ({e}); not retried, "
                                      "the request may have taken effect") from e
            last_err, last_resp = e, None
            continue
        except ConnectFailed as e:
            last_err, last_resp = e, None
            continue
        if policy.retries_status(resp.status_code):
            last_err, last_resp = None, resp
            continue
        if resp.status_code >= 400:
            msg = server_message(resp)
            raise HTTPStatusError(f"{what} answered {resp.status_code} on {path}: {msg}", resp.status_code, msg)
        return resp
    tries = f"{policy.attempts} {'try' if policy.attempts == 1 else 'tries'}"
    if last_resp is not None:
        msg = server_message(last_resp, 300)
        raise HTTPStatusError(f"{what} still answered {last_resp.status_code} on {path} after {tries}: {msg}",
                              last_resp.status_code, msg)
    raise ConnectionError(f"{what} is not reachable ({type(last_err).__name__}: {last_err}) after {tries}; "
                          "is it running, and is the URL right?") from last_err
