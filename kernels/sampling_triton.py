"""Triton kernel for top-k/top-p sampling with fan-out (see README.md for the algorithm).

One launch, grid [P * C]: program (row, chunk) reads one CH-wide chunk of a parent row once (the
only full read of the logits in the common cases) and writes per-chunk stats (max, argmax, the
softmax mass relative to the chunk max, a candidate bound ``lo`` and count) plus a compacted
candidate list: every element >= ``lo``, where count(chunk >= lo) >= KC, so the chunk's top-KC is
inside. It then bumps a per-row arrival counter (acq_rel atomic); the program that arrives last
merges the row's stats and candidates ("last block combines", no second launch) and:

* finds the exact top-k threshold (k <= KC) and the exact top-p threshold among the candidates
  (bisection on order-preserving int32 keys), or, top-k off, the top-p threshold among the
  candidates when they provably hold the whole kept set (every token >= max_c lo_c is a
  candidate; the kept mass there must reach top_p of the row's mass, known from the stats);
* draws the n children by inverse CDF over the kept candidates (one Philox uniform per child,
  keyed by (seed, offset, row, child): one reduction per child).

Pure temperature rows (top_k off, top_p = 1) and rows outside the candidate path (top_k > KC, a
kept set larger than the candidates, candidate overflow from massive ties) take the general
path in the same program: exact thresholds by bisection over passes of the row (none for pure
temperature), per-chunk kept masses, then two-level inverse-CDF sampling (chunk by mass, then
token inside the chunk: one chunk read per child, shared by consecutive children in one chunk).

Split configs (CW > 0; the default from SPLIT_MIN_PARENTS rows): the same phase 1 without the
arrival counter, then the combine as its own launch (``_combine_kernel`` MODE 1, grid [P], CW warps),
which flags rows needing the general path in the arrival-counter array, then a third launch (MODE 2,
grid [P], 8 warps) that runs the general path for the flagged rows only and clears the flags; with
FG, the combine (MODE 0) runs the general path itself and there is no third launch. Same code
(``_combine_row``), same tokens; no host sync.
"""
from __future__ import annotations

import os
import warnings

import torch
import triton
import triton.language as tl
from triton import knobs
from triton.language.standard import _log2
from triton.runtime.driver import driver

KC = 64  # candidate path covers top_k <= KC
CAP = 96  # candidate slots per chunk
CD_MAX = 512  # compacted candidate slots per row (configs with CD > 0)
R_MAX = 512  # group maxima per chunk (CH / 32) the workspace holds (lean configs, GM > 0)
GC_GROUPS = 512  # the lean combine reads back at most this many groups of 32 tokens per row
KEY_LOWEST_FINITE = -2139095040  # _key(-FLT_MAX) as int32
LOG2E = tl.constexpr(1.4426950408889634)
# Launch config (chunk width, warps, register cap): benchmarks/sampling.py times the alternatives
# in CONFIGS. The cap keeps two 8-warp programs per SM (ptxas: 128 registers, no spills).
# A config is (CH, num_warps, maxnreg[, P1, SW, VD, CW]): the optional strategy switches (default 0 =
# the v2 algorithm) are all exact (same thresholds, same tokens):
#   P1: phase-1 candidate bound by a 7-way search over the group maxima, 6 counts packed in one
#       int64 block sum (4 block reductions instead of 12 bisection steps);
#   SW: combine thresholds (top-k count, top-p mass) by an SW-way search: SW thresholds per
#       [SW, NS] block reduction (~24/log2(SW) reductions instead of ~24);
#   VD: the children drawn VD at a time (one [VD, NS] reduction per block instead of one per child).
#   CW: split launches (no host sync): phase 1 (grid P*C) without the arrival counter, then the
#       combine as its own launch, grid P, CW warps (1-4: reductions in-thread + warp shuffles, all
#       rows in one short wave; top-k bisection stops once exactly k keys are >= mid), flagging rows
#       that need the general path in count[row]; a third launch (grid P, 8 warps) runs the general
#       path for the flagged rows only. SW/VD stay 0 there ([SW|VD, NS] tiles do not fit 1 warp).
#   CD: (split configs) the combine compacts the candidates >= L (token order kept) into CD
#       row-private slots when they fit, so its ~46 search steps and n draws reduce CD slots,
#       not C * CAP (2048 at V = 151,936); more than CD candidates: the full slots as before.
#   GM: lean phase 1 (split or fused): each program only writes its chunk's max, mass and R = CH/32
#       group maxima (no per-chunk bound, no candidate compaction); the combine bisects the row's
#       C * R group maxima for a bound L (>= k groups above it for top-k; group maxima carrying
#       top_p of the mass for top-p), reads the <= GC_GROUPS groups above it back and keeps every
#       token >= L in CD slots: every token >= L is a candidate, so the same tokens as v2.
#   SO: (slot combines: CD > 0) the exact top-k and top-p thresholds from one bitonic sort of the
#       slot values instead of two bisections (dependent block reductions): same thresholds.
#   FG: (split configs) the combine takes the general path itself for the rows that need it (the
#       fused launch's code path), so two launches instead of three.
DEFAULT_CONFIG = (8192, 8, 128)
# From SPLIT_MIN_PARENTS parent rows on, the default is a split config (SF for top-k rows, R
# otherwise: default_config); below, a fused one (TS / A): the extra launches cost more host time
# than they save at small shapes.
SPLIT_MIN_PARENTS = 128
CONFIGS = {"A": (8192, 8, 128), "B": (8192, 16, 64), "C": (4096, 4, 128),  # v2: A best; D, E, F dropped
           "G": (8192, 8, 128, 1, 16, 8), "H": (8192, 8, 128, 1, 0, 0), "I": (8192, 8, 128, 0, 16, 8),
           "J": (4096, 8, 128, 1, 16, 8), "K": (8192, 8, 128, 1, 8, 8),
           # split launches (CW > 0): phase 1, then the combine with CW warps per row, then the
           # general path (8 warps) for the rows the combine flagged (measured: O best of L-O)
           "L": (8192, 8, 128, 0, 0, 0, 1), "M": (8192, 8, 128, 0, 0, 0, 2),
           "N": (8192, 8, 128, 1, 0, 0, 1), "O": (8192, 8, 128, 0, 0, 0, 4),
           # split, and the combine first compacts the candidates >= L into CD slots (CD > 0)
           "P": (8192, 8, 128, 0, 0, 0, 1, 256), "Q": (8192, 8, 128, 0, 0, 0, 2, 256),
           "R": (8192, 8, 128, 0, 0, 0, 4, 256),
           # lean phase 1 (GM = 1): group maxima only; the combine finds the row's bound from them,
           # reads back the <= GC_GROUPS groups above it into CD slots (split S, V; fused T, Y;
           # V, Y: 8-way threshold searches, children drawn 8 at a time)
           "S": (8192, 8, 128, 0, 0, 0, 4, 512, 1), "T": (8192, 8, 128, 0, 0, 0, 0, 512, 1),
           "V": (8192, 8, 128, 0, 8, 8, 4, 512, 1), "Y": (8192, 8, 128, 0, 8, 8, 0, 512, 1),
           # lean with sorted thresholds (SO = 1) and the children drawn 8 at a time: split in three
           # launches (SS), split in two (SF: the combine takes the general path itself), fused (TS)
           "SS": (8192, 8, 128, 0, 0, 8, 4, 512, 1, 1), "SF": (8192, 8, 128, 0, 0, 8, 4, 512, 1, 1, 1),
           "TS": (8192, 8, 128, 0, 0, 8, 0, 512, 1, 1),
           # R with sorted thresholds over its compacted slots, in two launches (top-p-only rows)
           "RS": (8192, 8, 128, 0, 0, 8, 4, 256, 0, 1, 1)}


@triton.jit
def _key(x):
    """fp32 -> int32 with the same order (x must not be NaN; -0.0 is folded to +0.0 by callers)."""
    b = x.to(tl.int32, bitcast=True)
    return b ^ ((b >> 31) & 0x7FFFFFFF)


@triton.jit
def _mid(lo, hi):
    """ceil((lo + hi) / 2) for int32 without overflow."""
    return (lo >> 1) + (hi >> 1) + ((lo | hi) & 1)


@triton.jit
def _uniform(s0, s1, child, row, off):
    """U(0, 1) for one child (never 0 or 1): Philox keyed by (seed, child, row, offset)."""
    seed = (s1.to(tl.uint64) << 31) | s0.to(tl.uint64)
    c0 = (child + row * 0).to(tl.uint32)
    r0, r1, r2, r3 = tl.philox(seed, c0, row.to(tl.uint32), off.to(tl.uint32), (c0 * 0 + 0x5EED).to(tl.uint32))
    return (r0 >> 8).to(tl.float32) * (1.0 / 16777216.0) + (0.5 / 16777216.0)


@triton.jit
def _uniform_v(s0, s1, cvec, row, off):
    """_uniform for a vector of children (the same numbers, elementwise)."""
    seed = (s1.to(tl.uint64) << 31) | s0.to(tl.uint64)
    c0 = cvec.to(tl.uint32)
    r0, r1, r2, r3 = tl.philox(seed, c0, (cvec * 0 + row).to(tl.uint32), (cvec * 0 + off).to(tl.uint32),
                               (cvec * 0 + 0x5EED).to(tl.uint32))
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
    2**s alternate direction by index bit s until the last merge)."""
    NB: tl.constexpr = _log2(x.shape[0])
    for s in tl.static_range(1, NB):
        for t in tl.static_range(s):
            x = _pair_sort(x, _index_bit(x, s, NB), s - 1 - t, NB)
    for t in tl.static_range(NB):
        x = _pair_sort(x, 1, NB - 1 - t, NB)
    return x


@triton.jit
def _search(key, w, target, lo, hi, SW: tl.constexpr, MASS: tl.constexpr):
    """Largest t in [lo, hi] with f(t) >= target, given f(lo) >= target; f(t) = count(key >= t)
    (MASS False) or sum(w where key >= t) (MASS True), non-increasing in t. SW thresholds per
    step, one [SW, N] block reduction each: the interval shrinks SW-fold per reduction."""
    jj = tl.arange(0, SW)
    while lo < hi:
        d = hi.to(tl.int64) - lo.to(tl.int64)
        mids = (lo.to(tl.int64) + (d * (jj + 1) + (SW - 1)) // SW).to(tl.int32)  # in (lo, hi], last = hi
        ge = key[None, :] >= mids[:, None]
        if MASS:
            tot = tl.sum(tl.where(ge, w[None, :], 0.0), 1)
        else:
            tot = tl.sum(ge.to(tl.int32), 1).to(tl.float32)
        ok = tot >= target
        lo = tl.max(tl.where(ok, mids, lo), 0)
        hi = tl.min(tl.where(ok, hi, mids - 1), 0)
    return lo


@triton.jit
def _store_cands(vbase, ibase, pos, val, tok, keep, USE_ASM: tl.constexpr):
    """Scattered predicated store of (val, tok) to vbase[pos], ibase[pos] where keep.
    On the GPU through inline PTX: a plain tl.store with data-dependent addresses makes Triton
    re-layout the whole [R, G] tile (pointers included) through shared memory, which took the
    kernel from 80 to 208 registers."""
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
    """A row's (temperature, top_k, top_p): from the [P] tensors when given, else the scalars."""
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


@triton.jit(do_not_specialize=["n", "k_val", "s0", "s1", "off"])
def _fanout_kernel(logits_ptr, stride, V, C, n,
                   temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val,
                   s0, s1, off,
                   stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr,
                   dval_ptr, didx_ptr, gm_ptr, gsc_ptr,
                   T_PTR: tl.constexpr, K_PTR: tl.constexpr, P_PTR: tl.constexpr,
                   CH: tl.constexpr, G: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr,
                   CPAD: tl.constexpr, NS: tl.constexpr, BG: tl.constexpr, NB: tl.constexpr, KEY_LO: tl.constexpr,
                   FORCE_GENERAL: tl.constexpr, USE_ASM: tl.constexpr,
                   P1: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr, SPLIT: tl.constexpr,
                   CD: tl.constexpr, GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr,
                   SO: tl.constexpr):
    pid = tl.program_id(0)
    row = pid // C
    ch = pid % C
    R: tl.constexpr = CH // G
    T, k, p = _row_params(row, V, temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val, T_PTR, K_PTR, P_PTR)
    greedy = (T <= 0) | (k == 1)
    topk_on = (k > 0) & (k < V)
    kfast = topk_on & (k <= KC)
    pure = (~topk_on) & (p >= 1.0)
    cl = LOG2E / tl.where(T > 0, T, 1.0)

    # ---------------- phase 1: one read of this chunk ----------------
    rr = tl.arange(0, R)
    gg = tl.arange(0, G)
    offs = ch * CH + rr[:, None] * G + gg[None, :]  # [R, G] token ids
    rbase = logits_ptr + row.to(tl.int64) * stride
    x = tl.load(rbase + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
    xb = tl.where(x != x, float("inf"), x) + 0.0  # NaN -> +inf (invalid); -0.0 -> +0.0
    gmax = tl.max(xb, 1)  # [R] group maxima
    m = tl.max(gmax, 0)
    sb = (row * C + ch).to(tl.int64)
    s_c = tl.full((), 0.0, tl.float32)
    lo = tl.full((), float("-inf"), tl.float32)
    cnt = tl.full((), 0, tl.int32)
    if greedy:
        a = tl.min(tl.where(xb == m, offs, 2147483647), 1)
        tl.store(carg_ptr + sb, tl.min(a, 0))
    elif (m < float("inf")) & (m > float("-inf")):
        need_s = ~kfast
        if FORCE_GENERAL:
            need_s = row >= 0
        if need_s:
            s_c = tl.sum(tl.sum(tl.exp2((xb - m) * cl), 1), 0)
        if GM:  # lean phase 1: the group maxima go out as they are; the combine picks the bound
            tl.store(gm_ptr + sb * R + rr, gmax)
        elif ~pure:
            # bound: the KC-th largest group maximum (approx., from below) has >= KC elements above
            fg = gmax > float("-inf")
            if tl.sum(fg.to(tl.int32), 0) >= KC:
                lo = tl.min(tl.where(fg, gmax, float("inf")), 0)
                hi = m
                if P1:
                    # 7-way: counts at lo + j*step (j = 1..6), 10 bits each (R <= 1023), one sum
                    for _ in tl.static_range(4):
                        step = (hi - lo) * (1.0 / 7.0)
                        pk = (gmax >= lo + step).to(tl.int64)
                        for j in tl.static_range(2, 7):
                            pk += (gmax >= lo + j * step).to(tl.int64) << (10 * (j - 1))
                        pks = tl.sum(pk, 0)
                        nlo = lo
                        nhi = hi
                        for j in tl.static_range(1, 7):
                            okj = ((pks >> (10 * (j - 1))) & 1023) >= KC
                            nlo = tl.where(okj, lo + j * step, nlo)
                        for j in tl.static_range(6, 0, -1):
                            okj = ((pks >> (10 * (j - 1))) & 1023) >= KC
                            nhi = tl.where(okj, nhi, lo + j * step)
                        lo = nlo
                        hi = nhi
                else:
                    for _ in tl.static_range(NB):
                        mid = lo * 0.5 + hi * 0.5
                        ok = tl.sum((gmax >= mid).to(tl.int32), 0) >= KC
                        lo = tl.where(ok, mid, lo)
                        hi = tl.where(ok, hi, mid)
            sel = (xb >= lo) & (xb > float("-inf"))
            cnt = tl.sum(tl.sum(sel.to(tl.int32), 1), 0)
            if cnt > CAP:  # rare (ties, or finite values in few groups): bisect on the elements
                fmin = tl.min(tl.min(tl.where(xb > float("-inf"), xb, float("inf")), 1), 0)
                lo = tl.maximum(lo, fmin)
                hi = m
                for _ in tl.static_range(24):
                    mid = lo * 0.5 + hi * 0.5
                    ok = tl.sum(tl.sum((xb >= mid).to(tl.int32), 1), 0) >= KC
                    lo = tl.where(ok, mid, lo)
                    hi = tl.where(ok, hi, mid)
                sel = (xb >= lo) & (xb > float("-inf"))
                cnt = tl.sum(tl.sum(sel.to(tl.int32), 1), 0)
            si = sel.to(tl.int32)
            gcnt = tl.sum(si, 1)
            gpre = tl.cumsum(gcnt, 0) - gcnt
            pos = gpre[:, None] + tl.cumsum(si, 1) - 1
            keep = sel & (pos < CAP)
            _store_cands(cval_ptr + sb * CAP, cidx_ptr + sb * CAP, pos, xb, offs, keep, USE_ASM)
    tl.store(stat_ptr + sb * 4 + 0, m)
    tl.store(stat_ptr + sb * 4 + 1, lo)
    tl.store(stat_ptr + sb * 4 + 2, s_c)
    tl.store(stat_ptr + sb * 4 + 3, cnt.to(tl.float32))

    if SPLIT == 0:
        # ---------------- arrival: the last program of the row combines ----------------
        tl.debug_barrier()
        arrived = tl.atomic_add(count_ptr + row, 1, sem="acq_rel", scope="gpu")
        if arrived == C - 1:
            tl.store(count_ptr + row, 0)  # ready for the next launch
            _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                         stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                         gm_ptr, gsc_ptr, CH, KC, CAP, CPAD, NS, BG, KEY_LO, FORCE_GENERAL, SW, VD, 0, GM, CD,
                         GM, NGM, GC, SO, USE_ASM)


@triton.jit(do_not_specialize=["n", "k_val", "s0", "s1", "off"])
def _combine_kernel(logits_ptr, stride, V, C, n,
                    temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val,
                    s0, s1, off,
                    stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                    gm_ptr, gsc_ptr,
                    T_PTR: tl.constexpr, K_PTR: tl.constexpr, P_PTR: tl.constexpr,
                    CH: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr,
                    CPAD: tl.constexpr, NS: tl.constexpr, BG: tl.constexpr, KEY_LO: tl.constexpr,
                    FORCE_GENERAL: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr,
                    MODE: tl.constexpr, EX: tl.constexpr, CD: tl.constexpr,
                    GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr, SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Split launch (config field CW > 0), grid [P], one program per row after the phase-1 launch:
    MODE 1 (few warps): the combine's candidate path; rows that need the general path are flagged
    in count[row] (kept at zero otherwise); CD > 0: the candidates >= L are first compacted into
    CD row-private slots (dval/didx) when they fit. MODE 2 (8 warps): the general path for flagged
    rows (others exit at once), resetting the flag."""
    row = tl.program_id(0)
    T, k, p = _row_params(row, V, temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val, T_PTR, K_PTR, P_PTR)
    _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                 stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                 gm_ptr, gsc_ptr, CH, KC, CAP, CPAD, NS, BG, KEY_LO, FORCE_GENERAL, SW, VD, MODE, EX, CD,
                 GM, NGM, GC, SO, USE_ASM)


@triton.jit
def _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                 stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                 gm_ptr, gsc_ptr, CH: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr, CPAD: tl.constexpr,
                 NS: tl.constexpr, BG: tl.constexpr, KEY_LO: tl.constexpr,
                 FORCE_GENERAL: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr,
                 MODE: tl.constexpr, EX: tl.constexpr, CD: tl.constexpr,
                 GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr, SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Combine one row from the phase-1 stats and candidates. MODE 0: fused (candidate path, else
    the general path in the same program); MODE 1: candidate path, flag the row in count[row] if it
    needs the general path; MODE 2: general path only for flagged rows. EX: the top-k bisection
    stops as soon as exactly k candidates are >= mid (the same kept set, fewer reductions).
    CD > 0 (MODE 1): when the candidates >= L fit in CD slots, they are compacted (token order
    kept) into dval/didx[row * CD:] and the searches and draws run over CD slots, not NS."""
    greedy = (T <= 0) | (k == 1)
    topk_on = (k > 0) & (k < V)
    kfast = topk_on & (k <= KC)
    pure = (~topk_on) & (p >= 1.0)
    cl = LOG2E / tl.where(T > 0, T, 1.0)
    rbase = logits_ptr + row.to(tl.int64) * stride
    obase = out_ptr + row.to(tl.int64) * n
    cj = tl.arange(0, CPAD)
    cm = cj < C
    rb = row.to(tl.int64) * C
    if MODE == 2:
        if tl.load(count_ptr + row) != 0:
            tl.store(count_ptr + row, 0)
            cmax = tl.load(stat_ptr + (rb + cj) * 4 + 0, mask=cm, other=float("-inf"))
            csum = tl.load(stat_ptr + (rb + cj) * 4 + 2, mask=cm, other=0.0)
            M = tl.max(cmax, 0)
            _general_row(rbase, obase, V, n, M, cl, k, p, topk_on, pure, cmax, csum, cj,
                         s0, s1, off, row, CH, CPAD, BG, KEY_LO)
    else:
        cmax = tl.load(stat_ptr + (rb + cj) * 4 + 0, mask=cm, other=float("-inf"), cache_modifier=".cg")
        clo = tl.load(stat_ptr + (rb + cj) * 4 + 1, mask=cm, other=float("-inf"), cache_modifier=".cg")
        csum = tl.load(stat_ptr + (rb + cj) * 4 + 2, mask=cm, other=0.0, cache_modifier=".cg")
        ccnt = tl.load(stat_ptr + (rb + cj) * 4 + 3, mask=cm, other=0.0, cache_modifier=".cg")
        M = tl.max(cmax, 0)
        invalid = (M == float("inf")) | (M == float("-inf"))
        tl.store(inv_ptr + row, invalid.to(tl.int8))
        if invalid:
            for c in range(0, n):
                tl.store(obase + c, -1)
        elif greedy:
            carg = tl.load(carg_ptr + rb + cj, mask=cm, other=2147483647, cache_modifier=".cg")
            amax = tl.min(tl.where(cmax == M, carg, 2147483647), 0)
            for c in range(0, n):
                tl.store(obase + c, amax.to(tl.int64))
        else:
            keyM = _key(M)
            # row mass relative to M (valid where phase 1 computed it: not kfast)
            Z = tl.sum(tl.where(cmax > float("-inf"), csum * tl.exp2((cmax - M) * cl), 0.0), 0)
            if GM:
                use_cand = (~pure) & ((~topk_on) | kfast)
            else:
                use_cand = (~pure) & (tl.max(ccnt, 0) <= CAP) & ((~topk_on) | kfast)
            if FORCE_GENERAL:
                use_cand = row < 0
            done = row < 0
            if use_cand:
                if GM:  # lean phase 1: the bound and the candidates from the group maxima
                    done = _gm_draw(row, rbase, V, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, obase,
                                    gm_ptr, gsc_ptr, dval_ptr, didx_ptr, CH // 32, 32, NGM, GC, CD, KEY_LO,
                                    SW, VD, EX, SO, USE_ASM)
                else:
                    L = tl.max(clo, 0)  # every token >= L is a candidate
                    o = tl.arange(0, NS)
                    j = o // CAP
                    s = o % CAP
                    cnt_j = tl.load(stat_ptr + (rb + j) * 4 + 3, mask=j < C, other=0.0, cache_modifier=".cg")
                    valid = (j < C) & (s.to(tl.float32) < cnt_j)
                    v = tl.load(cval_ptr + (rb + j) * CAP + s, mask=valid, other=float("-inf"),
                                cache_modifier=".cg")
                    comp = valid & (v >= L)
                    tptr = cidx_ptr + (rb + j) * CAP + s
                    if MODE == 0:
                        ti = tl.load(tptr, mask=valid, other=0, cache_modifier=".cg")
                    else:
                        ti = o  # token ids loaded by _cand_draw, only for the draw
                    done = _narrow_draw(v, comp, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                                        row, obase, dval_ptr, didx_ptr, KEY_LO, SW, VD, EX, CD, MODE != 0,
                                        SO, USE_ASM)
            if ~done:
                if MODE == 0:
                    _general_row(rbase, obase, V, n, M, cl, k, p, topk_on, pure, cmax, csum, cj,
                                 s0, s1, off, row, CH, CPAD, BG, KEY_LO)
                else:
                    tl.store(count_ptr + row, 1)  # the MODE 2 launch draws this row


@triton.jit
def _gm_draw(row, rbase, V, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, obase,
             gm_ptr, gsc_ptr, dval_ptr, didx_ptr, R: tl.constexpr, G: tl.constexpr, NGM: tl.constexpr,
             GC: tl.constexpr, CD: tl.constexpr, KEY_LO: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr,
             EX: tl.constexpr, SO: tl.constexpr, USE_ASM: tl.constexpr):
    """The candidate path of a lean config (GM > 0), from the row's C * R group maxima:

    * the bound L: top-k (k <= KC): bisection keeping >= k groups with their maximum >= L (so >= k
      tokens are >= L) until at most GC // 4 groups are (fewer steps); top-p only: the largest L
      (bisection) whose group maxima alone carry top_p of the row's mass (a lower bound of the
      mass of the tokens >= L, so the top-p set is inside {x >= L}), or, where even all group
      maxima carry less, the bound of the top GC // 8 groups (the exact check below decides);
    * those <= GC groups (token order) are read back, GB = 32 groups per block, and every token >= L
      is appended to CD row-private slots (dval/didx);
    * the exact thresholds and the n draws over those slots (_cand_draw).
    Returns False where the candidates do not fit (no such L with <= GC groups, more than CD
    tokens >= L, massive ties) or do not hold the kept set: the caller takes the general path."""
    GB: tl.constexpr = 32  # groups read back per round (128 per round measured slower: a wider scan)
    gi = tl.arange(0, NGM)
    gv = tl.load(gm_ptr + row.to(tl.int64) * C * R + gi, mask=gi < C * R, other=float("-inf"),
                 cache_modifier=".cg")
    fin = gv > float("-inf")
    nlo = tl.sum(fin.to(tl.int32), 0)
    lo = tl.full((), float("-inf"), tl.float32)
    kk = k
    if ~topk_on:
        w = tl.where(fin, tl.exp2((gv - M) * cl), 0.0)
        target = p * Z
        if tl.sum(w, 0) >= target:
            # the largest L whose group maxima alone carry top_p of the mass: a lower bound of
            # mass(x >= L), so the top-p set lies inside {x >= L}
            lo = tl.min(tl.where(fin, gv, float("inf")), 0)
            hi = M
            for _ in range(20):
                mid = lo * 0.5 + hi * 0.5
                ok = tl.sum(tl.where(gv >= mid, w, 0.0), 0) >= target
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid)
            nlo = tl.sum((gv >= lo).to(tl.int32), 0)
            kk = -1  # bound found
        else:  # the mass is spread inside groups: try the top GC // 8 groups, the check decides
            kk = GC // 8
    if kk > 0:  # >= kk groups with their maximum >= L (so >= kk tokens), at most GC // 4 if possible
        if nlo >= kk:  # else every finite group (fewer than kk) is read
            lo = tl.min(tl.where(fin, gv, float("inf")), 0)
            hi = M
            it = 0
            while (nlo > GC // 4) & (it < 40):
                mid = lo * 0.5 + hi * 0.5
                c = tl.sum((gv >= mid).to(tl.int32), 0)
                ok = c >= kk
                lo = tl.where(ok, mid, lo)
                nlo = tl.where(ok, c, nlo)
                hi = tl.where(ok, hi, mid)
                it += 1
    fits = nlo <= GC
    nread = tl.where(fits, nlo, 0)
    gsc = gsc_ptr + row.to(tl.int64) * GC
    if fits:
        sel = fin & (gv >= lo)
        pos = tl.cumsum(sel.to(tl.int32), 0) - 1
        tl.store(gsc + pos, gi, mask=sel)
        tl.debug_barrier()  # the group list is read back by other threads
    dvb = dval_ptr + row.to(tl.int64) * CD
    dib = didx_ptr + row.to(tl.int64) * CD
    sl = tl.arange(0, GB * G)
    tot = tl.full((), 0, tl.int32)
    for b0 in range(0, nread, GB):
        slot = b0 + sl // G
        gid = tl.load(gsc + slot, mask=slot < nread, other=0, cache_modifier=".cg")
        tok = gid * G + sl % G
        valid = (slot < nread) & (tok < V)
        x = tl.load(rbase + tok, mask=valid, other=float("-inf")).to(tl.float32) + 0.0
        cand = valid & (x >= lo) & (x > float("-inf"))
        cpos = tot + tl.cumsum(cand.to(tl.int32), 0) - 1
        _store_cands(dvb, dib, cpos, x, tok, cand & (cpos < CD), USE_ASM)
        tot += tl.sum(cand.to(tl.int32), 0)
    tl.debug_barrier()  # the candidate slots are read back by other threads
    done = row < 0
    if fits & (tot <= CD):
        done = _slots_draw(dvb, dib, tot, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
                           KEY_LO, SW, VD, EX, CD, SO)
    return done


@triton.jit
def _narrow_draw(v, comp, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
                 dval_ptr, didx_ptr, KEY_LO: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr,
                 EX: tl.constexpr, CD: tl.constexpr, TI_PTR: tl.constexpr, SO: tl.constexpr,
                 USE_ASM: tl.constexpr):
    """The candidate path over slots in token order (``comp``: a candidate; every token >= the
    row's bound is one). CD > 0: first narrow to and compact into CD row-private slots (dval/didx)
    when possible. ``TI_PTR``: token ids are loaded from ``tptr`` when needed (``ti`` is a
    placeholder), else ``ti`` holds them. Returns False where the kept set is not inside the
    candidates (the caller takes the general path)."""
    key = tl.where(comp, _key(v), KEY_LO - 1)
    if CD > 0:
        # narrow: raise lo (keeping count(key >= lo) >= k, or the mass at or above it
        # >= top_p of the row's) until {key >= lo} fits CD slots; the exact thresholds
        # are >= lo, so they are found among those slots
        lo = tl.min(tl.where(comp, key, keyM), 0)
        hi = keyM
        nlo = tl.sum(comp.to(tl.int32), 0)
        if topk_on:
            while (nlo > CD) & (lo < hi):
                mid = _mid(lo, hi)
                cnt_m = tl.sum((key >= mid).to(tl.int32), 0)
                ok = cnt_m >= k
                lo = tl.where(ok, mid, lo)
                nlo = tl.where(ok, cnt_m, nlo)
                hi = tl.where(ok, hi, mid - 1)
        else:
            w = tl.where(comp, tl.exp2((v - M) * cl), 0.0)
            target = p * Z
            if tl.sum(w, 0) < target:  # the kept set is not inside the candidates:
                nlo = CD + 1  # no narrowing, the full slots find that, general path
                hi = lo
            while (nlo > CD) & (lo < hi):
                mid = _mid(lo, hi)
                ge = key >= mid
                ok = tl.sum(tl.where(ge, w, 0.0), 0) >= target
                lo = tl.where(ok, mid, lo)
                nlo = tl.where(ok, tl.sum(ge.to(tl.int32), 0), nlo)
                hi = tl.where(ok, hi, mid - 1)
        if nlo <= CD:
            live = comp & (key >= lo)
            pos = tl.cumsum(live.to(tl.int32), 0) - 1
            if TI_PTR:
                tic = tl.load(tptr, mask=live, other=0, cache_modifier=".cg")
            else:
                tic = ti
            dvb = dval_ptr + row.to(tl.int64) * CD
            dib = didx_ptr + row.to(tl.int64) * CD
            _store_cands(dvb, dib, pos, v, tic, live, USE_ASM)
            tl.debug_barrier()  # the compacted slots are read back by other threads
            done = _slots_draw(dvb, dib, nlo, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
                               KEY_LO, SW, VD, EX, CD, SO)
        else:
            done = _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                              row, obase, KEY_LO, SW, VD, EX, TI_PTR, 0)
    else:
        done = _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                          row, obase, KEY_LO, SW, VD, EX, TI_PTR, 0)
    return done


@triton.jit
def _slots_draw(dvb, dib, cnt, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
                KEY_LO: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr, EX: tl.constexpr, CD: tl.constexpr,
                SO: tl.constexpr):
    """_cand_draw over the first ``cnt`` of a row's CD compacted slots (values at ``dvb``, token ids
    at ``dib``, token order; written before a barrier)."""
    dd = tl.arange(0, CD)
    vd = tl.load(dvb + dd, mask=dd < cnt, other=float("-inf"), cache_modifier=".cg")
    keyd = tl.where(dd < cnt, _key(vd), KEY_LO - 1)
    return _cand_draw(keyd, vd, dd, dib + dd, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                      row, obase, KEY_LO, SW, VD, EX, True, SO)


@triton.jit
def _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
               KEY_LO: tl.constexpr, SW: tl.constexpr, VD: tl.constexpr, EX: tl.constexpr,
               TI_LATE: tl.constexpr, SO: tl.constexpr):
    """The candidate path over slots in token order: ``key`` (order-preserving int32 of ``v``;
    ``KEY_LO - 1`` for an empty slot), every token >= the row's bound L among them. Exact top-k
    threshold (k <= KC), then the top-p one, then the n children by inverse CDF; tokens go to
    ``obase``. ``TI_LATE``: the token ids are loaded from ``tptr`` only for the draw (``ti`` is
    then a placeholder). ``SO``: both thresholds from one sort of the slot keys (descending):
    the k-th key, then the key where the running mass in that order reaches the target. Same
    thresholds as the bisections, at a fixed cost (on an H200 about what the bisections cost on
    peaked rows: S and SS combine in the same time). Returns False where the kept set is not
    inside the candidates (the caller takes the general path)."""
    comp = key >= KEY_LO
    lo_k = tl.min(tl.where(comp, key, keyM), 0)
    if SO:  # keys sorted (int32: no -inf * 0 in the sort's swaps); empty slots last
        sk = _sort_desc(key)
        if topk_on:  # the k-th largest key (an empty slot: fewer than k candidates, all are kept)
            lo_k = tl.maximum(lo_k, tl.max(tl.where(tl.arange(0, sk.shape[0]) == k - 1, sk, KEY_LO - 1), 0))
    elif topk_on:  # largest t with count(key >= t) >= k
        if SW > 0:
            lo_k = _search(key, key, k.to(tl.float32), lo_k, keyM, SW, False)
        else:
            hi_k = keyM
            while lo_k < hi_k:
                mid = _mid(lo_k, hi_k)
                cnt_m = tl.sum((key >= mid).to(tl.int32), 0)
                ok = cnt_m >= k
                lo_k = tl.where(ok, mid, lo_k)
                if EX:  # exactly k at or above mid: {key >= mid} is the kept set
                    hi_k = tl.where(ok, tl.where(cnt_m == k, mid, hi_k), mid - 1)
                else:
                    hi_k = tl.where(ok, hi_k, mid - 1)
    w = tl.where(key >= lo_k, tl.exp2((v - M) * cl), 0.0)
    Zk = tl.sum(w, 0)
    if topk_on:
        target = p * Zk
    else:
        target = p * Z
    done = Zk >= target
    if done:  # the kept set lies among the candidates
        if p < 1.0:  # largest t with mass(key >= t) >= target
            if SO:  # in descending order: the largest key whose running mass reaches target
                # (_key is its own inverse: the sorted keys' values)
                ws = tl.where(sk >= lo_k, tl.exp2((_key(sk).to(tl.float32, bitcast=True) - M) * cl), 0.0)
                lo_k = tl.maximum(lo_k, tl.max(tl.where(tl.cumsum(ws, 0) >= target, sk, KEY_LO - 1), 0))
            elif SW > 0:
                lo_k = _search(key, w, target, lo_k, keyM, SW, True)
            else:
                hi_p = keyM
                while lo_k < hi_p:
                    mid = _mid(lo_k, hi_p)
                    ok = tl.sum(tl.where(key >= mid, w, 0.0), 0) >= target
                    lo_k = tl.where(ok, mid, lo_k)
                    hi_p = tl.where(ok, hi_p, mid - 1)
        w2 = tl.where(key >= lo_k, w, 0.0)
        if TI_LATE:  # token ids loaded only now (fewer live registers with 1 warp)
            ti = tl.load(tptr, mask=w2 > 0, other=0, cache_modifier=".cg")
        cum = tl.cumsum(w2, 0)
        tot = tl.sum(w2, 0)
        # slots run in token order (chunk-major, compaction keeps order): the first slot
        # whose running mass exceeds u * tot holds the smallest such token
        last = tl.max(tl.where(w2 > 0, ti, -1), 0)
        if VD > 0:
            vv = tl.arange(0, VD)
            for c0 in range(0, n, VD):
                cv = c0 + vv
                tv = _uniform_v(s0, s1, cv, row, off) * tot
                bv = tl.min(tl.where((w2[None, :] > 0) & (cum[None, :] > tv[:, None]), ti[None, :], 2147483647), 1)
                bv = tl.where(bv == 2147483647, last, bv)
                tl.store(obase + cv, bv.to(tl.int64), mask=cv < n)
        else:
            for c in range(0, n):
                u = _uniform(s0, s1, c, row, off)
                t = u * tot
                b = tl.min(tl.where((w2 > 0) & (cum > t), ti, 2147483647), 0)
                b = tl.where(b == 2147483647, last, b)
                tl.store(obase + c, b.to(tl.int64))
    return done


@triton.jit
def _row_mass_at_or_above(rbase, V, t, M, cl, ob, BG: tl.constexpr):
    """One pass over the row: the softmax mass (relative to the max M) of tokens with key >= t."""
    facc = tl.zeros((BG,), tl.float32)
    for b0 in range(0, V, BG):
        xx = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
        facc += tl.where(_key(xx + 0.0) >= t, tl.exp2((xx - M) * cl), 0.0)
    return tl.sum(facc, 0)


@triton.jit
def _general_row(rbase, obase, V, n, M, cl, k, p, topk_on, pure, cmax, csum, cj,
                 s0, s1, off, row, CH: tl.constexpr, CPAD: tl.constexpr, BG: tl.constexpr,
                 KEY_LO: tl.constexpr):
    """General path: thresholds over the full row, per-chunk kept masses, two-level draw."""
    keyM = _key(M)
    ob = tl.arange(0, BG)
    thr = tl.full((), KEY_LO, tl.int32)
    if topk_on:
        hi_k = keyM
        while thr < hi_k:
            mid = _mid(thr, hi_k)
            acc = tl.zeros((BG,), tl.int32)
            for b0 in range(0, V, BG):
                xx = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
                acc += (_key(xx + 0.0) >= mid).to(tl.int32)
            ok = tl.sum(acc, 0) >= k
            thr = tl.where(ok, mid, thr)
            hi_k = tl.where(ok, hi_k, mid - 1)
    if p < 1.0:
        target = p * _row_mass_at_or_above(rbase, V, thr, M, cl, ob, BG)
        hi_p = keyM
        while thr < hi_p:
            mid = _mid(thr, hi_p)
            ok = _row_mass_at_or_above(rbase, V, mid, M, cl, ob, BG) >= target
            thr = tl.where(ok, mid, thr)
            hi_p = tl.where(ok, hi_p, mid - 1)
    # per-chunk kept masses
    C = tl.cdiv(V, CH)
    if pure:
        S = tl.where(cmax > float("-inf"), csum * tl.exp2((cmax - M) * cl), 0.0)
    else:
        S = tl.zeros((CPAD,), tl.float32)
        for c in range(0, C):
            facc = tl.zeros((BG,), tl.float32)
            for b0 in range(0, CH, BG):
                tok = c * CH + b0 + ob
                xx = tl.load(rbase + tok, mask=tok < V, other=float("-inf")).to(tl.float32)
                facc += tl.where(_key(xx + 0.0) >= thr, tl.exp2((xx - M) * cl), 0.0)
            S = tl.where(cj == c, tl.sum(facc, 0), S)
    cumS = tl.cumsum(S, 0)
    Stot = tl.sum(S, 0)
    lastc = tl.max(tl.where(S > 0, cj, -1), 0)
    for c in range(0, n):
        u = _uniform(s0, s1, c, row, off)
        t = u * Stot
        cc = tl.min(tl.where(cumS > t, cj, CPAD), 0)
        cc = tl.where(cc >= CPAD, lastc, cc)
        before = tl.sum(tl.where(cj == cc, cumS - S, 0.0), 0)
        # inside chunk cc: the first token whose running kept mass exceeds t - before
        tt = t - before
        run = tl.full((), 0.0, tl.float32)
        best = tl.full((), 2147483647, tl.int32)
        lastt = tl.full((), -1, tl.int32)
        for b0 in range(0, CH, BG):
            tok = cc * CH + b0 + ob
            xx = tl.load(rbase + tok, mask=tok < V, other=float("-inf")).to(tl.float32)
            ww = tl.where((_key(xx + 0.0) >= thr) & (xx > float("-inf")), tl.exp2((xx - M) * cl), 0.0)
            cw = tl.cumsum(ww, 0) + run
            best = tl.minimum(best, tl.min(tl.where((ww > 0) & (cw > tt), tok, 2147483647), 0))
            lastt = tl.maximum(lastt, tl.max(tl.where(ww > 0, tok, -1), 0))
            run = run + tl.sum(ww, 0)
        best = tl.where(best == 2147483647, lastt, best)
        tl.store(obase + c, best.to(tl.int64))


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


_WS = {}
_USE_ASM = os.environ.get("TRITON_INTERPRET", "0") not in ("1", "true", "True")


def _current_stream(dev) -> int:
    """The stream a launch goes to (Triton's: the current device's current stream); 0 off CUDA."""
    return driver.active.get_current_stream(driver.active.get_current_device()) if dev.type == "cuda" else 0


def _workspace(dev, rows: int, C: int, stream=None):
    """Cached per (device, stream): stats, argmax, candidates, arrival counters (kept at zero),
    CD_MAX compacted candidate slots per row (configs with CD > 0), the group maxima (C * R_MAX
    per row) and GC_GROUPS group slots per row (lean configs, GM > 0); then the same nine as device
    addresses (ints: the direct launch passes them as they are); then a per-row invalid-flag
    buffer and its address, for callers that do not ask for the flags."""
    key = (dev, _current_stream(dev) if stream is None else stream)
    ws = _WS.get(key)
    need = rows * C
    if ws is None or ws[0] < need or ws[1] < rows:
        cap_rc = max(need, 4096)
        cap_r = max(rows, 256)
        ws = (cap_rc, cap_r,
              torch.empty((cap_rc * 4,), device=dev, dtype=torch.float32),
              torch.empty((cap_rc,), device=dev, dtype=torch.int32),
              torch.empty((cap_rc * CAP,), device=dev, dtype=torch.float32),
              torch.empty((cap_rc * CAP,), device=dev, dtype=torch.int32),
              torch.zeros((cap_r,), device=dev, dtype=torch.int32),
              torch.empty((cap_r * CD_MAX,), device=dev, dtype=torch.float32),
              torch.empty((cap_r * CD_MAX,), device=dev, dtype=torch.int32),
              torch.empty((cap_rc * R_MAX,), device=dev, dtype=torch.float32),
              torch.empty((cap_r * GC_GROUPS,), device=dev, dtype=torch.int32))
        scratch = torch.empty((cap_r,), device=dev, dtype=torch.int8)
        ws = ws + (tuple(t.data_ptr() for t in ws[2:]), scratch, scratch.data_ptr())
        _WS[key] = ws
    return ws[2:]


def default_config(P: int, lean_ok: bool):
    """The launch config ``fanout(config=None)`` uses for P parent rows. ``lean_ok``: a scalar
    top_k in 2..KC (every row top-k <= KC, or greedy by temperature): the lean configs with sorted
    thresholds, split in two launches (SF) from SPLIT_MIN_PARENTS rows, fused (TS) below (H200,
    128 x 8, k=50: SF 0.0674 ms per call / 0.0443 back to back vs S 0.0743 / 0.0512 and R
    0.1326 / 0.1099; 1 x 1: TS 0.0384 / 0.0214 vs T 0.0427 / 0.0226). Otherwise (top-p-only
    rows, per-row top_k tensors) R / A: a top-p set wider than the lean combine's 512 groups
    takes the slow general path there (0.79 ms for one 128 x 8 batch with such rows)."""
    if lean_ok:
        return CONFIGS["SF"] if P >= SPLIT_MIN_PARENTS else CONFIGS["TS"]
    return CONFIGS["R"] if P >= SPLIT_MIN_PARENTS else DEFAULT_CONFIG


class _Launcher:
    """``fn[grid](*args, **kw)`` without Triton's per-call argument binding after the first call.

    JITFunction.run binds every argument, builds a specialization key and looks the kernel up on
    each call (tens of microseconds of host time, the larger part of a small call). Here the
    CompiledKernel it returns is cached under a key of everything it specializes on (constexprs and
    options as passed, each tensor's dtype and 16-byte alignment, each int's class: == 1,
    divisible by 16, 32/64-bit) and then launched the way JITFunction.run launches it
    (``CompiledKernel.run`` with all arguments in signature order; Triton 3.6 and 3.9). Launch hooks
    (profilers such as proton) or ``FAST_LAUNCH = False`` take Triton's own path."""

    def __init__(self, fn):
        self.fn = fn
        self.cache = {}
        self.plans = {}

    def __call__(self, grid, args, kw, plan=None, ptrs=None, stream=None):
        """``plan``: a hashable key the caller guarantees to fix every specialization of ``args``
        and ``kw`` (fanout's launch plan); a known plan skips even the key computation. ``ptrs``:
        ``args`` with every tensor replaced by its device address, used for the direct launch (the
        launcher takes an int as it is; a tensor costs a ``data_ptr()`` call and a driver
        ``cuPointerGetAttribute`` check each, ~15 of them per fanout launch). ``stream``: the
        current stream when the caller has it."""
        global FAST_LAUNCH
        if not (FAST_LAUNCH and _USE_ASM) or _hooked(knobs.runtime.launch_enter_hook) or _hooked(
                knobs.runtime.launch_exit_hook):
            return self.fn[grid](*args, **kw)
        hit = self.plans.get(plan) if plan is not None else None
        if hit is None:
            key = (tuple(map(_spec, args)), tuple(kw.items()))
            hit = self.cache.get(key)
            if hit is None:  # Triton's own path compiles (or finds) it; later calls skip the binder
                kern = self.fn[grid](*args, **kw)
                if kern is not None:
                    self.cache[key] = (kern, tuple(kw[nm] for nm in self.fn.arg_names[len(args):]))
                return kern
            if plan is not None:
                if len(self.plans) > 4096:
                    self.plans.clear()
                self.plans[plan] = hit
        kern, tail = hit
        bound = (args if ptrs is None else ptrs) + tail
        try:
            if stream is None:
                stream = driver.active.get_current_stream(driver.active.get_current_device())
            kern.run(grid[0], 1, 1, stream, kern.function, kern.packed_metadata, None, None, None, *bound)
        except (TypeError, AttributeError) as ex:  # another Triton's launcher API: Triton's path from now on
            FAST_LAUNCH = False
            warnings.warn(f"srca.kernels: direct kernel launch unavailable ({ex!r}); using Triton's launch path")
            return self.fn[grid](*args, **kw)
        return kern


def _hooked(h) -> bool:
    """A launch hook is set (None, or an empty HookChain in Triton 3.6+, means none)."""
    return h is not None and bool(getattr(h, "calls", True))


def _spec(a):
    """What Triton specializes an argument on (see _Launcher)."""
    t = type(a)
    if t is int:
        return (a == 1, a % 16 == 0, -2**31 <= a < 2**31)
    if t is float or t is bool:
        return t
    return (a.dtype, a.data_ptr() % 16 == 0)


FAST_LAUNCH = True
_launch_fanout_kernel = _Launcher(_fanout_kernel)
_launch_combine_kernel = _Launcher(_combine_kernel)


def fanout(logits, n, temp, top_k, top_p, seed: int, offset: int, *, config=None,
           force_general=False, want_invalid=True):
    """One launch (three with a split config: phase 1, combine, general path for flagged rows; no
    host sync in either case). logits: [P, V] with unit stride in V. temp/top_k/top_p: python
    scalars or [P] tensors (f32 / int / f32). ``config`` None: ``default_config``. Returns (tokens [P, n] int64,
    invalid [P] bool), or (tokens, None) with ``want_invalid=False`` (the flags then go to a
    workspace buffer: no second allocation, a few microseconds of host time)."""
    P, V = logits.shape
    dev = logits.device
    tokens = torch.empty((P, n), device=dev, dtype=torch.int64)
    if P == 0:
        return tokens, torch.empty((0,), device=dev, dtype=torch.bool) if want_invalid else None
    tp, kp, pp = (isinstance(a, torch.Tensor) for a in (temp, top_k, top_p))
    kv = 0 if kp else max(-1, min(int(top_k), 2**31 - 1))
    # every row takes the general path (scalar pure temperature, or KC < top_k < V): no split
    all_general = not (tp or kp or pp) and float(temp) > 0 and kv != 1 and (
        (kv <= 0 or kv >= V) and float(top_p) >= 1.0 or KC < kv < V)
    # the launch plan: everything the launches specialize on besides the per-call values
    lean_ok = not kp and 1 < kv <= KC  # every row top-k <= KC (or greedy): the lean default applies
    lp = logits.data_ptr()
    pk = (dev, P, V, logits.dtype, logits.stride(0), lp % 16 == 0, config, bool(force_general), all_general, lean_ok)
    if tp or kp or pp:
        pk += tuple((a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor) else None
                    for a in (temp, top_k, top_p))
    plan = _PLANS.get(pk)
    if plan is None:
        plan = _plan(P, V, config, tp, kp, pp, bool(force_general), all_general, lean_ok)
        if len(_PLANS) > 4096:
            _PLANS.clear()
        _PLANS[pk] = plan
    C, launches = plan
    stream = _current_stream(dev)
    stat, carg, cval, cidx, count, dval, didx, gm, gsc, wsp, scratch, scratch_p = _workspace(dev, P, C, stream)
    invalid = torch.empty((P,), device=dev, dtype=torch.int8) if want_invalid else scratch
    # every integer argument stays below 2**31 (typed i32: no recompiles as seeds/offsets change)
    seed_eff = (int(seed) ^ ((int(offset) >> 31) * 0x9E3779B97F4A7C15)) & (2**62 - 1)
    off_lo = int(offset) & 0x7FFFFFFF
    s0, s1 = seed_eff & 0x7FFFFFFF, seed_eff >> 31
    args = (logits, logits.stride(0), V, C, n,
            temp if tp else tokens, 0.0 if tp else float(temp),
            top_k if kp else tokens, kv,
            top_p if pp else tokens, 0.0 if pp else float(top_p),
            s0, s1, off_lo,
            stat, carg, cval, cidx, count, tokens, invalid, dval, didx, gm, gsc)
    if _USE_ASM:  # the same arguments with device addresses for tensors (the direct launch's)
        tok_p = tokens.data_ptr()
        ptrs = (lp, logits.stride(0), V, C, n,
                temp.data_ptr() if tp else tok_p, 0.0 if tp else float(temp),
                top_k.data_ptr() if kp else tok_p, kv,
                top_p.data_ptr() if pp else tok_p, 0.0 if pp else float(top_p),
                s0, s1, off_lo, *wsp[:5], tok_p, invalid.data_ptr() if want_invalid else scratch_p, *wsp[5:])
    else:
        ptrs = None
    for i, (launch, grid, kw) in enumerate(launches):
        launch(grid, args, kw, plan=(pk, i), ptrs=ptrs, stream=stream)
    return tokens, invalid.view(torch.bool) if want_invalid else None


_PLANS = {}


def _plan(P, V, config, tp, kp, pp, force_general, all_general, lean_ok=False):
    """(C, [(launcher, grid, constexprs and options)]) for fanout: one launch, or three for a split
    config (phase 1, combine, general path for flagged rows)."""
    if config is None:
        config = default_config(P, lean_ok)
    CH, nw, maxnreg, *strat = config
    P1, SW, VD, CW, CD, GM, SO, FG = (tuple(strat) + (0,) * 8)[:8]
    if CD and (not (CW or GM) or CD > CD_MAX or CD & (CD - 1)):
        raise ValueError(f"config: CD={CD} needs a split or lean config (CW or GM > 0) and a power of two "
                         f"<= {CD_MAX}")
    CH = max(32, min(CH, _next_pow2(V)))
    C = triton.cdiv(V, CH)
    G = min(32, CH)
    if GM and CH // G > R_MAX:
        raise ValueError(f"config: a lean config (GM > 0) needs CH <= {32 * R_MAX}")
    if CH < 4096:
        nw, maxnreg = 4, None
    extra = {} if maxnreg is None else {"maxnreg": maxnreg}
    if CW and all_general:
        CW = 0  # every row takes the general path (pure temperature, top_k > KC): fused launch
    common = dict(T_PTR=tp, K_PTR=kp, P_PTR=pp, CH=CH, KC=KC, CAP=CAP, CPAD=_next_pow2(C),
                  NS=_next_pow2(C * CAP), BG=min(CH, 2048), KEY_LO=KEY_LOWEST_FINITE,
                  FORCE_GENERAL=force_general, SW=int(SW), VD=int(VD))
    lean = dict(GM=int(bool(GM)), NGM=_next_pow2(C * (CH // G)), GC=GC_GROUPS, SO=int(bool(SO and CD)))
    launches = [(_launch_fanout_kernel, (P * C,),
                 dict(G=G, NB=12, USE_ASM=_USE_ASM, P1=int(P1), SPLIT=int(bool(CW)), CD=0 if CW else int(CD),
                      num_warps=nw, **common, **lean, **extra))]
    if CW:
        # combine: one row per program, CW warps (reductions mostly in-thread + warp shuffles)
        # (FG: MODE 0, the general path in the same program, as the fused launch does)
        launches.append((_launch_combine_kernel, (P,), dict(MODE=0 if FG else 1, EX=1, CD=int(CD), USE_ASM=_USE_ASM,
                                                            num_warps=int(CW), **common, **lean)))
        if not FG:  # general path for the rows flagged by the combine (others exit at once)
            launches.append((_launch_combine_kernel, (P,), dict(MODE=2, EX=1, CD=0, USE_ASM=_USE_ASM,
                                                                num_warps=nw, **common, **lean, **extra)))
    return C, launches
