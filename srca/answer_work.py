"""The answer-side CPU work of a finished search, off the event loop: worker processes.

After its engine calls a solve still has CPU work to do: parse every candidate answer, cluster
the equivalent ones and decide (:func:`srca.methods.select.decide`), and, in an evaluation,
grade them (:func:`srca.eval.records.make_record`). That is math-verify and sympy, pure Python:
about 90 ms a problem at n = 16 on MATH-500, some answers seconds. On the event loop that runs
every solve it is serial: on one H200 every solve of a 200-problem majority@16 job finished
within seconds of the others, and the loop then spent 13.6 s in one stretch on their decisions
and grades while the GPU sat idle (``benchmarks/results/real_workload_h200_tail.json.gz``: 1.41x the
raw engine's wall, where the decoding itself took about the raw engine's time).

:class:`AnswerWorkers` runs such a pure function in a pool of worker processes (``spawn``, so
no engine thread or CUDA state is forked), so a burst of finishing solves spreads over cores
and the loop stays free to feed the engine. In a worker's main thread math-verify's own
timeouts (SIGALRM) work, as they do not on a thread. With ``workers=0`` (the library's default,
and ``"auto"`` on a machine with fewer than 8 cores) the function runs inline, as before; so does
a solve that is alone in flight while the pool has not started (a single solve never starts
processes). A pool that breaks
(a worker killed) is replaced on the next call and that call runs inline: no result is lost.

A call that runs past its deadline (:data:`DEADLINE_S`) is stopped: the pool's processes are
killed (nothing else interrupts sympy stuck in exact integer arithmetic, or math-verify's
signal timeouts that a worker's own code does not use), and the call runs again inline with the
answers compared by their text alone (:func:`srca.answers.text_only`), so the solve still
finishes. The other calls the killed pool held run again on a new one (a deadline counts from
the call, queueing included: one sent at the same moment as a stuck call may be stopped with
it). The twelfth GPU run lost one solve of 500 to such an answer (a product to a symbolic
bound, evaluated at a point) before the deadline existed; :func:`srca.answers._evaluable` now
refuses that case outright.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)

DEADLINE_S = 120.0  # one call's answer work at most (typical: 0.1 s; the slowest seen: seconds)


def auto_workers(cpus: int | None = None) -> int:
    """The default pool size: none below 8 cores (a laptop, the CPU engine, CI: the search's
    own CPU work is small next to a CPU model's), else half the cores, at most 8. Half, not a
    quarter as until 2026-12-03: with SGLang's decode graphs a 200-problem majority@16 job's
    solves finished within seconds of each other and the slowest then waited up to 4.7 s for 4
    workers on a 16-core H200 host (benchmarks/RUNS.md, "Fourth run"); SGLang's own processes and the
    controller keep the other half. The change itself is not yet measured on that host."""
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    return 0 if cpus < 8 else min(8, cpus // 2)


def check_workers(n: Any, default: int | str = 0) -> int:
    """The pool size from ``n``: an integer >= 0, or ``"auto"`` (:func:`auto_workers`); None
    means ``$SRCA_ANSWER_WORKERS`` when set, else ``default``."""
    if n is None:
        env = os.environ.get("SRCA_ANSWER_WORKERS", "").strip()
        if not env:
            n = default
        elif env == "auto":
            n = env
        else:
            try:
                n = int(env)
            except ValueError:
                raise ValueError(f"SRCA_ANSWER_WORKERS: must be an integer >= 0 or 'auto', got {env!r}") from None
    if n == "auto":
        return auto_workers()
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"answer_workers: must be an integer >= 0 (0: inline) or 'auto', got {n!r}")
    return n


def warm() -> None:
    """Import math-verify and sympy now, not in the first solve's decision (about a second on a
    small CPU): each worker's start, and the service's in its own process."""
    from .answers import equivalent

    equivalent("1", "1.0")


def _ready() -> bool:
    return True


def _retrieved(fut: "asyncio.Future[Any]") -> None:
    """Read an abandoned call's outcome, so that asyncio does not log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


class AnswerWorkers:
    """A lazily started process pool for pure functions of a solve's answers.

    ``workers``: processes (0: run inline; ``"auto"``: :func:`auto_workers`; None:
    ``$SRCA_ANSWER_WORKERS``, else 0). The library's default is 0: the workers are spawned, and
    spawning re-imports the main script, which a script without an ``if __name__ ==
    "__main__":`` guard would run again in every worker. ``srca eval`` and ``srca serve`` (guarded
    entry points) use ``"auto"``.
    ``await run(fn, *args)`` returns ``fn(*args)``; ``fn`` must be a module-level function and
    its arguments and result picklable. ``close()`` stops the processes.
    """

    def __init__(self, workers: int | str | None = None, deadline_s: float = DEADLINE_S) -> None:
        self.workers = check_workers(workers)
        if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not deadline_s > 0:
            raise ValueError(f"deadline_s: must be a number > 0, got {deadline_s!r}")
        self.deadline_s = float(deadline_s)
        self._pool: ProcessPoolExecutor | None = None
        self._killed: list[ProcessPoolExecutor] = []  # pools stopped for a call past its deadline
        self.calls = 0
        self.inline_calls = 0
        self.broken = 0
        self.timed_out = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=warm)
        return self._pool

    def start(self, wait: bool = False) -> None:
        """Spawn every worker now (nothing without workers, or once started), each importing
        math-verify (:func:`warm`); with ``wait``, return once all are up. A batch that will
        need them (an eval) then pays their start before its work, not when its first solves
        finish: on one H200 that was mid-run, 8 interpreters importing sympy beside SGLang's
        scheduler while it decoded 3,000 samples (benchmarks/RUNS.md, "Seventh run")."""
        if self.workers == 0 or self._pool is not None:
            return
        pool = self._executor()
        # the executor spawns a process per task while none is idle, up to max_workers
        futures = [pool.submit(_ready) for _ in range(self.workers)]
        if wait:
            for f in futures:
                f.result()

    async def run(self, fn: Callable[..., Any], *args: Any, alone: bool = False) -> Any:
        """``fn(*args)`` in a worker; inline with no workers, or when the caller is ``alone``
        (no other solve in flight) and the pool has not started: a single solve (``srca solve``)
        has nothing else waiting on the loop, and starting the processes would cost more than
        the work."""
        self.calls += 1
        if self.workers == 0 or (alone and self._pool is None):
            self.inline_calls += 1
            return fn(*args)
        for attempt in range(3):
            pool = self._executor()
            try:
                # never cancel a call sent to the pool (a late or abandoned one runs out and is
                # dropped): CPython 3.11's pool manager dies on a cancelled call when the pool
                # breaks, and the calls it still held would then never be answered
                fut = asyncio.wrap_future(pool.submit(fn, *args))
                fut.add_done_callback(_retrieved)
                done, _ = await asyncio.wait({fut}, timeout=self.deadline_s)
                if not done:
                    raise asyncio.TimeoutError
                return fut.result()
            except BrokenProcessPool as e:
                if any(k is pool for k in self._killed) and attempt < 2:  # stopped for another call: a new pool
                    self._drop(pool)
                    continue
                # a worker died (killed, out of memory): this call inline
                self.broken += 1
                self.inline_calls += 1
                log.warning("answer workers: the pool broke (%s); running this call inline and starting a new pool", e)
                self._drop(pool)
                return fn(*args)
            except asyncio.TimeoutError:
                self.timed_out += 1
                self.inline_calls += 1
                log.warning("answer workers: %s ran past its %.0f s deadline; its workers are stopped and it runs "
                            "again inline, comparing answers by their text alone", getattr(fn, "__name__", fn),
                            self.deadline_s)
                self._drop(pool, kill=True)
                from .answers import text_only

                with text_only():
                    return fn(*args)
        raise AssertionError("unreachable: the last attempt returns")

    def _drop(self, pool: ProcessPoolExecutor, kill: bool = False) -> None:
        """Stop using ``pool`` (the next call starts a new one); with ``kill``, end its processes
        now (a call is stuck in one); the calls it held then fail with BrokenProcessPool, and
        :meth:`run` sends them to the new pool."""
        if self._pool is pool:
            self._pool = None
        if kill:
            self._killed = [*self._killed[-7:], pool]
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=False)

    def stats(self) -> dict[str, int]:
        return {"workers": self.workers, "calls": self.calls, "inline_calls": self.inline_calls, "broken": self.broken,
                "timed_out": self.timed_out}

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def decide_pool(pool: Sequence[Any], rule: str, keep_top: float, checkpoint_weight: float,
                keep_min: int) -> tuple[list[Any], int | None, float]:
    """:func:`srca.methods.select.decide` on a copy of ``pool`` that comes back with its
    canonical forms, groups and votes set: ``(pool, index of the winner or None, confidence)``."""
    from .answers import canonical
    from .methods.select import decide

    pool = list(pool)
    for c in pool:
        if not c.canonical:
            c.canonical = canonical(c.answer) or c.answer
    winner, conf = decide(pool, rule, keep_top=keep_top, checkpoint_weight=checkpoint_weight, keep_min=keep_min)
    return pool, next((i for i, c in enumerate(pool) if c is winner), None), conf
