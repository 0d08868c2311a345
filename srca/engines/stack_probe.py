"""Where SGLang's own processes spend their time: Python stack samples to files, ``SRCA_STACKS=DIR``.

A search that sends many small requests (DVTS: every step of every subtree is one) can leave the
GPU idle while SGLang's scheduler process, one Python thread, is busy; which of its parts
(forming batches, the radix cache, prefill, output processing) is busy cannot be seen from
outside. This probe samples it from inside: srca's SGLang plugin
(:func:`srca.engines.sglang_sampler.register`, loaded by SGLang in each process it starts) calls
:func:`install_from_env`, which, when ``SRCA_STACKS`` names a folder, starts a daemon thread that
reads every other thread's Python stack ``SRCA_STACKS_HZ`` times a second (default 100) and once a
second appends what it saw to ``DIR/stacks-<pid>.jsonl``: each distinct stack once, as
``{"def": id, "frames": ["path:first line(function)@current line", ...]}`` (outermost first), then
``{"t": unix time, "proc": title, "counts": {thread name: {id: samples}}}``. A sample holds
the process's interpreter lock for about 0.13 ms (4 threads 40 frames deep, this project's 2-core
CPU): about 1% of a core at 100 Hz.

What the samples over-count: the sampling thread reads the stacks only while it holds the
interpreter lock, which it gets when the sampled thread releases it, either in a call that drops
it (a torch operation's CUDA launch or copy, a socket send, ``os.urandom``) or at the
interpreter's switch interval (5 ms). A line that releases the lock is where most samples land
when such calls come more often than every 5 ms, so its share is an upper bound and pure-Python
work between such calls is under-counted (an outside sampler such as py-spy has no such bias; it
is not installed where SGLang runs here). The fifteenth GPU run put 21.6% of DVTS's scheduler
samples on one CUDA copy in the radix cache's finish path, while SGLang's torch profiler found
the scheduler's CUDA calls short (benchmarks/RUNS.md, "Seventeenth run").

:func:`read` and :func:`summarize` turn the folder into, per process and thread, the functions
most often on top of the stack (self) and anywhere on it (cumulative), and the most frequent
stacks, for a time window (``benchmarks/real_workload.py --sglang-stacks`` records them for every
phase). Nothing happens at import, and nothing without the variable (nor in the process whose pid
``SRCA_STACKS_SKIP_PID`` gives).
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

from .gc_probe import pid_lines, process_title

ENV = "SRCA_STACKS"
HZ_ENV = "SRCA_STACKS_HZ"
SKIP_ENV = "SRCA_STACKS_SKIP_PID"  # a process that samples itself otherwise (the benchmark's own)
MAX_FRAMES = 48  # innermost frames kept per stack (deeper callers are cut)
_installed: dict[int, "_Sampler"] = {}


def frame_name(path: str, line: int, name: str) -> str:
    """``path:line(function)`` with the path from its package on (``sglang/srt/...``)."""
    for marker in ("site-packages/", "dist-packages/", "/tmp/site/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


class _Sampler(threading.Thread):
    def __init__(self, directory: str, hz: float) -> None:
        super().__init__(name="srca-stack-probe", daemon=True)
        self.path = os.path.join(directory, f"stacks-{os.getpid()}.jsonl")
        self.period = 1.0 / hz
        self.ids: dict[tuple, int] = {}  # a stack (its code objects, outermost first) -> id
        self.names: dict[Any, str] = {}  # a code object -> its frame name
        self.new: list[tuple[int, tuple]] = []  # stacks seen since the last write
        self.counts: dict[str, Counter] = {}
        self.proc = "?"
        self.lock = threading.Lock()  # the sampler's writes and an exit's last flush

    def sample(self) -> None:
        me = threading.get_ident()
        tnames = {t.ident: t.name for t in threading.enumerate()}
        for ident, f in sys._current_frames().items():
            if ident == me:
                continue
            codes = []
            while f is not None and len(codes) < MAX_FRAMES:
                codes.append((f.f_code, f.f_lineno))
                f = f.f_back
            key = tuple(reversed(codes))
            sid = self.ids.get(key)
            if sid is None:
                sid = self.ids[key] = len(self.ids)
                self.new.append((sid, key))
            self.counts.setdefault(tnames.get(ident, str(ident)), Counter())[sid] += 1

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        self.proc = process_title()  # every second: SGLang sets its processes' titles after they start
        lines = []
        for sid, key in self.new:
            frames = []
            for code, line in key:
                nm = self.names.get(code)
                if nm is None:
                    nm = self.names[code] = frame_name(code.co_filename, code.co_firstlineno, code.co_name)
                frames.append(f"{nm}@{line}")
            lines.append(json.dumps({"def": sid, "frames": frames}))
        if self.counts:
            lines.append(json.dumps({"t": round(time.time(), 3), "proc": self.proc,
                                     "counts": {t: {str(k): v for k, v in c.items()} for t, c in self.counts.items()}}))
        self.new, self.counts = [], {}
        if lines:
            try:
                with open(self.path, "a") as fh:
                    fh.write("\n".join(lines) + "\n")
            except OSError:  # a probe never breaks the process it watches
                pass

    def run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(self.period)
            try:
                with self.lock:
                    self.sample()
                if time.monotonic() - last >= 1.0:
                    self.flush()
                    last = time.monotonic()
            except Exception:  # noqa: BLE001 - never let the probe take the process down
                return


def install(directory: str, hz: float = 100.0) -> bool:
    """Sample this process's threads ``hz`` times a second into ``directory`` (created). Once per
    process."""
    if not isinstance(directory, str) or not directory:
        raise ValueError(f"stack_probe.install: directory must be a non-empty path, got {directory!r}")
    if not 0 < hz <= 1000:
        raise ValueError(f"stack_probe.install: hz must be in (0, 1000], got {hz}")
    pid = os.getpid()
    if pid in _installed:
        return False
    os.makedirs(directory, exist_ok=True)
    s = _Sampler(directory, hz)
    _installed[pid] = s
    s.start()
    atexit.register(s.flush)  # the last second's samples of a process that exits cleanly
    return True


def install_from_env() -> bool:
    """:func:`install` when ``SRCA_STACKS`` is set (a bad ``SRCA_STACKS_HZ`` gives 100: this runs
    inside SGLang's processes, where an exception would stop the plugin)."""
    directory = os.environ.get(ENV)
    if not directory or os.environ.get(SKIP_ENV) == str(os.getpid()):
        return False
    try:
        hz = float(os.environ.get(HZ_ENV, "100"))
    except ValueError:
        hz = 100.0
    try:
        return install(directory, hz if 0 < hz <= 1000 else 100.0)
    except OSError:
        return False


def read(directory: str) -> dict[int, dict[str, Any]]:
    """Per pid: ``{"defs": {id: frames}, "rows": [{"t", "proc", "counts"}]}``; unreadable lines
    (one cut by a process that died while writing) skipped."""
    out: dict[int, dict[str, Any]] = {}
    for pid, ev in pid_lines(directory, "stacks-"):
        got = out.setdefault(pid, {"defs": {}, "rows": []})
        if "def" in ev and isinstance(ev.get("frames"), list):
            got["defs"][int(ev["def"])] = ev["frames"]
        elif isinstance(ev.get("t"), (int, float)) and isinstance(ev.get("counts"), dict):
            got["rows"].append(ev)
    return out


def _bare(frame: str) -> str:
    return frame.split("@", 1)[0]


def summarize(data: dict[int, dict[str, Any]], t0: float, t1: float, most: int = 20,
              stack_depth: int = 12, min_share: float = 0.02) -> dict[str, Any]:
    """Per process (``"<title> [pid]"``) and thread, the samples written in ``[t0, t1]`` (a
    second's samples are written at its end): their count, the functions most often on top
    (``self``, with the line) and anywhere on the stack (``cumulative``), and the ``most``
    frequent stacks (their innermost ``stack_depth`` frames). Threads with less than
    ``min_share`` of the process's samples are left out."""
    out: dict[str, Any] = {}
    for pid, got in data.items():
        defs = got["defs"]
        per_thread: dict[str, Counter] = {}
        proc = "?"
        for row in got["rows"]:
            if not (t0 <= row["t"] <= t1 + 1.0):
                continue
            proc = row.get("proc") or proc
            for thread, counts in row["counts"].items():
                c = per_thread.setdefault(thread, Counter())
                for sid, n in counts.items():
                    c[int(sid)] += int(n)
        total = sum(sum(c.values()) for c in per_thread.values())
        if not total:
            continue
        threads: dict[str, Any] = {}
        for thread, c in sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values())):
            n = sum(c.values())
            if n < min_share * total:
                continue
            top: Counter = Counter()
            cum: Counter = Counter()
            stacks: Counter = Counter()
            for sid, k in c.items():
                frames = defs.get(sid) or ["?"]
                top[frames[-1]] += k
                for fr in dict.fromkeys(_bare(x) for x in frames):
                    cum[fr] += k
                inner = frames[-stack_depth:]
                stacks[" <- ".join([inner[-1]] + [_bare(x) for x in reversed(inner[:-1])])] += k

            def rows(cn: Counter, key: str) -> list[dict[str, Any]]:
                return [{key: name, "samples": v, "share": round(v / n, 4)} for name, v in cn.most_common(most)]

            threads[thread] = {"samples": n, "self": rows(top, "frame"), "cumulative": rows(cum, "function"),
                               "stacks": rows(stacks, "stack")}
        out[f"{proc} [{pid}]"] = {"samples": total, "threads": threads}
    return out
