"""RedisHandle: one async Redis client plus an up/down breaker.

When a call fails with a connection error the handle goes *down*: callers skip Redis at once
(no per-request connect timeouts), a background task pings every ``retry_s`` and flips it back
*up* when Redis answers. So the service degrades (cache off, jobs 503) and recovers by itself.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("srca.service")

try:  # redis is an optional dependency (the `service` extra)
    from redis.exceptions import ConnectionError as _RConnErr, TimeoutError as _RTimeout
    REDIS_ERRORS: tuple[type[BaseException], ...] = (_RConnErr, _RTimeout, OSError)
except ImportError:  # pragma: no cover
    REDIS_ERRORS = (OSError,)


class RedisUnavailable(Exception):
    """Redis is not configured or currently down."""


# Where a connection torn down under a command shows up as something other than redis-py's
# ConnectionError: a write on a peer-closed transport raises uvloop's RuntimeError ("the handler is
# closed") or, on CPython's loop, TypeError / AttributeError from the transport's cleared internals
# (redis/redis-py#4287). Such an error is a lost connection only when raised inside redis-py's
# connection layer; the same types from anywhere else are bugs and propagate.
_TRANSPORT_ERRORS = (RuntimeError, TypeError, AttributeError)
_CONNECTION_LAYER = ("/redis/asyncio/connection.py", "/redis/_parsers/")


def lost_connection(e: BaseException) -> bool:
    """Whether ``e`` is a connection lost under a redis-py command (see ``_TRANSPORT_ERRORS``)."""
    if isinstance(e, REDIS_ERRORS):
        return True
    if not isinstance(e, _TRANSPORT_ERRORS):
        return False
    tb = e.__traceback__
    while tb is not None:
        where = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if any(part in where for part in _CONNECTION_LAYER):
            return True
        tb = tb.tb_next
    return False


class RedisHandle:
    def __init__(self, url: str | None, prefix: str = "srca:", retry_s: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_s = retry_s
        self.client: Any = None
        self._up = False
        self._up_event = asyncio.Event()
        self._probe: asyncio.Task | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.url is None:
            return
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.client = aioredis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=5.0,
            retry=Retry(NoBackoff(), 1), max_connections=512, health_check_interval=5,
        )
        try:
            await self.client.ping()
            self._set_up()
        except REDIS_ERRORS as e:
            self.mark_down(e)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.client is not None:
            try:
                await self.client.aclose()
            except Exception:  # closing a dead connection pool must not fail shutdown
                pass

    # -- state ----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def up(self) -> bool:
        return self._up

    def state(self) -> str:
        return "disabled" if not self.enabled else ("up" if self._up else "down")

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def require(self) -> Any:
        """The client, or :class:`RedisUnavailable` when Redis is off or down."""
        if not self._up:
            raise RedisUnavailable("redis is " + ("not configured" if not self.enabled else "unavailable"))
        return self.client

    async def wait_up(self) -> None:
        await self._up_event.wait()

    def _set_up(self) -> None:
        if not self._up and self.enabled:
            log.info("redis is up (%s)", self.url)
        self._up = True
        self._up_event.set()

    def mark_down(self, err: BaseException | None = None) -> None:
        was_up, first = self._up, self._probe is None
        self._up = False
        self._up_event.clear()
        if was_up or first:
            log.warning("redis at %s is unavailable (%s): cache off, job endpoints answer 503 until it returns",
                        self.url, err)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.client.ping()
            except REDIS_ERRORS:
                continue
            except Exception as e:  # e.g. auth errors: stay down, say why
                log.warning("redis ping failed: %s", e)
                continue
            self._set_up()
            return

    async def call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run ``await fn(client, ...)``; a connection error marks Redis down and raises
        :class:`RedisUnavailable`."""
        client = self.require()
        try:
            return await fn(client, *args, **kw)
        except REDIS_ERRORS + _TRANSPORT_ERRORS as e:
            if not lost_connection(e):
                raise
            self.mark_down(e)
            raise RedisUnavailable(f"redis is unavailable: {e}") from None
