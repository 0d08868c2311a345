"""The two launched kernels of the sampler (see README.md for the algorithm and the configs).

``_fanout_kernel``, grid [P * C], one program per (row, chunk of CH logits): phase 1 reads the
chunk once and writes its stats (max, argmax for greedy rows, mass relative to the max) and either
a candidate list (every element >= a bound with >= KC elements above it; configs A, R) or its
CH / 32 group maxima (lean: SF, TS). Fused (SPLIT = 0: A, TS): the program of a row that arrives
last (acq_rel counter) combines the row, so there is no second launch. Split (R, SF): no counter;
``_combine_kernel`` (grid [P]) runs next on the stream, then for R a third launch for the rows the
combine flagged for the general path. No host sync anywhere.

Workspace per row (cached by the loader): stats [C, 4] (max, bound, mass, count), argmax [C],
candidates [C, CAP] (values, token ids), arrival counter / general-path flag [1], compacted slots
[CD] (values, token ids), group maxima [C * CH / 32], group list [GC].
"""
from __future__ import annotations

import triton
import triton.language as tl

from .triton_combine import _chunk_cands_draw, _lean_cands_draw
from .triton_general import _general_row
from .triton_helpers import LOG2E, _key, _row_params, _store_cands


@triton.jit
def _chunk_candidates(xb, gmax, m, offs, cval, cidx, KC: tl.constexpr, CAP: tl.constexpr, NB: tl.constexpr,
                      USE_ASM: tl.constexpr):
    """Phase 1 of A / R for one chunk xb [R, G] (offs: token ids; gmax [R]: group maxima; m: the
    chunk max): a bound lo with >= KC elements >= lo (the KC-th largest group maximum, from below,
    by NB bisection steps over the group maxima; on overflow of CAP, e.g. ties, refined over the
    elements), and every element >= lo stored in token order to cval/cidx [CAP]. Returns (lo, count)."""
    lo = tl.full((), float("-inf"), tl.float32)
    fg = gmax > float("-inf")
    if tl.sum(fg.to(tl.int32), 0) >= KC:
        lo = tl.min(tl.where(fg, gmax, float("inf")), 0)
        hi = m
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
    pos = (tl.cumsum(gcnt, 0) - gcnt)[:, None] + tl.cumsum(si, 1) - 1  # token order
    _store_cands(cval, cidx, pos, xb, offs, sel & (pos < CAP), USE_ASM)
    return lo, cnt


@triton.jit(do_not_specialize=["n", "k_val", "s0", "s1", "off"])
def _fanout_kernel(logits_ptr, stride, V, C, n,
                   temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val,
                   s0, s1, off,
                   stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr,
                   dval_ptr, didx_ptr, gm_ptr, gsc_ptr,
                   T_PTR: tl.constexpr, K_PTR: tl.constexpr, P_PTR: tl.constexpr,
                   CH: tl.constexpr, G: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr,
                   CPAD: tl.constexpr, NS: tl.constexpr, BG: tl.constexpr, NB: tl.constexpr, KEY_LO: tl.constexpr,
                   FORCE_GENERAL: tl.constexpr, USE_ASM: tl.constexpr, VD: tl.constexpr, SPLIT: tl.constexpr,
                   CD: tl.constexpr, GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr, SO: tl.constexpr):
    """Phase 1 for (row, chunk) = divmod(program id, C); fused (SPLIT = 0): then the arrival and,
    in the last program of the row, the combine. logits [P, V] (row stride ``stride``)."""
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

    # one read of this chunk as an [R, G] tile (G = 32: 16-byte loads)
    rr = tl.arange(0, R)
    offs = ch * CH + rr[:, None] * G + tl.arange(0, G)[None, :]  # [R, G] token ids
    x = tl.load(logits_ptr + row.to(tl.int64) * stride + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
    xb = tl.where(x != x, float("inf"), x) + 0.0  # NaN -> +inf (one max says "invalid"); -0.0 -> +0.0
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
        need_s = ~kfast  # top-k <= KC rows never need the row mass
        if FORCE_GENERAL:
            need_s = row >= 0
        if need_s:
            s_c = tl.sum(tl.sum(tl.exp2((xb - m) * cl), 1), 0)
        if GM:  # lean: the group maxima go out as they are; the combine picks the bound
            tl.store(gm_ptr + sb * R + rr, gmax)
        elif ~pure:
            lo, cnt = _chunk_candidates(xb, gmax, m, offs, cval_ptr + sb * CAP, cidx_ptr + sb * CAP,
                                        KC, CAP, NB, USE_ASM)
    tl.store(stat_ptr + sb * 4 + 0, m)
    tl.store(stat_ptr + sb * 4 + 1, lo)
    tl.store(stat_ptr + sb * 4 + 2, s_c)
    tl.store(stat_ptr + sb * 4 + 3, cnt.to(tl.float32))

    if SPLIT == 0:  # arrival: the last program of the row combines
        tl.debug_barrier()
        arrived = tl.atomic_add(count_ptr + row, 1, sem="acq_rel", scope="gpu")
        if arrived == C - 1:
            tl.store(count_ptr + row, 0)  # ready for the next launch
            _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                         stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                         gm_ptr, gsc_ptr, CH, KC, CAP, CPAD, NS, BG, KEY_LO, FORCE_GENERAL, VD, 0, CD,
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
                    FORCE_GENERAL: tl.constexpr, VD: tl.constexpr, MODE: tl.constexpr, CD: tl.constexpr,
                    GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr, SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Split configs, grid [P], after phase 1: one program combines one row (``_combine_row``,
    MODE 0 or 1, few warps: the reductions stay mostly in-thread and in warp shuffles), or, MODE 2
    (8 warps), draws the rows that MODE 1 flagged from the general path."""
    row = tl.program_id(0)
    T, k, p = _row_params(row, V, temp_ptr, temp_val, topk_ptr, k_val, topp_ptr, p_val, T_PTR, K_PTR, P_PTR)
    _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                 stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                 gm_ptr, gsc_ptr, CH, KC, CAP, CPAD, NS, BG, KEY_LO, FORCE_GENERAL, VD, MODE, CD,
                 GM, NGM, GC, SO, USE_ASM)


@triton.jit
def _combine_row(row, logits_ptr, stride, V, C, n, T, k, p, s0, s1, off,
                 stat_ptr, carg_ptr, cval_ptr, cidx_ptr, count_ptr, out_ptr, inv_ptr, dval_ptr, didx_ptr,
                 gm_ptr, gsc_ptr, CH: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr, CPAD: tl.constexpr,
                 NS: tl.constexpr, BG: tl.constexpr, KEY_LO: tl.constexpr, FORCE_GENERAL: tl.constexpr,
                 VD: tl.constexpr, MODE: tl.constexpr, CD: tl.constexpr,
                 GM: tl.constexpr, NGM: tl.constexpr, GC: tl.constexpr, SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Combine one row from its C chunks' stats: invalid rows (-1), greedy rows (argmax), the
    candidate path, else the general path. MODE 0: the general path in the same program (fused
    launch, and SF's combine); MODE 1: a row that needs it is flagged in count[row] for the MODE 2
    launch (R), which draws it and clears the flag."""
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
    else:  # .cg loads: the stats were written by other programs (L2, not a stale L1 line)
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
                if GM:
                    done = _lean_cands_draw(row, rbase, V, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                                            obase, gm_ptr, gsc_ptr, dval_ptr, didx_ptr, CH // 32, 32, NGM, GC,
                                            CD, KEY_LO, VD, SO, USE_ASM)
                else:
                    done = _chunk_cands_draw(row, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, obase, clo,
                                             stat_ptr, cval_ptr, cidx_ptr, dval_ptr, didx_ptr, CAP, NS,
                                             KEY_LO, VD, CD, MODE != 0, SO, USE_ASM)
            if ~done:
                if MODE == 0:
                    _general_row(rbase, obase, V, n, M, cl, k, p, topk_on, pure, cmax, csum, cj,
                                 s0, s1, off, row, CH, CPAD, BG, KEY_LO)
                else:
                    tl.store(count_ptr + row, 1)  # the MODE 2 launch draws this row
