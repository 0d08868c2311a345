"""The SRCA controller over in-process SGLang against the raw batched fan-out it should match.

Workload (the shape of ``../shared/gpu/fanout.py``): ``--problems`` problems, 4 steps, 4 beams
each expanding into 4 candidates of 64 tokens, a greedy 8-token checkpoint probe per candidate.

* **reference**: the fan-out loop written straight against ``sglang.Engine.async_generate``,
  every phase of every problem as one batched call (random ~``--prompt-tokens`` prompts);
* **controller**: ``Solver.asolve_many`` with ``method="srca"``, ``n=16``, ``beam_width=4``,
  ``expand=4``, ``max_steps=4``, ``max_step_tokens=64``, probes on, over :class:`SGLangEngine`.
  Dummy weights emit random tokens, so the shape is forced: a step delimiter that never
  matches (steps end at length), ``max_new_tokens = 4 * 64``, and ``ignore_eos`` where stop
  strings go as strings (with ``stop_mode="tokens"`` SGLang must see EOS, which dummy weights
  sample about once per 10^5 tokens).

Each engine configuration runs in its own process (``--child``); the prefix cache is flushed
between runs. ``--suite ratios`` (one GPU): the reference, the reference with the controller's
extras (logprobs, stop strings), the controller with stop strings and with stop token ids, under
SGLang's pytorch sampler (as ``fanout.py``) and its flashinfer sampler, and radix on/off.
``--suite dp --dp 2,4``: dp=1 and each dp=N engine, the reference unpinned (SGLang's round robin)
and pinned per problem, the controller with ``routing="sglang"`` (round robin) and
``routing="affinity"`` (each solve on one replica). ``--suite http --dp 1,2,4``: dp=1 in process,
then max(N) single-GPU ``sglang.launch_server`` processes (each with its own tokenizer manager,
started once) behind :class:`SGLangServerEngine`, each N on the first N of them, round robin
and affinity across the URLs. ``--suite load --dp 2,4``: one GPU, the controller on
``--problems / N`` problems for each N (the load one replica carries at dp=N with affinity) and
on all of them: ``wall(all) / wall(all / N)`` bounds what dp=N can gain on this workload.
Writes JSON (``--out``) and prints a table with the ratios controller/reference (wall time),
the speed-up over dp=1, and the share of prompt tokens served from the cache.

    python benchmarks/engine_fanout.py --model /tmp/sglmodel --suite ratios
    python benchmarks/engine_fanout.py --model /tmp/sglmodel --suite dp --dp 2,4 --problems 128
    python benchmarks/engine_fanout.py --model /tmp/sglmodel --suite http --dp 1,2,4 --problems 128
    python benchmarks/engine_fanout.py --model /tmp/sglmodel --suite load --dp 2,4 --problems 128
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

def _engine(a, spec: dict):
    from srca.engines.sglang_inproc import SGLangEngine

    return SGLangEngine(a.model, dp_size=spec["dp"], radix_cache=spec["radix"], load_format="dummy",
                        attention_backend="triton", sampling_backend=spec["sampler"], grammar_backend="none",
                        disable_cuda_graph=not a.cuda_graph, mem_fraction_static=a.mem, ignore_eos=True)


def reference(eng, a, pin: bool, extra: str = "") -> dict:
    """The raw fan-out loop of ``fanout.py`` on the engine's SGLang, phase by phase.

    ``extra`` adds what the controller asks of SGLang on top: ``"lp"`` token logprobs,
    ``"lp+stop"`` logprobs and the step delimiter as a stop string (diagnostic rows)."""
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
                                                                     return_logprob=want_lp, routed_dp_rank=r)
                                           for r, idx in groups.items()])
            outs = [None] * len(ids)
            for idx, part in zip(groups.values(), parts):
                for i, o in zip(idx, part):
                    outs[i] = o
            return outs
        return await eng.engine.async_generate(input_ids=ids, sampling_params=params, return_logprob=want_lp)

    want_lp = "lp" in extra

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
    if "stop" in extra:
        step_p["stop"] = [NEVER]
        probe_p["stop"] = ["}\n", "}$", "\n\n"]
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


def controller(eng, a, problems_n: int | None = None) -> dict:
    from srca import SearchConfig, Solver

    cfg = SearchConfig(method="srca", n=a.beams * a.expand, beam_width=a.beams, expand=a.expand, max_steps=a.steps,
                       max_step_tokens=a.step_tokens, probe_max_tokens=a.probe_tokens, step_delimiter=NEVER,
                       max_new_tokens=a.steps * a.step_tokens, checkpoints=True, temperature=0.8, top_p=1.0)
    solver = Solver(engine=eng, config=cfg)
    probs = problems(problems_n or a.problems, a.problem_words)

    async def go():
        t0 = time.time()
        sols = await solver.asolve_many(probs, concurrency=len(probs))
        return time.time() - t0, sols

    wall, sols = asyncio.run(go())
    u = {k: sum(getattr(s.usage, k) for s in sols) for k in
         ("prompt_tokens", "cached_tokens", "generated_tokens", "probe_tokens", "engine_calls", "engine_requests")}
    return dict(wall_s=round(wall, 3), **u)


def _servers(a, spec: dict):
    """``spec["dp"]`` single-GPU SGLang servers (one per GPU, each with its own tokenizer
    manager) and an :class:`SGLangServerEngine` over all of them; returns (engine, stop)."""
    from srca.engines.sglang_http import SGLangServerEngine
    from srca.engines.sglang_launch import ServerGroup, ServerLaunch

    flags = ["--load-format", "dummy", "--attention-backend", "triton", "--sampling-backend", spec["sampler"],
             "--grammar-backend", "none", "--log-level", "error"]
    if not a.cuda_graph:
        flags.append("--disable-cuda-graph")
    if not spec["radix"]:
        flags.append("--disable-radix-cache")
    # one per GPU, all at once; SGLang's own graphs and collector, as these rows always ran
    group = ServerGroup(ServerLaunch(model=a.model, replicas=spec["dp"], gpus=tuple(range(spec["dp"])),
                                     mem_fraction=a.mem, port=31000, decode_graph_max_bs=None, prefill_graph=None,
                                     gc_threshold=None, extra_args=tuple(flags), start_timeout_s=600.0))
    urls = group.start()
    return SGLangServerEngine(urls, max_connections=4096), group.stop


def child(a, spec: dict) -> None:
    from srca.engines.base import GenRequest
    from srca.engines.sglang_common import ReplicaRouter

    t0 = time.time()
    stop_servers = None
    if spec.get("http"):
        eng, stop_servers = _servers(a, spec)
    else:
        eng = _engine(a, spec)
    start_s = time.time() - t0
    # warm-up: kernels compile on first use (not timed)
    asyncio.run(eng.generate([GenRequest(input_ids=list(range(1000, 1032)), max_new_tokens=4, n=2, temperature=0.8)]))
    # and the controller's one-time costs (math-verify import, stop-token tables), not timed
    from srca import SearchConfig, Solver

    for mode in ("strings", "tokens"):
        eng.stop_mode = mode
        Solver(engine=eng, config=SearchConfig(method="srca", n=2, beam_width=1, expand=2, max_steps=1, max_step_tokens=8,
                                               probe_max_tokens=4, step_delimiter=NEVER, max_new_tokens=8)).solve("2+2?")
    all_urls = list(getattr(eng, "urls", []))
    for run in spec["runs"]:
        dp = run.get("dp", spec["dp"])
        if spec.get("http"):  # the servers started once; this run uses the first dp of them
            eng.urls = all_urls[:dp]
        if spec.get("http"):
            eng.batch = run.get("batch", True)  # False: one HTTP request per sample (diagnostic row)
        asyncio.run(eng.flush_cache())
        eng.router = ReplicaRouter(dp, run.get("routing", "affinity"))
        # stop strings as token ids only work without ignore_eos (SGLang then skips token stops);
        # dummy weights hit EOS about once per 10^5 tokens, so the shape barely moves
        eng.stop_mode = run.get("stop_mode", "strings")
        eng.ignore_eos = eng.stop_mode == "strings"
        if run["kind"] == "reference":
            res = reference(eng, a, pin=run.get("pin", False), extra=run.get("extra", ""))
        else:
            res = controller(eng, a, run.get("problems"))
        res.update(problems=run.get("problems", a.problems), name=run["name"], kind=run["kind"], dp=dp,
                   radix=spec["radix"], sampler=spec["sampler"],
                   stop_mode=eng.stop_mode if run["kind"] == "controller" else None, extra=run.get("extra", ""),
                   http=bool(spec.get("http")), engine_start_s=round(start_s, 1),
                   cached_share=round(res["cached_tokens"] / max(1, res["prompt_tokens"]), 4),
                   gen_tok_per_s=round(res["generated_tokens"] / max(1e-9, res["wall_s"]), 1))
        if run["kind"] == "controller":
            res["replicas"] = eng.stats()["replicas"]
        print("RESULT " + json.dumps(res), flush=True)
    asyncio.run(eng.close())
    if stop_servers is not None:
        stop_servers()


# -- parent: run the children, gather, print ---------------------------------------------------

def specs(a) -> list[dict]:
    """``--suite ratios``: the controller against the reference on one GPU, with SGLang's pytorch
    sampler (as ``fanout.py``) and its flashinfer sampler, and with the radix cache off.
    ``--suite dp``: dp=1 and each dp=N of ``--dp``, round robin and per-solve affinity.
    ``--suite http``: dp=1 in process (not with ``--http-only``), then N single-GPU servers behind
    the HTTP engine (``--per-sample``: and dp=1 with one HTTP request per sample).
    ``--suite load``: one GPU, the controller on ``problems / N`` problems for each N, then all."""
    ctl = lambda name, **kw: dict(name=name, kind="controller", **kw)  # noqa: E731
    ref = lambda name, **kw: dict(name=name, kind="reference", **kw)  # noqa: E731
    if a.suite == "ratios":
        return [
            dict(dp=1, radix=True, sampler="pytorch", runs=[
                ref("reference"), ref("reference +logprobs", extra="lp"),
                ref("reference +logprobs +stop strings", extra="lp+stop"),
                ctl("controller stop strings", stop_mode="strings"), ctl("controller stop tokens", stop_mode="tokens")]),
            dict(dp=1, radix=True, sampler="flashinfer", runs=[
                ref("reference"), ctl("controller stop strings", stop_mode="strings"),
                ctl("controller stop tokens", stop_mode="tokens")]),
            dict(dp=1, radix=False, sampler="pytorch", runs=[
                ref("reference radix=off"), ctl("controller radix=off", stop_mode="tokens")]),
        ]
    if a.suite == "load":
        sizes = sorted({max(1, a.problems // n) for n in a.dp if n > 1}) + [a.problems]
        return [dict(dp=1, radix=True, sampler=a.sampler, runs=[
            ctl(f"controller {m} problems", stop_mode="tokens", problems=m) for m in sizes])]
    out = [dict(dp=1, radix=True, sampler=a.sampler, runs=[ref("reference"), ctl("controller", stop_mode="tokens")])]
    if a.suite == "http":  # one server per GPU, started once; each dp uses the first dp of them
        runs = []
        for n in a.dp:
            if n > 1:
                runs.append(ctl("controller http round-robin", routing="round_robin", stop_mode="tokens", dp=n))
            runs.append(ctl("controller http affinity", routing="affinity", stop_mode="tokens", dp=n))
        if 1 in a.dp and a.per_sample:  # what batching per replica buys, same run: one request per sample
            runs.insert(1, ctl("controller http per-sample", routing="affinity", stop_mode="tokens", dp=1, batch=False))
        out.append(dict(dp=max(a.dp), radix=True, sampler=a.sampler, http=True, runs=runs))
        if a.http_only:  # without the in-process dp=1 engine (its start and runs)
            out = out[1:]
        if a.no_reference:
            for spec in out:
                spec["runs"] = [r for r in spec["runs"] if r["kind"] == "controller"]
        return out
    for n in a.dp:
        out.append(dict(dp=n, radix=True, sampler=a.sampler, runs=[
            ref("reference round-robin", pin=False), ref("reference pinned", pin=True),
            ctl("controller round-robin", routing="sglang", stop_mode="tokens"),
            ctl("controller affinity", routing="affinity", stop_mode="tokens")]))
    if a.no_reference:  # the controller rows only (large --problems: halves the run)
        for spec in out:
            spec["runs"] = [r for r in spec["runs"] if r["kind"] == "controller"]
    return out


def table(rows: list[dict]) -> str:
    """One line per run; ``ctl/ref``: wall time over the plain reference of the same engine
    (dp=N: the pinned reference for affinity, the round-robin one otherwise); ``vs dp1``:
    speed-up over the dp=1 controller with the same sampler (for HTTP runs: over one server behind
    the HTTP engine when measured; that row itself: over dp=1 in process)."""
    def same_engine(r, q):
        return (r["dp"], r["radix"], r["sampler"]) == (q["dp"], q["radix"], q["sampler"])

    lines = [f"{'dp':>2} {'sampler':10} {'run':36} {'wall s':>7} {'gen tok/s':>10} {'cached':>7} {'calls':>6} "
             f"{'ctl/ref':>8} {'vs dp1':>7}"]
    for r in rows:
        ratio = speed = ""
        if r["kind"] == "controller":
            want = ("pinned" if "affinity" in r["name"] else "round-robin") if r["dp"] > 1 else None
            refs = [q for q in rows if q["kind"] == "reference" and same_engine(r, q) and not q.get("extra")
                    and (want is None or q["name"].endswith(want))]
            if refs:
                ratio = f"{r['wall_s'] / refs[0]['wall_s']:.2f}x"
            base = [q for q in rows if q["kind"] == "controller" and q["dp"] == 1 and q["radix"]
                    and q["sampler"] == r["sampler"] and q.get("stop_mode") == r.get("stop_mode")
                    and q.get("problems") == r.get("problems")]
            # over HTTP, against one server over HTTP when that was measured (same client path)
            base = sorted(base, key=lambda q: q.get("http", False) != r.get("http", False))
            base = [q for q in base if q is not r and (r["dp"] > 1 or (r.get("http") and not q.get("http")))]
            if base:
                speed = f"{base[0]['wall_s'] / r['wall_s']:.2f}x"
        lines.append(f"{r['dp']:>2} {r['sampler']:10} {r['name']:36} {r['wall_s']:>7.2f} {r['gen_tok_per_s']:>10.0f} "
                     f"{r['cached_share']:>7.1%} {r['engine_calls']:>6} {ratio:>8} {speed:>7}")
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
    ap.add_argument("--suite", choices=["ratios", "dp", "http", "load"], default="ratios")
    ap.add_argument("--dp", type=lambda v: [int(x) for x in v.split(",")], default=[2],
                    help="replica counts for --suite dp, e.g. 2,4")
    ap.add_argument("--sampler", default="flashinfer", help="SGLang sampling backend for --suite dp")
    ap.add_argument("--no-reference", action="store_true", help="--suite dp/http: skip the raw reference runs")
    ap.add_argument("--http-only", action="store_true", help="--suite http: skip the in-process dp=1 engine")
    ap.add_argument("--per-sample", action="store_true",
                    help="--suite http with dp 1: add the one-request-per-sample diagnostic row (slow)")
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
        got, lines = [], []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
            for line in p.stdout:  # each run's row as it comes (progress in the log)
                lines.append(line)
                if line.startswith("RESULT "):
                    print(line, end="", flush=True)  # kept in the log even if the run ends early
                    got.append(json.loads(line[7:]))
                    print(f"# {got[-1]['name']} dp={got[-1]['dp']}: {got[-1]['wall_s']} s, "
                          f"{got[-1]['cached_share']:.1%} cached", flush=True)
        rows += got
        print(f"# dp={spec['dp']} radix={spec['radix']}: {len(got)} runs in {time.time() - t0:.0f} s (rc {p.returncode})",
              flush=True)
        if p.returncode != 0 or len(got) != len(spec["runs"]):
            failures.append(dict(spec=spec, rc=p.returncode, tail="".join(lines)[-2000:]))
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30).stdout.split("\n")
        device = f"{sum(1 for g in gpus if g.strip())}x {gpus[0].strip()}"
    except (OSError, subprocess.SubprocessError):
        device = "unknown"
    report = dict(benchmark="engine_fanout", device=device, visible=os.environ.get("CUDA_VISIBLE_DEVICES", "all"),
                  args={k: v for k, v in vars(a).items() if k != "child"},
                  time=time.strftime("%Y-%m-%dT%H:%M:%S"), rows=rows, failures=failures)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print(table(rows))
    if a.suite == "load":  # what dp=N could gain at best: one GPU's time for all over its time for 1/N
        full = [r for r in rows if r["problems"] == a.problems]
        for r in rows:
            if full and r["problems"] < a.problems:
                print(f"# dp={a.problems // r['problems']} bound: {full[0]['wall_s'] / r['wall_s']:.2f}x "
                      f"(one GPU, {a.problems} problems {full[0]['wall_s']:.2f} s, {r['problems']} problems "
                      f"{r['wall_s']:.2f} s)")
    print(f"# wrote {a.out}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
