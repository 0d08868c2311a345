"""``srca solve "PROBLEM"``: solve one problem and print the answer (or JSON)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import defaultdict

from .common import (UsageError, add_config_args, add_engine_args, check_before_load, config_from_args,
                     engine_from_args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("solve", help="solve one problem", description="Solve one problem with a search method.")
    p.add_argument("problem", nargs="?", help="the problem text (read from stdin when omitted or '-')")
    p.add_argument("--json", action="store_true", help="print the Solution as JSON")
    p.add_argument("--html", default=None, metavar="PATH",
                   help="also write the search as a trace viewer page (self-contained HTML; see `srca view`)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=run)


class StatusLine:
    """Progress on stderr. Lines (``line``) stay; the status (``status``) is one line redrawn in
    place on a terminal (at most a few times a second) and, when stderr is not a terminal (a
    log, CI), printed as a plain line at most every ``log_every_s`` seconds, so a log gets a
    few lines rather than hundreds. Thread-safe: the local engine reports from its worker thread."""

    def __init__(self, t0: float, stream=None, tty: bool | None = None, log_every_s: float = 30.0) -> None:
        self.t0 = t0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every_s = log_every_s
        self._lock = threading.Lock()
        self._shown = False  # a status is drawn on the terminal's current line
        # a log gets its first status line only once a wait is long enough to need one
        self._last = float("-inf") if self.tty else time.monotonic()

    def _stamp(self, msg: str) -> str:
        return f"[{time.monotonic() - self.t0:6.1f}s] {msg}"

    def line(self, msg: str) -> None:
        if _json_logs():  # --log-format json: each line a JSON record, no redrawn status
            logging.getLogger("srca.solve").info(msg, extra={"elapsed_s": round(time.monotonic() - self.t0, 1)})
            return
        with self._lock:
            self._clear()
            print(self._stamp(msg), file=self.stream, flush=True)

    def status(self, msg: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < (0.25 if self.tty else self.log_every_s):
                return
            self._last = now
            if _json_logs():
                logging.getLogger("srca.solve").info(msg, extra={"elapsed_s": round(now - self.t0, 1)})
            elif self.tty:
                self.stream.write("\r\033[K" + self._stamp(msg))
                self.stream.flush()
                self._shown = True
            else:
                print(self._stamp(msg), file=self.stream, flush=True)

    def done(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def _json_logs() -> bool:
    from ..logs import json_enabled

    return json_enabled()


def decode_progress(status: StatusLine):
    """An ``on_progress`` callback for the local engine: tokens generated, rows still running,
    rate. One-call methods (majority, cot, ...) are one long batch; this is what shows them move."""

    def on_progress(p) -> None:
        rate = p.generated / p.elapsed_s if p.elapsed_s > 0 else 0.0
        status.status(f"generating: {p.generated} tokens, {p.active} of {p.rows} continuation(s) running "
                      f"(each at most {p.max_new_tokens}), {rate:.1f} tok/s")

    return on_progress


def _progress(status: StatusLine):
    def on_event(ev: dict) -> None:
        kind = ev["type"]
        if kind == "step":
            n = ev["nodes"]
            fin = sum(1 for x in n if x["finished"])
            msg = f"step {ev['depth']}: {len(n)} candidate(s)" + (f", {fin} finished" if fin else "")
        elif kind == "checkpoint":
            msg = "  checkpoints: " + ", ".join(str(x["answer"]) for x in ev["nodes"])
        elif kind == "select":
            if not ev["kept"] and not ev.get("ended"):
                return
            names = [f"#{k['id']}" + (f"({k.get('answer')})" if k.get("answer") else "") for k in ev["kept"]
                     or ev["ended"]]
            msg = ("  kept: " if ev["kept"] else "  ended: ") + ", ".join(names)
        elif kind == "wave":
            msg = f"wave {ev['wave']} of {ev['waves']}: {ev['lineages']} lineage(s)"
        elif kind == "verify":
            from ..methods.verify import verify_factor

            msg = "  verified: " + ", ".join(
                f"{x['answer']} (P(yes) {verify_factor(x['log_odds'], 1):.2f})" if x["log_odds"] is not None
                else f"{x['answer']} (no verdict)" for x in ev["nodes"])
        else:
            return
        status.line(msg)

    return on_event


def _stepwise(name: str) -> bool:
    """Whether method ``name`` grows its paths step by step (a timeline per step is worth showing)."""
    from ..methods import METHODS

    method = METHODS.get(name)
    return method is not None and method.stepwise


def render(sol) -> str:
    """A readable summary: answer, votes per group, checkpoint timeline, usage."""
    out = [f"Answer: {sol.answer}    (confidence {sol.confidence:.2f}, method {sol.method}, stop: {sol.stop_reason})"]
    if sol.answer is None:
        ended = sum(1 for t in sol.trace if t.finished)
        out.append("  (no answer: " + (f"{ended} path(s) ended without one the grader could read)" if ended else
                                       "no path ended within the token limit; try a larger --max-new-tokens)"))
    if sol.candidates:
        groups: dict[int, list] = defaultdict(list)
        for c in sol.candidates:
            groups[c.group].append(c)
        out.append("Votes per answer group:")
        for g in sorted(groups.values(), key=lambda m: -sum(c.score for c in m)):
            kinds = [sum(1 for c in g if c.source == k) for k in ("path", "program", "settled", "checkpoint")]
            how = ", ".join(f"{k} {name}" for k, name in zip(kinds, ("path(s)", "program(s)", "settled", "checkpoint(s)"))
                            if k or name not in ("settled", "program(s)"))
            out.append(f"  {g[0].answer!s:<24} {len(g):>3} vote(s)  ({how})"
                       f"  best score {max(c.score for c in g):.3f}  sum {sum(c.score for c in g):.3f}")
    probed = [t for t in sol.trace if t.checkpoint is not None or t.finished]
    if probed and _stepwise(sol.method):
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
    unused = f", {u.unused_tokens} by waves not needed" if u.unused_tokens else ""
    loops = (f"; {u.loop_stops} sample stopped as a loop" if u.loop_stops == 1 else
             f"; {u.loop_stops} samples stopped as loops" if u.loop_stops else "")
    out.append(f"Usage: {u.generated_tokens} generated tokens ({u.probe_tokens} in probes{unused}{loops}), {u.prompt_tokens} prompt "
               f"tokens ({u.cached_tokens} cached, {100 * u.cache_hit_rate:.1f}%), {u.scorer_calls} scorer calls, "
               f"{u.engine_calls} engine calls; {sol.timings.get('total_s', 0):.1f} s")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.html is not None:
        import os.path

        if os.path.isdir(args.html):  # say so now, not after a solve that may take minutes
            raise UsageError(f"--html: {args.html} is a folder; give the page's file name")
    problem = args.problem
    if problem is None or problem == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("problem: give it as an argument or on stdin")
        problem = sys.stdin.read()
    if not problem.strip():
        raise UsageError("problem: must not be empty")
    cfg = config_from_args(args)
    check_before_load(cfg)
    from ..solver import Solver

    t0 = time.monotonic()
    status = StatusLine(t0)
    if not args.quiet:
        status.line(f"loading {args.engine} engine {args.model or ''}".rstrip())
    engine = engine_from_args(args)
    if not args.quiet:
        status.line(f"engine ready; solving with {cfg.method} (n={cfg.n})")
        if hasattr(engine, "on_progress"):
            engine.on_progress = decode_progress(status)
    solver = Solver(engine=engine, config=cfg)
    try:
        sol = solver.solve(problem, on_event=None if args.quiet else _progress(status))
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        status.done()
        solver.close()
    if args.html is not None:
        from ..viewer import write_html

        write_html(sol, args.html)
        if not args.quiet:
            if _json_logs():
                status.line(f"wrote the trace page {args.html}")
            else:
                print(f"wrote the trace page {args.html}", file=sys.stderr, flush=True)
    if args.json:
        d = sol.to_dict()
        d["timings"]["load_s"] = round(time.monotonic() - t0 - sol.timings.get("total_s", 0.0), 3)
        print(json.dumps(d, indent=2, ensure_ascii=False))
    else:
        print(render(sol))
    return 0
