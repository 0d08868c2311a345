"""benchmarks/answer_scan.py: a problem whose answer work does not finish in time is reported,
and the scan goes on with the next problem in a new child."""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from answer_scan import gather, main, scan  # noqa: E402


def test_a_slow_problem_is_reported_and_the_scan_goes_on(tmp_path):
    lines = tmp_path / "lines.jsonl.gz"
    rows = [  # math-verify takes its whole 5 s timeout on the tower: past a 4 s limit
        {"unique_id": "p1", "gold": "5", "answers": [{"answer": "9^{9^{9^{9}}}"}, {"answer": "5"}]},
        {"unique_id": "p2", "gold": "2", "answers": [{"answer": "1+1"}, {"answer": "2"}]},
        {"unique_id": "p2", "gold": "2", "answers": [{"answer": "\\frac{4}{2}"}, {"answer": None}]},
    ]
    with gzip.open(lines, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    problems = gather([str(lines)])
    assert problems == [("p1", "5", ["5", "9^{9^{9^{9}}}"]), ("p2", "2", ["1+1", "2", "\\frac{4}{2}"])]
    done, hung = scan(problems, limit=4.0)
    assert hung == ["p1"] and list(done) == ["p2"] and done["p2"] < 4.0


def test_a_resumed_scan_keeps_what_the_json_holds_and_scans_the_rest(tmp_path):
    lines, out = tmp_path / "a.jsonl.gz", tmp_path / "scan.json"
    rows = [{"unique_id": "p1", "gold": "2", "answers": [{"answer": "1+1"}, {"answer": "2"}]}]
    with gzip.open(lines, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["--lines", str(lines), "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    assert first["complete"] is True and list(first["seconds"]) == ["p1"] and first["scanned"] == 1
    more = tmp_path / "b.jsonl.gz"
    with gzip.open(more, "wt") as f:
        f.write(json.dumps({"unique_id": "p2", "gold": "3", "answers": [{"answer": "3"}]}) + "\n")
    first["seconds"]["p1"] = 123.0  # a figure no new scan of p1 would give: kept, not rescanned
    out.write_text(json.dumps(first))
    assert main(["--lines", str(lines), str(more), "--out", str(out), "--resume"]) == 0
    second = json.loads(out.read_text())
    assert second["seconds"]["p1"] == 123.0 and set(second["seconds"]) == {"p1", "p2"}
    assert second["complete"] is True and second["scanned"] == 2 and second["problems"] == 2
    assert second["slowest"][0] == {"unique_id": "p1", "answers": 2, "s": 123.0}
    assert main(["--lines", str(more), "--out", str(out), "--resume"]) == 0  # p1 is not in these lines
    third = json.loads(out.read_text())
    assert set(third["seconds"]) == {"p2"} and third["scanned"] == 1 and third["problems"] == 1


def test_retry_unfinished_scans_them_again(tmp_path, capsys):
    lines, out = tmp_path / "a.jsonl.gz", tmp_path / "scan.json"
    with gzip.open(lines, "wt") as f:
        f.write("".join(json.dumps({"unique_id": u, "gold": "2", "answers": [{"answer": "2"}]}) + "\n" for u in ("p1", "p2")))
    assert main(["--lines", str(lines), "--out", str(out)]) == 0
    held = json.loads(out.read_text())
    del held["seconds"]["p2"]
    held["not_finished"] = ["p2"]  # as a scan before a fix to the answer work left it
    out.write_text(json.dumps(held))
    assert main(["--lines", str(lines), "--out", str(out), "--resume"]) == 1  # carried over, not retried
    assert json.loads(out.read_text())["not_finished"] == ["p2"]
    assert main(["--lines", str(lines), "--out", str(out), "--resume", "--retry-unfinished"]) == 0
    again = json.loads(out.read_text())
    assert again["not_finished"] == [] and set(again["seconds"]) == {"p1", "p2"} and again["complete"] is True
    capsys.readouterr()
    try:
        main(["--lines", str(lines), "--out", str(out), "--retry-unfinished"])
    except SystemExit as e:
        assert e.code == 2 and "--retry-unfinished: only with --resume" in capsys.readouterr().err
    else:
        raise AssertionError("--retry-unfinished without --resume was accepted")
