"""Runtime: what one replica holds (engine, solver, Redis, cache, jobs, worker, metrics) and the
one solve path every route shares (cache + single-flight + concurrency limit)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from srca.config import SearchConfig
from srca.engines.base import Engine
from srca.solver import Solver

from .auth import Auth
from .cache import Outcome, ResultCache, cache_key
from .config import ServiceConfig
from .jobs import JobStore
from .metrics import Metrics
from .redis_conn import RedisHandle
from .worker import JobWorker

log = logging.getLogger("srca.service")


class EngineNotReady(Exception):
    pass


class Runtime:
    def __init__(self, config: ServiceConfig, engine: Engine | None = None,
                 engine_factory: Callable[[], Engine] | None = None, base_config: SearchConfig | None = None) -> None:
        if (engine is None) == (engine_factory is None):
            raise ValueError("create_app: pass exactly one of engine or engine_factory")
        self.config = config
        self.base_config = base_config or SearchConfig()
        self.engine = engine
        self._engine_factory = engine_factory
        self.engine_state = "ready" if engine is not None else "loading"
        self.solver: Solver | None = Solver(engine=engine, config=self.base_config) if engine is not None else None
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
            self.engine_state = f"failed: {type(e).__name__}: {e}"
            log.error("engine failed to load: %s", e)
            return
        self.engine = engine
        self.solver = Solver(engine=engine, config=self.base_config)
        self.engine_state = "ready"
        log.info("engine ready: %s %s", engine.info.name, engine.info.model)
        if self.worker is not None:
            self.worker.start()

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
        if self.worker is not None:
            await self.worker.stop()
        await self.redis.close()
        if self._engine_factory is not None and self.engine is not None:
            await self.engine.close()

    # -- state ----------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.engine.info.model if self.engine is not None else "?"

    def require_solver(self) -> Solver:
        if self.solver is None:
            raise EngineNotReady(f"engine is {self.engine_state}")
        return self.solver

    # -- solving --------------------------------------------------------------------------
    async def solve(self, problem: str, cfg: SearchConfig) -> Outcome:
        """Cached result, or one solve shared by every identical concurrent request."""
        self.require_solver()
        return await self.cache.get_or_solve(cache_key(problem, cfg, self.model), lambda: self._solve(problem, cfg))

    async def solve_streaming(self, problem: str, cfg: SearchConfig, on_event: Callable[[dict], Any]) -> Outcome:
        """A solve of its own (its events go to ``on_event``); the result still fills the cache."""
        self.require_solver()
        out = await self._solve(problem, cfg, on_event)
        await self.cache.put(cache_key(problem, cfg, self.model), out)
        return out

    async def _solve(self, problem: str, cfg: SearchConfig, on_event: Callable[[dict], Any] | None = None) -> Outcome:
        solver = self.require_solver()
        assert self._sem is not None
        async with self._sem:
            self.metrics.in_flight.inc()
            try:
                sol = await solver.asolve(problem, cfg, on_event=on_event)
            finally:
                self.metrics.in_flight.dec()
        out = Outcome.of(sol)
        self.metrics.observe_solution(out.data)
        return out

    async def run_job(self, request: dict[str, Any]) -> str:
        while self.solver is None:  # jobs wait for the engine
            await asyncio.sleep(0.1)
        cfg = SearchConfig.from_dict(request["config"])
        return (await self.solve(request["problem"], cfg)).text
