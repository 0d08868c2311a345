"""Runtime: what one replica holds (engine, solver, Redis, cache, jobs, worker, metrics) and the
one solve path every route shares (cache + single-flight + concurrency limit)."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Callable

from srca import logs
from srca.answer_work import check_workers, warm
from srca.config import SearchConfig
from srca.engines.base import Engine
from srca.methods.context import ABORT_WAIT_S
from srca.solver import Solver

from .auth import Auth
from .cache import EventSink, Outcome, ResultCache, cache_key
from .config import ServiceConfig
from .engine_guard import GuardedEngine
from .jobs import JobStore
from .limits import Admission, solve_cost
from .metrics import Metrics
from .redis_conn import RedisHandle
from .worker import JobWorker

log = logging.getLogger("srca.service")


class EngineNotReady(Exception):
    pass


class SolveTimeout(Exception):
    """No answer within the deadline (answered 504). ``str()`` is safe to show a client."""

    public = True  # its message is meant for the client


# how long past its deadline a solve may run before it is abandoned: the search checks the
# deadline between engine calls and bounds each call by it, so this only catches a solve that
# ignores its deadline (a bug, or an engine call that will not be cancelled)
# past a solve's deadline it first waits up to ABORT_WAIT_S for the engine to return the rows it
# stopped (their tokens count, the best answer so far is kept): the hard cap must outlast that
DEADLINE_GRACE_S = ABORT_WAIT_S + 5.0


class Runtime:
    def __init__(self, config: ServiceConfig, engine: Engine | None = None,
                 engine_factory: Callable[[], Engine] | None = None, base_config: SearchConfig | None = None) -> None:
        if (engine is None) == (engine_factory is None):
            raise ValueError("create_app: pass exactly one of engine or engine_factory")
        self.config = config
        self.base_config = base_config or SearchConfig()
        # the solves' answer work in worker processes: $SRCA_ANSWER_WORKERS, else half the cores
        # (at most 8) on a machine with 8 or more (srca serve's entry point is guarded; see srca.answer_work)
        self.answer_workers = check_workers(None, default="auto")
        self.engine: GuardedEngine | None = GuardedEngine(engine, config.engine_retry_s) if engine is not None else None
        self._engine_factory = engine_factory
        self._engine_state = "ready" if engine is not None else "loading"
        self.solver: Solver | None = (Solver(engine=self.engine, config=self.base_config, answer_workers=self.answer_workers)
                                      if engine is not None else None)
        self.admission = Admission(config.max_inflight_tokens)
        self.metrics = Metrics()
        self.redis = RedisHandle(config.redis_url, config.redis_prefix, config.redis_retry_s)
        self.cache = ResultCache(self.redis, config.cache_ttl_s, config.lock_ttl_s, enabled=config.cache,
                                 on_hit=self.metrics.cache.labels("hit").inc,
                                 on_miss=self.metrics.cache.labels("miss").inc)
        self.jobs = JobStore(self.redis, config.job_attempts, config.job_ttl_s)
        self.auth = Auth(config.api_keys(), self.redis, config.rate_limit_per_min)
        self.worker: JobWorker | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loader: asyncio.Task | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self.config.max_concurrent_solves)
        # the answer checks' imports now: the first solve's decision (inline without answer
        # workers) would pay them, past its deadline when it had one
        await asyncio.to_thread(warm)
        await self.redis.start()
        if self.redis.enabled:
            self.worker = JobWorker(self.jobs, self.run_job, self.config.job_concurrency, self.config.job_lease_s,
                                    on_finish=lambda st: self.metrics.jobs.labels(st).inc())
        if self.engine is None:
            self._loader = asyncio.get_running_loop().create_task(self._load_engine())
        elif self.worker is not None:
            self.worker.start()

    async def _load_engine(self) -> None:
        try:
            engine = await asyncio.to_thread(self._engine_factory)  # type: ignore[arg-type]
        except Exception as e:
            self._engine_state = "failed to load"  # the cause goes to the log, not to /readyz
            log.error("engine failed to load: %s: %s", type(e).__name__, e)
            return
        self.engine = GuardedEngine(engine, self.config.engine_retry_s)
        self.solver = Solver(engine=self.engine, config=self.base_config, answer_workers=self.answer_workers)
        self._engine_state = "ready"
        log.info("engine ready: %s %s", engine.info.name, engine.info.model)
        if self.worker is not None:
            self.worker.start()

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
        if self.worker is not None:
            await self.worker.stop()
        await self.redis.close()
        if self.solver is not None:
            self.solver.answer_work.close()  # its worker processes, if it started them
        if self.engine is not None:
            if self._engine_factory is not None:
                await self.engine.close()
            elif self.engine._probe is not None:  # an engine passed in belongs to the caller
                self.engine._probe.cancel()

    # -- state ----------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.engine.info.model if self.engine is not None else "?"

    @property
    def engine_state(self) -> str:
        """``loading``, ``failed to load``, ``ready`` or ``down`` (its last call failed)."""
        return self.engine.state if self.engine is not None else self._engine_state

    def require_solver(self) -> Solver:
        if self.solver is None:
            raise EngineNotReady(f"engine is {self.engine_state}")
        return self.solver

    def scope(self, key_id: str | None) -> str:
        """The cache scope of a caller: its key's id when keys are on and results are not shared."""
        return (key_id or "") if (self.auth.enabled and not self.config.shared_cache) else ""

    # -- solving --------------------------------------------------------------------------
    def with_deadline(self, cfg: SearchConfig) -> SearchConfig:
        """Every solve has a deadline: the request's, else the service's default."""
        return cfg if cfg.deadline_s is not None else cfg.replace(deadline_s=self.config.default_deadline_s)

    async def solve(self, problem: str, cfg: SearchConfig, key_id: str | None = None,
                    on_event: EventSink | None = None, wait: bool = False) -> Outcome:
        """Cached result, or one solve shared by every identical concurrent request (streaming
        or not: ``on_event`` gets the shared solve's events). ``wait``: wait for room in the
        in-flight token budget (jobs) instead of raising ``Overloaded`` (requests)."""
        self.require_solver()
        cfg = self.with_deadline(cfg)
        key = cache_key(problem, cfg, self.model, self.scope(key_id))
        out = await self.cache.get_or_solve(key, lambda publish: self._solve(problem, cfg, publish, wait), on_event)
        # for the request's access log line: which solve answered it (a joined one included)
        u = out.data.get("usage", {})
        logs.annotate(solve_id=out.solve_id, cache="hit" if out.cached else "miss", method=cfg.method, n=cfg.n,
                      tokens=u.get("generated_tokens"), stop_reason=out.data.get("stop_reason"))
        return out

    async def _solve(self, problem: str, cfg: SearchConfig, on_event: EventSink | None, wait: bool) -> Outcome:
        solver = self.require_solver()
        assert self._sem is not None
        # the id of this solve in the logs; every line logged while it runs carries it, and the
        # request that started it notes it even when the solve fails
        sid = uuid.uuid4().hex[:16]
        logs.annotate(solve_id=sid)
        with logs.bind(solve_id=sid):
            return await self._solve_logged(sid, solver, problem, cfg, on_event, wait)

    async def _solve_logged(self, sid: str, solver: Solver, problem: str, cfg: SearchConfig,
                            on_event: EventSink | None, wait: bool) -> Outcome:
        assert self._sem is not None
        t0 = time.monotonic()
        async with self.admission.hold(solve_cost(problem, cfg), wait=wait), self._sem:
            self.metrics.in_flight.inc()
            try:
                sol = await asyncio.wait_for(solver.asolve(problem, cfg, on_event=on_event),
                                             timeout=cfg.deadline_s + DEADLINE_GRACE_S)
            except asyncio.TimeoutError:
                log.error("a solve ran %.1f s past its deadline of %.1f s: abandoned", DEADLINE_GRACE_S, cfg.deadline_s)
                raise SolveTimeout(f"no answer within the deadline ({cfg.deadline_s:g} s)") from None
            finally:
                self.metrics.in_flight.dec()
        out = Outcome.of(sol)
        out.solve_id = sid
        self.metrics.observe_solution(out.data)
        u = out.data.get("usage", {})
        log.info("solve done", extra={
            "method": cfg.method, "n": cfg.n, "stop_reason": out.data.get("stop_reason"),
            "tokens": u.get("generated_tokens"), "prompt_tokens": u.get("prompt_tokens"),
            "cached_tokens": u.get("cached_tokens"), "latency_ms": round((time.monotonic() - t0) * 1000, 1)})
        if out.data.get("stop_reason") == "deadline" and out.data.get("answer") is None:
            raise SolveTimeout(f"no answer within the deadline ({cfg.deadline_s:g} s)")
        return out

    async def run_job(self, request: dict[str, Any]) -> str:
        while self.solver is None:  # jobs wait for the engine
            await asyncio.sleep(0.1)
        cfg = SearchConfig.from_dict(request["config"])
        return (await self.solve(request["problem"], cfg, request.get("owner") or None, wait=True)).text
