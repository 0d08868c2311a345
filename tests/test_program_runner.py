"""benchmarks/program_runner.py on the CPU: programs read from an eval's traces, run cold and
warm, the rows, the agreement and the JSON."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "program_runner.py")


def _traces(folder):
    folder.mkdir()
    texts = ["Compute.\n```python\nimport sympy\nprint(sympy.latex(sympy.Rational(1, 2) + sympy.Rational(1, 3)))\n```",
             "```python\nprint(6 * 7)\n```", "no program here", "```python\nraise ValueError('x')\n```"]
    sol = {"answer": "x", "trace": [{"id": i, "parent": None, "depth": 1, "text": t} for i, t in enumerate(texts)]}
    (folder / "p1_pot_n4.json").write_text(json.dumps(sol))
    (folder / "p1_pot_n4.html").write_text("<html></html>")


def test_programs_from_traces_run_cold_and_warm_and_agree(tmp_path):
    _traces(tmp_path / "traces")
    out, saved = tmp_path / "r.json", tmp_path / "programs.jsonl"
    done = subprocess.run([sys.executable, SCRIPT, "--traces", str(tmp_path / "traces"), "--threads", "2",
                           "--rounds", "2", "--save", str(saved), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    rows = {r["way"]: r for r in res["rows"]}
    assert rows["cold"]["programs"] == rows["warm"]["programs"] == 3  # the text without a program is none
    assert rows["cold"]["answered"] == rows["warm"]["answered"] == 2 and res["agree"] == 3
    assert res["cold_fallbacks"] == 0 and res["cold_over_warm"] > 0
    assert len(saved.read_text().splitlines()) == 3
    again = subprocess.run([sys.executable, SCRIPT, "--programs", str(saved), "--threads", "1", "--rounds", "1"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "agree on 3 of 3" in again.stdout


def test_bad_input_is_a_usage_error_or_a_clear_failure(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, "--traces", str(tmp_path / "nope")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "no such folder" in done.stderr
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, SCRIPT, "--traces", str(tmp_path / "empty")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "no programs" in done.stderr
