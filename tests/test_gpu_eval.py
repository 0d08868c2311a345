"""benchmarks/gpu_eval.py on the CPU, its engine a scripted one: ``--budget-s`` counts the jobs'
time, not the engine's start (an eighteenth-run chain's two servers took 155 s to start and a
150 s budget then ran no job at all)."""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _eval_fixtures import engine as scripted_engine, write_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _gpu_eval():
    spec = importlib.util.spec_from_file_location("gpu_eval_under_test", ROOT / "benchmarks" / "gpu_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(monkeypatch, tmp_path, start_s: float, jobs_s: float, budget: str, jobs: str) -> None:
    """gpu_eval's main with an engine that takes ``start_s`` to start and ``jobs_s`` per engine
    call."""
    import srca.engines as engines

    def slow_start(kind, **kw):
        time.sleep(start_s)
        return scripted_engine(latency_s=jobs_s)

    monkeypatch.setattr(engines, "make_engine", slow_start)
    mod = _gpu_eval()
    data = write_data(tmp_path / "d.jsonl")
    monkeypatch.setattr(sys, "argv", ["gpu_eval.py", "--engine", "local", "--data", str(data), "--limit", "1",
                                      "--out-dir", str(tmp_path / "evals"), "--jobs", jobs, "--budget-s", budget])
    mod.main()


def test_budget_does_not_count_the_engine_start(monkeypatch, tmp_path, capsys):
    # the engine takes 1.5 s to start, longer than the whole 1 s budget: the first job still runs,
    # and the second does not start once the first has used the budget up
    _run(monkeypatch, tmp_path, start_s=1.5, jobs_s=1.2, budget="1", jobs="majority:2,cot:1")
    out = capsys.readouterr().out
    assert '"job": "majority:2"' in out
    assert "budget spent: not starting cot:1" in out
    assert (tmp_path / "evals" / "math500_majority_n2.jsonl").exists()
    assert not (tmp_path / "evals" / "math500_cot_n1.jsonl").exists()


def test_budget_lets_every_job_run_when_they_fit(monkeypatch, tmp_path, capsys):
    _run(monkeypatch, tmp_path, start_s=0.0, jobs_s=0.0, budget="60", jobs="majority:2,cot:1")
    out = capsys.readouterr().out
    assert '"job": "majority:2"' in out and '"job": "cot:1"' in out
    assert "budget spent" not in out


@pytest.mark.parametrize("jobs", ["majority", "majority:0", "nosuch:4"])
def test_bad_jobs_exit_2_naming_the_flag(monkeypatch, tmp_path, capsys, jobs):
    mod = _gpu_eval()
    data = write_data(tmp_path / "d.jsonl")
    monkeypatch.setattr(sys, "argv", ["gpu_eval.py", "--data", str(data), "--jobs", jobs, "--check"])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert e.value.code == 2
    assert "--jobs" in capsys.readouterr().err


def test_loop_stops_reach_the_in_process_engine_only(monkeypatch, tmp_path, capsys):
    # --loop-stops: SGLangEngine(loop_stops=True); refused for the other engines, naming the flag
    import srca.engines as engines

    mod = _gpu_eval()
    data = write_data(tmp_path / "d.jsonl")
    monkeypatch.setattr(sys, "argv", ["gpu_eval.py", "--data", str(data), "--jobs", "cot:1", "--engine", "local",
                                      "--loop-stops", "--check"])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert e.value.code == 2 and "--loop-stops" in capsys.readouterr().err
    built = []

    def make(kind, **kw):
        built.append((kind, kw))
        return scripted_engine()

    monkeypatch.setattr(engines, "make_engine", make)
    monkeypatch.setattr(sys, "argv", ["gpu_eval.py", "--data", str(data), "--limit", "1", "--jobs", "cot:1",
                                      "--out-dir", str(tmp_path / "evals"), "--loop-stops"])
    mod.main()
    assert built[0][0] == "sglang" and built[0][1]["loop_stops"] is True
    assert "loop stops in SGLang" in capsys.readouterr().out


def test_seeds_run_every_job_once_per_seed(monkeypatch, tmp_path, capsys):
    # --seeds 0,3: seed 0's file keeps its name, seed 3's ends _seed3; their records carry different
    # per-problem seeds (independent draws); the report reads the first seed's files only
    import json

    from srca.eval.records import problem_seed

    _run(monkeypatch, tmp_path, start_s=0.0, jobs_s=0.0, budget="60", jobs="majority:2")
    monkeypatch.setattr(sys, "argv", sys.argv + ["--seeds", "0,3"])
    _gpu_eval().main()
    out = capsys.readouterr().out
    assert '"job": "majority:2 seed 3"' in out
    a = [json.loads(x) for x in (tmp_path / "evals" / "math500_majority_n2.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "evals" / "math500_majority_n2_seed3.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 1
    assert a[0]["seed"] == problem_seed(0, a[0]["unique_id"]) and b[0]["seed"] == problem_seed(3, b[0]["unique_id"])
    assert a[0]["seed"] != b[0]["seed"]
    # a run of seed 3 alone reports seed 3's lines (not "no result lines")
    monkeypatch.setattr(sys, "argv", sys.argv[:-1] + ["3"])
    _gpu_eval().main()
    out = capsys.readouterr().out
    assert "no result lines" not in out and "majority" in out.split('"job"')[-1]


@pytest.mark.parametrize("seeds", ["0,0", "-1", "x", ""])
def test_bad_seeds_exit_2_naming_the_flag(monkeypatch, tmp_path, capsys, seeds):
    mod = _gpu_eval()
    data = write_data(tmp_path / "d.jsonl")
    monkeypatch.setattr(sys, "argv", ["gpu_eval.py", "--data", str(data), "--jobs", "cot:1", "--seeds", seeds, "--check"])
    with pytest.raises(SystemExit) as e:
        mod.main()
    assert e.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_seeds_run_seed_by_seed(monkeypatch, tmp_path, capsys):
    # every job of seed 0, then every job of seed 3: a run cut short (its budget, the machine's
    # lease) still holds paired draws of the jobs
    _run(monkeypatch, tmp_path, start_s=0.0, jobs_s=0.0, budget="60", jobs="majority:2,cot:1")
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", sys.argv + ["--seeds", "0,3"])
    _gpu_eval().main()
    out = capsys.readouterr().out
    order = [line.split('"job": "')[1].split('"')[0] for line in out.splitlines() if '"job": "' in line]
    assert order == ["majority:2", "cot:1", "majority:2 seed 3", "cot:1 seed 3"]


def test_each_job_reads_its_decode_iterations_from_sglangs_log(tmp_path):
    # SGLang's log lines as the eval's logging config writes them (epoch seconds first): the two
    # decode lines inside the job's window cost 100 / 5,000 and 200 / 5,000 tok/s = 20 and 40 ms an
    # iteration; the line before the job (the engine's warm-up) and the one after are not its
    mod = _gpu_eval()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_workload import SGLangLog, sglang_log_config

    path = sglang_log_config(str(tmp_path))
    assert (tmp_path / "sglang_logging.json").exists()
    dec = "INFO Decode batch, #running-req: {}, #token: 900, token usage: 0.10, cuda graph: True, " \
          "gen throughput (token/s): {}, #queue-req: 0"
    t = 1796612000.0
    lines = [f"{t:.3f} {dec.format(8, 300.0)}", f"{t + 10.5:.3f} {dec.format(100, 5000.0)}",
             f"{t + 11:.3f} INFO Prefill batch, #new-seq: 2, #new-token: 30, #cached-token: 900, #queue-req: 0",
             f"{t + 12:.3f} {dec.format(200, 5000.0)}", f"{t + 30:.3f} {dec.format(50, 100.0)}"]
    Path(path).write_text("\n".join(lines) + "\n")
    got = mod.decode_cost(SGLangLog(path).take(t + 10, t + 20))
    assert got == {"decode_logs": 2, "running_mean": 150.0, "ms_per_iteration": 30.0, "prefill_batches": 1,
                   "retractions": 0}
    assert mod.decode_cost({"decode_logs": 0}) == {"decode_logs": 0, "running_mean": None, "ms_per_iteration": None,
                                                   "prefill_batches": None, "retractions": None}
