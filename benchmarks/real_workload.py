"""Real-workload throughput: the search methods against the raw engine, same model, same run.

One engine (in-process SGLang by default), MATH-500 prompts with the chat template and the
``qwen`` prompt, T 0.7, top-p 0.95, ``--max-new-tokens`` per sample:

1. **raw**: every prompt x ``--samples`` in one ``sglang.Engine.async_generate`` call (the
   in-process engine's ``.engine``; with ``--server`` one batched ``POST /generate``; with
   ``--engine local``, a CPU dry run, one batched ``LocalEngine.generate``: said in the output);
2. **jobs**: ``srca.eval.arun_eval`` for each of ``--jobs`` (default majority, best_of_n,
   srca (the lineage search), dvts, srca-paper (the paper's tree)) at each ``--concurrency``,
   all at ``n = --samples``; ``best_of_n`` and the searches ask for token logprobs (their scorer
   reads them), majority does not; srca reads only a tail, which the in-process engine scores by
   a prefill after sampling (``SGLangEngine.tail_logprobs``): a job ``srca:inline`` runs srca with
   logprobs returned while decoding instead, in the same run. Before the jobs a check compares
   the two on greedy samples (``tail_rescore_check`` in the JSON). The prefix cache is flushed
   before each phase.

Per phase it records wall, generated tokens and tok/s, the ratios to the raw phase, the cache
hit rate (from the result lines' usage), and what explains a difference:

* SGLang's scheduler: its load snapshots polled every ``--poll-s`` (running and waiting
  requests, KV tokens used, token usage, gen throughput) and its own log lines (``log_level
  info``, every ``--decode-log-interval`` decode steps: running batch, KV pool use, queue;
  prefill batches with new vs cached tokens; ``Retract requests`` events), written by every
  SGLang process to ``WORK/sglang.log`` through ``SGLANG_LOGGING_CONFIG_PATH``;
* the controller's event loop: a task that sleeps 10 ms in a loop and records how late it
  wakes (time the loop was blocked or busy), per-thread CPU seconds (main thread = the
  controller; ``srca-sglang-loop`` = SGLang's tokenizer manager and result mapping) and the
  SGLang processes' CPU; a stack sampler on the main thread (``--sample-hz``): its busy share
  and top functions by cumulative samples (answer parsing, math-verify, clustering, result
  mapping); ``--profile``: cProfile over each job instead (exact, slower; on Python >= 3.12
  cProfile sees every thread);
* per-request overheads: engine calls and requests per call (``Solution.usage``), solve
  latency (``timings``).

JSON (``--out``, rewritten after every phase) and a printed table. On one H200, after staging
SGLang, the model and the data (shared/gpu/README.md; benchmarks/README.md):

    python benchmarks/real_workload.py --model /tmp/q15hf --data .gpu-data/math500.jsonl
    python benchmarks/real_workload.py --model /tmp/q15hf --data .gpu-data/math500.jsonl --server
    python benchmarks/real_workload.py --engine local --model smollm2-135m --limit 2 \
        --max-new-tokens 64 --samples 2                        # CPU dry run

``--answer-pools FILE.jsonl.gz ...`` first measures, before any engine starts, the controller's
CPU per solve for clustering and grading stored majority pools (each answer group of a result
line repeated by its count; caches cleared before and after); ``--answer-pools-only`` stops there.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _common import concurrency, write_result  # noqa: E402

DEFAULT_JOBS = "majority,best_of_n,srca,dvts,srca-paper"


IN_PROCESS_MEM = 0.85  # SGLang's static memory fraction for one engine on the GPU (--mem's default)


def _q(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _stats(xs: list[float], nd: int = 3) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "mean": round(statistics.fmean(xs), nd), "p50": round(_q(xs, 0.5), nd),
            "p90": round(_q(xs, 0.9), nd), "max": round(max(xs), nd), "min": round(min(xs), nd)}


def _thin(rows: list, most: int = 240) -> list:
    """At most ``most`` evenly spaced rows (time series kept small in the JSON)."""
    if len(rows) <= most:
        return rows
    step = len(rows) / most
    return [rows[int(i * step)] for i in range(most)]


# -- monitors --------------------------------------------------------------------------------------

class LoopLag:
    """Runs in the controller's event loop: sleeps ``interval`` s and records how late it wakes.
    A late wake-up means the loop ran something else that long (blocked or busy)."""

    def __init__(self, interval: float = 0.01, threshold: float = 0.002) -> None:
        self.interval, self.threshold = interval, threshold
        self.lags: list[tuple[float, float]] = []  # (monotonic t, lag s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.lags.append((now, max(0.0, now - t - self.interval)))

    def summary(self, t0: float) -> dict:
        lags = [x for _, x in self.lags]
        blocked = [x for x in lags if x > self.threshold]
        per_s: dict[int, float] = {}
        for t, x in self.lags:
            if x > self.threshold:
                per_s[int(t - t0)] = per_s.get(int(t - t0), 0.0) + x
        span = int(self.lags[-1][0] - t0) + 1 if self.lags else 0
        return {"ticks": len(lags), "interval_s": self.interval, "threshold_s": self.threshold,
                "blocked_s": round(sum(blocked), 3), "stalls_over_50ms": sum(x > 0.05 for x in lags),
                "stalls_over_200ms": sum(x > 0.2 for x in lags), "max_lag_s": round(max(lags, default=0.0), 4),
                "p99_lag_s": round(_q(lags, 0.99), 4),
                "blocked_s_per_second": _thin([[s, round(per_s.get(s, 0.0), 3)] for s in range(span)])}


class LoadWatch:
    """Runs in the controller's event loop: every ``interval`` s, the sequences the solver's solves
    have in engine calls (``Solver.load``, :class:`srca.admission.EngineLoad`), against the batch
    the engine states: how full the controller keeps it (srca's waves, the admission by load and
    ``wave_speculate`` change this figure), and how often admission by load took it past the
    batch (SGLang queues what is over)."""

    def __init__(self, load, interval: float = 0.05) -> None:
        self.load, self.interval = load, interval
        self.samples: list[int] = []
        self.reserved: list[int] = []

    async def run(self) -> None:
        while True:
            self.samples.append(self.load.in_flight)
            self.reserved.append(getattr(self.load, "reserved", 0))
            await asyncio.sleep(self.interval)

    def summary(self) -> dict:
        cap = self.load.capacity
        out = {"capacity": cap, "interval_s": self.interval, **_stats([float(x) for x in self.samples], 1)}
        if cap and self.samples:
            out["share_below_half"] = round(sum(x < cap / 2 for x in self.samples) / len(self.samples), 3)
            out["share_over_capacity"] = round(sum(x > cap for x in self.samples) / len(self.samples), 3)
        if self.reserved:
            out["reserved_mean"] = round(sum(self.reserved) / len(self.reserved), 1)
        return out


class StallWatch:
    """Runs in the controller's event loop: when a job has written no result line for ``stall_s``
    seconds, prints once what the controller holds (solves in flight, the engine load, the answer
    workers, and where each pending task waits, counted by its innermost frame), so a job that
    never finishes says why. The twelfth GPU run had one solve of 500 that never finished and
    nothing that said where it waited (an answer worker stuck in sympy, found on the CPU later)."""

    def __init__(self, path: str, solver: Any, stall_s: float) -> None:
        self.path, self.solver, self.stall_s = path, solver, stall_s
        self.stalls: list[dict] = []

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return -1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        size, since, told = self._size(), loop.time(), False
        while True:
            await asyncio.sleep(min(10.0, self.stall_s / 4))
            now, cur = loop.time(), self._size()
            if cur != size:
                size, since, told = cur, now, False
            elif not told and now - since >= self.stall_s:
                told = True
                self.stalls.append(self.dump(now - since))

    def dump(self, quiet_s: float) -> dict:
        load = self.solver.load
        waits: dict[str, int] = {}
        for t in asyncio.all_tasks():
            if t.done() or t is asyncio.current_task():
                continue
            stack = t.get_stack()
            where = f"{os.path.basename(stack[-1].f_code.co_filename)}:{stack[-1].f_lineno} {stack[-1].f_code.co_name}" \
                if stack else repr(t.get_coro())[:80]
            waits[where] = waits.get(where, 0) + 1
        rep = {"quiet_s": round(quiet_s, 1), "solves_in_flight": self.solver.in_flight,
               "sequences_in_flight": load.in_flight, "reserved": getattr(load, "reserved", 0),
               "admission_waiting": getattr(load, "waiting", None), "answer_work": self.solver.answer_work.stats(),
               "tasks_waiting_at": dict(sorted(waits.items(), key=lambda kv: -kv[1])[:12])}
        print(f"# STALL: no result line for {rep['quiet_s']} s: {json.dumps(rep)}", flush=True)
        return rep


class GCWatch:
    """This process's cyclic garbage collections while a job runs (``gc.callbacks``): a full
    (generation 2) collection holds every thread, the controller's loop and SGLang's tokenizer
    manager alike. ``SGLangEngine(freeze_gc=True)`` (the default) moves the objects of the
    start-up out of its reach; this says what is left."""

    def __init__(self) -> None:
        from srca.engines.gc_probe import CollectionTimer

        self.runs: list[tuple[int, float]] = []  # (generation, seconds)
        self._cb = CollectionTimer(lambda gen, s, info: self.runs.append((gen, s)))

    def __enter__(self):
        import gc

        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc):
        import gc

        gc.callbacks.remove(self._cb)

    def summary(self) -> dict:
        import gc

        out: dict[str, Any] = {"frozen_objects": gc.get_freeze_count()}
        for g in (0, 1, 2):
            xs = [x for gen, x in self.runs if gen == g]
            out[f"gen{g}"] = {"n": len(xs), "total_s": round(sum(xs), 3), "max_s": round(max(xs, default=0.0), 4)}
        return out


class StackSampler(threading.Thread):
    """Samples one thread's Python stack ``hz`` times a second: idle (waiting in the selector)
    or busy, and per function how many busy samples had it on the stack (cumulative) or on top."""

    SKIP = ("/asyncio/", "/selectors.py", "/threading.py", "/runpy.py", os.path.basename(__file__))

    def __init__(self, ident: int, hz: float) -> None:
        super().__init__(name="real-workload-sampler", daemon=True)
        self.target, self.period = ident, 1.0 / hz
        self.samples = self.idle = 0
        self.cum: Counter = Counter()
        self.top: Counter = Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            f = sys._current_frames().get(self.target)
            if f is None:
                continue
            self.samples += 1
            if f.f_code.co_name == "select" and f.f_code.co_filename.endswith("selectors.py"):
                self.idle += 1
                continue
            stack = []
            while f is not None:
                co = f.f_code
                stack.append((co.co_filename, co.co_firstlineno, co.co_name))
                f = f.f_back
            self.top[stack[0]] += 1
            # outermost first: among functions with equal counts the caller ranks first
            # (``cluster`` before the parser internals it spends its time in)
            for key in dict.fromkeys(reversed(stack)):
                self.cum[key] += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)

    def summary(self, wall: float, most: int = 25) -> dict:
        busy = self.samples - self.idle
        per = wall / self.samples if self.samples else 0.0

        def rows(c: Counter, k: int) -> list:
            return [{"function": _fname(key), "samples": v, "share_of_wall": round(v / max(1, self.samples), 4),
                     "est_s": round(v * per, 2)} for key, v in c.most_common(k)]

        interesting = Counter({k: v for k, v in self.cum.items() if _interesting(k)})
        return {"hz": round(1 / self.period), "samples": self.samples, "busy_share": round(busy / max(1, self.samples), 4),
                "busy_est_s": round(busy * per, 2), "top_cumulative": rows(interesting, most),
                "top_self": rows(self.top, most)}


def _fname(key: tuple) -> str:
    path, line, name = key
    for marker in ("site-packages/", "dist-packages/", ROOT + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def _interesting(key: tuple) -> bool:
    """Below the solve entry points: not asyncio/threading plumbing, not this script, not
    ``arun_eval``'s per-job task, ``Solver.asolve`` or a method's ``run_*`` (they hold everything)."""
    path, _, name = key
    if any(s in path for s in StackSampler.SKIP):
        return False
    if path.endswith(("srca/eval/runner.py", "srca/solver.py")) or ("srca/methods/" in path and name.startswith("run_")):
        return False
    return True


def _profile_top(prof: cProfile.Profile, most: int = 30) -> list:
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][3])  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = [{"function": _fname(k), "calls": v[1], "tottime_s": round(v[2], 3), "cumtime_s": round(v[3], 3)}
           for k, v in rows if _interesting(k) and not k[0].startswith("~")]
    return out[:most]


def _thread_cpu(ident: int | None) -> float | None:
    if ident is None:
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError):
        return None


def _children_cpu() -> float:
    """CPU seconds of this process's child processes now alive (SGLang's scheduler, detokenizer,
    or the server), user + system."""
    try:
        import psutil
    except ImportError:
        return 0.0
    tot = 0.0
    for c in psutil.Process().children(recursive=True):
        try:
            t = c.cpu_times()
            tot += t.user + t.system
        except psutil.Error:
            pass
    return tot


def _proc_stat() -> dict | None:
    """This machine's CPU seconds by kind, all cores together (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            v = f.readline().split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {k: int(x) / hz for k, x in zip(names, v[1:9])}


class MachineCPU:
    """The whole machine's CPU seconds since start: busy, idle, and stolen by a VM's host
    (``steal``). The tenth run's raw phases, the same call on one engine, took 23.5 to 39.0 s
    with the same running batches, the GPU drawing 650 W in the fast ones and 470 W in the slow
    ones: most likely a host-side stall, which this is here to tell apart from the process's own
    CPU."""

    def __init__(self) -> None:
        self.t0 = _proc_stat()

    def since(self) -> dict | None:
        now = _proc_stat()
        if now is None or self.t0 is None:
            return None
        d = {k: now[k] - self.t0[k] for k in now}
        return {"busy_s": round(d["user"] + d["nice"] + d["system"] + d["irq"] + d["softirq"], 2),
                "idle_s": round(d["idle"], 2), "iowait_s": round(d["iowait"], 2), "steal_s": round(d["steal"], 2)}


class CPUClock:
    """CPU seconds since start: the main thread, the SGLang engine's loop thread, the whole
    process, and its child processes."""

    def __init__(self, loop_thread: threading.Thread | None) -> None:
        self.loop_ident = loop_thread.ident if loop_thread is not None else None
        self.t0 = self._now()

    def _now(self) -> dict:
        return {"main_thread": _thread_cpu(threading.main_thread().ident), "engine_loop_thread": _thread_cpu(self.loop_ident),
                "process": time.process_time(), "child_processes": _children_cpu()}

    def since(self) -> dict:
        now = self._now()
        return {k: (round(now[k] - self.t0[k], 2) if now[k] is not None and self.t0[k] is not None else None) for k in now}


class LoadPoller(threading.Thread):
    """SGLang's load snapshot every ``period`` s: in process through the tokenizer manager's
    ``get_loads`` on the engine's loop, over HTTP from ``/v1/loads``."""

    KEYS = ("num_running_reqs", "num_waiting_reqs", "num_used_tokens", "max_total_num_tokens", "token_usage",
            "gen_throughput", "cache_hit_rate", "utilization")

    def __init__(self, fetch, period: float) -> None:
        super().__init__(name="real-workload-loads", daemon=True)
        self.fetch, self.period = fetch, period
        self.rows: list[dict] = []
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            try:
                loads = self.fetch()
            except Exception as e:  # a monitor must not end the benchmark; the JSON says why it stopped
                self.error = f"{type(e).__name__}: {e}"
                return
            t = time.time()
            for d in loads:
                self.rows.append({"t": t, **{k: d.get(k) for k in self.KEYS}})

    def take(self, t0: float, t1: float) -> dict:
        rows = [r for r in self.rows if t0 <= r["t"] <= t1]
        out: dict[str, Any] = {"polls": len(rows), "error": self.error}
        for k in ("num_running_reqs", "num_waiting_reqs", "token_usage", "num_used_tokens", "gen_throughput"):
            out[k] = _stats([float(r[k]) for r in rows if isinstance(r.get(k), (int, float))])
        out["series"] = _thin([[round(r["t"] - t0, 1), r["num_running_reqs"], r["num_waiting_reqs"], r["token_usage"],
                                r["gen_throughput"]] for r in rows])
        out["series_columns"] = ["t_s", "running", "waiting", "token_usage", "gen_tok_s"]
        return out

    def stop(self) -> None:
        self._halt.set()


class GpuPoller(threading.Thread):
    """The GPU's SM clock, power, temperature and clock-limit reasons every ``period_ms``
    (``nvidia-smi --query-gpu ... --loop-ms``), each line stamped on arrival; :meth:`take` summarizes
    a phase. Why: the same phase ran up to 1.14x slower later in a run than first (benchmarks/RUNS.md, "Sixth
    run"), and a GPU that lowers its clocks as it heats would do that. GPU 0 only (this
    benchmark runs one engine on one GPU)."""

    FIELDS = ("clocks.sm", "clocks.mem", "power.draw", "temperature.gpu", "clocks_event_reasons.active")
    # drivers before 535 name the last one clocks_throttle_reasons.active
    OLD_REASONS = "clocks_throttle_reasons.active"

    def __init__(self, period_ms: int) -> None:
        super().__init__(name="real-workload-gpu", daemon=True)
        self.period_ms = period_ms
        self.rows: list[tuple[float, list[str]]] = []
        self.error: str | None = None
        self.proc: subprocess.Popen | None = None
        self._stopped = False

    def run(self) -> None:
        for fields in (self.FIELDS, self.FIELDS[:-1] + (self.OLD_REASONS,)):
            cmd = ["nvidia-smi", "-i", "0", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits",
                   f"--loop-ms={self.period_ms}"]
            try:
                self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            except OSError as e:  # no nvidia-smi: the JSON says so
                self.error = f"{type(e).__name__}: {e}"
                return
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                parts = [x.strip() for x in line.split(",")]
                if len(parts) != len(fields):
                    self.error = line.strip()[:200]
                    continue
                self.rows.append((time.time(), parts))
            if self.rows or self._stopped:  # it ran (or was stopped): done; else the older field name
                return

    def take(self, t0: float, t1: float) -> dict:
        rows = [p for t, p in self.rows if t0 <= t <= t1]

        def col(i: int) -> list[float]:
            out = []
            for p in rows:
                try:
                    out.append(float(p[i]))
                except ValueError:
                    pass
            return out

        reasons = 0
        for p in rows:
            try:
                reasons |= int(p[4], 16)
            except ValueError:
                pass
        return {"polls": len(rows), "error": self.error, "sm_mhz": _stats(col(0)), "mem_mhz": _stats(col(1)),
                "power_w": _stats(col(2)), "temp_c": _stats(col(3)), "clock_reasons_any": hex(reasons)}

    def stop(self) -> None:
        self._stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


def print_machine(row: dict) -> None:
    """A phase's GPU and whole-machine CPU lines, and where SGLang's busiest thread was, when the
    run recorded them."""
    if row.get("gpu"):
        print(f"#   {gpu_line(row['gpu'])}", flush=True)
    if row.get("machine_cpu"):
        print(f"#   machine CPU s: {json.dumps(row['machine_cpu'])}", flush=True)
    for line in stack_lines(row.get("sglang_stacks")):
        print(f"#   {line}", flush=True)


def stack_lines(stacks: dict | None, most: int = 12) -> list[str]:
    """The scheduler's busiest thread's top cumulative functions (``--sglang-stacks``)."""
    out = []
    for proc, got in (stacks or {}).items():
        if "scheduler" not in proc or not got.get("threads"):
            continue
        thread, t = next(iter(got["threads"].items()))
        out.append(f"SGLang {proc} thread {thread}: {t['samples']} samples; on the stack:")
        out += [f"  {r['share']:.1%} {r['function']}" for r in t["cumulative"][:most]]
        out.append("  on top: " + "; ".join(f"{r['share']:.1%} {r['frame']}" for r in t["self"][:5]))
    return out


def gpu_line(g: dict) -> str:
    """One printed line of :meth:`GpuPoller.take`."""
    if not g.get("polls"):
        return f"GPU: no samples ({g.get('error')})"
    sm, pw, tc = g["sm_mhz"], g["power_w"], g["temp_c"]
    return (f"GPU: SM {sm.get('mean')} MHz mean (min {sm.get('min')}), power {pw.get('mean')} W mean "
            f"(max {pw.get('max')}), {tc.get('max')} C max, clock reasons {g['clock_reasons_any']}")


def _as_dicts(loads) -> list[dict]:
    out = []
    for x in loads or []:
        out.append(x.to_dict() if hasattr(x, "to_dict") else dict(x))
    return out


def replica_parts(ids: list[list[int]], replicas: int, samples: int) -> list[list[list[int]]]:
    """The raw phase's batch for each of ``replicas`` servers: prompt ``j`` (``samples`` times)
    to replica ``j % replicas``, so that each prompt's samples share one radix cache."""
    return [[x for j, x in enumerate(ids) if j % replicas == r for _ in range(samples)] for r in range(replicas)]


# -- SGLang's log ----------------------------------------------------------------------------------

def sglang_log_config(work: str) -> str:
    """A logging config every SGLang process loads (``SGLANG_LOGGING_CONFIG_PATH``): INFO and
    up into ``WORK/sglang.log`` with epoch timestamps, warnings also on stderr."""
    log = os.path.join(work, "sglang.log")
    cfg = {"version": 1, "disable_existing_loggers": False,
           "formatters": {"t": {"format": "%(created).3f %(levelname)s %(message)s"}},
           "handlers": {"file": {"class": "logging.FileHandler", "filename": log, "formatter": "t", "level": "INFO"},
                        "err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "t",
                                "level": "WARNING"}},
           "root": {"level": "INFO", "handlers": ["file", "err"]}}
    path = os.path.join(work, "sglang_logging.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return log


_TS = re.compile(r"^(\d{9,11}\.\d+) ")
_RETRACT = re.compile(r"#retracted_reqs: (\d+)")


def _fields(msg: str) -> dict:
    out = {}
    for part in msg.split(", ")[1:]:
        k, sep, v = part.partition(": ")
        if sep:
            try:
                out[k.strip()] = float(v) if v not in ("True", "False") else float(v == "True")
            except ValueError:
                pass
    return out


class SGLangLog:
    """Reads the scheduler's log lines as they are appended, and sums them per phase."""

    def __init__(self, path: str | None) -> None:
        self.path, self.pos = path, 0

    def start_lines(self, t0: float, most: int = 300) -> list:
        """Every log line written so far, as ``[s since t0, message]``: where the engine's start
        went (weights, KV pool, CUDA graph capture, warm-up; SGLang logs each)."""
        if not self.path or not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
        out = []
        for raw in data.splitlines():
            m = _TS.match(raw)
            if m:
                out.append([round(float(m.group(1)) - t0, 2), raw[m.end():][:200]])
        return _thin(out, most)

    def take(self, t0: float, t1: float) -> dict:
        if not self.path or not os.path.exists(self.path):
            return {"lines": 0, "note": "no SGLang log (local engine, or logging config not loaded)"}
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += data.rfind(b"\n") + 1
        dec, pre, retract = [], [], []
        for raw in data.decode("utf-8", "replace").splitlines():
            m = _TS.match(raw)
            if not m:
                continue
            t = float(m.group(1))
            if not t0 <= t <= t1 + 1:
                continue
            if "Decode batch" in raw:
                dec.append((t, _fields(raw[raw.index("Decode batch"):])))
            elif "Prefill batch" in raw:
                pre.append((t, _fields(raw[raw.index("Prefill batch"):])))
            elif "Retract requests" in raw:
                r = _RETRACT.search(raw)
                retract.append((t, int(r.group(1)) if r else 0))

        def col(rows, k):
            return [f[k] for _, f in rows if k in f]

        return {
            "decode_logs": len(dec),
            "running_req": _stats(col(dec, "#running-req"), 1), "token_usage": _stats(col(dec, "token usage"), 3),
            "kv_tokens": _stats(col(dec, "#token"), 0), "queue_req": _stats(col(dec, "#queue-req"), 1),
            "gen_throughput": _stats(col(dec, "gen throughput (token/s)"), 0),
            "cuda_graph_share": round(statistics.fmean(col(dec, "cuda graph")), 3) if col(dec, "cuda graph") else None,
            "prefill_batches": len(pre), "prefill_new_tokens": int(sum(col(pre, "#new-token"))),
            "prefill_cached_tokens": int(sum(col(pre, "#cached-token"))),
            "prefill_queue_req": _stats(col(pre, "#queue-req"), 1),
            "retractions": len(retract), "retracted_reqs": sum(n for _, n in retract),
            "decode_series": _thin([[round(t - t0, 1), f.get("#running-req"), f.get("token usage"), f.get("#queue-req"),
                                     f.get("gen throughput (token/s)")] for t, f in dec]),
            "decode_series_columns": ["t_s", "running", "token_usage", "queue", "gen_tok_s"],
            "retract_events": _thin([[round(t - t0, 1), n] for t, n in retract], 100),
        }


# -- engines ---------------------------------------------------------------------------------------

def sglang_env(items: list[str]) -> dict[str, str]:
    """``--sglang-env NAME=VALUE`` items as a dict; ``ValueError`` naming the flag for one that is
    not ``NAME=VALUE`` with a shell-style name."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not (name[0].isalpha() or name[0] == "_") \
                or not all(c.isalnum() or c == "_" for c in name):
            raise ValueError(f"--sglang-env: expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def sglang_args(items: list[str]) -> dict[str, Any]:
    """``--sglang-arg KEY=VALUE`` items as SGLang ``ServerArgs`` keywords, read as the CLI reads
    ``--engine-option`` (VALUE as JSON when it parses: ``true``, ``8192``, ``[1, 2]``; else the
    string); ValueError naming the flag."""
    from srca.commands.common import UsageError, engine_options

    try:
        return engine_options(items, flag="--sglang-arg")
    except UsageError as e:
        raise ValueError(str(e)) from None


def check_sglang_keys(args: dict[str, Any]) -> None:
    """Every ``--sglang-arg`` key is a field of SGLang's ``ServerArgs`` (only where SGLang is
    installed; elsewhere nothing is checked): a misspelt key is a ValueError now, not an
    engine start failing minutes into a GPU session."""
    if not args:
        return
    try:
        from sglang.srt.server_args import ServerArgs
    except ImportError:
        return
    known = {f.name for f in dataclasses.fields(ServerArgs)}
    bad = sorted(k for k in args if k not in known)
    if bad:
        raise ValueError(f"--sglang-arg: not a field of SGLang's ServerArgs: {', '.join(bad)}")


def server_flags(args: dict[str, Any]) -> list[str]:
    """The same for ``sglang.launch_server``: ``true`` is the bare flag, ``false`` none, a list
    its items."""
    out: list[str] = []
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        elif v is not False and v is not None:
            out += [flag] + ([str(x) for x in v] if isinstance(v, list) else [str(v)])
    return out


class Setup:
    """The engine, how to reach its raw generate, and its monitors."""

    def __init__(self, a) -> None:
        self.a = a
        self.kind = a.engine + ("-http" if a.server else "")
        self.t_start = time.time()
        self.proc: subprocess.Popen | None = None
        self.procs: list[subprocess.Popen] = []  # --server: one per replica (self.proc is the first)
        self.url: str | None = None
        self.urls: list[str] = []  # --server: every replica's URL (self.url is the first)
        self.log_path: str | None = None
        self.gc_dir: str | None = None
        self.stacks_dir: str | None = None
        self.frozen = False
        self.loop_thread: threading.Thread | None = None
        t0 = time.monotonic()
        if a.engine == "local":
            from srca.engines import make_engine

            self.eng = make_engine("local", model=a.model)
        else:
            self.log_path = sglang_log_config(a.work_dir)
            os.environ["SGLANG_LOGGING_CONFIG_PATH"] = os.path.join(a.work_dir, "sglang_logging.json")
            if a.gc_log:  # every SGLang process inherits it; srca's plugin starts the probe there
                self.gc_dir = os.path.join(a.work_dir, "gc")
                os.makedirs(self.gc_dir, exist_ok=True)
                for f in os.listdir(self.gc_dir):
                    os.remove(os.path.join(self.gc_dir, f))
                os.environ["SRCA_GC_LOG"] = self.gc_dir
            if not a.server and a.sglang_gc_threshold not in ("engine", "off"):
                # the ones named, in SGLang's processes only (srca's plugin; the engine then leaves this
                # process at Python's); servers get theirs from the launcher (_start_server)
                from srca.engines import gc_probe

                os.environ.update({gc_probe.THRESHOLD_ENV: a.sglang_gc_threshold,
                                   gc_probe.THRESHOLD_OWNER_ENV: str(os.getpid())})
            if a.sglang_stacks > 0:  # the same plugin samples SGLang's processes' stacks (srca.engines.stack_probe)
                self.stacks_dir = os.path.join(a.work_dir, "stacks")
                os.makedirs(self.stacks_dir, exist_ok=True)
                for f in os.listdir(self.stacks_dir):
                    os.remove(os.path.join(self.stacks_dir, f))
                os.environ.update(SRCA_STACKS=self.stacks_dir, SRCA_STACKS_HZ=str(a.sglang_stacks),
                                  SRCA_STACKS_SKIP_PID=str(os.getpid()))
            if a.server:
                self._start_server()
            else:
                from srca.engines.sglang_inproc import SGLangEngine

                extra = {"disable_cuda_graph": True} if a.disable_cuda_graph else {}
                if a.prefill_graph != "engine":  # else SGLangEngine's default (sglang_graphs.PREFILL_GRAPH)
                    extra["prefill_graph"] = None if a.prefill_graph == "sglang" else a.prefill_graph
                if a.max_running_requests:
                    extra["max_running_requests"] = a.max_running_requests
                extra.update(a.sglang_args)
                if a.submit_window_ms is not None:
                    extra["submit_window_ms"] = a.submit_window_ms
                if a.sglang_gc_threshold != "engine":  # off, or named above for SGLang's processes only
                    extra["gc_threshold"] = None
                if a.decode_graph_max_bs != "engine":
                    extra["decode_graph_max_bs"] = None if a.decode_graph_max_bs == "sglang" else a.decode_graph_max_bs
                self.eng = SGLangEngine(a.model, mem_fraction_static=IN_PROCESS_MEM if a.mem is None else a.mem, sampling_backend=a.sampler,
                                        attention_backend="triton", grammar_backend="none", log_level="info",
                                        decode_log_interval=a.decode_log_interval,
                                        freeze_gc=a.freeze_gc == "on", **extra)
                self.frozen = a.freeze_gc == "on"
                self.loop_thread = self.eng._thread
        self.start_s = round(time.monotonic() - t0, 1)
        from srca import Solver

        # the jobs' solver: its answer work (decisions, grading) in worker processes, as srca eval's
        self.solver = Solver(engine=self.eng, answer_workers=a.answer_workers)
        self.solver.answer_work.start(wait=True)  # up before the first phase, so no phase pays their start

    def _start_server(self) -> None:
        """``--server-replicas`` ``sglang.launch_server`` processes on this GPU (each with
        ``--mem`` / replicas of its memory), then one ``SGLangServerEngine`` over their URLs (a
        solve's calls stay on one replica). Each replica is a scheduler process of its own: the
        A/B for a search whose scheduler, not the GPU, is the limit (DVTS; RUNS.md, "Fifteenth run")."""
        from srca.engines.sglang_http import SGLangServerEngine

        a = self.a
        from srca.engines import gc_probe
        from srca.engines.sglang_graphs import AUTO, PREFILL_GRAPH
        from srca.engines.sglang_launch import ServerGroup, ServerLaunch

        flags = ["--attention-backend", "triton", "--sampling-backend", a.sampler, "--grammar-backend", "none",
                 "--log-level", "info", "--log-level-http", "warning", "--decode-log-interval", str(a.decode_log_interval)]
        if a.disable_cuda_graph:
            flags.append("--disable-cuda-graph")
        if a.max_running_requests:
            flags += ["--max-running-requests", str(a.max_running_requests)]
        flags += server_flags(a.sglang_args)
        mem = a.mem if a.mem is not None or a.server_replicas > 1 else IN_PROCESS_MEM
        reserve = {} if a.server_reserve_gib is None else {"reserve_gib": a.server_reserve_gib}
        launch = ServerLaunch(model=a.model, replicas=a.server_replicas, mem_fraction=mem, **reserve,
                              decode_graph_max_bs=(AUTO if a.decode_graph_max_bs == "engine" else
                                                   None if a.decode_graph_max_bs == "sglang" else a.decode_graph_max_bs),
                              prefill_graph=(PREFILL_GRAPH if a.prefill_graph == "engine" else
                                             None if a.prefill_graph == "sglang" else a.prefill_graph),
                              gc_threshold={"off": None, "engine": gc_probe.DEFAULT_THRESHOLD}.get(
                                  a.sglang_gc_threshold, a.sglang_gc_threshold),
                              extra_args=tuple(flags), log_dir=a.work_dir, start_timeout_s=900.0,
                              mps=a.server_mps)
        # one after another on this GPU: a replica sizes its KV pool by the memory free when it starts
        self.group = ServerGroup(launch)
        self.procs, self.urls = self.group.procs, self.group.urls
        self.group.start()
        self.proc, self.url = self.procs[0], self.urls[0]
        window = {} if self.a.submit_window_ms is None else {"submit_window_ms": self.a.submit_window_ms}
        self.eng = SGLangServerEngine(self.urls if len(self.urls) > 1 else self.url, max_connections=4096, **window)

    def stop_server(self) -> None:
        group = getattr(self, "group", None)
        if group is not None:
            group.stop()

    # scheduler views ------------------------------------------------------------------------------
    def loads_fetch(self):
        if self.a.engine == "local":
            return None
        if self.url is not None:
            import urllib.request

            def fetch():  # one entry per scheduler, as an in-process engine's dp ranks give them
                loads = []
                for url in self.urls:
                    with urllib.request.urlopen(url + "/v1/loads?include=core", timeout=5) as r:
                        d = json.loads(r.read())
                    d = d.get("loads", d) if isinstance(d, dict) else d
                    loads.extend(d if isinstance(d, list) else [d])
                return loads
            return fetch
        tm = self.eng.engine.tokenizer_manager
        return lambda: _as_dicts(asyncio.run_coroutine_threadsafe(tm.get_loads(include=["core"]), self.eng._loop).result(5))

    def server_info(self) -> dict:
        """SGLang's view of itself after start: capacity (max_total_num_tokens, max_running_requests,
        cuda graph sizes, chunked prefill) and internal state."""
        if self.a.engine == "local":
            return {}
        try:
            if self.url is not None:
                import urllib.request

                with urllib.request.urlopen(self.url + "/get_server_info", timeout=30) as r:
                    return json.loads(r.read())
            eng = self.eng.engine
            info = dict(getattr(getattr(eng, "_scheduler_init_result", None), "scheduler_infos", [{}])[0])
            fut = asyncio.run_coroutine_threadsafe(eng.tokenizer_manager.get_internal_state(), self.eng._loop)
            info["internal_states"] = fut.result(60)
            info["server_args"] = dict(self.eng.server_args)
            return json.loads(json.dumps(info, default=str))
        except Exception as e:  # informative only
            return {"error": f"{type(e).__name__}: {e}"}

    def replicas_info(self) -> list[dict] | None:
        """Each server replica's static fraction (as srca started it) and KV pool in tokens
        (``--server``; None otherwise): equal pools are what the balanced fractions are for."""
        group = getattr(self, "group", None)
        if group is None:
            return None
        import urllib.request

        out = []
        for k, url in enumerate(self.urls):
            row: dict = {"replica": k, "url": url, "mem_fraction_static": group.fractions.get(k)}
            try:
                with urllib.request.urlopen(url + "/get_server_info", timeout=30) as r:
                    row["max_total_num_tokens"] = json.loads(r.read()).get("max_total_num_tokens")
            except Exception as e:  # informative only
                row["error"] = f"{type(e).__name__}: {e}"
            out.append(row)
        return out

    # raw generate ---------------------------------------------------------------------------------
    def raw(self, ids: list[list[int]]) -> dict:
        """Every prompt x samples in one call; returns token counts."""
        a = self.a
        params = {"max_new_tokens": a.max_new_tokens, "temperature": a.temperature, "top_p": a.top_p}
        batch = [x for x in ids for _ in range(a.samples)]
        t = time.monotonic()
        if a.engine == "local":
            from srca.engines.base import GenRequest

            reqs = [GenRequest(input_ids=x, n=a.samples, logprobs=False, **params) for x in ids]
            res = asyncio.run(self.eng.generate(reqs))
            wall = time.monotonic() - t
            metas = [{"prompt_tokens": r.prompt_tokens, "cached_tokens": r.cached_tokens,
                      "completion_tokens": r.generated_tokens} for rs in res for r in rs]
            how = "LocalEngine.generate, one batched call (no SGLang on this machine)"
        elif self.url is not None:
            import urllib.request
            from concurrent.futures import ThreadPoolExecutor

            def post(url: str, part: list[list[int]]) -> list[dict]:
                body = json.dumps({"input_ids": part, "sampling_params": params}).encode()
                req = urllib.request.Request(url + "/generate", data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=7200) as r:
                    return json.loads(r.read())

            k = len(self.urls)  # with replicas, each prompt's samples to one of them, all at once
            parts = replica_parts(ids, k, a.samples)
            with ThreadPoolExecutor(k) as pool:
                outs = [o for got in pool.map(post, self.urls, parts) for o in got]
            wall = time.monotonic() - t
            metas = [o["meta_info"] for o in outs]
            how = ("one batched POST /generate to the same sglang.launch_server" if k == 1 else
                   f"one batched POST /generate to each of the {k} sglang.launch_server replicas, at once")
        else:
            coro = self.eng.engine.async_generate(input_ids=batch, sampling_params=params)
            outs = asyncio.run_coroutine_threadsafe(coro, self.eng._loop).result()
            wall = time.monotonic() - t
            metas = [o["meta_info"] for o in outs]
            how = "sglang.Engine.async_generate, one call (SGLangEngine(...).engine)"
        gen = sum(int(m.get("completion_tokens", 0)) for m in metas)
        prompt = sum(int(m.get("prompt_tokens", 0)) for m in metas)
        cached = sum(int(m.get("cached_tokens", 0)) for m in metas)
        return {"how": how, "wall_s": round(wall, 2), "requests": len(batch), "generated_tokens": gen,
                "gen_tok_s": round(gen / wall, 1) if wall > 0 else None, "prompt_tokens": prompt,
                "cached_tokens": cached, "cache_hit_rate": round(cached / prompt, 4) if prompt else 0.0,
                "mean_generated_per_sample": round(gen / max(1, len(batch)), 1)}

    def freeze_gc(self) -> None:
        """SGLang's ``freeze_gc`` in every one of its processes and this one: the in-process engine's
        own call (``SGLangEngine(freeze_gc=True)`` makes it once up), ``POST /freeze_gc`` to a
        server (then this process's ``gc.freeze``)."""
        import gc

        if self.a.engine == "local":
            gc.freeze()
        elif self.url is not None:
            import urllib.request

            for url in self.urls:
                with urllib.request.urlopen(urllib.request.Request(url + "/freeze_gc", method="POST"), timeout=60):
                    pass
            gc.freeze()
        else:
            self.eng._freeze_gc()
        self.frozen = True

    def stacks_take(self, t0: float, t1: float) -> dict | None:
        """Where SGLang's processes' threads were between ``t0`` and ``t1`` (``--sglang-stacks``)."""
        if self.stacks_dir is None:
            return None
        from srca.engines import stack_probe

        return stack_probe.summarize(stack_probe.read(self.stacks_dir), t0, t1)

    def gc_take(self, t0: float, t1: float) -> dict | None:
        """SGLang's processes' long collections between ``t0`` and ``t1`` (``SRCA_GC_LOG``; this
        process's own are the job's ``gc_main``)."""
        if self.gc_dir is None:
            return None
        from srca.engines import gc_probe

        return gc_probe.summarize(gc_probe.read(self.gc_dir), t0, t1, exclude_pid=os.getpid())

    def flush(self) -> None:
        f = getattr(self.eng, "flush_cache", None)
        if f is not None:
            asyncio.run(f())

    def close(self) -> None:
        self.solver.answer_work.close()
        try:
            asyncio.run(self.eng.close())
        finally:
            self.stop_server()


# -- one job ---------------------------------------------------------------------------------------

TAIL_MODES = ("inline", "rescore", "rescore_all")
ADMIT_MODES = ("bywidth", "byload")  # a job's admission (Solver.admit), e.g. majority:byload


def split_job(job: str) -> tuple[str, str | None]:
    """``method`` or ``method:SETTING``, one setting of the run's SGLang engine for that job
    alone, on the run's one engine (an A/B without a second engine start): a ``tail_logprobs``
    mode (``inline``: logprobs while decoding; ``rescore_all``: every sample's logprobs, whole, by
    a prefill after sampling, e.g. ``best_of_n:rescore_all``), ``windowMS`` (the engine's submit
    window, :class:`~srca.engines.sglang_common.SubmitGate`, e.g. ``dvts:window200``) or ``gcN``
    (this process's garbage-collector thresholds ``(N, 20, 100)``, what SGLang's ``gc_threshold``
    sets in the process that starts the engine, e.g. ``dvts:gc50000``) or ``bywidth`` /
    ``byload`` (the solver admits that job's solves by the widths they hold or by the sequences
    in flight, ``Solver(admit=...)``: ``majority:byload`` against ``majority``)."""
    method, _, mode = job.partition(":")
    if mode and mode not in TAIL_MODES + ADMIT_MODES and setting_number(mode) is None:
        raise ValueError(f"--jobs: {job!r}: the suffix after ':' must be one of {', '.join(TAIL_MODES)}, "
                         f"bywidth, byload, windowMS (e.g. window200, window0: off) or gcN (e.g. gc50000)")
    return method, mode or None


def setting_number(mode: str) -> tuple[str, int] | None:
    """``("window", MS)`` or ``("gc", N)`` from a job's setting, or None for any other text."""
    m = re.fullmatch(r"(window)(0|[1-9][0-9]*)|(gc)([1-9][0-9]*)", mode)
    if m is None:
        return None
    return (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))


def check_jobs(jobs: list[str], samples: int, engine: str) -> None:
    """Every ``--jobs`` entry names a method that runs at ``samples``, and a ``method:SETTING``
    job has an SGLang engine to set (in process or ``--server``: both have ``tail_logprobs``
    and a submit window); a ValueError says which is not."""
    from srca.eval import config_for

    for m in jobs:
        method, mode = split_job(m)
        config_for(method, samples)
        if mode is not None and mode not in ADMIT_MODES and engine != "sglang":
            raise ValueError(f"--jobs: {m!r}: a 'method:SETTING' job needs an SGLang engine (--engine sglang)")


class TailMode:
    """Sets ``SGLangEngine.tail_logprobs`` for one job, then puts it back."""

    def __init__(self, eng, mode: str | None) -> None:
        self.eng, self.mode, self.old = eng, mode, getattr(eng, "tail_logprobs", None)
        if mode is not None and self.old is None:
            raise ValueError(f"--jobs: ':{mode}' needs an SGLang engine")

    def __enter__(self):
        if self.mode is not None:
            self.eng.tail_logprobs = self.mode

    def __exit__(self, *exc):
        if self.mode is not None:
            self.eng.tail_logprobs = self.old


class JobSetting:
    """One job's setting (:func:`split_job`) on the shared engine (or, ``bywidth``, the
    ``solver``), put back after the job."""

    def __init__(self, eng, mode: str | None, solver=None) -> None:
        self.eng, self.mode, self.old, self.solver = eng, mode, None, solver
        if mode in ADMIT_MODES and solver is None:
            raise ValueError(f"--jobs: ':{mode}' needs the run's solver")
        if (setting_number(mode or "") or ("",))[0] == "window" and getattr(eng, "gate", None) is None:
            raise ValueError(f"--jobs: ':{mode}' needs an SGLang engine")
        self.tail = TailMode(eng, mode if mode in TAIL_MODES else None)

    def __enter__(self):
        import gc

        from srca.engines.sglang_common import SubmitGate

        self.tail.__enter__()
        if self.mode in ADMIT_MODES:
            self.old, self.solver.admit = self.solver.admit, self.mode[len("by"):]
        kind, value = setting_number(self.mode or "") or (None, 0)
        if kind == "window":
            self.old, self.eng.gate = self.eng.gate, SubmitGate(value / 1000, self.eng.gate.busy)
        elif kind == "gc":
            self.old = gc.get_threshold()
            gc.set_threshold(value, 20, 100)

    def __exit__(self, *exc):
        import gc

        self.tail.__exit__(*exc)
        if self.mode in ADMIT_MODES:
            self.solver.admit = self.old
        kind = (setting_number(self.mode or "") or (None, 0))[0]
        if self.old is not None and kind == "window":
            self.eng.gate = self.old
        elif self.old is not None and kind == "gc":
            gc.set_threshold(*self.old)


def tail_rescore_check(st: Setup, ids: list[list[int]], tokens: int = 48) -> dict:
    """Greedy samples of the first prompts twice: logprobs inline (greedy: SGLang's decode
    logprobs are then the model's own, untempered) and scored by the tail prefill. Same tokens,
    same log-probabilities up to bf16 noise, or the rescoring is wrong."""
    from srca.engines.base import GenRequest

    if getattr(st.eng, "tail_logprobs", None) is None:
        return {}
    reqs = [GenRequest(input_ids=x, max_new_tokens=tokens, temperature=0.0, logprob_tail=tokens) for x in ids[:8]]
    got = {}
    for mode in ("inline", "rescore"):
        with TailMode(st.eng, mode):
            got[mode] = [rs[0] for rs in asyncio.run(st.eng.generate(reqs))]
    same = [a.token_ids == b.token_ids for a, b in zip(got["inline"], got["rescore"])]
    diffs = [abs(x - y) for a, b, ok in zip(got["inline"], got["rescore"], same) if ok
             for x, y in zip(a.logprobs, b.logprobs)]
    out = {"samples": len(reqs), "tokens": tokens, "same_tokens": sum(same), "compared": len(diffs),
           "max_abs_diff": round(max(diffs), 4) if diffs else None,
           "mean_abs_diff": round(sum(diffs) / len(diffs), 5) if diffs else None}
    print(f"# tail rescoring check: {json.dumps(out)}", flush=True)
    return out


def sampler_profile(a, st: Setup, ids: list[list[int]]) -> dict:
    """The share of GPU kernel time spent sampling on this workload (issue 17 item 3): the first
    ``--sampler-profile`` prompts x ``--samples``, 128 new tokens each (no EOS stop), as one
    batch under SGLang's torch profiler (GPU activity only), on the engine the jobs ran on.
    Kernels are classed by name as ``benchmarks/sampler_share.py`` does."""
    import glob

    from sampler_share import sampling_summary
    from sglang.srt.managers.io_struct import ProfileReq

    d = os.path.join(a.work_dir, "prof", time.strftime("%H%M%S"))  # one folder per profile
    os.makedirs(d, exist_ok=True)
    batch = [x for x in ids[: a.sampler_profile] for _ in range(a.samples)]
    params = {"max_new_tokens": 128, "temperature": a.temperature, "top_p": a.top_p, "ignore_eos": True}
    tm = st.eng.engine.tokenizer_manager

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, st.eng._loop).result(600)

    run(st.eng.engine.async_generate(input_ids=batch, sampling_params=params))  # the prompts now cached
    t = time.monotonic()
    run(st.eng.engine.async_generate(input_ids=batch, sampling_params=params))
    plain_s = time.monotonic() - t
    run(tm.start_profile(ProfileReq(output_dir=d, activities=["GPU"], with_stack=False, record_shapes=False)))
    t = time.monotonic()
    run(st.eng.engine.async_generate(input_ids=batch, sampling_params=params))
    prof_s = time.monotonic() - t
    run(tm.stop_profile())
    time.sleep(5)
    traces = sorted(glob.glob(os.path.join(d, "**", "*.json*"), recursive=True))
    out = {"rows": len(batch), "new_tokens": 128, "wall_s": round(plain_s, 2), "wall_profiled_s": round(prof_s, 2),
           "traces": len(traces), **sampling_summary(traces)}
    print(f"# sampler profile: {json.dumps({k: v for k, v in out.items() if not isinstance(v, list)})}", flush=True)
    return out


async def trace_window(a, st: Setup, d: str) -> float:
    """Start SGLang's profiler (CPU and GPU, ``--sglang-trace`` forward steps; it stops by itself
    and writes its trace into ``d``) ``--sglang-trace-after`` seconds from now; when it started."""
    await asyncio.sleep(a.sglang_trace_after)
    body = {"output_dir": d, "num_steps": a.sglang_trace, "activities": ["CPU", "GPU"], "with_stack": False,
            "record_shapes": False}
    if st.url is not None:  # a server: its first replica
        import urllib.request

        def post() -> None:
            req = urllib.request.Request(st.url + "/start_profile", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        await asyncio.to_thread(post)
    else:
        from sglang.srt.managers.io_struct import ProfileReq

        fut = asyncio.run_coroutine_threadsafe(st.eng.engine.tokenizer_manager.start_profile(ProfileReq(**body)),
                                               st.eng._loop)
        await asyncio.wrap_future(fut)
    return time.time()


def trace_result(d: str, started: float | str | None, wait_s: float = 180.0) -> dict:
    """The summary of the trace ``trace_window`` asked for (benchmarks/sglang_trace.py), waiting up
    to ``wait_s`` for SGLang to write it; what went wrong otherwise (``started``: a string says
    why the profiler did not start)."""
    import glob

    from sglang_trace import line, summary

    if started is None:
        return {"error": "the job ended before the profiler started (a smaller --sglang-trace-after)"}
    if isinstance(started, str):
        return {"error": f"the profiler did not start: {started}"}
    deadline = time.monotonic() + wait_s
    while True:
        paths = sorted(glob.glob(os.path.join(d, "**", "*.trace.json*"), recursive=True))
        if paths or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if not paths:
        return {"error": f"no trace in {d} after {wait_s:.0f} s (the job may have ended before its steps ran)"}
    sizes = None  # the scheduler may still be writing it (hundreds of MB): wait until no file grows
    while time.monotonic() <= deadline + wait_s:
        now = [os.path.getsize(p) for p in paths]
        if now == sizes:
            break
        sizes = now
        time.sleep(2.0)
    try:
        out = {"started_at": round(started, 3), "paths": paths, **summary(paths)}
    except (OSError, ValueError, EOFError) as e:
        return {"error": f"unreadable trace: {e}", "paths": paths}
    print(f"# SGLang trace: {line(out)}", flush=True)
    return out


def window_stats(eng) -> dict | None:
    """The engine's submit window (``window_stats()``: settings and counts so far), or None."""
    f = getattr(eng, "window_stats", None)
    return f() if callable(f) else None


def run_job(a, st: Setup, problems, job: str, conc: int | None, base, solver=None) -> dict:
    """One timed ``arun_eval`` of ``job`` (``solver``: another than the run's, for an A/B)."""
    from srca.eval import arun_eval

    solver = solver or st.solver

    method, mode = split_job(job)
    out = os.path.join(a.work_dir, f"{job.replace(':', '-')}_n{a.samples}_c{conc or 'auto'}.jsonl")
    lag = LoopLag()
    watch = LoadWatch(solver.load)
    stall = StallWatch(out, solver, a.stall_s)
    work0 = solver.answer_work.stats()  # the solver's counts since it started: this job's are the difference
    sampler = StackSampler(threading.main_thread().ident, a.sample_hz) if a.sample_hz > 0 and not a.profile else None
    prof = cProfile.Profile() if a.profile else None

    trace_dir = os.path.join(a.work_dir, "trace", job.replace(":", "-")) if a.sglang_trace > 0 else None
    traced: list[float | str] = []  # when the profiler started, or why it did not

    async def trace() -> None:
        try:
            traced.append(await trace_window(a, st, trace_dir))
        except Exception as e:  # noqa: BLE001 (a diagnostic must not stop the job; its row says why)
            traced.append(f"{type(e).__name__}: {e}")

    async def go() -> tuple[list[dict], float, tuple]:
        task = asyncio.create_task(lag.run())
        wtask = asyncio.create_task(watch.run())
        stask = asyncio.create_task(stall.run())
        ttask = asyncio.create_task(trace()) if trace_dir is not None else None
        if prof is not None:
            prof.enable()
        t = time.monotonic()
        try:
            with JobSetting(st.eng, mode, solver):
                w0 = window_stats(st.eng)  # the job's submit window before and after it
                recs = await arun_eval(problems, [method], [a.samples], solver, out, base=base, seed=0,
                                       concurrency=conc, overwrite=True, progress=False)
                window = (w0, window_stats(st.eng))
        finally:
            wall = time.monotonic() - t
            if prof is not None:
                prof.disable()
            task.cancel()
            wtask.cancel()
            stask.cancel()
            if ttask is not None and not ttask.done():
                ttask.cancel()  # not yet started: the job was shorter than --sglang-trace-after
        return recs, wall, window

    cpu, mcpu = CPUClock(st.loop_thread), MachineCPU()
    t_mono, t_wall = time.monotonic(), time.time()
    if sampler is not None:
        sampler.start()
    gcw = GCWatch()
    try:
        with gcw:
            recs, wall, window = asyncio.run(go())
    finally:
        if sampler is not None:
            sampler.stop()
    row: dict[str, Any] = {"job": f"{job}@{a.samples}", "method": method, "answer_workers": solver.answer_work.workers, "tail_logprobs": mode if mode in TAIL_MODES
                           else getattr(st.eng, "tail_logprobs", None), "setting": mode, "concurrency": conc,
                           "effective_concurrency": min(conc, len(problems)) if conc else "auto", "problems": len(recs),
                           "records": out, "t_start": t_wall, "t_end": time.time()}
    u = {k: sum(r["usage"][k] for r in recs) for k in recs[0]["usage"]} if recs else {}
    gen = u.get("generated_tokens", 0)
    row.update(wall_s=round(wall, 2), generated_tokens=gen, gen_tok_s=round(gen / wall, 1) if wall > 0 else None,
               accuracy=round(sum(r["correct"] for r in recs) / max(1, len(recs)), 4), usage=u,
               cache_hit_rate=round(u["cached_tokens"] / u["prompt_tokens"], 4) if u.get("prompt_tokens") else 0.0,
               engine_calls=u.get("engine_calls", 0), engine_requests=u.get("engine_requests", 0),
               requests_per_call=round(u["engine_requests"] / u["engine_calls"], 2) if u.get("engine_calls") else None,
               calls_per_solve=round(u.get("engine_calls", 0) / max(1, len(recs)), 2),
               cpu_s=cpu.since(), machine_cpu=mcpu.since(), loop=lag.summary(t_mono), gc_main=gcw.summary(),
               controller_sequences=watch.summary(), stalls=stall.stalls,
               answer_work={k: v - work0[k] if k != "workers" else v for k, v in solver.answer_work.stats().items()})
    w0, w1 = window
    if w0 is not None:  # the SGLang engines: what the window held in this job
        row["submit_window"] = {**{k: w1[k] for k in ("window_ms", "busy")},
                                **{k: w1[k] - w0[k] for k in ("held", "windows")}}
    tot = [r["timings"].get("total_s", 0.0) for r in recs]
    eng_s = [r["timings"].get("engine_s", 0.0) for r in recs]
    row["solve_s"] = _stats(tot, 2)
    row["solve_outside_engine_s"] = _stats([t - e for t, e in zip(tot, eng_s)], 3)
    if sampler is not None:
        row["main_thread_samples"] = sampler.summary(wall)
    if prof is not None:
        row["profile_top_cumulative"] = _profile_top(prof)
    if trace_dir is not None:
        row["sglang_trace"] = trace_result(trace_dir, traced[0] if traced else None)
    return row


def setting_ab(a, st: Setup, problems, jobs: list[str], conc: int | None, base) -> dict:
    """``--ab-workers N1,N2`` and ``--ab-gc``: each job under both settings, alternating, on a
    flushed cache (benchmarks/ab_rounds.py). The answer workers: a Solver per pool size, pools
    started before the clock; the garbage collector: this process's frozen (``gc.freeze``, as
    ``SGLangEngine(freeze_gc=True)`` leaves it) or not (``gc.unfreeze``)."""
    import gc

    from ab_rounds import run_rounds
    from srca import Solver

    out: dict[str, Any] = {}
    cur: dict[str, Any] = {"solver": st.solver}

    def phases() -> dict:
        def job(m: str):
            def go():
                row = run_job(a, st, problems, m, conc, base, solver=cur["solver"])
                return {**row, "samples": row["problems"] * a.samples}
            return go
        return {f"{m}@{a.samples}": job(m) for m in jobs}

    if a.ab_workers:
        solvers = {n: Solver(engine=st.eng, answer_workers=n) for n in a.ab_workers}

        async def warm(sv):
            if sv.answer_work.workers:
                await asyncio.gather(*(sv.answer_work.run(os.getpid) for _ in range(sv.answer_work.workers)))

        for sv in solvers.values():
            asyncio.run(warm(sv))

        def workers(n: int):
            def put():
                cur["solver"] = solvers[n]
                st.flush()
            return put

        try:
            out["ab_workers"] = run_rounds(phases(), {f"workers={n}": workers(n) for n in a.ab_workers},
                                           a.ab_rounds, label="answer workers A/B")
        finally:
            cur["solver"] = st.solver
            for sv in solvers.values():
                sv.answer_work.close()
    if a.ab_gc:
        frozen_before = gc.get_freeze_count() > 0

        def frozen(on: bool):
            def put():
                gc.freeze() if on else gc.unfreeze()
                st.flush()
            return put

        try:
            out["ab_gc"] = run_rounds(phases(), {"gc=frozen": frozen(True), "gc=unfrozen": frozen(False)},
                                      a.ab_rounds, label="GC A/B")
        finally:
            gc.freeze() if frozen_before else gc.unfreeze()
    return out


def complete_job(a, st: Setup, problems, job: str, row: dict, base) -> dict:
    """The job's result lines completed to every problem of ``--complete-limit`` (the timed
    phase solved the first ``--limit``): the same ``arun_eval`` as ``srca eval``, resumed on the
    same file, so it ends holding one line per problem for the accuracy report. Timed apart."""
    from srca.eval import arun_eval

    method, mode = split_job(job)
    st.flush()
    t = time.monotonic()
    with JobSetting(st.eng, mode, st.solver):
        recs = asyncio.run(arun_eval(problems, [method], [a.samples], st.solver, row["records"], base=base, seed=0,
                                     concurrency=a.complete_concurrency, resume=True, progress=False))
    wall = time.monotonic() - t
    new = [r for r in recs if r["unique_id"] not in {p.unique_id for p in problems[: a.limit]}]
    gen = sum(r["usage"]["generated_tokens"] for r in new)
    out = {"job": row["job"], "records": row["records"], "problems": len(recs), "new_problems": len(new),
           "concurrency": a.complete_concurrency, "wall_s": round(wall, 2), "generated_tokens": gen,
           "gen_tok_s": round(gen / wall, 1) if wall > 0 else None,
           "accuracy": round(sum(r["correct"] for r in recs) / max(1, len(recs)), 4),
           "mean_generated_tokens": round(sum(r["usage"]["generated_tokens"] for r in recs) / max(1, len(recs)), 1)}
    print(f"# completed {row['job']} to {len(recs)} problems: {out['new_problems']} more in {out['wall_s']} s, "
          f"{out['gen_tok_s']} tok/s; accuracy {out['accuracy']}", flush=True)
    return out


def top_function(row: dict) -> str:
    top = (row.get("profile_top_cumulative") or
           (row.get("main_thread_samples") or {}).get("top_cumulative") or [])
    if not top:
        return "(idle)" if row.get("main_thread_samples") else "-"
    f = top[0]
    name = f["function"].rsplit("/", 1)[-1]
    share = f["cumtime_s"] / row["wall_s"] if "cumtime_s" in f else f["share_of_wall"]
    return f"{name} {100 * share:.0f}%"


# -- CPU-side bound: clustering and grading stored pools -------------------------------------------

def answer_pools(a) -> dict:
    """Per problem: the pool a majority solve clusters (each stored answer group repeated by its
    path count, in a shuffled arrival order), ``canonical`` per candidate (``add_candidate``),
    ``cluster`` (``decide``), then the grading ``make_record`` does (each group against the gold,
    each candidate, the winner). Caches cleared once before the cold pass, as in a fresh process."""
    t = time.perf_counter()
    import math_verify  # noqa: F401

    from srca.answers import canonical, clear_caches, cluster
    from srca.eval import read_records
    from srca.eval.grading import grade

    import_s = time.perf_counter() - t
    files = []
    for path in a.answer_pools:
        recs = read_records(path)[: a.pools_limit]
        rng = random.Random(0)
        pools = []
        for r in recs:
            pool = [g["answer"] for g in r["answers"] for _ in range(g["paths"] + g["checkpoints"])]
            rng.shuffle(pool)
            pools.append((pool, r["gold"], r["answer"], r["unique_id"], len(r["answers"])))
        res: dict[str, Any] = {"file": os.path.relpath(path, ROOT), "problems": len(pools),
                               "mean_pool": round(statistics.fmean(len(p[0]) for p in pools), 1),
                               "mean_groups": round(statistics.fmean(len(r["answers"]) for r in recs), 2)}
        clear_caches()
        # second pass: the caches as the first pass left them (LRU, 65,536 entries each)
        for name in ("cold", "second_pass"):
            cl, gr = [], []
            for pool, gold, ans, _, _ in pools:
                t0 = time.perf_counter()
                [canonical(x) for x in pool]
                labels = cluster(pool)
                t1 = time.perf_counter()
                reps = {}
                for x, g in zip(pool, labels):
                    reps.setdefault(g, x)
                [grade(x, gold) for x in reps.values()]
                [grade(x, gold) for x in pool]
                grade(ans, gold)
                gr.append(time.perf_counter() - t1)
                cl.append(t1 - t0)
            ms = lambda xs: {k: (round(1000 * v, 2) if k != "n" else v) for k, v in _stats(xs, 6).items()}  # noqa: E731
            tot = [x + y for x, y in zip(cl, gr)]
            slow = sorted(range(len(pools)), key=lambda i: -tot[i])[:5]
            res[name] = {"cluster_ms": ms(cl), "grade_ms": ms(gr), "total_s": round(sum(tot), 3),
                         "per_200_problems_s": round(200 * sum(tot) / max(1, len(pools)), 3),
                         "share_over_100ms": round(sum(x > 0.1 for x in tot) / max(1, len(tot)), 4),
                         "slowest": [{"unique_id": pools[i][3], "groups": pools[i][4], "pool": len(pools[i][0]),
                                      "s": round(tot[i], 3)} for i in slow]}
        files.append(res)
    clear_caches()  # the engine jobs that follow start cold, as in a fresh process
    return {"math_verify_import_s": round(import_s, 2), "files": files}


# -- main ------------------------------------------------------------------------------------------

def _default_data() -> str | None:
    for p in (os.path.join(ROOT, ".gpu-data", "math500.jsonl"),
              os.path.join(os.environ.get("SRCA_DATA_DIR", ""), "math500.jsonl"),
              os.path.join(ROOT, "..", "shared", "data", "math500.jsonl")):
        if os.path.isfile(p):
            return p
    return None


def majority_reference(jobs: list[dict]) -> None:
    """Each job's wall and tokens against the majority vote's at the same concurrency in the
    same run (``x_majority_wall``, ``x_majority_tokens``; the first majority job of that
    concurrency). A host whose raw phase alone swings 1.6x between neighbours (the tenth run)
    moves every ratio to it; jobs run one after another under the same conditions compare
    more steadily with each other, and majority voting is the search srca must beat."""
    refs: dict = {}
    for r in jobs:
        if r.get("method") == "majority":
            refs.setdefault(r.get("effective_concurrency"), r)
    for r in jobs:
        ref = refs.get(r.get("effective_concurrency"))
        if ref is None or not ref.get("wall_s") or not ref.get("generated_tokens"):
            continue
        r["x_majority_wall"] = round(r["wall_s"] / ref["wall_s"], 3)
        r["x_majority_tokens"] = round(r["generated_tokens"] / ref["generated_tokens"], 3)


def raw_reference(row: dict, before: dict | None, after: dict | None) -> dict:
    """A job's ratios to the raw engine: against the mean of the raw phase run just before it
    and the one run just after it (the default), else (``--no-raw-bracket``) the one before.
    Why both: on one H200 the same phase ran up to 1.14x slower later in a run than first
    (raw 25.6 s first, 29.1 s after two jobs, the fifth run; majority@16 27.6 s then 29.8 s, the
    sixth run's check), so a job compared with a raw phase run minutes earlier carries that
    drift; the bracket measures it (``raw_ref.drift``: after / before)."""
    rows = [r for r in (before, after) if r and r.get("wall_s")]
    if not rows:
        return {}
    wall = sum(r["wall_s"] for r in rows) / len(rows)
    tok = sum(r["gen_tok_s"] for r in rows) / len(rows)
    ref = {"walls_s": [r["wall_s"] for r in rows], "wall_s": round(wall, 3), "gen_tok_s": round(tok, 1),
           "drift": round(rows[-1]["wall_s"] / rows[0]["wall_s"], 3)}
    out = {"raw_ref": ref, "x_raw_wall": round(row["wall_s"] / wall, 3),
           "x_raw_tok_s": round(row["gen_tok_s"] / tok, 3) if tok and row.get("gen_tok_s") else None}
    unused = (row.get("usage") or {}).get("unused_tokens") or 0
    if unused and tok and row.get("wall_s"):  # waves started early and aborted: their tokens did no work
        out["x_raw_tok_s_used"] = round((row["generated_tokens"] - unused) / row["wall_s"] / tok, 3)
    return out


def print_table(res: dict) -> None:
    raw = res.get("raw") or {}
    print(f"\nraw: {raw.get('how')}: {raw.get('requests')} samples in {raw.get('wall_s')} s, "
          f"{raw.get('generated_tokens')} tokens, {raw.get('gen_tok_s')} tok/s, cache {100 * raw.get('cache_hit_rate', 0):.1f}%")
    walls = [r["wall_s"] for r in res.get("raws") or []]
    if len(walls) > 1:
        print(f"raw phases, in run order: {walls} s (each job's ratios: the raw before and after it)")
    hdr = ["job", "conc", "wall s", "gen tok/s", "x raw wall", "x raw tok/s", "x majority wall", "x majority tokens",
           "cache %", "loop blocked s", "top CPU function"]
    lines = [hdr]
    for r in res["jobs"]:
        xw, xt = r.get("x_raw_wall"), r.get("x_raw_tok_s")
        mw, mt = r.get("x_majority_wall"), r.get("x_majority_tokens")
        lines.append([r["job"], str(r["effective_concurrency"]), f"{r['wall_s']:.1f}", f"{r['gen_tok_s'] or 0:.0f}",
                      f"{xw:.2f}" if xw else "-", f"{xt:.2f}" if xt else "-", f"{mw:.2f}" if mw else "-",
                      f"{mt:.2f}" if mt else "-", f"{100 * r['cache_hit_rate']:.1f}",
                      f"{r['loop']['blocked_s']:.1f}", top_function(r)])
    w = [max(len(x[i]) for x in lines) for i in range(len(hdr))]
    for x in lines:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(x)))
    hdr2 = ["job", "conc", "main CPU s", "engine-loop CPU s", "child CPU s", "main busy %", "calls/solve", "reqs/call",
            "running (mean/max)", "queue max", "KV use (mean/max)", "retracted"]
    lines = [hdr2]
    for r in res["jobs"]:
        c, s = r["cpu_s"], r.get("sglang_log") or {}
        run, use, q = s.get("running_req", {}), s.get("token_usage", {}), s.get("queue_req", {})
        ms = r.get("main_thread_samples")
        lines.append([r["job"], str(r["effective_concurrency"]), str(c["main_thread"]), str(c["engine_loop_thread"]),
                      str(c["child_processes"]), f"{100 * ms['busy_share']:.0f}" if ms else "-", str(r["calls_per_solve"]),
                      str(r["requests_per_call"]), f"{run.get('mean', '-')}/{run.get('max', '-')}", str(q.get("max", "-")),
                      f"{use.get('mean', '-')}/{use.get('max', '-')}", str(s.get("retracted_reqs", "-"))])
    w = [max(len(x[i]) for x in lines) for i in range(len(hdr2))]
    print()
    for x in lines:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(x)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", default="sglang", choices=["sglang", "local"], help="local: a CPU dry run")
    ap.add_argument("--server", action="store_true", help="one sglang.launch_server + SGLangServerEngine")
    ap.add_argument("--server-reserve-gib", type=float, default=None, metavar="GIB",
                    help="--server-replicas above 1: the memory each keeps beside its static share (srca's "
                         "default 11.5; ServerLaunch.reserve_gib)")
    ap.add_argument("--server-mps", action=argparse.BooleanOptionalAction, default=None,
                    help="--server: the replicas run under a CUDA MPS daemon of their own (ServerLaunch.mps): "
                         "their kernels at once on the shared GPU instead of in turns (default: srca's, on for "
                         "two or more replicas where the daemon starts; --no-server-mps: off)")
    ap.add_argument("--server-replicas", type=int, default=1, metavar="K",
                    help="--server: K sglang.launch_server processes on this GPU (equal shares of --mem, balanced as "
                         "srca sglang-servers does), one "
                         "SGLangServerEngine over them: K schedulers for a scheduler-bound search (SGLang's "
                         "log and decode figures then mix the replicas' lines; its loads are listed per replica)")
    ap.add_argument("--model", default=None, help="default /tmp/q15hf (sglang), smollm2-135m (local)")
    ap.add_argument("--data", default=None, help="MATH-500 JSONL (default .gpu-data/math500.jsonl or ../shared/data)")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--samples", type=int, default=16, help="n of every job and samples per prompt in the raw phase")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--prompt", default="qwen")
    ap.add_argument("--jobs", default=DEFAULT_JOBS, help="methods (or variants) in priority order")
    ap.add_argument("--concurrency", default="256", help="comma list, e.g. 64,256,1024 (capped at the problem count); "
                    "auto: solves admitted while the sequences in flight leave room for the next one's width in the "
                    "engine's batch (srca.admission)")
    ap.add_argument("--budget-s", type=float, default=900.0, help="start no new job after this many s of jobs (0: no limit)")
    ap.add_argument("--no-raw", action="store_true")
    ap.add_argument("--no-raw-bracket", dest="raw_bracket", action="store_false",
                    help="run the raw phase once, first (default: again after every job, and each job's ratios "
                         "are to the mean of the raw phases just before and after it)")
    ap.add_argument("--mem", type=float, default=None,
                    help=f"SGLang's static memory fraction (default {IN_PROCESS_MEM}; with --server-replicas above 1, the "
                         "share of the GPU all replicas take together, srca's default for that many)")
    ap.add_argument("--sampler", default="flashinfer", help="SGLang sampling backend (srca: srca's kernel, "
                    "srca/engines/sglang_sampler.py)")
    ap.add_argument("--sampler-ab", type=int, default=0, metavar="ROUNDS",
                    help="with --sampler srca: after the raw phase, ROUNDS rounds of raw and --sampler-ab-jobs under "
                         "FlashInfer and the kernel on the same engine (benchmarks/sampler_ab.py; 0: off)")
    ap.add_argument("--sampler-ab-jobs", default="majority", help="jobs timed in the A/B (comma list; '' for raw only)")
    ap.add_argument("--sampler-ab-then", default="srca", choices=["srca", "flashinfer"],
                    help="the sampler of the jobs after the A/B")
    ap.add_argument("--ab-workers", default=None, metavar="N1,N2",
                    help="after the jobs: --ab-jobs with N1 and N2 answer workers, --ab-rounds rounds each, "
                         "alternating (benchmarks/ab_rounds.py)")
    ap.add_argument("--ab-gc", action="store_true",
                    help="after the jobs: --ab-jobs with this process's garbage collector frozen and not")
    ap.add_argument("--ab-jobs", default="majority", help="the jobs of --ab-workers and --ab-gc (comma list)")
    ap.add_argument("--ab-rounds", type=int, default=2)
    ap.add_argument("--freeze-gc", default="on", choices=["on", "off", "ab"],
                    help="SGLang's freeze_gc once the engine is up (on: as SGLangEngine does; a server gets "
                         "POST /freeze_gc), never (off), or ab: raw and --ab-jobs first without it, then frozen")
    ap.add_argument("--no-gc-log", dest="gc_log", action="store_false",
                    help="don't log SGLang's processes' long garbage collections (SRCA_GC_LOG, srca's plugin)")
    ap.add_argument("--decode-graph-max-bs", default="engine",
                    help="decode CUDA graphs up to this running batch: 'engine' (SGLangEngine's default, "
                         "srca/engines/sglang_graphs.py), an int, or 'sglang' (SGLang's own default)")
    ap.add_argument("--disable-cuda-graph", action="store_true")
    ap.add_argument("--prefill-graph", default="engine",
                    choices=["engine", "sglang", "full", "breakable", "tc_piecewise", "disabled"],
                    help="SGLang's prefill CUDA graph backend: 'engine' (SGLangEngine's default, disabled), "
                         "'sglang' (SGLang's own default: 58 token counts captured at start), or a backend")
    ap.add_argument("--max-running-requests", type=int, default=None,
                    help="SGLang's cap on requests decoding at once (default: SGLang's; with the decode-graph "
                         "ceiling of 4,096 it held 4,096 on an H200 while 3,900 waited at 34%% KV use)")
    ap.add_argument("--sglang-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="one more SGLang server argument for the engine (repeatable; VALUE read as JSON, else "
                         "a string), e.g. enable_mixed_chunk=true: a keyword of the in-process engine, a "
                         "flag of the server (true: the bare flag)")
    ap.add_argument("--sglang-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for SGLang's processes, set in this one before the engine or "
                         "the servers start (repeatable), e.g. SGLANG_EXPERIMENTAL_CPP_RADIX_TREE=1: SGLang's "
                         "C++ radix tree, compiled on the first start, for DVTS's per-request radix work")
    ap.add_argument("--submit-window-ms", type=float, default=None,
                    help="SGLangEngine / SGLangServerEngine(submit_window_ms=...): tree-search steps close together "
                         "go together (srca.engines.sglang_common.SubmitGate; 0: off; default: the engine's)")
    ap.add_argument("--decode-log-interval", type=int, default=40)
    ap.add_argument("--poll-s", type=float, default=1.0, help="SGLang load snapshot period")
    ap.add_argument("--gpu-poll-ms", type=int, default=500,
                    help="GPU clocks, power, temperature every this many ms per phase (nvidia-smi; 0: off)")
    ap.add_argument("--stall-s", type=float, default=300.0,
                    help="print what the controller holds when a job writes no result line this long (default 300)")
    ap.add_argument("--sglang-gc-threshold", default="engine", metavar="engine|off|G0,G1,G2",
                    help="the garbage collector's thresholds in SGLang's processes: engine (default): SGLangEngine's "
                         "default (srca.engines.gc_probe.DEFAULT_THRESHOLD; in process this one's too, through "
                         "SGLang's gc_threshold; the servers' through srca's plugin, SRCA_SGLANG_GC_THRESHOLD); off: "
                         "Python's everywhere; G0,G1,G2: these, in SGLang's processes only, not in this one")
    ap.add_argument("--sglang-stacks", type=float, default=0.0, metavar="HZ",
                    help="sample SGLang's processes' Python stacks HZ times a second (srca's plugin, "
                         "srca.engines.stack_probe); each phase records where their threads were (0: off)")
    ap.add_argument("--sglang-trace", type=int, default=0, metavar="STEPS",
                    help="SGLang's torch profiler (CPU and GPU activity) over STEPS forward steps, "
                         "--sglang-trace-after seconds into each job (with --server: the first replica); the "
                         "job's row gets sglang_trace: the GPU's busy share and idle gaps, the scheduler's CUDA "
                         "waits (benchmarks/sglang_trace.py). The job's wall then includes the profiler's cost: "
                         "give it a run of its own (0: off)")
    ap.add_argument("--sglang-trace-after", type=float, default=10.0, metavar="S")
    ap.add_argument("--sample-hz", type=float, default=100.0, help="main-thread stack samples per s (0: off)")
    ap.add_argument("--profile", action="store_true", help="cProfile each job (replaces the sampler; slower)")
    ap.add_argument("--work-dir", default="/tmp/real_workload", help="result lines per job, SGLang's log")
    ap.add_argument("--tag", default=None, help="default h200 / h200_http / cpu_dryrun")
    ap.add_argument("--check", action="store_true", help="validate the arguments (jobs, settings, "
                    "--sglang-arg keys where SGLang is installed, the data) and exit: gpu_real.sh chain "
                    "checks every run's arguments this way before it starts the first")
    ap.add_argument("--out", default=None, help="default benchmarks/results/real_workload_<tag>.json")
    ap.add_argument("--answer-pools", nargs="+", default=None,
                    help="first, the CPU-side bound: cluster + grade the answer groups of stored result files "
                         "(their first --pools-limit lines)")
    ap.add_argument("--answer-pools-only", action="store_true", help="only that; no engine")
    ap.add_argument("--pools-limit", type=int, default=500, help="result lines per --answer-pools file")
    ap.add_argument("--complete-jobs", default="", help="methods whose result lines are completed to "
                    "--complete-limit problems right after their timed phase (an accuracy eval on more problems)")
    ap.add_argument("--complete-limit", type=int, default=0, help="problems of the completed result lines (e.g. 500)")
    ap.add_argument("--complete-concurrency", type=int, default=1024)
    ap.add_argument("--answer-workers", default="auto", type=lambda x: x if x == "auto" else int(x),
                    help="processes for the solves' decisions and grading (0: on the event loop; auto: half "
                         "the cores, at most 8, on 8 or more)")
    ap.add_argument("--sampler-profile", type=int, default=0, help="after the jobs: this many prompts x --samples, "
                    "128 tokens, under SGLang's torch profiler; the sampling kernels' share of GPU time (0: skip)")
    a = ap.parse_args()
    if not a.check:
        os.makedirs(a.work_dir, exist_ok=True)
    if a.server and a.engine != "sglang":
        ap.error("--server needs --engine sglang")
    if a.sglang_gc_threshold not in ("engine", "off"):
        from srca.engines.gc_probe import parse_threshold

        try:
            parse_threshold(a.sglang_gc_threshold)
        except ValueError as e:
            ap.error(f"--sglang-gc-threshold: {e}")
        if a.engine != "sglang":
            ap.error("--sglang-gc-threshold: only the SGLang engines have a scheduler (--engine sglang)")
    if not 0 <= a.sglang_trace <= 10000 or a.sglang_trace_after < 0:
        ap.error("--sglang-trace: forward steps in [0, 10000] (0: off), --sglang-trace-after >= 0 s")
    if a.sglang_trace and a.engine != "sglang":
        ap.error("--sglang-trace: only the SGLang engines have SGLang's profiler (--engine sglang)")
    if a.server_replicas < 1 or (a.server_replicas > 1 and not a.server):
        ap.error(f"--server-replicas: {a.server_replicas}: must be >= 1, and above 1 only with --server")
    if a.server_mps is not None and not a.server:
        ap.error("--server-mps: needs --server")
    if a.server_reserve_gib is not None and (a.server_replicas < 2 or not 0 <= a.server_reserve_gib < 1024):
        ap.error(f"--server-reserve-gib: {a.server_reserve_gib}: GiB in [0, 1024), with --server-replicas above 1")
    if a.submit_window_ms is not None and a.engine != "sglang":
        ap.error("--submit-window-ms: only the SGLang engines have it (--engine sglang)")
    a.model = a.model or ("/tmp/q15hf" if a.engine == "sglang" else "smollm2-135m")
    a.data = a.data or _default_data()
    if a.data is None:
        ap.error("--data: no MATH-500 JSONL found; pass its path")
    a.tag = a.tag or ("cpu_dryrun" if a.engine == "local" else "h200_http" if a.server else "h200")
    out_given = a.out
    a.out = a.out or os.path.join(HERE, "results", f"real_workload_{a.tag}.json")
    try:  # auto: srca.admission's rule (solves admitted by the sequences each decodes at once)
        concs = [concurrency(c) for c in a.concurrency.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--concurrency: {e}")
    jobs = [m.strip() for m in a.jobs.split(",") if m.strip()]
    ab_jobs = [m.strip() for m in a.sampler_ab_jobs.split(",") if m.strip()]
    set_jobs = [m.strip() for m in a.ab_jobs.split(",") if m.strip()]
    if a.ab_workers is not None:
        try:
            a.ab_workers = [int(x) for x in a.ab_workers.split(",")]
        except ValueError:
            a.ab_workers = []
        if len(a.ab_workers) != 2 or min(a.ab_workers) < 0:
            ap.error("--ab-workers: two integers >= 0, e.g. 4,8")
    if a.ab_rounds < 1:
        ap.error("--ab-rounds: an integer >= 1")
    if not a.stall_s > 0:
        ap.error("--stall-s: a number of seconds > 0")
    if not 0 <= a.sglang_stacks <= 1000:
        ap.error("--sglang-stacks: samples per second in [0, 1000] (0: off)")
    if a.sampler_ab and (a.sampler != "srca" or a.engine != "sglang" or a.server):
        ap.error("--sampler-ab needs --sampler srca and the in-process SGLang engine")
    try:
        a.sglang_args = sglang_args(a.sglang_arg)
        a.sglang_env = sglang_env(a.sglang_env)
    except ValueError as e:
        ap.error(str(e))
    if a.decode_graph_max_bs not in ("engine", "sglang"):
        try:
            a.decode_graph_max_bs = int(a.decode_graph_max_bs)
        except ValueError:
            ap.error("--decode-graph-max-bs: 'engine', 'sglang' or an int")

    from srca import prompts
    from srca.config import SearchConfig
    from srca.eval.data import load_problems

    try:
        check_jobs(jobs, a.samples, a.engine)
        check_sglang_keys(a.sglang_args)
    except ValueError as e:
        ap.error(str(e))
    pools = None
    if a.answer_pools:  # before any engine starts: this process's CPU is all its own
        pools = answer_pools(a)
        for f in pools["files"]:
            print(f"# answer pools {f['file']}: {f['problems']} problems, pool {f['mean_pool']}, groups "
                  f"{f['mean_groups']}; cold: cluster {f['cold']['cluster_ms']} ms, grade {f['cold']['grade_ms']} ms, "
                  f"{f['cold']['per_200_problems_s']} s per 200 problems; slowest {f['cold']['slowest'][:2]}", flush=True)
        if a.answer_pools_only:
            write_result(out_given or os.path.join(HERE, "results", "real_workload_answers.json"),
                         "real_workload --answer-pools", a, answer_pools=pools)
            return
    complete = [m.strip() for m in (a.complete_jobs or "").split(",") if m.strip()]
    all_problems = load_problems("math500", a.data, max(a.limit, a.complete_limit or 0))
    problems = all_problems[: a.limit]
    if a.check:
        print(f"# arguments ok: {len(problems)} problems, jobs {', '.join(jobs)}, concurrency "
              f"{a.concurrency}, engine {a.engine}{' --server' if a.server else ''}"
              f"{', sglang ' + str(a.sglang_args) if a.sglang_args else ''}"
              f"{', environment ' + str(a.sglang_env) if a.sglang_env else ''}", flush=True)
        return
    os.environ.update(a.sglang_env)  # before any SGLang process starts: they inherit it
    for c in concs:
        if c is not None and c > len(problems):
            print(f"# note: concurrency {c} > {len(problems)} problems: every solve is in flight at once "
                  f"(use --limit 500 for more)", flush=True)
    base = SearchConfig(prompt=a.prompt, seed=0, max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_p=a.top_p)

    switch = None
    if a.sampler_ab:
        from sampler_ab import SwitchFile

        switch = SwitchFile(os.path.join(a.work_dir, "sampler_switch"), "srca")
    st = Setup(a)
    warm_s = getattr(st.eng, "warmup_s", None)  # SGLangEngine's first sampled request, inside start_s
    res: dict[str, Any] = {"engine": st.kind, "model": a.model, "engine_start_s": st.start_s,
                           "engine_warmup_s": round(warm_s, 2) if warm_s is not None else None, "problems": len(problems),
                           "commit": _commit(), "python": sys.version.split()[0], "answer_pools": pools, "jobs": [],
                           "skipped": [], "completed": []}
    print(f"# engine {st.kind} ready in {st.start_s} s (its warm-up request {res['engine_warmup_s']} s); "
          f"{len(problems)} problems", flush=True)
    slog = SGLangLog(st.log_path)
    res["engine_start_log"] = slog.start_lines(st.t_start)
    write_result(a.out, "real_workload", a, **res)  # a run cut short still keeps the start's figures
    fetch = st.loads_fetch()
    poller = LoadPoller(fetch, a.poll_s) if fetch is not None else None
    gpoll = GpuPoller(a.gpu_poll_ms) if a.engine == "sglang" and a.gpu_poll_ms > 0 else None
    if gpoll is not None:
        gpoll.start()
    try:
        res["server_info"] = st.server_info()
        res["replicas"] = st.replicas_info()
        if res["replicas"]:
            print("# replicas (static fraction, KV pool tokens): " + ", ".join(
                f"{r['mem_fraction_static']} {r.get('max_total_num_tokens')}" for r in res["replicas"]), flush=True)
        # untimed warm-up: kernels JIT-compile on first use; the controller imports math-verify
        from srca import Solver
        from srca.engines.base import GenRequest

        ids = [st.eng.encode(st.eng.chat_prompt(prompts.messages(a.prompt, p.problem))) for p in problems]
        asyncio.run(st.eng.generate([GenRequest(input_ids=ids[0], max_new_tokens=8, n=2, temperature=0.7)]))
        Solver(engine=st.eng).solve(problems[0].problem, base.replace(method="majority", n=2, max_new_tokens=16))
        res["tail_rescore_check"] = tail_rescore_check(st, ids)
        if a.freeze_gc == "on" and not st.frozen:  # a server: as SGLangEngine(freeze_gc=True) does
            st.freeze_gc()
        if poller is not None:
            poller.start()

        def raw_phase() -> dict:
            st.flush()
            t0, mcpu = time.time(), MachineCPU()
            row = st.raw(ids)
            t1 = time.time()
            row.update(machine_cpu=mcpu.since(), sglang_log=slog.take(t0, t1), sglang_loads=poller.take(t0, t1) if poller else None,
                       sglang_gc=st.gc_take(t0, t1), sglang_stacks=st.stacks_take(t0, t1),
                       gpu=gpoll.take(t0, t1) if gpoll else None)
            print(f"# raw: {json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)})}"
                  f"{'' if st.frozen else ' (GC not frozen)'}", flush=True)
            print_machine(row)
            return row

        def job_phase(m: str, conc: int | None) -> dict:
            st.flush()
            row = run_job(a, st, problems, m, conc, base)
            row.update(sglang_log=slog.take(row["t_start"], row["t_end"]),
                       sglang_loads=poller.take(row["t_start"], row["t_end"]) if poller else None,
                       sglang_gc=st.gc_take(row["t_start"], row["t_end"]), gc_frozen=st.frozen,
                       sglang_stacks=st.stacks_take(row["t_start"], row["t_end"]),
                       gpu=gpoll.take(row["t_start"], row["t_end"]) if gpoll else None)
            print(f"# {row['job']} c{conc or 'auto'}{'' if st.frozen else ' (GC not frozen)'}: {row['wall_s']} s, "
                  f"{row['gen_tok_s']} tok/s, controller sequences in flight mean "
                  f"{row['controller_sequences'].get('mean', 0)} of {row['controller_sequences']['capacity']}, "
                  f"loop blocked {row['loop']['blocked_s']} s, main CPU "
                  f"{row['cpu_s']['main_thread']} s, full GCs here {row['gc_main']['gen2']['n']} "
                  f"({row['gc_main']['gen2']['total_s']} s), in SGLang {gc_line(row['sglang_gc'])}, "
                  f"top {top_function(row)}", flush=True)
            print_machine(row)
            return row

        if a.freeze_gc == "ab":  # the same phases before SGLang's freeze_gc, then the run as usual
            before = {"raw": raw_phase()} if not a.no_raw else {}
            for m in set_jobs:
                before[f"{m}@{a.samples}"] = job_phase(m, concs[0])
            res["freeze_gc_ab"] = {"unfrozen": before, "order": "unfrozen first (one round), then frozen"}
            write_result(a.out, "real_workload", a, **res)
            st.freeze_gc()
        if not a.no_raw:
            res["raw"] = raw_phase()
            res["raws"] = [res["raw"]]
            write_result(a.out, "real_workload", a, **res)
        if switch is not None:
            import sampler_ab

            def job_phase(m):
                def go():
                    row = run_job(a, st, problems, m, concs[0], base)
                    return {**row, "samples": row["problems"] * a.samples}
                return go

            phases = {"raw": lambda: {**(r := st.raw(ids)), "samples": r["requests"]}}
            phases.update({f"{m}@{a.samples}": job_phase(m) for m in ab_jobs})
            prof = (lambda: sampler_profile(a, st, ids)) if a.sampler_profile else None
            res["sampler_ab"] = sampler_ab.run(a, st, ids, switch, phases, prof)
            sampler_ab.print_table(res["sampler_ab"])
            write_result(a.out, "real_workload", a, **res)
        t_jobs = time.monotonic()
        for conc in concs:
            for m in jobs:
                if a.budget_s and time.monotonic() - t_jobs > a.budget_s:
                    res["skipped"].append(f"{m}@{a.samples} c{conc}")
                    print(f"# budget spent: not starting {m} at concurrency {conc}", flush=True)
                    continue
                row = job_phase(m, conc)
                before = res["raws"][-1] if res.get("raws") else None
                after = None
                if before is not None and a.raw_bracket:  # the raw phase again, right after the job
                    after = raw_phase()
                    res["raws"].append(after)
                row.update(raw_reference(row, before, after))
                if row.get("x_raw_wall") is not None:
                    print(f"#   x raw wall {row['x_raw_wall']}, x raw tok/s {row['x_raw_tok_s']} (raw before/after "
                          f"{row['raw_ref']['walls_s']})", flush=True)
                res["jobs"].append(row)
                if m in complete and conc == concs[0]:
                    res["completed"].append(complete_job(a, st, all_problems, m, row, base))
                write_result(a.out, "real_workload", a, **res)
        if a.ab_workers or a.ab_gc:
            res.update(setting_ab(a, st, problems, set_jobs, concs[0], base))
            write_result(a.out, "real_workload", a, **res)
        if a.sampler_profile and a.engine == "sglang" and not a.server and switch is None:
            try:
                res["sampler_profile"] = sampler_profile(a, st, ids)
            except Exception as e:  # the jobs' figures are written already
                res["sampler_profile"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"# sampler profile failed: {res['sampler_profile']['error']}", flush=True)
            write_result(a.out, "real_workload", a, **res)
    finally:
        if poller is not None:
            poller.stop()
        if gpoll is not None:
            gpoll.stop()
        st.close()
    majority_reference(res["jobs"])
    if a.engine == "local":
        print("# dry run: the raw phase used the local engine's generate (one batched call), not SGLang")
    print_table(res)
    if res.get("sampler_ab"):
        import sampler_ab

        sampler_ab.print_table(res["sampler_ab"])
    import ab_rounds

    for k in ("ab_workers", "ab_gc"):
        if res.get(k):
            ab_rounds.print_table(res[k], list(res[k]["order"][:2]), k)
    if res.get("freeze_gc_ab"):
        res["freeze_gc_ab"]["rows"] = freeze_gc_rows(res, concs[0])
        print_freeze_gc(res["freeze_gc_ab"]["rows"])
    write_result(a.out, "real_workload", a, **res)


def gc_line(per_proc: dict | None) -> str:
    """``n full (s), longest s`` over SGLang's processes (the GC probe), or ``-`` without it."""
    if per_proc is None:
        return "-"
    n = sum(p.get("gen2", {}).get("n", 0) for p in per_proc.values())
    tot = sum(p.get("gen2", {}).get("total_s", 0.0) for p in per_proc.values())
    mx = max((p.get("gen2", {}).get("max_s", 0.0) for p in per_proc.values()), default=0.0)
    return f"{n} full ({tot:.2f} s, longest {mx:.2f} s)"


def freeze_gc_rows(res: dict, conc: int | None) -> list[dict]:
    """``--freeze-gc ab``: each phase run before SGLang's ``freeze_gc`` against the same phase
    after it (the run's raw phase, its jobs at the first concurrency)."""
    after = {"raw": res.get("raw")}
    after.update({r["job"]: r for r in res.get("jobs", []) if r.get("concurrency") == conc})
    rows = []
    for name, b in res["freeze_gc_ab"]["unfrozen"].items():
        f = after.get(name)
        if not f:
            continue
        rows.append({"phase": name, "unfrozen_wall_s": b["wall_s"], "frozen_wall_s": f["wall_s"],
                     "frozen_vs_unfrozen_wall": round(f["wall_s"] / b["wall_s"], 3) if b["wall_s"] else None,
                     "sglang_gc_unfrozen": gc_line(b.get("sglang_gc")), "sglang_gc_frozen": gc_line(f.get("sglang_gc")),
                     "main_gen2_unfrozen": (b.get("gc_main") or {}).get("gen2"),
                     "main_gen2_frozen": (f.get("gc_main") or {}).get("gen2")})
    return rows


def print_freeze_gc(rows: list[dict]) -> None:
    print("\n| phase | wall s, GC not frozen | wall s, frozen | frozen / not | SGLang's full GCs, not frozen | frozen |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['phase']} | {r['unfrozen_wall_s']} | {r['frozen_wall_s']} | {r['frozen_vs_unfrozen_wall']} | "
              f"{r['sglang_gc_unfrozen']} | {r['sglang_gc_frozen']} |")


def _commit() -> str | None:
    """The checkout's commit; ``$SRCA_COMMIT`` where the checkout has no git (the GPU machine's
    copy of the working tree: pass it on the command line there)."""
    try:
        got = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        got = ""
    return got or os.environ.get("SRCA_COMMIT") or None


if __name__ == "__main__":
    main()
