"""Self-verification probes: the policy asked, after a finished path, whether its answer is right.

After a path has finished, the conversation is continued by one more user turn in the model's
own chat template, ``verify_question`` ("Is the final answer above correct? Answer Yes or
No."), and the model's next-token distribution is read at the open assistant turn: one greedy
token with its top-k alternatives. With a prefix cache the path is already cached, so a probe
costs the turn's ~20 prefill tokens and one generated token. The signal is the log-odds
``log P(yes) - log P(no)`` over the top-k (every spelling of each word that is one token),
and the vote weighs a path's confidence by ``sigmoid(log_odds) ** verify`` (P(true) as in
Kadavath et al. 2022, "Language Models (Mostly) Know What They Know").

The online search (:mod:`srca.methods.lineage`) and the sample bank (:mod:`srca.eval.bank`)
build the same request (:func:`verify_ids`) and read it with the same :func:`log_odds`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

VERIFY_TOPK = 20  # alternatives read at the answer position
_MARK = "\u2063SRCA-PATH\u2063"  # stands in for the path while the chat template is rendered
YES = ("Yes", "yes", "YES")
NO = ("No", "no", "NO")


def turn_suffix(engine: Any, question: str) -> str:
    """The text that closes an assistant turn, asks ``question`` as the next user turn and opens
    the next assistant turn, in ``engine``'s chat template."""
    full = engine.chat_prompt([{"role": "user", "content": "?"}, {"role": "assistant", "content": _MARK},
                               {"role": "user", "content": question}])
    at = full.rfind(_MARK)
    if at < 0:
        raise ValueError("verify: the chat template drops the assistant turn; no verification probe can be built")
    return full[at + len(_MARK):]


class Verifier:
    """What one engine needs to build and read verification probes (built once per solve; the
    token lookups are a few short encodes)."""

    def __init__(self, engine: Any, question: str) -> None:
        self.suffix = turn_suffix(engine, question)
        self.suffix_ids = list(engine.encode(self.suffix))
        self.first = engine.decode(self.suffix_ids[:1]) if self.suffix_ids else ""
        self.decode = engine.decode
        yes, no = _first_ids(engine, YES), _first_ids(engine, NO)
        self.yes, self.no = yes - no, no - yes  # a token both words start with says nothing

    def ids(self, prompt_ids: Sequence[int], path_ids: Sequence[int]) -> list[int]:
        """The probe's input: prompt, path, then the question's turn. A path that ended with the
        token the turn starts with (its end-of-turn token, EOS) drops it, so it is not doubled."""
        path = list(path_ids)
        if path and self.first and self.decode(path[-1:]) == self.first:
            path = path[:-1]
        return list(prompt_ids) + path + self.suffix_ids

    def log_odds(self, top: Sequence[tuple[int, float]]) -> float | None:
        """:func:`log_odds` with this engine's yes and no tokens."""
        return log_odds(top, self.yes, self.no)


def _first_ids(engine: Any, words: Iterable[str]) -> set[int]:
    out = set()
    for w in words:
        for v in (w, " " + w):
            ids = engine.encode(v)
            if ids:
                out.add(int(ids[0]))
    return out


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def log_odds(top: Sequence[tuple[int, float]], yes: set[int], no: set[int]) -> float | None:
    """``log P(yes) - log P(no)`` from the ``(token_id, logprob)`` alternatives of one position.
    A word absent from the alternatives gets the least alternative's log-probability (an upper
    bound on its own); None when neither word is among them (the probe says nothing)."""
    lp_y = [lp for t, lp in top if t in yes and lp == lp]
    lp_n = [lp for t, lp in top if t in no and lp == lp]
    if not lp_y and not lp_n:
        return None
    floor = min(lp for _, lp in top)
    y = _logsumexp(lp_y) if lp_y else floor
    n = _logsumexp(lp_n) if lp_n else floor
    return y - n


def verify_factor(odds: float | None, power: float) -> float:
    """A path's vote weight factor: ``P(yes) ** power`` with ``P(yes) = sigmoid(odds)``; 1 when
    the path has no verdict or ``power`` is 0."""
    if odds is None or power == 0:
        return 1.0
    p = 1.0 / (1.0 + math.exp(-odds)) if odds > -700 else 0.0
    return max(p, 1e-12) ** power


__all__ = ["VERIFY_TOPK", "Verifier", "log_odds", "turn_suffix", "verify_factor"]
