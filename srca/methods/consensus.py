"""PRM-free answer rules of SRCA's default search, as pure functions.

The online search (:mod:`srca.methods.lineage`) and the sample-bank replay
(:mod:`srca.eval.bank`) call the same functions, so a rule tuned offline is the rule that runs.

What the MATH-500 measurements taught (DESIGN.md): the policy's own per-step confidence
saturates near 1.0 and is a poor ranker, while *agreement* carries signal. So the rules here
keep the vote and only weight or filter it:

* :func:`trace_confidence`: DeepConf-style confidence of a whole path from its per-token
  confidences (the sampled token's log-probability, or ``-mean(top-k logprobs)``), over the
  tail or the weakest window of the path;
* :func:`settled_answer`: a path whose last ``k`` checkpoint probes agree has settled on an
  answer (Dynasor-CoT's probe agreement): it stops there and votes with that answer;
* :func:`vote`: a confidence-weighted vote over the lineages' answers, the least confident
  share of them filtered out, checkpoint answers of paths that never finished as fractional
  votes that can never win alone;
* :func:`consensus_reached`: stop the solve once enough lineages agree;
* :func:`wave_sizes` and :func:`wave_settled`: ESC-style adaptive sampling, the lineages
  started in waves and the solve stopped after a wave whose vote is already clear.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..config import CONFIDENCES

Equiv = Callable[[str, str], bool]


def token_confidence(logprob: float | None, top: Sequence[float] | None = None) -> float:
    """One token's confidence. With the ``top`` k log-probabilities of its position (DeepConf):
    ``-mean(top)`` (large when the distribution is peaked). Without: the sampled token's
    log-probability (close to 0 when sure)."""
    if top:
        return -sum(top) / len(top)
    return float(logprob) if logprob is not None else 0.0


def trace_confidence(tok_conf: Sequence[float], how: str, window: int = 64, topk: bool = False) -> float:
    """Confidence of a path from its per-token confidences ``tok_conf`` (in order).

    ``how``: ``mean`` over all tokens, ``tail`` (the last ``window`` tokens), ``lowest`` (the
    weakest sliding window of ``window`` tokens, DeepConf's lowest group confidence), ``none``
    (1.0: every path weighs the same). Returns a positive weight: ``exp(mean logprob)`` in
    (0, 1] for sampled-token log-probabilities, the mean ``-mean(top-k)`` for top-k ones.
    """
    if how not in CONFIDENCES:
        raise ValueError(f"confidence: unknown {how!r}; choose one of {CONFIDENCES}")
    if how == "none" or not tok_conf:
        return 1.0
    x = list(tok_conf)
    if how == "mean":
        m = sum(x) / len(x)
    elif how == "tail":
        t = x[-window:]
        m = sum(t) / len(t)
    else:  # lowest window mean, by a running sum
        w = min(window, len(x))
        s = sum(x[:w])
        m = s / w
        for i in range(w, len(x)):
            s += x[i] - x[i - w]
            m = min(m, s / w)
    return max(m, 1e-9) if topk else math.exp(m)


def settled_answer(checkpoints: Sequence[str | None], k: int, equiv: Equiv) -> str | None:
    """The answer a path has settled on: its last ``k`` checkpoint answers all present and
    equivalent (``k`` >= 2; 0 or 1 never settles). None otherwise."""
    if k < 2 or len(checkpoints) < k:
        return None
    last = checkpoints[-k:]
    if any(a is None for a in last):
        return None
    ref = last[-1]
    return ref if all(equiv(ref, a) for a in last[:-1]) else None


@dataclass
class Ballot:
    """One lineage's vote. ``kind``: ``path`` (finished by itself), ``settled`` (stopped once
    its probes agreed) or ``checkpoint`` (stopped or cut before it answered: its last
    checkpoint answer, a fractional vote). ``confidence``: :func:`trace_confidence`."""

    answer: str
    kind: str
    confidence: float = 1.0


@dataclass
class Tally:
    """The result of :func:`vote`. ``groups[i]``: group label of ballot ``i`` (-1 for none);
    ``weights[g]``: the group's total weight; ``winner``: index of the winning group's most
    confident full ballot (None when nothing voted); ``share``: the winner's weight share."""

    groups: list[int]
    weights: dict[int, float]
    kept: list[bool]
    winner: int | None
    share: float


def group_labels(answers: Sequence[str], equiv: Equiv) -> list[int]:
    """Labels such that equivalent answers share one (first-seen order)."""
    reps: list[str] = []
    out = []
    for a in answers:
        for g, r in enumerate(reps):
            if equiv(r, a):
                out.append(g)
                break
        else:
            reps.append(a)
            out.append(len(reps) - 1)
    return out


def vote(ballots: Sequence[Ballot], equiv: Equiv, keep_top: float = 1.0, checkpoint_weight: float = 0.0,
         weighted: bool = True, keep_min: int = 1) -> Tally:
    """Confidence-weighted vote over lineages.

    Full ballots (``path``, ``settled``) weigh their confidence (1 when ``weighted`` is off);
    only the most confident ``keep_top`` share of them counts, but never fewer than ``keep_min``
    of them (all, when fewer exist; DeepConf's filter, which needs enough ballots to filter).
    ``checkpoint`` ballots weigh ``checkpoint_weight`` times their confidence and never win
    alone: a group needs a full ballot to win, unless no full ballot exists at all.
    Ties: larger weight, then more full ballots, then the group seen first.
    """
    if not 0 < keep_top <= 1:
        raise ValueError(f"keep_top: must be in (0, 1], got {keep_top}")
    if isinstance(keep_min, bool) or not isinstance(keep_min, int) or keep_min < 1:
        raise ValueError(f"keep_min: must be an integer >= 1, got {keep_min!r}")
    labels = group_labels([b.answer for b in ballots], equiv)
    full = [i for i, b in enumerate(ballots) if b.kind != "checkpoint"]
    kept = [False] * len(ballots)
    n_keep = max(math.ceil(keep_top * len(full) - 1e-9), min(keep_min, len(full))) if full else 0
    for i in sorted(full, key=lambda i: (-ballots[i].confidence, i))[:n_keep]:
        kept[i] = True
    weights: dict[int, float] = {}
    fulls: dict[int, int] = {}
    for i, (b, g) in enumerate(zip(ballots, labels)):
        w = b.confidence if weighted else 1.0
        if b.kind == "checkpoint":
            w *= checkpoint_weight
            kept[i] = checkpoint_weight > 0
        elif not kept[i]:
            continue
        else:
            fulls[g] = fulls.get(g, 0) + 1
        weights[g] = weights.get(g, 0.0) + w
    if not ballots:
        return Tally(labels, weights, kept, None, 0.0)
    eligible = [g for g in weights if fulls.get(g)] or list(weights) or sorted(set(labels))
    order = {g: labels.index(g) for g in set(labels)}
    win_g = max(eligible, key=lambda g: (weights.get(g, 0.0), fulls.get(g, 0), -order[g]))
    members = [i for i, g in enumerate(labels) if g == win_g]
    win = max(members, key=lambda i: (ballots[i].kind != "checkpoint", kept[i], ballots[i].confidence, -i))
    total = sum(weights.values())
    share = weights.get(win_g, 0.0) / total if total > 0 else 0.0
    return Tally(labels, weights, kept, win, share)


def consensus_reached(full_answers: Sequence[str], n: int, threshold: float, equiv: Equiv) -> bool:
    """Whether the solve can stop: the most common answer among the lineages that have ended
    with an answer of their own (finished or settled) holds at least ``threshold`` of all ``n``
    lineages (0 or less: never). With ``threshold`` > 0.5 no other answer can catch up."""
    if threshold <= 0 or not full_answers:
        return False
    labels = group_labels(full_answers, equiv)
    top = max(labels.count(g) for g in set(labels))
    return top >= threshold * n - 1e-9


def wave_sizes(n: int, waves: int, min_size: int = 1, growth: float = 0.0) -> list[int]:
    """The sizes of the (at most) ``waves`` waves ``n`` lineages start in: as equal as can be,
    the smaller ones first (16 in 3: 5, 5, 6), none smaller than ``min_size`` (a wave with fewer
    lineages than :func:`wave_settled` needs could never stop the solve: 4 in 3 with 2: 2, 2).

    ``growth`` > 0 (``SearchConfig.wave_growth``): the first two waves alike, then each one
    ``growth`` of the first's size larger than the one before (weights 1, 1, 1 + g, 1 + 2g, ...),
    rounded by largest remainder (32 in 5 at 0.5: 4, 4, 6, 8, 10). Fewer waves for the same
    cap: the solves that need every lineage wait for fewer waves one after another."""
    k = max(1, min(waves, n // max(1, min_size)))
    if not growth or k < 3:
        base, extra = divmod(n, k)
        return [base + (1 if i >= k - extra else 0) for i in range(k)]
    weights = [1.0 + growth * max(0, i - 1) for i in range(k)]
    shares = [n * w / sum(weights) for w in weights]
    sizes = [math.floor(x + 1e-9) for x in shares]
    # the lineages rounding left out go to the largest remainders (ties: the later wave)
    for i in sorted(range(k), key=lambda i: (shares[i] - sizes[i], i), reverse=True)[:n - sum(sizes)]:
        sizes[i] += 1
    for i in range(k):  # none below the minimum: the lineages come from the largest wave
        while sizes[i] < min_size:
            sizes[i] += 1
            sizes[max(range(k), key=lambda j: (sizes[j], j))] -= 1
    return sorted(sizes)


def config_wave_sizes(c: Any, n: int | None = None) -> list[int]:
    """:func:`wave_sizes` of a search's settings (``SearchConfig`` or a bank replay's ``Policy``:
    ``waves``, ``wave_min``, ``wave_growth``) for ``n`` lineages (default ``c.n``): the one place
    that says which settings shape the waves."""
    return wave_sizes(c.n if n is None else n, c.waves, c.wave_min, c.wave_growth)


def wave_settled(ballots: Sequence[Ballot], equiv: Equiv, threshold: float, min_votes: int, keep_top: float = 1.0,
                 checkpoint_weight: float = 0.0, keep_min: int = 1, margin: float = 0.0, remaining: int = 0) -> bool:
    """Whether a solve may stop after a wave (ESC's window agreement, weighted as DeepConf's
    consensus): the vote over the ballots so far (:func:`vote`, the decision's own rule) has a
    winner with at least ``min_votes`` counted full ballots, and

    * ``margin`` 0 (the share rule): the winner's group holds at least ``threshold`` of the
      vote's weight;
    * ``margin`` > 0 (the margin rule): the winner's lead over the runner-up group, in mean
      counted ballots (its weight lead over the counted full ballots' mean weight), is at least
      ``margin`` times the ``remaining`` lineages not yet started. With ``margin`` 1 and equal
      weights no later wave could overturn the vote; smaller margins trust the lead more
      (Adaptive-Consistency's stop, in ballots). A plain-vote replay of majority@32's answers
      found it cheaper than the share rule at the same accuracy (benchmarks/vote_exit.py).

    Two lineages that disagree never settle a solve."""
    if not ballots:
        return False
    t = vote(ballots, equiv, keep_top=keep_top, checkpoint_weight=checkpoint_weight, keep_min=keep_min)
    if t.winner is None:
        return False
    g = t.groups[t.winner]
    own = sum(1 for i, b in enumerate(ballots) if t.groups[i] == g and b.kind != "checkpoint" and t.kept[i])
    if own < min_votes:
        return False
    if margin <= 0:
        return t.share >= threshold - 1e-9
    counted = [b.confidence for i, b in enumerate(ballots) if b.kind != "checkpoint" and t.kept[i]]
    unit = sum(counted) / len(counted) if counted else 1.0
    second = max((w for h, w in t.weights.items() if h != g), default=0.0)
    lead = (t.weights.get(g, 0.0) - second) / unit if unit > 0 else 0.0
    return lead >= margin * max(0, remaining) - 1e-9


__all__ = ["CONFIDENCES", "Ballot", "Tally", "consensus_reached", "group_labels", "settled_answer",
           "token_confidence", "trace_confidence", "vote", "wave_settled", "wave_sizes"]
