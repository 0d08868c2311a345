"""Slow, obvious torch references for the sampling kernels (same signatures as the kernels).

Semantics shared with the Triton kernel (see kernels/README.md), written once in
``sampling_rule`` (also the local engine's per-row sampler):

* temperature <= 0 or top_k == 1: greedy, the argmax (ties -> lowest index).
* top_k <= 0 or top_k >= V: no top-k cut. Otherwise keep logits >= the k-th largest (ties kept).
* top_p >= 1: no top-p cut. Otherwise, after the top-k cut and renormalising, keep the smallest
  set of largest probabilities whose mass reaches top_p (ties at the boundary kept).
* A row with a NaN or +inf logit, or with no finite logit, is invalid: its tokens are -1 and
  ``invalid[row]`` is True. -inf entries in an otherwise valid row are simply never drawn.

Exact equality with the kernel is expected only on deterministic inputs (greedy, top_k=1,
one-hot rows); random draws use a different stream (torch.Generator) and agree in distribution.
"""
from __future__ import annotations

import torch

from srca.seeds import reference_seed
from .params import check_logits, check_seed, row_params
from .sampling_rule import greedy_rows, keep_mask


def sample_fanout_ref(
    logits: torch.Tensor,
    n: int,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    *,
    seed: int = 0,
    offset: int = 0,
    return_invalid: bool = False,
):
    """Draw ``n`` tokens from each row. logits: [P, V] -> tokens: [P, n] int64 (-1: invalid row)."""
    check_logits(logits, n)
    P = logits.shape[0]
    temp, k, p = row_params(P, logits.device, temperature, top_k, top_p)
    x = logits.float()  # [P, V]

    invalid = torch.isnan(x).any(-1) | torch.isposinf(x).any(-1) | ~torch.isfinite(x).any(-1)
    x = torch.where(invalid[:, None], torch.zeros_like(x), x)  # keep the maths finite
    greedy = greedy_rows(temp, k)
    argmax = x.argmax(-1)  # first maximal index
    keep, probs = keep_mask(x, temp, k, p)  # [P, V] each
    w = torch.where(keep, probs, torch.zeros_like(probs))
    w = torch.where(greedy[:, None], torch.ones_like(w), w)  # any valid weights; replaced below

    check_seed(seed, offset)
    gen = torch.Generator(device=logits.device)
    gen.manual_seed(reference_seed(seed, offset))
    tokens = torch.multinomial(w, n, replacement=True, generator=gen)  # [P, n]
    tokens = torch.where(greedy[:, None], argmax[:, None].expand(P, n), tokens)
    tokens = torch.where(invalid[:, None], torch.full_like(tokens, -1), tokens)
    return (tokens, invalid) if return_invalid else tokens


def sample_ref(logits, temperature=1.0, top_k=0, top_p=1.0, *, seed=0, offset=0, return_invalid=False):
    """One token per row. logits: [B, V] -> tokens: [B] int64 (-1: invalid row)."""
    out = sample_fanout_ref(logits, 1, temperature, top_k, top_p, seed=seed, offset=offset,
                            return_invalid=return_invalid)
    if return_invalid:
        return out[0][:, 0], out[1]
    return out[:, 0]


def allowed_mask_ref(logits, temperature=1.0, top_k=0, top_p=1.0) -> torch.Tensor:
    """The set each row may draw from, [P, V] bool (for tests; float64 maths)."""
    P = logits.shape[0]
    temp, k, p = row_params(P, logits.device, temperature, top_k, top_p)
    x = logits.double()
    keep, _ = keep_mask(x, temp, k, p)
    am = torch.zeros_like(keep)
    am[torch.arange(P), x.argmax(-1)] = True
    return torch.where(greedy_rows(temp, k)[:, None], am, keep)
