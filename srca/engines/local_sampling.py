"""Sampling for the local engine: counter-based draws, so a row's tokens do not depend on what
else is in the batch; the first token of a fan-out comes from :func:`srca.kernels.sample_fanout`."""
from __future__ import annotations

import torch

from ..kernels.sampling_rule import top_k_floor, top_p_floor
from ..seeds import stream_seed, uniform

_CAND = 256  # candidates looked at before a full sort when sampling with top-p


def _sample_row(x: torch.Tensor, temperature: float, top_k: int, top_p: float, u: float) -> int:
    """One token from logits ``x`` [V] (float32): keep logits >= the k-th largest (ties kept),
    softmax at ``temperature``, keep the smallest most-probable set reaching ``top_p`` (ties kept),
    draw by inverse CDF with the uniform ``u``: the rule of ``srca.kernels.sampling_rule`` (its
    two thresholds), applied to a sorted prefix of the row's candidates."""
    V = x.numel()
    z = x / temperature
    if 0 < top_k < V:
        vals, idx = z.topk(min(V, top_k + 16))  # sorted; a few extra for ties at the k-th
        kept = vals >= top_k_floor(vals, top_k)
        vals, idx = vals[kept], idx[kept]
        probs = torch.softmax(vals, 0)
    elif top_p < 1.0:
        lse = torch.logsumexp(z, 0)
        vals, idx = z.topk(min(V, _CAND))
        probs = (vals - lse).exp()
        if float(probs.sum()) < top_p and V > _CAND:  # nucleus reaches past the candidates
            vals, idx = z.sort(descending=True)
            probs = (vals - lse).exp()
    else:
        cdf = torch.softmax(z, 0).cumsum(0)
        j = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])]), right=True)[0])
        return min(j, V - 1)
    if top_p < 1.0:
        kept = probs >= top_p_floor(probs, top_p, None if 0 < top_k < V else 1.0)
        probs, idx = probs[kept], idx[kept]
    cdf = probs.cumsum(0)
    j = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])]), right=True)[0])
    return int(idx[min(j, idx.numel() - 1)])


def _fanout(logits: torch.Tensor, n: int, temperature: float, top_k: int, top_p: float, seed: int) -> list[int]:
    """First tokens of ``n`` children of one parent. logits: [1, V] float32."""
    try:  # the shared kernel (Triton on CUDA, torch reference on CPU)
        from ..kernels import sample_fanout
    except ImportError:  # pragma: no cover - only while srca.kernels is absent
        sample_fanout = None
    if sample_fanout is not None:
        out = sample_fanout(logits, n, float(temperature), int(top_k), float(top_p), seed=seed, offset=0)[0].tolist()
        if min(out) < 0:
            raise RuntimeError("LocalEngine: the model produced non-finite logits")
        return out
    return [_sample_row(logits[0], temperature, top_k, top_p, uniform(stream_seed(seed, i), 0)) for i in range(n)]
