"""Free-text answer clustering with the bundled all-MiniLM-L6-v2 (loads a small model, ~5 s)."""
import subprocess
import sys

import pytest

import importlib.util

if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("sklearn") is None:
    pytest.skip("needs sentence-transformers and scikit-learn", allow_module_level=True)


def test_import_loads_no_model():
    code = ("import sys, srca.semantic as s; assert s._model is None; "
            "assert 'sentence_transformers' not in sys.modules; print(s.model_dir())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("model")


@pytest.mark.slow
def test_paraphrases_share_a_cluster():
    from srca.semantic import cluster_texts

    texts = ["the triangle is isosceles", "It is an isosceles triangle", "Paris", "paris, France",
             "the triangle is isosceles"]
    labels = cluster_texts(texts, threshold=0.3)
    assert labels == [0, 0, 1, 1, 0]
    # threshold 0 only merges identical texts
    assert cluster_texts(texts, threshold=0.0) == [0, 1, 2, 3, 0]
    assert cluster_texts([], 0.3) == []
    assert cluster_texts(["only"], 0.3) == [0]


@pytest.mark.slow
def test_answers_cluster_semantic_mode():
    from srca.answers import cluster

    labels = cluster(["1/2", "0.5", "the triangle is isosceles", "an isosceles triangle", None], semantic=True,
                     threshold=0.3)
    assert labels[0] == labels[1]
    assert labels[2] == labels[3] != labels[0]
    assert labels[4] == -1


def test_bad_threshold():
    from srca.semantic import cluster_texts

    with pytest.raises(ValueError, match="threshold"):
        cluster_texts(["a", "b"], threshold=-1)
