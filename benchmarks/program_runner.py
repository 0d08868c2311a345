"""Cold against warm program runs: what program of thought pays per program (CPU only).

The programs are real ones a model wrote: the last fenced block of every sample in an eval's
``--traces`` folder (``srca eval ... --method pot --traces DIR``), or a JSONL file of
``{"code": ...}`` lines (``--programs``; ``--save`` writes one from traces). Each round runs them
all cold (:func:`srca.execution.run_program`: a new ``python -s`` that imports what the program
imports) and warm (:class:`srca.warm_exec.WarmPool`: forked from a zygote with sympy loaded), on
``--threads`` threads as the pot method does, in alternating order. Reported per way: wall per
round (min and median over ``--rounds``), programs a second, and how many answers (the last
printed line, :func:`srca.execution.program_answer`) the two ways agree on, and each program's
own seconds (median over the rounds; their median and sum, and the sum of those under 1 s: a
program that runs to the timeout is the wall's floor whichever way starts it); the ratios are
cold over warm in the same run.

    python benchmarks/program_runner.py --traces /tmp/pottraces --threads 2 --rounds 3 \\
        --out benchmarks/results/program_runner_cpu.json
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import write_result  # noqa: E402


def programs_from_traces(folder: str) -> list[str]:
    """Every sample's program in an eval's traces folder (each solution's trace nodes' text, as
    the pot methods read it: :func:`srca.execution.program_of`)."""
    from srca.execution import program_of

    out = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.json"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            try:
                sol = json.load(f)
            except ValueError:
                continue
        for node in sol.get("trace", []) if isinstance(sol, dict) else []:
            code = program_of(node.get("text") or "")
            if code is not None:
                out.append(code)
    return out


def read_programs(path: str) -> list[str]:
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        return [json.loads(x)["code"] for x in f if x.strip()]


def run_all(programs: list[str], run, threads: int) -> tuple[float, list, list[float]]:
    """The wall of running them all, their results and each program's own seconds."""
    def timed(code):
        t = time.perf_counter()
        r = run(code)
        return r, time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        out = list(ex.map(timed, programs))
    return time.perf_counter() - t0, [r for r, _ in out], [s for _, s in out]


def main(argv: list[str] | None = None) -> int:
    from srca.execution import program_answer, run_program
    from srca.warm_exec import WarmPool

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--traces", help="an eval's --traces folder (pot or majority-pot solutions)")
    src.add_argument("--programs", help="a JSONL(.gz) file of {\"code\": ...} lines")
    ap.add_argument("--save", default=None, help="also write the programs read as JSONL(.gz) here")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="programs at once (default: cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="JSON result path")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.rounds < 1:
        ap.error("--threads and --rounds: at least 1")
    src_path = a.traces or a.programs
    if not os.path.exists(src_path):
        ap.error(f"no such {'folder' if a.traces else 'file'}: {src_path}")
    programs = programs_from_traces(a.traces) if a.traces else read_programs(a.programs)
    if not programs:
        print(f"no programs in {src_path}", file=sys.stderr)
        return 1
    if a.save:
        with (gzip.open(a.save, "wt") if a.save.endswith(".gz") else open(a.save, "w")) as f:
            f.writelines(json.dumps({"code": c}) + "\n" for c in programs)
    pool = WarmPool(a.threads)
    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    each: dict[str, list[list[float]]] = {"cold": [], "warm": []}  # per round, each program's seconds
    answers: dict[str, list] = {}
    try:
        pool.run("print(1)")  # one zygote's start is not a program's cost; the others start in round 1
        for r in range(a.rounds):
            order = ("cold", "warm") if r % 2 == 0 else ("warm", "cold")
            for way in order:
                wall, res, secs = run_all(programs, run_program if way == "cold" else pool.run, a.threads)
                walls[way].append(wall)
                each[way].append(secs)
                answers[way] = [program_answer(x) for x in res]
    finally:
        pool.close()
    rows = []
    for way in ("cold", "warm"):
        w = walls[way]
        # each program's median over the rounds: the run's own cost, which a slow program's
        # timeout does not hide as it does the wall
        per = [statistics.median(r[i] for r in each[way]) for i in range(len(programs))]
        rows.append({"way": way, "programs": len(programs), "wall_min_s": round(min(w), 3),
                     "wall_median_s": round(statistics.median(w), 3),
                     "programs_per_s": round(len(programs) / statistics.median(w), 1),
                     "program_median_s": round(statistics.median(per), 4),
                     "program_sum_s": round(sum(per), 3),
                     "program_sum_under_1s": round(sum(x for x in per if x < 1.0), 3),
                     "answered": sum(x is not None for x in answers[way])})
    agree = sum(x == y for x, y in zip(answers["cold"], answers["warm"]))
    ratio = round(rows[0]["wall_median_s"] / rows[1]["wall_median_s"], 2)
    per_ratio = round(rows[0]["program_median_s"] / rows[1]["program_median_s"], 2)
    print(f"{len(programs)} programs from {src_path}, {a.threads} threads, {a.rounds} rounds")
    print(f"{'way':<5} {'wall min s':>10} {'median s':>9} {'programs/s':>11} {'program median s':>17} "
          f"{'sum s':>7} {'sum <1 s':>9} {'answered':>9}")
    for r in rows:
        print(f"{r['way']:<5} {r['wall_min_s']:>10} {r['wall_median_s']:>9} {r['programs_per_s']:>11} "
              f"{r['program_median_s']:>17} {r['program_sum_s']:>7} {r['program_sum_under_1s']:>9} {r['answered']:>9}")
    print(f"cold / warm: wall {ratio}x, a program's median {per_ratio}x; the two ways' answers agree on {agree} "
          f"of {len(programs)}; warm runs that fell back to cold: {pool.cold_runs}")
    if a.out:
        write_result(a.out, "program_runner", a, rows=rows, cold_over_warm=ratio, cold_over_warm_program=per_ratio,
                     agree=agree, cold_fallbacks=pool.cold_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
