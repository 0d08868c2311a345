"""A whole generated path cut into the steps the step-by-step search would have seen.

Used twice, so the rule lives here once: the lineage search generates a whole path in one
request when nothing reads a step before the path ends (:func:`whole_paths`), and the sample
bank (:mod:`srca.eval.bank`) records whole samples for the replay.
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..answers import extract_boxed

OPEN, PATH, CUT = "", "path", "cut"  # how a step ends: still open, the path finished, out of tokens


def split_steps(token_texts: Sequence[str], delimiter: str, max_step_tokens: int, max_new_tokens: int) -> list[int]:
    """End indices (exclusive) of the steps of a sample, as the online search cuts them: a step
    ends after the token that completes ``delimiter`` in the step's text (also one spread over
    two tokens), or after ``max_step_tokens`` tokens, or where the path's tokens run out."""
    ends: list[int] = []
    start, text = 0, ""
    for i, t in enumerate(token_texts[:max_new_tokens]):
        text += t
        n = i + 1 - start
        left = max_new_tokens - start
        if delimiter in text or n >= min(max_step_tokens, left):
            ends.append(i + 1)
            start, text = i + 1, ""
    if start < min(len(token_texts), max_new_tokens):
        ends.append(min(len(token_texts), max_new_tokens))
    return ends


def path_steps(text_of: Callable[[int, int], str], n_tokens: int, eos: bool, delimiter: str, max_step_tokens: int,
               max_new_tokens: int) -> list[tuple[int, str]]:
    """``(end, how)`` of each step of a whole sample of ``n_tokens`` tokens, up to the first step
    that ends the path: ``"path"`` (a boxed answer in the step, or the sample's own end of
    sequence, ``eos``), ``"cut"`` (out of tokens), ``""`` (open: the search would continue it).
    ``text_of(a, b)``: the text of tokens ``a:b``. The rest of the sample is what the
    step-by-step search would never have generated."""
    ends = split_steps([text_of(i, i + 1) for i in range(n_tokens)], delimiter, max_step_tokens, max_new_tokens)
    out, prev = [], 0
    for j, e in enumerate(ends):
        last = j == len(ends) - 1
        if extract_boxed(text_of(prev, e)) is not None or (last and eos):
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


__all__ = ["CUT", "OPEN", "PATH", "path_steps", "split_steps", "whole_paths"]
