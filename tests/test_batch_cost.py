"""benchmarks/batch_cost.py on a made-up job: the busy seconds from the load polls, the decode
iterations from the generated tokens over the mean running requests, prefills per iteration."""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from batch_cost import job_cost, main  # noqa: E402


def _job(name="dvts@16"):
    # polls at 0, 1, 2, 3, 4 s; work running at 1, 2 and 3 s (1,000 then 2,000 then 3,000 requests)
    series = [[0.0, 0, 5], [1.0, 1000, 0], [2.0, 2000, 0], [3.0, 3000, 0], [4.0, 0, 0]]
    return {"job": name, "concurrency": 256, "wall_s": 4.2, "generated_tokens": 60_000, "engine_requests": 10,
            "gen_tok_s": 14285.7, "sglang_loads": {"series": series}, "sglang_log": {"prefill_batches": 15}}


def test_a_job_row():
    r = job_cost(_job())
    assert r["busy_s"] == 3.0 and r["mean_running"] == 2000 and r["decode_iterations"] == 30
    assert r["ms_per_iteration"] == 100.0 and r["prefills_per_iteration"] == 0.5
    assert r["tok_s_per_running"] == 10.0
    assert job_cost({"job": "cot@1", "wall_s": 1, "generated_tokens": 5}) is None  # no load polls recorded


def test_the_table_and_json(tmp_path, capsys):
    src = tmp_path / "run.json"
    src.write_text(json.dumps({"machine": "h200", "commit": "abc", "jobs": [_job(), _job("majority@16")]}))
    out = tmp_path / "cost.json"
    assert main([str(src), "--out", str(out)]) == 0
    assert "| dvts@16 | 256 | 4.2 | 2000 | 30 | 100.0 | 0.5 |" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [r["job"] for r in res["rows"]] == ["dvts@16", "majority@16"] and res["source_commit"] == "abc"
