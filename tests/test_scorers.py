"""The PRM-free self-confidence scorer, path aggregation and the scorer registry."""
import asyncio
import math

import pytest

from srca import SearchConfig
from srca.scorers import ScoreInput, SelfConfidenceScorer, aggregate, make_scorer


def item(answer, step_lp=(-0.1, -0.1), ans_lp=(-0.2,)):
    return ScoreInput(problem="p", steps=["s"], step_logprobs=[list(step_lp)], answer=answer,
                      answer_logprobs=list(ans_lp) if answer is not None else None)


def test_self_confidence_is_the_geometric_mean_of_step_and_answer_confidence():
    (s,) = asyncio.run(SelfConfidenceScorer().score([item("4")]))
    assert s == pytest.approx(math.sqrt(math.exp(-0.1) * math.exp(-0.2)))
    (no_answer,) = asyncio.run(SelfConfidenceScorer().score([item(None)]))
    assert no_answer == pytest.approx(math.exp(-0.1))
    (no_step_lp,) = asyncio.run(SelfConfidenceScorer().score([item("4", step_lp=())]))
    assert no_step_lp == pytest.approx(math.exp(-0.2))


def test_aggregation_and_registry():
    assert aggregate([0.5, 0.8], "last") == 0.8 and aggregate([0.5, 0.8], "min") == 0.5
    assert aggregate([0.5, 0.8], "prod") == pytest.approx(0.4) and aggregate([], "mean") == 0.0
    with pytest.raises(ValueError, match="scorer"):
        make_scorer("nope")
    with pytest.raises(ValueError, match="scorer"):
        SearchConfig(scorer="nope")
