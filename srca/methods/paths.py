"""A whole generated path cut into the steps the step-by-step search would have seen.

Used twice, so the rule lives here once: the lineage search generates a whole path in one
request when nothing reads a step before the path ends (:func:`whole_paths`), and the sample
bank (:mod:`srca.eval.bank`) records whole samples for the replay.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Any, Sequence

from ..answers import extract_boxed

OPEN, PATH, CUT = "", "path", "cut"  # how a step ends: still open, the path finished, out of tokens


def split_steps(token_texts: Sequence[str], delimiter: str, max_step_tokens: int, max_new_tokens: int) -> list[int]:
    """End indices (exclusive) of the steps of a sample, as the online search cuts them: a step
    ends after the token that completes ``delimiter`` in the step's text (also one spread over
    two tokens), or after ``max_step_tokens`` tokens, or where the path's tokens run out.
    ``token_texts[i]``: the characters token ``i`` adds (:func:`split_text` does the work)."""
    ends, done = [], 0
    for t in token_texts:
        done += len(t)
        ends.append(done)
    return split_text("".join(token_texts), ends, delimiter, max_step_tokens, max_new_tokens)


def split_text(text: str, ends: Sequence[int], delimiter: str, max_step_tokens: int, max_new_tokens: int) -> list[int]:
    """:func:`split_steps` over the decoded ``text`` of a sample and ``ends[i]``, the characters
    complete through token ``i`` (:class:`~srca.engines.token_spans.TokenSpans`): each step's
    first delimiter found in the text (``str.find``), its token by bisection, so a sample costs
    a few calls per step, not Python work per token (on the controller's event loop, for every
    sample of every solve)."""
    n = min(len(ends), max_new_tokens)
    out: list[int] = []
    start = 0
    while start < n:
        cut = min(n, start + max(1, min(max_step_tokens, max_new_tokens - start)))
        if not delimiter:
            cut = start + 1
        else:
            p = text.find(delimiter, ends[start - 1] if start else 0, ends[cut - 1])
            if p >= 0:  # the first token whose characters reach the delimiter's end completes it
                cut = bisect_left(ends, p + len(delimiter), start, cut) + 1
        out.append(cut)
        start = cut
    return out


def path_steps(spans: Any, n_tokens: int, eos: bool, delimiter: str, max_step_tokens: int,
               max_new_tokens: int) -> list[tuple[int, str]]:
    """``(end, how)`` of each step of a whole sample of ``n_tokens`` tokens, up to the first step
    that ends the path: ``"path"`` (a boxed answer in the step, or the sample's own end of
    sequence, ``eos``), ``"cut"`` (out of tokens), ``""`` (open: the search would continue it).
    ``spans``: the sample's :class:`~srca.engines.token_spans.TokenSpans` (``text``, ``ends``,
    ``text_of(a, b)``). The rest of the sample is what the step-by-step search would never have
    generated."""
    ends = split_text(spans.text, spans.ends[:n_tokens], delimiter, max_step_tokens, max_new_tokens)
    out, prev = [], 0
    for j, e in enumerate(ends):
        last = j == len(ends) - 1
        if extract_boxed(spans.text_of(prev, e)) is not None or (last and eos):
            out.append((e, PATH))
        elif e >= max_new_tokens or last:
            out.append((e, CUT))
        else:
            out.append((e, OPEN))
        if out[-1][1]:
            break
        prev = e
    return out


def whole_paths(probe_at: str, settle: int, consensus: float) -> bool:
    """Whether a lineage policy reads nothing of a path before the path ends: checkpoints only
    where the token limit cuts it, no settling on agreeing checkpoints, no consensus stop.
    The search then generates each lineage whole (and pays for all its tokens, the ones after
    its first boxed answer included, as majority voting does)."""
    return probe_at == "cut" and not settle and not consensus


__all__ = ["CUT", "OPEN", "PATH", "path_steps", "split_steps", "split_text", "whole_paths"]
