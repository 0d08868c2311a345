"""SGLang-specific GPU checks (dummy weights, ``$SRCA_SGLANG_DUMMY_MODEL``, default /tmp/sglmodel):
abort on cancel, replica affinity with dp > 1, the PRM plumbing (reward head and generative
mode), and tail logprobs scored after sampling against SGLang's decode logprobs. The contract suite on SGLang lives in ``test_engine_contract_sglang.py``."""
from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from srca.engines.base import GenRequest
from srca.scorers import ScoreInput

pytestmark = pytest.mark.gpu
MODEL = os.environ.get("SRCA_SGLANG_DUMMY_MODEL", "/tmp/sglmodel")
ARGS = dict(load_format="dummy", attention_backend="triton", sampling_backend="pytorch", grammar_backend="none",
            disable_cuda_graph=True)


@pytest.fixture(autouse=True)
def _needs_sglang():
    pytest.importorskip("sglang")
    if not os.path.exists(os.path.join(MODEL, "config.json")):
        pytest.skip(f"no model folder at {MODEL}")


def _engine(**kw):
    from srca.engines.sglang_inproc import SGLangEngine

    return SGLangEngine(MODEL, mem_fraction_static=kw.pop("mem", 0.4), **ARGS, **kw)


def test_cancel_aborts_and_groups_stay_on_one_replica():
    import torch

    dp = 2 if torch.cuda.device_count() >= 2 else 1
    eng = _engine(dp_size=dp, ignore_eos=True)
    tm = eng.engine.tokenizer_manager

    async def cancel_long():
        task = asyncio.ensure_future(eng.generate([GenRequest(input_ids=list(range(1000, 1100)), max_new_tokens=3000,
                                                              n=4, temperature=0.8)]))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.time()
        # the scheduler answers each abort: the request finishes (running ones also leave the table)
        while not all(st.finished for st in tm.rid_to_state.values()) and time.time() - t0 < 20:
            await asyncio.sleep(0.1)
        return time.time() - t0

    try:
        waited = asyncio.run(cancel_long())
        assert all(st.finished for st in tm.rid_to_state.values()), "aborted requests are still running"
        assert waited < 20
        # eight solves, three rounds each: every group stays on the replica it started on
        async def rounds():
            for k in range(3):
                reqs = [GenRequest(input_ids=[2000 + g] * 64 + [k], max_new_tokens=8, n=2, temperature=0.8,
                                   group=f"solve{g}") for g in range(8)]
                out = await eng.generate(reqs)
                assert all(len(r) == 2 and r[0].generated_tokens == 8 for r in out)

        before = sum(r["requests"] for r in eng.stats()["replicas"])  # the cancelled request's 4 samples
        asyncio.run(rounds())
        st = eng.stats()["replicas"]
        assert sum(r["requests"] for r in st) - before == 8 * 3 * 2
        assert all(r["requests_in_flight"] == 0 for r in st)
        if dp == 2:
            assert [r["groups"] for r in st] == [4, 4]
            assert sum(r["requests"] for r in st) - before == 48
            assert all(r["cached_tokens"] > 0 for r in st)
    finally:
        asyncio.run(eng.close())


def test_prm_reward_head_plumbing():
    from srca.scorers.prm import PRMScorer

    override = json.dumps({"architectures": ["LlamaForSequenceClassification"], "num_labels": 2})
    prm = PRMScorer(model_path=MODEL, mode="reward", json_model_override_args=override, mem_fraction_static=0.3,
                    load_format="dummy", attention_backend="triton", disable_cuda_graph=True)
    try:
        items = [ScoreInput("What is 1+1?", ["1+1 = 2.\n\n", "So 2."]), ScoreInput("What is 2+2?", ["It is 5."]),
                 ScoreInput("Q", [])]
        s = asyncio.run(prm.score(items))
        assert len(s) == 3 and all(0.0 <= x <= 1.0 for x in s) and s[2] == 0.5
        assert prm.calls == 1
    finally:
        asyncio.run(prm.close())


def test_prm_generative_plumbing():
    from srca.scorers.prm import PRMScorer

    prm = PRMScorer(model_path=MODEL, mode="token", mem_fraction_static=0.3, **ARGS)
    try:
        s = asyncio.run(prm.score([ScoreInput("What is 1+1?", ["1+1 = 2.", "So 2."]),
                                   ScoreInput("What is 1+1?", ["1+1 = 3."])]))
        assert len(s) == 2 and all(0.0 < x < 1.0 for x in s)
    finally:
        asyncio.run(prm.close())


def test_tail_logprobs_rescored_match_greedy_decode_logprobs():
    """The tail scored by a prefill after sampling equals SGLang's own decode logprobs where
    both are the model's untempered ones (greedy decoding), up to bf16 noise, token for token."""
    import math

    eng = _engine()
    try:
        ids = [[100 + 7 * i + j for j in range(24)] for i in range(4)]
        reqs = lambda: [GenRequest(input_ids=x, max_new_tokens=24, temperature=0.0, logprob_tail=24)  # noqa: E731
                        for x in ids]
        eng.tail_logprobs = "inline"
        inline = [rs[0] for rs in asyncio.run(eng.generate(reqs()))]
        eng.tail_logprobs = "rescore"
        scored = [rs[0] for rs in asyncio.run(eng.generate(reqs()))]
        same = [a for a, b in zip(inline, scored) if a.token_ids == b.token_ids]
        assert len(same) >= 2
        for a, b in zip(inline, scored):
            if a.token_ids != b.token_ids:
                continue
            assert len(b.logprobs) == len(b.token_ids) and not any(math.isnan(x) for x in b.logprobs)
            # bf16 logits through two kernels (prefill, decode): a relative tolerance; the token
            # ids the prefill scored are checked against the sample's by the engine itself
            assert all(abs(x - y) <= 0.05 * max(1.0, abs(x)) for x, y in zip(a.logprobs, b.logprobs))
    finally:
        asyncio.run(eng.close())


def test_srca_sampler_backend_serves_sglang():
    """``sampling_backend="srca"`` (srca/engines/sglang_sampler.py) inside SGLang: the plugin
    loads in the scheduler process, sampled batches come back whole with tokens of the
    vocabulary, each request's max_new_tokens honoured, and with logprobs asked the kernel's
    path returns them too. Needs srca installed (the entry point), as the engine says."""
    from srca.engines.sglang_sampler import check_installed

    try:
        check_installed()
    except RuntimeError as e:
        pytest.skip(str(e))
    args = {**ARGS, "sampling_backend": "srca"}
    from srca.engines.sglang_inproc import SGLangEngine

    eng = SGLangEngine(MODEL, mem_fraction_static=0.4, ignore_eos=True, **args)
    try:
        reqs = [GenRequest(input_ids=[300 + i] * 32, max_new_tokens=12 + i, n=4, temperature=0.7, top_p=0.9,
                           logprobs=i % 2 == 1) for i in range(6)]
        out = asyncio.run(eng.generate(reqs))
        vocab = len(eng.tokenizer)
        for i, rs in enumerate(out):
            assert len(rs) == 4 and all(r.generated_tokens == 12 + i for r in rs)
            assert all(0 <= t < max(vocab, 128256) for r in rs for t in r.token_ids)
            if i % 2 == 1:
                assert all(len(r.logprobs) == 12 + i and all(x <= 0.0 for x in r.logprobs) for r in rs)
    finally:
        asyncio.run(eng.close())
