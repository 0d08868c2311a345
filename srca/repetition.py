"""Whether a sample has fallen into a loop: the share of its recent n-grams it already wrote.

Samples cut at the token limit are right almost never (0.1% of those cut at 1,024 tokens in the
second sample bank, README "The SRCA study") and hold about a fifth of majority voting's tokens
on MATH-500; a length rule cannot find them early without killing long right answers too
(samples of 640 tokens and more are still right 11 to 22% of the time). A sample repeating
itself is the other sign: once most of its last ``window`` tokens' n-grams occurred earlier in
the same sample, it is writing what it wrote before. :func:`loop_at` says at which token a rule
would stop a sample, checked every ``every`` tokens from ``start`` on; the sample bank's replay
(``benchmarks/loop_rules.py``) scores rules over recorded samples (the banks record token ids
since this module). srca's lineages stop looping samples with ``SearchConfig.loop_share`` (off
by default: what a stop saves and costs is measured on a bank first; :func:`rule_for`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class LoopRule:
    """A sample is in a loop at a check point ``p`` (``start``, ``start + every``, ...) when at
    least ``share`` of the ``n``-grams that start in its last ``window`` tokens before ``p`` also
    start somewhere earlier in the sample."""

    n: int = 8
    window: int = 128
    share: float = 0.9
    every: int = 32
    start: int = 256

    def __post_init__(self) -> None:
        for name in ("n", "window", "every", "start"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LoopRule.{name}: a positive integer, got {v!r}")
        if self.window <= self.n:
            raise ValueError(f"LoopRule.window: more than n ({self.n}) tokens, got {self.window}")
        if self.start < self.window:
            raise ValueError(f"LoopRule.start: at least window ({self.window}), got {self.start}")
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not 0 < self.share <= 1:
            raise ValueError(f"LoopRule.share: a number in (0, 1], got {self.share!r}")


def rule_for(config: Any) -> LoopRule | None:
    """The online search's rule (``SearchConfig.loop_share`` at ``loop_after`` tokens, checked
    once there), or None when it is off."""
    if not config.loop_share:
        return None
    return LoopRule(share=float(config.loop_share), start=config.loop_after, every=config.max_new_tokens)


def seen_before(ids: Sequence[int], n: int) -> list[bool]:
    """For each position ``i`` that starts a whole ``n``-gram: whether the same ``n``-gram starts
    at an earlier position (overlapping occurrences count)."""
    first: dict[tuple[int, ...], int] = {}
    out = []
    for i in range(len(ids) - n + 1):
        g = tuple(ids[i:i + n])
        out.append(g in first)
        first.setdefault(g, i)
    return out


def _window(p: int, rule: LoopRule) -> tuple[int, int]:
    """The n-gram starts a check at ``p`` reads: ``[p - window, p - n + 1)``."""
    return p - rule.window, p - rule.n + 1


def repeat_shares(ids: Sequence[int], rule: LoopRule) -> list[tuple[int, float]]:
    """``(p, share)`` at every check point ``p`` of ``rule`` up to ``len(ids)``: the share of the
    ``n``-grams starting in ``[p - window, p - n]`` that started earlier."""
    seen = seen_before(ids, rule.n)
    prefix = [0]
    for s in seen:
        prefix.append(prefix[-1] + s)
    out = []
    p = rule.start
    while p <= len(ids):
        lo, hi = _window(p, rule)
        out.append((p, (prefix[hi] - prefix[lo]) / (hi - lo)))
        p += rule.every
    return out


def stops_here(ids: Sequence[int], rule: LoopRule) -> bool:
    """Whether a sample whose tokens so far are ``ids`` stops now under ``rule``: ``len(ids)`` is
    one of its check points and the sample is in a loop there. An engine that stops samples
    itself (``EngineInfo.loop_stops``) asks after every token, so the first ``True`` falls where
    :func:`loop_at` says; O(``len(ids)``) at a check point, nothing elsewhere."""
    p = len(ids)
    if p < rule.start or (p - rule.start) % rule.every:
        return False
    seen = seen_before(ids, rule.n)
    lo, hi = _window(p, rule)
    return sum(seen[lo:hi]) / (hi - lo) >= rule.share


def loop_at(ids: Sequence[int], rule: LoopRule) -> int | None:
    """The first check point at which ``ids`` is in a loop under ``rule`` (the tokens a stop there
    keeps), or None."""
    for p, share in repeat_shares(ids, rule):
        if share >= rule.share:
            return p
    return None
