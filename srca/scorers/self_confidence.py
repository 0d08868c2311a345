"""``self_confidence``: the PRM-free default scorer, read from the policy's own token
log-probabilities (no extra model call)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from .base import ScoreInput


def mean_prob(logprobs: Sequence[float] | None) -> float | None:
    """Geometric-mean token probability, ``exp(mean(logprobs))``; None when empty."""
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


class SelfConfidenceScorer:
    """PRM-free score from the policy's own log-probabilities.

    step confidence ``s = exp(mean logprob of the step's tokens)``; answer confidence
    ``a = exp(mean logprob of the checkpoint answer's tokens)`` (how sure the model is of the
    answer the path implies now, the signal CoT-decoding uses). Score ``sqrt(s * a)``, or ``s``
    alone when no answer was probed, or ``a`` alone when the step has no logprobs.
    """

    name = "self_confidence"
    uses_logprobs = True

    def __init__(self, **_: Any) -> None:
        pass

    async def score(self, items: Sequence[ScoreInput]) -> list[float]:
        out = []
        for it in items:
            s = mean_prob(it.step_logprobs[-1] if it.step_logprobs else None)
            a = mean_prob(it.answer_logprobs) if it.answer is not None else None
            if s is not None and a is not None:
                out.append(math.sqrt(s * a))
            else:
                out.append(s if s is not None else (a if a is not None else 0.0))
        return out
