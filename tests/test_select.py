import pytest

from srca.methods.context import Node
from srca.methods.select import acs_select, decide, topk_select
from srca.solution import Candidate


def node(i, answer, score, finished=False):
    n = Node(id=i, parent=None, depth=1)
    n.checkpoint, n.path_score, n.finished = answer, score, finished
    if finished:
        n.answer = answer
    return n


def test_acs_ranks_groups_by_summed_score_and_takes_round_robin():
    nodes = [
        node(0, "5", 0.9),   # group "5": sum 0.9
        node(1, "3", 0.5),   # group "3": sum 0.5 + 0.45 + 0.4 = 1.35 (best group)
        node(2, "3", 0.45),
        node(3, "3.0", 0.4),  # equivalent to "3"
        node(4, None, 0.8),  # no answer: a group of its own, sum 0.8 + 0.1
        node(5, None, 0.1),
        node(6, "8", 0.2),
    ]
    picked = acs_select(nodes, 6)
    # group sums: "3" 1.35, "5" 0.9, no-answer 0.9, "8" 0.2; the 0.9 tie goes to the group
    # whose first member came first (id 0 before id 4). Round 1 takes each group's best,
    # round 2 the second best of groups that have one.
    assert [n.id for n in picked] == [1, 0, 4, 6, 2, 5]
    assert nodes[3].group == nodes[1].group


def test_acs_keeps_diversity_where_topk_does_not():
    nodes = [node(0, "1", 0.9), node(1, "1", 0.8), node(2, "1", 0.7), node(3, "2", 0.6)]
    assert [n.id for n in topk_select(nodes, 2)] == [0, 1]
    assert [n.id for n in acs_select(nodes, 2)] == [0, 3]


def test_acs_with_fewer_nodes_than_width():
    nodes = [node(0, "1", 0.3), node(1, "2", 0.2)]
    assert [n.id for n in acs_select(nodes, 5)] == [0, 1]


def cand(ans, score, source="path", step=3):
    return Candidate(answer=ans, canonical=ans, score=score, source=source, step=step, node=0)


def test_decide_rules():
    pool = [cand("4", 0.9, "checkpoint", 1), cand("6", 0.5), cand("6.0", 0.45), cand("6", 0.3)]
    win, conf = decide(pool, "best_score")
    assert win.answer == "4" and conf == pytest.approx(0.9 / 2.15)
    win, conf = decide(pool, "weighted_vote")
    assert win.answer == "6" and conf == pytest.approx(1.25 / 2.15)
    assert [c.votes for c in pool] == [1, 3, 3, 3]
    win, conf = decide(pool, "majority")
    assert win.answer == "6" and conf == pytest.approx(0.75)
    assert decide([], "best_score") == (None, 0.0)
