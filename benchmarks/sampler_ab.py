"""srca's sampling kernel against SGLang's FlashInfer sampler on one engine (issue 17 item 3),
called by ``real_workload.py --sampler srca --sampler-ab ROUNDS``.

The engine starts with ``sampling_backend="srca"`` and ``SRCA_SAMPLER_SWITCH`` naming a file
(srca/engines/sglang_sampler.py): writing ``flashinfer`` there hands every decode step back to
SGLang's own sampler, ``srca`` to the kernel, without a restart. So both run on the same engine,
KV pool and CUDA graphs, in alternating order (round r: FlashInfer first when r is even):

* a greedy check: 32 prompts, each as a greedy and a sampled request (the sampled rows keep the
  batch off SGLang's all-greedy argmax), 64 tokens, ``ignore_eos``; the greedy rows' tokens under
  the kernel against FlashInfer's;
* ``raw`` (every prompt x --samples in one call) and each ``--sampler-ab-jobs`` job, each round
  once per sampler: wall, generated tok/s, tokens per sample, accuracy for jobs;
* with ``--sampler-profile N``: the profile under each sampler (GPU kernel time by name).

Per phase the medians per sampler and their ratio (kernel / FlashInfer) go to the JSON key
``sampler_ab`` and a printed table.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Callable

from ab_rounds import print_table as ab_table
from ab_rounds import run_rounds

MODES = ("flashinfer", "srca")


class SwitchFile:
    """The engine's ``SRCA_SAMPLER_SWITCH`` file: create it before the engine starts."""

    def __init__(self, path: str, mode: str = "srca") -> None:
        from srca.engines.sglang_sampler import SWITCH_ENV

        self.path = path
        self.set(mode, wait=False)
        os.environ[SWITCH_ENV] = path  # inherited by SGLang's scheduler process

    def set(self, mode: str, wait: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"sampler mode must be one of {MODES}, got {mode!r}")
        with open(self.path, "w") as f:
            f.write(mode + "\n")
        self.mode = mode
        if wait:
            time.sleep(0.5)  # the sampler rereads the file at most every 0.2 s


def greedy_check(st, ids: list[list[int]], switch: SwitchFile, prompts: int = 32, tokens: int = 64) -> dict:
    """The greedy rows' tokens under each sampler (the same batch both times, the cache flushed
    before each: in the run of 2026-12-03 it was not, the second prefill hit the cache, and 20 of
    32 greedy rows agreed, over 51.7 tokens of 64 on average; flushing is untested on a GPU)."""
    batch, params = [], []
    for x in ids[:prompts]:
        batch += [x, x]
        params += [{"max_new_tokens": tokens, "temperature": 0.0, "ignore_eos": True},
                   {"max_new_tokens": tokens, "temperature": 0.7, "top_p": 0.95, "ignore_eos": True}]
    got = {}
    for mode in MODES:
        switch.set(mode)
        st.flush()  # the same prefill both times: a cached prompt changes the numerics
        coro = st.eng.engine.async_generate(input_ids=batch, sampling_params=params)
        outs = asyncio.run_coroutine_threadsafe(coro, st.eng._loop).result(600)
        got[mode] = [o["output_ids"] for o in outs[0::2]]
    same = sum(a == b for a, b in zip(got["flashinfer"], got["srca"]))
    prefix = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
              for a, b in zip(got["flashinfer"], got["srca"])]
    out = {"greedy_rows": len(prefix), "identical": same, "mean_common_prefix": round(statistics.fmean(prefix), 1),
           "tokens": tokens}
    print(f"# sampler greedy check: {json.dumps(out)}", flush=True)
    return out


def run(a, st, ids: list[list[int]], switch: SwitchFile, phases: dict[str, Callable[[], dict]],
        profile: Callable[[], dict] | None) -> dict:
    """``phases``: name -> a callable that runs it once (on a flushed cache) and returns a row
    with ``wall_s``, ``gen_tok_s``, ``generated_tokens`` and the samples it drew."""
    def variant(mode: str) -> Callable[[], None]:
        def put() -> None:
            switch.set(mode)
            st.flush()
        return put

    try:
        check = greedy_check(st, ids, switch)
    except Exception as e:  # informative; the timed phases still run
        check = {"error": f"{type(e).__name__}: {e}"}
    res = run_rounds(phases, {m: variant(m) for m in MODES}, a.sampler_ab, label="sampler A/B", key="sampler")
    res["greedy_check"] = check
    if profile is not None:
        res["profiles"] = {}
        for mode in MODES:
            switch.set(mode)
            try:
                res["profiles"][mode] = profile()
            except Exception as e:
                res["profiles"][mode] = {"error": f"{type(e).__name__}: {e}"}
    switch.set(a.sampler_ab_then)
    return res


def print_table(ab: dict) -> None:
    ab_table(ab, MODES, "sampler A/B (srca: the kernel)")
    for mode, prof in (ab.get("profiles") or {}).items():
        print(f"profile [{mode}]: GPU kernel {prof.get('gpu_kernel_ms')} ms, wall {prof.get('wall_s')} s, "
              f"sampling {prof.get('sampling_kernel_ms')} ms")
