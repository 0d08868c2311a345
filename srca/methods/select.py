"""Selection and decision rules, as pure functions over scored nodes and candidates."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..answers import cluster, equivalent
from ..solution import Candidate
from .consensus import Ballot, vote
from .context import Node


def _by_score(n: Node) -> tuple:
    return (-(n.path_score if n.path_score is not None else float("-inf")), n.id)


def topk_select(nodes: Sequence[Node], k: int) -> list[Node]:
    """The ``k`` best nodes by path score (ties: lower id first)."""
    return sorted(nodes, key=_by_score)[:k]


def acs_select(nodes: Sequence[Node], k: int, semantic: bool = False) -> list[Node]:
    """Answer-Clustered Search. Group nodes by the answer their path implies now (equivalent
    answers are one group; paths with no answer form one group of their own), rank groups by
    the sum of their members' path scores, then take members round-robin: the best member of
    each group in group order, then the second best of each, until ``k`` are taken.
    Sets ``node.group``."""
    labels = cluster([n.implied_answer for n in nodes], semantic=semantic)
    groups: dict[int, list[Node]] = defaultdict(list)
    for n, g in zip(nodes, labels):
        n.group = g
        groups[g].append(n)
    ranked = sorted(groups.values(), key=lambda m: (-sum(x.path_score or 0.0 for x in m), min(x.id for x in m)))
    queues = [sorted(m, key=_by_score) for m in ranked]
    out: list[Node] = []
    rnd = 0
    while len(out) < k and any(rnd < len(q) for q in queues):
        for q in queues:
            if rnd < len(q) and len(out) < k:
                out.append(q[rnd])
        rnd += 1
    return out


def mark_kept(selected: Sequence[Node]) -> None:
    for rank, n in enumerate(selected):
        n.kept = True
        n.selected_rank = rank


def decide(pool: list[Candidate], rule: str, semantic: bool = False, keep_top: float = 1.0,
           checkpoint_weight: float = 0.0, keep_min: int = 1) -> tuple[Candidate | None, float]:
    """Pick the final answer from the candidate pool; returns (winner, confidence).

    Sets each candidate's ``group`` and ``votes``. Rules: ``confidence_vote`` (SRCA's default:
    :func:`srca.methods.consensus.vote` with the candidates' scores as confidences, the most
    confident ``keep_top`` share of full answers but at least ``keep_min`` of them, ``checkpoint``
    candidates as fractional votes
    of ``checkpoint_weight`` that never win alone), ``best_score`` (highest-scored candidate,
    as in the SRCA paper), ``weighted_vote`` (group with the largest summed score, its best
    member), ``majority`` (largest group, ties by summed score). ``confidence`` is the winning
    group's share of the total weight (scores, or counts for majority). ``semantic``: answers
    math-verify cannot parse are grouped by sentence embeddings (:mod:`srca.semantic`, the extra
    ``srca[semantic]``), under every rule.
    """
    if not pool:
        return None, 0.0
    if rule == "confidence_vote":
        return _confidence_vote(pool, keep_top, checkpoint_weight, semantic, keep_min)
    labels = cluster([c.answer for c in pool], semantic=semantic)
    size: dict[int, int] = defaultdict(int)
    mass: dict[int, float] = defaultdict(float)
    for c, g in zip(pool, labels):
        c.group = g
        size[g] += 1
        mass[g] += max(c.score, 0.0)
    for c in pool:
        c.votes = size[c.group]
    best_of = lambda g: max((c for c in pool if c.group == g), key=lambda c: (c.score, -pool.index(c)))
    if rule == "best_score":
        win = max(pool, key=lambda c: (c.score, -pool.index(c)))
    elif rule == "weighted_vote":
        win = best_of(max(mass, key=lambda g: (mass[g], size[g], -g)))
    elif rule == "majority":
        win = best_of(max(size, key=lambda g: (size[g], mass[g], -g)))
    else:
        raise ValueError(f"decision: unknown rule {rule!r}")
    if rule == "majority":
        conf = size[win.group] / len(pool)
    else:
        total = sum(mass.values())
        conf = mass[win.group] / total if total > 0 else size[win.group] / len(pool)
    return win, conf


def _confidence_vote(pool: list[Candidate], keep_top: float, checkpoint_weight: float,
                     semantic: bool = False, keep_min: int = 1) -> tuple[Candidate | None, float]:
    ballots = [Ballot(c.answer, "checkpoint" if c.source == "checkpoint" else "path", max(c.score, 0.0)) for c in pool]
    equiv = equivalent
    if semantic:
        # embedding clusters are not a pairwise test: cluster the pool's answers once, and two
        # answers are equivalent when they share a label (None, as with equivalent, never is)
        answers = [c.answer for c in pool]
        label = dict(zip(answers, cluster(answers, semantic=True)))

        def equiv(a: str | None, b: str | None) -> bool:
            return a is not None and b is not None and label[a] == label[b]
    tally = vote(ballots, equiv, keep_top=keep_top, checkpoint_weight=checkpoint_weight, keep_min=keep_min)
    size: dict[int, int] = defaultdict(int)
    for g in tally.groups:
        size[g] += 1
    for c, g in zip(pool, tally.groups):
        c.group, c.votes = g, size[g]
    return (pool[tally.winner] if tally.winner is not None else None), tally.share
