"""PRM-free scorers: self-confidence and consensus; path aggregation; the registry."""
import asyncio
import math

import pytest

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.scorers import ConsensusScorer, ScoreInput, SelfConfidenceScorer, aggregate, make_scorer


def item(answer, step_lp=(-0.1, -0.1), ans_lp=(-0.2,)):
    return ScoreInput(problem="p", steps=["s"], step_logprobs=[list(step_lp)], answer=answer,
                      answer_logprobs=list(ans_lp) if answer is not None else None)


def test_self_confidence_is_the_geometric_mean_of_step_and_answer_confidence():
    (s,) = asyncio.run(SelfConfidenceScorer().score([item("4")]))
    assert s == pytest.approx(math.sqrt(math.exp(-0.1) * math.exp(-0.2)))
    (no_answer,) = asyncio.run(SelfConfidenceScorer().score([item(None)]))
    assert no_answer == pytest.approx(math.exp(-0.1))


def test_consensus_scores_agreement_discounted_by_confidence():
    items = [item("4"), item("2+2"), item("5"), item(None), item("4.0", step_lp=(-3.0,), ans_lp=(-3.0,))]
    conf = asyncio.run(SelfConfidenceScorer().score(items))
    got = asyncio.run(ConsensusScorer().score(items))
    # "4", "2+2" and "4.0" are one answer group (3 of 5); "5" and the answerless path stand alone
    want = [(3 + conf[0]) / 6, (3 + conf[1]) / 6, (1 + conf[2]) / 6, (1 + conf[3]) / 6, (3 + conf[4]) / 6]
    assert got == pytest.approx(want)
    assert got[0] > got[4] > got[2]  # agreement first, confidence second
    assert all(0 < x <= 1 for x in got)
    assert asyncio.run(ConsensusScorer().score([])) == []


def test_aggregation_and_registry():
    assert aggregate([0.5, 0.8], "last") == 0.8 and aggregate([0.5, 0.8], "min") == 0.5
    assert aggregate([0.5, 0.8], "prod") == pytest.approx(0.4) and aggregate([], "mean") == 0.0
    assert isinstance(make_scorer("consensus"), ConsensusScorer)
    with pytest.raises(ValueError, match="scorer"):
        make_scorer("nope")
    with pytest.raises(ValueError, match="scorer"):
        SearchConfig(scorer="nope")


def test_best_of_n_with_consensus_follows_the_majority():
    # 3 of 5 samples say 7 with low confidence, 2 say 9 with high confidence
    def script(prompt, req, i):
        return ("So the answer is \\boxed{7}.", -2.0) if i % 5 < 3 else ("So the answer is \\boxed{9}.", -0.01)

    eng = ScriptedEngine(script)
    by_conf = Solver(engine=eng, config=SearchConfig(method="best_of_n", n=5)).solve("q")
    by_vote = Solver(engine=eng, config=SearchConfig(method="best_of_n", n=5, scorer="consensus")).solve("q")
    assert by_conf.answer == "9" and by_vote.answer == "7"


def test_srca_runs_with_consensus():
    eng = ScriptedEngine(lambda p, r, i: "So the answer is \\boxed{4}." if "Step one." in p
                         else "Step one.\n\nSo the answer is \\boxed{4}.")
    sol = Solver(engine=eng, config=SearchConfig(method="srca", n=4, scorer="consensus")).solve("2+2?")
    assert sol.answer == "4" and sol.usage.scorer_calls > 0
