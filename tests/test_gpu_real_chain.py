"""benchmarks/gpu_real.sh chain checks every run's arguments before it starts the first.

A chain is one background job that runs for most of a GPU session; a typo in its fourth run
used to show only when that run began (the planned chain's ``--server ... dvts:window0`` was
refused by real_workload's own check, which then still took the window for in-process only).
Here the chain runs on this machine with ``python3`` standing for the GPU machine's: its pip
install is skipped, ``real_workload.py --check`` is the real one, and the runs themselves would
need SGLang, so only a chain refused before it starts is run to the end.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _device(tmp_path: Path, python3: str, problems: int) -> tuple[dict, Path]:
    """The environment gpu_real.sh runs in here: ``python3`` (a bash body) standing for the
    device's (its pip is a no-op), private copy and work folders under ``tmp_path``; and a
    MATH-500-shaped file of ``problems`` problems."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/bash\n[ "$1 $2" = "-m pip" ] && exit 0\n{python3}')
    shim.chmod(0o755)
    data = tmp_path / "math500.jsonl"
    data.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i),
                                        "unique_id": f"t/{i}.json"}) + "\n" for i in range(problems)))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
           "RW_DIR": str(tmp_path / "work"), "RW_RUN": str(tmp_path / "run")}
    env.pop("OUT", None)
    return env, data


def _recording(tmp_path: Path, then: str = "") -> tuple[dict, Path, Path]:
    """``_device`` with a python3 that runs ``--check`` for real and only records any other call
    (one line of arguments per call in the returned log), then runs the bash ``then``."""
    log = tmp_path / "calls.txt"
    env, data = _device(tmp_path, f'case " $* " in *" --check "*) exec {sys.executable} "$@";; esac\n'
                                  f'echo "$@" >> {log}\n{then}', 1)
    return env, data, log


def _chain_done(tmp_path: Path, tries: int) -> None:
    for _ in range(tries):
        done = tmp_path / "work/chain.out"  # the background job may not have opened it yet
        if done.exists() and "chain done" in done.read_text():
            return
        time.sleep(0.1)


def _chain(tmp_path: Path, *runs: str, data_arg: bool = True) -> subprocess.CompletedProcess:
    env, data = _device(tmp_path, f'exec {sys.executable} "$@"\n', 3)
    runs = tuple(f"{r} --data {data}" if data_arg else r for r in runs)
    return subprocess.run(["bash", str(ROOT / "benchmarks/gpu_real.sh"), "chain", *runs], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_chain_with_one_bad_run_starts_none(tmp_path):
    out = _chain(tmp_path, "--limit 3 --jobs dvts,majority --no-raw-bracket",
                 "--server --limit 3 --jobs dvts,dvts:window0 --no-raw-bracket",
                 "--limit 3 --jobs dvts,nosuch --no-raw-bracket")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout.count("# arguments ok: 3 problems") == 2  # the server run's setting is fine
    assert "nosuch" in out.stderr and "chain: not started" in out.stderr
    assert not (tmp_path / "work/chain.sh").exists() and not (tmp_path / "work/run1").exists()


def test_a_run_with_a_setting_needs_an_sglang_engine(tmp_path):
    out = _chain(tmp_path, "--engine local --limit 3 --jobs dvts:window0")
    assert out.returncode == 2 and "needs an SGLang engine" in out.stderr
    assert "chain: not started" in out.stderr


def test_an_eval_run_is_checked_by_the_eval_script(tmp_path):
    out = _chain(tmp_path, "--limit 3 --jobs dvts,majority --no-raw-bracket",
                 "eval --jobs majority:16,srca:4,cot:1 --budget-s 600",
                 "eval --jobs majority:16,srca:x --budget-s 600")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "# arguments ok: 3 problems, jobs majority:16, srca:4, cot:1" in out.stdout
    assert "'srca:x': n and limit must be integers" in out.stderr and "chain: not started" in out.stderr
    assert not (tmp_path / "work/chain.sh").exists()


def test_an_eval_run_may_read_gsm8k_beside_math500(tmp_path):
    # the chain passes MATH-500's path first; a run's own --data (and --dataset) come after it and win
    gsm = tmp_path / "gsm8k_test.jsonl"
    gsm.write_text("".join(json.dumps({"id": f"gsm8k-test-{i}", "question": f"What is {i} + 1?",
                                       "answer": f"so #### {i + 1}"}) + "\n" for i in range(4)))
    out = _chain(tmp_path, f"eval --dataset gsm8k --data {gsm} --limit 3 --jobs majority:16,srca:16 --budget-s 60",
                 "eval --dataset gsm8k --data /no/such/gsm8k.jsonl --jobs majority:16", data_arg=False)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "# arguments ok: 3 problems of gsm8k, jobs majority:16, srca:16" in out.stdout
    assert "no such file: /no/such/gsm8k.jsonl" in out.stderr and "chain: not started" in out.stderr


def test_an_eval_run_resumes_from_the_result_lines_sent(tmp_path):
    # a chain whose second run is an eval: the script it writes runs gpu_eval.py in the run's own
    # folder, seeded from .gpu-data/evals of the private copy (the run itself needs SGLang: here
    # the chain is started with a python3 that only records its arguments)
    env, data, log = _recording(tmp_path)
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_real.sh"), "chain",
                          f"eval --jobs majority:4 --data {data}"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    _chain_done(tmp_path, 100)
    call = log.read_text().split()
    assert call[0] == "benchmarks/gpu_eval.py" and "--check" not in call
    assert call[call.index("--out-dir") + 1] == str(tmp_path / "work/run1/evals")
    assert call[call.index("--seed-dir") + 1] == str(tmp_path / "run/.gpu-data/evals")
    assert call[-4:] == ["--jobs", "majority:4", "--data", str(data)]


def test_skip_ends_the_current_run_and_its_children_and_the_chain_goes_on(tmp_path):
    # run 1 stands for an eval whose engine is a child process (here `sleep`); `skip` ends both,
    # children first, and the chain starts run 2 (the sixteenth run did this by hand with kill)
    child = tmp_path / "child.pid"
    env, data, log = _recording(tmp_path, f'case " $* " in *" majority:4 "*) sleep 300 & echo $! > {child}; wait;; esac\n')
    sh = ["bash", str(ROOT / "benchmarks/gpu_real.sh")]
    nothing = subprocess.run([*sh, "skip"], env=env, capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 1 and nothing.stderr.startswith("skip: no chain is running")
    out = subprocess.run([*sh, "chain", f"eval --jobs majority:4 --data {data}", f"eval --jobs cot:1 --data {data}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for _ in range(200):
        if child.exists() and child.read_text().strip():
            break
        time.sleep(0.1)
    pid = int(child.read_text())
    os.kill(pid, 0)  # the stand-in engine runs
    late = subprocess.run([*sh, "skip", "2"], env=env, capture_output=True, text=True, timeout=60)
    assert late.returncode == 1 and late.stderr.startswith("skip: run 2 is not the one running (run 1)")
    os.kill(pid, 0)  # a skip meant for another run ends nothing
    skip = subprocess.run([*sh, "skip", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert skip.returncode == 0 and "and the 1 below it" in skip.stdout, skip.stdout + skip.stderr
    _chain_done(tmp_path, 200)
    text = (tmp_path / "work/chain.out").read_text()
    # run 1 ends either way: killed, or on its own once its engine is gone (this stand-in's `wait`)
    assert "run1 rc=" in text and "== run2: eval --jobs cot:1" in text and "run2 rc=0" in text
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "majority:4" in calls[0] and "cot:1" in calls[1]
    try:
        os.kill(pid, 0)
        alive = open(f"/proc/{pid}/stat").read().split()[2] != "Z"  # a zombie is gone but for its parent
    except (ProcessLookupError, FileNotFoundError):
        alive = False
    assert not alive


def test_poll_sends_the_runs_but_not_the_profiler_traces(tmp_path):
    # rw.tgz must stay under the device tool's size limit: stack samples, GC logs and the torch
    # profiler's traces (tens of MB; real_workload sums them up into its JSON) stay on the machine
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "run1" / "trace" / "dvts").mkdir(parents=True)
    (work / "run1" / "trace" / "dvts" / "x-TP-0.trace.json.gz").write_bytes(b"x" * 100)
    (work / "run1" / "stacks").mkdir()
    (work / "run1" / "run.out").write_text("# engine ready in 1.0 s\n")
    (work / "run1" / "real_workload.json").write_text("{}")
    out.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/bash\necho '0 %, 0 MiB'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    (work / "jit-sent").write_text("")  # no kernel caches to save here
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
           "RW_DIR": str(work), "RW_RUN": str(tmp_path / "run"), "OUT": str(out)}
    res = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_real.sh"), "poll"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    names = subprocess.run(["tar", "-tzf", str(out / "rw.tgz")], capture_output=True, text=True).stdout.split()
    assert "./run1/run.out" in names and "./run1/real_workload.json" in names
    assert not any("trace" in n or "stacks" in n for n in names), names


def test_wait_polls_until_the_chain_is_done_or_its_time_is_up(tmp_path):
    # `wait` keeps a device call busy polling (each poll refreshes $OUT) so the machine is never
    # idle between calls: it returns once the chain is done, or after SECONDS with the chain
    # still running, and prints the last poll either way
    gate = tmp_path / "gate"
    env, data, log = _recording(tmp_path, f'while [ ! -e {gate} ]; do sleep 0.1; done\n')
    sh = ["bash", str(ROOT / "benchmarks/gpu_real.sh")]
    bad = subprocess.run([*sh, "wait", "soon"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "wait: SECONDS must be a whole number" in bad.stderr
    out = subprocess.run([*sh, "chain", f"eval --jobs majority:4 --data {data}"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    t0 = time.monotonic()
    running = subprocess.run([*sh, "wait", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert running.returncode == 0 and "wait: 1 s passed, the chain still runs" in running.stdout
    assert "== run1: eval --jobs majority:4" in running.stdout and "chain done" not in running.stdout
    assert 1 <= time.monotonic() - t0 < 30
    gate.touch()  # the stand-in run ends, and with it the chain
    done = subprocess.run([*sh, "wait", "120"], env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0 and "wait: chain done" in done.stdout and "== chain done" in done.stdout
    assert time.monotonic() - t0 < 60  # it did not sit out its 120 s
