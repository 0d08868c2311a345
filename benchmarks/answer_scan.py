"""Does a solve's answer work finish on every answer the model has given? A scan of the stored
result lines.

A solve's decision parses, clusters and grades its candidates' answers (math-verify and sympy,
plus this project's cheap checks in ``srca.answers``). An answer sympy cannot finish with holds
its solve for good: the twelfth GPU run lost one solve of 500 to a product to a symbolic bound
that the numeric disproof evaluated at a point (benchmarks/RUNS.md, "Twelfth run"). This gathers, for each
problem, every distinct answer the stored lines under ``results/`` hold, and in a child process
clusters them (``srca.answers.cluster``, as a decision does, only with far larger pools) and
grades each against the gold answer, one problem after another; a problem that takes longer
than ``--limit`` seconds has its child killed and is reported, and the scan goes on with the
next in a new child. Exits 1 when one did not finish.

    python benchmarks/answer_scan.py                       # every results/**/*.jsonl.gz
    python benchmarks/answer_scan.py --limit 120 --lines A.jsonl.gz B.jsonl.gz
    python benchmarks/answer_scan.py --resume              # the problems the JSON does not hold yet
    python benchmarks/answer_scan.py --resume --retry-unfinished   # and those it holds as not finished

Writes ``results/answer_scan_<tag>.json`` (per problem: answers, seconds; the slowest; the
unfinished) and prints them. The JSON is rewritten with ``complete: false`` every 50 problems
and after any problem that ends a minute or more after the last write, so a scan cut short (on
a 2-core machine the whole store takes hours) keeps what it covered, and ``--resume`` goes on
from there (the problems it holds are not scanned again).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from _common import write_result  # noqa: E402
from equivalence_check import read_lines  # noqa: E402

CHILD = r"""
import json, sys, time
from srca.answers import cluster, equivalent
equivalent("1", "1.0")  # math-verify and sympy imported before the first problem's clock starts
data = json.load(open(sys.argv[1]))
for uid, gold, answers in data[int(sys.argv[2]):]:
    print("START", uid, flush=True)
    t = time.perf_counter()
    cluster(answers)
    for a in answers:
        if gold is not None:
            equivalent(gold, a)
    print("END", uid, round(time.perf_counter() - t, 3), flush=True)
"""


def gather(paths: list[str]) -> list[tuple[str, str | None, list[str]]]:
    """(unique_id, gold, sorted distinct answers) for every problem the lines hold."""
    answers: dict[str, set[str]] = {}
    gold: dict[str, str | None] = {}
    for r in read_lines(paths):
        uid = r.get("unique_id")
        if not uid or not isinstance(r.get("answers"), list):
            continue
        answers.setdefault(uid, set()).update(g["answer"] for g in r["answers"] if g.get("answer") is not None)
        gold.setdefault(uid, r.get("gold"))
    return [(u, gold[u], sorted(answers[u])) for u in sorted(answers)]


def scan(problems: list, limit: float, progress: Callable[[dict[str, float], list[str]], object] | None = None
         ) -> tuple[dict[str, float], list[str]]:
    """Seconds per problem, and the problems that did not finish within ``limit``;
    ``progress(done, hung)`` every 50 problems, and after a problem when a minute has passed since
    the last call."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(problems, f)
    done: dict[str, float] = {}
    hung: list[str] = []
    i = 0
    saved = time.monotonic()
    try:
        while i < len(problems):
            child = subprocess.Popen([sys.executable, "-c", CHILD, f.name, str(i)], stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            current, since = None, time.monotonic()
            while True:
                ready, _, _ = select.select([child.stdout], [], [], 1.0)
                if ready:
                    line = child.stdout.readline()
                    if not line:  # the child ended: all done, or it died (that problem is reported)
                        if child.wait() != 0 and current is not None:
                            hung.append(current)
                            i += 1
                        else:
                            i = len(problems)
                        break
                    word, uid, *rest = line.split()
                    if word == "START":
                        current, since = uid, time.monotonic()
                    else:
                        done[uid] = float(rest[0])
                        current, i = None, i + 1
                        if i % 50 == 0:
                            print(f"# {i} of {len(problems)} problems", flush=True)
                        if progress is not None and (i % 50 == 0 or time.monotonic() - saved > 60):
                            progress(done, hung)  # the slow stretches (hundreds of answers a problem) too
                            saved = time.monotonic()
                elif current is not None and time.monotonic() - since > limit:
                    print(f"# not finished in {limit:.0f} s: {current}", flush=True)
                    hung.append(current)
                    child.kill()
                    child.wait()
                    i += 1
                    break
    finally:
        os.unlink(f.name)
    return done, hung


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", nargs="+", help="result lines (.jsonl or .jsonl.gz); default: every results/**/*.jsonl.gz")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds a problem may take (default 300)")
    ap.add_argument("--tag", default="cpu")
    ap.add_argument("--out", default=None, help="default results/answer_scan_<tag>.json")
    ap.add_argument("--resume", action="store_true", help="keep the problems the JSON already holds; scan the rest")
    ap.add_argument("--retry-unfinished", action="store_true",
                    help="with --resume: scan the problems it holds as not finished again (after a fix to the answer work)")
    a = ap.parse_args(argv)
    if not a.limit > 0:
        ap.error("--limit: a number of seconds > 0")
    if a.retry_unfinished and not a.resume:
        ap.error("--retry-unfinished: only with --resume")
    paths = a.lines or sorted(glob.glob(os.path.join(HERE, "results", "**", "*.jsonl.gz"), recursive=True))
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        ap.error(f"--lines: no such file: {missing[0]}")
    out = a.out or os.path.join(HERE, "results", f"answer_scan_{a.tag}.json")
    problems = gather(paths)
    before: dict[str, float] = {}
    hung_before: list[str] = []
    wall_before = 0.0
    if a.resume and os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            old = json.load(f)
        ids = {u for u, _, _ in problems}  # what these lines hold: a scan of other lines is not carried over
        before = {u: s for u, s in (old.get("seconds") or {}).items() if u in ids}
        hung_before = [] if a.retry_unfinished else [u for u in old.get("not_finished") or [] if u in ids]
        wall_before = float(old.get("wall_s") or 0.0)
    todo = [p for p in problems if p[0] not in before and p[0] not in hung_before]
    sizes = {u: len(ans) for u, _, ans in problems}
    t = time.monotonic()

    def save(done: dict[str, float], hung: list[str], complete: bool = False) -> dict:
        """What the scan has so far, with what ``--resume`` carried over, written to ``out``."""
        seconds = {**before, **done}
        slowest = sorted(seconds, key=lambda u: -seconds[u])[:15]
        res = {"files": len(paths), "problems": len(problems), "scanned": len(seconds) + len(hung_before) + len(hung),
               "complete": complete, "answers": sum(sizes.values()),
               "wall_s": round(wall_before + time.monotonic() - t, 1), "limit_s": a.limit,
               "not_finished": hung_before + hung,
               "slowest": [{"unique_id": u, "answers": sizes.get(u), "s": seconds[u]} for u in slowest],
               "seconds": seconds}
        write_result(out, "answer_scan", a, **res)
        return res

    if todo:
        print(f"# {len(todo)} of {len(problems)} problems to scan"
              + (f" ({len(problems) - len(todo)} from {out})" if len(todo) < len(problems) else ""), flush=True)
    done, hung = scan(todo, a.limit, progress=save)
    res = save(done, hung, complete=True)
    print(f"{'problem':44s} {'answers':>7s} {'s':>8s}")
    for r in res["slowest"]:
        print(f"{r['unique_id']:44s} {r['answers'] or 0:7d} {r['s']:8.2f}")
    print(f"# {len(problems)} problems, {res['answers']} distinct answers from {len(paths)} files in "
          f"{res['wall_s']} s; not finished within {a.limit:.0f} s: {res['not_finished'] or 'none'}; wrote {out}")
    return 1 if res["not_finished"] else 0


if __name__ == "__main__":
    sys.exit(main())
