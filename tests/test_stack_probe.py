"""The stack sampler SGLang's processes start through srca's plugin (srca/engines/stack_probe.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from srca.engines import stack_probe

CHILD = """
import os, time
from srca.engines import stack_probe

def spin_in_known_place(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1
    return x

first = stack_probe.install_from_env()
again = stack_probe.install_from_env()
t0 = time.time()
spin_in_known_place(1.6)
time.sleep(0.3)
print(first, again, os.getpid(), t0, time.time())
"""


def _child(env: dict, drop: tuple = ()) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SRCA_STACKS")}
    return subprocess.run([sys.executable, "-c", CHILD], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True).stdout.split()


def test_env_installs_once_and_finds_the_busy_function(tmp_path):
    d = tmp_path / "stacks"
    first, again, pid, t0, t1 = _child({"SRCA_STACKS": str(d), "SRCA_STACKS_HZ": "200"})
    assert (first, again) == ("True", "False")  # one sampler per process
    data = stack_probe.read(str(d))
    assert list(data) == [int(pid)]
    s = stack_probe.summarize(data, float(t0), float(t1))
    (proc, got), = s.items()
    assert proc.endswith(f"[{pid}]") and got["samples"] > 100  # ~1.9 s at 200 Hz, less scheduling jitter
    main = got["threads"]["MainThread"]
    cum = {r["function"]: r["share"] for r in main["cumulative"]}
    spin = [f for f in cum if f.endswith("(spin_in_known_place)")]
    assert len(spin) == 1 and cum[spin[0]] > 0.6  # 1.6 of the 1.9 s
    assert main["self"][0]["frame"].startswith(spin[0] + "@")  # the line it was on, after the function
    assert "\n" not in proc  # the title, one line
    assert main["stacks"][0]["stack"].count(" <- ") >= 1  # innermost first, its callers after
    # a window before the child ran holds nothing
    assert stack_probe.summarize(data, float(t0) - 100, float(t0) - 50) == {}


def test_without_the_variable_or_in_the_skipped_process_nothing_runs(tmp_path):
    assert _child({})[:2] == ["False", "False"]
    d = tmp_path / "stacks"
    # the variable names a folder, but the process is the one to skip: its pid is not known in
    # advance, so a child that skips its parent's pid still samples, and one that skips its own does not
    out = subprocess.run([sys.executable, "-c", "import os; os.environ['SRCA_STACKS_SKIP_PID'] = str(os.getpid());"
                          + CHILD.replace("import os, time", "import time")],
                         env={**os.environ, "SRCA_STACKS": str(d)}, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out[:2] == ["False", "False"] and not d.exists()


def test_a_bad_rate_falls_back_to_100(tmp_path):
    d = tmp_path / "stacks"
    first, _, pid, _, _ = _child({"SRCA_STACKS": str(d), "SRCA_STACKS_HZ": "often"})
    assert first == "True" and (d / f"stacks-{pid}.jsonl").exists()


def test_install_validates():
    with pytest.raises(ValueError, match="directory"):
        stack_probe.install("")
    with pytest.raises(ValueError, match="hz"):
        stack_probe.install("/tmp/x", hz=0)
    with pytest.raises(ValueError, match="hz"):
        stack_probe.install("/tmp/x", hz=5000)


def test_summarize_windows_threads_and_skips_cut_lines(tmp_path):
    f = tmp_path / "stacks-7.jsonl"
    rows = [
        {"def": 0, "frames": ["a.py:1(loop)@5", "b.py:10(prefill)@12", "c.py:3(match)@4"]},
        {"def": 1, "frames": ["a.py:1(loop)@6", "d.py:1(decode)@2"]},
        {"t": 100.0, "proc": "sglang::scheduler", "counts": {"MainThread": {"0": 30, "1": 10}, "t2": {"1": 1}}},
        {"t": 101.0, "proc": "sglang::scheduler", "counts": {"MainThread": {"1": 60}}},
        {"t": 200.0, "proc": "sglang::scheduler", "counts": {"MainThread": {"0": 1000}}},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"t": 300, "cou')  # a line cut at exit
    (tmp_path / "other.txt").write_text("not a probe file")
    data = stack_probe.read(str(tmp_path))
    s = stack_probe.summarize(data, 99.5, 101.0)
    got = s["sglang::scheduler [7]"]
    assert got["samples"] == 101 and list(got["threads"]) == ["MainThread"]  # t2's 1 sample < 2%
    main = got["threads"]["MainThread"]
    assert main["samples"] == 100
    assert main["self"] == [{"frame": "d.py:1(decode)@2", "samples": 70, "share": 0.7},
                            {"frame": "c.py:3(match)@4", "samples": 30, "share": 0.3}]
    cum = {r["function"]: r["samples"] for r in main["cumulative"]}
    assert cum == {"a.py:1(loop)": 100, "d.py:1(decode)": 70, "b.py:10(prefill)": 30, "c.py:3(match)": 30}
    assert main["stacks"][1]["stack"] == "c.py:3(match)@4 <- b.py:10(prefill) <- a.py:1(loop)"
    assert stack_probe.read(str(tmp_path / "missing")) == {}
