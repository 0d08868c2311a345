"""Sampling kernels vs their torch reference (style of FlashInfer's tests/utils/test_sampling.py).

Every behavioural test runs for impl="torch" (reference) and impl="triton". Without CUDA the
Triton kernel runs under TRITON_INTERPRET=1 (set here before the kernel module is imported, which
is when Triton reads it); with CUDA the same tests run against the compiled kernel on the GPU.
"""
import os
from dataclasses import replace

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from srca.kernels import sample, sample_fanout, triton_available  # noqa: E402
from srca.kernels.sampling_ref import allowed_mask_ref  # noqa: E402

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
IMPLS = ["torch", pytest.param("triton", marks=pytest.mark.skipif(
    not triton_available() or (not CUDA and os.environ.get("TRITON_INTERPRET") != "1"),
    reason="triton unavailable"))]
NINF = float("-inf")


def _interpreted(impl):
    """The Triton interpreter on CPU is slow: those runs use fewer cases and draws."""
    return impl == "triton" and not CUDA


def _rows(P, V, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(P, V, generator=g) * scale).to(DEV)


@pytest.mark.parametrize("impl", IMPLS)
def test_one_hot_rows_exact(impl):
    P, V = 99, 111
    hot = torch.randint(0, V, (P,), generator=torch.Generator().manual_seed(1))
    x = torch.full((P, V), NINF)
    x[torch.arange(P), hot] = 0.5
    x = x.to(DEV)
    cases = [(1.0, 0, 1.0), (0.7, 50, 0.95), (2.0, 0, 0.5), (0.0, 0, 1.0), (1.0, 200, 1.0)]
    for T, k, p in cases[1:2] if _interpreted(impl) else cases:
        toks = sample_fanout(x, 3, T, k, p, seed=7, impl=impl)
        assert toks.shape == (P, 3) and toks.dtype == torch.int64
        assert torch.equal(toks.cpu(), hot[:, None].expand(P, 3))


@pytest.mark.parametrize("impl", IMPLS)
def test_greedy_and_top1_exact_with_ties(impl):
    P, V = 99, 111
    x = _rows(P, V).round()  # integer logits: many ties
    x[:, 5] = x.max(-1).values  # tie the max at a low index too
    first = x.cpu().argmax(-1)  # torch returns the first maximal index
    assert torch.equal(sample(x, 0.0, impl=impl).cpu(), first)
    assert torch.equal(sample(x, 0.8, top_k=1, top_p=0.9, impl=impl).cpu(), first)
    per_row_t = torch.where(torch.arange(P) % 2 == 0, 0.0, -1.0)  # <= 0: greedy
    assert torch.equal(sample_fanout(x, 2, per_row_t.to(DEV), impl=impl).cpu(), first[:, None].expand(P, 2))


@pytest.mark.parametrize("impl", IMPLS)
def test_degenerate_rows(impl):
    V = 111
    x = torch.zeros(3, V)
    x[0, 17] = 30.0  # all mass on one token at T=1
    x[1, 40] = 1.0  # a unique max; tiny top_p keeps only it
    x[2] = 0.0  # all equal, top_k=1 -> index 0
    x = x.to(DEV)
    toks = sample_fanout(x, 4, 1.0, torch.tensor([0, 0, 1]).to(DEV),
                         torch.tensor([1.0, 1e-6, 1.0]).to(DEV), seed=3, impl=impl).cpu()
    assert toks[0].tolist() == [17] * 4 and toks[1].tolist() == [40] * 4 and toks[2].tolist() == [0] * 4


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_inf_rows_are_reported(impl):
    P, V = 6, 111
    x = _rows(P, V)
    x[1, 7] = float("nan")
    x[2, 9] = float("inf")
    x[3] = NINF
    x[4, ::2] = NINF  # partly -inf is fine: never drawn
    toks, invalid = sample_fanout(x, 5, 1.0, 0, 1.0, seed=1, return_invalid=True, impl=impl)
    toks, invalid = toks.cpu(), invalid.cpu()
    assert invalid.tolist() == [False, True, True, True, False, False]
    assert (toks[1:4] == -1).all() and (toks[[0, 4, 5]] >= 0).all()
    assert (toks[4] % 2 == 1).all()
    t1, inv1 = sample(x, 0.0, return_invalid=True, impl=impl)
    assert inv1.cpu().tolist() == invalid.tolist() and (t1.cpu()[1:4] == -1).all()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("k,p", [(10, 1.0), (0, 0.7), (20, 0.8), (80, 0.95), (0, 1.0)])
def test_never_outside_top_k_top_p(impl, k, p):
    if _interpreted(impl) and (k, p) in [(10, 1.0), (0, 1.0)]:
        pytest.skip("interpreter: covered by the other cases")
    P, V = (13 if _interpreted(impl) else 37), 111
    x = _rows(P, V, seed=k)
    temps = torch.linspace(0.3, 1.5, P)
    allowed = allowed_mask_ref(x.cpu(), temps, k, p)
    toks = sample_fanout(x, 16, temps.to(DEV), k, p, seed=11, impl=impl).cpu()
    assert allowed.gather(1, toks).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_per_row_parameters(impl):
    P, V = 8, 111
    x = _rows(P, V, seed=5)
    T = torch.tensor([0.0, 0.5, 1.0, 1.0, 0.7, 0.7, 2.0, 1.0])
    K = torch.tensor([0, 5, 1, 0, 20, 0, 3, 111])
    Pp = torch.tensor([1.0, 1.0, 1.0, 0.3, 0.9, 0.5, 1.0, 0.99])
    allowed = allowed_mask_ref(x.cpu(), T, K, Pp)
    toks = sample_fanout(x, 32, T.to(DEV), K.to(DEV), Pp.to(DEV), seed=2, impl=impl).cpu()
    assert allowed.gather(1, toks).all()
    assert (toks[0] == x[0].cpu().argmax()).all() and (toks[2] == x[2].cpu().argmax()).all()


def _target(x, T, k, p):
    """float64 target distribution over one row."""
    allowed = allowed_mask_ref(x[None], T, k, p)[0]
    w = torch.where(allowed, torch.softmax(x.double() / T, -1), torch.zeros((), dtype=torch.float64))
    return w / w.sum()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("T,k,p", [(1.0, 0, 1.0), (0.7, 10, 1.0), (1.0, 0, 0.8), (1.3, 30, 0.9)])
def test_frequencies_match_target(impl, T, k, p):
    if _interpreted(impl) and k != 10 and p != 0.8:
        pytest.skip("interpreter: one fast-path and one full-row case")
    V = 111
    x = torch.randn(V, generator=torch.Generator().manual_seed(3)) * 1.5
    N = 800 if _interpreted(impl) else 100_000
    toks = sample_fanout(x[None].to(DEV), N, T, k, p, seed=21, impl=impl).cpu()[0]
    freq = torch.bincount(toks, minlength=V).double() / N
    target = _target(x, T, k, p)
    tol = 5 * (target * (1 - target) / N).sqrt() + 2e-3
    assert ((freq - target).abs() <= tol).all(), (freq - target).abs().max()
    assert freq[target == 0].sum() == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_same_seed_same_tokens(impl):
    x = _rows(5, 111, seed=9, scale=1.0)
    a = sample_fanout(x, 8, 1.0, 0, 0.95, seed=123, offset=4, impl=impl)
    b = sample_fanout(x, 8, 1.0, 0, 0.95, seed=123, offset=4, impl=impl)
    c = sample_fanout(x, 8, 1.0, 0, 0.95, seed=123, offset=5, impl=impl)
    d = sample_fanout(x, 8, 1.0, 0, 0.95, seed=124, offset=4, impl=impl)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)


@pytest.mark.parametrize("impl", IMPLS[1:])
def test_kernel_draws_with_the_uniform_of_srca_seeds(impl):
    """The in-kernel draw (``triton_helpers._uniform``, keyed on the host by ``srca.seeds.kernel_key``)
    is ``srca.seeds.kernel_uniform``: on equal logits over V = 256 tokens the inverse CDF in token
    order picks floor(u * V) (exact: u * 256 is never a whole number)."""
    from srca.seeds import kernel_uniform

    P, V, n = 3, 256, 5
    for seed, offset in ((0, 0), (12345, 7), (2**40 + 3, 2**33 + 5)):
        toks = sample_fanout(torch.zeros(P, V).to(DEV), n, 1.0, 0, 1.0, seed=seed, offset=offset, impl=impl)
        want = [[int(kernel_uniform(seed, offset, c, r) * V) for c in range(n)] for r in range(P)]
        assert toks.cpu().tolist() == want, (seed, offset)


@pytest.mark.parametrize("impl", IMPLS)
def test_children_are_independent_draws(impl):
    x = torch.zeros(1, 111).to(DEV)  # uniform: 64 children should not all coincide
    toks = sample_fanout(x, 64, 1.0, seed=0, impl=impl).cpu()
    assert toks.unique().numel() > 30


def _kernel_module():
    if not triton_available() or (not CUDA and os.environ.get("TRITON_INTERPRET") != "1"):
        pytest.skip("triton unavailable")
    from srca.kernels import sampling_triton
    return sampling_triton


def _loader():
    _kernel_module()
    from srca.kernels import triton_loader
    return triton_loader


def _cfg(name, **kw):
    """A config of sampling_triton.CONFIGS with 2048-wide chunks: several chunks on the small
    rows these tests use (and each group-maximum bound over 64 groups of 32)."""
    return replace(_kernel_module().CONFIGS[name], chunk=2048, **kw)


CONFIG_NAMES = ["A", "R", "TS", "SF"]  # what default_config picks; the tests below cover each


def test_bitonic_sort_helper_sorts_keys_descending():
    """_sort_desc (the sorted-threshold combine's sort of the order-preserving int32 keys): every
    power-of-two size up to the 512 slots, random full-range keys (no overflow: only max/min),
    heavy ties, the extremes, already sorted and reversed input: equal to torch's descending sort."""
    _kernel_module()
    import triton
    import triton.language as tl

    from srca.kernels import triton_helpers
    globals()["_sort_desc"] = triton_helpers._sort_desc  # a jit function resolves its callees in module globals

    @triton.jit
    def sort_kernel(x_ptr, o_ptr, N: tl.constexpr):
        r = tl.arange(0, N)
        tl.store(o_ptr + r, _sort_desc(tl.load(x_ptr + r)))  # noqa: F821

    g = torch.Generator().manual_seed(3)
    lo, hi = -2**31, 2**31 - 1
    for N in [2, 4, 32, 128, 512]:
        cases = [torch.randint(lo, hi, (N,), generator=g, dtype=torch.int32),
                 torch.randint(-3, 3, (N,), generator=g, dtype=torch.int32),
                 torch.tensor([lo, hi] * (N // 2), dtype=torch.int32),
                 torch.arange(N, dtype=torch.int32), torch.arange(N, 0, -1, dtype=torch.int32)]
        for x in cases:
            x = x.to(DEV)
            out = torch.empty_like(x)
            sort_kernel[(1,)](x, out, N)
            assert torch.equal(out.cpu(), x.cpu().sort(descending=True).values), (N, x)


def test_kernel_fast_and_general_paths_give_the_same_tokens():
    """top_k=10 and top_p set to exactly the top-10 mass take the candidate path; forcing the
    general (full-row, two-level) path must keep the same set and draw the same tokens: every
    path is an inverse CDF in token order keyed by (seed, offset, row, child)."""
    st = _kernel_module()
    x = _rows(4, 111, seed=4)
    probs = torch.softmax(x.cpu().double(), -1).sort(-1, descending=True).values
    p_top10 = (probs[:, :10].sum(-1) - 0.5 * probs[:, 9]).float()  # reaches mass only at the 10th
    a = sample_fanout(x, 16, 1.0, 10, 1.0, seed=5, impl="triton")
    b = sample_fanout(x, 16, 1.0, 0, p_top10.to(DEV), seed=5, impl="triton")
    c = st.fanout(x, 16, 1.0, 10, 1.0, 5, 0, force_general=True)[0]
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("name", CONFIG_NAMES)
@pytest.mark.parametrize("T,k,p", [(0.7, 50, 0.95), (1.0, 0, 0.9), (1.0, 0, 1.0), (0.7, 7, 0.6)])
def test_kernel_multichunk_candidate_and_general_paths_agree(T, k, p, name):
    """Several chunks (CH=2048 over V=5000): every config (candidate lists of 3 chunks, or the
    lean group maxima; fused and split) and the forced general path draw the same tokens, inside
    the reference's allowed set."""
    if (T, k, p) == (1.0, 0, 1.0) and name in ("R", "SF"):
        pytest.skip("pure temperature: no candidate search (split configs: host-routed to the fused launch)")
    st = _kernel_module()
    x = _rows(2, 5000, seed=6)
    a = st.fanout(x, 11, T, k, p, 9, 3, config=_cfg(name))[0]
    b = st.fanout(x, 11, T, k, p, 9, 3, config=_cfg("A"), force_general=True)[0]
    assert torch.equal(a, b)
    assert allowed_mask_ref(x.cpu(), T, k, p).gather(1, a.cpu()).all()


@pytest.mark.parametrize("name", CONFIG_NAMES[1:])
def test_kernel_configs_same_tokens_small_rows(name):
    """Every config draws config A's tokens (ties, per-row parameters, one chunk)."""
    st = _kernel_module()
    x = _rows(8, 111, seed=5).round()
    T = torch.tensor([0.0, 0.5, 1.0, 1.0, 0.7, 0.7, 2.0, 1.0]).to(DEV)
    K = torch.tensor([0, 5, 1, 0, 20, 0, 3, 111]).to(DEV)
    Pp = torch.tensor([1.0, 1.0, 1.0, 0.3, 0.9, 0.5, 1.0, 0.99]).to(DEV)
    ref = st.fanout(x, 9, T, K, Pp, 2, 1, config="A")[0]
    assert torch.equal(st.fanout(x, 9, T, K, Pp, 2, 1, config=name)[0], ref)


def test_kernel_split_launches_flag_general_rows():
    """Split configs, per-row parameters over several chunks: candidate rows, a pure temperature
    row, top_k > 64, a top-p set larger than the candidates and greedy rows all draw the fused
    A's tokens. R: the combine flags the general rows and a third launch draws them (the flags
    are reset, so repeated calls agree); SF: the combine draws them itself (two launches)."""
    st = _kernel_module()
    x = _rows(6, 5000, seed=12)
    T = torch.tensor([0.7, 1.0, 0.7, 1.0, 0.0, 0.9]).to(DEV)
    K = torch.tensor([50, 0, 100, 0, 0, 1]).to(DEV)
    Pp = torch.tensor([0.95, 1.0, 0.9, 0.9, 1.0, 1.0]).to(DEV)
    ref = st.fanout(x, 5, T, K, Pp, 4, 2, config=_cfg("A"))[0]
    assert len(st._plan(6, 5000, _cfg("R"), True, True, True, False, False)[1]) == 3
    assert len(st._plan(6, 5000, _cfg("SF"), True, True, True, False, False)[1]) == 2
    for _ in range(2):
        for cfg in [_cfg("R"), _cfg("R", combine_warps=1, slots=128), _cfg("SF")]:
            assert torch.equal(st.fanout(x, 5, T, K, Pp, 4, 2, config=cfg)[0], ref), cfg
    assert torch.equal(st.fanout(x, 5, T, K, Pp, 4, 2, config=_cfg("A"))[0], ref)
    assert allowed_mask_ref(x.cpu(), T.cpu(), K.cpu(), Pp.cpu()).gather(1, ref.cpu()).all()


def test_kernel_compacted_combine_used_and_exact():
    """R's combine: rows whose narrowed candidates fit its slots are drawn from the compacted
    slots (the workspace shows them written), rows that cannot fit (slots < top_k) from the full
    per-chunk lists, rows whose top-p set is not among the candidates on the general path; all
    draw the forced general path's tokens."""
    st, loader = _kernel_module(), _loader()
    x = _rows(3, 20000, seed=13, scale=4.0)
    for T, k, p, slots, fits in [(0.7, 50, 0.95, 256, True), (1.0, 0, 0.9, 256, True), (0.7, 50, 0.95, 8, False)]:
        st.fanout(x, 7, T, k, p, 9, 3, config=_cfg("A"))  # workspace for these rows
        dval = next(w for kk, w in loader._WS.items() if kk[0] == x.device).dval
        dval.fill_(float("nan"))
        got = st.fanout(x, 7, T, k, p, 9, 3, config=_cfg("R", slots=slots))[0]
        assert torch.equal(got, st.fanout(x, 7, T, k, p, 9, 3, config=_cfg("A"), force_general=True)[0])
        written = (~dval[:3 * slots].view(3, slots).isnan()).sum(1)
        assert bool((written > 0).any()) if fits else bool((written == 0).all())


def test_kernel_lean_candidates_used_and_exact():
    """Lean configs (TS fused, SF split; phase 1 writes group maxima only): the combine's bound
    from the row's group maxima (top-k: >= k groups above it; top-p only: group maxima carrying
    top_p of the mass), the groups it reads back and the candidate slots it fills; for peaked
    rows the slots are written (the candidate path ran) and the tokens are the forced general
    path's; all-equal rows (no bound leaves <= GC_GROUPS groups) go to the general path, as flat
    top-p rows do after the top groups fail the exact check; rows with fewer than k finite groups
    read every finite group."""
    st, loader = _kernel_module(), _loader()
    x = _rows(3, 20000, seed=15, scale=4.0)
    sparse = torch.full((2, 20000), float("-inf"))
    sparse[:, ::700] = torch.randn(2, 29) * 2  # 29 finite tokens, so 29 finite groups (< k = 40)
    sparse = sparse.to(DEV)
    flat = (torch.randn(2, 20000) * 0.1).to(DEV)
    cases = [(x, 0.7, 50, 0.95, True), (x, 0.7, 0, 0.9, True), (x, 0.7, 7, 0.6, True),
             (sparse, 1.0, 40, 0.9, True), (flat, 1.0, 0, 0.9, None),
             (torch.zeros(2, 20000).to(DEV), 1.0, 5, 1.0, False)]
    for rows, T, k, p, fits in cases:
        P = rows.shape[0]
        ref = st.fanout(rows, 7, T, k, p, 9, 3, config=_cfg("A"), force_general=True)[0]
        for cfg in [_cfg("SF"), _cfg("TS"), _cfg("SF", draw_block=1, sorted_thresholds=False)]:
            dval = loader.workspace(rows.device, P, 10).dval  # the cached one the launch will use
            dval.fill_(float("nan"))
            got = st.fanout(rows, 7, T, k, p, 9, 3, config=cfg)[0]
            assert torch.equal(got, ref), (T, k, p, cfg)
            written = (~dval[:P * 512].view(P, 512).isnan()).sum(1)
            if fits is not None:  # flat rows: the top groups are tried, the exact check sends them on
                assert bool((written > 0).all()) == fits, (T, k, p, cfg, written)
        assert allowed_mask_ref(rows.cpu(), T, k, p).gather(1, ref.cpu()).all()


def test_launch_configs_validate_themselves():
    """LaunchConfig rejects combinations the kernels do not implement; fanout takes a config, a
    name or None, never a positional tuple."""
    st = _kernel_module()
    bad = [dict(slots=64), dict(slots=100, split=True), dict(slots=1024, split=True), dict(lean=True),
           dict(sorted_thresholds=True), dict(fold_general=True), dict(chunk=3000), dict(chunk=16),
           dict(draw_block=3), dict(combine_warps=3), dict(lean=True, slots=512, chunk=32768)]
    for kw in bad:
        with pytest.raises(ValueError, match="config X"):
            st.LaunchConfig("X", **kw)
    x = _rows(2, 111, seed=2)
    with pytest.raises(ValueError, match="LaunchConfig"):
        st.fanout(x, 2, 0.7, 5, 0.9, 1, 0, config=(8192, 8, 128))
    with pytest.raises(KeyError):
        st.fanout(x, 2, 0.7, 5, 0.9, 1, 0, config="B")
    assert torch.equal(st.fanout(x, 2, 0.7, 5, 0.9, 1, 0, config="TS")[0],
                       st.fanout(x, 2, 0.7, 5, 0.9, 1, 0, config=st.CONFIGS["TS"])[0])


def test_launcher_caches_the_compiled_kernel_and_binds_in_signature_order(monkeypatch):
    """Launcher: the first call per specialization goes through Triton (fn[grid]), later calls
    launch the cached compiled kernel with every argument in signature order (constexprs
    included, as JITFunction.run passes them; tensors as the caller's device addresses when it
    gives them); a new alignment, dtype or int class (== 1,
    divisible by 16) is a new specialization; an incompatible launcher API falls back to Triton's
    path for good."""
    loader = _loader()

    class Kern:
        function, packed_metadata = "fn", "meta"

        def __init__(self):
            self.calls = []

        def run(self, *a):
            self.calls.append(a)

    class Fn:
        arg_names = ["x_ptr", "n", "A", "B"]

        def __init__(self):
            self.compiled = []

        def __getitem__(self, grid):
            def go(*args, **kw):
                self.compiled.append((grid, args, kw))
                return Kern()
            return go

    class Drv:
        class active:
            get_current_device = staticmethod(lambda: 0)
            get_current_stream = staticmethod(lambda d: 77)

    monkeypatch.setattr(loader, "_USE_ASM", True)
    monkeypatch.setattr(loader, "FAST_LAUNCH", True)
    monkeypatch.setattr(loader, "driver", Drv)
    fn = Fn()
    la = loader.Launcher(fn)
    x = torch.zeros(64)
    k1 = la((5,), (x, 7), dict(B=2, A=1, num_warps=4))
    k2 = la((6,), (x, 9), dict(B=2, A=1, num_warps=4))  # same class of n (not 1, not /16): cached
    assert k1 is k2 and len(fn.compiled) == 1
    assert k1.calls == [(6, 1, 1, 77, "fn", "meta", None, None, None, x, 9, 1, 2)]
    # device addresses for the tensors and the caller's stream go to the launcher as they are
    la((6,), (x, 9), dict(B=2, A=1, num_warps=4), ptrs=(4096, 9), stream=5)
    assert k1.calls[-1] == (6, 1, 1, 5, "fn", "meta", None, None, None, 4096, 9, 1, 2)
    la((6,), (x, 16), dict(B=2, A=1, num_warps=4))  # divisible by 16: Triton specializes, so do we
    la((6,), (x[1:], 9), dict(B=2, A=1, num_warps=4))  # misaligned pointer
    la((6,), (x.half(), 9), dict(B=2, A=1, num_warps=4))  # dtype
    assert len(fn.compiled) == 4

    def broken(*a):
        raise TypeError("launcher signature")
    k1.run = broken
    with pytest.warns(UserWarning, match="direct kernel launch"):
        la((6,), (x, 9), dict(B=2, A=1, num_warps=4))
    assert loader.FAST_LAUNCH is False and len(fn.compiled) == 5


def test_kernel_default_configs():
    """fanout(config=None): top-k <= KC rows take the lean configs (fused TS below
    SPLIT_MIN_PARENTS rows, split SF from there: the lean phase 1 writes the group maxima), other
    rows R from SPLIT_MIN_PARENTS rows (its combine writes the compacted candidate slots, no
    group maxima) and the fused A below (neither); all draw from the allowed set."""
    st, loader = _kernel_module(), _loader()
    x = _rows(st.SPLIT_MIN_PARENTS + 2, 400, seed=14, scale=4.0)
    assert st.default_config(4, True) is st.CONFIGS["TS"] and st.default_config(200, True) is st.CONFIGS["SF"]
    assert st.default_config(4, False) is st.CONFIGS["A"] and st.default_config(200, False) is st.CONFIGS["R"]
    assert sorted(st.CONFIGS) == sorted(CONFIG_NAMES)
    for rows, k, p, lean, split in [(x[:4].contiguous(), 20, 0.9, True, False), (x, 20, 0.9, True, True),
                                    (x[:4].contiguous(), 0, 0.9, False, False), (x, 0, 0.9, False, True)]:
        ws = loader.workspace(x.device, rows.shape[0], 1)  # the cached one the launch will use
        dval, gm = ws.dval, ws.gm
        dval.fill_(float("nan"))
        gm.fill_(float("nan"))
        got = st.fanout(rows, 3, 0.7, k, p, 5, 1)[0]
        assert bool((~gm.isnan()).any()) == lean
        if not lean:
            assert bool((~dval.isnan()).any()) == split
        assert allowed_mask_ref(rows.cpu(), 0.7, k, p).gather(1, got.cpu()).all()


def test_kernel_ties_overflow_falls_back():
    """All-equal logits overflow the candidate slots: top-5 with ties keeps every token."""
    _kernel_module()
    x = torch.zeros(2, 111).to(DEV)
    x[1, 50] = 1.0
    toks = sample_fanout(x, 64, 1.0, 5, 1.0, seed=2, impl="triton").cpu()
    assert toks[0].unique().numel() > 30
    allowed = allowed_mask_ref(x.cpu(), 1.0, 5, 1.0)
    assert allowed.gather(1, toks).all()


def test_half_precision_logits():
    x = _rows(4, 111, seed=8)
    for dt in (torch.float16, torch.bfloat16):
        xh = x.to(dt)
        assert torch.equal(sample(xh, 0.0).cpu(), xh.float().cpu().argmax(-1))
        if not CUDA:  # and the kernel, interpreted
            assert torch.equal(sample(xh, 0.0, top_k=3, impl="triton").cpu(), xh.float().cpu().argmax(-1))
        assert sample_fanout(xh, 3, 1.0, 5).shape == (4, 3)


def test_argument_errors():
    x = torch.randn(2, 10)
    with pytest.raises(ValueError):
        sample(x, top_p=0.0)
    with pytest.raises(ValueError):
        sample(x, top_p=1.5)
    with pytest.raises(ValueError):
        sample_fanout(x, 0)
    with pytest.raises(ValueError):
        sample(x[0])
    with pytest.raises(ValueError):
        sample(x, temperature=torch.ones(3))
    with pytest.raises(ValueError):
        sample(x, seed=-1)
    with pytest.raises(ValueError):
        sample(x, impl="cuda")


def test_cpu_default_is_reference():
    x = torch.randn(3, 50)
    assert torch.equal(sample_fanout(x, 4, 0.9, 5, 0.9, seed=1),
                       sample_fanout(x, 4, 0.9, 5, 0.9, seed=1, impl="torch"))


# ---- GPU only: the real vocabulary, the compiled kernel ---------------------------------------

REAL_V = 151_936


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_real_vocab_support_and_greedy():
    P = 33
    x = torch.randn(P, REAL_V, device="cuda") * 4
    allowed = allowed_mask_ref(x, 0.7, 50, 0.95)
    toks = sample_fanout(x, 8, 0.7, 50, 0.95, seed=1)
    assert allowed.gather(1, toks).all()
    toks = sample_fanout(x, 8, 1.0, 0, 0.9, seed=1)  # top-p only
    assert allowed_mask_ref(x, 1.0, 0, 0.9).gather(1, toks).all()
    toks = sample_fanout(x, 8, 0.7, 0, 1.0, seed=1)  # pure temperature (two-level path)
    assert allowed_mask_ref(x, 0.7, 0, 1.0).gather(1, toks).all()
    toks = sample_fanout(x, 8, 0.7, 100, 0.95, seed=1)  # top_k > 64: general path
    assert allowed_mask_ref(x, 0.7, 100, 0.95).gather(1, toks).all()
    assert torch.equal(sample(x, 0.0), x.argmax(-1))
    assert torch.equal(sample(x, 1.0, top_k=1), x.argmax(-1))


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_real_vocab_all_configs_and_paths_agree():
    """Every launch config in sampling_triton.CONFIGS (A, R, TS, SF), candidate vs forced general
    path: the same tokens (inverse CDF in token order) up to float rounding flips at a CDF
    boundary, repeated calls too (the arrival counters reset)."""
    from srca.kernels import sampling_triton as st
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(20, REAL_V, device="cuda", generator=g) * 4
    for T, k, p in [(0.7, 50, 0.95), (0.7, 0, 0.95), (0.7, 0, 1.0)]:
        ref = st.fanout(x, 8, T, k, p, 3, 1, force_general=True)[0]
        for cfg in st.CONFIGS.values():
            for _ in range(2):
                got = st.fanout(x, 8, T, k, p, 3, 1, config=cfg)[0]
                _same_up_to_rounding_flips(x, T, k, p, got, ref, (T, k, p, cfg))


def _same_up_to_rounding_flips(x, T, k, p, got, ref, what):
    """Equal tokens, except where a draw sits on a CDF boundary: configs with other warp counts
    sum the masses in another order (float32), so a uniform within ~1e-6 of a boundary may fall
    on the neighbouring kept token. Such a flip is between tokens adjacent in the CDF (no kept
    mass between them) and both allowed; a wrong draw would almost never be. At most 1 in 64."""
    bad = (got != ref).nonzero().tolist()
    assert len(bad) <= got.numel() // 64, (what, bad)
    keep = allowed_mask_ref(x.cpu(), T, k, p)
    probs = torch.softmax(torch.where(keep, x.cpu().double() / T, float("-inf")), dim=-1)
    for r, c in bad:
        a, b = sorted((int(got[r, c]), int(ref[r, c])))
        assert keep[r, a] and keep[r, b], (what, r, c, a, b)
        between = probs[r, a + 1:b].sum().item()
        assert between < 1e-5, (what, r, c, a, b, between)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_real_vocab_ties_overflow_candidates():
    x = torch.zeros(2, REAL_V, device="cuda")  # every chunk overflows its candidate slots
    x[1, 100_000] = 50.0
    toks = sample_fanout(x, 4096, 1.0, 50, 1.0, seed=3)
    assert toks[0].unique().numel() > 3000  # top-50 with ties keeps all: uniform over V
    assert (toks[1] == 100_000).all()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_real_vocab_frequencies():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(REAL_V, generator=g) * 2).cuda()
    N = 200_000
    toks = sample_fanout(x[None], N, 0.8, 40, 0.9, seed=9)[0].cpu()
    target = _target(x.cpu(), 0.8, 40, 0.9)
    freq = torch.bincount(toks, minlength=REAL_V).double() / N
    assert ((freq - target).abs() <= 5 * (target * (1 - target) / N).sqrt() + 1e-3).all()
    assert freq[target == 0].sum() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_no_host_sync():
    x = torch.randn(16, REAL_V, device="cuda")
    sample_fanout(x, 8, 0.7, 50, 0.95, seed=0)  # compile first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        sample_fanout(x, 8, 0.7, 50, 0.95, seed=0, offset=1)
        sample(x, torch.full((16,), 0.7, device="cuda"), torch.full((16,), 50, device="cuda"), 0.95, seed=0)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_direct_launch_with_addresses_matches_tritons_path():
    """The direct launch (tensors passed as device addresses, cached workspace addresses) draws
    the tokens of Triton's own launch path, for scalar and per-row parameters, split and fused
    configs, across calls that reuse and regrow the workspace."""
    from srca.kernels import sampling_triton as st
    from srca.kernels import triton_loader as loader
    g = torch.Generator(device="cuda").manual_seed(1)
    T = torch.full((130,), 0.7, device="cuda")
    K = torch.randint(2, 64, (130,), device="cuda")
    Pp = torch.full((130,), 0.9, device="cuda")
    for P in [3, 130]:
        x = torch.randn(P, REAL_V, device="cuda", generator=g) * 4
        for cfg in [None, st.CONFIGS["SF"], st.CONFIGS["TS"], st.CONFIGS["R"]]:
            for params in [(0.7, 50, 0.95), (T[:P], K[:P], Pp[:P])]:
                outs = []
                for fast in (False, True, True):
                    loader.FAST_LAUNCH = fast
                    try:
                        outs.append(st.fanout(x, 8, *params, 5, 2, config=cfg)[0])
                    finally:
                        loader.FAST_LAUNCH = True
                assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2]), (P, cfg)
