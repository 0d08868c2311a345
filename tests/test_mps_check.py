"""benchmarks/mps_check.py on the CPU (a smoke run of the script: the rows, their ratios, the JSON;
the MPS row needs a GPU and NVIDIA's control program)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "mps_check.py")


def test_the_cpu_smoke_run_writes_the_reference_and_the_shared_rows(tmp_path):
    out = tmp_path / "mps.json"
    done = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--scale", "16", "--layers", "1", "--batch", "2",
                           "--seconds", "0.5", "--warmup-s", "3", "--procs", "2", "--no-mps", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert [r["row"] for r in rows] == ["one process, batch 2 x 2", "2 processes, batch 2 each"]
    assert [r["procs"] for r in rows] == [1, 2] and [r["batch"] for r in rows] == [4, 2]
    assert rows[0]["x_one_process"] == 1.0 and all(r["tok_s"] > 0 and all(s > 0 for s in r["steps"]) for r in rows)
    assert len(rows[1]["steps"]) == 2 and res["gpu"] is None
    assert "| one process, batch 2 x 2 |" in done.stdout


def test_bad_arguments_exit_2():
    done = subprocess.run([sys.executable, SCRIPT, "--procs", "1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--procs >= 2" in done.stderr
