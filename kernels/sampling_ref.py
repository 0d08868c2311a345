"""Slow, obvious torch references for the sampling kernels (same signatures as the kernels).

Semantics shared with the Triton kernel (see kernels/README.md):

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
    P, V = logits.shape
    temp, k, p = row_params(P, logits.device, temperature, top_k, top_p)
    x = logits.float()  # [P, V]

    invalid = torch.isnan(x).any(-1) | torch.isposinf(x).any(-1) | ~torch.isfinite(x).any(-1)
    x = torch.where(invalid[:, None], torch.zeros_like(x), x)  # keep the maths finite
    greedy = (temp <= 0) | (k == 1)
    argmax = x.argmax(-1)  # first maximal index

    # top-k: keep logits >= k-th largest
    k_eff = torch.where((k > 0) & (k < V), k, torch.full_like(k, V))  # [P]
    xs = x.sort(-1, descending=True).values  # [P, V]
    kth = xs.gather(1, (k_eff - 1)[:, None])  # [P, 1]
    keep = (x >= kth) & (x > float("-inf"))

    # softmax over the kept logits at temperature
    t_safe = torch.where(temp > 0, temp, torch.ones_like(temp))[:, None]
    probs = torch.softmax(torch.where(keep, x / t_safe, torch.full_like(x, float("-inf"))), -1)

    # top-p: smallest prefix of sorted probs with mass >= top_p (ties at the threshold kept)
    ps = probs.sort(-1, descending=True).values  # [P, V]
    cum = ps.cumsum(-1)
    j = (cum < p[:, None] * cum[:, -1:]).sum(-1).clamp(max=V - 1)  # first index reaching p
    tau = ps.gather(1, j[:, None])  # [P, 1]
    keep &= (probs >= tau) | (p[:, None] >= 1)
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
    P, V = logits.shape
    temp, k, p = row_params(P, logits.device, temperature, top_k, top_p)
    x = logits.double()
    k_eff = torch.where((k > 0) & (k < V), k, torch.full_like(k, V))
    kth = x.sort(-1, descending=True).values.gather(1, (k_eff - 1)[:, None])
    keep = (x >= kth) & (x > float("-inf"))
    t_safe = torch.where(temp > 0, temp, torch.ones_like(temp)).double()[:, None]
    probs = torch.softmax(torch.where(keep, x / t_safe, torch.full_like(x, float("-inf"))), -1)
    ps = probs.sort(-1, descending=True).values
    cum = ps.cumsum(-1)
    j = (cum < p.double()[:, None] * cum[:, -1:]).sum(-1).clamp(max=V - 1)
    keep &= (probs >= ps.gather(1, j[:, None])) | (p[:, None] >= 1)
    greedy = (temp <= 0) | (k == 1)
    am = torch.zeros_like(keep)
    am[torch.arange(P), x.argmax(-1)] = True
    return torch.where(greedy[:, None], am, keep)
