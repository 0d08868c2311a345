"""How many solves run at once (``Solver.solve_many``, ``srca eval``): admission by the sequences
each solve decodes at once.

A GPU engine decodes a batch of sequences together, and a search keeps it busy only while its
solves hold enough sequences in flight. How many a solve holds depends on its method: majority@16
samples 16 at once, SRCA@16 in waves of 5, 5 and 6, CoT one. A fixed number of solves in flight
(the old rule: the engine's batch divided by the largest ``n``) left SRCA's waves a third of the
batch. :class:`Slots` admits solves while the sequences they may hold at once (:func:`width`)
fit the engine's batch (``EngineInfo.concurrent_sequences``), in arrival order, at most
:data:`MAX_AUTO_CONCURRENCY` solves; an engine that does not say how many sequences it decodes
together (the CPU engine, an OpenAI-compatible server) gets a fixed number of solves, and so does
a caller that names one (``concurrency``).
"""
from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from .method_registry import METHODS

MAX_AUTO_CONCURRENCY = 1024  # solves in flight at most when the engine's batch sizes them


def width(config: Any) -> int:
    """The most sequences one solve with ``config`` (a ``SearchConfig``) decodes at once: the
    method's own rule (``Method.width``), ``n`` by default. The service's token budget counts a
    solve's rows by it too (``srca.service.limits.solve_cost``)."""
    return max(1, METHODS[config.method].width_of(config))


class Slots:
    """A FIFO counting semaphore over ``capacity`` units, at most ``max_holders`` holders at once.

    ``async with slots.hold(units):`` waits until ``units`` fit (a request for more than the
    whole capacity waits for the slots to empty and then runs alone) and no earlier request is
    still waiting: a wide solve is never passed over by narrower ones that arrive after it."""

    def __init__(self, capacity: int, max_holders: int | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity: must be an integer >= 1, got {capacity!r}")
        if max_holders is not None and (isinstance(max_holders, bool) or not isinstance(max_holders, int)
                                        or max_holders < 1):
            raise ValueError(f"max_holders: must be an integer >= 1 or None, got {max_holders!r}")
        self.capacity, self.max_holders = capacity, max_holders
        self.used = 0  # units held now
        self.holders = 0
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    def _fits(self, units: int) -> bool:
        if self.max_holders is not None and self.holders >= self.max_holders:
            return False
        return self.used + min(units, self.capacity) <= self.capacity

    def free_now(self, units: int) -> bool:
        """Whether :meth:`hold` of ``units`` would start at once (room, and no one waiting)."""
        return not self._waiting and self._fits(units)

    def _wake(self) -> None:
        while self._waiting:
            units, fut = self._waiting[0]
            if fut.done():  # its waiter was cancelled
                self._waiting.popleft()
                continue
            if not self._fits(units):
                return
            self._waiting.popleft()
            self._take(units)
            fut.set_result(None)

    def _take(self, units: int) -> None:
        self.used += min(units, self.capacity)
        self.holders += 1

    def _give(self, units: int) -> None:
        self.used -= min(units, self.capacity)
        self.holders -= 1
        self._wake()

    @asynccontextmanager
    async def hold(self, units: int = 1) -> AsyncIterator[None]:
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units: must be an integer >= 1, got {units!r}")
        if self.free_now(units):
            self._take(units)
        else:
            fut = asyncio.get_running_loop().create_future()
            self._waiting.append((units, fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # granted as it was cancelled: hand it on
                    self._give(units)
                else:  # no longer waiting: those behind it may fit now
                    self._wake()
                raise
        try:
            yield
        finally:
            self._give(units)


class BatchAdmission:
    """Which solves may start: ``async with admission.slot(config):`` around each solve.

    ``sequences``: the engine's batch (``EngineInfo.concurrent_sequences``): solves are admitted
    by their :func:`width` against it. Otherwise ``solves`` at once, whatever their width."""

    def __init__(self, *, sequences: int | None = None, solves: int | None = None) -> None:
        if (sequences is None) == (solves is None):
            raise ValueError("BatchAdmission: give exactly one of sequences or solves")
        self.by_width = sequences is not None
        self.slots = Slots(sequences, MAX_AUTO_CONCURRENCY) if sequences is not None else Slots(solves)

    def slot(self, config: Any) -> Any:
        return self.slots.hold(width(config) if self.by_width else 1)

    def describe(self) -> str:
        """How many run at once, in words (the CLI prints it)."""
        if self.by_width:
            return f"solves admitted while their sequences fit the engine's batch of {self.slots.capacity}"
        return f"{self.slots.capacity} solve(s) in flight"


def admission_for(engine: Any, concurrency: int | None, floor: int) -> BatchAdmission:
    """``concurrency`` solves when the caller names it; else by width against the engine's batch
    (``EngineInfo.concurrent_sequences``); else ``floor`` solves."""
    if concurrency is not None:
        return BatchAdmission(solves=concurrency)
    seqs = getattr(getattr(engine, "info", None), "concurrent_sequences", None)
    if seqs:
        return BatchAdmission(sequences=int(seqs))
    return BatchAdmission(solves=floor)


class EngineLoad:
    """The sequences a Solver's solves have in engine calls now (``SearchContext.generate`` counts
    them), against the engine's batch (``EngineInfo.concurrent_sequences``; None: unknown). What
    a solve may start beyond its own need (srca's ``wave_speculate``) fits the :meth:`room` left."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.in_flight = 0

    def add(self, k: int) -> None:
        self.in_flight += k

    def room(self) -> int:
        """Sequences the engine could decode beside those in flight (0 when its batch is unknown)."""
        return max(0, self.capacity - self.in_flight) if self.capacity else 0
