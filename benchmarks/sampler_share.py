"""What share of SGLang's decode step is sampling? (issue 17 item 3: plug the fan-out kernel into
SGLang only if sampling costs >= 3% of the step.)

Runs a fan-out decode workload on one in-process SGLang engine with SGLang's own torch profiler
(``SGLANG_TORCH_PROFILER_DIR``, ``Engine.start_profile`` / ``stop_profile``), then sums the GPU
kernel time in the trace by kind: sampling (FlashInfer's sampling kernels and the softmax /
top-k / top-p / temperature work around them), everything else.

    python benchmarks/sampler_share.py --model /tmp/q15hf            # the real model
    python benchmarks/sampler_share.py --model /tmp/sglmodel --dummy # Llama-1B shape, no weights

Writes ``--out`` (JSON) and prints a table. Needs a GPU and SGLang. Written against SGLang
0.5.17's ``Engine.start_profile``/``stop_profile``; not yet run to the end on a GPU: on
2026-12-03 the dummy-weight engine was still capturing CUDA graphs when its 150 s ran out (the
prefill graphs, it later turned out: ``--prefill-graph`` now skips them); a later attempt ran
out of 250 s with no line printed, likely writing a CPU trace with stacks (now GPU activity only,
and each phase prints its time). ``benchmarks/real_workload.py --sampler-profile N`` measures the
same share on the real model and prompts, on the engine its jobs ran on.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import time

SAMPLING_KEYS = ("sampling", "topk", "top_k", "topp", "top_p", "softmax", "argmax", "multinomial",
                 "exponential", "renorm", "_fanout_kernel", "_combine_kernel")  # the last two: srca's kernel


def kernel_times(trace_path: str) -> dict[str, float]:
    """Total GPU kernel microseconds by name in one chrome trace."""
    opener = gzip.open if trace_path.endswith(".gz") else open
    with opener(trace_path, "rt") as f:
        data = json.load(f)
    out: dict[str, float] = {}
    for ev in data.get("traceEvents", []):
        if ev.get("ph") == "X" and ev.get("cat") in ("kernel", "gpu_op", "Kernel"):
            out[ev["name"]] = out.get(ev["name"], 0.0) + float(ev.get("dur", 0.0))
    return out


def sampling_summary(traces: list[str]) -> dict:
    """GPU kernel time in ``traces`` summed by name, and the sampling kernels' share of it
    (names holding one of ``SAMPLING_KEYS``)."""
    totals: dict[str, float] = {}
    for p in traces:
        for k, v in kernel_times(p).items():
            totals[k] = totals.get(k, 0.0) + v
    all_us = sum(totals.values())
    samp = {k: v for k, v in totals.items() if any(s in k.lower() for s in SAMPLING_KEYS)}
    samp_us = sum(samp.values())
    top = lambda d, k: sorted(((name[:120], round(v / 1e3, 2)) for name, v in d.items()), key=lambda x: -x[1])[:k]  # noqa: E731
    return {"gpu_kernel_ms": round(all_us / 1e3, 1), "sampling_kernel_ms": round(samp_us / 1e3, 1),
            "sampling_share": round(samp_us / all_us, 4) if all_us else None,
            "top_sampling_kernels": top(samp, 12), "top_kernels": top(totals, 15)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dummy", action="store_true", help="load_format=dummy (random weights)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--backend", default="flashinfer")
    ap.add_argument("--prefill-graph", default="disabled",
                    help="SGLang's prefill CUDA graph backend; disabled by default: capturing it took 62.5 s of the "
                         "1.5B engine's 111 s start on an H200 (real_workload.py), and this measures decode steps")
    ap.add_argument("--prof-dir", default="/tmp/sampler_prof")
    ap.add_argument("--out", default="sampler_share.json")
    a = ap.parse_args()
    os.makedirs(a.prof_dir, exist_ok=True)
    os.environ["SGLANG_TORCH_PROFILER_DIR"] = a.prof_dir
    import sglang

    kw = dict(model_path=a.model, sampling_backend=a.backend, attention_backend="triton", grammar_backend="none",
              mem_fraction_static=0.8, log_level="error", disable_cuda_graph=False,
              cuda_graph_backend_prefill=a.prefill_graph)
    if a.dummy:
        kw["load_format"] = "dummy"
    t0 = time.monotonic()
    eng = sglang.Engine(**kw)
    start_s = time.monotonic() - t0
    ids = [[100 + (i * 7 + j) % 5000 for j in range(256)] for i in range(a.prompts)]
    batch = [x for x in ids for _ in range(a.samples)]
    params = {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": a.new_tokens, "ignore_eos": True}
    eng.generate(input_ids=batch[: 64], sampling_params={**params, "max_new_tokens": 16})  # warm up, JIT
    t = time.monotonic()
    eng.generate(input_ids=batch, sampling_params=params)
    plain_s = time.monotonic() - t
    print(f"# engine ready in {start_s:.1f} s; plain run {plain_s:.2f} s; profiling", flush=True)
    # GPU activity only, no stacks or shapes: a CPU trace with stacks of a thousand rows' decode
    # steps is what the 2026-12-03 attempt was still writing when its 250 s ran out
    eng.start_profile(activities=["GPU"], with_stack=False, record_shapes=False)
    t = time.monotonic()
    eng.generate(input_ids=batch, sampling_params=params)
    prof_s = time.monotonic() - t
    eng.stop_profile()
    print(f"# profiled run {prof_s:.2f} s; reading the traces", flush=True)
    time.sleep(3)
    eng.shutdown()
    traces = sorted(glob.glob(os.path.join(a.prof_dir, "*.json*")))
    res = {"model": a.model, "dummy": a.dummy, "backend": a.backend, "prompts": a.prompts, "samples": a.samples,
           "new_tokens": a.new_tokens, "engine_start_s": round(start_s, 1), "wall_s": round(plain_s, 2),
           "wall_profiled_s": round(prof_s, 2), "traces": traces, **sampling_summary(traces)}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("| rows | new tokens | wall s | GPU kernel ms | sampling ms | sampling share |")
    print(f"| {a.prompts}x{a.samples} | {a.new_tokens} | {plain_s:.2f} | {res['gpu_kernel_ms']} | "
          f"{res['sampling_kernel_ms']} | {100 * (res['sampling_share'] or 0):.2f}% |")
    for k, v in res["top_sampling_kernels"]:
        print(f"  sampling: {v:9.2f} ms  {k}")
    for k, v in res["top_kernels"][:8]:
        print(f"  kernel:   {v:9.2f} ms  {k}")


if __name__ == "__main__":
    main()
