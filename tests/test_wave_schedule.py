"""benchmarks/wave_schedule.py's model of an eval's waves on one GPU: exact iterations, tokens and
unused tokens on a recorded bank line, the same stops and tokens as the bank replay, admission
and the speculation's room."""
from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from srca import SearchConfig  # noqa: E402
from srca.eval.bank import Policy, replay_lineages  # noqa: E402
from test_waves import recorded_six  # noqa: E402
from wave_schedule import Run, fit_cost, lineages_of, model_job, raw_phase, waves_needed  # noqa: E402

BASE = dict(method="srca", n=6, waves=3, confidence="none", keep_top=1.0)
ONE = lambda b: 1.0  # noqa: E731  an iteration costs 1 ms whatever runs: wall in ms = iterations


def run(finals, problems=1, concurrency=None, capacity=4096, **cfg):
    line, _ = recorded_six(finals)
    c = SearchConfig(**{**BASE, **cfg})
    P = [lineages_of(line, c)] * problems
    return model_job(P, c, False, concurrency or problems, capacity, ONE), line, c


def test_every_wave_needed_runs_them_one_after_another_and_speculation_the_last_two_together():
    """Lineages of 19, 26, 33, 40, 19, 26 tokens that never agree, waves of 2: the three waves'
    longest one after another (26 + 40 + 26), every token used; speculation on an engine with
    room starts waves 2 and 3 together once wave 1 is decided (ends 26 + 40 and 26 + 26: 66
    iterations, the same tokens); an overlap of 10 starts waves 2 and 3 at 10 and 20 (ends 26,
    50, 46)."""
    finals = ["1", "2", "3", "4", "5", "6"]
    plain, line, c = run(finals)
    assert (plain["iterations"], plain["tokens"], plain["unused_tokens"]) == (92, 163, 0)
    assert plain["tokens"] == replay_lineages(line, list(range(6)), Policy.from_config(c)).tokens
    spec, _, _ = run(finals, wave_speculate=True)
    assert (spec["iterations"], spec["tokens"], spec["unused_tokens"]) == (66, 163, 0)
    over, _, _ = run(finals, wave_overlap=10)
    assert (over["iterations"], over["tokens"]) == (50, 163)


def test_waves_started_early_and_not_needed_are_counted_unused():
    """The first wave (7, 7) settles at 26: speculation started nothing else, overlapping waves
    ran 16 + 16 and 6 + 6 (started at 10 and 20). The second wave (3, 3 after 1, 2) settles at
    66: the third, speculated with it at 26, ran whole (19 + 26). The replay's figures."""
    second = ["1", "2", "3", "3", "3", "3"]
    plain, line, c = run(second)
    assert (plain["iterations"], plain["tokens"]) == (66, 19 + 26 + 33 + 40)
    assert waves_needed(lineages_of(line, c), c) == 2
    spec, _, _ = run(second, wave_speculate=True)
    assert (spec["iterations"], spec["unused_tokens"], spec["tokens"]) == (66, 45, 118 + 45)
    assert spec["tokens"] == replay_lineages(line, list(range(6)), Policy.from_config(
        SearchConfig(**BASE, wave_speculate=True))).tokens
    finals = ["7", "7", "8", "8", "8", "8"]
    plain, line, c = run(finals)
    assert (plain["iterations"], plain["tokens"]) == (26, 19 + 26)
    assert waves_needed(lineages_of(line, c), c) == 1
    spec, _, _ = run(finals, wave_speculate=True)
    assert (spec["iterations"], spec["unused_tokens"], spec["tokens"]) == (26, 0, 45)
    over, _, _ = run(finals, wave_overlap=10)
    assert (over["unused_tokens"], over["tokens"]) == (44, 45 + 44)
    replayed = replay_lineages(line, list(range(6)), Policy.from_config(SearchConfig(**BASE, wave_overlap=10)))
    assert replayed.tokens == over["tokens"]


def test_speculation_takes_only_the_room_there_is_and_admission_queues_solves():
    finals = ["1", "2", "3", "4", "5", "6"]
    tight, _, _ = run(finals, capacity=3, wave_speculate=True)  # wave 1 (2) leaves no room for wave 2 (2)
    assert tight["iterations"] == 92
    two, _, _ = run(finals, problems=2, concurrency=1)  # one solve at a time: the second after the first
    assert (two["iterations"], two["tokens"]) == (184, 326)
    both, _, _ = run(finals, problems=2, concurrency=2)
    assert (both["iterations"], both["tokens"], both["mean_running"]) == (92, 326, 326 / 92)


def test_majority_and_the_raw_phase():
    """Majority: every sample at once, no probe; the raw phase queues what the capacity leaves."""
    line, _ = recorded_six(["1", "2", "3", "4", "5", "6"])
    P = [lineages_of(line, SearchConfig(**BASE))]
    maj = model_job(P, SearchConfig(**BASE), True, 1, 4096, ONE)
    assert (maj["iterations"], maj["tokens"]) == (40, 163)
    assert raw_phase(P, 4096, ONE) == {"wall_s": 0.04, "tokens": 163, "iterations": 40}
    # capacity 3: 19, 26, 33 decode; at 19 the fourth (40) starts, at 26 the fifth (19), at 33 the sixth (26)
    assert raw_phase(P, 3, ONE)["iterations"] == 59


def test_the_cost_fit_reads_sampling_jobs_only(tmp_path):
    rows = [{"job": "majority@16", "mean_running": 1000, "ms_per_iteration": 20.0},
            {"job": "srca@16", "mean_running": 4000, "ms_per_iteration": 40.0},
            {"job": "dvts@16", "mean_running": 1000, "ms_per_iteration": 99.0}]
    path = tmp_path / "cost.json"
    path.write_text(json.dumps({"rows": rows}))
    c, p, used = fit_cost(str(path))
    assert p == pytest.approx(0.5) and c * 1000 ** p == pytest.approx(20.0) and len(used) == 2
    path.write_text(json.dumps({"rows": rows[2:]}))
    with pytest.raises(SystemExit, match="two sampling jobs"):
        fit_cost(str(path))


def test_a_decision_waits_for_the_one_before_it_even_when_a_later_wave_ended_first():
    """A speculated wave ends before the decision before it (the second wave's cut lineage's
    probe, 3 tokens after its end): the later decision comes at that decision, not back in time
    (no iteration counted twice). Every wave is needed (six answers)."""
    from srca.methods.consensus import Ballot
    from wave_schedule import Lineage, Problem

    kinds = ["path", "path", "path", "checkpoint", "path", "path"]
    lens, probes = [30, 40, 10, 10, 5, 5], [0, 0, 0, 3, 0, 0]
    P = [Problem([Lineage(Ballot(str(i), k), n, q) for i, (k, n, q) in enumerate(zip(kinds, lens, probes))])]
    c = SearchConfig(**BASE, wave_speculate=True)
    # wave 1 decided at 40; waves 2 and 3 start there: wave 3 ends at 45, wave 2 at 50 and its
    # cut lineage's probe at 53: the decisions after waves 2 and 3 both at 53
    r = model_job(P, c, False, 1, 4096, ONE)
    assert (r["iterations"], r["tokens"], r["unused_tokens"], r["mean_solve_iterations"]) == (53, 103, 0, 53)
    plain = model_job(P, SearchConfig(**BASE), False, 1, 4096, ONE)  # 40, then 10 + 3, then 5
    assert (plain["iterations"], plain["tokens"]) == (58, 103)


def test_the_command_models_each_eval_size_apart(tmp_path, capsys):
    """``--problems 1,2`` over a bank of two problems: the second table has twice the tokens (the
    lineages of each size are read apart), and the JSON holds a row per job and size."""
    import gzip

    from wave_schedule import main

    line, _ = recorded_six(["1", "2", "3", "4", "5", "6"])
    bank = tmp_path / "bank"
    bank.mkdir()
    with gzip.open(bank / "chunk_000.jsonl.gz", "wt") as f:
        for uid in ("p1", "p2"):
            f.write(json.dumps({**line, "unique_id": uid}) + "\n")
    out = tmp_path / "ws.json"
    assert main([str(bank), "--n", "6", "--problems", "1,2", "--cost-model", "flat=1,0", "--jobs", "majority,srca",
                 "--out", str(out)]) == 0
    rows = {(r["problems"], r["job"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[(1, "srca@6")]["tokens"] * 2 == rows[(2, "srca@6")]["tokens"]
    assert rows[(1, "majority@6")]["tokens"] == 163 and rows[(2, "raw")]["tokens"] == 326
    with pytest.raises(SystemExit, match="fewer samples"):
        main([str(bank), "--n", "16", "--cost-model", "flat=1,0"])
    # the bank twice over: 4 problems; admitted by width (srca@6's waves of 2: 4096 // 2 at once)
    # and by load, each row saying which
    assert main([str(bank), "--n", "6", "--repeat", "2", "--problems", "4", "--cost-model", "flat=1,0",
                 "--jobs", "srca", "--out", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["rows"] if r["job"] == "srca@6"]
    assert sorted(r["admission"] for r in rows) == ["load", "width"]
    assert all(r["tokens"] == 4 * 163 and r["iterations"] == 92 for r in rows)


def test_admission_by_load_starts_the_next_solve_when_the_running_leave_room():
    """Two problems of six lineages (waves of 2) that never agree, a batch of 3: by width only
    one solve at a time (3 // 2); by load the second starts as soon as the first's running
    lineages leave room for its width (2), long before the first ends."""
    finals = ["1", "2", "3", "4", "5", "6"]
    line, _ = recorded_six(finals)
    c = SearchConfig(**BASE)
    P = [lineages_of(line, c)] * 2
    by_width = model_job(P, c, False, 1, 3, ONE)
    by_load = model_job(P, c, False, 1024, 3, ONE, by_load=True)
    assert by_width["iterations"] == 2 * 92 and by_width["tokens"] == by_load["tokens"] == 326
    assert by_load["iterations"] < by_width["iterations"]
