"""Triton kernels for top-k/top-p sampling with fan-out (see README.md for the algorithm).

Stage 1, ``_chunk_kernel`` (grid [P, C]): each program reads one CH-wide chunk of a parent row
once (the only full read of the logits) and writes per-chunk stats (max, argmax, NaN/+inf
count, finite count) plus a compacted candidate list: every element >= a bound ``lo`` for which
count(chunk >= lo) >= KC, so the chunk's top-KC (hence the row's top-k for k <= KC) is inside.
Stage 2, ``_select_kernel`` (grid [P]): merges the stats, finds the exact top-k and top-p
thresholds among the candidates by bisection on order-preserving int keys, then draws the n
children by Gumbel-max over the kept candidates, each child with its own Philox stream keyed
by (seed, offset, row, child, token) (one Philox call feeds 4 children). Rows outside the fast path (top_k off or > KC, or a
chunk whose candidates overflow CAP) take a general multi-pass path over the full row in the
same kernel; it uses the same thresholds' definition and the same random stream, so it returns
the same tokens the fast path would.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

KC = 64  # fast path covers top_k <= KC
CAP = 128  # candidate slots per chunk
CH_MAX = 8192  # chunk width (elements) of stage 1
BLOCK_G = 2048  # block width of the general path
KEY_LOWEST_FINITE = -2139095040  # _key(-FLT_MAX) as int32


@triton.jit
def _key(x):
    """fp32 -> int32 with the same order (x must not be NaN; -0.0 is folded to +0.0 by callers)."""
    b = x.to(tl.int32, bitcast=True)
    return b ^ ((b >> 31) & 0x7FFFFFFF)


@triton.jit
def _u2g(r):
    # 23 random bits -> u in [2^-24, 1 - 2^-24], exactly representable: never 0 or 1
    u = (r >> 9).to(tl.float32) * (1.0 / 8388608.0) + (0.5 / 8388608.0)
    return -tl.log(-tl.log(u))


@triton.jit
def _gumbel4(seed, tok, group, row, off):
    """Gumbel(0, 1) noise for children 4*group .. 4*group+3 at each token index in ``tok``:
    one Philox call per (seed, token, group, row, offset) gives the four children's streams."""
    c0 = tok.to(tl.uint32)
    z = c0 * 0
    r0, r1, r2, r3 = tl.philox(seed, c0, (z + group).to(tl.uint32), (z + row).to(tl.uint32), (z + off).to(tl.uint32))
    return _u2g(r0), _u2g(r1), _u2g(r2), _u2g(r3)


@triton.jit
def _draw4(obase, n, cg, kept, z, ti, o, seed, row, off):
    """Children cg .. cg+3 by Gumbel-max over the kept slots; writes token ids ``ti[argmax]``."""
    g0, g1, g2, g3 = _gumbel4(seed, ti, cg // 4, row, off)
    for i in tl.static_range(4):
        g = g0 if i == 0 else (g1 if i == 1 else (g2 if i == 2 else g3))
        if cg + i < n:
            score = tl.where(kept, z + g, float("-inf"))
            b = tl.argmax(score, 0)
            tok = tl.sum(tl.where(o == b, ti, 0), 0)
            tl.store(obase + cg + i, tok.to(tl.int64))


@triton.jit
def _chunk_kernel(logits_ptr, stride, V, C, cmax_ptr, carg_ptr, cbad_ptr, cfin_ptr, ccnt_ptr,
                  cval_ptr, cidx_ptr, CH: tl.constexpr, KC: tl.constexpr, CAP: tl.constexpr,
                  ITERS: tl.constexpr):
    row = tl.program_id(0)
    ch = tl.program_id(1)
    offs = ch * CH + tl.arange(0, CH)  # [CH] token ids
    x = tl.load(logits_ptr + row.to(tl.int64) * stride + offs, mask=offs < V,
                other=float("-inf")).to(tl.float32)
    bad = (x != x) | (x == float("inf"))
    fin = (x > float("-inf")) & (x == x) & (x < float("inf"))
    xf = tl.where(fin, x + 0.0, float("-inf"))  # + 0.0 folds -0.0 into +0.0
    m = tl.max(xf, 0)
    a = tl.argmax(xf, 0)  # first maximal index
    # Bound: the min of KC group maxima has >= KC elements at or above it.
    gmax = tl.max(tl.reshape(xf, (KC, CH // KC)), 1)
    lo = tl.min(gmax, 0)
    fmin = tl.min(tl.where(fin, xf, float("inf")), 0)
    lo = tl.where(lo > float("-inf"), lo, fmin)  # a group of only -inf: keep every finite value
    hi = m
    for _ in tl.static_range(ITERS):  # tighten lo, keeping count(xf >= lo) >= KC
        mid = lo * 0.5 + hi * 0.5
        ok = tl.sum((xf >= mid).to(tl.int32), 0) >= KC
        lo = tl.where(ok, mid, lo)
        hi = tl.where(ok, hi, mid)
    sel = xf >= lo
    cnt = tl.sum(sel.to(tl.int32), 0)
    pos = tl.cumsum(sel.to(tl.int32), 0) - 1
    keep = sel & (pos < CAP)
    base = (row * C + ch).to(tl.int64)
    tl.store(cval_ptr + base * CAP + pos, xf, mask=keep)
    tl.store(cidx_ptr + base * CAP + pos, offs, mask=keep)
    tl.store(cmax_ptr + base, m)
    tl.store(carg_ptr + base, ch * CH + a.to(tl.int32))
    tl.store(cbad_ptr + base, tl.sum(bad.to(tl.int32), 0))
    tl.store(cfin_ptr + base, tl.sum(fin.to(tl.int32), 0))
    tl.store(ccnt_ptr + base, cnt)


@triton.jit(do_not_specialize=["n", "seed", "off"])
def _select_kernel(logits_ptr, stride, V, C, n, cmax_ptr, carg_ptr, cbad_ptr, cfin_ptr, ccnt_ptr,
                   cval_ptr, cidx_ptr, temp_ptr, topk_ptr, topp_ptr, seed, off, out_ptr, inv_ptr,
                   KC: tl.constexpr, CAP: tl.constexpr, CPAD: tl.constexpr, BLOCK_G: tl.constexpr,
                   KEY_LO: tl.constexpr):
    row = tl.program_id(0)
    cj = tl.arange(0, CPAD)
    cm = cj < C
    sbase = row.to(tl.int64) * C
    cmax = tl.load(cmax_ptr + sbase + cj, mask=cm, other=float("-inf"))
    carg = tl.load(carg_ptr + sbase + cj, mask=cm, other=2147483647)
    nbad = tl.sum(tl.load(cbad_ptr + sbase + cj, mask=cm, other=0), 0)
    nfin = tl.sum(tl.load(cfin_ptr + sbase + cj, mask=cm, other=0), 0)
    ccnt = tl.load(ccnt_ptr + sbase + cj, mask=cm, other=0)
    M = tl.max(cmax, 0)
    amax = tl.min(tl.where(cmax == M, carg, 2147483647), 0)  # lowest index among maxima
    T = tl.load(temp_ptr + row)
    k = tl.load(topk_ptr + row)
    p = tl.load(topp_ptr + row)
    invalid = (nbad > 0) | (nfin == 0)
    greedy = (T <= 0) | (k == 1)
    topk_on = (k > 0) & (k < V)
    fast = topk_on & (k <= KC) & (tl.max(ccnt, 0) <= CAP)
    invT = 1.0 / tl.where(T > 0, T, 1.0)
    keyM = _key(M).to(tl.int64)
    obase = out_ptr + row.to(tl.int64) * n
    tl.store(inv_ptr + row, invalid.to(tl.int8))
    if invalid:
        for c in range(0, n):
            tl.store(obase + c, -1)
    elif greedy:
        for c in range(0, n):
            tl.store(obase + c, amax.to(tl.int64))
    elif fast:
        # candidates: [CPAD * CAP] slots, chunk j holds ccnt[j] of them
        o = tl.arange(0, CPAD * CAP)
        j = o // CAP
        s = o % CAP
        cnt_j = tl.load(ccnt_ptr + sbase + j, mask=j < C, other=0)
        valid = (j < C) & (s < cnt_j)
        v = tl.load(cval_ptr + (sbase + j) * CAP + s, mask=valid, other=float("-inf"))
        ti = tl.load(cidx_ptr + (sbase + j) * CAP + s, mask=valid, other=0)
        key = tl.where(valid, _key(v), KEY_LO - 1).to(tl.int64)
        # top-k threshold: the largest key t with count(key >= t) >= k
        lo = tl.min(tl.where(valid, key, keyM), 0)
        hi = keyM
        for _ in range(0, 33):
            mid = lo + (hi - lo + 1) // 2
            ok = tl.sum((key >= mid).to(tl.int32), 0) >= k
            lo = tl.where(ok, mid, lo)
            hi = tl.where(ok, hi, mid - 1)
        z = (v - M) * invT
        w = tl.where(key >= lo, tl.exp(z), 0.0)
        target = p * tl.sum(w, 0)
        if p < 1.0:  # top-p threshold: the largest key t with mass(key >= t) >= p * Z
            hi = keyM
            for _ in range(0, 33):
                mid = lo + (hi - lo + 1) // 2
                ok = tl.sum(tl.where(key >= mid, w, 0.0), 0) >= target
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid - 1)
        kept = key >= lo
        for cg in range(0, n, 4):
            _draw4(obase, n, cg, kept, z, ti, o, seed, row, off)
    else:
        # general path: passes over the full row (top_k off or > KC, or candidate overflow)
        rbase = logits_ptr + row.to(tl.int64) * stride
        ob = tl.arange(0, BLOCK_G)
        lo = tl.full((), KEY_LO, tl.int64)
        if topk_on:
            hi = keyM
            for _ in range(0, 33):
                mid = lo + (hi - lo + 1) // 2
                cnt = tl.zeros((BLOCK_G,), tl.int32)
                for b0 in range(0, V, BLOCK_G):
                    x = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
                    cnt += (_key(x + 0.0) >= mid).to(tl.int32)
                ok = tl.sum(cnt, 0) >= k
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid - 1)
        if p < 1.0:
            acc = tl.zeros((BLOCK_G,), tl.float32)
            for b0 in range(0, V, BLOCK_G):
                x = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
                acc += tl.where(_key(x + 0.0) >= lo, tl.exp((x - M) * invT), 0.0)
            target = p * tl.sum(acc, 0)
            hi = keyM
            for _ in range(0, 33):
                mid = lo + (hi - lo + 1) // 2
                acc = tl.zeros((BLOCK_G,), tl.float32)
                for b0 in range(0, V, BLOCK_G):
                    x = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
                    acc += tl.where(_key(x + 0.0) >= mid, tl.exp((x - M) * invT), 0.0)
                ok = tl.sum(acc, 0) >= target
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid - 1)
        for cg in range(0, n, 4):
            for i in tl.static_range(4):
                if cg + i < n:
                    best = tl.full((), float("-inf"), tl.float32)
                    btok = tl.full((), 0, tl.int32)
                    for b0 in range(0, V, BLOCK_G):
                        t = b0 + ob
                        x = tl.load(rbase + t, mask=t < V, other=float("-inf")).to(tl.float32)
                        keep = (_key(x + 0.0) >= lo) & (x > float("-inf"))
                        g0, g1, g2, g3 = _gumbel4(seed, t, cg // 4, row, off)
                        g = g0 if i == 0 else (g1 if i == 1 else (g2 if i == 2 else g3))
                        score = tl.where(keep, (x - M) * invT + g, float("-inf"))
                        bm = tl.max(score, 0)
                        bi = b0 + tl.argmax(score, 0).to(tl.int32)
                        upd = bm > best
                        btok = tl.where(upd, bi, btok)
                        best = tl.where(upd, bm, best)
                    tl.store(obase + cg + i, btok.to(tl.int64))


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def fanout(logits, n, temp, top_k, top_p, seed: int, offset: int):
    """Launch both stages. logits: [P, V] contiguous; temp/top_p: [P] f32; top_k: [P] i64.
    Returns (tokens [P, n] int64, invalid [P] bool)."""
    P, V = logits.shape
    dev = logits.device
    tokens = torch.empty((P, n), device=dev, dtype=torch.int64)
    invalid = torch.empty((P,), device=dev, dtype=torch.int8)
    if P == 0:
        return tokens, invalid.view(torch.bool)
    CH = max(KC, min(CH_MAX, _next_pow2(V)))
    C = triton.cdiv(V, CH)
    f32 = dict(device=dev, dtype=torch.float32)
    i32 = dict(device=dev, dtype=torch.int32)
    cmax, carg = torch.empty((P, C), **f32), torch.empty((P, C), **i32)
    cbad, cfin, ccnt = (torch.empty((P, C), **i32) for _ in range(3))
    cval, cidx = torch.empty((P, C, CAP), **f32), torch.empty((P, C, CAP), **i32)
    seed_eff = (int(seed) ^ ((int(offset) >> 32) * 0x9E3779B97F4A7C15)) & (2**63 - 1)
    off_lo = int(offset) & 0xFFFFFFFF
    _chunk_kernel[(P, C)](logits, logits.stride(0), V, C, cmax, carg, cbad, cfin, ccnt, cval, cidx,
                          CH=CH, KC=KC, CAP=CAP, ITERS=8, num_warps=8 if CH >= 4096 else 4)
    _select_kernel[(P,)](logits, logits.stride(0), V, C, n, cmax, carg, cbad, cfin, ccnt, cval, cidx,
                         temp, top_k, top_p, seed_eff, off_lo, tokens, invalid,
                         KC=KC, CAP=CAP, CPAD=_next_pow2(C), BLOCK_G=min(BLOCK_G, _next_pow2(V)), KEY_LO=KEY_LOWEST_FINITE,
                         num_warps=8)
    return tokens, invalid.view(torch.bool)
