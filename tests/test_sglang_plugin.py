"""SGLang integration without SGLang: the decode-graph sizes the engines pass, and the ``"srca"``
sampling backend (srca/engines/sglang_sampler.py) against a stand-in for SGLang 0.5.17's
``Sampler`` (the attributes and methods the subclass uses), drawing with the kernel's torch
reference on CPU. On a GPU, ``benchmarks/real_workload.py --sampler srca --sampler-ab`` runs it
in SGLang itself (README, "Real workload (issue 17)")."""
from __future__ import annotations

import contextlib
import sys
import types
from importlib.metadata import entry_points

import pytest
import torch

from srca.engines import sglang_sampler as plugin
from srca.engines.sglang_graphs import cli_flags, decode_graph_args, decode_graph_sizes, prefill_graph_args
from srca.kernels import sample

NEW = {"cuda_graph_bs_decode", "cuda_graph_max_bs_decode"}
OLD = {"cuda_graph_bs", "cuda_graph_max_bs"}


# -- decode graphs ----------------------------------------------------------------------------------

def test_decode_graph_sizes():
    s = decode_graph_sizes(4096)
    assert s[:6] == [1, 2, 4, 8, 12, 16] and s == sorted(set(s)) and s[-1] == 4096
    assert [x for x in s if x > 512] == [640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096]
    assert decode_graph_sizes(300)[-3:] == [272, 288, 300]
    assert decode_graph_sizes(1) == [1] and decode_graph_sizes(256)[-2:] == [248, 256]
    for bad in (0, -4, 2.5, True, None):
        with pytest.raises(ValueError):
            decode_graph_sizes(bad)


def test_decode_graph_args_follow_the_installed_names_and_the_caller():
    a = decode_graph_args(1024, NEW | {"model_path"}, {})
    assert a == {"cuda_graph_bs_decode": decode_graph_sizes(1024), "cuda_graph_max_bs_decode": 1024}
    assert set(decode_graph_args(1024, OLD, {})) == OLD  # SGLang before the decode / prefill split
    assert decode_graph_args(1024, {"model_path"}, {}) == {}  # neither: leave SGLang alone
    assert decode_graph_args(None, NEW, {}) == {}
    for given in ({"disable_cuda_graph": True}, {"cuda_graph_max_bs": 64}, {"cuda_graph_config": {"decode": {}}}):
        assert decode_graph_args(1024, NEW, given) == {}
    assert decode_graph_args(1024, NEW, {"disable_cuda_graph": False})["cuda_graph_max_bs_decode"] == 1024
    assert decode_graph_args(1024, NEW, {"max_running_requests": 100})["cuda_graph_max_bs_decode"] == 100


def test_prefill_graph_args_follow_the_installed_names_and_the_caller():
    f = NEW | {"cuda_graph_backend_prefill"}
    assert prefill_graph_args("disabled", f, {}) == {"cuda_graph_backend_prefill": "disabled"}
    assert prefill_graph_args("disabled", NEW, {}) == {}  # an SGLang without the field: left alone
    assert prefill_graph_args(None, f, {}) == {}  # SGLang's own default
    assert prefill_graph_args("disabled", f, {"cuda_graph_backend_prefill": "full"}) == {}  # the caller's
    assert prefill_graph_args("disabled", f, {"disable_cuda_graph": True}) == {}
    with pytest.raises(ValueError, match="prefill graph"):
        prefill_graph_args("off", f, {})


def test_cli_flags_for_launch_server():
    flags = cli_flags(decode_graph_args(16, NEW, {}))
    assert flags == ["--cuda-graph-bs-decode", "1", "2", "4", "8", "12", "16", "--cuda-graph-max-bs-decode", "16"]
    assert cli_flags({}) == []


def test_auto_by_gpu_memory(monkeypatch):
    from srca.engines import sglang_graphs as g

    assert [g.auto_max_bs(mb) for mb in (143771.0, 81559.0, 61440.0, 46068.0, 35840.0, 24564.0, None)] == \
        [4096, 4096, 4096, 1024, 1024, None, None]
    monkeypatch.setattr(g, "gpu_memory_mb", lambda: 81559.0)
    assert g.resolve_max_bs("auto") == 4096 and g.resolve_max_bs(None) is None and g.resolve_max_bs(300) == 300
    for bad in (0, "4096", 1.5):
        with pytest.raises(ValueError):
            g.resolve_max_bs(bad)


def test_gpu_memory_from_nvidia_smi(monkeypatch):
    from srca.engines import sglang_graphs as g

    def fake(out, rc=0):
        return lambda *a, **k: types.SimpleNamespace(stdout=out, returncode=rc)

    monkeypatch.setattr(g.subprocess, "run", fake("143771\n81559\n"))
    assert g.gpu_memory_mb() == 81559.0  # the smallest GPU
    monkeypatch.setattr(g.subprocess, "run", fake("No devices were found\n", 6))
    assert g.gpu_memory_mb() is None

    def missing(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(g.subprocess, "run", missing)
    assert g.gpu_memory_mb() is None


def test_flags_command(monkeypatch, capsys):
    from srca.engines import sglang_graphs

    assert sglang_graphs.main(["0"]) == 2 and "MAX_BS" in capsys.readouterr().err
    monkeypatch.setattr(sglang_graphs, "server_arg_fields", lambda: NEW)
    assert sglang_graphs.main(["8"]) == 0
    assert capsys.readouterr().out.split() == cli_flags(decode_graph_args(8, NEW, {}))
    monkeypatch.setattr(sglang_graphs, "gpu_memory_mb", lambda: 24564.0)  # small GPU: SGLang's own
    assert sglang_graphs.main([]) == 0 and capsys.readouterr().out == ""
    monkeypatch.setattr(sglang_graphs, "gpu_memory_mb", lambda: 143771.0)

    def missing():
        raise ImportError("No module named 'sglang'")

    monkeypatch.setattr(sglang_graphs, "server_arg_fields", missing)
    assert sglang_graphs.main([]) == 1 and "needs SGLang" in capsys.readouterr().err


# -- the sampler plugin -----------------------------------------------------------------------------

class _Bag:
    """SGLang's read-only config bag, with its scoped override."""

    def __init__(self) -> None:
        self.sampling_backend = "srca"

    @contextlib.contextmanager
    def override(self, **kw):
        saved = {k: getattr(self, k) for k in kw}
        self.__dict__.update(kw)
        try:
            yield self
        finally:
            self.__dict__.update(saved)


class _LogprobResult:
    def __init__(self, logprobs, tokens) -> None:
        self.logprobs, self.tokens = logprobs, tokens

    def write_output_to(self, out) -> None:
        out.written = self


class _BaseSampler(torch.nn.Module):
    """The parts of SGLang 0.5.17's Sampler that SrcaSampler uses."""

    def __init__(self) -> None:
        super().__init__()
        self.rl_on_policy_target = None
        self.use_ascend_backend = False
        self.enable_deterministic = False
        self.output_logprob_processor = types.SimpleNamespace(
            compute_logprobs=lambda lp, nums, ids, tokens: _LogprobResult(lp, tokens))
        self.base_calls: list[str] = []
        self.synced = 0

    def _preprocess_logits(self, logits, info):
        return logits

    def forward(self, logits_output, info, return_logprob, top_logprobs_nums, token_ids_logprobs, positions):
        self.base_calls.append("forward")
        return self._sample_from_probs(torch.softmax(logits_output.next_token_logits, -1), info, positions, False)

    def _sample_from_probs(self, probs, info, positions, simple):
        self.base_calls.append(_EXEC.kernel.sampling_backend)
        return probs.argmax(-1)

    def _sync_token_ids_across_tp(self, tokens, info):
        self.synced += 1


_EXEC = types.SimpleNamespace(kernel=_Bag())
_REGISTERED: dict = {}


@pytest.fixture()
def stub(monkeypatch):
    names = ("sglang", "sglang.srt", "sglang.srt.layers", "sglang.srt.layers.sampler", "sglang.srt.runtime_context")
    mods = {n: types.ModuleType(n) for n in names}
    sampler_mod, ctx = mods["sglang.srt.layers.sampler"], mods["sglang.srt.runtime_context"]
    sampler_mod.Sampler = _BaseSampler
    sampler_mod.SGLANG_RETURN_ORIGINAL_LOGPROB = False
    sampler_mod.register_sampler_backend = lambda name, factory: _REGISTERED.__setitem__(name, factory)
    mods["sglang.srt.layers"].sampler = sampler_mod
    ctx.get_exec = lambda: _EXEC
    ctx.get_server_args = lambda: types.SimpleNamespace(random_seed=1234)
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    monkeypatch.delenv(plugin.SWITCH_ENV, raising=False)
    _REGISTERED.clear()
    return mods


def _info(B, temperature=0.7, top_k=(1 << 30), top_p=0.95, **kw):
    def col(v, dtype):
        return torch.tensor(v if isinstance(v, (list, tuple)) else [v] * B, dtype=dtype)

    base = dict(temperatures=col(temperature, torch.float32).view(-1, 1), top_ks=col(top_k, torch.int32),
                top_ps=col(top_p, torch.float32), is_all_greedy=False, need_min_p_sampling=False,
                sampling_seed=None, has_custom_logit_processor=False, return_sampling_masks=None)
    base.update(kw)
    return types.SimpleNamespace(**base)


def _out(logits):
    return types.SimpleNamespace(next_token_logits=logits.clone())


def test_entry_point_is_installed():
    eps = [ep for ep in entry_points(group=plugin.ENTRY_POINT_GROUP) if ep.name == "srca"]
    assert [ep.value for ep in eps] == ["srca.engines.sglang_sampler:register"]
    plugin.check_installed()


def test_sglang_plugins_whitelist_must_name_srca(monkeypatch):
    monkeypatch.setenv("SGLANG_PLUGINS", "other")
    with pytest.raises(RuntimeError, match="SGLANG_PLUGINS"):
        plugin.check_installed()
    monkeypatch.setenv("SGLANG_PLUGINS", "other, srca")
    plugin.check_installed()


def test_register_makes_the_backend(stub):
    plugin.register()
    s = _REGISTERED["srca"]()
    assert isinstance(s, _BaseSampler) and s.seed == 1234 and s.calls == 0


def test_kernel_draws_what_sglang_would_sample():
    s = types.SimpleNamespace(rl_on_policy_target=None, use_ascend_backend=False, enable_deterministic=False)
    assert plugin.kernel_draws(s, _info(2), False) and plugin.kernel_draws(s, _info(2), True)
    for kw in ({"is_all_greedy": True}, {"need_min_p_sampling": True}, {"sampling_seed": torch.zeros(2)},
               {"has_custom_logit_processor": True}, {"return_sampling_masks": [False, True]}):
        assert not plugin.kernel_draws(s, _info(2, **kw), False), kw
    assert not plugin.kernel_draws(s, _info(2), True, original_logprob=True)
    assert plugin.kernel_draws(s, _info(2), False, original_logprob=True)
    for attr, v in (("rl_on_policy_target", "fsdp"), ("use_ascend_backend", True)):
        assert not plugin.kernel_draws(types.SimpleNamespace(**{**vars(s), attr: v}), _info(2), False)
    det = types.SimpleNamespace(**{**vars(s), "enable_deterministic": True})
    assert plugin.kernel_draws(det, _info(2), False) and not plugin.kernel_draws(det, _info(2), True)


def test_forward_draws_with_the_kernel(stub):
    plugin.register()
    s = _REGISTERED["srca"]()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g) * 3
    info = _info(6, temperature=[0.7, 1.0, 0.5, 1.0, 0.9, 0.7], top_k=[1, 1 << 30, 5, 1, 1 << 30, 3],
                 top_p=[0.95, 0.9, 1.0, 1.0, 0.5, 0.95])
    out = _out(logits)
    got = s.forward(out, info, False, [], [], None)
    want = sample(logits, info.temperatures.view(-1), info.top_ks, info.top_ps, seed=1234, offset=1)
    assert torch.equal(got, want) and s.base_calls == [] and s.synced == 1
    assert got[0] == logits[0].argmax() and got[3] == logits[3].argmax()  # top_k 1: SGLang's greedy rows
    assert torch.equal(out.next_token_logits, logits)  # the logits untouched without logprobs
    s.forward(_out(logits), info, False, [], [], None)
    assert s.calls == 2  # the Philox offset moves every step


def test_forward_with_logprobs_returns_the_tempered_log_softmax(stub):
    plugin.register()
    s = _REGISTERED["srca"]()
    logits = torch.randn(3, 30, generator=torch.Generator().manual_seed(1))
    info = _info(3, temperature=[0.5, 1.0, 2.0], top_k=[1, 4, 1 << 30], top_p=[1.0, 1.0, 0.8])
    out = _out(logits)
    tokens = s.forward(out, info, True, [0, 0, 0], [None] * 3, None)
    want_lp = torch.log_softmax(logits / info.temperatures, -1)
    assert torch.allclose(out.written.logprobs, want_lp, atol=1e-6) and out.written.tokens is tokens
    want = sample(logits / info.temperatures, 1.0, info.top_ks, info.top_ps, seed=1234, offset=1)
    assert torch.equal(tokens, want) and tokens[0] == logits[0].argmax()


def test_other_batches_go_to_sglang_with_flashinfer(stub):
    plugin.register()
    s = _REGISTERED["srca"]()
    logits = torch.randn(2, 10)
    s.forward(_out(logits), _info(2, is_all_greedy=True), False, [], [], None)
    s.forward(_out(logits), _info(2, need_min_p_sampling=True), False, [], [], None)
    assert s.base_calls == ["forward", "flashinfer"] * 2 and s.calls == 0
    assert _EXEC.kernel.sampling_backend == "srca"  # the override is scoped to SGLang's own draw


def test_switch_file_for_ab_runs(stub, tmp_path, monkeypatch):
    sw = tmp_path / "switch"
    sw.write_text("flashinfer\n")
    monkeypatch.setenv(plugin.SWITCH_ENV, str(sw))
    plugin.register()
    s = _REGISTERED["srca"]()
    s.switch.period_s = 0.0
    logits = torch.randn(2, 10)
    s.forward(_out(logits), _info(2), False, [], [], None)
    assert s.base_calls == ["forward", "flashinfer"] and s.calls == 0
    sw.write_text("srca\n")
    s.forward(_out(logits), _info(2), False, [], [], None)
    assert s.calls == 1 and len(s.base_calls) == 2
    sw.unlink()  # no file: the kernel
    assert plugin.Switch(str(sw)).on() and plugin.Switch(None).on()


def test_draw_never_returns_minus_one():
    logits = torch.full((2, 8), float("-inf"))
    logits[1, 3] = 0.0
    tokens, lp = plugin.draw(logits, _info(2), seed=0, offset=0, return_logprob=False)
    assert tokens.tolist() == [0, 3] and lp is None
