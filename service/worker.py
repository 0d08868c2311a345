"""JobWorker: runs jobs from the Redis queue in this replica.

Three loops: ``_take`` (BLMOVE a job id, claim it, start a task), ``_heartbeat`` (renew this
worker's lease; reap workers whose lease stayed missing for a whole lease, putting their jobs
back in the queue) and
``_watch`` (poll the states of the jobs running here: a job cancelled through any replica, or
taken over by another worker, has its task cancelled, which cancels the engine work).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import traceback
import uuid
from typing import Any, Awaitable, Callable

from srca import logs

from .jobs import JobStore
from .redis_conn import RedisUnavailable

log = logging.getLogger("srca.service")

RunJob = Callable[[dict[str, Any]], Awaitable[str]]  # request -> result JSON text


def public_error(e: BaseException, what: str) -> str:
    """What a client may read about a failure: the message of an error meant for clients
    (``public = True``: engine down, deadline, bad input), else an id; the details go to the log."""
    if getattr(e, "public", False):
        log.warning("%s failed: %s", what, e)
        return str(e)
    eid = uuid.uuid4().hex[:12]
    log.error("%s failed [error id %s]: %s", what, eid, "".join(traceback.format_exception_only(e)).strip())
    return f"internal error (error id {eid})"


class JobWorker:
    def __init__(self, store: JobStore, run_job: RunJob, concurrency: int, lease_s: float,
                 on_finish: Callable[[str], Any] | None = None) -> None:
        self.store = store
        self.run_job = run_job
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.on_finish = on_finish or (lambda state: None)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, asyncio.Task] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._loops: list[asyncio.Task] = []
        self._stopping = False
        self._claiming: set[str] = set()  # taken from the queue, not yet running
        self._suspects: set[str] = set()  # held but not running at the last heartbeat
        self._lapsed: dict[str, float] = {}  # other workers whose lease was seen missing, and since when

    @property
    def redis(self):
        return self.store.r

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._heartbeat(), name="srca-heartbeat")]
        if self.concurrency > 0:
            self._loops += [loop.create_task(self._take(), name="srca-take"),
                            loop.create_task(self._watch(), name="srca-watch")]

    async def stop(self) -> None:
        """Stop taking jobs, cancel the running ones and hand them back to the queue."""
        self._stopping = True
        await cancel_all(self._loops + list(self.running.values()))
        try:
            n = await self.store.release_worker(self.id)
            if n:
                log.info("worker %s: handed %d job(s) back to the queue", self.id, n)
        except RedisUnavailable:
            pass  # its lease expires and another replica requeues them

    # -- loops ----------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        period = self.lease_s / 3
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                await self.store.heartbeat(self.id, self.lease_s)
                # a worker is dead once its lease has been missing for a whole lease as seen
                # from here, not at the first look: after a Redis outage longer than the lease
                # every lease is missing, and live workers renew theirs as soon as they reconnect
                reaped = await self.store.reap(self._lapsed, loop.time(), self.lease_s)
                for w, n in reaped.items():
                    log.warning("worker %s is gone: %d job(s) back in the queue", w, n)
                await self._sweep()
            except RedisUnavailable:
                await self.redis.wait_up()
                continue  # renew our own lease at once
            except Exception:  # a bug here must not kill the heartbeat
                log.exception("heartbeat failed")
            await asyncio.sleep(period)

    async def _sweep(self) -> None:
        """Ids in this worker's list that it does not run, two heartbeats in a row, are handed
        back (a BLMOVE whose reply was lost) or dropped (cancelled, taken over)."""
        held = await self.store.held(self.id)
        idle = {j for j in held if j not in self.running and j not in self._claiming}
        for j in idle & self._suspects:
            if await self.store.return_one(self.id, j):
                log.warning("job %s was held but not running here: back in the queue", j)
        self._suspects = idle

    async def _take(self) -> None:
        while not self._stopping:
            try:
                await self._take_one()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug, or an error Redis's client lets out, must not stop this
                # replica taking jobs (a job it had moved to its list is handed back by the sweep)
                log.exception("taking a job failed: trying again")
                await asyncio.sleep(self.lease_s / 3)

    async def _take_one(self) -> None:
        """Take one job from the queue, claim it and start its task (it holds a slot)."""
        await self._slots.acquire()
        job_id = None
        try:
            while job_id is None:
                if not self.redis.up:
                    await self.redis.wait_up()
                try:
                    job_id = await self.store.take(self.id, timeout_s=1.0)
                except RedisUnavailable:
                    continue
            self._claiming.add(job_id)
            # the claim is idempotent for this worker: retry it through an outage
            state, attempt = await self._retry(lambda: self.store.claim(self.id, job_id))
        except BaseException:
            self._claiming.discard(job_id)
            self._slots.release()
            raise
        if state != "running":
            self._claiming.discard(job_id)
            if state == "failed":
                log.warning("job %s failed: too many attempts", job_id)
                self.on_finish("failed")
            self._slots.release()
            return
        with logs.bind(job_id=job_id):  # the task's lines (its solve's included) name the job
            task = asyncio.get_running_loop().create_task(self._run(job_id, attempt), name=f"job-{job_id}")
        self.running[job_id] = task
        self._claiming.discard(job_id)

    async def _run(self, job_id: str, attempt: int) -> None:
        try:
            h = await self._retry(lambda: self.store.get(job_id))
            if h is None:
                return
            try:
                text = await self.run_job(json.loads(h["request"]))
                state, field, value = "done", "result", text
            except asyncio.CancelledError:
                raise
            except Exception as e:
                state, field, value = "failed", "error", public_error(e, f"job {job_id}")
            ok = await self._retry(lambda: self.store.finish(self.id, job_id, attempt, state, field, value))
            if ok:
                log.info("job %s %s (attempt %d, worker %s)", job_id, state, attempt, self.id)
                self.on_finish(state)
            else:
                log.info("job %s: result of attempt %d discarded (cancelled or taken over)", job_id, attempt)
        except asyncio.CancelledError:
            if not self._stopping:
                log.info("job %s: cancelled on worker %s", job_id, self.id)
            raise
        finally:
            self.running.pop(job_id, None)
            self._slots.release()

    async def _retry(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run a Redis step of a job, waiting out outages (the result is kept meanwhile)."""
        while True:
            try:
                return await fn()
            except RedisUnavailable:
                await self.redis.wait_up()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # as _take: a bug here must not stop cancellations reaching solves
                log.exception("watching the running jobs failed")
                await asyncio.sleep(self.lease_s / 3)

    async def _watch_once(self) -> None:
        ids = list(self.running)
        if not ids or not self.redis.up:
            return
        try:
            states = await self.store.states(ids)
        except RedisUnavailable:
            return
        for job_id, (state, worker) in zip(ids, states):
            # done/failed by us: our own finish may be in flight, leave it be; done by another
            # worker (a late result of an earlier attempt): nothing left to do here
            if state in ("cancelled", None) or (state in ("queued", "running", "done") and worker != self.id):
                task = self.running.get(job_id)
                if task is not None and not task.done():
                    log.info("job %s is %s%s: stopping its solve", job_id, state,
                             "" if worker == self.id else f" on {worker}")
                    task.cancel()


async def cancel_all(tasks: list[asyncio.Task], patience_s: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while any is still alive.

    One ``cancel()`` is not always enough: the asyncio Redis client can swallow a cancellation
    that lands inside a command (the task then stays "cancelling" and sleeps on), and a single
    ``gather`` would wait for it forever: ``srca serve`` hung on SIGTERM with a job running.
    After ``patience_s`` the rest are left behind (their leases lapse as for a killed process).
    """
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    end = loop.time() + patience_s
    while pending and loop.time() < end:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    if pending:
        log.warning("%d task(s) did not stop within %.0f s: %s", len(pending), patience_s,
                    ", ".join(t.get_name() for t in pending))
