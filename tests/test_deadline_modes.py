"""benchmarks/deadline_modes.py end to end on the scripted engine: both variants run on every
problem, alternating in order, and the JSON holds their sums and the ratios between them."""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from deadline_modes import main  # noqa: E402


def test_both_variants_on_every_problem_and_their_ratios(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"unique_id": f"p{i}", "problem": f"What is {i}+0?", "answer": "0"}) + "\n"
                            for i in range(3)))
    out = tmp_path / "r.json"
    assert main(["--engine", "fake", "--data", str(data), "--limit", "3", "--n", "4", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [(r["problem"], r["variant"]) for r in res["rows"]] == [
        ("p0", "steps"), ("p0", "whole"), ("p1", "whole"), ("p1", "steps"), ("p2", "steps"), ("p2", "whole")]
    steps, whole = res["per_variant"]["steps"], res["per_variant"]["whole"]
    assert steps["problems"] == whole["problems"] == 3 and steps["correct"] == whole["correct"] == 3
    assert whole["engine_calls"] == sum(r["engine_calls"] for r in res["rows"] if r["variant"] == "whole")
    assert res["whole_over_steps"]["engine_calls"] == round(whole["engine_calls"] / steps["engine_calls"], 3)
    assert res["engine"] == "fake" and "machine" in res
