"""The local engine's request queue: batching across solves, on one worker thread.

* **Batching across solves.** Every ``generate`` call queues its requests; a drain task (one per
  event loop, alive only while there is work, so nothing dangles between calls) runs all queued
  requests (of every caller) in batches of at most ``max_batch`` rows, one batch at a time on the
  one worker thread. Requests queued while a batch runs form the next batch.
* **Leaving.** A caller that is cancelled loses its results and its rows leave the batch at the
  next decode step; the other callers carry on. A batch that fails fails its callers only.
* **Abort.** ``abort(group)`` ends the rows of every queued or running request of that group (a
  solve id) at the next decode step; they come back with ``finish_reason="abort"``. Requests the
  group submits afterwards run (a solve stopped at its soft deadline still probes its lineages).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ..base import GenRequest, GenResult

ABORTED_KEEP = 4096  # aborted group ids remembered (a long-lived service must not grow forever)

Item = tuple[GenRequest, list[int]]  # a request and its prompt token ids
RunBatch = Callable[[list[Item], list[Callable[[], bool]]], list[list[GenResult]]]


class _Queue:
    """The pending requests of one event loop, and the task draining them."""

    def __init__(self) -> None:
        self.pending: list[tuple[GenRequest, list[int], asyncio.Future, int]] = []  # ..., submission number
        self.task: asyncio.Task | None = None


class Scheduler:
    """Queues requests and runs them as batches with ``run_batch(items, stops)`` on one worker
    thread (started with the first batch); ``stops[i]()`` is True once item ``i``'s caller left
    or its group was aborted."""

    def __init__(self, run_batch: RunBatch, max_batch: int) -> None:
        self.run_batch, self.max_batch = run_batch, max_batch
        self._executor: ThreadPoolExecutor | None = None
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}
        self._aborted: dict[str, int] = {}  # aborted group -> items submitted before its abort (insertion-ordered)
        self._submitted = 0  # items submitted so far: each item's number is its place in that order

    async def submit(self, items: Sequence[Item]) -> list[list[GenResult]]:
        """Queue ``items`` and wait for their results (``n`` per request)."""
        loop = asyncio.get_running_loop()
        q = self._queues.get(loop)
        if q is None:
            for old in [lp for lp in self._queues if lp.is_closed()]:
                del self._queues[old]
            q = self._queues[loop] = _Queue()
        futs = [loop.create_future() for _ in items]
        q.pending.extend((r, ids, f, self._submitted + k) for k, ((r, ids), f) in enumerate(zip(items, futs)))
        self._submitted += len(items)
        if q.task is None or q.task.done():  # the drain task runs only while there is work
            q.task = loop.create_task(self._drain(q))
        try:
            return list(await asyncio.gather(*futs))
        except asyncio.CancelledError:
            for f in futs:
                f.cancel()
            raise

    async def _drain(self, q: _Queue) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srca-local")
        while q.pending:  # requests queued while a batch runs form the next batch
            todo = [p for p in q.pending if not p[2].done()]  # drop cancelled callers
            q.pending.clear()
            for chunk in self._chunks(todo):
                chunk = [p for p in chunk if not p[2].done()]  # callers may leave while we work
                if chunk:
                    await self._run(loop, chunk)

    async def _run(self, loop: asyncio.AbstractEventLoop, chunk: list) -> None:
        """Run one batch on the worker thread and hand each caller its results."""
        # a row stops early once its caller left or its solve was aborted; the worker thread
        # polls these between decode steps
        stops = [(lambda f=f, g=r.group, k=k: f.done() or (g is not None and k < self._aborted.get(g, -1)))
                 for r, _, f, k in chunk]
        try:
            res = await loop.run_in_executor(self._executor, self.run_batch, [(r, ids) for r, ids, _, _ in chunk], stops)
        except Exception as exc:  # a failed batch fails its callers, not the engine
            for _, _, f, _ in chunk:
                if not f.done():
                    f.set_exception(exc)
        else:
            for (_, _, f, _), out in zip(chunk, res):
                if not f.done():
                    f.set_result(out)

    def _chunks(self, items: list) -> list[list]:
        """Consecutive batches of at most ``max_batch`` rows (a greedy request is one row)."""
        chunks, cur, rows = [], [], 0
        for it in items:
            r = 1 if it[0].greedy else it[0].n
            if cur and rows + r > self.max_batch:
                chunks.append(cur)
                cur, rows = [], 0
            cur.append(it)
            rows += r
        if cur:
            chunks.append(cur)
        return chunks

    def abort(self, group: str) -> None:
        """End the rows of every queued or running request of ``group`` at the next decode step
        (not those it submits later)."""
        self._aborted.pop(group, None)  # re-inserted last: the most recent abort is kept longest
        self._aborted[group] = self._submitted
        while len(self._aborted) > ABORTED_KEEP:
            del self._aborted[next(iter(self._aborted))]

    async def on_worker(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the worker thread (so it never overlaps a batch), or here before any batch."""
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        else:
            fn()

    def close(self) -> None:
        """Cancel this loop's drain task, forget every queue, stop the worker thread."""
        for loop, q in list(self._queues.items()):
            if q.task is not None and not q.task.done() and loop is asyncio.get_running_loop():
                q.task.cancel()
        self._queues.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
