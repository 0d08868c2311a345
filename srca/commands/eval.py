"""``srca eval math500|gsm8k``: solve a benchmark with one or more methods and budgets, grade
every answer, write one JSONL line per (problem, method, n) and print the report."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from .common import (UsageError, add_config_args, add_engine_args, check_before_load, config_from_args,
                     engine_from_args, note)


def _csv(kind: type):
    def parse(s: str) -> list:
        items = [x.strip() for x in s.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(x) for x in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {s!r}")

    parse.__name__ = f"{kind.__name__} list"
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..eval.data import DATASETS

    p = sub.add_parser("eval", help="evaluate methods on a benchmark",
                       description="Solve a benchmark with methods x budgets, grade with math-verify, write JSONL.")
    p.add_argument("dataset", choices=sorted(DATASETS), help="benchmark (its JSONL layout: see srca.eval.data)")
    p.add_argument("--data", default=None, help="JSONL file (default: $SRCA_DATA_DIR/<file>, else the HF hub)")
    p.add_argument("--limit", type=int, default=None, help="only the first K problems")
    p.add_argument("--method", type=_csv(str), default=["srca"],
                   help="methods or variants, comma-separated (e.g. cot,majority,srca,srca-noacs)")
    p.add_argument("--n", type=_csv(int), default=[4], help="budgets, comma-separated (e.g. 4,8,16)")
    p.add_argument("--out", default=None, help="results file, JSONL, one line per problem x method x n "
                                                "(default: ./<dataset>_<methods>_n<budgets>.jsonl)")
    p.add_argument("--resume", action="store_true", help="keep the lines already in --out, run the rest")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--concurrency", type=int, default=None,
                   help="solves in flight at once (default: solves admitted while the sequences each decodes at "
                        "once fit the engine's batch, e.g. 256 majority@16 or 682 srca@16 solves on SGLang on an "
                        "H200; 8 on the CPU engine)")
    p.add_argument("--isolate", action="store_true",
                   help="one solve at a time on a cold prefix cache: results independent of run order, so a "
                        "killed and resumed run reproduces an uninterrupted one exactly (slower)")
    p.add_argument("--traces", default=None, metavar="DIR", help="also write each full solution (with trace) here as JSON, "
                        "and beside it its trace viewer page (.html)")
    p.add_argument("--answer-workers", type=_workers, default=None, metavar="N",
                   help="processes for the answers' work, clustering and grading (0: on the event loop; "
                        "default auto: half the cores (at most 8) on 8 or more, else 0; or $SRCA_ANSWER_WORKERS)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_config_args(p, skip=("method", "n"))
    add_engine_args(p)
    p.set_defaults(func=run)


def _workers(s: str) -> int | str:
    return s if s == "auto" else int(s)


def run(args: argparse.Namespace, engine: Any = None) -> int:
    """``engine``: use this engine instead of building one from the flags (tests)."""
    from ..eval.data import DataError, load_problems
    from ..eval import ResultsError, arun_eval, plan
    from ..admission import admission_for
    from ..eval.report import render

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be >= 1, got {args.limit}")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError(f"--concurrency: must be >= 1, got {args.concurrency}")
    if args.isolate and args.concurrency not in (None, 1):
        raise UsageError("--isolate runs one solve at a time: drop --concurrency")
    concurrency = 1 if args.isolate else args.concurrency  # None: by the engine's batch (srca.admission)
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite: choose one")
    from ..answer_work import check_workers

    try:  # the flag, or $SRCA_ANSWER_WORKERS, else auto: checked before a model loads
        workers = check_workers(args.answer_workers, default="auto")
    except ValueError as e:
        raise UsageError(str(e).replace("answer_workers:", "--answer-workers:")) from None
    if args.out is None:
        args.out = f"{args.dataset}_{'+'.join(args.method)}_n{'-'.join(map(str, args.n))}.jsonl"
    seed = args.seed if args.seed is not None else 0
    base = config_from_args(args, method="srca", n=1, seed=seed)
    check_before_load(base)
    try:
        problems = load_problems(args.dataset, args.data, args.limit)
        plan(problems, args.method, args.n, base, seed)  # check methods and budgets before loading a model
    except (DataError, ValueError) as e:
        raise UsageError(str(e)) from None
    t0 = time.monotonic()
    if engine is None:
        if not args.quiet:
            note(f"loading {args.engine} engine {args.model or ''}".rstrip(), engine=args.engine, model=args.model)
        engine = engine_from_args(args)
        if not args.quiet:
            adm = admission_for(engine, concurrency, floor=8)  # as run_eval admits (Solver's default: by width)
            note(f"engine ready in {time.monotonic() - t0:.1f} s; {len(problems)} problem(s), methods "
                 f"{','.join(args.method)}, n {','.join(map(str, args.n))}, {adm.describe()}; writing {args.out}",
                 start_s=round(time.monotonic() - t0, 1), problems=len(problems), out=args.out,
                 concurrency=concurrency, batch_sequences=adm.slots.capacity if adm.by_width else None)

    if args.isolate and not hasattr(engine, "flush_cache"):
        asyncio.run(engine.close())
        raise UsageError(f"--isolate: the {args.engine} engine cannot empty its prefix cache (no flush_cache)")

    from ..solver import Solver

    solver = Solver(engine=engine, answer_workers=workers)

    async def go() -> list[dict]:
        try:
            return await arun_eval(problems, args.method, args.n, solver, args.out, base=base, seed=seed,
                                   concurrency=concurrency, resume=args.resume, overwrite=args.overwrite,
                                   traces_dir=args.traces, progress=not args.quiet, isolate=args.isolate)
        finally:
            await solver.aclose()

    try:
        records = asyncio.run(go())
    except ResultsError as e:
        raise UsageError(str(e)) from None
    except KeyboardInterrupt:
        print(f"srca: interrupted; finished lines are in {args.out}; rerun with --resume to continue",
              file=sys.stderr, flush=True)
        raise
    print(render(records))
    return 0
