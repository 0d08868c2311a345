"""Which token each row takes. Greedy is argmax. The first token of every child of a request
comes from :func:`srca.kernels.sample_fanout` (one read of the parent row for all ``n``
children); later tokens from :func:`sample_row`, with a counter-based uniform, so a row's draws
do not depend on what else is in the batch. Seeds: :mod:`srca.seeds` (``fanout_seed``,
``stream_seed``, ``uniform``); the rule: :mod:`srca.kernels.sampling_rule`."""
from __future__ import annotations

from typing import Sequence

import torch

from ...kernels import sample_fanout
from ...kernels.sampling_rule import top_k_floor, top_p_floor
from ...seeds import fanout_seed, uniform
from ..base import GenRequest

CAND = 256  # candidates looked at before a full sort when sampling with top-p


def sample_row(x: torch.Tensor, temperature: float, top_k: int, top_p: float, u: float) -> int:
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
        vals, idx = z.topk(min(V, CAND))
        probs = (vals - lse).exp()
        if float(probs.sum()) < top_p and V > CAND:  # nucleus reaches past the candidates
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


def first_tokens(logits: torch.Tensor, req: GenRequest, n: int, seed: int) -> list[int]:
    """First tokens of the ``n`` children of ``req`` (seeded with ``seed``). logits: [1, V] float32."""
    if req.greedy:
        return [int(logits.argmax())]
    out = sample_fanout(logits, n, float(req.temperature), int(req.top_k), float(req.top_p), seed=fanout_seed(seed),
                        offset=0)[0].tolist()
    if min(out) < 0:
        raise RuntimeError("LocalEngine: the model produced non-finite logits")
    return out


def next_tokens(logits: torch.Tensor, reqs: Sequence[GenRequest], streams: Sequence[int], step: int) -> list[int]:
    """Token ``step`` (>= 1) of each row. logits: [B, V] float32; ``reqs[b]``, ``streams[b]``: row
    ``b``'s request and its sampling stream (``srca.seeds.stream_seed``)."""
    chosen = logits.argmax(-1).tolist()
    for b, r in enumerate(reqs):
        if not r.greedy:
            chosen[b] = sample_row(logits[b], r.temperature, r.top_k, r.top_p, uniform(streams[b], step))
    return chosen
