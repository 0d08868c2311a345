"""The general path of the sampling kernel: one program samples one row from passes over the row.

Taken by pure temperature rows (top_k off, top_p = 1), top_k > KC, a top-p set wider than the
candidates, candidate overflow from massive ties, and by every row with ``force_general`` (the
tests' reference for the candidate path). Exact thresholds by bisection over passes of the row
(none for pure temperature: the chunk masses come from phase 1's stats), per-chunk kept masses,
then a two-level inverse CDF per child: the chunk by mass, then the token inside it (one read of
that chunk). Slow where passes are needed (flat top-p rows, top_k > KC: tens of single-CTA
passes over the row); fast enough for pure temperature.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .triton_helpers import _key, _mid, _uniform


@triton.jit
def _row_count_at_or_above(rbase, V, t, ob, BG: tl.constexpr):
    """One pass over the row: the number of tokens with key >= t (ob: [BG] block offsets)."""
    acc = tl.zeros((BG,), tl.int32)
    for b0 in range(0, V, BG):
        xx = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
        acc += (_key(xx + 0.0) >= t).to(tl.int32)
    return tl.sum(acc, 0)


@triton.jit
def _row_mass_at_or_above(rbase, V, t, M, cl, ob, BG: tl.constexpr):
    """One pass over the row: the softmax mass (relative to the max M, cl = log2(e) / T) of the
    tokens with key >= t."""
    facc = tl.zeros((BG,), tl.float32)
    for b0 in range(0, V, BG):
        xx = tl.load(rbase + b0 + ob, mask=b0 + ob < V, other=float("-inf")).to(tl.float32)
        facc += tl.where(_key(xx + 0.0) >= t, tl.exp2((xx - M) * cl), 0.0)
    return tl.sum(facc, 0)


@triton.jit
def _row_threshold(rbase, V, M, cl, k, p, topk_on, ob, BG: tl.constexpr, KEY_LO: tl.constexpr):
    """The row's kept set as a key threshold: the largest t with count(key >= t) >= k (top-k),
    then the largest with mass(key >= t) >= top_p of the top-k mass (top-p). Integer bisection
    over keys: exact, one pass over the row per step."""
    keyM = _key(M)
    thr = tl.full((), KEY_LO, tl.int32)
    if topk_on:
        hi_k = keyM
        while thr < hi_k:
            mid = _mid(thr, hi_k)
            ok = _row_count_at_or_above(rbase, V, mid, ob, BG) >= k
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
    return thr


@triton.jit
def _general_row(rbase, obase, V, n, M, cl, k, p, topk_on, pure, cmax, csum, cj,
                 s0, s1, off, row, CH: tl.constexpr, CPAD: tl.constexpr, BG: tl.constexpr,
                 KEY_LO: tl.constexpr):
    """Sample row ``row`` (logits at ``rbase``, tokens to ``obase[0:n]``). cmax, csum: [CPAD]
    phase-1 chunk maxima and masses relative to them (cj: chunk ids); M: the row max."""
    ob = tl.arange(0, BG)
    thr = _row_threshold(rbase, V, M, cl, k, p, topk_on, ob, BG, KEY_LO)
    # per-chunk kept masses S [CPAD] (pure temperature: phase 1's masses, no pass)
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
        t = _uniform(s0, s1, c, row, off) * Stot
        cc = tl.min(tl.where(cumS > t, cj, CPAD), 0)  # the chunk holding the draw
        cc = tl.where(cc >= CPAD, lastc, cc)
        # inside chunk cc: the first token whose running kept mass exceeds t - (mass before cc)
        tt = t - tl.sum(tl.where(cj == cc, cumS - S, 0.0), 0)
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
