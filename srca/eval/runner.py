"""run_eval: solve every (problem, method, n), grade, and write one result line each.

Every job is its own solve on one shared engine, at most ``concurrency`` in flight, so the
engine batches across problems and methods. Each problem's seed comes from the run's seed and
the problem's id (:func:`~srca.eval.records.problem_seed`), never from run order.
"""
from __future__ import annotations

import asyncio
import logging
import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..logs import json_enabled
from ..config import SearchConfig
from ..engines.base import Engine
from ..solver import Solver
from ..viewer import write_html
from .data import Problem
from .records import (Key, ResultsError, ResultsWriter, canonical_order, config_id, key_of, make_record,
                      problem_seed, read_records, write_atomic)
from .variants import check_method, config_for, effective_n

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    problem: Problem
    method: str
    n: int
    config: SearchConfig

    @property
    def key(self) -> Key:
        return (self.problem.unique_id, self.method, self.n)


def plan(problems: Sequence[Problem], methods: Sequence[str], ns: Sequence[int],
         base: SearchConfig | None = None, seed: int = 0) -> list[Job]:
    """Jobs in canonical order: problem, then method, then n (as given). Methods that ignore
    the budget (``cot``) run once per problem, recorded with n = 1."""
    if not problems:
        raise ValueError("no problems to evaluate")
    if not methods or not ns:
        raise ValueError("give at least one method and one n")
    for m in methods:
        check_method(m)
    for n in ns:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: must be an integer >= 1, got {n!r}")
    jobs: list[Job] = []
    seen: set[Key] = set()
    for p in problems:
        pseed = problem_seed(seed, p.unique_id)
        for m in methods:
            for n in ns:
                k = (p.unique_id, m, effective_n(m, n))
                if k not in seen:
                    seen.add(k)
                    jobs.append(Job(p, m, k[2], config_for(m, n, base, seed=pseed)))
    return jobs


def _label(method: str, n: int) -> str:
    return method if n == 1 else f"{method}@{n}"


class _Progress:
    """tqdm bar on stderr with running accuracy per method@n in the postfix."""

    def __init__(self, total: int, done: Sequence[dict], enabled: bool) -> None:
        self.stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in done:
            self._count(r)
        self.bar = None
        self.total, self.done = total, len(done)
        # with --log-format json a log collector reads stderr: a record per solve, not a bar
        self.log = enabled and json_enabled()
        if enabled and not self.log:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=len(done), file=sys.stderr, unit="solve", dynamic_ncols=True)
            self._show()

    def _count(self, r: dict) -> None:
        s = self.stats[_label(r["method"], r["n"])]
        s[0] += bool(r["correct"])
        s[1] += 1

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self.accuracy(), refresh=False)

    def accuracy(self) -> str:
        return " ".join(f"{k} {100 * c / t:.0f}%" for k, (c, t) in self.stats.items())

    def update(self, r: dict) -> None:
        self._count(r)
        self.done += 1
        if self.log:
            log.info("solved %d of %d", self.done, self.total,
                     extra={"done": self.done, "total": self.total, "unique_id": r["unique_id"],
                            "method": _label(r["method"], r["n"]), "correct": bool(r["correct"]),
                            "accuracy": self.accuracy()})
        if self.bar is not None:
            self._show()
            self.bar.update(1)
            self.bar.refresh()  # solves are slow: always show the newest count and accuracy

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _trace_path(d: Path, key: Key) -> Path:
    uid = re.sub(r"[^A-Za-z0-9._-]+", "_", key[0]).strip("_")
    return d / f"{uid}.{key[1]}.n{key[2]}.json"


def _check_resumable(existing: Sequence[dict], jobs: Sequence[Job], out: Path) -> None:
    want = {j.key: config_id(j.config.to_dict()) for j in jobs}
    for r in existing:
        k = key_of(r)
        if k in want and r.get("config_id") != want[k]:
            raise ResultsError(f"{out}: the line for {k} was made with other settings (config {r.get('config_id')}, "
                               f"now {want[k]}); resume with the same flags or write to another --out")


async def arun_eval(problems: Sequence[Problem], methods: Sequence[str], ns: Sequence[int],
                    engine: Engine | Solver, out: str | os.PathLike, *, base: SearchConfig | None = None,
                    seed: int = 0, concurrency: int | None = None, resume: bool = False, overwrite: bool = False,
                    traces_dir: str | os.PathLike | None = None, progress: bool = True,
                    on_record: Callable[[dict], Any] | None = None, isolate: bool = False) -> list[dict]:
    """Evaluate and write ``out`` (JSONL); returns its records in canonical order.

    ``resume``: keep the lines already in ``out`` and run only the missing jobs (a torn last
    line is dropped). Without ``resume`` or ``overwrite`` an ``out`` with lines is an error.
    ``traces_dir``: also write each full Solution (with its trace) as JSON there, and beside it
    its trace viewer page (the same name with ``.html``; :mod:`srca.viewer`).
    ``isolate``: each solve alone on a cold cache (one at a time, the engine's ``flush_cache``
    before each), so its result depends on nothing that ran before or beside it. Engines batch
    the requests of concurrent solves together and reuse cached prefixes, and a row's logits can
    differ in the last bits with the batch it sits in (CPU and GPU kernels alike), which after a
    few thousand sampled tokens can change a path; isolated, a killed and resumed run reproduces
    an uninterrupted one exactly. Slower: no batching across problems.
    ``concurrency``: solves in flight; None: as many as the engine's batch holds, by the sequences
    in flight and each solve's width (:mod:`srca.admission`, the solver's ``admit``; 8 where the
    engine does not say).
    On cancellation (Ctrl-C) every finished line is already in ``out``."""
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise ValueError(f"concurrency: must be an integer >= 1, got {concurrency!r}")
    jobs = plan(problems, methods, ns, base, seed)
    out = Path(out)
    existing = read_records(out, repair=resume) if out.exists() else []
    if existing and not (resume or overwrite):
        raise ResultsError(f"{out} already holds {len(existing)} result line(s); pass --resume to continue it "
                           "or --overwrite to start again")
    if overwrite and not resume:
        existing = []
        out.unlink(missing_ok=True)
    _check_resumable(existing, jobs, out)
    done = {key_of(r) for r in existing}
    todo = [j for j in jobs if j.key not in done]
    planned = [j.key for j in jobs]
    solver = engine if isinstance(engine, Solver) else Solver(engine=engine)
    tdir = Path(traces_dir) if traces_dir is not None else None
    if tdir is not None:
        tdir.mkdir(parents=True, exist_ok=True)
    planned_set = set(planned)
    bar = _Progress(len(jobs), [r for r in existing if key_of(r) in planned_set], progress)
    writer = ResultsWriter(out)
    new: list[dict] = []
    if len(todo) > 1:  # many solves ahead: the answer workers start now, not mid-run (AnswerWorkers.start)
        solver.answer_work.start()
    admission = solver.batch_admission(1 if isolate else concurrency, floor=8)
    timed_out0 = solver.answer_work.timed_out
    flush = getattr(solver.engine, "flush_cache", None) if isolate else None
    if isolate and flush is None:
        raise ValueError(f"isolate: the {type(solver.engine).__name__} engine has no flush_cache()")

    async def one(job: Job) -> None:
        async with admission.slot(job.config):
            if flush is not None:
                await flush()
            sol = await solver.asolve(job.problem.problem, job.config)
        # grading is math-verify again: in the solver's answer workers, off the event loop
        rec = await solver.answer_work.run(make_record, job.problem, job.method, job.n, sol, job.config.seed,
                                           alone=solver.in_flight == 0)
        writer.write(rec)
        if tdir is not None:
            tpath = _trace_path(tdir, job.key)
            tpath.write_text(json.dumps(sol.to_dict(), ensure_ascii=False), encoding="utf-8")
            try:  # the page is a view of the JSON just written: a failure to draw it loses no result
                write_html(sol, tpath.with_suffix(".html"))
            except Exception as e:  # noqa: BLE001 - reported, and the run goes on
                log.warning("trace page for %s not written: %s: %s", job.key, type(e).__name__, e)
        new.append(rec)
        bar.update(rec)
        if on_record is not None:
            on_record(rec)

    try:
        async with asyncio.TaskGroup() as tg:  # a failure cancels the rest; finished lines stay
            for job in todo:
                tg.create_task(one(job))
    except BaseExceptionGroup as eg:  # surface the first failure itself
        raise eg.exceptions[0] from None
    finally:
        writer.close()
        bar.close()
        if solver is not engine:  # this call's own solver: its workers go with it (the engine stays)
            solver.answer_work.close()
    late = solver.answer_work.timed_out - timed_out0
    if late:  # rare (an answer sympy cannot finish with); the lines are written, but say so
        log.warning("answer work: %d call(s) of this eval ran past the %.0f s deadline and compared answers by "
                    "their text alone (srca.answer_work)", late, solver.answer_work.deadline_s)
    records = canonical_order(list(existing) + new, planned)
    write_atomic(out, records)
    return records


def run_eval(problems: Sequence[Problem], methods: Sequence[str], ns: Sequence[int], engine: Engine | Solver,
             out: str | os.PathLike, **kwargs: Any) -> list[dict]:
    """Synchronous :func:`arun_eval` (closes nothing: the caller owns the engine)."""
    return asyncio.run(arun_eval(problems, methods, ns, engine, out, **kwargs))
