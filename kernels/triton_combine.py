"""The candidate path of the sampling kernel: per row, from phase 1's output, find the exact top-k
and top-p thresholds among a few hundred candidate slots and draw the n children there.

Every token >= the row's bound L is a candidate, and the exact thresholds are >= L, so the kept
set (and the tokens drawn) are those of the general path. Two ways to the candidates:

* per-chunk candidate lists (phase 1 of configs A and R): L = max over chunks of their bounds;
  R's combine first narrows and compacts them into ``slots`` row-private slots
  (``_chunk_cands_draw``);
* group maxima (the lean phase 1 of SF and TS): L from the row's group maxima, and the groups
  above it read back into the slots (``_lean_cands_draw``).

Then ``_cand_draw``: the thresholds (bisection, or one bitonic sort) and ``_draw_children``.
Functions return ``done`` False where the kept set is not inside the candidates; the caller
takes the general path.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .triton_helpers import _key, _mid, _sort_desc, _store_cands, _uniform


@triton.jit
def _draw_children(w2, ti, n, s0, s1, off, row, obase, VD: tl.constexpr):
    """Inverse CDF over slots in token order (chunk-major; compaction keeps the order): child c
    gets the first slot whose running kept mass exceeds u_c * total, i.e. the smallest such token.
    w2 [NS]: kept masses (0: not kept), ti [NS]: token ids. VD > 0: VD children per [VD, NS]
    min-reduction, else one reduction per child (same tokens either way)."""
    cum = tl.cumsum(w2, 0)
    tot = tl.sum(w2, 0)
    last = tl.max(tl.where(w2 > 0, ti, -1), 0)  # u * tot rounding past the end: the last kept token
    if VD > 0:
        vv = tl.arange(0, VD)
        for c0 in range(0, n, VD):
            cv = c0 + vv
            tv = _uniform(s0, s1, cv, row, off) * tot
            bv = tl.min(tl.where((w2[None, :] > 0) & (cum[None, :] > tv[:, None]), ti[None, :], 2147483647), 1)
            bv = tl.where(bv == 2147483647, last, bv)
            tl.store(obase + cv, bv.to(tl.int64), mask=cv < n)
    else:
        for c in range(0, n):
            t = _uniform(s0, s1, c, row, off) * tot
            b = tl.min(tl.where((w2 > 0) & (cum > t), ti, 2147483647), 0)
            b = tl.where(b == 2147483647, last, b)
            tl.store(obase + c, b.to(tl.int64))


@triton.jit
def _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
               KEY_LO: tl.constexpr, VD: tl.constexpr, TI_LATE: tl.constexpr, SO: tl.constexpr):
    """Thresholds and draws over candidate slots in token order. key [NS]: order-preserving int32
    of v [NS] (``KEY_LO - 1`` marks an empty slot); M, keyM: the row max and its key; Z: the row's
    mass relative to M (valid without top-k). The exact top-k threshold (k <= KC), then the top-p
    one on the renormalised mass, then the n children. ``TI_LATE``: the token ids are loaded from
    ``tptr`` only for the draw (``ti`` is a placeholder; fewer live registers). ``SO``: both
    thresholds from one sort of the keys (descending): the k-th key, then the largest key whose
    running mass reaches the target; same thresholds as the bisections (on an H200 about their
    cost on peaked rows). Returns False where the kept set is not inside the candidates."""
    comp = key >= KEY_LO
    lo_k = tl.min(tl.where(comp, key, keyM), 0)
    if SO:  # keys sorted (int32: no -inf * 0 in the sort's swaps); empty slots last
        sk = _sort_desc(key)
        if topk_on:  # the k-th largest key (an empty slot: fewer than k candidates, all are kept)
            lo_k = tl.maximum(lo_k, tl.max(tl.where(tl.arange(0, sk.shape[0]) == k - 1, sk, KEY_LO - 1), 0))
    elif topk_on:  # largest t with count(key >= t) >= k; stops once exactly k keys are >= mid
        hi_k = keyM  # (then {key >= mid} is the kept set: the same set, fewer reductions)
        while lo_k < hi_k:
            mid = _mid(lo_k, hi_k)
            cnt_m = tl.sum((key >= mid).to(tl.int32), 0)
            ok = cnt_m >= k
            lo_k = tl.where(ok, mid, lo_k)
            hi_k = tl.where(ok, tl.where(cnt_m == k, mid, hi_k), mid - 1)
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
            else:
                hi_p = keyM
                while lo_k < hi_p:
                    mid = _mid(lo_k, hi_p)
                    ok = tl.sum(tl.where(key >= mid, w, 0.0), 0) >= target
                    lo_k = tl.where(ok, mid, lo_k)
                    hi_p = tl.where(ok, hi_p, mid - 1)
        w2 = tl.where(key >= lo_k, w, 0.0)
        if TI_LATE:
            ti = tl.load(tptr, mask=w2 > 0, other=0, cache_modifier=".cg")
        _draw_children(w2, ti, n, s0, s1, off, row, obase, VD)
    return done


@triton.jit
def _slots_draw(dvb, dib, cnt, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, row, obase,
                KEY_LO: tl.constexpr, VD: tl.constexpr, CD: tl.constexpr, SO: tl.constexpr):
    """_cand_draw over the first ``cnt`` of a row's CD compacted slots (values at ``dvb``, token ids
    at ``dib``, token order; written before a barrier)."""
    dd = tl.arange(0, CD)
    vd = tl.load(dvb + dd, mask=dd < cnt, other=float("-inf"), cache_modifier=".cg")
    keyd = tl.where(dd < cnt, _key(vd), KEY_LO - 1)
    return _cand_draw(keyd, vd, dd, dib + dd, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                      row, obase, KEY_LO, VD, True, SO)


@triton.jit
def _chunk_cands_draw(row, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, obase, clo,
                      stat_ptr, cval_ptr, cidx_ptr, dval_ptr, didx_ptr, CAP: tl.constexpr, NS: tl.constexpr,
                      KEY_LO: tl.constexpr, VD: tl.constexpr, CD: tl.constexpr, TI_PTR: tl.constexpr,
                      SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Candidate path from phase 1's per-chunk lists (C chunks x CAP slots, NS = their padded
    count; clo [CPAD]: the chunks' bounds). CD > 0 (config R's combine): first raise the bound
    (keeping count(key >= lo) >= k, or the mass at or above it >= top_p of the row's) until
    {key >= lo} fits CD slots, compact those (token order kept) into row-private slots and search
    there; else over all NS slots. ``TI_PTR``: token ids loaded only where needed."""
    rb = row.to(tl.int64) * C
    L = tl.max(clo, 0)  # every token >= L is a candidate
    o = tl.arange(0, NS)
    j = o // CAP
    s = o % CAP
    cnt_j = tl.load(stat_ptr + (rb + j) * 4 + 3, mask=j < C, other=0.0, cache_modifier=".cg")
    valid = (j < C) & (s.to(tl.float32) < cnt_j)
    v = tl.load(cval_ptr + (rb + j) * CAP + s, mask=valid, other=float("-inf"), cache_modifier=".cg")
    comp = valid & (v >= L)
    tptr = cidx_ptr + (rb + j) * CAP + s
    if TI_PTR:
        ti = o  # placeholder: token ids are loaded for the draw only
    else:
        ti = tl.load(tptr, mask=valid, other=0, cache_modifier=".cg")
    key = tl.where(comp, _key(v), KEY_LO - 1)
    if CD > 0:
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
                               KEY_LO, VD, CD, SO)
        else:
            done = _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                              row, obase, KEY_LO, VD, TI_PTR, 0)
    else:
        done = _cand_draw(key, v, ti, tptr, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off,
                          row, obase, KEY_LO, VD, TI_PTR, 0)
    return done


@triton.jit
def _lean_bound(gv, fin, M, cl, k, p, Z, topk_on, GC: tl.constexpr):
    """The bound L of a lean row from its group maxima gv [NGM] (fin: finite): top-k (k <= KC):
    bisection keeping >= k groups with their maximum >= L (so >= k tokens are >= L) until at
    most GC // 4 groups are; top-p only: the largest L whose group maxima alone carry top_p of
    the row's mass (a lower bound of mass(x >= L), so the top-p set is inside {x >= L}), or,
    where even all group maxima carry less, the bound of the top GC // 8 groups (the exact check
    decides). Returns (L, the number of groups with their maximum >= L)."""
    nlo = tl.sum(fin.to(tl.int32), 0)
    lo = tl.full((), float("-inf"), tl.float32)
    kk = k
    if ~topk_on:
        w = tl.where(fin, tl.exp2((gv - M) * cl), 0.0)
        target = p * Z
        if tl.sum(w, 0) >= target:
            lo = tl.min(tl.where(fin, gv, float("inf")), 0)
            hi = M
            for _ in range(20):
                mid = lo * 0.5 + hi * 0.5
                ok = tl.sum(tl.where(gv >= mid, w, 0.0), 0) >= target
                lo = tl.where(ok, mid, lo)
                hi = tl.where(ok, hi, mid)
            nlo = tl.sum((gv >= lo).to(tl.int32), 0)
            kk = -1  # bound found
        else:  # the mass is spread inside groups: try the top GC // 8 groups
            kk = GC // 8
    if kk > 0:  # >= kk groups with their maximum >= L, at most GC // 4 if possible
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
    return lo, nlo


@triton.jit
def _lean_cands_draw(row, rbase, V, C, M, keyM, cl, k, p, Z, topk_on, n, s0, s1, off, obase,
                     gm_ptr, gsc_ptr, dval_ptr, didx_ptr, R: tl.constexpr, G: tl.constexpr, NGM: tl.constexpr,
                     GC: tl.constexpr, CD: tl.constexpr, KEY_LO: tl.constexpr, VD: tl.constexpr,
                     SO: tl.constexpr, USE_ASM: tl.constexpr):
    """Candidate path of a lean config (SF, TS) from the row's C * R group maxima (G tokens per
    group): the bound L (_lean_bound), the <= GC groups above it listed (token order) and read
    back GB = 32 groups per block, every token >= L appended to the row's CD slots, then the
    thresholds and draws there. Not done where no L leaves <= GC groups, more than CD tokens are
    >= L (massive ties) or the kept set is not among them."""
    GB: tl.constexpr = 32  # groups read back per round (128 per round measured slower: a wider scan)
    gi = tl.arange(0, NGM)
    gv = tl.load(gm_ptr + row.to(tl.int64) * C * R + gi, mask=gi < C * R, other=float("-inf"),
                 cache_modifier=".cg")
    fin = gv > float("-inf")
    lo, nlo = _lean_bound(gv, fin, M, cl, k, p, Z, topk_on, GC)
    fits = nlo <= GC
    nread = tl.where(fits, nlo, 0)
    gsc = gsc_ptr + row.to(tl.int64) * GC
    if fits:  # the group list: ids of the groups >= L, in token order
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
                           KEY_LO, VD, CD, SO)
    return done
