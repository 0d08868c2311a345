"""Scorers: rate the last step of each path. A registry maps names to factories.

``self_confidence`` is the PRM-free default: it reads the policy's own token log-probabilities,
so it costs no extra model call. A process reward model (``prm``, :mod:`srca.scorers_prm`)
implements the same protocol. Path scores are aggregated from step scores by the controller
(``SearchConfig.aggregation``: last, min, prod or mean).
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable


@dataclass
class ScoreInput:
    """One path to score. ``steps``: the path's step texts, in order. ``step_logprobs``: token
    log-probabilities per step (may be empty lists). ``answer``/``answer_logprobs``: the
    checkpoint (or final) answer after the last step and its tokens' log-probabilities."""

    problem: str
    steps: list[str]
    step_logprobs: list[list[float]] = field(default_factory=list)
    answer: str | None = None
    answer_logprobs: list[float] | None = None


@runtime_checkable
class Scorer(Protocol):
    """``uses_logprobs`` (optional attribute, default True): whether :meth:`score` reads the
    policy's token log-probabilities; when False the search does not ask the engine for them."""

    name: str

    async def score(self, items: Sequence[ScoreInput]) -> list[float]:
        """Score in [0, 1] of the last step of each path, given the whole path."""
        ...


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


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """Path score from its step scores."""
    if not step_scores:
        return 0.0
    if how == "last":
        return step_scores[-1]
    if how == "min":
        return min(step_scores)
    if how == "prod":
        return math.prod(step_scores)
    if how == "mean":
        return sum(step_scores) / len(step_scores)
    raise ValueError(f"aggregation: unknown {how!r}")


def _lazy(module: str, cls: str) -> Callable[..., Scorer]:
    def make(**opts: Any) -> Scorer:
        return getattr(importlib.import_module(module), cls)(**opts)

    return make


SCORERS: dict[str, Callable[..., Scorer]] = {
    "self_confidence": SelfConfidenceScorer,
    "prm": _lazy("srca.scorers_prm", "PRMScorer"),
}


def make_scorer(name: str, **opts: Any) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"scorer: unknown {name!r}; choose one of {sorted(SCORERS)}")
    return SCORERS[name](**opts)
