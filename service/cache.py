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
from .responses import json_text

log = logging.getLogger("srca.service")

# results cut short by the clock are not reproducible: never cache them
UNCACHEABLE_STOPS = frozenset({"deadline", "cancelled"})

# KEYS: cache, lock | ARGV: owner, lock ttl ms -> {1, result} | {2, ''} lock taken | {0, ''} busy
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
"""
# KEYS: cache, lock | ARGV: result ('' = do not cache), ttl ms, owner
_STORE_RELEASE = """
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def cache_key(problem: str, config: SearchConfig, model: str, scope: str = "") -> str:
    """sha256 of (scope, model, problem, config). ``repr`` of the frozen dataclass lists every
    field (the seed included) in a fixed order, and is ten times cheaper than ``to_dict`` + JSON.
    ``scope``: the API key's id when results must not be shared between keys (a hit would tell
    one key what another asked)."""
    blob = f"{scope}\x00{model}\x00{problem}\x00{config!r}"
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def solution_dict(sol: Solution) -> dict[str, Any]:
    """``sol.to_dict()`` without ``dataclasses.asdict``'s deep copy (0.2 ms a solve; a test
    checks that both give the same dict)."""
    d = dict(sol.__dict__)
    d["candidates"] = [dict(c.__dict__) for c in sol.candidates]
    d["trace"] = [dict(t.__dict__) for t in sol.trace]
    d["usage"] = {**sol.usage.__dict__, "cache_hit_rate": round(sol.usage.cache_hit_rate, 4)}
    d["timings"] = dict(sol.timings)
    d["config"] = dict(sol.config)
    d["from_checkpoint"] = sol.from_checkpoint
    return d


@dataclass
class Outcome:
    """A solve's result: the Solution as a dict and as JSON text (the text is what the cache
    holds and what /solve sends, so a hit costs no re-encoding); ``cached``: a cache hit."""

    data: dict[str, Any]
    text: str
    cached: bool = False
    solve_id: str | None = None  # the solve that made it, in this replica's logs (none for a hit)

    @classmethod
    def of(cls, sol: Solution) -> "Outcome":
        d = solution_dict(sol)
        return cls(d, json_text(d))

    @classmethod
    def from_text(cls, text: str, cached: bool = True) -> "Outcome":
        return cls(json.loads(text), text, cached)


EventSink = Callable[[dict], Any]


class _Flight:
    """One running solve and the callers sharing it. ``events``: the search events so far, so a
    streaming caller that joins late gets them all, then the rest as they happen."""

    __slots__ = ("task", "waiters", "events", "subscribers")

    def __init__(self) -> None:
        self.task: asyncio.Task = None  # type: ignore[assignment]
        self.waiters = 0
        self.events: list[dict] = []
        self.subscribers: list[EventSink] = []

    def publish(self, ev: dict) -> None:
        self.events.append(ev)
        for sink in list(self.subscribers):
            sink(ev)


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
    async def get_or_solve(self, key: str, solve: Callable[[EventSink], Awaitable[Outcome]],
                           on_event: EventSink | None = None) -> Outcome:
        """The cached result for ``key``, or the result of one shared ``solve(publish)``.
        ``on_event`` (a streaming caller) receives the shared solve's events, those already
        published first; a cached result, or one solved by another replica, has none."""
        flight = self._flights.get(key)
        if flight is None or flight.task.done():
            flight = _Flight()
            flight.task = asyncio.get_running_loop().create_task(self._lead(key, lambda: solve(flight.publish)))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda t, k=key, f=flight: self._flights.pop(k, None)
                                          if self._flights.get(k) is f else None)
        if on_event is not None:
            for ev in list(flight.events):
                on_event(ev)
            flight.subscribers.append(on_event)
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
        finally:
            if on_event is not None and on_event in flight.subscribers:
                flight.subscribers.remove(on_event)

    async def _lead(self, key: str, solve: Callable[[], Awaitable[Outcome]]) -> Outcome:
        if not self.enabled:
            return await solve()
        ck, lock = self.redis.key("cache", key), self.redis.key("lock", key)
        first, delay = True, 0.005
        while True:
            if not self.redis.up:
                return await solve()
            try:  # one round trip: the cached result, or the lock, or "someone else solves it"
                status, text = await self.redis.call(lambda c: c.eval(_ACQUIRE, 2, ck, lock, self.owner,
                                                                      self.lock_ttl_ms))
            except RedisUnavailable:
                return await solve()
            if int(status) == 1:
                if first:
                    self.on_hit()
                return Outcome.from_text(text)
            if first:
                self.on_miss()
                first = False
            if int(status) == 2:
                return await self._solve_locked(ck, lock, solve)
            # another replica holds the lock: poll for its result (or for its lock to lapse)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _solve_locked(self, ck: str, lock: str, solve: Callable[[], Awaitable[Outcome]]) -> Outcome:
        done = asyncio.Event()
        renew = asyncio.get_running_loop().create_task(self._renew(lock, done))
        out: Outcome | None = None
        try:
            out = await solve()
            return out
        finally:
            done.set()  # the renewal ends on this even if a cancel is swallowed in a Redis call
            renew.cancel()
            keep = out is not None and out.data.get("stop_reason") not in UNCACHEABLE_STOPS
            try:  # one round trip: store the result and release the lock
                await self.redis.call(lambda c: c.eval(_STORE_RELEASE, 2, ck, lock, out.text if keep else "",
                                                       self.ttl_ms, self.owner))
            except RedisUnavailable:
                pass

    async def _renew(self, lock: str, done: asyncio.Event) -> None:
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=self.lock_ttl_ms / 3000)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.redis.call(lambda c: c.eval(_RENEW, 1, lock, self.owner, self.lock_ttl_ms))
            except RedisUnavailable:
                pass
