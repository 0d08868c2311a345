"""benchmarks/vote_curve.py: the plain vote's accuracy and pass@n at each budget from a pooled
majority run, exact for pools whose every draw gives the same vote, and exit 2 on bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, pools: list[list[tuple[int, bool]]], n: int = 8) -> None:
    lines = [{"unique_id": f"t/{i}.json", "method": "majority", "n": n, "usage": {"generated_tokens": 50 * n},
              "answers": [{"answer": str(k), "paths": c, "correct": ok} for k, (c, ok) in enumerate(groups)]}
             for i, groups in enumerate(pools)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _curve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/vote_curve.py", str(tmp_path / "run.jsonl"), "--draws", "50",
                           "--base", "8", "--out", str(tmp_path / "out.json"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_curve_is_exact_where_every_draw_votes_alike(tmp_path):
    # problem 0: all 8 right; 1: 7 wrong and 1 right (the vote is wrong at every budget above 2,
    # pass@n is the chance a draw holds the one right sample: n / 8); 2: all 8 wrong
    _write(tmp_path / "run.jsonl", [[(8, True)], [(7, False), (1, True)], [(8, False)]])
    res = _curve(tmp_path, "--n", "1,4,8")
    assert res.returncode == 0, res.stderr
    rows = {r["n"]: r for r in json.loads((tmp_path / "out.json").read_text())["rows"]}
    assert rows["8"]["all"]["accuracy"] == round(1 / 3, 4) and rows["8"]["all"]["pass_at_n"] == round(2 / 3, 4)
    assert rows["8"]["x_tokens"] == 1.0 and rows["4"]["x_tokens"] == 0.5
    assert rows["4"]["all"]["accuracy"] == round(1 / 3, 4)  # 3 of 4 wrong at least: the wrong answer leads
    assert abs(rows["4"]["all"]["pass_at_n"] - (1 + 0.5) / 3) < 0.08  # a draw of 4 holds the right one half the time
    assert abs(rows["1"]["all"]["accuracy"] - (1 + 1 / 8) / 3) < 0.05  # n = 1: one sample's chance
    assert rows["all"]["all"] == {"problems": 3, "accuracy": round(1 / 3, 4), "pass_at_n": round(2 / 3, 4)}
    assert rows["all"]["x_tokens"] is None


def test_bad_budgets_and_missing_files_exit_2(tmp_path):
    _write(tmp_path / "run.jsonl", [[(8, True)]])
    for args in (["--n", "0"], ["--n", "16"], ["--n", "x"]):  # 16: more than the pool's 8 samples
        res = _curve(tmp_path, *args)
        assert res.returncode == 2 and res.stderr.startswith("vote_curve:"), (args, res.stderr)
    res = subprocess.run([sys.executable, "benchmarks/vote_curve.py", str(tmp_path / "missing.jsonl")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "vote_curve:" in res.stderr
