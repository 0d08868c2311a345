"""Programs forked from a warm interpreter instead of started cold (program of thought's runs).

A cold run (:func:`srca.execution.run_program`) starts a Python and the program imports sympy:
about 0.3 s of CPU before its first line of work, 8,000 times for pot@16 on MATH-500, which held
that run's wall at 2.4x majority's on a 16-core host (benchmarks/RUNS.md, "Twenty-seventh run").
Here a *zygote*, a ``python -s`` started once with the cold run's clean environment and with
``sympy`` already imported, forks one child per program: the child takes a session of its own,
a fresh temporary folder, standard input from ``/dev/null``, its output on pipes and the same
resource limits as a cold run (:class:`srca.execution.ExecLimits`), then runs the program as
``__main__``. The zygote reads its output, kills its process group at the timeout and answers
with what a cold run would have given (:class:`srca.execution.ExecResult`). Each zygote runs one
program at a time; :class:`WarmPool` keeps up to one per CPU core and replaces one that dies.

The same guard as the cold run, not a security boundary (see :mod:`srca.execution`).
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

from .execution import ExecLimits, ExecResult, clean_env

PRELOAD = ("sympy",)  # imported once in the zygote: every program's import is then a lookup
# run once in the zygote after the imports: a program's first solve or simplify otherwise loads
# the rest of sympy in every child (0.13 s of the 0.14 s a warm solve took)
WARMUP = ("import sympy\nx = sympy.Symbol('x')\nsympy.latex(sympy.solve(x**2 - 2, x))\n"
          "sympy.latex(sympy.simplify((x**2 - 1) / (x - 1)))\nsympy.latex(sympy.Rational(3, 4) + sympy.sqrt(2))\n")

# the zygote: reads length-prefixed JSON requests on stdin, forks a child per program, answers
# on stdout; it exits when its stdin closes (the parent went)
_ZYGOTE = r'''
import io, json, os, resource, selectors, shutil, signal, struct, sys, tempfile, time, traceback
for _m in sys.argv[1].split(","):
    if _m:
        try:
            __import__(_m)
        except Exception:
            pass
try:  # the first solve, simplify and latex load more of sympy (and fill its caches) in every child
    exec(sys.argv[2], {})
except Exception:
    pass
_inp, _out = sys.stdin.buffer, sys.stdout.buffer


def _read():
    h = _inp.read(4)
    if len(h) < 4:
        return None
    return json.loads(_inp.read(struct.unpack(">I", h)[0]))


def _write(obj):
    b = json.dumps(obj).encode()
    _out.write(struct.pack(">I", len(b)) + b)
    _out.flush()


def _child(req, tmp, w1, w2):
    os.setsid()
    os.chdir(tmp)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.dup2(w1, 1)
    os.dup2(w2, 2)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    sys.argv = ["program.py"]
    m, c, f = req["memory"], req["cpu"], req["file"]
    resource.setrlimit(resource.RLIMIT_AS, (m, m))
    resource.setrlimit(resource.RLIMIT_CPU, (c, c + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (f, f))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    status = 0
    try:
        exec(compile(req["code"], "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException:
        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os._exit(status)


def _run(req):
    tmp = tempfile.mkdtemp(prefix="srca-pot-")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r1)
            os.close(r2)
            _child(req, tmp, w1, w2)
        finally:
            os._exit(1)
    os.close(w1)
    os.close(w2)
    cut, bufs = req["output"], {r1: bytearray(), r2: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + req["timeout"]
    timed_out = False
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(left):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
                continue
            b = bufs[key.fd]
            b += data
            if len(b) > 2 * cut:
                del b[:len(b) - cut]
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _, status = os.waitpid(pid, 0)
    for fd in bufs:
        os.close(fd)
    sel.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"stdout": bytes(bufs[r1][-cut:]).decode("utf-8", "replace"),
            "stderr": bytes(bufs[r2][-cut:]).decode("utf-8", "replace"),
            "returncode": None if timed_out else os.waitstatus_to_exitcode(status), "timed_out": timed_out}


_write({"ready": True})
while True:
    _req = _read()
    if _req is None:
        break
    try:
        _write(_run(_req))
    except Exception as _e:
        _write({"error": f"{type(_e).__name__}: {_e}"})
'''


class ZygoteError(RuntimeError):
    """The zygote died, hung or answered something else: the run is to be retried cold."""


class Zygote:
    """One warm interpreter that forks a child per program (see the module's docstring). Not
    thread-safe: one caller at a time (:class:`WarmPool` hands them out)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD, start_timeout_s: float = 60.0) -> None:
        self._tmp = tempfile.mkdtemp(prefix="srca-zygote-")
        self.proc = subprocess.Popen([sys.executable, "-s", "-c", _ZYGOTE, ",".join(preload),
                                      WARMUP if preload else ""], cwd=self._tmp,
                                     env=clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            if self._receive(start_timeout_s) != {"ready": True}:
                raise ZygoteError("zygote: no ready line")
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _receive(self, timeout_s: float) -> dict:
        out = self.proc.stdout
        assert out is not None
        data = b""
        deadline = time.monotonic() + timeout_s
        want = 4
        header = True
        while len(data) < want:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                raise ZygoteError(f"zygote: no answer in {timeout_s:.0f} s")
            chunk = os.read(out.fileno(), want - len(data))
            if not chunk:
                raise ZygoteError(f"zygote: exited ({self.proc.poll()})")
            data += chunk
            if header and len(data) == 4:
                want, data, header = struct.unpack(">I", data)[0], b"", False
        return json.loads(data)

    def run(self, code: str, limits: ExecLimits) -> ExecResult:
        """Run ``code`` in a child forked from this zygote; :class:`ZygoteError` when the zygote
        itself failed (it is then closed)."""
        req = json.dumps({"code": code, "memory": limits.memory_mb * 1024 * 1024, "cpu": limits.cpu_s,
                          "file": limits.file_mb * 1024 * 1024, "output": limits.output_bytes,
                          "timeout": limits.timeout_s}).encode()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(struct.pack(">I", len(req)) + req)
            self.proc.stdin.flush()
            ans = self._receive(limits.timeout_s + 30.0)
        except (OSError, ValueError, ZygoteError) as e:
            self.close()
            raise ZygoteError(str(e)) from None
        if "error" in ans:
            self.close()
            raise ZygoteError(f"zygote: {ans['error']}")
        return ExecResult(stdout=ans["stdout"], stderr=ans["stderr"], returncode=ans["returncode"],
                          timed_out=bool(ans["timed_out"]))

    def close(self) -> None:
        """Stop the zygote (its stdin closed, then its session killed) and remove its folder."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)


class WarmPool:
    """Up to ``size`` zygotes, made as callers need them; :meth:`run` is thread-safe and runs
    cold (:func:`srca.execution.run_program`) when a zygote cannot start or dies under a run."""

    def __init__(self, size: int, preload: tuple[str, ...] = PRELOAD) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"WarmPool.size: an integer >= 1, got {size!r}")
        self.size, self.preload = size, tuple(preload)
        self._idle: queue.SimpleQueue[Zygote] = queue.SimpleQueue()
        self._made = 0
        self._lock = threading.Lock()
        self._all: list[Zygote] = []
        self.cold_runs = 0  # runs that fell back to a cold start
        self._closed = False
        self._broken = False  # a zygote would not start: make no more (each try could cost a minute)

    def _take(self) -> Zygote | None:
        """An idle zygote, a new one while fewer than ``size`` live, else the next to come back;
        None (run cold) when the pool is closed, or when a zygote would not start and none is
        left (after one fails to start, the pool makes no more)."""
        while True:
            with self._lock:
                if self._closed:
                    return None
            try:
                z = self._idle.get_nowait()
            except queue.Empty:
                z = None
            if z is not None:
                if z.alive:
                    return z
                self._discard(z)  # died while idle
                continue
            with self._lock:
                if self._broken and self._made == 0:
                    return None
                make = not self._broken and self._made < self.size
                if make:
                    self._made += 1
            if make:
                try:
                    z = Zygote(self.preload)
                except (OSError, ZygoteError):
                    with self._lock:
                        self._made -= 1
                        self._broken = True
                    return None
                with self._lock:
                    self._all.append(z)
                return z
            try:  # all busy: wait for one, looking again now and then (one may have died)
                z = self._idle.get(timeout=1.0)
            except queue.Empty:
                continue
            if z.alive:
                return z
            self._discard(z)

    def _count_cold(self) -> None:
        with self._lock:
            self.cold_runs += 1

    def _discard(self, z: Zygote) -> None:
        """Forget a zygote that died (once), so a new one may take its place."""
        z.close()
        with self._lock:
            if z in self._all:
                self._all.remove(z)
                self._made -= 1

    def run(self, code: str, limits: ExecLimits | None = None) -> ExecResult:
        from .execution import run_program

        limits = limits or ExecLimits()
        z = self._take()
        if z is None:
            self._count_cold()
            return run_program(code, limits)
        try:
            return z.run(code, limits)
        except ZygoteError:
            self._discard(z)
            self._count_cold()
            return run_program(code, limits)
        finally:
            if z.alive:
                self._idle.put(z)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zs, self._all = self._all, []
        for z in zs:
            z.close()


_POOL: WarmPool | None = None
_POOL_LOCK = threading.Lock()


def warm_pool() -> WarmPool:
    """The process's pool of zygotes, one per CPU core at most; made on first use, closed at
    exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WarmPool(max(1, os.cpu_count() or 1))
            atexit.register(_POOL.close)
        return _POOL
