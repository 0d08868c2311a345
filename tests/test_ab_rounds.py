"""benchmarks/ab_rounds.py: the alternation and the medians behind every same-run A/B ratio the
README quotes (sampler, answer workers, garbage collector)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from ab_rounds import orders, run_rounds, summarize  # noqa: E402


def test_orders_alternate_which_variant_goes_first():
    assert orders(["a", "b"], 1) == ["a", "b"]
    assert orders(["a", "b"], 3) == ["a", "b", "b", "a", "a", "b"]


def test_run_rounds_applies_each_variant_before_its_run_and_takes_medians():
    state = {"v": None}
    walls = {"fi": iter([10.0, 12.0]), "k": iter([9.0, 11.0])}
    applied = []

    def put(v):
        def go():
            state["v"] = v
            applied.append(v)
        return go

    def phase():
        w = next(walls[state["v"]])
        return {"wall_s": w, "gen_tok_s": 100.0 / w, "generated_tokens": 100, "samples": 4, "accuracy": 0.5,
                "loop": {"blocked_s": 0.1}, "gc_main": {"gen2": {"total_s": 0.2}},
                "solve_outside_engine_s": {"max": 1.5}}

    res = run_rounds({"raw": phase}, {"fi": put("fi"), "k": put("k")}, 2, key="sampler")
    assert applied == ["fi", "k", "k", "fi"] and res["order"] == applied
    p = res["phases"]["raw"]
    assert [r["sampler"] for r in p["runs"]] == applied
    assert p["fi"]["wall_s"] == 11.0 and p["k"]["wall_s"] == 10.0 and p["k_vs_fi_wall"] == round(10 / 11, 3)
    assert p["fi"]["per_sample"] == 25.0 and p["fi"]["gc2_s"] == [0.2, 0.2]
    assert p["k"]["outside_engine_max_s"] == [1.5, 1.5] and p["k"]["accuracy"] == [0.5, 0.5]


def test_summarize_without_runs_of_one_variant_has_no_ratio():
    s = summarize([{"variant": "a", "wall_s": 1.0, "gen_tok_s": 2.0, "per_sample": 3.0}], ["a", "b"])
    assert s["a"]["wall_s"] == 1.0 and s["b"] == {} and "b_vs_a_wall" not in s
