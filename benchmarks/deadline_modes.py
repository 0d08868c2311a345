"""srca under a deadline, as the service runs every solve (it gives each one a deadline): its
lineages whole, a wave per engine call, stopped in time to probe the lineages the deadline cuts
(``whole``, how srca runs under a deadline now), against step by step with a checkpoint probe
after every step (``steps``, what a deadline forced before: ``probe_at="step"`` is the same
search). One engine, one process, the same problems, the two variants alternating in order
(A B, B A, ...); per variant the wall, the engine calls, the generated and probe tokens and the
accuracy, then the ratios ``whole / steps``. The deadline is long enough that it stops neither.

    python benchmarks/deadline_modes.py --limit 4 --n 4 --max-new-tokens 384     # embedded CPU model
    python benchmarks/deadline_modes.py --engine sglang --model PATH --limit 50 --n 16

Writes ``benchmarks/results/deadline_modes_<engine>.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import write_result  # noqa: E402

VARIANTS = {"steps": {"probe_at": "step"}, "whole": {}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", default="local")
    ap.add_argument("--model", default=None, help="the engine's model (default: the engine's own)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "math500_smoke20.jsonl"),
                    help="MATH-500-style JSONL (default: the workplace's 20-problem smoke subset)")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--deadline-s", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from srca import SearchConfig, Solver, make_engine
    from srca.eval.data import load_problems
    from srca.eval.grading import grade

    problems = load_problems("math500", args.data, limit=args.limit)
    engine = make_engine(args.engine, **({"model": args.model} if args.model else {}))
    solver = Solver(engine=engine)
    base = dict(method="srca", n=args.n, max_new_tokens=args.max_new_tokens, deadline_s=args.deadline_s, seed=args.seed)
    rows: list[dict] = []
    for i, p in enumerate(problems):
        order = list(VARIANTS) if i % 2 == 0 else list(reversed(VARIANTS))
        for v in order:
            t = time.monotonic()
            sol = solver.solve(p.problem, SearchConfig(**base, **VARIANTS[v]))
            u = sol.usage
            rows.append(dict(variant=v, problem=p.unique_id, wall_s=round(time.monotonic() - t, 3),
                             engine_calls=u.engine_calls, generated_tokens=u.generated_tokens,
                             probe_tokens=u.probe_tokens, answer=sol.answer, correct=grade(sol.answer, p.answer),
                             stop_reason=sol.stop_reason))
            print(f"{p.unique_id} {v:5s} {rows[-1]['wall_s']:8.1f} s {u.engine_calls:4d} calls "
                  f"{u.generated_tokens:6d} tok ({u.probe_tokens} probe) {sol.answer!r} {sol.stop_reason}", flush=True)

    per: dict[str, dict] = {}
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        per[v] = dict(problems=len(rs), wall_s=round(sum(r["wall_s"] for r in rs), 2),
                      median_wall_s=round(statistics.median(r["wall_s"] for r in rs), 2),
                      engine_calls=sum(r["engine_calls"] for r in rs),
                      generated_tokens=sum(r["generated_tokens"] for r in rs),
                      probe_tokens=sum(r["probe_tokens"] for r in rs), correct=sum(r["correct"] for r in rs),
                      gen_tok_s=round(sum(r["generated_tokens"] for r in rs) / max(1e-9, sum(r["wall_s"] for r in rs)), 1))
    ratios = {k: round(per["whole"][k] / per["steps"][k], 3) if per["steps"][k] else None
              for k in ("wall_s", "engine_calls", "generated_tokens", "gen_tok_s")}
    print("\n| variant | problems | wall s | engine calls | generated tokens (probes) | tok/s | correct |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for v, s in per.items():
        print(f"| {v} | {s['problems']} | {s['wall_s']} | {s['engine_calls']} | {s['generated_tokens']} "
              f"({s['probe_tokens']}) | {s['gen_tok_s']} | {s['correct']} |")
    print(f"whole / steps: {ratios}")
    out = args.out or str(ROOT / "benchmarks" / "results" / f"deadline_modes_{args.engine}.json")
    write_result(out, "deadline_modes", args, engine=engine.info.name, model=engine.info.model,
                 per_variant=per, whole_over_steps=ratios, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
