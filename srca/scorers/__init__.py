"""Scorers: rate the last step of each path. A registry maps names to factories.

``self_confidence`` (:mod:`.self_confidence`) is the PRM-free default: it reads the policy's own
token log-probabilities, so it costs no extra model call. A process reward model (``prm``,
:mod:`.prm`, imported when first built) implements the same protocol (:mod:`.base`). Path scores
are aggregated from step scores by the controller (``SearchConfig.aggregation``: last, min, prod
or mean).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from .base import Scorer, ScoreInput, aggregate
from .self_confidence import SelfConfidenceScorer


def _lazy(module: str, cls: str) -> Callable[..., Scorer]:
    def make(**opts: Any) -> Scorer:
        return getattr(importlib.import_module(module), cls)(**opts)

    return make


SCORERS: dict[str, Callable[..., Scorer]] = {
    "self_confidence": SelfConfidenceScorer,
    "prm": _lazy("srca.scorers.prm", "PRMScorer"),
}


def make_scorer(name: str, **opts: Any) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"scorer: unknown {name!r}; choose one of {sorted(SCORERS)}")
    return SCORERS[name](**opts)


__all__ = ["SCORERS", "Scorer", "ScoreInput", "SelfConfidenceScorer", "aggregate", "make_scorer"]
