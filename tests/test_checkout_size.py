"""The checkout travels to the GPU machine with every call, beside the part of the SGLang bundle
or the model that call carries, and all of it must stay under the device's 64 MiB. The largest
part is the model's first (55 MiB of GGUF and the converter: 56,326 KiB on disk), which leaves
9,210 KiB; the tracked files must stay under 8 MiB, about a MiB short of that: results go
in compressed, result lines that no table or pooled count reads leave the tree (RUNS.md says
which, and the commit that still has them), printed logs stay out (.gitignore), plots are
palette PNGs (srca.eval.report.save_figure)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_KIB = 8 * 1024


def _tracked() -> list[str]:
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_tracked_files_fit_beside_the_largest_part():
    # counted as the disk holds them (du): each file in whole 4 KiB blocks
    kib = sum(-(-os.path.getsize(os.path.join(ROOT, p)) // 4096) * 4 for p in _tracked()
              if os.path.isfile(os.path.join(ROOT, p)))
    assert kib < LIMIT_KIB, f"tracked files hold {kib} KiB, over {LIMIT_KIB}: move results, logs or plots out of git"


def test_printed_logs_of_gpu_runs_stay_out_of_git():
    assert not [p for p in _tracked() if p.startswith("benchmarks/results/") and p.endswith(".out")
                and not p.endswith("gpu_eval_run.out")]
