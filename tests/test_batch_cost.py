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


def test_two_replicas_are_read_one_series_each():
    """Two schedulers polled together (rows alternate): 1,000 running on one for 3 s and 2,000 on
    the other for 2 s are 7,000 request-seconds; 70,000 tokens then cost 100 ms an iteration."""
    series = [[0.0, 0, 0], [0.0, 0, 0], [1.0, 1000, 0], [1.0, 2000, 0], [2.0, 1000, 0], [2.0, 2000, 0],
              [3.0, 1000, 0], [3.0, 0, 0], [4.0, 0, 0], [4.0, 0, 0]]
    job = {**_job(), "generated_tokens": 70_000, "sglang_loads": {"series": series}}
    r = job_cost(job, replicas=2)
    assert r["replicas"] == 2 and r["busy_s"] == 3.0 and r["mean_running"] == 3000
    assert r["ms_per_iteration"] == 100.0 and r["tok_s_per_running"] == 10.0 and r["decode_iterations"] == 50
    # read as one series, the same rows would mix the schedulers' polls
    assert job_cost(job)["ms_per_iteration"] != 100.0


def test_main_reads_the_replicas_from_the_runs_arguments(tmp_path, capsys):
    series = [[1.0, 1000, 0], [1.0, 1000, 0], [2.0, 0, 0], [2.0, 0, 0]]
    job = {**_job(), "generated_tokens": 20_000, "sglang_loads": {"series": series}}
    src = tmp_path / "run.json"
    src.write_text(json.dumps({"args": {"server": True, "server_replicas": 2}, "jobs": [job]}))
    out = tmp_path / "cost.json"
    assert main([str(src), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["ms_per_iteration"] == 100.0
