"""Solver: the Python entry point. One problem in, one :class:`~srca.solution.Solution` out.

Many solves run at once (``solve_many``, the service): each is an asyncio task, and the engine
batches the requests of all of them together.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable, Sequence

from .config import SearchConfig
from .engines import make_engine
from .engines.base import Engine
from .methods import METHODS, SearchContext
from .methods.context import EventSink, StopSearch
from .admission import ADMITS, BatchAdmission, EngineLoad, admission_for
from .answer_work import AnswerWorkers, decide_pool
from .scorers import Scorer, make_scorer
from .solution import Solution

MAX_PROBLEM_CHARS = 20_000


def check_problem(problem: Any) -> str:
    """Validate a problem statement at the boundary."""
    if not isinstance(problem, str):
        raise TypeError(f"problem: expected a string, got {type(problem).__name__}")
    if not problem.strip():
        raise ValueError("problem: must not be empty")
    if len(problem) > MAX_PROBLEM_CHARS:
        raise ValueError(f"problem: longer than {MAX_PROBLEM_CHARS} characters ({len(problem)})")
    return problem.strip()


class Solver:
    """``Solver(engine=..., scorer=..., config=SearchConfig(...))``.

    ``engine``: an :class:`~srca.engines.base.Engine`, or a kind name for
    :func:`~srca.engines.make_engine` (``"local"`` by default, the embedded transformers
    engine; ``engine_options`` go to its constructor, e.g. ``model="smollm2-135m"``).
    ``scorer``: a :class:`~srca.scorers.Scorer` or a name (default: ``config.scorer``).
    ``answer_workers``: processes for each solve's answer work (canonical forms, clustering, the
    decision; :mod:`srca.answer_work`): 0 runs it on the event loop; ``"auto"`` half the cores,
    at most 8, on a machine with 8 or more; None (default) ``$SRCA_ANSWER_WORKERS``, else 0 (the
    workers are spawned: a script using them needs an ``if __name__ == "__main__":`` guard).
    ``admit``: how ``solve_many`` and ``srca eval`` admit solves on an engine that states its
    batch (:mod:`srca.admission`): ``"width"`` (default) while the widths of the solves in flight
    fit, ``"load"`` while the sequences in flight leave room for the next solve's width (faster
    on a model of the GPU; on one H100, all of MATH-500, as fast as width: benchmarks/RUNS.md "Fourteenth
    run").
    """

    def __init__(self, engine: Engine | str | None = None, scorer: Scorer | str | None = None,
                 config: SearchConfig | None = None, *, answer_workers: int | str | None = None,
                 admit: str = "width", **engine_options: Any) -> None:
        if config is not None and not isinstance(config, SearchConfig):
            raise TypeError(f"config: expected SearchConfig, got {type(config).__name__}")
        if admit not in ADMITS:
            raise ValueError(f"admit: must be one of {', '.join(ADMITS)}, got {admit!r}")
        self.admit = admit
        self.config = config or SearchConfig()
        if engine is None or isinstance(engine, str):
            engine = make_engine(engine or "local", **engine_options)
        elif engine_options:
            raise TypeError("engine options are only accepted with an engine kind name")
        self.engine: Engine = engine
        self._scorers: dict[str, Scorer] = {}
        if isinstance(scorer, str):
            self._scorers[scorer] = make_scorer(scorer)
            self.config = self.config.replace(scorer=scorer)
        elif scorer is not None:
            self._scorers[self.config.scorer] = scorer
        self._loop: asyncio.AbstractEventLoop | None = None
        # the answers' CPU work (canonical forms, clustering, the decision) in worker processes
        self.answer_work = AnswerWorkers(answer_workers)
        self.in_flight = 0  # solves running now (the answer work of one alone stays inline)
        # the sequences the solves have in engine calls, against the engine's batch (srca.admission)
        self.load = EngineLoad(getattr(getattr(self.engine, "info", None), "concurrent_sequences", None))

    # -- configuration --------------------------------------------------------------------
    def _config(self, config: SearchConfig | None, overrides: dict[str, Any]) -> SearchConfig:
        cfg = config or self.config
        if not isinstance(cfg, SearchConfig):
            raise TypeError(f"config: expected SearchConfig, got {type(cfg).__name__}")
        return cfg.replace(**overrides) if overrides else cfg

    def scorer_for(self, name: str) -> Scorer:
        if name not in self._scorers:
            self._scorers[name] = make_scorer(name)
        return self._scorers[name]

    # -- async API ------------------------------------------------------------------------
    async def asolve(self, problem: str, config: SearchConfig | None = None, *,
                     on_event: EventSink | None = None, **overrides: Any) -> Solution:
        """Solve one problem. ``overrides`` replace config fields for this call only.
        ``on_event`` receives search events (dicts with ``type`` step, checkpoint, select,
        final) as they happen. Cancelling the task cancels the engine work."""
        problem = check_problem(problem)
        cfg = self._config(config, overrides)
        self.in_flight += 1
        try:
            return await self._asolve(problem, cfg, on_event)
        finally:
            self.in_flight -= 1

    async def _offload(self, fn: Any, *args: Any) -> Any:
        """Answer work (a search's own checks through SearchContext.offload, and the decision) in
        the answer workers; inline for a solve alone in flight while the pool has not started."""
        return await self.answer_work.run(fn, *args, alone=self.in_flight <= 1)

    async def _asolve(self, problem: str, cfg: SearchConfig, on_event: EventSink | None) -> Solution:
        method = METHODS[cfg.method]
        t0 = time.monotonic()
        scorer = self.scorer_for(cfg.scorer)
        ctx = SearchContext(problem, cfg, self.engine, scorer, on_event,
                            want_logprobs=method.scores and bool(getattr(scorer, "uses_logprobs", True)),
                            offload=self._offload, load=self.load)
        try:
            await method.run(ctx)
        except StopSearch as stop:
            ctx.stop_reason = stop.reason
        ctx.pool[:], win, conf = await self._offload(decide_pool, ctx.pool, method.decision_for(cfg), cfg.keep_top,
                                                     cfg.checkpoint_weight, cfg.keep_min)
        winner = ctx.pool[win] if win is not None else None
        ctx.timings["total_s"] = time.monotonic() - t0
        sol = Solution(
            answer=winner.answer if winner else None, canonical=winner.canonical if winner else None,
            confidence=round(conf, 6), method=cfg.method, candidates=ctx.pool, trace=ctx.trace(),
            usage=ctx.usage, timings={k: round(v, 4) for k, v in ctx.timings.items()},
            stop_reason=ctx.stop_reason, config=cfg.to_dict(), problem=problem,
        )
        ctx.emit({"type": "final", "answer": sol.answer, "confidence": sol.confidence,
                  "stop_reason": sol.stop_reason})
        return sol

    async def asolve_many(self, problems: Sequence[str], concurrency: int | None = None,
                          config: SearchConfig | None = None, progress: Callable[[int, Solution], Any] | None = None,
                          **overrides: Any) -> list[Solution]:
        """Solve many problems at once, at most ``concurrency`` in flight (None: as many as the
        engine's batch holds, by the sequences each solve decodes at once, :mod:`srca.admission`;
        16 where the engine does not say); results keep the input order.
        ``progress(index, solution)`` is called as each one finishes."""
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                        or concurrency < 1):
            raise ValueError(f"concurrency: must be an integer >= 1, got {concurrency!r}")
        problems = [check_problem(p) for p in problems]
        cfg = self._config(config, overrides)
        admission = self.batch_admission(concurrency, floor=16)
        out: list[Solution | None] = [None] * len(problems)

        async def one(i: int, p: str) -> None:
            async with admission.slot(cfg):
                out[i] = await self.asolve(p, cfg)
            if progress is not None:
                progress(i, out[i])

        await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
        return out  # type: ignore[return-value]

    def batch_admission(self, concurrency: int | None, floor: int) -> BatchAdmission:
        """How this solver's batches admit solves (:func:`srca.admission.admission_for`): a
        caller's ``concurrency``, else by the engine's batch (by load or by width, ``admit``),
        else ``floor`` solves."""
        return admission_for(self.engine, concurrency, floor, load=self.load if self.admit == "load" else None)

    # -- sync API (one private event loop, so the engine's tasks live on one loop) --------
    def _run(self, coro: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("Solver.solve called inside a running event loop; use 'await solver.asolve(...)'")
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def solve(self, problem: str, config: SearchConfig | None = None, *, on_event: EventSink | None = None,
              **overrides: Any) -> Solution:
        return self._run(self.asolve(problem, config, on_event=on_event, **overrides))

    def solve_many(self, problems: Iterable[str], concurrency: int | None = None, config: SearchConfig | None = None,
                   progress: Callable[[int, Solution], Any] | None = None, **overrides: Any) -> list[Solution]:
        return self._run(self.asolve_many(list(problems), concurrency, config, progress, **overrides))

    async def aclose(self) -> None:
        self.answer_work.close()
        await self.engine.close()

    def close(self) -> None:
        self.answer_work.close()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self.engine.close())
            self._loop.close()
        self._loop = None

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
