"""benchmarks/mixed_vote.py: the joint CoT + PoT vote replayed from two runs' result lines."""
import gzip
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import mixed_vote  # noqa: E402


def _g(answer, paths, correct):
    return {"answer": answer, "paths": paths, "correct": correct}


def test_joint_vote_merges_equivalent_answers_and_weighs_programs():
    cot = [_g("5", 3, False), _g("\\frac{1}{2}", 2, True)]
    pot = [_g("0.5", 2, True), _g("5", 0, False)]
    assert mixed_vote.joint_vote(cot, [], 0.0) is False  # CoT alone: 5 leads 3 to 2
    assert mixed_vote.joint_vote(cot, pot, 0.4) is False  # 2 + 0.8 < 3
    assert mixed_vote.joint_vote(cot, pot, 1.0) is True  # 1/2 and 0.5 are one group: 4 > 3
    # ties go to the group seen first: CoT's leader
    assert mixed_vote.joint_vote([_g("7", 1, True)], [_g("8", 1, False)], 1.0) is True
    assert mixed_vote.joint_vote([], [_g("8", 2, False), _g("9", 1, True)], 1.0) is False
    assert mixed_vote.joint_vote([_g(None, 4, True)], [], 1.0) is False  # no vote: wrong


def _write(path, method, rows):
    with gzip.open(path, "wt") as f:
        for uid, answers, tokens in rows:
            f.write(json.dumps({"unique_id": uid, "method": method, "n": 4, "answers": answers,
                                "correct": bool(answers and answers[0]["correct"]),
                                "usage": {"generated_tokens": tokens}}) + "\n")


def test_the_cli_reports_each_weight_with_halves_and_paired_counts(tmp_path):
    cot, pot, out = tmp_path / "cot.jsonl.gz", tmp_path / "pot.jsonl.gz", tmp_path / "r.json"
    _write(cot, "majority", [("a", [_g("1", 3, False), _g("2", 1, True)], 100),
                             ("b", [_g("3", 4, True)], 100), ("c", [_g("4", 2, True)], 100)])
    _write(pot, "pot", [("a", [_g("2", 4, True)], 50), ("b", [_g("6", 4, False)], 50), ("z", [], 50)])
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--cot", str(cot),
                           "--pot", str(pot), "--weights", "0,1", "--pot-alone", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    assert res["problems"] == 2 and res["tokens_x_cot"] == 1.5  # a and b are shared
    assert res["cot_recorded_accuracy"] == 50.0 and res["cot_vote"]["accuracy"] == 50.0
    rows = {r["vote"]: r for r in res["rows"]}
    assert (rows["w=0"]["accuracy"], rows["w=0"]["wins"], rows["w=0"]["losses"]) == (50.0, 0, 0)
    # w=1: a turns right (2: 1 + 4 > 3), b stays right (3: 4 against 6: 4, CoT's first)
    assert (rows["w=1"]["accuracy"], rows["w=1"]["wins"], rows["w=1"]["losses"]) == (100.0, 1, 0)
    assert (rows["pot alone"]["accuracy"], rows["pot alone"]["losses"]) == (50.0, 1)


@pytest.mark.parametrize("weights", ["", "1,x", "-1"])
def test_bad_weights_are_a_usage_error(tmp_path, weights):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--cot", "x",
                           "--pot", "y", "--weights", weights], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--weights" in done.stderr


def test_take_draws_k_of_n_samples_and_a_failed_sample_votes_for_nothing():
    import random

    line = {"unique_id": "a", "n": 6, "answers": [_g("1", 3, True), _g("2", 1, False), _g(None, 1, False)]}
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        got = mixed_vote.take(line, 4, rng)
        counts = [g["paths"] for g in got]
        assert [g["answer"] for g in got] == ["1", "2"] and counts[0] <= 3 and counts[1] <= 1
        assert 2 <= sum(counts) <= 4  # 2 of the 6 samples gave no answer
        seen.add(tuple(counts))
    assert (3, 1) in seen and (2, 0) in seen  # the draws vary
    assert [g["paths"] for g in mixed_vote.take(line, 6, rng)] == [3, 1]  # all of them: the line itself
    with pytest.raises(SystemExit, match="only n = 6"):
        mixed_vote.take(line, 7, rng)


def test_take_at_equal_compute_scales_tokens_and_averages_draws(tmp_path):
    cot, pot, out = tmp_path / "cot.jsonl.gz", tmp_path / "pot.jsonl.gz", tmp_path / "r.json"
    # every CoT sample of a says 1 (wrong), every program 2 (right): with 2 of each, the tie goes to CoT
    _write(cot, "majority", [("a", [_g("1", 4, False)], 100), ("b", [_g("3", 4, True)], 100)])
    _write(pot, "pot", [("a", [_g("2", 4, True)], 60), ("b", [_g("3", 4, True)], 60)])
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--cot", str(cot),
                           "--pot", str(pot), "--weights", "1,2", "--take", "2", "--draws", "5", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    assert res["take"] == 2 and res["draws"] == 5 and res["tokens_x_cot"] == 0.8  # (100 + 60) / 2 / 100
    rows = {r["vote"]: r for r in res["rows"]}
    assert (rows["w=1"]["accuracy"], rows["w=1"]["wins"], rows["w=1"]["losses"]) == (50.0, 0, 0)
    assert (rows["w=2"]["accuracy"], rows["w=2"]["wins"]) == (100.0, 1)
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--cot", str(cot),
                          "--pot", str(pot), "--take", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--take" in bad.stderr


def test_several_cot_runs_are_replayed_each_and_pooled_with_an_interval(tmp_path):
    cot1, cot2, pot, out = (tmp_path / f for f in ("c1.jsonl.gz", "c2.jsonl.gz", "pot.jsonl.gz", "r.json"))
    # run 1: a wrong (1 leads), b right; run 2: a right, b wrong; the programs say 2 on a, 3 on b
    _write(cot1, "majority", [("a", [_g("1", 3, False), _g("2", 1, True)], 100), ("b", [_g("3", 4, True)], 100)])
    _write(cot2, "majority", [("a", [_g("2", 4, True)], 100), ("b", [_g("5", 3, False), _g("3", 1, True)], 100)])
    _write(pot, "pot", [("a", [_g("2", 4, True)], 50), ("b", [_g("3", 4, True)], 50)])
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--cot", str(cot1),
                           str(cot2), "--pot", str(pot), "--weights", "0,1", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    assert [r["cot"] for r in res["runs"]] == [str(cot1), str(cot2)]
    assert [r["rows"][1]["accuracy"] for r in res["runs"]] == [100.0, 100.0]  # w=1 puts both right in both
    pooled = {r["vote"]: r for r in res["pooled"]}
    assert (pooled["w=0"]["a_accuracy"], pooled["w=0"]["b_accuracy"], pooled["w=0"]["difference"]) == (50.0, 50.0, 0.0)
    assert (pooled["w=1"]["a_accuracy"], pooled["w=1"]["difference"]) == (100.0, 50.0)
    assert pooled["w=1"]["ci95"] == [50.0, 50.0]  # every problem gains half a point per run: no spread
    assert set(pooled["w=1"]) >= {"tune", "test", "p_sign_flip", "a_per_run", "b_per_run"}


def test_a_majority_pot_run_splits_by_kind_and_votes_again_at_each_weight(tmp_path):
    run, out = tmp_path / "mp.jsonl.gz", tmp_path / "r.json"
    # a: chains 3 for "1" (wrong); programs 2 for "2" (right) beside one chain: 1 + 2w against 3
    # b: only chains; c: no group counts programs but the file does elsewhere
    _write(run, "majority-pot", [
        ("a", [dict(_g("1", 3, False)), dict(_g("2", 3, True), programs=2)], 400),
        ("b", [_g("3", 4, True)], 400),
        ("c", [dict(_g("4", 2, False), programs=2), _g("5", 2, True)], 400)])
    chains, programs = mixed_vote.split_joint({"answers": [dict(_g("2", 3, True), programs=2)], "n": 4,
                                               "usage": {"generated_tokens": 9}})
    assert (chains["answers"][0]["paths"], programs["answers"][0]["paths"]) == (1, 2)
    assert (chains["usage"]["generated_tokens"], programs["usage"]["generated_tokens"]) == (9, 0)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py"), "--joint", str(run),
                           "--weights", "0,0.5,1.5", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    assert res["problems"] == 3 and res["tokens_x_cot"] == 1.0
    rows = {r["vote"]: r["accuracy"] for r in res["rows"]}
    # w=0: a wrong (3 > 1), b right, c right (5's 2 chains alone) = 2/3
    # w=0.5: a 1 + 1 = 2 < 3 wrong; c: 4 has 1, 5 has 2: right = 2/3
    # w=1.5: a 1 + 3 = 4 > 3 right; c: 4 has 3 > 2: wrong = 2/3, but a different pair
    assert rows == {"w=0": 66.67, "w=0.5": 66.67, "w=1.5": 66.67}
    wins = {r["vote"]: (r["wins"], r["losses"]) for r in res["rows"]}
    assert wins["w=1.5"] == (1, 1) and wins["w=0.5"] == (0, 0)


def test_joint_is_not_mixed_with_cot_and_a_plain_run_is_refused(tmp_path):
    run = tmp_path / "m.jsonl.gz"
    _write(run, "majority", [("a", [_g("1", 3, False)], 10)])
    cli = [sys.executable, os.path.join(ROOT, "benchmarks", "mixed_vote.py")]
    done = subprocess.run(cli + ["--joint", str(run), "--cot", str(run)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--joint" in done.stderr
    done = subprocess.run(cli + ["--joint", str(run)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not a majority-pot run" in done.stderr
    done = subprocess.run(cli + ["--cot", str(run)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--pot" in done.stderr


def test_reread_reads_program_answers_as_latex_and_grades_them_again():
    lines = {"a": {"gold": "5r^5", "answers": [_g("5*r**5", 3, False), _g("7", 1, False)]},
             "b": {"gold": "\\pi", "answers": [_g("pi", 2, False), _g(None, 1, False)]}}
    assert mixed_vote.reread(lines) == 5
    assert [(a["answer"], a["correct"]) for a in lines["a"]["answers"]] == [("5 r^{5}", True), ("7", False)]
    assert (lines["b"]["answers"][0]["answer"], lines["b"]["answers"][0]["correct"]) == ("\\pi", True)


def test_reread_takes_a_labelled_value():
    lines = {"a": {"gold": "(8,-2)", "answers": [_g("The coordinates of point P are: (8, -2)", 2, False)]},
             "b": {"gold": "3", "answers": [_g("3", 5, True)]}}
    assert mixed_vote.reread(lines) == 2  # b's answer reads the same: not counted
    assert (lines["a"]["answers"][0]["answer"], lines["a"]["answers"][0]["correct"]) == ("(8, -2)", True)
