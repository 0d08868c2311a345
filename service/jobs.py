"""Jobs in Redis: a hash per job and a reliable queue.

Keys (under the prefix): ``job:<id>`` hash (state, request, attempts, worker, result, error,
times); ``jobs:pending`` list (LPUSH in, BLMOVE out from the right); ``jobs:proc:<worker>`` the
jobs a worker holds; ``worker:<worker>`` its lease (PX, renewed by a heartbeat); ``workers`` the
set of known workers. Every state change is one Lua script, so a result is written at most once:
only by the worker that holds the current attempt of a running job.

States: queued -> running -> done | failed | cancelled (a running job whose worker dies goes back
to queued; after ``attempts`` tries it fails).
"""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from .redis_conn import RedisHandle

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = frozenset({"done", "failed", "cancelled"})
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: anything else cannot be a job

# KEYS: job, pending | ARGV: id, request, now, ttl, owner
_SUBMIT = """
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'queued', 'request', ARGV[2], 'attempts', 0,
           'created', ARGV[3], 'updated', ARGV[3], 'owner', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
"""
# KEYS: job, proc | ARGV: worker, now, max_attempts, id
_CLAIM = """
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[1] then  -- a retried claim
  return {'running', tonumber(redis.call('HGET', KEYS[1], 'attempts'))}
end
if st ~= 'queued' then redis.call('LREM', KEYS[2], 0, ARGV[4]); return {st or 'missing', 0} end
local a = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if a > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'updated', ARGV[2], 'finished', ARGV[2],
             'error', 'gave up after ' .. (a - 1) .. ' attempt(s): the worker running it was lost')
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('LREM', KEYS[2], 0, ARGV[4])
  return {'failed', a - 1}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'started', ARGV[2], 'updated', ARGV[2])
return {'running', a}
"""
# The worker holding the current attempt writes its outcome. A result ('done') of an older
# attempt is kept too while the job is still open (queued again, or running elsewhere after a
# takeover, e.g. when a Redis outage outlasted the lease): it answers the same request, and
# throwing it away only costs a second solve. The hash then names the worker that finished it,
# so a worker still running it sees that and stops.
# KEYS: job, proc, pending | ARGV: worker, attempt, state, field, value, now, id, ttl
_FINISH = """
local h = redis.call('HMGET', KEYS[1], 'state', 'worker', 'attempts')
redis.call('LREM', KEYS[2], 0, ARGV[7])
local current = h[1] == 'running' and h[2] == ARGV[1] and h[3] == ARGV[2]
local late = ARGV[3] == 'done' and (h[1] == 'queued' or h[1] == 'running')
if not current and not late then return 0 end
if h[1] == 'queued' then redis.call('LREM', KEYS[3], 0, ARGV[7]) end
redis.call('HSET', KEYS[1], 'state', ARGV[3], ARGV[4], ARGV[5], 'worker', ARGV[1], 'updated', ARGV[6],
           'finished', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'completions', 1)
redis.call('EXPIRE', KEYS[1], ARGV[8])
return 1
"""
# KEYS: job, pending | ARGV: now, id, ttl, owner ('*': any)
_CANCEL = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'missing' end
if ARGV[4] ~= '*' and (redis.call('HGET', KEYS[1], 'owner') or '') ~= ARGV[4] then return 'missing' end
if st == 'queued' or st == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'updated', ARGV[1], 'finished', ARGV[1])
  redis.call('LREM', KEYS[2], 0, ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 'cancelled'
end
return st
"""
# Put a worker's jobs back in the queue. KEYS: proc, pending, workers, lease
# ARGV: worker, job key prefix, now, force ('1': the worker itself hands its jobs back)
_REQUEUE = """
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local n = 0
while true do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  local jk = ARGV[2] .. id
  local h = redis.call('HMGET', jk, 'state', 'worker')
  if h[1] == 'queued' or (h[1] == 'running' and h[2] == ARGV[1]) then
    if h[1] == 'running' and ARGV[4] == '1' then redis.call('HINCRBY', jk, 'attempts', -1) end
    redis.call('HSET', jk, 'state', 'queued', 'worker', '', 'updated', ARGV[3])
    redis.call('RPUSH', KEYS[2], id)
    n = n + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return n
"""

# One id a live worker holds but does not run (a lost reply, a cancelled or taken-over job):
# drop it from the worker's list and, if it still needs running, queue it again.
# KEYS: job, proc, pending | ARGV: worker, id, now
_RETURN_ONE = """
if redis.call('LREM', KEYS[2], 0, ARGV[2]) == 0 then return 0 end
local h = redis.call('HMGET', KEYS[1], 'state', 'worker')
if h[1] == 'queued' or (h[1] == 'running' and h[2] == ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'updated', ARGV[3])
  redis.call('RPUSH', KEYS[3], ARGV[2])
  return 1
end
return 0
"""


def _now() -> str:
    return f"{time.time():.3f}"


class JobStore:
    """Redis operations on jobs. Every method raises ``RedisUnavailable`` when Redis is down."""

    def __init__(self, redis: RedisHandle, attempts: int = 3, ttl_s: float = 7 * 86400) -> None:
        self.r = redis
        self.attempts = attempts
        self.ttl = int(ttl_s)
        self.pending = redis.key("jobs", "pending")
        self.workers = redis.key("workers")
        self.job_prefix = redis.key("job", "")

    def job_key(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def proc_key(self, worker: str) -> str:
        return self.r.key("jobs", "proc", worker)

    def lease_key(self, worker: str) -> str:
        return self.r.key("worker", worker)

    async def submit(self, request: dict[str, Any], owner: str = "") -> str:
        """Queue a job owned by ``owner`` (an API key's id; ``""`` when keys are off)."""
        job_id = uuid.uuid4().hex
        body = json.dumps({**request, "owner": owner}, ensure_ascii=False)
        await self.r.call(lambda c: c.eval(_SUBMIT, 2, self.job_key(job_id), self.pending, job_id, body, _now(),
                                           self.ttl, owner))
        return job_id

    async def get(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The job's hash; ``None`` when it does not exist or (with ``owner``) is someone else's."""
        if not JOB_ID_RE.fullmatch(job_id):
            return None
        h = await self.r.call(lambda c: c.hgetall(self.job_key(job_id)))
        if not h or (owner is not None and h.get("owner", "") != owner):
            return None
        return h

    async def cancel(self, job_id: str, owner: str | None = None) -> str:
        """The state after the call: ``cancelled``, or the final state it already had, or
        ``missing`` (also when, with ``owner``, it is someone else's: a 404 tells nothing)."""
        if not JOB_ID_RE.fullmatch(job_id):
            return "missing"
        return await self.r.call(lambda c: c.eval(_CANCEL, 2, self.job_key(job_id), self.pending, _now(), job_id,
                                                  self.ttl, "*" if owner is None else owner))

    async def depth(self) -> int:
        return int(await self.r.call(lambda c: c.llen(self.pending)))

    # -- worker side ----------------------------------------------------------------------
    async def take(self, worker: str, timeout_s: float) -> str | None:
        """Move the oldest pending id into this worker's list (blocks up to ``timeout_s``)."""
        return await self.r.call(lambda c: c.blmove(self.pending, self.proc_key(worker), timeout_s, "RIGHT", "LEFT"))

    async def claim(self, worker: str, job_id: str) -> tuple[str, int]:
        st, attempt = await self.r.call(lambda c: c.eval(_CLAIM, 2, self.job_key(job_id), self.proc_key(worker),
                                                          worker, _now(), self.attempts, job_id))
        return st, int(attempt)

    async def finish(self, worker: str, job_id: str, attempt: int, state: str, field: str, value: str) -> bool:
        ok = await self.r.call(lambda c: c.eval(_FINISH, 3, self.job_key(job_id), self.proc_key(worker), self.pending,
                                                worker, attempt, state, field, value, _now(), job_id, self.ttl))
        return bool(ok)

    async def states(self, job_ids: list[str]) -> list[tuple[str | None, str | None]]:
        async def run(c: Any) -> list[Any]:
            pipe = c.pipeline(transaction=False)
            for j in job_ids:
                pipe.hmget(self.job_key(j), "state", "worker")
            return await pipe.execute()

        return [tuple(x) for x in await self.r.call(run)]  # type: ignore[misc]

    async def heartbeat(self, worker: str, lease_s: float) -> None:
        async def run(c: Any) -> None:
            pipe = c.pipeline(transaction=False)
            pipe.set(self.lease_key(worker), _now(), px=int(lease_s * 1000))
            pipe.sadd(self.workers, worker)
            await pipe.execute()

        await self.r.call(run)

    async def requeue(self, worker: str, force: bool = False) -> int:
        """Return a worker's jobs to the queue: a dead one's (lease expired; else -1), or with
        ``force`` this worker's own on shutdown."""
        return int(await self.r.call(lambda c: c.eval(
            _REQUEUE, 4, self.proc_key(worker), self.pending, self.workers, self.lease_key(worker),
            worker, self.job_prefix, _now(), "1" if force else "0")))

    async def reap(self, lapsed_since: dict[str, float] | None = None, now: float = 0.0,
                   grace_s: float = 0.0) -> dict[str, int]:
        """Requeue the jobs of every worker whose lease expired; ``{worker: jobs requeued}``.

        With ``lapsed_since`` (the caller's memory of when it first saw each lease missing, on
        its own clock ``now``) a worker is declared dead only once its lease has been seen
        missing for ``grace_s``: after a Redis outage longer than the lease every lease is
        missing, live workers' too, and they need a moment to reconnect and renew theirs."""
        workers = await self.r.call(lambda c: c.smembers(self.workers))
        if lapsed_since is not None:
            async def alive(c: Any) -> list[int]:
                pipe = c.pipeline(transaction=False)
                for w in workers:
                    pipe.exists(self.lease_key(w))
                return await pipe.execute()

            flags = dict(zip(workers, await self.r.call(alive))) if workers else {}
            for w in list(lapsed_since):
                if w not in flags or flags[w]:
                    del lapsed_since[w]  # renewed (or gone from the set): forget it
            for w, up in flags.items():
                if not up:
                    lapsed_since.setdefault(w, now)
            workers = {w for w, t in lapsed_since.items() if now - t >= grace_s}
        out = {}
        for w in workers:
            n = await self.requeue(w)
            if n >= 0:
                out[w] = n
                if lapsed_since is not None:
                    lapsed_since.pop(w, None)
        return out

    async def held(self, worker: str) -> list[str]:
        return await self.r.call(lambda c: c.lrange(self.proc_key(worker), 0, -1))

    async def return_one(self, worker: str, job_id: str) -> bool:
        return bool(await self.r.call(lambda c: c.eval(_RETURN_ONE, 3, self.job_key(job_id), self.proc_key(worker),
                                                       self.pending, worker, job_id, _now())))

    async def release_worker(self, worker: str) -> int:
        await self.r.call(lambda c: c.delete(self.lease_key(worker)))
        return await self.requeue(worker, force=True)


def job_view(h: dict[str, str]) -> dict[str, Any]:
    """The public JSON of a job hash."""
    out: dict[str, Any] = {"id": h.get("id"), "state": h.get("state"), "attempts": int(h.get("attempts") or 0)}
    for t in ("created", "started", "finished"):
        if h.get(t):
            out[t] = float(h[t])
    if h.get("result"):
        out["result"] = json.loads(h["result"])
    if h.get("error"):
        out["error"] = h["error"]
    return out
