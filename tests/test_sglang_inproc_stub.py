"""SGLangEngine on CPU with a stand-in ``sglang`` module: the contract suite and the engine's own
logic (replica affinity through ``routed_dp_rank``, abort by rid on cancel, any-loop use).

The stand-in ``sglang.Engine.async_generate`` answers like SGLang 0.5.x (batched ``input_ids``,
per-request ``sampling_params``/``return_logprob``/``top_logprobs_num``/``rid``,
``routed_dp_rank``) from the contract's scripted model; it binds to the first event loop that
calls it, as SGLang's tokenizer manager does, so the engine's private loop is exercised too.
"""
from __future__ import annotations

import asyncio
import dataclasses
import sys
import types

import pytest

from engine_contract import *  # noqa: F401,F403  (the contract tests, collected here)
from fake_sglang_server import State, prefill_lp as _prefill_lp, prefill_only, prefill_top, run_script
from srca.engines import gc_probe
from srca.engines.base import GenRequest


class _TokenizerManager:
    def __init__(self) -> None:
        self.aborted: list[str] = []
        self.rid_to_state: dict = {}
        self.waiters: dict[str, asyncio.Event] = {}

    def abort_request(self, rid: str = "", abort_all: bool = False) -> None:
        self.aborted.append(rid)
        self.waiters.setdefault(rid, asyncio.Event()).set()  # also one not waiting yet (SGLang: registered)

    async def flush_cache(self):
        return types.SimpleNamespace(success=True)

    async def freeze_gc(self):  # SGLang's: freezes its processes' GC and this one's (not here)
        self.frozen = getattr(self, "frozen", 0) + 1


class _StubEngine:
    def __init__(self, **kwargs) -> None:
        from test_engine_contract import _script

        self.kwargs = kwargs
        self.state = State(script=_script)
        self.tokenizer_manager = _TokenizerManager()
        self.calls: list[dict] = []
        self.loop = None

    async def async_generate(self, input_ids=None, sampling_params=None, return_logprob=False, top_logprobs_num=None,
                             rid=None, routed_dp_rank=None, logprob_start_len=None, **_):
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        assert loop is self.loop, "SGLang's tokenizer manager only works on the first loop that used it"
        dp = self.kwargs.get("dp_size", 1)
        if routed_dp_rank is not None and not 0 <= routed_dp_rank < dp:
            raise ValueError(f"routed_dp_rank={routed_dp_rank} out of range [0, {dp})")
        self.calls.append(dict(n=len(input_ids), routed_dp_rank=routed_dp_rank, rids=list(rid), ids=input_ids,
                               params=sampling_params, return_logprob=return_logprob,
                               logprob_start_len=logprob_start_len))
        await asyncio.sleep(0.001)
        if all(p.get("max_new_tokens") == 0 for p in sampling_params):  # prefill-only scoring, as SGLang
            return [prefill_only(ids, s, k) for ids, s, k in zip(input_ids, logprob_start_len, top_logprobs_num)]
        outs = []
        for ids, p, lp, k, r in zip(input_ids, sampling_params, return_logprob, top_logprobs_num, rid):
            aborted = False
            if ids[0] == 7:  # a "long" request: runs until aborted
                ev = self.tokenizer_manager.waiters.setdefault(r, asyncio.Event())
                await ev.wait()
                aborted = True
            o = run_script(self.state, ids, p, lp, k)
            o["meta_info"]["id"] = r
            if aborted:  # as SGLang answers a user abort: the tokens so far (2 here), finish_reason abort
                o["output_ids"] = o["output_ids"][:2]
                o["text"] = "".join(chr(t) for t in o["output_ids"])
                o["meta_info"].update(finish_reason={"type": "abort", "message": "Abort in waiting queue"},
                                      completion_tokens=len(o["output_ids"]))
                for key in ("output_token_logprobs", "output_top_logprobs"):
                    if key in o["meta_info"]:
                        o["meta_info"][key] = o["meta_info"][key][:2]
            outs.append(o)
        return outs

    def shutdown(self) -> None:
        pass


class _CharTokenizer:
    chat_template = None

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)

    def batch_decode(self, seqs, skip_special_tokens=False):
        return [self.decode(s) for s in seqs]

    def __len__(self):
        return 0x250  # Latin: every character the contract's texts use


@dataclasses.dataclass
class _ServerArgs:  # the graph fields of SGLang 0.5.17's ServerArgs
    model_path: str = ""
    cuda_graph_bs_decode: list | None = None
    cuda_graph_max_bs_decode: int | None = None
    cuda_graph_backend_prefill: str | None = None
    max_running_requests: int | None = None
    gc_threshold: list | None = None


@pytest.fixture(scope="module")
def stub_sglang():
    import transformers

    mod = types.ModuleType("sglang")
    mod.Engine = _StubEngine
    names = ("sglang", "sglang.srt", "sglang.srt.server_args")
    saved = {k: sys.modules.get(k) for k in names}
    srt, args = types.ModuleType("sglang.srt"), types.ModuleType("sglang.srt.server_args")
    args.ServerArgs = _ServerArgs
    mod.srt, srt.server_args = srt, args
    sys.modules.update(zip(names, (mod, srt, args)))
    orig = transformers.AutoTokenizer.from_pretrained
    transformers.AutoTokenizer.from_pretrained = staticmethod(lambda *a, **k: _CharTokenizer())
    with pytest.MonkeyPatch.context() as mp:  # the engines name the scheduler's gc thresholds in os.environ
        mp.delenv(gc_probe.THRESHOLD_ENV, raising=False)
        yield
    transformers.AutoTokenizer.from_pretrained = orig
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def _make(**kw):
    from srca.engines.sglang_inproc import SGLangEngine

    kw.setdefault("warmup", False)  # the tests count SGLang calls; test_warm_up_* turn it on
    return SGLangEngine("/nonexistent/model", **kw)


@pytest.fixture(scope="module")
def engine(stub_sglang):
    eng = _make()
    yield eng
    asyncio.run(eng.close())


def test_server_args_passthrough(stub_sglang):
    eng = _make(dp_size=2, radix_cache=False, load_format="dummy", mem_fraction_static=0.5, deterministic=True,
                disable_cuda_graph=True, decode_graph_max_bs=4096)
    kw = eng.engine.kwargs
    assert kw["dp_size"] == 2 and kw["disable_radix_cache"] is True and kw["load_format"] == "dummy"
    assert kw["attention_backend"] == "triton" and kw["enable_deterministic_inference"] is True
    assert kw["disable_cuda_graph"] is True and kw["mem_fraction_static"] == 0.5
    assert not eng.info.reports_cached_tokens
    assert "cuda_graph_bs_decode" not in kw  # the caller's graph option wins
    asyncio.run(eng.close())


def test_gc_frozen_once_the_engine_is_up(stub_sglang):
    eng = _make()
    assert eng.engine.tokenizer_manager.frozen == 1
    asyncio.run(eng.close())
    eng = _make(freeze_gc=False)
    assert not hasattr(eng.engine.tokenizer_manager, "frozen")
    asyncio.run(eng.close())


def test_gc_thresholds_reach_this_process_and_the_scheduler(stub_sglang, monkeypatch):
    """SGLang's gc_threshold for the process that starts it; SRCA_SGLANG_GC_THRESHOLD, which srca's
    plugin reads in SGLang's scheduler, for the rest; a threshold already in the environment wins."""
    import os

    def kwargs(**kw):
        eng = _make(**kw)
        asyncio.run(eng.close())
        return eng.engine.kwargs

    monkeypatch.delenv(gc_probe.THRESHOLD_ENV, raising=False)
    assert kwargs()["gc_threshold"] == [50000, 20, 100] == list(gc_probe.DEFAULT_THRESHOLD)
    assert os.environ[gc_probe.THRESHOLD_ENV] == "50000,20,100"
    monkeypatch.setenv(gc_probe.THRESHOLD_ENV, "9000")  # the user's own, for the scheduler
    assert kwargs(gc_threshold="1000,5")["gc_threshold"] == [1000, 5]
    assert os.environ[gc_probe.THRESHOLD_ENV] == "9000"
    monkeypatch.delenv(gc_probe.THRESHOLD_ENV)
    assert "gc_threshold" not in kwargs(gc_threshold=None)  # Python's defaults everywhere
    assert gc_probe.THRESHOLD_ENV not in os.environ
    with pytest.raises(ValueError, match="SGLangEngine.gc_threshold"):
        _make(gc_threshold=[0, 10])
    with pytest.raises(TypeError, match="SGLangEngine.gc_threshold"):
        _make(gc_threshold=1.5)
    assert gc_probe.THRESHOLD_ENV not in os.environ  # a rejected value names nothing
    from srca.engines import sglang_inproc

    monkeypatch.setattr(sglang_inproc, "server_arg_fields", lambda: {"model_path"})  # an SGLang without the field
    assert "gc_threshold" not in kwargs() and os.environ[gc_probe.THRESHOLD_ENV] == "50000,20,100"


def test_gc_freeze_that_fails_still_gives_an_engine(stub_sglang, monkeypatch, caplog):
    async def broken(self):
        raise RuntimeError("no scheduler")

    monkeypatch.setattr(_TokenizerManager, "freeze_gc", broken)
    eng = _make()
    assert "freeze_gc failed (RuntimeError: no scheduler)" in caplog.text
    out = asyncio.run(eng.generate([GenRequest(prompt="solve 1 step 0", n=1, max_new_tokens=3)]))
    assert len(out) == 1 and len(out[0]) == 1
    asyncio.run(eng.close())


def test_decode_graphs_cover_the_running_batch(stub_sglang):
    from srca.engines.sglang_graphs import DECODE_GRAPH_MAX_BS

    def kwargs(**kw):
        eng = _make(**kw)
        asyncio.run(eng.close())
        return eng.engine.kwargs

    from srca.engines import sglang_graphs

    with pytest.MonkeyPatch.context() as mp:  # "auto" by the GPU's memory (nvidia-smi's MiB)
        for mb, want in ((143771.0, DECODE_GRAPH_MAX_BS), (46068.0, 1024), (24564.0, None), (None, None)):
            mp.setattr(sglang_graphs, "gpu_memory_mb", lambda mb=mb: mb)
            kw = kwargs()
            assert kw.get("cuda_graph_max_bs_decode") == want, mb
            assert (kw["cuda_graph_bs_decode"][-1] == want) if want else "cuda_graph_bs_decode" not in kw
    kw = kwargs(decode_graph_max_bs=DECODE_GRAPH_MAX_BS)
    assert kw["cuda_graph_max_bs_decode"] == DECODE_GRAPH_MAX_BS == kw["cuda_graph_bs_decode"][-1]
    kw = kwargs(decode_graph_max_bs=4096, max_running_requests=600)  # the list stops at SGLang's request cap
    assert kw["cuda_graph_bs_decode"][-2:] == [512, 600] and kw["cuda_graph_max_bs_decode"] == 600
    kw = kwargs(decode_graph_max_bs=None)
    assert "cuda_graph_bs_decode" not in kw and "cuda_graph_max_bs_decode" not in kw
    assert kwargs(decode_graph_max_bs=4096, cuda_graph_max_bs_decode=128)["cuda_graph_max_bs_decode"] == 128
    for bad in (0, "big", 2.5):
        with pytest.raises(ValueError, match="decode_graph_max_bs"):
            _make(decode_graph_max_bs=bad)


def test_prefill_graphs_are_off_unless_asked(stub_sglang):
    def kwargs(**kw):
        eng = _make(**kw)
        asyncio.run(eng.close())
        return eng.engine.kwargs

    assert kwargs()["cuda_graph_backend_prefill"] == "disabled"
    assert "cuda_graph_backend_prefill" not in kwargs(prefill_graph=None)  # SGLang's default
    assert kwargs(prefill_graph="breakable")["cuda_graph_backend_prefill"] == "breakable"
    assert kwargs(cuda_graph_backend_prefill="full")["cuda_graph_backend_prefill"] == "full"  # server_args win
    with pytest.raises(ValueError, match="prefill_graph"):
        _make(prefill_graph="off")


def test_affinity_routes_groups_with_routed_dp_rank(stub_sglang):
    eng = _make(dp_size=2)

    async def rounds():
        for k in range(3):
            await eng.generate([GenRequest(prompt=f"solve {g} step {k}", group=f"s{g}", n=2, max_new_tokens=3)
                                for g in range(4)])
        await eng.generate([GenRequest(prompt="free", max_new_tokens=2)])  # no group: least loaded

    asyncio.run(rounds())
    placed: dict[str, set] = {}
    for c in eng.engine.calls:
        for ids in c["ids"]:
            text = "".join(chr(i) for i in ids)
            if text.startswith("solve"):
                placed.setdefault(text.split()[1], set()).add(c["routed_dp_rank"])
    assert all(len(r) == 1 for r in placed.values())
    assert sorted(next(iter(r)) for r in placed.values()) == [0, 0, 1, 1]
    st = eng.stats()
    assert [r["groups"] for r in st["replicas"]] == [2, 2]
    assert sum(r["requests"] for r in st["replicas"]) == 4 * 3 * 2 + 1
    assert all(r["tokens_in_flight"] == 0 for r in st["replicas"])
    # the engine keeps working from a second event loop (SGLang stays on the private one)
    [[g]] = asyncio.run(eng.generate([GenRequest(prompt="again", max_new_tokens=2)]))
    assert g.generated_tokens == 2
    asyncio.run(eng.close())


def test_round_robin_ignores_groups(stub_sglang):
    eng = _make(dp_size=2, routing="round_robin")
    asyncio.run(eng.generate([GenRequest(prompt=f"p{k}", group="same", max_new_tokens=2) for k in range(4)]))
    assert sorted(c["routed_dp_rank"] for c in eng.engine.calls) == [0, 1]
    asyncio.run(eng.close())


def test_cancel_aborts_by_rid(stub_sglang):
    eng = _make()

    async def go():
        task = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[7, 1, 2], n=3, max_new_tokens=5)]))
        while not eng.engine.calls:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if len(eng.engine.tokenizer_manager.aborted) >= 3:
                break
            await asyncio.sleep(0.005)

    asyncio.run(go())
    assert sorted(eng.engine.tokenizer_manager.aborted) == sorted(eng.engine.calls[0]["rids"])
    assert eng.stats()["replicas"][0]["requests_in_flight"] == 0
    asyncio.run(eng.close())


def test_abort_by_group_returns_the_tokens_so_far(stub_sglang):
    """abort(group) ends one solve's requests without cancelling the call: it returns each with
    what SGLang generated before the abort (finish_reason abort), so a deadline stop counts
    them; the other group's request is not touched."""
    eng = _make()

    async def go():
        mine = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[7, 1, 2], n=3, max_new_tokens=5,
                                                              group="solve-a")]))
        other = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[7, 3], n=1, max_new_tokens=5,
                                                               group="solve-b")]))
        while len(eng.engine.calls) < 2:
            await asyncio.sleep(0.005)
        eng.abort("solve-a")
        (got,) = await asyncio.wait_for(mine, 5)
        assert not other.done()
        eng.abort("solve-b")
        (rest,) = await asyncio.wait_for(other, 5)
        return got, rest

    got, rest = asyncio.run(go())
    a_rids = next(c["rids"] for c in eng.engine.calls if len(c["rids"]) == 3)
    assert sorted(eng.engine.tokenizer_manager.aborted[:3]) == sorted(a_rids)
    assert [r.finish_reason for r in got] == ["abort"] * 3 and [r.generated_tokens for r in got] == [2, 2, 2]
    assert [len(r.token_ids) for r in got] == [2, 2, 2] and rest[0].finish_reason == "abort"
    assert len(eng._in_flight) == 0  # nothing left registered
    eng.abort("solve-a")  # nothing in flight: nothing happens
    asyncio.run(eng.close())


def test_deadline_stop_counts_what_sglang_generated(stub_sglang):
    """A solve whose deadline passes mid-call: the search aborts its group and its usage holds
    the tokens the aborted requests had generated (SearchContext._abort)."""
    from srca import SearchConfig, Solver

    eng = _make()
    solver = Solver(engine=eng, answer_workers=0)
    eng.encode = lambda text: [7] + [ord(c) for c in text]  # every request "long": it runs until aborted
    sol = solver.solve("anything", SearchConfig(method="majority", n=2, max_new_tokens=5, deadline_s=0.3))
    assert sol.stop_reason == "deadline"
    assert sol.usage.generated_tokens == 4  # two samples, 2 tokens each before the abort
    asyncio.run(eng.close())


def test_stop_modes_agree(stub_sglang):
    """Stop strings sent as ``stop_token_ids`` (default) or as strings: the same results."""
    from engine_contract import COUNT

    eng = _make()
    reqs = lambda: [GenRequest(prompt=COUNT, max_new_tokens=40, stop=("9", "8")),  # noqa: E731
                    GenRequest(prompt=COUNT, max_new_tokens=40, stop=("9, 1",)),  # spans tokens
                    GenRequest(prompt=COUNT, max_new_tokens=6, stop=("@@never@@",))]
    by_tokens = asyncio.run(eng.generate(reqs()))
    sent = eng.engine.calls[-1]["params"]
    assert "stop" not in sent[0] and sorted(sent[0]["stop_token_ids"]) == [ord("8"), ord("9")]
    assert "stop_token_ids" not in sent[1] and "stop" not in sent[1]
    eng.stop_mode = "strings"
    by_strings = asyncio.run(eng.generate(reqs()))
    assert eng.engine.calls[-1]["params"][1]["stop"] == ["9, 1"]
    for (a,), (b,) in zip(by_tokens, by_strings):
        assert (a.text, a.token_ids, a.finish_reason, a.stop_str) == (b.text, b.token_ids, b.finish_reason, b.stop_str)
    assert by_tokens[0][0].stop_str == "8" and by_tokens[1][0].text.endswith("9, 1")
    with pytest.raises(ValueError, match="stop_mode"):
        _make(stop_mode="regex")
    asyncio.run(eng.close())


def test_tail_logprobs_scored_by_a_prefill_after_sampling(stub_sglang):
    """A request that reads only its last ``logprob_tail`` logprobs is sampled without
    ``return_logprob``; one prefill-only request per sample then scores prompt + sample from one
    token before the tail (SGLang gives None for the first position); the rest is NaN."""
    import math

    from engine_contract import COUNT

    eng = _make()
    [[a, b]] = asyncio.run(eng.generate([GenRequest(prompt=COUNT, n=2, max_new_tokens=12, temperature=0.7,
                                                    logprob_tail=5)]))
    gen, score = eng.engine.calls[-2:]
    assert gen["return_logprob"] == [False, False]
    assert score["params"] == [{"max_new_tokens": 0}] * 2 and score["return_logprob"] == [True, True]
    prompt = [ord(c) for c in COUNT]
    for r, ids, start in zip((a, b), score["ids"], score["logprob_start_len"]):
        assert len(r.token_ids) == 12 and ids == prompt + r.token_ids and start == len(ids) - 5 - 1
        assert len(r.logprobs) == 12 and all(math.isnan(x) for x in r.logprobs[:7])
        assert r.logprobs[7:] == [_prefill_lp(t) for t in r.token_ids[7:]]
        # the scoring prefill counts as engine work: prompt + sample, all but its last 6 cached
        assert r.prompt_tokens == 2 * len(prompt) + 12 and r.cached_tokens >= len(prompt) + 12 - 6
    # a tail longer than the sample scores it all; inline mode and top-k requests never rescore
    [[c]] = asyncio.run(eng.generate([GenRequest(prompt=COUNT, max_new_tokens=3, logprob_tail=64)]))
    assert eng.engine.calls[-1]["logprob_start_len"] == [len(prompt) - 1]
    assert c.logprobs == [_prefill_lp(t) for t in c.token_ids]
    # with top-k too (DeepConf's confidence): the tail's alternatives come from the same prefill
    [[t]] = asyncio.run(eng.generate([GenRequest(prompt=COUNT, max_new_tokens=6, logprob_tail=2, top_logprobs=3,
                                                 top_logprobs_steps=6)]))
    assert eng.engine.calls[-2]["return_logprob"] == [False] and eng.engine.calls[-1]["params"] == [{"max_new_tokens": 0}]
    assert t.top_logprobs[:4] == [[]] * 4 and len(t.top_logprobs) == 6
    assert t.top_logprobs[4:] == [[(tok + a, lp - a) for a in range(3)] for tok, lp in
                                  ((x, _prefill_lp(x)) for x in t.token_ids[4:])]
    assert [x for _, x in (p[0] for p in t.top_logprobs[4:])] == t.logprobs[4:]
    n = len(eng.engine.calls)
    asyncio.run(eng.generate([GenRequest(prompt=COUNT, max_new_tokens=3, logprob_tail=2, top_logprobs=2)]))
    eng.tail_logprobs = "inline"
    [[d]] = asyncio.run(eng.generate([GenRequest(prompt=COUNT, max_new_tokens=3, logprob_tail=2)]))
    assert len(eng.engine.calls) == n + 2 and eng.engine.calls[-1]["return_logprob"] == [True]
    assert not any(math.isnan(x) for x in d.logprobs) and len(d.logprobs) == 3
    # rescore_all: a request naming no tail gets its whole sample scored after sampling
    eng.tail_logprobs = "rescore_all"
    [[e]] = asyncio.run(eng.generate([GenRequest(prompt=COUNT, max_new_tokens=5, temperature=0.7)]))
    assert eng.engine.calls[-2]["return_logprob"] == [False] and eng.engine.calls[-1]["logprob_start_len"] == [len(prompt) - 1]
    assert e.logprobs == [_prefill_lp(t) for t in e.token_ids] and len(e.logprobs) == 5
    with pytest.raises(ValueError, match="tail_logprobs"):
        _make(tail_logprobs="later")
    asyncio.run(eng.close())



def test_a_submit_window_sends_calls_close_together_at_once(stub_sglang):
    """submit_window_ms: two calls of steps (may_wait) 20 ms apart both wait for the window the
    first opened (150 ms) and reach SGLang together; a call after it opens a window of its own.
    200 ms by default, while 256 samples are in flight (here the threshold is 0)."""
    import time

    default = _make()
    assert (default.gate.window_s, default.gate.busy) == (0.2, 256)
    asyncio.run(default.close())
    with pytest.raises(ValueError, match="submit_window_ms"):
        _make(submit_window_ms=-1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="submit_window_busy"):
            _make(submit_window_busy=bad)
    eng = _make(submit_window_ms=150, submit_window_busy=0)
    sent: list[float] = []
    orig = eng.engine.async_generate

    async def timed(*a, **k):
        sent.append(time.monotonic())
        return await orig(*a, **k)

    eng.engine.async_generate = timed

    async def go():
        t0 = time.monotonic()
        first = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[1, 2], n=2, max_new_tokens=3, may_wait=True)]))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[3, 4], n=1, max_new_tokens=3, may_wait=True)]))
        a, b = await asyncio.gather(first, second)
        third = await eng.generate([GenRequest(input_ids=[5], n=1, max_new_tokens=3, may_wait=True)])
        return t0, a, b, third

    t0, a, b, third = asyncio.run(go())
    assert len(a) == 1 and len(a[0]) == 2 and len(b[0]) == 1 and len(third[0]) == 1
    assert len(sent) == 3 and sent[0] - t0 >= 0.14 and abs(sent[1] - sent[0]) < 0.01  # together, after the window
    assert sent[2] - sent[1] >= 0.14  # the third waited a window of its own
    assert (eng.gate.held, eng.gate.windows) == (3, 2)
    asyncio.run(eng.close())


def test_the_submit_window_holds_only_steps_and_only_on_a_busy_engine(stub_sglang):
    """A request that may not wait (a vote's samples, a lineage, a probe) goes at once with the
    window on; a step (may_wait) goes at once while fewer than submit_window_busy samples are in
    flight, and waits for the window once a long call holds that many."""
    import time

    eng = _make(submit_window_ms=600, submit_window_busy=4)
    sent: list[tuple[float, int]] = []
    orig = eng.engine.async_generate

    async def timed(*a, **k):
        sent.append((time.monotonic(), len(k["input_ids"])))
        if len(k["input_ids"]) == 4:  # the long call that keeps the engine busy
            await asyncio.sleep(0.9)
        return await orig(*a, **k)

    eng.engine.async_generate = timed

    async def go():
        t0 = time.monotonic()
        await eng.generate([GenRequest(input_ids=[1], n=2, max_new_tokens=3)])  # may not wait
        await eng.generate([GenRequest(input_ids=[2], n=1, max_new_tokens=3, may_wait=True)])  # idle engine
        busy = asyncio.ensure_future(eng.generate([GenRequest(input_ids=[3], n=4, max_new_tokens=3)]))
        await asyncio.sleep(0.05)
        await eng.generate([GenRequest(input_ids=[4], n=1, max_new_tokens=3, may_wait=True)])  # 4 in flight
        await busy
        return t0

    t0 = asyncio.run(go())
    rel = [(round(t - t0, 2), k) for t, k in sent]
    assert [k for _, k in rel] == [2, 1, 4, 1]
    assert rel[0][0] < 0.3 and rel[1][0] < 0.3 and rel[2][0] < 0.3  # none of them waited (600 ms)
    assert rel[3][0] >= 0.05 + 0.59  # the step on the busy engine waited its window
    assert eng.window_stats() == {"window_ms": 600.0, "busy": 4, "held": 1, "windows": 1}
    asyncio.run(eng.close())


def test_warm_up_samples_once_before_the_engine_returns(stub_sglang):
    """warmup (on by default): one short request sampled as the searches sample (temperature
    0.7, top-p 0.95) is answered before the constructor returns, so the kernels SGLang compiles
    on first use are not compiled inside the first solve; its time is warmup_s."""
    from srca.engines.sglang_inproc import SGLangEngine

    eng = SGLangEngine("/nonexistent/model")
    (call,) = eng.engine.calls
    assert call["n"] == 2 and call["ids"][0] == [ord(c) for c in "1 + 1 ="]
    assert all(p["temperature"] == 0.7 and p["top_p"] == 0.95 and p["max_new_tokens"] == 4 for p in call["params"])
    assert eng.warmup_s is not None and eng.warmup_s >= 0
    assert eng.stats()["replicas"][0]["requests"] == 0  # no solve's: the replicas' counters do not see it
    asyncio.run(eng.close())
    off = _make()
    assert off.warmup_s is None and off.engine.calls == []
    asyncio.run(off.close())


def test_warm_up_that_fails_still_gives_an_engine(stub_sglang, monkeypatch, caplog):
    async def broken(self, *a, **k):
        raise RuntimeError("scheduler not ready")

    monkeypatch.setattr(_StubEngine, "async_generate", broken)
    eng = _make(warmup=True)
    assert eng.warmup_s is None
    assert "warm-up request failed (RuntimeError: scheduler not ready)" in caplog.text
    asyncio.run(eng.close())
