"""Layer 1 of the Triton sampler: compiled kernels cached and launched directly, and the cached
per-(device, stream) workspace. No algorithm here; ``sampling_triton`` plans the launches."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from triton import knobs
from triton.runtime.driver import driver

from .triton_kernels import _combine_kernel, _fanout_kernel

KC = 64  # the candidate path covers top_k <= KC (phase 1 keeps >= KC candidates per chunk)
CAP = 96  # candidate slots per chunk (configs A, R)
CD_MAX = 512  # compacted candidate slots per row (configs with slots > 0)
R_MAX = 512  # group maxima per chunk (CH / 32) the workspace holds (lean configs)
GC_GROUPS = 512  # the lean combine reads back at most this many groups of 32 tokens per row

# The inline-PTX store and the direct launch need a GPU; under TRITON_INTERPRET (CPU tests) both
# are off and every launch goes through Triton's own path.
_USE_ASM = os.environ.get("TRITON_INTERPRET", "0") not in ("1", "true", "True")
FAST_LAUNCH = True  # False: always Triton's launch path (set by _Launcher if its API changed)


@dataclass
class Workspace:
    """Scratch buffers for ``rows`` x ``chunks``, cached per (device, stream) and grown, never
    shrunk. ``tensors``: the nine the kernels take, in signature order (stat [rows*chunks*4] f32,
    carg [rows*chunks] i32, cval / cidx [rows*chunks*CAP] f32 / i32, count [rows] i32 kept at
    zero between launches, dval / didx [rows*CD_MAX] f32 / i32, gm [rows*chunks*R_MAX] f32, gsc
    [rows*GC_GROUPS] i32); ``ptrs``: their device addresses (the direct launch passes ints as they
    are); ``scratch``: a [rows] int8 sink for the invalid flags when the caller does not want them."""
    chunks_cap: int
    rows_cap: int
    tensors: tuple
    ptrs: tuple
    scratch: torch.Tensor
    scratch_ptr: int

    @property
    def dval(self):
        return self.tensors[5]

    @property
    def gm(self):
        return self.tensors[7]


_WS: dict = {}


def current_stream(dev) -> int:
    """The stream a launch goes to (Triton's: the current device's current stream); 0 off CUDA."""
    return driver.active.get_current_stream(driver.active.get_current_device()) if dev.type == "cuda" else 0


def workspace(dev, rows: int, C: int, stream=None) -> Workspace:
    """The cached workspace for ``rows`` rows of ``C`` chunks on ``dev`` (current stream if None)."""
    key = (dev, current_stream(dev) if stream is None else stream)
    ws = _WS.get(key)
    if ws is None or ws.chunks_cap < rows * C or ws.rows_cap < rows:
        rc, r = max(rows * C, 4096), max(rows, 256)
        f32, i32 = dict(device=dev, dtype=torch.float32), dict(device=dev, dtype=torch.int32)
        tensors = (torch.empty((rc * 4,), **f32), torch.empty((rc,), **i32),
                   torch.empty((rc * CAP,), **f32), torch.empty((rc * CAP,), **i32),
                   torch.zeros((r,), **i32),
                   torch.empty((r * CD_MAX,), **f32), torch.empty((r * CD_MAX,), **i32),
                   torch.empty((rc * R_MAX,), **f32), torch.empty((r * GC_GROUPS,), **i32))
        scratch = torch.empty((r,), device=dev, dtype=torch.int8)
        ws = Workspace(rc, r, tensors, tuple(t.data_ptr() for t in tensors), scratch, scratch.data_ptr())
        _WS[key] = ws
    return ws


class Launcher:
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
        ``args`` with every tensor replaced by its device address, used for the direct launch (a
        tensor costs a ``data_ptr()`` call and a driver ``cuPointerGetAttribute`` check each, ~15
        of them per fanout launch). ``stream``: the current stream when the caller has it."""
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
    """What Triton specializes an argument on (see Launcher)."""
    t = type(a)
    if t is int:
        return (a == 1, a % 16 == 0, -2**31 <= a < 2**31)
    if t is float or t is bool:
        return t
    return (a.dtype, a.data_ptr() % 16 == 0)


PHASE1 = Launcher(_fanout_kernel)  # grid [P * C]: phase 1 (+ the combine when fused)
COMBINE = Launcher(_combine_kernel)  # grid [P]: the split combine, or R's general-path launch
