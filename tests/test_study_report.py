"""benchmarks/study_report.py pairs every eval run with majority@16 of the same run and, where the
run has one, with majority at its own n (the budget-matched pairing of the README's study table)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path, method: str, n: int, correct: list[bool], tokens: int) -> None:
    path.write_text("".join(json.dumps({"unique_id": f"t/{i}.json", "method": method, "n": n, "correct": c,
                                        "usage": {"generated_tokens": tokens}}) + "\n"
                            for i, c in enumerate(correct)))


def test_rows_pair_with_majority_at_16_and_at_their_own_n(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _lines(run / "math500_majority_n16.jsonl", "majority", 16, [True, True, False, False], 800)
    _lines(run / "math500_majority_n4.jsonl", "majority", 4, [True, False, False, False], 200)
    _lines(run / "math500_srca_n4.jsonl", "srca", 4, [False, True, True, False], 150)
    out = tmp_path / "study.json"
    res = subprocess.run([sys.executable, "benchmarks/study_report.py", "--evals", str(run), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = {(r["method"], r["n"]): r for r in json.loads(out.read_text())["rows"] if r["half"] == "all"}
    srca = rows[("srca", 4)]
    assert (srca["accuracy"], srca["wins"], srca["losses"], srca["token_ratio"]) == (50.0, 1, 1, 0.188)
    assert (srca["wins_at_n"], srca["losses_at_n"]) == (2, 1)  # against majority@4 of the same run
    assert "wins_at_n" not in rows[("majority", 4)]  # majority is not paired with itself
    assert "| srca | cli:run | 4 | 4 | 50.0 |" in res.stdout and "| +1/-1 | +2/-1 |" in res.stdout
