"""Long garbage collections in every SGLang process, logged to files: ``SRCA_GC_LOG=DIR``.

CPython's cyclic collector stops the process while it runs; a full (generation 2) collection
walks every object the process holds, and an SGLang scheduler holds torch, SGLang and every
running request. A scheduler that collects for half a second decodes nothing for half a second.
SGLang logs long collections only in its tokenizer manager (``gc_warning_threshold_secs``); this
probe sees its schedulers too: srca's SGLang plugin (:func:`srca.engines.sglang_sampler.register`,
loaded by SGLang in each process it starts) calls :func:`install_from_env`, which, when
``SRCA_GC_LOG`` names a folder, appends one JSON line per collection of generation 2, or of any
generation that took ``SRCA_GC_LOG_MIN_MS`` (default 5) or more, to ``DIR/gc-<pid>.jsonl``:
``{"t": unix time at its end, "gen": 2, "s": seconds, "collected": n, "proc": process title}``.

:func:`read` and :func:`summarize` turn the folder into per-process counts for a time window
(``benchmarks/real_workload.py`` records them for every phase). Nothing happens at import, and
nothing without the variable.

``SRCA_SGLANG_GC_THRESHOLD=g0[,g1[,g2]]`` sets the collector's thresholds in the same processes
(:func:`threshold_from_env`, from the same plugin), but not in the process whose pid
``SRCA_SGLANG_GC_THRESHOLD_OWNER`` names (the one that started SGLang and keeps its own). SGLang's
``gc_threshold`` sets them only in the process that starts the engine; its scheduler, spawned,
starts with Python's (700, 10, 10), and on one H100 it spent 3.9 s of DVTS's 68.3 s in 28 full
collections (benchmarks/RUNS.md, "Fifteenth run").

:data:`DEFAULT_THRESHOLD` is what the engines srca starts pass (``SGLangEngine(gc_threshold=...)``:
SGLang's own ``gc_threshold`` for the process that starts it, this variable for the others): with
it raised in every process of two ``sglang.launch_server`` replicas on one H100, SGLang collected
no full generation during DVTS@16 and the run took 60.0 s against 76.3 s at Python's thresholds
in the run before, on another H100 of the same kind (benchmarks/RUNS.md, "Seventeenth run"; 0.49x
against 0.41x the raw engine's tok/s).
"""
from __future__ import annotations

import gc
import json
import os
import time
from typing import Any, Iterator, MutableMapping

ENV = "SRCA_GC_LOG"
MIN_MS_ENV = "SRCA_GC_LOG_MIN_MS"
THRESHOLD_ENV = "SRCA_SGLANG_GC_THRESHOLD"
THRESHOLD_OWNER_ENV = "SRCA_SGLANG_GC_THRESHOLD_OWNER"
# the thresholds measured (gc_thresholds.py on the CPU, the seventeenth GPU run): a young
# collection every 50,000 net allocations instead of 700, a full one about 1,400 times less often
DEFAULT_THRESHOLD = (50000, 20, 100)
_installed: dict[int, "_Probe"] = {}


def process_title() -> str:
    """This process's command line as ``ps`` shows it (SGLang sets ``sglang::scheduler`` and the
    like), on one line, at most 80 characters; ``"?"`` where it cannot be read."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read(200)
    except OSError:
        return "?"
    return " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())[:80] or "?"


class CollectionTimer:
    """A ``gc.callbacks`` entry that times each collection and hands ``(generation, seconds,
    info)`` to ``sink`` when it ends (the probe's file lines; a benchmark's in-memory tally)."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.t0: dict[int, float] = {}

    def __call__(self, phase: str, info: dict) -> None:
        gen = int(info.get("generation", -1))
        if phase == "start":
            self.t0[gen] = time.perf_counter()
            return
        t0 = self.t0.pop(gen, None)
        if t0 is not None:
            self.sink(gen, time.perf_counter() - t0, info)


class _Probe(CollectionTimer):
    def __init__(self, directory: str, min_s: float) -> None:
        super().__init__(self._write)
        self.path = os.path.join(directory, f"gc-{os.getpid()}.jsonl")
        self.min_s = min_s
        self.proc: str | None = None

    def _write(self, gen: int, s: float, info: dict) -> None:
        if gen < 2 and s < self.min_s:
            return
        if self.proc is None:  # read once, after the process has set its title (SGLang does)
            self.proc = process_title()
        line = json.dumps({"t": round(time.time(), 4), "gen": gen, "s": round(s, 5),
                           "collected": int(info.get("collected", 0)), "proc": self.proc})
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:  # a probe never breaks the process it watches
            pass


def install(directory: str, min_ms: float = 5.0) -> bool:
    """Log this process's long collections to ``directory`` (created). Once per process."""
    if not isinstance(directory, str) or not directory:
        raise ValueError(f"gc_probe.install: directory must be a non-empty path, got {directory!r}")
    if min_ms < 0:
        raise ValueError(f"gc_probe.install: min_ms must be >= 0, got {min_ms}")
    pid = os.getpid()
    if pid in _installed:
        return False
    os.makedirs(directory, exist_ok=True)
    probe = _Probe(directory, min_ms / 1000.0)
    gc.callbacks.append(probe)
    _installed[pid] = probe
    return True


def install_from_env() -> bool:
    """:func:`install` when ``SRCA_GC_LOG`` is set (a bad ``SRCA_GC_LOG_MIN_MS`` is ignored:
    this runs inside SGLang's processes, where an exception would stop the plugin)."""
    directory = os.environ.get(ENV)
    if not directory:
        return False
    try:
        min_ms = float(os.environ.get(MIN_MS_ENV, "5"))
    except ValueError:
        min_ms = 5.0
    try:
        return install(directory, max(0.0, min_ms))
    except OSError:
        return False


def parse_threshold(text: str) -> tuple[int, ...]:
    """``"g0[,g1[,g2]]"`` as ``gc.set_threshold``'s arguments; ``ValueError`` naming the variable
    unless one to three integers, ``g0`` >= 1 and the others >= 0."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or values[0] < 1 or any(v < 0 for v in values[1:]):
        raise ValueError(f"{THRESHOLD_ENV}: expected 1 to 3 comma-separated integers (g0 >= 1), got {text!r}")
    return values


def check_threshold(value: Any, name: str = "gc_threshold") -> tuple[int, ...] | None:
    """A constructor's ``gc_threshold`` as ``gc.set_threshold``'s arguments: None (Python's
    defaults kept), ``"g0[,g1[,g2]]"`` or a list or tuple of one to three integers; ``TypeError``
    or ``ValueError`` naming ``name`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        text = ",".join(str(v) for v in value)
    else:
        raise TypeError(f"{name}: expected None, 'g0,g1,g2' or a list of 1 to 3 integers, got {value!r}")
    try:
        return parse_threshold(text)
    except ValueError:
        raise ValueError(f"{name}: expected 1 to 3 integers, g0 >= 1 and the others >= 0, got {value!r}") from None


def export_threshold(values: tuple[int, ...], env: MutableMapping[str, str] | None = None) -> bool:
    """Name ``values`` in ``SRCA_SGLANG_GC_THRESHOLD`` of ``env`` (this process's environment by
    default) for the SGLang processes started with it (srca's plugin sets them there,
    :func:`threshold_from_env`); False, and nothing changed, where ``env`` already names
    thresholds: the user's own setting wins."""
    env = os.environ if env is None else env
    if env.get(THRESHOLD_ENV):
        return False
    env[THRESHOLD_ENV] = ",".join(str(v) for v in values)
    return True


def threshold_from_env() -> tuple[int, ...] | None:
    """Set this process's collector thresholds from ``SRCA_SGLANG_GC_THRESHOLD`` unless this is the
    owner process (``SRCA_SGLANG_GC_THRESHOLD_OWNER``); the thresholds set, or None. A malformed
    value is ignored: this runs inside SGLang's processes, where an exception would stop the plugin
    (callers that set the variable check it with :func:`parse_threshold` first)."""
    text = os.environ.get(THRESHOLD_ENV)
    if not text or os.environ.get(THRESHOLD_OWNER_ENV) == str(os.getpid()):
        return None
    try:
        values = parse_threshold(text)
    except ValueError:
        return None
    gc.set_threshold(*values)
    return values


def pid_lines(directory: str, prefix: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(pid, event)`` for every JSON object line of ``directory/<prefix><pid>.jsonl``, files in
    name order; unreadable files and lines (one cut by a process that died while writing) skipped.
    The probes' one reader (this module's ``gc-`` files, :mod:`.stack_probe`'s ``stacks-``)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".jsonl")):
            continue
        try:
            pid = int(name[len(prefix):-6])
            with open(os.path.join(directory, name)) as f:
                lines = f.read().splitlines()
        except (ValueError, OSError):
            continue
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                yield pid, ev


def read(directory: str) -> list[dict[str, Any]]:
    """Every logged collection in ``directory``, each with its ``pid``; unreadable lines skipped."""
    return [{**ev, "pid": pid} for pid, ev in pid_lines(directory, "gc-")
            if isinstance(ev.get("t"), (int, float)) and isinstance(ev.get("s"), (int, float))]


def summarize(events: list[dict[str, Any]], t0: float, t1: float, exclude_pid: int | None = None) -> dict[str, Any]:
    """Per process (``"<title> [pid]"``), the collections that ended in ``[t0, t1]``: for
    generation 2 and for the shorter generations' long ones, count, total and longest seconds."""
    per: dict[str, dict[str, Any]] = {}
    for ev in events:
        if not (t0 <= ev["t"] <= t1) or ev["pid"] == exclude_pid:
            continue
        key = f"{ev.get('proc', '?')} [{ev['pid']}]"
        g = "gen2" if ev.get("gen") == 2 else "long_gen01"
        row = per.setdefault(key, {}).setdefault(g, {"n": 0, "total_s": 0.0, "max_s": 0.0})
        row["n"] += 1
        row["total_s"] += ev["s"]
        row["max_s"] = max(row["max_s"], ev["s"])
    for rows in per.values():
        for row in rows.values():
            row["total_s"] = round(row["total_s"], 3)
            row["max_s"] = round(row["max_s"], 4)
    return per
