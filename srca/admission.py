"""How many solves run at once (``Solver.solve_many``, ``srca eval``): admission by the sequences
each solve decodes at once, and by those the engine has in flight.

A GPU engine decodes a batch of sequences together, and a search keeps it busy only while its
solves hold enough sequences in flight. How many a solve holds depends on its method: majority@16
samples 16 at once, SRCA@16 in waves of 5, 5 and 6, CoT one. A fixed number of solves in flight
(the old rule: the engine's batch divided by the largest ``n``) left SRCA's waves a third of the
batch. :class:`Slots` admits solves while the sequences they may hold at once (:func:`width`)
fit the engine's batch (``EngineInfo.concurrent_sequences``), in arrival order, at most
:data:`MAX_AUTO_CONCURRENCY` solves (a Solver's default); :class:`LoadSlots`
(``Solver(admit="load")``) admits them while the sequences actually in flight
(:class:`EngineLoad`) leave room for the next one's width, since a solve holds its whole width
only at times (not the default: on its first GPU run one solve of 500 did not finish); an engine that does not say how many sequences it decodes
together (the CPU engine, an OpenAI-compatible server) gets a fixed number of solves, and so does
a caller that names one (``concurrency``).
"""
from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from .method_registry import METHODS

MAX_AUTO_CONCURRENCY = 1024  # solves in flight at most when the engine's batch sizes them
# admission by load: the widths of the solves admitted at once may add up to this many times the
# engine's batch (a solve holds its whole width only at times: srca@16's waves, majority's
# samples ending one by one); the sequences actually in flight are what must fit the batch
OVERCOMMIT = 1.5
ADMITS = ("load", "width")  # Solver(admit=...): by the sequences in flight, or by the widths held


def width(config: Any) -> int:
    """The most sequences one solve with ``config`` (a ``SearchConfig``) decodes at once: the
    method's own rule (``Method.width``), ``n`` by default. The service's token budget counts a
    solve's rows by it too (``srca.service.limits.solve_cost``)."""
    return max(1, METHODS[config.method].width_of(config))


class _Fifo:
    """First come, first served admission: ``async with self.hold(units):`` starts at once when
    no one waits and :meth:`_fits` says the request fits, else waits its turn; a grant is taken
    (:meth:`_take`) inside the wake loop, so the next waiter is weighed against it before the
    granted task runs, and given back (:meth:`_give`) when the holder leaves. A wide request is
    never passed over by narrower ones that arrive after it. Subclasses say what fits and what
    a grant holds."""

    def __init__(self, capacity: int, max_holders: int | None) -> None:
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
        raise NotImplementedError

    def _take(self, units: int) -> Any:
        raise NotImplementedError

    def _release(self, grant: Any) -> None:
        raise NotImplementedError

    def _waiting_changed(self) -> None:
        """Someone started or stopped waiting (LoadSlots watches the load while anyone waits)."""

    def _entered(self, grant: Any) -> Any:
        """The holder's body starts; what :meth:`_left` gets back."""

    def _left(self, token: Any) -> None:
        """The holder's body ended."""

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
                break
            self._waiting.popleft()
            fut.set_result(self._take(units))
        self._waiting_changed()

    def _give(self, grant: Any) -> None:
        self._release(grant)
        self._wake()

    @asynccontextmanager
    async def hold(self, units: int = 1) -> AsyncIterator[None]:
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units: must be an integer >= 1, got {units!r}")
        if self.free_now(units):
            grant = self._take(units)
        else:
            fut = asyncio.get_running_loop().create_future()
            self._waiting.append((units, fut))
            self._waiting_changed()
            try:
                grant = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # granted as it was cancelled: hand it on
                    self._give(fut.result())
                else:  # no longer waiting: those behind it may fit now
                    self._wake()
                raise
        token = self._entered(grant)
        try:
            yield
        finally:
            self._left(token)
            self._give(grant)


class Slots(_Fifo):
    """A FIFO counting semaphore over ``capacity`` units, at most ``max_holders`` holders at once.

    ``async with slots.hold(units):`` waits until ``units`` fit (a request for more than the
    whole capacity waits for the slots to empty and then runs alone) and no earlier request is
    still waiting: a wide solve is never passed over by narrower ones that arrive after it."""

    def __init__(self, capacity: int, max_holders: int | None = None) -> None:
        super().__init__(capacity, max_holders)

    def _fits(self, units: int) -> bool:
        if self.max_holders is not None and self.holders >= self.max_holders:
            return False
        return self.used + min(units, self.capacity) <= self.capacity

    def _take(self, units: int) -> int:
        self.used += min(units, self.capacity)
        self.holders += 1
        return units

    def _release(self, units: int) -> None:
        self.used -= min(units, self.capacity)
        self.holders -= 1


# the admission of the solve running in this task (LoadSlots.hold sets it): its first engine
# call releases it (release_admission, from SearchContext.generate)
_ADMITTED: contextvars.ContextVar["Reservation | None"] = contextvars.ContextVar("srca_admitted", default=None)


class Reservation:
    """An admitted solve's width, counted in the load as reserved until its first engine call
    counts its own sequences (or until it ends without one)."""

    def __init__(self, load: "EngineLoad", units: int) -> None:
        self.load, self.units, self.width = load, units, units
        load.reserve(units)

    def release(self) -> None:
        if self.units:
            units, self.units = self.units, 0
            self.load.unreserve(units)


def release_admission() -> None:
    """The running solve has counted its first engine call in the load: its admission's
    reservation is no longer needed (no-op for a solve not admitted by load)."""
    r = _ADMITTED.get()
    if r is not None:
        r.release()


class LoadSlots(_Fifo):
    """Admission by the engine's load (:class:`EngineLoad`): FIFO, a solve of ``units``
    sequences starts once the sequences in flight, those reserved by solves admitted that have
    not called the engine yet, and its own fit the batch (``capacity``); the widths held stay
    under ``overcommit`` times the batch, at most ``max_holders`` solves; a solve that finds
    none held starts whatever its width. A solve holds its whole width only at times (srca's
    waves one after another, majority's samples ending one by one), so counting what is in
    flight keeps the batch fuller than counting widths: on ``benchmarks/wave_schedule.py``'s
    model (three GPU runs' cost curves) majority@16 on 500 problems took 0.91x to 0.96x its wall
    admitted by width, srca@16 on 2,000 problems 0.89x to 0.95x.
    Solves admitted while others were between engine calls may later hold more than the batch
    at once (the engine queues the rest); the overcommit bounds that. While solves wait, the
    load tells this admission whenever it falls."""

    def __init__(self, load: "EngineLoad", capacity: int, max_holders: int | None = None,
                 overcommit: float = OVERCOMMIT) -> None:
        super().__init__(capacity, max_holders)
        if not 1.0 <= overcommit <= 16.0:
            raise ValueError(f"overcommit: must be between 1 and 16, got {overcommit!r}")
        self.load, self.overcommit = load, overcommit

    def _fits(self, units: int) -> bool:
        if self.holders == 0:
            return True
        if self.max_holders is not None and self.holders >= self.max_holders:
            return False
        if self.used + units > self.overcommit * self.capacity:
            return False
        return self.load.in_flight + self.load.reserved + units <= self.capacity

    def _take(self, units: int) -> Reservation:
        """Admit a solve of ``units``: its width held and reserved in the load at once (the
        next waiter is weighed against it before this one's task runs)."""
        self.used += units
        self.holders += 1
        return Reservation(self.load, units)

    def _release(self, reservation: Reservation) -> None:
        reservation.release()
        self.used -= reservation.width
        self.holders -= 1

    def _waiting_changed(self) -> None:
        if self._waiting:
            self.load.watch(self._wake)
        else:
            self.load.unwatch(self._wake)

    def _entered(self, reservation: Reservation) -> Any:
        return _ADMITTED.set(reservation)

    def _left(self, token: Any) -> None:
        try:
            _ADMITTED.reset(token)
        except ValueError:  # left from another context (a generator closed elsewhere): nothing to undo there
            pass


class BatchAdmission:
    """Which solves may start: ``async with admission.slot(config):`` around each solve.

    ``sequences``: the engine's batch (``EngineInfo.concurrent_sequences``): with the solver's
    ``load`` (:class:`EngineLoad`), solves are admitted while the sequences in flight leave
    room for a solve's :func:`width` (:class:`LoadSlots`); without it, by their widths against
    the batch (:class:`Slots`). Otherwise ``solves`` at once, whatever their width."""

    def __init__(self, *, sequences: int | None = None, solves: int | None = None,
                 load: "EngineLoad | None" = None) -> None:
        if (sequences is None) == (solves is None):
            raise ValueError("BatchAdmission: give exactly one of sequences or solves")
        self.by_width = sequences is not None
        self.by_load = self.by_width and load is not None
        if sequences is None:
            self.slots: Slots | LoadSlots = Slots(solves)
        elif load is not None:
            self.slots = LoadSlots(load, sequences, MAX_AUTO_CONCURRENCY)
        else:
            self.slots = Slots(sequences, MAX_AUTO_CONCURRENCY)

    def slot(self, config: Any) -> Any:
        return self.slots.hold(width(config) if self.by_width else 1)

    def describe(self) -> str:
        """How many run at once, in words (the CLI prints it)."""
        if self.by_load:
            return (f"solves admitted while the sequences in flight leave room in the engine's batch of "
                    f"{self.slots.capacity}")
        if self.by_width:
            return f"solves admitted while their sequences fit the engine's batch of {self.slots.capacity}"
        return f"{self.slots.capacity} solve(s) in flight"


def admission_for(engine: Any, concurrency: int | None, floor: int, load: "EngineLoad | None" = None) -> BatchAdmission:
    """``concurrency`` solves when the caller names it; else by the engine's batch
    (``EngineInfo.concurrent_sequences``): by the solver's ``load`` when given, by width
    otherwise; else ``floor`` solves."""
    if concurrency is not None:
        return BatchAdmission(solves=concurrency)
    seqs = getattr(getattr(engine, "info", None), "concurrent_sequences", None)
    if seqs:
        return BatchAdmission(sequences=int(seqs), load=load if load is not None and load.capacity else None)
    return BatchAdmission(solves=floor)


class EngineLoad:
    """The sequences a Solver's solves have in engine calls now (``SearchContext.generate`` counts
    them), against the engine's batch (``EngineInfo.concurrent_sequences``; None: unknown), and
    those ``reserved`` for solves admitted that have not called the engine yet (:class:`LoadSlots`).
    What a solve may start beyond its own need (srca's ``wave_speculate``) fits the :meth:`room`
    left. Watchers (an admission with solves waiting) are told whenever the load falls."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self.reserved = 0
        self._watchers: list[Callable[[], None]] = []

    def add(self, k: int) -> None:
        self.in_flight += k
        if k < 0:
            self._tell()

    def reserve(self, k: int) -> None:
        self.reserved += k

    def unreserve(self, k: int) -> None:
        self.reserved -= k
        self._tell()

    def watch(self, fn: Callable[[], None]) -> None:
        if fn not in self._watchers:
            self._watchers.append(fn)

    def unwatch(self, fn: Callable[[], None]) -> None:
        if fn in self._watchers:
            self._watchers.remove(fn)

    @property
    def waiting(self) -> bool:
        """Whether an admission has solves waiting for room (they come before speculation)."""
        return bool(self._watchers)

    def _tell(self) -> None:
        for fn in list(self._watchers):
            fn()

    def room(self) -> int:
        """Sequences the engine could decode beside those in flight and reserved (0 when its
        batch is unknown)."""
        return max(0, self.capacity - self.in_flight - self.reserved) if self.capacity else 0
