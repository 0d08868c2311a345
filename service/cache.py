"""Result cache in Redis plus single-flight, in this process and across replicas.

``key``: sha256 of (problem, full config incl. seed, model). A solve runs at most once per key
at a time: in one process the callers share one task (it is cancelled only when every caller
has gone); across replicas the first takes a Redis lock ``lock:<key>`` (SET NX PX, renewed while
it solves) and the others poll for the cached result, taking over if the lock holder vanishes.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from srca.config import SearchConfig
from srca.solution import Solution

from .redis_conn import RedisHandle, RedisUnavailable

log = logging.getLogger("srca.service")

# results cut short by the clock are not reproducible: never cache them
UNCACHEABLE_STOPS = frozenset({"deadline", "cancelled"})

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def cache_key(problem: str, config: SearchConfig, model: str) -> str:
    blob = json.dumps({"p": problem, "c": config.to_dict(), "m": model}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Outcome:
    """A solve's result: the Solution as a dict and as JSON text (the text is what the cache
    holds and what /solve sends, so a hit costs no re-encoding); ``cached``: a cache hit."""

    data: dict[str, Any]
    text: str
    cached: bool = False

    @classmethod
    def of(cls, sol: Solution) -> "Outcome":
        d = sol.to_dict()
        return cls(d, json.dumps(d, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_text(cls, text: str, cached: bool = True) -> "Outcome":
        return cls(json.loads(text), text, cached)


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.waiters = 0


class ResultCache:
    def __init__(self, redis: RedisHandle, ttl_s: float, lock_ttl_s: float = 30.0, enabled: bool = True,
                 on_hit: Callable[[], Any] | None = None, on_miss: Callable[[], Any] | None = None) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_s * 1000)
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        self.enabled = enabled
        self.on_hit = on_hit or (lambda: None)
        self.on_miss = on_miss or (lambda: None)
        self._flights: dict[str, _Flight] = {}
        self.owner = uuid.uuid4().hex

    # -- plain get/set (errors mean "no cache", never a failed request) ---------------------
    async def get(self, key: str) -> Outcome | None:
        if not (self.enabled and self.redis.up):
            return None
        try:
            text = await self.redis.call(lambda c: c.get(self.redis.key("cache", key)))
        except RedisUnavailable:
            return None
        return Outcome.from_text(text) if text is not None else None

    async def put(self, key: str, out: Outcome) -> None:
        if not (self.enabled and self.redis.up) or out.data.get("stop_reason") in UNCACHEABLE_STOPS:
            return
        try:
            await self.redis.call(lambda c: c.set(self.redis.key("cache", key), out.text, px=self.ttl_ms))
        except RedisUnavailable:
            pass

    # -- single flight --------------------------------------------------------------------
    async def get_or_solve(self, key: str, solve: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """The cached result for ``key``, or the result of one shared ``solve()``."""
        flight = self._flights.get(key)
        if flight is None or flight.task.done():
            flight = _Flight(asyncio.get_running_loop().create_task(self._lead(key, solve)))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda t, k=key, f=flight: self._flights.pop(k, None)
                                          if self._flights.get(k) is f else None)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if flight.task.done() and not flight.task.cancelled():
                raise
            flight.waiters -= 1
            if flight.waiters == 0:  # last caller gone: stop the solve
                flight.task.cancel()
            raise

    async def _lead(self, key: str, solve: Callable[[], Awaitable[Outcome]]) -> Outcome:
        if not self.enabled:
            return await solve()
        hit = await self.get(key)
        if hit is not None:
            self.on_hit()
            return hit
        self.on_miss()
        lock = self.redis.key("lock", key)
        delay = 0.005
        while True:
            if not self.redis.up:
                return await solve()
            try:
                got = await self.redis.call(lambda c: c.set(lock, self.owner, nx=True, px=self.lock_ttl_ms))
            except RedisUnavailable:
                return await solve()
            if got:
                return await self._solve_locked(key, lock, solve)
            # another replica solves it: wait for its result (or for its lock to vanish)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
            hit = await self.get(key)
            if hit is not None:
                return hit

    async def _solve_locked(self, key: str, lock: str, solve: Callable[[], Awaitable[Outcome]]) -> Outcome:
        renew = asyncio.get_running_loop().create_task(self._renew(lock))
        try:
            out = await solve()
            await self.put(key, out)
            return out
        finally:
            renew.cancel()
            try:
                await self.redis.call(lambda c: c.eval(_RELEASE, 1, lock, self.owner))
            except RedisUnavailable:
                pass

    async def _renew(self, lock: str) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl_ms / 3000)
            try:
                await self.redis.call(lambda c: c.eval(_RENEW, 1, lock, self.owner, self.lock_ttl_ms))
            except RedisUnavailable:
                pass
