"""srca eval: planning, result lines, grading flags, resume after an interruption, CLI."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from srca.cli import build_parser, main
from srca.commands import eval as eval_cmd
from srca.config import SearchConfig
from srca.eval.data import read_jsonl
from srca.eval import ResultsError, arun_eval, comparable, config_for, plan, problem_seed, read_records, run_eval

sys.path.insert(0, str(Path(__file__).parent))
from _eval_fixtures import count_in_flight, engine, write_data  # noqa: E402

FIELDS = {"unique_id", "method", "n", "answer", "gold", "correct", "level", "subject", "usage", "timings",
          "stop_reason", "from_checkpoint", "rescued", "any_correct", "path_correct", "answers", "seed", "config_id"}


@pytest.fixture
def problems(tmp_path):
    return read_jsonl(write_data(tmp_path / "data.jsonl"))


def test_plan_orders_jobs_and_runs_cot_once(problems):
    jobs = plan(problems[:2], ["cot", "srca"], [2, 4])
    assert [j.key for j in jobs] == [
        ("test/algebra/1.json", "cot", 1), ("test/algebra/1.json", "srca", 2), ("test/algebra/1.json", "srca", 4),
        ("test/algebra/2.json", "cot", 1), ("test/algebra/2.json", "srca", 2), ("test/algebra/2.json", "srca", 4)]
    assert jobs[1].config.seed == problem_seed(0, "test/algebra/1.json") == jobs[2].config.seed
    assert jobs[3].config.seed != jobs[1].config.seed
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        plan(problems, ["nope"], [4])
    with pytest.raises(ValueError, match="n: must be"):
        plan(problems, ["srca"], [0])


def test_variants_map_to_config_fields():
    assert config_for("srca-noacs", 4).acs is False and config_for("srca-noacs", 4).method == "srca"
    assert config_for("srca-nocca", 4).cca is False
    lean = config_for("srca-lean", 16)  # issue 16's early-exit setting, as the bank's grid picked it
    assert (lean.method, lean.n, lean.waves, lean.wave_consensus, lean.confidence, lean.keep_top) == \
        ("srca", 16, 4, 0.4, "mean", 1.0)
    margin = config_for("srca-margin", 16)  # the same waves, stopped by the vote's lead
    assert (margin.waves, margin.wave_margin, margin.confidence, margin.keep_top) == (4, 0.25, "mean", 1.0)
    fast = config_for("srca-margin-loops", 16)  # the bank's early-exit pick: a smaller lead, loop stops
    assert (fast.waves, fast.wave_margin, fast.confidence, fast.keep_top, fast.loop_share, fast.loop_after) == \
        (4, 0.125, "mean", 1.0, 0.4, 512)
    assert config_for("srca-loops", 16).loop_share == 0.4
    wide = config_for("srca-wide", 32)  # n as a cap: 8 waves of 4, the same lead and loop stops
    assert (wide.n, wide.waves, wide.wave_margin, wide.confidence, wide.keep_top, wide.loop_share) == \
        (32, 8, 0.125, "mean", 1.0, 0.4)
    grow = config_for("srca-wide-fast", 32)  # the same cap in 5 growing waves, a lead of 0.1
    assert (grow.waves, grow.wave_growth, grow.wave_margin, grow.loop_share) == (5, 0.5, 0.1, 0.4)
    from srca.methods.lineage import width
    assert width(grow) == 10 and width(wide) == 4  # admission by the largest wave
    c = config_for("majority", 8, SearchConfig(temperature=0.5), seed=3)
    assert (c.method, c.n, c.temperature, c.seed) == ("majority", 8, 0.5, 3)
    assert config_for("cot", 8).n == 1
    with pytest.raises(ValueError, match="beam_width"):
        config_for("srca", 3, SearchConfig(n=4, beam_width=2))


def test_a_variant_name_where_a_config_is_built_from_fields():
    from srca.cli import build_parser
    from srca.commands.common import config_from_args
    from srca.eval.variants import expand

    # the variant's fields, the others given win, a method name passes through
    assert expand({"method": "srca-lean", "waves": 5, "n": 8}) == {
        "method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 5, "wave_consensus": 0.4, "n": 8}
    assert expand({"method": "majority", "n": 4}) == {"method": "majority", "n": 4}
    assert expand({"n": 4}) == {"n": 4}
    # srca solve --method VARIANT [--FIELD ...]
    parse = build_parser().parse_args
    c = config_from_args(parse(["solve", "--method", "srca-margin-loops", "--n", "8", "q"]))
    assert (c.method, c.n, c.waves, c.wave_margin, c.loop_share) == ("srca", 8, 4, 0.125, 0.4)
    c = config_from_args(parse(["solve", "--method", "srca-paper", "--decision", "weighted_vote", "q"]))
    assert (c.lineages, c.decision) == (False, "weighted_vote")
    assert config_from_args(parse(["solve", "q"])) == SearchConfig()
    with pytest.raises(ValueError, match=r"SearchConfig\.method: unknown method 'nope'.*or a variant: .*'srca-lean'"):
        expand({"method": "nope"})


def test_problem_seed_depends_on_seed_and_id_only():
    assert problem_seed(0, "a") == problem_seed(0, "a")
    assert len({problem_seed(0, "a"), problem_seed(1, "a"), problem_seed(0, "b")}) == 3


def test_lines_grade_and_flag_cca_rescue(problems, tmp_path):
    out = tmp_path / "r.jsonl"
    recs = run_eval(problems, ["cot", "srca-paper", "srca-nocca", "majority"], [4], engine(), out, progress=False)
    assert len(recs) == 4 * 4
    assert read_records(out) == recs
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # the atomic rewrite keeps a normal file mode
    by = {(r["unique_id"], r["method"]): r for r in recs}
    for r in recs:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert "trace" not in r and "candidates" not in r
    rescue = by[("test/algebra/1.json", "srca-paper")]  # paths say 5, checkpoints say 4
    assert rescue["answer"] == "4" and rescue["correct"] and rescue["from_checkpoint"] and rescue["rescued"]
    assert rescue["any_correct"] and not rescue["path_correct"]
    assert {a["answer"]: a["correct"] for a in rescue["answers"]} == {"4": True, "5": False}
    assert rescue["usage"]["probe_tokens"] > 0 and rescue["stop_reason"] == "finished"
    nocca = by[("test/algebra/1.json", "srca-nocca")]
    assert nocca["answer"] == "5" and not nocca["correct"] and not nocca["rescued"]
    both = by[("test/algebra/2.json", "srca-paper")]  # paths and checkpoints agree on 9: correct, no rescue
    assert both["correct"] and not both["rescued"] and both["path_correct"]
    cot = by[("test/algebra/2.json", "cot")]
    assert cot["n"] == 1 and cot["correct"] and not cot["from_checkpoint"]
    assert by[("test/geometry/3.json", "cot")]["gold"] == "\\text{square}"
    assert not by[("test/geometry/3.json", "cot")]["correct"]


def test_same_seed_same_lines(problems, tmp_path):
    a = run_eval(problems, ["majority", "srca"], [2], engine(), tmp_path / "a.jsonl", progress=False, seed=5)
    b = run_eval(problems, ["majority", "srca"], [2], engine(), tmp_path / "b.jsonl", progress=False, seed=5,
                 concurrency=1)
    assert comparable(a) == comparable(b)


def _interrupted_run(problems, out: Path, after: int) -> None:
    async def go():
        task = None

        def on_record(rec):
            if len(read_records(out)) >= after:
                task.cancel()

        task = asyncio.ensure_future(arun_eval(problems, ["cot", "srca"], [2, 4], engine(latency_s=0.001), out,
                                               progress=False, concurrency=2, on_record=on_record))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_interrupted_and_resumed_equals_uninterrupted(problems, tmp_path):
    full = tmp_path / "full.jsonl"
    want = run_eval(problems, ["cot", "srca"], [2, 4], engine(), full, progress=False)
    part = tmp_path / "part.jsonl"
    _interrupted_run(problems, part, after=3)
    kept = read_records(part)
    assert 3 <= len(kept) < len(want)
    with part.open("a") as f:  # a write torn by the kill
        f.write('{"unique_id": "test/algebra/9.json", "method": "sr')
    with pytest.raises(ResultsError, match="--resume"):
        run_eval(problems, ["cot", "srca"], [2, 4], engine(), part, progress=False)
    got = run_eval(problems, ["cot", "srca"], [2, 4], engine(), part, progress=False, resume=True)
    assert comparable(got) == comparable(want)
    assert comparable(read_records(part)) == comparable(read_records(full))
    strip = lambda p: [json.dumps(r) for r in comparable(read_records(p))]
    assert strip(part) == strip(full)  # same lines, same order


def test_isolate_runs_each_solve_alone_on_a_cold_cache(problems, tmp_path):
    eng = engine()
    in_flight, peak = 0, 0
    real = eng.generate

    async def counting(reqs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.001)
            return await real(reqs)
        finally:
            in_flight -= 1

    eng.generate = counting
    recs = run_eval(problems[:3], ["cot", "srca"], [2], eng, tmp_path / "iso.jsonl", progress=False,
                    concurrency=8, isolate=True)
    assert len(recs) == 6 and eng.flushes == 6 and peak == 1  # one solve at a time, each after a flush
    # each solve starts cold: its cache hits are those of the same job run alone on a new engine,
    # while in a shared run later solves of a problem find its prompt already cached
    alone = {}
    for i, p in enumerate(problems[:3]):
        for m in ("cot", "srca"):
            [r] = run_eval([p], [m], [2], engine(), tmp_path / f"alone{i}{m}.jsonl", progress=False)
            alone[(r["unique_id"], r["method"])] = r["usage"]["cached_tokens"]
    assert {(r["unique_id"], r["method"]): r["usage"]["cached_tokens"] for r in recs} == alone
    shared = run_eval(problems[:3], ["cot", "srca"], [2], engine(), tmp_path / "shared.jsonl", progress=False)
    assert {(r["unique_id"], r["method"]): r["usage"]["cached_tokens"] for r in shared} != alone

    class NoFlush:
        def __init__(self, inner):
            self.info, self.encode, self.decode = inner.info, inner.encode, inner.decode
            self.chat_prompt, self.generate, self.close = inner.chat_prompt, inner.generate, inner.close

    with pytest.raises(ValueError, match="flush_cache"):
        run_eval(problems[:1], ["cot"], [1], NoFlush(engine()), tmp_path / "x.jsonl", progress=False, isolate=True)
    from srca.commands.common import UsageError
    with pytest.raises(UsageError, match="--isolate"):
        eval_cmd.run(_args("--data", str(write_data(tmp_path / "d0.jsonl")), "--isolate", "--out",
                           str(tmp_path / "y.jsonl"), "-q"), engine=NoFlush(engine()))
    data = write_data(tmp_path / "d.jsonl")
    assert main(["eval", "math500", "--data", str(data), "--isolate", "--concurrency", "4",
                 "--out", str(tmp_path / "o.jsonl")]) == 2


def test_resume_refuses_other_settings(problems, tmp_path):
    out = tmp_path / "r.jsonl"
    run_eval(problems[:1], ["srca"], [2], engine(), out, progress=False)
    with pytest.raises(ResultsError, match="other settings"):
        run_eval(problems[:1], ["srca"], [2], engine(), out, progress=False, resume=True,
                 base=SearchConfig(temperature=0.3))
    # overwrite starts again; a resume with the same settings runs nothing new
    run_eval(problems[:1], ["srca"], [2], engine(), out, progress=False, overwrite=True)
    eng = engine()
    run_eval(problems[:1], ["srca"], [2], eng, out, progress=False, resume=True)
    assert eng.calls == []


def test_corrupt_middle_line_is_an_error(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"unique_id": "a", "method": "cot", "n": 1}\nnot json\n{"unique_id": "b", "method": "cot", "n": 1}\n')
    with pytest.raises(ResultsError, match=":2: not a result line"):
        read_records(out)


def test_traces_dir(problems, tmp_path):
    run_eval(problems[:1], ["srca"], [2], engine(), tmp_path / "r.jsonl", progress=False, traces_dir=tmp_path / "tr")
    (f,) = list((tmp_path / "tr").glob("*.json"))
    assert f.name == "test_algebra_1.json.srca.n2.json"
    assert json.loads(f.read_text())["trace"]
    page = f.with_suffix(".html")  # the trace viewer page beside it
    assert sorted(p.name for p in (tmp_path / "tr").iterdir()) == [page.name, f.name]
    assert page.read_text().startswith("<!doctype html>")


def _args(*argv):
    return build_parser().parse_args(["eval", "math500", *argv])


def test_cli_eval_and_report(problems, tmp_path, capsys):
    data = write_data(tmp_path / "d.jsonl")
    out = tmp_path / "r.jsonl"
    assert eval_cmd.run(_args("--data", str(data), "--limit", "2", "--method", "cot,srca-paper", "--n", "4",
                              "--out", str(out), "-q"), engine=engine()) == 0
    text = capsys.readouterr().out
    assert "Accuracy per method x n" in text and "Accuracy per level" in text
    assert [(r["method"], r["n"]) for r in read_records(out)] == [("cot", 1), ("srca-paper", 4)] * 2
    assert main(["report", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["method"], r["n"], r["count"]) for r in rows] == [("cot", 1, 2), ("srca-paper", 4, 2)]
    srca = rows[1]
    assert srca["correct"] == 2 and srca["rescued"] == 1 and srca["rescue_rate"] == 0.5
    assert main(["report", str(out), str(tmp_path / "d.jsonl")]) == 2  # not a results file
    assert "not a result line" in capsys.readouterr().err


def test_cli_errors_exit_2(tmp_path, capsys):
    data = write_data(tmp_path / "d.jsonl")
    assert main(["eval", "math500", "--data", str(data), "--method", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["eval", "math500", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["eval", "math500", "--data", str(data), "--limit", "0", "--out", str(tmp_path / "o")]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["eval", "math500", "--data", str(data), "--n", "4,x", "--out", str(tmp_path / "o")])
    assert e.value.code == 2


DRIVER = textwrap.dedent("""
    import signal, sys
    # Ctrl-C as at a terminal: a test run started in the background (``cmd &`` in a script) hands
    # its children SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    from _eval_fixtures import engine
    from srca.cli import main
    from srca.commands import eval as ev
    ev.engine_from_args = lambda args: engine(latency_s={lat})  # the real CLI path, a scripted engine
    sys.exit(main(["eval", "math500", "--data", {data!r}, "--method", "cot,srca,majority", "--n", "2,4",
                   "--out", {out!r}, "--concurrency", "1", "-q"] + sys.argv[1:]))
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_process_then_resume(tmp_path, sig):
    """Kill (or Ctrl-C) a real `srca eval` process mid-run, resume it: same lines as an
    uninterrupted run."""
    data = write_data(tmp_path / "d.jsonl")
    out, full = tmp_path / "killed.jsonl", tmp_path / "full.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    drv = lambda o, lat: DRIVER.format(tests=str(Path(__file__).parent), data=str(data), out=str(o), lat=lat)
    # 0.1 s per engine call: the run lasts seconds, so the signal lands mid-run even on a loaded machine
    proc = subprocess.Popen([sys.executable, "-c", drv(out, 0.1)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30 and (not out.exists() or len(read_records(out)) < 4):
        time.sleep(0.02)
    proc.send_signal(sig)
    rc = proc.wait(10)
    if sig == signal.SIGINT:
        assert rc == 130 and b"--resume" in proc.stderr.read()
    n_killed = len(read_records(out))
    assert 4 <= n_killed < 20
    assert subprocess.run([sys.executable, "-c", drv(out, 0), "--resume"], env=env, capture_output=True,
                          timeout=60).returncode == 0
    assert subprocess.run([sys.executable, "-c", drv(full, 0)], env=env, capture_output=True,
                          timeout=60).returncode == 0
    a, b = read_records(out), read_records(full)
    assert len(a) == 4 * 5
    assert comparable(a) == comparable(b)


def test_cli_default_out_and_hub_error(tmp_path, monkeypatch, capsys):
    data = write_data(tmp_path / "d.jsonl")
    monkeypatch.chdir(tmp_path)
    assert eval_cmd.run(_args("--data", str(data), "--limit", "1", "--method", "cot,srca", "--n", "2,4", "-q"),
                        engine=engine()) == 0
    assert (tmp_path / "math500_cot+srca_n2-4.jsonl").is_file()
    import srca.eval.data as data_mod

    monkeypatch.delenv("SRCA_DATA_DIR", raising=False)
    monkeypatch.setattr(data_mod, "load_hf", lambda ds: (_ for _ in ()).throw(
        data_mod.DataError(f"could not load {ds.hf_path} from the Hugging Face hub; pass --data FILE.jsonl")))
    assert main(["eval", "math500", "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "HuggingFaceH4/MATH-500" in err and "--data" in err and len(err.strip().splitlines()) == 1


def test_eval_progress_is_json_lines_with_json_logs(tmp_path, monkeypatch):
    """With --log-format json, stderr holds only JSON objects: a record per finished solve
    instead of the progress bar."""
    import io
    import json
    import logging

    from srca import logs

    monkeypatch.setattr(logs, "_format", logs.current_format())
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    lg = logging.getLogger("srca")
    saved = (list(lg.handlers), lg.level)
    logs.setup("json", logging.INFO, logger="srca")  # what the CLI sets up for --log-format json
    try:
        data = write_data(tmp_path / "d.jsonl")
        assert eval_cmd.run(_args("--data", str(data), "--limit", "2", "--method", "majority", "--n", "2",
                                  "--out", str(tmp_path / "o.jsonl")), engine=engine()) == 0
    finally:
        for h in list(lg.handlers):
            lg.removeHandler(h)
        for h in saved[0]:
            lg.addHandler(h)
        lg.setLevel(saved[1])
    lines = [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]
    solved = [x for x in lines if x["message"].startswith("solved")]
    assert [(x["done"], x["total"]) for x in solved] == [(1, 2), (2, 2)] and "majority@2" in solved[-1]["accuracy"]


def test_solve_many_without_concurrency_fills_the_engines_batch_by_width():
    from dataclasses import replace

    from srca import Solver

    def with_batch(seqs):
        e = engine()
        e.info = replace(e.info, concurrent_sequences=seqs)
        return e

    eng = engine()  # solve_many without concurrency: 16 in flight on an engine that does not say
    seen = count_in_flight(eng, delay_s=0.02)
    Solver(engine=eng, answer_workers=0).solve_many([f"Compute {k}+1." for k in range(20)], method="majority", n=2)
    assert seen["most"] == 16
    eng = with_batch(8)  # says 8 sequences: 4 majority@2 solves at once
    seen = count_in_flight(eng, delay_s=0.02)
    Solver(engine=eng, answer_workers=0).solve_many([f"Compute {k}+1." for k in range(20)], method="majority", n=2)
    assert seen["most"] == 4


def test_eval_without_concurrency_runs_the_engines_default_in_flight(problems, tmp_path):
    from dataclasses import replace

    eng = engine(latency_s=0.05)
    seen = count_in_flight(eng)
    many = [replace(p, unique_id=f"{p.unique_id}-{k}") for k in range(3) for p in problems]  # 12 problems
    run_eval(many, ["majority"], [2], eng, tmp_path / "c.jsonl", progress=False)
    assert seen["most"] == 8  # the engine does not say its batch: 8 solves, one call each
    eng.info = replace(eng.info, concurrent_sequences=20)  # 20 sequences // 2 a solve = 10 solves
    seen["most"] = 0
    run_eval(many, ["majority"], [2], eng, tmp_path / "d.jsonl", progress=False)
    assert seen["most"] == 10
    seen["most"] = 0
    run_eval(many, ["majority"], [2], eng, tmp_path / "e.jsonl", progress=False, concurrency=3)  # given: kept
    assert seen["most"] == 3
