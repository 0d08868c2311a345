"""The scorer protocol: what a scorer is given (:class:`ScoreInput`), what it returns (a score
in [0, 1] of each path's last step), and how step scores make a path score (:func:`aggregate`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable


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
