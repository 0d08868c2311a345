"""A quick GPU check of ``sampling_backend="srca"`` (srca/engines/sglang_sampler.py) before a
long run: one in-process SGLang engine (the bundle's dummy-weight model by default, no prefill
graphs), the greedy check of ``sampler_ab.py`` (greedy rows under the kernel and FlashInfer),
then one sampled batch per sampler, timed. Needs srca installed (``pip install -e .``: SGLang
finds the sampler through its entry point) and SGLang.

    python benchmarks/sampler_smoke.py                       # /tmp/sglmodel, dummy weights
    python benchmarks/sampler_smoke.py --model /tmp/q15hf --real
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sampler_ab import MODES, SwitchFile, greedy_check  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="/tmp/sglmodel")
    ap.add_argument("--real", action="store_true", help="real weights (default: load_format=dummy)")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--work-dir", default="/tmp/sampler_smoke")
    a = ap.parse_args()
    os.makedirs(a.work_dir, exist_ok=True)
    switch = SwitchFile(os.path.join(a.work_dir, "switch"), "srca")
    from srca.engines.sglang_inproc import SGLangEngine

    t = time.monotonic()
    eng = SGLangEngine(a.model, sampling_backend="srca", mem_fraction_static=0.6, grammar_backend="none",
                       load_format=None if a.real else "dummy", cuda_graph_backend_prefill="disabled",
                       decode_graph_max_bs=a.rows)
    print(f"# engine ready in {time.monotonic() - t:.1f} s", flush=True)
    st = types.SimpleNamespace(eng=eng, flush=lambda: asyncio.run(eng.flush_cache()))
    out = {"greedy_check": greedy_check(st, [list(range(100 + i, 164 + i)) for i in range(32)], switch)}
    batch = [list(range(200 + i % 64, 264 + i % 64)) for i in range(a.rows)]
    params = {"max_new_tokens": a.tokens, "temperature": 0.7, "top_p": 0.95, "ignore_eos": True}
    for mode in MODES + MODES:
        switch.set(mode)
        t = time.monotonic()
        outs = asyncio.run_coroutine_threadsafe(eng.engine.async_generate(input_ids=batch, sampling_params=params),
                                                eng._loop).result(600)
        wall = time.monotonic() - t
        ids = [x for o in outs for x in o["output_ids"]]
        row = {"wall_s": round(wall, 3), "tokens": len(ids), "distinct": len(set(ids)), "max_id": max(ids)}
        out.setdefault(mode, []).append(row)
        print(f"# {mode}: {json.dumps(row)}", flush=True)
    asyncio.run(eng.close())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
