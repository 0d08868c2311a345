"""benchmarks/sample_curve.py: majority@k and waves drawn from a stored run's answer groups."""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from sample_curve import pools, run  # noqa: E402


def line(uid, groups, n, tokens):
    return {"unique_id": uid, "n": n, "usage": {"generated_tokens": tokens},
            "answers": [{"answer": a, "paths": k, "correct": ok} for a, k, ok in groups]}


def test_pools_and_the_votes_drawn_from_them(tmp_path):
    f = tmp_path / "m.jsonl"
    rows = [line("easy", [("4", 4, True)], 4, 400),  # every sample right
            line("split", [("1", 2, True), ("2", 2, False)], 4, 800),  # a tie at four samples
            line("none", [("7", 1, False)], 4, 40)]  # three samples without an answer
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probs = pools(str(f))
    assert [(u, len(p), t) for u, p, t in probs] == [("easy", 4, 100.0), ("split", 4, 200.0), ("none", 4, 10.0)]
    assert sum(g == -1 for g, _ in probs[2][1]) == 3
    acc, tok = run(probs[:1], [2], 1.0, 1, draws=8, seed=0)
    assert (acc, tok) == (1.0, 200.0)  # two of the easy problem's samples, 100 tokens each
    acc, _ = run(probs[1:2], [4], 1.0, 1, draws=400, seed=0)
    assert 0.4 < acc < 0.6  # the tie at the top broken at random
    # waves of 1 then 3, stopping when the leader holds all the samples started with 1 vote: the
    # easy problem stops after its first sample
    acc, tok = run(probs[:1], [1, 3], 1.0, 1, draws=4, seed=0)
    assert (acc, tok) == (1.0, 100.0)
    acc, tok = run(probs[2:], [1, 3], 1.0, 1, draws=50, seed=0)
    assert acc == 0.0 and 10.0 < tok < 40.0  # stops after one sample when it was the answered one
