"""``srca solve "PROBLEM"``: solve one problem and print the answer (or JSON)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

from .common import UsageError, add_config_args, add_engine_args, config_from_args, engine_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="solve one problem", description="Solve one problem with a search method.")
    p.add_argument("problem", nargs="?", help="the problem text (read from stdin when omitted or '-')")
    p.add_argument("--json", action="store_true", help="print the Solution as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=run)


def _progress(t0: float):
    def on_event(ev: dict) -> None:
        kind = ev["type"]
        if kind == "step":
            n = ev["nodes"]
            fin = sum(1 for x in n if x["finished"])
            msg = f"step {ev['depth']}: {len(n)} candidate(s)" + (f", {fin} finished" if fin else "")
        elif kind == "checkpoint":
            msg = "  checkpoints: " + ", ".join(str(x["answer"]) for x in ev["nodes"])
        elif kind == "select":
            msg = "  kept: " + ", ".join(f"#{k['id']}" + (f"({k.get('answer')})" if k.get("answer") else "")
                                          for k in ev["kept"])
        else:
            return
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return on_event


def render(sol) -> str:
    """A readable summary: answer, votes per group, checkpoint timeline, usage."""
    out = [f"Answer: {sol.answer}    (confidence {sol.confidence:.2f}, method {sol.method}, stop: {sol.stop_reason})"]
    if sol.candidates:
        groups: dict[int, list] = defaultdict(list)
        for c in sol.candidates:
            groups[c.group].append(c)
        out.append("Votes per answer group:")
        for g in sorted(groups.values(), key=lambda m: -sum(c.score for c in m)):
            paths = sum(1 for c in g if c.source == "path")
            out.append(f"  {g[0].answer!s:<24} {len(g):>3} vote(s)  ({paths} path(s), {len(g) - paths} checkpoint(s))"
                       f"  best score {max(c.score for c in g):.3f}  sum {sum(c.score for c in g):.3f}")
    probed = [t for t in sol.trace if t.checkpoint is not None or t.finished]
    if probed and sol.method in ("srca", "beam", "dvts"):
        out.append("Checkpoint timeline (answer after each step; * kept, ! finished):")
        by_depth: dict[int, list] = defaultdict(list)
        for t in sol.trace:
            if t.depth > 0:
                by_depth[t.depth].append(t)
        for d in sorted(by_depth):
            cells = []
            for t in by_depth[d]:
                a = t.answer if t.finished else t.checkpoint
                mark = "!" if t.finished else ("*" if t.kept else "")
                score = f"{t.path_score:.2f}" if t.path_score is not None else "-"
                cells.append(f"#{t.id}{mark} {a} ({score})")
            out.append(f"  step {d}: " + " | ".join(cells))
    u = sol.usage
    out.append(f"Usage: {u.generated_tokens} generated tokens ({u.probe_tokens} in probes), {u.prompt_tokens} prompt "
               f"tokens ({u.cached_tokens} cached, {100 * u.cache_hit_rate:.1f}%), {u.scorer_calls} scorer calls, "
               f"{u.engine_calls} engine calls; {sol.timings.get('total_s', 0):.1f} s")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    problem = args.problem
    if problem is None or problem == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("problem: give it as an argument or on stdin")
        problem = sys.stdin.read()
    if not problem.strip():
        raise UsageError("problem: must not be empty")
    cfg = config_from_args(args)
    from ..solver import Solver

    t0 = time.monotonic()
    if not args.quiet:
        print(f"[{0:6.1f}s] loading {args.engine} engine {args.model or ''}".rstrip(), file=sys.stderr, flush=True)
    engine = engine_from_args(args)
    if not args.quiet:
        print(f"[{time.monotonic() - t0:6.1f}s] engine ready; solving with {cfg.method} (n={cfg.n})",
              file=sys.stderr, flush=True)
    solver = Solver(engine=engine, config=cfg)
    try:
        sol = solver.solve(problem, on_event=None if args.quiet else _progress(t0))
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        solver.close()
    if args.json:
        d = sol.to_dict()
        d["timings"]["load_s"] = round(time.monotonic() - t0 - sol.timings.get("total_s", 0.0), 3)
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print(render(sol))
    return 0
