"""The SRCA controller over in-process SGLang against the raw batched fan-out it should match.

Workload (the shape of ``../shared/gpu/fanout.py``): ``--problems`` problems, 4 steps, 4 beams
each expanding into 4 candidates of 64 tokens, a greedy 8-token checkpoint probe per candidate.

* **reference**: the fan-out loop written straight against ``sglang.Engine.async_generate``,
  every phase of every problem as one batched call (random ~``--prompt-tokens`` prompts);
* **controller**: ``Solver.asolve_many`` with ``method="srca"``, ``n=16``, ``beam_width=4``,
  ``expand=4``, ``max_steps=4``, ``max_step_tokens=64``, probes on, over :class:`SGLangEngine`.
  Dummy weights emit random tokens, so the shape is forced: a step delimiter that never
  matches (steps end at length), ``ignore_eos``, ``max_new_tokens = 4 * 64``.

Each engine configuration runs in its own process (``--child``): radix cache on, radix off, and
with ``--dp N > 1`` one dp=N engine where the reference runs unpinned (SGLang's round robin) and
pinned per problem, and the controller runs with ``routing="sglang"`` (round robin) and
``routing="affinity"`` (each solve on one replica). The prefix cache is flushed between runs.
Writes ``benchmarks/results/engine_fanout.json`` and prints a table with the ratios
controller/reference (wall time) and the share of prompt tokens served from the cache.

    python benchmarks/engine_fanout.py --model /tmp/sglmodel --dp 2
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEVER = "\x07\x07never-a-step\x07\x07"
WORDS = ("apple river stone seven lamp cloud tiger paper window number angle prime circle square "
         "triangle sum product value integer fraction").split()


def problems(n: int, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"Problem {i}: " + " ".join(rng.choice(WORDS) for _ in range(words)) + ". Find the value."
            for i in range(n)]


# -- child: one engine, several timed runs -------------------------------------------------------

def _engine(a, dp: int, radix: bool):
    from srca.engines.sglang_inproc import SGLangEngine

    return SGLangEngine(a.model, dp_size=dp, radix_cache=radix, load_format="dummy", attention_backend="triton",
                        sampling_backend="pytorch", grammar_backend="none", disable_cuda_graph=not a.cuda_graph,
                        mem_fraction_static=a.mem, ignore_eos=True)


def reference(eng, a, pin: bool) -> dict:
    """The raw fan-out loop of ``fanout.py`` on the engine's SGLang, phase by phase."""
    dp = eng.dp_size
    rng = random.Random(1)
    V = 150000
    cue = [rng.randrange(1000, V) for _ in range(8)]
    st = dict(prompt=0, cached=0, generated=0, calls=0, requests=0)

    async def agen(ids, params, owners):
        if pin and dp > 1:
            groups = {r: [i for i, o in enumerate(owners) if o % dp == r] for r in range(dp)}
            groups = {r: idx for r, idx in groups.items() if idx}
            parts = await asyncio.gather(*[eng.engine.async_generate(input_ids=[ids[i] for i in idx], sampling_params=params,
                                                                     routed_dp_rank=r) for r, idx in groups.items()])
            outs = [None] * len(ids)
            for idx, part in zip(groups.values(), parts):
                for i, o in zip(idx, part):
                    outs[i] = o
            return outs
        return await eng.engine.async_generate(input_ids=ids, sampling_params=params)

    def call(ids, params, owners):
        outs = asyncio.run_coroutine_threadsafe(agen(ids, params, owners), eng._loop).result()
        st["calls"] += 1
        st["requests"] += len(ids)
        for o in outs:
            m = o["meta_info"]
            st["prompt"] += m.get("prompt_tokens", 0)
            st["cached"] += m.get("cached_tokens", 0)
            st["generated"] += m.get("completion_tokens", 0)
        return [o["output_ids"] for o in outs]

    t0 = time.time()
    beams = [[[rng.randrange(1000, V) for _ in range(a.prompt_tokens)]] for _ in range(a.problems)]
    step_p = {"max_new_tokens": a.step_tokens, "temperature": 0.8, "ignore_eos": True}
    probe_p = {"max_new_tokens": a.probe_tokens, "temperature": 0.0, "ignore_eos": True}
    for _ in range(a.steps):
        reqs = [p for prob in beams for p in prob for _ in range(a.expand)]
        owners = [k for k, prob in enumerate(beams) for _ in prob for _ in range(a.expand)]
        cands = [r + o for r, o in zip(reqs, call(reqs, step_p, owners))]
        call([c + cue for c in cands], probe_p, owners)
        new = [[] for _ in beams]
        for o, c in zip(owners, cands):
            new[o].append(c)
        beams = [rng.sample(cs, min(a.beams, len(cs))) for cs in new]
    wall = time.time() - t0
    return dict(wall_s=round(wall, 3), prompt_tokens=st["prompt"], cached_tokens=st["cached"],
                generated_tokens=st["generated"], engine_calls=st["calls"], requests=st["requests"])


def controller(eng, a) -> dict:
    from srca import SearchConfig, Solver

    cfg = SearchConfig(method="srca", n=a.beams * a.expand, beam_width=a.beams, expand=a.expand, max_steps=a.steps,
                       max_step_tokens=a.step_tokens, probe_max_tokens=a.probe_tokens, step_delimiter=NEVER,
                       max_new_tokens=a.steps * a.step_tokens, checkpoints=True, temperature=0.8, top_p=1.0)
    solver = Solver(engine=eng, config=cfg)
    probs = problems(a.problems, a.problem_words)

    async def go():
        t0 = time.time()
        sols = await solver.asolve_many(probs, concurrency=a.problems)
        return time.time() - t0, sols

    wall, sols = asyncio.run(go())
    u = {k: sum(getattr(s.usage, k) for s in sols) for k in
         ("prompt_tokens", "cached_tokens", "generated_tokens", "probe_tokens", "engine_calls", "engine_requests")}
    return dict(wall_s=round(wall, 3), **u)


def child(a, spec: dict) -> None:
    from srca.engines.base import GenRequest
    from srca.engines.sglang_common import ReplicaRouter

    t0 = time.time()
    eng = _engine(a, spec["dp"], spec["radix"])
    start_s = time.time() - t0
    # warm-up: kernels compile on first use (not timed)
    asyncio.run(eng.generate([GenRequest(input_ids=list(range(1000, 1032)), max_new_tokens=4, n=2, temperature=0.8)]))
    for run in spec["runs"]:
        asyncio.run(eng.flush_cache())
        eng.router = ReplicaRouter(spec["dp"], run.get("routing", "affinity"))
        if run["kind"] == "reference":
            res = reference(eng, a, pin=run.get("pin", False))
        else:
            res = controller(eng, a)
        res.update(name=run["name"], kind=run["kind"], dp=spec["dp"], radix=spec["radix"], engine_start_s=round(start_s, 1),
                   cached_share=round(res["cached_tokens"] / max(1, res["prompt_tokens"]), 4),
                   gen_tok_per_s=round(res["generated_tokens"] / max(1e-9, res["wall_s"]), 1))
        if run["kind"] == "controller":
            res["replicas"] = eng.stats()["replicas"]
        print("RESULT " + json.dumps(res), flush=True)
    asyncio.run(eng.close())


# -- parent: run the children, gather, print ---------------------------------------------------

def specs(a) -> list[dict]:
    out = [
        dict(dp=1, radix=True, runs=[dict(name="reference radix=on", kind="reference"),
                                     dict(name="controller radix=on", kind="controller")]),
        dict(dp=1, radix=False, runs=[dict(name="reference radix=off", kind="reference"),
                                      dict(name="controller radix=off", kind="controller")]),
    ]
    if a.dp > 1:
        out.append(dict(dp=a.dp, radix=True, runs=[
            dict(name=f"reference dp={a.dp} round-robin", kind="reference", pin=False),
            dict(name=f"reference dp={a.dp} pinned", kind="reference", pin=True),
            dict(name=f"controller dp={a.dp} round-robin", kind="controller", routing="sglang"),
            dict(name=f"controller dp={a.dp} affinity", kind="controller", routing="affinity"),
        ]))
    return out


def table(rows: list[dict]) -> str:
    ref = {(r["dp"], r["radix"], r["name"].split()[-1] if r["dp"] > 1 else ""): r
           for r in rows if r["kind"] == "reference"}
    base = next((r for r in rows if r["name"] == "controller radix=on"), None)
    lines = [f"{'run':34} {'wall s':>7} {'gen tok/s':>10} {'cached':>7} {'calls':>6} {'ctl/ref':>8} {'vs dp1':>7}"]
    for r in rows:
        ratio = ""
        if r["kind"] == "controller":
            key = (r["dp"], r["radix"], "pinned" if r["name"].endswith("affinity") else "round-robin") if r["dp"] > 1 \
                else (r["dp"], r["radix"], "")
            if key in ref:
                ratio = f"{r['wall_s'] / ref[key]['wall_s']:.2f}x"
        speed = f"{base['wall_s'] / r['wall_s']:.2f}x" if (base and r["kind"] == "controller" and r["dp"] > 1) else ""
        lines.append(f"{r['name']:34} {r['wall_s']:>7.2f} {r['gen_tok_per_s']:>10.0f} {r['cached_share']:>7.1%} "
                     f"{r['engine_calls']:>6} {ratio:>8} {speed:>7}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/sglmodel")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--problem-words", type=int, default=200, help="words per problem (~1.2 tokens each)")
    ap.add_argument("--prompt-tokens", type=int, default=256, help="reference prompt length")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--expand", type=int, default=4)
    ap.add_argument("--step-tokens", type=int, default=64)
    ap.add_argument("--probe-tokens", type=int, default=8)
    ap.add_argument("--mem", type=float, default=0.6)
    ap.add_argument("--cuda-graph", action="store_true")
    ap.add_argument("--dp", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma list of spec indexes to run (debug)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "engine_fanout.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a, json.loads(a.child))
        return
    rows: list[dict] = []
    failures = []
    todo = specs(a)
    if a.only:
        todo = [todo[int(k)] for k in a.only.split(",")]
    argv = [x for x in sys.argv[1:]]
    for spec in todo:
        cmd = [sys.executable, os.path.abspath(__file__), *argv, "--child", json.dumps(spec)]
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        got = [json.loads(line[7:]) for line in p.stdout.splitlines() if line.startswith("RESULT ")]
        rows += got
        print(f"# dp={spec['dp']} radix={spec['radix']}: {len(got)} runs in {time.time() - t0:.0f} s (rc {p.returncode})",
              flush=True)
        if p.returncode != 0 or len(got) != len(spec["runs"]):
            failures.append(dict(spec=spec, rc=p.returncode, tail=p.stdout[-2000:]))
    report = dict(benchmark="engine_fanout", args={k: v for k, v in vars(a).items() if k != "child"},
                  time=time.strftime("%Y-%m-%dT%H:%M:%S"), rows=rows, failures=failures)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print(table(rows))
    print(f"# wrote {a.out}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
