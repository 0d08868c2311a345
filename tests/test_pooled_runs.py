"""benchmarks/pooled_runs.py: two methods' runs averaged problem by problem, an interval and a
sign-flip test, held-out problems apart."""
from __future__ import annotations

import gzip
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

from pooled_runs import compare, main, read_run  # noqa: E402


def write(path, method, correct):
    with gzip.open(path, "wt") as f:
        for i, c in enumerate(correct):
            f.write(json.dumps({"unique_id": f"p{i}", "method": method, "n": 16, "correct": c}) + "\n")
    return str(path)


def test_pooled_rates_and_their_difference():
    """Problem p0: a right in 2 of 2 runs, b in 0 of 1 (+1); p1: a 1 of 2, b 1 of 1 (-0.5); p2, p3:
    both always right (0): the mean difference is +0.125, the pooled rates 87.5% and 75%."""
    a = [{"p0": True, "p1": True, "p2": True, "p3": True}, {"p0": True, "p1": False, "p2": True, "p3": True}]
    b = [{"p0": False, "p1": True, "p2": True, "p3": True}]
    r = compare(a, b, ["p0", "p1", "p2", "p3"], resamples=2000)
    assert (r["a_accuracy"], r["b_accuracy"], r["difference"]) == (87.5, 75.0, 12.5)
    assert -50.0 <= r["ci95"][0] <= 12.5 <= r["ci95"][1] <= 100.0  # resamples of +1, -0.5, 0, 0
    assert 0.0 < r["p_sign_flip"] <= 1.0 and r["a_per_run"] == [100.0, 75.0] and r["b_per_run"] == [75.0]
    same = compare(a, a, ["p0", "p1"], resamples=500)
    assert same["difference"] == 0.0 and same["p_sign_flip"] == 1.0
    with pytest.raises(ValueError, match="no problem"):
        compare(a, b, [])


def test_a_run_on_part_of_the_problems_adds_draws_to_those_only():
    """a: one run on p0, p1 (both right), another on p0 only (wrong); b: one run on both, wrong
    on p0, right on p1. p0: a 1/2 - b 0 = +0.5; p1: 1 - 1 = 0; the mean +25 points."""
    a = [{"p0": True, "p1": True}, {"p0": False}]
    b = [{"p0": False, "p1": True}]
    r = compare(a, b, ["p0", "p1"], resamples=500)
    assert (r["a_accuracy"], r["b_accuracy"], r["difference"]) == (75.0, 50.0, 25.0)
    assert r["a_draws"] == [1, 2] and r["b_draws"] == [1, 1] and r["a_per_run"] == [100.0, 0.0]
    assert compare(a, b, ["p0", "p1", "p9"], resamples=500)["problems"] == 2  # p9: no run of either


def test_a_clear_difference_is_significant_and_noise_is_not():
    n = 300
    a = [{f"p{i}": i % 2 == 0 for i in range(n)}]  # right on half
    b = [{f"p{i}": i % 4 == 0 for i in range(n)}]  # right on a quarter, a subset of a's
    r = compare(a, b, [f"p{i}" for i in range(n)], resamples=2000)
    assert r["difference"] == 25.0 and r["ci95"][0] > 15 and r["p_sign_flip"] < 0.01


def test_the_command_pools_runs_and_splits_the_tuned_problems(tmp_path):
    a1 = write(tmp_path / "a1.jsonl.gz", "srca", [True, True, False, True])
    a2 = write(tmp_path / "a2.jsonl.gz", "srca", [True, False, False, True])
    b1 = write(tmp_path / "b1.jsonl.gz", "majority", [False, True, False, True])
    tuned = tmp_path / "tuned.txt"
    tuned.write_text("p0\np1\n")
    out = tmp_path / "out.json"
    assert main(["--a", a1, a2, "--b", b1, "--tuned-on", str(tuned), "--resamples", "200", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows["all"]["problems"] == 4 and rows["held-out"]["problems"] == 2 and rows["tuned on"]["problems"] == 2
    assert rows["all"]["difference"] == 12.5 and rows["held-out"]["difference"] == 0.0
    short = write(tmp_path / "a3.jsonl.gz", "srca", [False, False])  # a run on the first two problems
    assert main(["--a", a1, a2, short, "--b", b1, "--split-at", "2", "--resamples", "200", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows["first 2"]["problems"] == 2 and rows["the others"]["problems"] == 2
    assert rows["first 2"]["a_draws"] == [3, 3] and rows["the others"]["a_draws"] == [2, 2]
    data = tmp_path / "data.jsonl"  # the data set's order, not the files' (p3 and p0 come first)
    data.write_text("".join(json.dumps({"unique_id": u, "problem": "x", "answer": "1"}) + "\n" for u in ["p3", "p0", "p1", "p2"]))
    assert main(["--a", a1, a2, short, "--b", b1, "--split-at", "2", "--data", str(data), "--resamples", "200",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows["first 2"]["problems"] == 2 and rows["first 2"]["a_draws"] == [2, 3]
    assert rows["first 2"]["a_accuracy"] == 83.33  # p3: 2 of 2 right; p0: 2 of 3
    with pytest.raises(SystemExit):  # argparse's usage error, exit 2
        main(["--a", a1, "--b", b1, "--split-at", "2", "--data", str(tmp_path / "none.jsonl")])
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"unique_id": "p0", "method": "srca", "n": 16, "correct": True}) + "\n"
                     + json.dumps({"unique_id": "p0", "method": "majority", "n": 16, "correct": True}) + "\n")
    with pytest.raises(SystemExit, match="one method and n"):
        read_run(str(mixed))


def test_a_stored_result_stands_for_its_files(tmp_path, capsys):
    """``RESULT.json:a``/``:b`` expand to that side's files of an earlier result, in order, beside
    plain files; the pooled figures equal those of the files listed out. Anything else that looks
    like it is a usage error naming the item."""
    a1 = write(tmp_path / "a1.jsonl.gz", "srca", [True, True, False, True])
    a2 = write(tmp_path / "a2.jsonl.gz", "srca", [True, False, False, True])
    b1 = write(tmp_path / "b1.jsonl.gz", "majority", [False, True, False, True])
    b2 = write(tmp_path / "b2.jsonl.gz", "majority", [False, False, True, True])
    first = tmp_path / "first.json"
    assert main(["--a", a1, "--b", b1, "--resamples", "200", "--out", str(first)]) == 0
    listed, stored = tmp_path / "listed.json", tmp_path / "stored.json"
    assert main(["--a", a1, a2, "--b", b1, b2, "--resamples", "200", "--out", str(listed)]) == 0
    assert main(["--a", f"{first}:a", a2, "--b", f"{first}:b", b2, "--resamples", "200", "--out", str(stored)]) == 0
    got = json.loads(stored.read_text())
    assert got["args"]["a"] == [a1, a2] and got["args"]["b"] == [b1, b2]
    assert got["rows"] == json.loads(listed.read_text())["rows"]
    capsys.readouterr()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmark": "vote_exit", "args": {"a": [a1]}}))
    for bad in (f"{other}:a", f"{tmp_path / 'none.json'}:b"):
        with pytest.raises(SystemExit) as e:
            main(["--a", bad, "--b", b1])
        assert e.value.code == 2 and bad in capsys.readouterr().err
