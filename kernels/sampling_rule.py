"""The sampling rule, written once: top-k, then temperature, then top-p (FlashInfer's ``top_k_first``).

* top-k: keep the logits >= the k-th largest (ties kept); ``k <= 0`` or ``k >= V`` is off.
* temperature: softmax of the kept logits / T.
* top-p: keep the smallest set of largest probabilities whose mass reaches ``top_p`` of the
  total (ties at the boundary kept); ``top_p >= 1`` is off.
* greedy rows (``T <= 0`` or ``k == 1``) take the argmax instead.

:func:`keep_mask` applies it to whole rows: the torch reference (``sampling_ref``: its draws and
``allowed_mask_ref``) uses it. The local engine's per-row sampler
(``srca.engines.local.sampler``) applies the same two thresholds, :func:`top_k_floor` and
:func:`top_p_floor`, to a sorted prefix of a row's candidates. The Triton kernel implements the
rule in its own passes (kernels/README.md) and is tested against ``allowed_mask_ref``.
"""
from __future__ import annotations

import torch


def top_k_floor(desc: torch.Tensor, k) -> torch.Tensor:
    """The k-th largest value: keep ``x >= top_k_floor`` (ties kept).

    desc: [..., n] sorted descending; k: an int, or an int64 tensor of desc's leading shape,
    each in 1..n. Returns [..., 1]."""
    if isinstance(k, torch.Tensor):
        return desc.gather(-1, (k - 1)[..., None])
    return desc[..., k - 1:k]


def top_p_floor(probs_desc: torch.Tensor, top_p, total=None) -> torch.Tensor:
    """The smallest kept probability: keep ``probs >= top_p_floor`` (ties at the boundary kept).

    probs_desc: [..., n] probabilities sorted descending (a prefix of a row will do when it holds
    the nucleus). The kept set is the shortest prefix whose mass reaches ``top_p * total``;
    ``total`` is the mass the nucleus is a share of, by default ``probs_desc``'s own sum. For one
    row, ``top_p`` and ``total`` may be python floats (the bound is then a python float);
    otherwise ``top_p`` is a [..., 1] tensor. Returns [..., 1]."""
    cum = probs_desc.cumsum(-1)
    if total is None:
        total = cum[..., -1:] if isinstance(top_p, torch.Tensor) else float(cum[..., -1])
    j = (cum < top_p * total).sum(-1, keepdim=True).clamp(max=probs_desc.shape[-1] - 1)
    return probs_desc.gather(-1, j)


def greedy_rows(temperature: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """Rows that take the argmax: [P] bool from per-row temperature [P] and top_k [P]."""
    return (temperature <= 0) | (top_k == 1)


def keep_mask(x: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor,
              top_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule on whole rows, in ``x``'s dtype (greedy rows are the caller's: see :func:`greedy_rows`).

    x: [P, V] finite or -inf logits; temperature f32 [P], top_k i64 [P], top_p f32 [P] (as
    ``params.row_params`` gives them). Returns (keep [P, V] bool, probs [P, V]): the tokens
    each row may draw, and the softmax at temperature over the top-k set (before the top-p cut)."""
    V = x.shape[-1]
    k_eff = torch.where((top_k > 0) & (top_k < V), top_k, torch.full_like(top_k, V))  # [P]
    kth = top_k_floor(x.sort(-1, descending=True).values, k_eff)  # [P, 1]
    keep = (x >= kth) & (x > float("-inf"))
    t_safe = torch.where(temperature > 0, temperature, torch.ones_like(temperature)).to(x.dtype)[:, None]
    probs = torch.softmax(torch.where(keep, x / t_safe, torch.full_like(x, float("-inf"))), -1)
    tau = top_p_floor(probs.sort(-1, descending=True).values, top_p.to(x.dtype)[:, None])  # [P, 1]
    keep &= (probs >= tau) | (top_p[:, None] >= 1)
    return keep, probs


__all__ = ["greedy_rows", "keep_mask", "top_k_floor", "top_p_floor"]
