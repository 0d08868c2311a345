"""Top-k / top-p / temperature sampling, with fan-out: one read of a parent row, n children.

Three layers (as FlashInfer's ``sampling.py``):
1. ``triton_loader``: compiled kernels cached per specialization and launched directly, the cached
   workspace; imported lazily by ``_triton_module()`` (Triton only when a kernel is first needed).
2. ``_launch_fanout()`` and ``sampling_triton.fanout``: checks shapes/dtypes/devices, allocates the
   outputs, picks a launch config, launches.
3. ``sample_fanout()`` / ``sample()``: typed public functions; they pick the Triton kernel for
   CUDA tensors and the torch reference (``sampling_ref``) elsewhere.

RNG state is explicit: (seed, offset) ints. The kernel never synchronises with the host.
"""
from __future__ import annotations

import functools
import os

import torch

from .params import check_logits, check_seed, kernel_params
from .sampling_ref import sample_fanout_ref

_IMPLS = ("auto", "triton", "torch")


@functools.lru_cache(maxsize=None)
def _triton_module():
    from . import sampling_triton  # imports triton; only when a kernel is first needed

    return sampling_triton


def triton_available() -> bool:
    try:
        _triton_module()
        return True
    except ImportError:
        return False


def _use_triton(logits: torch.Tensor, impl: str) -> bool:
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if impl == "torch":
        return False
    if impl == "triton":
        if not logits.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("impl='triton' on a CPU tensor needs TRITON_INTERPRET=1 set before triton is imported")
        return True
    return logits.is_cuda and triton_available()


def _launch_fanout(logits, n, temperature, top_k, top_p, seed, offset, **cfg):
    """Layer 2: validate, launch (one kernel, two or three for a split config; scalar parameters
    go in as kernel arguments; no host sync). ``cfg``: ``sampling_triton.fanout``'s keywords.
    Returns (tokens [P, n] int64, invalid [P] bool, or None with ``want_invalid=False``)."""
    P, V = logits.shape
    temp, k, p = kernel_params(P, logits.device, temperature, top_k, top_p)
    if logits.dtype == torch.float64:
        logits = logits.float()
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    return _triton_module().fanout(logits, n, temp, k, p, int(seed), int(offset), **cfg)


def sample_fanout(
    logits: torch.Tensor,
    n: int,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    *,
    seed: int = 0,
    offset: int = 0,
    return_invalid: bool = False,
    impl: str = "auto",
):
    """Draw ``n`` children from each parent row, reading each row once.

    logits: [P, V] float32/float16/bfloat16. temperature (float, <= 0 means greedy), top_k (int,
    <= 0 means off), top_p (float in (0, 1]): scalars or [P] tensors. seed, offset: ints; the same
    (seed, offset) gives the same tokens; advance ``offset`` between calls.
    Returns tokens [P, n] int64; a row with NaN/+inf or no finite logit gets -1 everywhere.
    With ``return_invalid=True`` returns (tokens, invalid [P] bool).
    ``impl``: "auto" (Triton on CUDA, torch reference elsewhere), "triton" or "torch".
    """
    check_logits(logits, n)
    check_seed(seed, offset)
    if not _use_triton(logits, impl):
        return sample_fanout_ref(logits, n, temperature, top_k, top_p, seed=seed, offset=offset,
                                 return_invalid=return_invalid)
    tokens, invalid = _launch_fanout(logits, n, temperature, top_k, top_p, seed, offset,
                                     want_invalid=bool(return_invalid))
    return (tokens, invalid) if return_invalid else tokens


def sample(
    logits: torch.Tensor,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    *,
    seed: int = 0,
    offset: int = 0,
    return_invalid: bool = False,
    impl: str = "auto",
):
    """One token per row. logits: [B, V] -> tokens [B] int64 (-1 for an invalid row);
    with ``return_invalid=True`` -> (tokens [B], invalid [B] bool). Parameters as ``sample_fanout``."""
    out = sample_fanout(logits, 1, temperature, top_k, top_p, seed=seed, offset=offset,
                        return_invalid=return_invalid, impl=impl)
    if return_invalid:
        return out[0][:, 0], out[1]
    return out[:, 0]
