"""The garbage-collection probe SGLang's processes start through srca's plugin (srca/engines/gc_probe.py)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types

import pytest

from srca.engines import gc_probe

CHILD = """
import gc, os, sys, time
from srca.engines import gc_probe
first = gc_probe.install_from_env()
again = gc_probe.install_from_env()
gc.collect(2); gc.collect(2); gc.collect(0)
print(first, again, os.getpid())
"""


def _child(env: dict) -> tuple[str, str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return out[0], out[1], int(out[2])


def test_env_installs_once_and_logs_full_collections(tmp_path):
    d = tmp_path / "gc"
    first, again, pid = _child({"SRCA_GC_LOG": str(d), "SRCA_GC_LOG_MIN_MS": "1000"})
    assert (first, again) == ("True", "False")  # one probe per process
    lines = [json.loads(x) for x in (d / f"gc-{pid}.jsonl").read_text().splitlines()]
    # the two full collections (and the one at interpreter exit), not the fast generation-0 one
    gens = [x["gen"] for x in lines]
    assert gens[:2] == [2, 2] and set(gens) == {2} and len(gens) <= 3
    assert all(x["s"] >= 0 and x["proc"] and isinstance(x["collected"], int) for x in lines)
    ev = gc_probe.read(str(d))
    assert len(ev) == len(lines) and {e["pid"] for e in ev} == {pid}


def test_without_the_variable_nothing_is_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SRCA_GC_LOG"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out[:2] == ["False", "False"]


def test_a_bad_threshold_falls_back_to_the_default(tmp_path):
    d = tmp_path / "gc"
    first, _, pid = _child({"SRCA_GC_LOG": str(d), "SRCA_GC_LOG_MIN_MS": "soon"})
    assert first == "True" and (d / f"gc-{pid}.jsonl").exists()


def test_summarize_windows_processes_and_generations(tmp_path):
    d = tmp_path
    (d / "gc-11.jsonl").write_text("\n".join(json.dumps(x) for x in [
        {"t": 100.0, "gen": 2, "s": 0.5, "collected": 3, "proc": "sglang::scheduler"},
        {"t": 101.0, "gen": 2, "s": 0.25, "collected": 0, "proc": "sglang::scheduler"},
        {"t": 102.0, "gen": 0, "s": 0.02, "collected": 0, "proc": "sglang::scheduler"},
        {"t": 300.0, "gen": 2, "s": 9.0, "collected": 0, "proc": "sglang::scheduler"},  # outside the window
    ]) + "\n{\"t\": 100.5, \"gen\"")  # a line cut by a process that died mid-write
    (d / "gc-22.jsonl").write_text(json.dumps({"t": 100.0, "gen": 2, "s": 1.0, "collected": 0, "proc": "python"}) + "\n")
    (d / "other.txt").write_text("ignored")
    ev = gc_probe.read(str(d))
    assert len(ev) == 5
    got = gc_probe.summarize(ev, 99.0, 200.0, exclude_pid=22)
    assert got == {"sglang::scheduler [11]": {"gen2": {"n": 2, "total_s": 0.75, "max_s": 0.5},
                                              "long_gen01": {"n": 1, "total_s": 0.02, "max_s": 0.02}}}
    assert set(gc_probe.summarize(ev, 99.0, 200.0)) == {"sglang::scheduler [11]", "python [22]"}
    assert gc_probe.read(str(d / "missing")) == []


@pytest.mark.parametrize("bad", [("", 5.0), (None, 5.0), ("/tmp/x", -1.0)])
def test_install_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        gc_probe.install(*bad)


def test_the_plugin_entry_point_starts_the_probe(monkeypatch):
    """SGLang calls ``register`` in each process it starts: it must start the probe too."""
    from srca.engines import sglang_sampler

    calls = []
    fake = types.ModuleType("sglang.srt.layers.sampler")
    fake.register_sampler_backend = lambda name, factory: calls.append(("backend", name))
    for name in ("sglang", "sglang.srt", "sglang.srt.layers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "sglang.srt.layers.sampler", fake)
    monkeypatch.setattr(gc_probe, "install_from_env", lambda: calls.append(("probe",)) or True)
    monkeypatch.setattr(gc_probe, "threshold_from_env", lambda: calls.append(("threshold",)))
    sglang_sampler.register()
    assert calls == [("probe",), ("threshold",), ("backend", "srca")]


THRESHOLD_CHILD = """
import gc, os
from srca.engines import gc_probe
print(gc_probe.threshold_from_env(), gc.get_threshold())
"""


def _threshold_child(env: dict) -> str:
    base = {k: v for k, v in os.environ.items() if k not in (gc_probe.THRESHOLD_ENV, gc_probe.THRESHOLD_OWNER_ENV)}
    return subprocess.run([sys.executable, "-c", THRESHOLD_CHILD], env={**base, **env}, capture_output=True,
                          text=True, timeout=120, check=True).stdout.strip()


def test_sglang_processes_take_the_collector_thresholds_from_the_environment():
    """SRCA_SGLANG_GC_THRESHOLD sets the thresholds in each process the plugin runs in (SGLang's
    own gc_threshold reaches only the process that starts the engine), except the owner's."""
    default = _threshold_child({})  # Python's own, e.g. "None (700, 10, 10)"
    d = ast.literal_eval(default.split(" ", 1)[1])
    assert default.startswith("None (")
    assert _threshold_child({gc_probe.THRESHOLD_ENV: "50000,20,100"}) == "(50000, 20, 100) (50000, 20, 100)"
    assert _threshold_child({gc_probe.THRESHOLD_ENV: "5000"}) == f"(5000,) {(5000, *d[1:])}"
    # a malformed value changes nothing inside SGLang's processes (the plugin must not raise there)
    assert _threshold_child({gc_probe.THRESHOLD_ENV: "lots"}) == default
    # the owner keeps its own: this process, named as the owner, is left alone
    me = subprocess.run([sys.executable, "-c", "import os, subprocess, sys; "
                         f"os.environ['{gc_probe.THRESHOLD_OWNER_ENV}'] = str(os.getpid()); "
                         f"exec({THRESHOLD_CHILD!r})"],
                        env={**os.environ, gc_probe.THRESHOLD_ENV: "50000,20,100"}, capture_output=True, text=True,
                        timeout=120, check=True).stdout.strip()
    assert me == default


@pytest.mark.parametrize("bad", ["", "0", "1,2,3,4", "a,b", "10,-1", "1.5"])
def test_a_threshold_is_one_to_three_integers(bad):
    with pytest.raises(ValueError, match="SRCA_SGLANG_GC_THRESHOLD"):
        gc_probe.parse_threshold(bad)
    assert gc_probe.parse_threshold("50000,20,100") == (50000, 20, 100)


def test_a_constructor_threshold_is_checked_and_the_users_environment_wins(monkeypatch):
    assert gc_probe.check_threshold(None) is None
    assert gc_probe.check_threshold([50000, 20, 100]) == gc_probe.check_threshold("50000,20,100") == (50000, 20, 100)
    assert gc_probe.check_threshold((700,)) == (700,)
    for bad, err in (([0], ValueError), ([1, 2, 3, 4], ValueError), ("x", ValueError), (7, TypeError),
                     ([1.5], TypeError), ([True], TypeError)):
        with pytest.raises(err, match="Engine.gc_threshold"):
            gc_probe.check_threshold(bad, "Engine.gc_threshold")
    monkeypatch.delenv(gc_probe.THRESHOLD_ENV, raising=False)
    assert gc_probe.export_threshold((50000, 20, 100)) is True
    assert os.environ[gc_probe.THRESHOLD_ENV] == "50000,20,100"
    assert gc_probe.export_threshold((9, 9, 9)) is False  # already named: left as it is
    assert os.environ[gc_probe.THRESHOLD_ENV] == "50000,20,100"
    env = {"A": "1"}  # another process's environment, given
    assert gc_probe.export_threshold((700,), env) is True and env == {"A": "1", gc_probe.THRESHOLD_ENV: "700"}
