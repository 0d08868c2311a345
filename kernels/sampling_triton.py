"""Layer 2 of the Triton sampler: launch configs, the launch plan and ``fanout`` (see README.md).

Four configs remain, the ones ``default_config`` picks (H200 measurements in README.md):

* ``A``: fused, one launch; phase 1 writes per-chunk candidate lists, the last program of a row
  combines. Rows that are not top-k <= KC, below SPLIT_MIN_PARENTS rows.
* ``R``: split in three launches (phase 1; the combine, 4 warps per row, over candidates compacted
  into 256 row slots; the general path for the rows the combine flagged). Those rows from
  SPLIT_MIN_PARENTS rows on.
* ``TS``: fused, lean phase 1 (group maxima only), sorted thresholds, children drawn 8 at a time.
  Scalar top_k in 2..KC, below SPLIT_MIN_PARENTS rows.
* ``SF``: TS's algorithm split in two launches (the combine takes the general path itself).
  Scalar top_k in 2..KC, from SPLIT_MIN_PARENTS rows on.

Every config draws the same tokens as the forced general path (``force_general=True``), up to
float rounding of sums at a CDF boundary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from srca.seeds import kernel_key
from . import triton_loader as loader
from .triton_helpers import KEY_LOWEST_FINITE
from .triton_loader import CAP, CD_MAX, GC_GROUPS, KC, R_MAX

# From this many parent rows on the default is a split config (SF / R); below, a fused one
# (TS / A): the extra launches cost more host time than they save at small shapes.
SPLIT_MIN_PARENTS = 128


@dataclass(frozen=True)
class LaunchConfig:
    """How ``fanout`` launches the sampler; every choice keeps the tokens (all are exact).

    chunk: logits per phase-1 program (a power of two; clamped to the vocabulary); num_warps and
    maxnreg: phase 1's (and a fused combine's) warps and register cap (128 keeps two 8-warp
    programs per SM; below a 4096 chunk: 4 warps, no cap). split: the combine as its own launch
    (grid [rows], ``combine_warps`` warps) instead of in the last phase-1 program of a row.
    slots: compacted candidate slots per row (0: search the per-chunk lists in place). lean:
    phase 1 writes group maxima only, the combine finds the bound and reads the candidates back
    (needs slots). sorted_thresholds: top-k / top-p thresholds from one bitonic sort of the slots
    (needs slots). draw_block: children drawn per reduction (1, or a power of two). fold_general:
    (split) the combine takes the general path itself: two launches instead of three."""
    name: str
    chunk: int = 8192
    num_warps: int = 8
    maxnreg: int | None = 128
    split: bool = False
    combine_warps: int = 4
    slots: int = 0
    lean: bool = False
    sorted_thresholds: bool = False
    draw_block: int = 1
    fold_general: bool = False

    def __post_init__(self):
        def pow2(x):
            return isinstance(x, int) and x > 0 and x & (x - 1) == 0
        if not pow2(self.chunk) or self.chunk < 32:
            raise ValueError(f"config {self.name}: chunk must be a power of two >= 32, got {self.chunk}")
        if self.lean and self.chunk > 32 * R_MAX:
            raise ValueError(f"config {self.name}: a lean config needs chunk <= {32 * R_MAX}")
        if self.slots and (not pow2(self.slots) or self.slots > CD_MAX or not (self.split or self.lean)):
            raise ValueError(f"config {self.name}: slots must be a power of two <= {CD_MAX}, with split or lean")
        if (self.lean or self.sorted_thresholds) and not self.slots:
            raise ValueError(f"config {self.name}: lean and sorted_thresholds need slots > 0")
        if self.fold_general and not self.split:
            raise ValueError(f"config {self.name}: fold_general needs split")
        if not pow2(self.draw_block):
            raise ValueError(f"config {self.name}: draw_block must be a power of two, got {self.draw_block}")
        for f in ("num_warps", "combine_warps"):
            if not pow2(getattr(self, f)) or getattr(self, f) > 32:
                raise ValueError(f"config {self.name}: {f} must be a power of two <= 32")


CONFIGS = {c.name: c for c in (
    LaunchConfig("A"),
    LaunchConfig("R", split=True, slots=256),
    LaunchConfig("TS", slots=512, lean=True, sorted_thresholds=True, draw_block=8),
    LaunchConfig("SF", split=True, slots=512, lean=True, sorted_thresholds=True, draw_block=8, fold_general=True),
)}


def default_config(P: int, lean_ok: bool) -> LaunchConfig:
    """The config ``fanout(config=None)`` uses for P parent rows. ``lean_ok``: a scalar top_k in
    2..KC. Then SF from SPLIT_MIN_PARENTS rows, TS below (H200, 128 x 8, k = 50: SF 0.0674 ms per
    call / 0.0443 back to back vs R 0.1326 / 0.1099; 1 x 1: TS 0.0384 / 0.0214 vs A 0.0464 /
    0.0239). Otherwise (top-p-only rows, per-row top_k tensors) R / A: a top-p set wider than the
    lean combine's 512 groups takes the slow general path there (128 x 8, top-p 0.95 only: SF
    0.9055 ms vs R 0.1324)."""
    if lean_ok:
        return CONFIGS["SF"] if P >= SPLIT_MIN_PARENTS else CONFIGS["TS"]
    return CONFIGS["R"] if P >= SPLIT_MIN_PARENTS else CONFIGS["A"]


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


_PLANS: dict = {}


def fanout(logits, n, temp, top_k, top_p, seed: int, offset: int, *, config=None,
           force_general=False, want_invalid=True):
    """Launch the sampler: one launch (fused configs) or two or three (split); no host sync.
    logits: [P, V] float, unit stride in V. temp / top_k / top_p: python scalars (validated by the
    caller) or [P] tensors (f32 / int / f32). ``config``: a LaunchConfig, a name in CONFIGS, or
    None for ``default_config``. ``force_general``: every row on the general path (tests).
    Returns (tokens [P, n] int64, invalid [P] bool), or (tokens, None) with ``want_invalid=False``
    (the flags then go to a workspace buffer: no second allocation)."""
    if isinstance(config, str):
        config = CONFIGS[config]
    elif config is not None and not isinstance(config, LaunchConfig):
        raise ValueError(f"config must be a LaunchConfig, a name in {sorted(CONFIGS)} or None, got {config!r}")
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
    lean_ok = not kp and 1 < kv <= KC  # every row top-k <= KC (or greedy): the lean default applies
    lp = logits.data_ptr()
    # the launch plan's key: everything the launches specialize on besides the per-call values
    pk = (dev, P, V, logits.dtype, logits.stride(0), lp % 16 == 0, config, bool(force_general), all_general, lean_ok)
    if tp or kp or pp:
        pk += tuple((a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor) else None
                    for a in (temp, top_k, top_p))
    plan = _PLANS.get(pk)
    if plan is None:
        plan = _plan(P, V, config or default_config(P, lean_ok), tp, kp, pp, bool(force_general), all_general)
        if len(_PLANS) > 4096:
            _PLANS.clear()
        _PLANS[pk] = plan
    C, launches = plan
    stream = loader.current_stream(dev)
    ws = loader.workspace(dev, P, C, stream)
    invalid = torch.empty((P,), device=dev, dtype=torch.int8) if want_invalid else ws.scratch
    # every integer argument stays below 2**31 (typed i32: no recompiles as seeds/offsets change)
    s0, s1, off_lo = kernel_key(seed, offset)
    wt = ws.tensors
    args = (logits, logits.stride(0), V, C, n,
            temp if tp else tokens, 0.0 if tp else float(temp),
            top_k if kp else tokens, kv,
            top_p if pp else tokens, 0.0 if pp else float(top_p),
            s0, s1, off_lo, *wt[:5], tokens, invalid, *wt[5:])
    ptrs = None
    if loader._USE_ASM:  # the same arguments with device addresses for tensors (the direct launch's)
        tok_p = tokens.data_ptr()
        wp = ws.ptrs
        ptrs = (lp, logits.stride(0), V, C, n,
                temp.data_ptr() if tp else tok_p, 0.0 if tp else float(temp),
                top_k.data_ptr() if kp else tok_p, kv,
                top_p.data_ptr() if pp else tok_p, 0.0 if pp else float(top_p),
                s0, s1, off_lo, *wp[:5], tok_p, invalid.data_ptr() if want_invalid else ws.scratch_ptr, *wp[5:])
    for i, (launch, grid, kw) in enumerate(launches):
        launch(grid, args, kw, plan=(pk, i), ptrs=ptrs, stream=stream)
    return tokens, invalid.view(torch.bool) if want_invalid else None


def _plan(P, V, cfg: LaunchConfig, tp, kp, pp, force_general, all_general):
    """(C, [(launcher, grid, constexprs and options)]) for ``fanout``: one launch (fused), two
    (split + fold_general) or three (split: phase 1, combine, general path for flagged rows)."""
    CH = max(32, min(cfg.chunk, _next_pow2(V)))
    C = triton.cdiv(V, CH)
    G = min(32, CH)
    nw, maxnreg = (cfg.num_warps, cfg.maxnreg) if CH >= 4096 else (4, None)
    extra = {} if maxnreg is None else {"maxnreg": maxnreg}
    split = cfg.split and not all_general  # every row on the general path: the fused launch does it
    VD = 0 if cfg.draw_block == 1 else cfg.draw_block
    common = dict(T_PTR=tp, K_PTR=kp, P_PTR=pp, CH=CH, KC=KC, CAP=CAP, CPAD=_next_pow2(C),
                  NS=_next_pow2(C * CAP), BG=min(CH, 2048), KEY_LO=KEY_LOWEST_FINITE,
                  FORCE_GENERAL=force_general, VD=VD, GM=int(cfg.lean), NGM=_next_pow2(C * (CH // G)),
                  GC=GC_GROUPS, SO=int(cfg.sorted_thresholds), USE_ASM=loader._USE_ASM)
    launches = [(loader.PHASE1, (P * C,), dict(G=G, NB=12, SPLIT=int(split), CD=0 if split else cfg.slots,
                                               num_warps=nw, **common, **extra))]
    if split:
        # combine: one row per program, few warps (reductions mostly in-thread + warp shuffles);
        # fold_general: MODE 0, the general path in the same program, as the fused launch does
        launches.append((loader.COMBINE, (P,), dict(MODE=0 if cfg.fold_general else 1, CD=cfg.slots,
                                                    num_warps=cfg.combine_warps, **common)))
        if not cfg.fold_general:  # the general path for the rows the combine flagged
            launches.append((loader.COMBINE, (P,), dict(MODE=2, CD=0, num_warps=nw, **common, **extra)))
    return C, launches
