"""The trace viewer: a ``Solution`` as one self-contained HTML page.

The page (``viewer_assets/trace.html``: inline CSS and JS, no network) draws the search tree:
a column per step, each node coloured by the answer group of its checkpoint (or final) answer,
kept and pruned beams, finished paths with their scores, the winning candidate and its path,
and the vote tally of the final pool. It can also follow a live ``POST /solve`` event stream.

>>> html = render_html(solution)          # a Solution or its to_dict()
>>> write_html(solution, "trace.html")
"""
from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .solution import Solution

__all__ = ["load_solution", "page_data", "render_html", "solution_dict", "winner_index", "write_html"]

_DATA_SLOT = "__SRCA_DATA__"
_TITLE_SLOT = "__SRCA_TITLE__"


@lru_cache(maxsize=1)
def _template() -> str:
    return resources.files("srca").joinpath("viewer_assets/trace.html").read_text(encoding="utf-8")


def solution_dict(obj: Solution | dict[str, Any]) -> dict[str, Any]:
    """The Solution dict inside ``obj``: a Solution, its ``to_dict()``, or an envelope around it
    (a job's ``{"result": ...}``, a streamed ``final`` event's ``{"solution": ...}``)."""
    if isinstance(obj, Solution):
        return obj.to_dict()
    if not isinstance(obj, dict):
        raise TypeError(f"expected a Solution or its dict, got {type(obj).__name__}")
    if "trace" not in obj:
        for key in ("solution", "result"):
            if isinstance(obj.get(key), dict):
                return solution_dict(obj[key])
    if not isinstance(obj.get("trace"), list) or not isinstance(obj.get("candidates"), list):
        raise ValueError("not a Solution: expected the lists 'trace' and 'candidates' (Solution.to_dict())")
    return obj


def winner_index(d: dict[str, Any]) -> int | None:
    """Index in ``d["candidates"]`` of the candidate the answer came from: the member of the
    winning answer's group that the decision rule picks. ``best_score``, ``weighted_vote`` and
    ``majority`` take the group's best-scored member (best_score's pool maximum is also its
    group's); ``confidence_vote`` its most confident full answer (a path or a settled lineage)
    before any checkpoint. Ties: the earliest."""
    cands = d.get("candidates") or []
    if d.get("answer") is None:
        return None
    group = next((c["group"] for c in cands if c["answer"] == d["answer"] and c["canonical"] == d.get("canonical")), None)
    if group is None:
        return None
    full_first = _decision(d) == "confidence_vote"
    members = [i for i, c in enumerate(cands) if c["group"] == group]
    return max(members, key=lambda i: ((cands[i]["source"] != "checkpoint") if full_first else True,
                                       cands[i]["score"], -i))


def _answer_groups(d: dict[str, Any]) -> dict[str, str]:
    """Every answer in the tree -> a group key. Pool answers keep the group ``decide`` gave them
    (math-verify equivalence); an answer only seen in the tree (a pruned checkpoint without CCA,
    say) joins the first group it is equivalent to, else starts a group of its own."""
    from .answers import canonical, equivalent

    out: dict[str, str] = {}
    reps: list[tuple[str, str]] = []  # (an answer of the group, its key), one per group
    for c in d.get("candidates") or []:
        key = f"g{c['group']}"
        if c["answer"] not in out:
            out[c["answer"]] = key
            if all(k != key for _, k in reps):
                reps.append((c["answer"], key))
    for t in d.get("trace") or []:
        a = t.get("answer") if t.get("finished") else t.get("checkpoint")
        if a is None or a in out:
            continue
        key = next((k for rep, k in reps if equivalent(rep, a)), None)
        if key is None:
            key = f"c:{canonical(a) or a}"
            reps.append((a, key))
        out[a] = key
    return out


def _decision(d: dict[str, Any]) -> str | None:
    """The decision rule the solve used: the method's own, else the config's (``auto``: the
    method's default)."""
    from .methods import METHODS

    m = METHODS.get(d.get("method"))
    cfg = d.get("config") or {}
    if m is None:
        return cfg.get("decision")
    # the Method's own rule (one place): decision_for reads the config's fields by name
    return m.decision_for(SimpleNamespace(decision=cfg.get("decision", "auto"), lineages=cfg.get("lineages", True)))


def _finite(x: Any) -> Any:
    """JSON has no NaN or infinity (the browser's JSON.parse rejects them): they become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def page_data(solution: Solution | dict[str, Any] | None, stream_url: str | None = None) -> dict[str, Any]:
    """What the page embeds: the Solution dict as is, plus the renderer's answer groups and winner."""
    if solution is None:
        return {"solution": None, "view": {}, "stream_url": stream_url}
    d = solution_dict(solution)
    view = {"answer_groups": _answer_groups(d), "winner": winner_index(d), "decision": _decision(d)}
    return _finite({"solution": d, "view": view, "stream_url": stream_url})


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: no ``</script>``, ``<!--`` or ``]]>`` can form, since every
    ``<``, ``>`` and ``&`` is written as a \\u escape (JSON.parse reads them back unchanged); the
    line separators U+2028/9 are escaped as well for older parsers."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _html_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_html(solution: Solution | dict[str, Any] | None = None, *, title: str | None = None,
                stream_url: str | None = None) -> str:
    """The page for ``solution`` (a Solution, its ``to_dict()``, or a dict holding it under
    ``"solution"``). ``None`` gives an empty page that follows a live solve; ``stream_url``
    pre-fills the service's ``POST /solve`` URL for that. The page needs no network."""
    data = page_data(solution, stream_url)
    if title is None:
        sol = data["solution"] or {}
        prob = " ".join(str(sol.get("problem") or "").split())
        title = f"srca {sol.get('method', 'trace')}" + (f": {prob[:60]}" if prob else "")
    # split at the data slot before filling anything in, so no text of the problem can be
    # mistaken for a slot
    head, _, tail = _template().partition(_DATA_SLOT)
    return head.replace(_TITLE_SLOT, _html_text(title), 1) + _script_json(data) + tail


def write_html(solution: Solution | dict[str, Any], path: str | os.PathLike, **kw: Any) -> Path:
    """Write :func:`render_html` to ``path`` (parent folders are created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(solution, **kw), encoding="utf-8")
    return p


def load_solution(path: str | os.PathLike) -> dict[str, Any]:
    """A Solution dict from a JSON file: ``srca solve --json`` output, an ``srca eval --traces``
    file, a job (``GET /jobs/{id}``) or a streamed ``final`` event."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    return solution_dict(d)
