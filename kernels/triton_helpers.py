"""Small @triton.jit helpers shared by the sampling kernels: order-preserving keys, the Philox
uniform, a bitonic sort, a scattered predicated store and a row's parameters.

Every helper is inlined by Triton into its callers; none allocates or synchronises.
"""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.standard import _log2

LOG2E = tl.constexpr(1.4426950408889634)
KEY_LOWEST_FINITE = -2139095040  # _key(-FLT_MAX) as int32: keys below it are empty slots


@triton.jit
def _key(x):
    """fp32 -> int32 with the same order (x must not be NaN; -0.0 is folded to +0.0 by callers).
    Thresholds are searched over these keys: integer bisection is exact and ends."""
    b = x.to(tl.int32, bitcast=True)
    return b ^ ((b >> 31) & 0x7FFFFFFF)


@triton.jit
def _mid(lo, hi):
    """ceil((lo + hi) / 2) for int32 without overflow."""
    return (lo >> 1) + (hi >> 1) + ((lo | hi) & 1)


@triton.jit
def _uniform(s0, s1, child, row, off):
    """U(0, 1), never 0 or 1, for one child or a vector of children: Philox (10 rounds) keyed by
    (seed, child, row, offset). Every path draws child c of a row with this same number, so the
    candidate and general paths pick the same token (both are inverse CDFs in token order).
    Mirrors ``srca.seeds.kernel_uniform`` (s0, s1, off from ``srca.seeds.kernel_key`` on the host);
    tests/test_kernels.py checks that they agree."""
    seed = (s1.to(tl.uint64) << 31) | s0.to(tl.uint64)
    c0 = (child + row * 0).to(tl.uint32)  # a tensor even for a python int child
    r0, r1, r2, r3 = tl.philox(seed, c0, (c0 * 0 + row).to(tl.uint32), (c0 * 0 + off).to(tl.uint32),
                               (c0 * 0 + 0x5EED).to(tl.uint32))
    return (r0 >> 8).to(tl.float32) * (1.0 / 16777216.0) + (0.5 / 16777216.0)


@triton.jit
def _index_bit(x, j: tl.constexpr, NB: tl.constexpr):
    """Bit j of each element's index in x [2**NB] (0/1, x's shape)."""
    shape: tl.constexpr = [2 ** (NB - 1 - j), 2, 2 ** j]
    return tl.reshape(tl.broadcast_to(tl.arange(0, 2)[None, :, None], shape), x.shape)


@triton.jit
def _pair_sort(x, desc, j: tl.constexpr, NB: tl.constexpr):
    """One compare-exchange step of a bitonic network over x [2**NB]: the elements 2**j apart
    (index bit j) are put in order, descending where ``desc`` != 0. Pair max and min are plain
    reductions over an axis of 2 (a shuffle; fast under TRITON_INTERPRET too, unlike tl.sort's
    xor_sum combine, and no arithmetic on the values)."""
    shape: tl.constexpr = [2 ** (NB - 1 - j), 2, 2 ** j]
    y = tl.reshape(x, shape)
    hi = tl.reshape(tl.broadcast_to(tl.max(y, 1)[:, None, :], shape), x.shape)
    lo = tl.reshape(tl.broadcast_to(tl.min(y, 1)[:, None, :], shape), x.shape)
    return tl.where((_index_bit(x, j, NB) != 0) != (desc != 0), hi, lo)


@triton.jit
def _sort_desc(x):
    """x [N] (N a power of two) sorted in descending order: a bitonic sorting network (blocks of
    2**s alternate direction by index bit s until the last merge). Exact on int32 keys; 13x
    faster than tl.sort under TRITON_INTERPRET, about as fast on an H200."""
    NB: tl.constexpr = _log2(x.shape[0])
    for s in tl.static_range(1, NB):
        for t in tl.static_range(s):
            x = _pair_sort(x, _index_bit(x, s, NB), s - 1 - t, NB)
    for t in tl.static_range(NB):
        x = _pair_sort(x, 1, NB - 1 - t, NB)
    return x


@triton.jit
def _store_cands(vbase, ibase, pos, val, tok, keep, USE_ASM: tl.constexpr):
    """Scattered predicated store of (val, tok) to vbase[pos], ibase[pos] where keep.
    On the GPU through inline PTX: a plain tl.store with data-dependent addresses makes Triton
    re-layout the whole [R, G] tile (pointers included) through shared memory, which took the
    kernel from 80 to 208 registers. tl.store under TRITON_INTERPRET (no PTX there)."""
    if USE_ASM:
        vb = vbase.to(tl.int64) + tl.zeros_like(pos).to(tl.int64)
        ib = ibase.to(tl.int64) + tl.zeros_like(pos).to(tl.int64)
        tl.inline_asm_elementwise(
            "{ .reg .pred %p; .reg .b64 %a; setp.ne.s32 %p, $5, 0; "
            "mad.wide.s32 %a, $3, 4, $1; @%p st.global.b32 [%a], $4; "
            "mad.wide.s32 %a, $3, 4, $2; @%p st.global.b32 [%a], $6; mov.u32 $0, 0; }",
            "=r,l,l,r,r,r,r",
            [vb, ib, pos, val.to(tl.int32, bitcast=True), keep.to(tl.int32), tok],
            dtype=tl.int32, is_pure=False, pack=1)
    else:
        tl.store(vbase + pos, val, mask=keep)
        tl.store(ibase + pos, tok, mask=keep)


@triton.jit
def _row_params(row, V, temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val,
                T_PTR: tl.constexpr, K_PTR: tl.constexpr, P_PTR: tl.constexpr):
    """A row's (temperature, top_k, top_p): from the [P] tensors when given, else the scalars
    (scalars are kernel arguments: no per-call device allocation)."""
    if T_PTR:
        T = tl.load(temp_ptr + row)
    else:
        T = temp_val
    if K_PTR:
        k = tl.minimum(tl.maximum(tl.load(topk_ptr + row), -1), V).to(tl.int32)
    else:
        k = k_val
    if P_PTR:
        p = tl.load(topp_ptr + row)
    else:
        p = p_val
    return T, k, p
