"""Start ``sglang.launch_server`` replicas for the HTTP engine, as the engines this project starts
set SGLang up: one per GPU, or several on one GPU.

Several replicas on one GPU are several scheduler processes for it. Under DVTS, whose many short
step requests keep one scheduler's Python busy while the GPU idles (benchmarks/RUNS.md,
"Fifteenth run"), two servers on one H100 were 1.42x faster than one ("Sixteenth run") and, with
the garbage collector's thresholds raised in their processes, 1.80x (60.0 s against 108.2 s for
200 MATH-500 problems x 16, "Seventeenth run"); majority voting ran at the raw engine's speed.

:class:`ServerLaunch` is the plan (a dataclass that checks itself); :class:`ServerGroup` starts
it, one round at a time: a round starts the next replica of every GPU at once, and the next
round waits for it to answer ``/health``, since a replica sizes its KV pool by the GPU memory
free when it starts. So the replicas of a GPU get equal pools only if each later one is given a
larger ``--mem-fraction-static`` of the smaller memory left to it (:func:`balanced_fraction`, from
the GPU's free memory read before each start): with the same fraction for all, four servers on
one H100 got pools of 485,670, 305,847, 164,056 and 67,393 tokens and the last one was the
straggler (benchmarks/RUNS.md, "Twenty-fourth run"). Each replica also keeps memory beside its
static share for its CUDA graphs and what it allocates under load (``ServerLaunch.reserve_gib``,
11.5 GiB by default: four given 0.6 of an H100 ran out of memory in their first batch,
"Twenty-fifth run"); the default share leaves it, and a plan that does not is refused before
any replica starts (:func:`check_shared_fit`). Each server gets, as ``SGLangEngine``
passes them in process: the decode CUDA graphs (:mod:`.sglang_graphs`), no prefill graphs, and the collector's thresholds
(``SRCA_SGLANG_GC_THRESHOLD`` in its environment, which srca's SGLang plugin reads in each of
its processes; :mod:`.gc_probe`). Replicas listen on ports under the kernel's ephemeral range
(:func:`free_port`), and one whose port was taken anyway starts again on another. Where
replicas share a GPU they are, by default, clients of a CUDA MPS daemon of their own
(:class:`MpsDaemon`, ``ServerLaunch.mps``), so they run their kernels at once instead of taking
turns.
``srca sglang-servers`` is the command line.
Nothing here imports SGLang; :meth:`ServerLaunch.graph_flags` reads its argument names.
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import inspect
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import IO, Any, Callable, Sequence

from . import gc_probe
from .sglang_http import SGLangServerEngine
from .sglang_graphs import (AUTO, PREFILL_GRAPH, cli_flags, decode_graph_args, prefill_graph_args, resolve_max_bs,
                            resolve_prefill_graph, server_arg_fields)

log = logging.getLogger(__name__)

GIB = 1 << 30
# what each replica of a shared GPU needs beside its static memory (weights and KV pool), measured
# on an H100 under the real workload (benchmarks/RUNS.md, "Twenty-fifth run"): about 6.2 GiB once
# it is up and idle (its CUDA graphs 1.5 GiB, the CUDA context, SGLang's IPC reserve and
# workspaces), then up to 4.1 GiB more under load (the sampler's logits and the activations).
# Four replicas given 0.6 of the GPU's memory for their static shares together (0.15 each) left
# 7 GiB for the four to grow into, and one ran out of memory in its first batch.
REPLICA_OVERHEAD_BYTES = int(6.5 * GIB)
REPLICA_GROWTH_BYTES = 5 * GIB
REPLICA_RESERVE_BYTES = REPLICA_OVERHEAD_BYTES + REPLICA_GROWTH_BYTES
# the free memory assumed for a plan made before any GPU is read (an 80 GB H100's, as nvidia-smi
# shows it), and the most of it that the replicas' static shares take together
NOMINAL_FREE_BYTES = 79 * GIB
SHARED_GPU_MEM = 0.85


def shared_gpu_mem(share: int, free: int | None = None, reserve: int = REPLICA_RESERVE_BYTES) -> float:
    """The default static fraction of a GPU shared by ``share`` replicas, for all of them together,
    of the ``free`` bytes free before the first starts (None: :data:`NOMINAL_FREE_BYTES`): what
    leaves each replica ``reserve`` bytes beside its static share (at the default
    :data:`REPLICA_RESERVE_BYTES`, 0.42 for four on an H100, 0.67 on an H200), at most
    :data:`SHARED_GPU_MEM`."""
    free = NOMINAL_FREE_BYTES if free is None else free
    return _floor4(max(0.05, min(SHARED_GPU_MEM, 1.0 - share * reserve / max(free, 1))))


def _floor4(x: float) -> float:
    """``x`` to four decimals, rounded down (a share rounded up could leave less than the reserve)."""
    return math.floor(x * 1e4 + 1e-9) / 1e4


def check_shared_fit(share_fraction: float, replicas: int, free: int, reserve: int = REPLICA_RESERVE_BYTES) -> None:
    """``RuntimeError`` (saying what to lower) unless ``replicas`` servers, each with
    ``share_fraction`` of the ``free`` bytes as static memory, leave each of them ``reserve``
    bytes beside it: checked before a shared GPU's first replica starts, since one that runs out
    of memory under load takes its requests with it."""
    static = share_fraction * free
    need = replicas * (static + reserve)
    if need > free:
        most = shared_gpu_mem(replicas, free, reserve)
        raise RuntimeError(
            f"{replicas} SGLang servers on one GPU with {free / GIB:.1f} GiB free need {need / GIB:.1f} GiB: each "
            f"its static {static / GIB:.1f} GiB and {reserve / GIB:.1f} GiB beside it (CUDA graphs, "
            f"activations); lower mem_fraction to {most:g} or less, the replicas per GPU, or the reserve")


# a later replica of a shared GPU is refused (before it starts) when the memory left beside its
# static share would be less than this, or its fraction more than MAX_FRACTION (the plan was
# checked whole before the first started: this catches memory taken by others since)
MIN_HEADROOM_BYTES = 4 * GIB
MAX_FRACTION = 0.95


def balanced_fraction(share_fraction: float, free_first: int, free_now: int) -> float:
    """The ``--mem-fraction-static`` that gives a later replica of a shared GPU the static memory
    of the first. SGLang 0.5.17 sizes a server's KV pool as the memory free after its weights
    load minus ``(1 - fraction)`` of the memory free before they did
    (``kv_cache_configurator._profile_available_bytes``), so a replica's static memory is its
    fraction of the memory free when it starts. The first took ``share_fraction`` of
    ``free_first`` bytes; this one starts with ``free_now``. ``RuntimeError`` (saying what to
    lower) when that does not fit."""
    static = share_fraction * free_first
    if free_now <= 0 or free_now - static < MIN_HEADROOM_BYTES or static / free_now > MAX_FRACTION:
        raise RuntimeError(
            f"a GPU shared by several SGLang servers has {free_now / GIB:.1f} GiB free for the next one, "
            f"which needs {static / GIB:.1f} GiB of static memory (as the first took) and "
            f"{MIN_HEADROOM_BYTES / GIB:.0f} GiB beside it: lower mem_fraction or the replicas per GPU")
    return round(static / free_now, 4)


def gpu_free_bytes(gpu: int) -> int | None:
    """The free memory of GPU ``gpu`` as ``--base-gpu-id`` counts them (through
    ``CUDA_VISIBLE_DEVICES`` when it is set), from ``nvidia-smi``; None when it cannot be read."""
    ident = str(gpu)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        if gpu >= len(visible):
            return None
        ident = visible[gpu]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", ident],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return int(float(out.strip().splitlines()[0])) << 20  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


#: the lowest port :func:`free_port` hands out
PORT_FLOOR = 10000
#: what a server's output says when its port was taken (uvicorn's and SGLang's wording)
PORT_TAKEN = ("address already in use", "port is already in use")
#: how many other ports a replica whose port was taken is started on (ports srca picked only)
PORT_RETRIES = 2


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The range the kernel picks ports from itself (outgoing connections, ``bind`` to port 0);
    Linux's default when ``path`` cannot be read."""
    try:
        with open(path) as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", avoid: Sequence[int] = (), rng: random.Random | None = None,
              ephemeral: tuple[int, int] | None = None) -> int:
    """A TCP port on ``host`` that is free now and not in ``avoid``: one under the kernel's
    ephemeral range (:func:`ephemeral_ports`, from :data:`PORT_FLOOR` up) where that leaves at
    least 1,000, else one the kernel picks. A port of the ephemeral range can be taken between
    this call and the server's ``bind`` by any outgoing connection or ``bind`` to port 0 on the
    machine, SGLang's own NCCL port and torch's store connections among them: four replicas
    started over three minutes lost the fourth's that way (benchmarks/RUNS.md, "Twenty-sixth
    run")."""
    lo, _ = ephemeral or ephemeral_ports()
    avoid = set(avoid)
    if lo - PORT_FLOOR >= 1000:
        rng = rng or random.SystemRandom()
        for _ in range(256):
            port = rng.randrange(PORT_FLOOR, lo)
            if port not in avoid and _bindable(host, port):
                return port
    for _ in range(256):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError(f"no free TCP port on {host}")


class PortTaken(RuntimeError):
    """A server could not listen: its port was taken after it was picked."""


def port_taken(path: str | None, tail: int = 65536) -> bool:
    """Whether the server output at ``path`` (None: not kept) says its port was taken
    (:data:`PORT_TAKEN`). SGLang's server process does not exit then: it waits for its scheduler."""
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - tail))
            text = f.read().decode("utf-8", "replace").lower()
    except OSError:
        return False
    return any(m in text for m in PORT_TAKEN)


def wait_healthy(proc: Any, url: str, deadline: float, limit_s: float, name: str,
                 on_fail: Callable[[], None], log_path: str | None = None) -> None:
    """Until ``url``'s ``GET /health`` answers 200: checked every second while ``proc`` (the
    server's ``subprocess.Popen``) runs. If it exits, or ``time.time()`` passes ``deadline``,
    ``on_fail()`` (stop the servers) and ``RuntimeError`` naming ``name`` or ``url``. If its output
    (``log_path``) says its port was taken, :class:`PortTaken` at once, ``on_fail`` not called
    (the caller may start it on another port)."""
    while True:
        if proc.poll() is not None:
            on_fail()
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if port_taken(log_path):
            raise PortTaken(f"{name} could not listen on {url}: its port is in use")
        if time.time() > deadline:
            on_fail()
            raise RuntimeError(f"{url} not healthy after {limit_s:g} s")
        time.sleep(1)


def check_sglang(env: dict[str, str] | None = None, python: str = sys.executable) -> None:
    """``ImportError`` unless ``python`` finds ``sglang.launch_server`` in ``env`` (the servers'
    environment): asked of that interpreter, as the servers will be started, before any is."""
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('sglang') is None)"
    if subprocess.run([python, "-c", probe], env=env, capture_output=True).returncode != 0:
        raise ImportError("sglang-servers needs the 'sglang' package (pip install 'srca[sglang]' on a CUDA machine)")


@dataclasses.dataclass(frozen=True)
class ServerLaunch:
    """Which servers to start.

    model: the model path (``--model-path``).
    replicas: servers in all, placed on ``gpus`` in turn (replica k on ``gpus[k % len(gpus)]``);
        None: one per GPU.
    gpus: GPU indices (``--base-gpu-id``); several replicas may share one.
    mem_fraction: the static memory (weights and KV pools) of all the replicas of a GPU together,
        as a fraction of its memory free before the first starts, split evenly (the first's
        ``--mem-fraction-static``; each later one's by :func:`balanced_fraction`); None: SGLang's
        own for a GPU with one replica, :func:`shared_gpu_mem` for a shared one.
    reserve_gib: the memory each replica of a shared GPU keeps beside its static share (CUDA
        graphs, activations; default 11.5, :data:`REPLICA_RESERVE_BYTES`): the default
        ``mem_fraction`` leaves it, and a plan that does not is refused before any replica starts.
    host, port: where they listen; replica k on ``port + k``, or on free ports when ``port`` is None.
    decode_graph_max_bs, prefill_graph: CUDA graphs as ``SGLangEngine`` takes them (None:
        SGLang's default).
    gc_threshold: the garbage collector's thresholds in every server process (None: Python's;
        a threshold already in this environment wins, as in ``SGLangEngine``).
    extra_args: more ``sglang.launch_server`` flags, after srca's (so they win).
    log_dir: each server's output in ``server.out``, ``server1.out``, ...; None: on this
        process's stderr.
    start_timeout_s: how long each round may take to answer ``/health``.
    mps: run the servers as clients of a CUDA MPS daemon of their own (:class:`MpsDaemon`), so
        the kernels of replicas that share a GPU run side by side instead of taking turns. None
        (the default): on where two or more replicas share a GPU and ``nvidia-cuda-mps-control``
        is on ``PATH``, and a daemon that will not start is logged and the servers start without
        it; True: always, and a daemon that will not start fails the start; False: never. Three
        replicas on one H100 ran the raw fan-out 1.22x and DVTS@16 1.30x faster under MPS than
        without (benchmarks/RUNS.md, "Twenty-seventh run").
    """

    model: str
    replicas: int | None = None
    gpus: tuple[int, ...] = (0,)
    mem_fraction: float | None = None
    reserve_gib: float = REPLICA_RESERVE_BYTES / GIB
    host: str = "127.0.0.1"
    port: int | None = None
    decode_graph_max_bs: int | str | None = AUTO
    prefill_graph: str | None = PREFILL_GRAPH
    gc_threshold: tuple[int, ...] | str | None = gc_probe.DEFAULT_THRESHOLD
    extra_args: tuple[str, ...] = ()
    log_dir: str | None = None
    start_timeout_s: float = 900.0
    mps: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"ServerLaunch.model: a model path, got {self.model!r}")
        if self.mps is not None and not isinstance(self.mps, bool):
            raise TypeError(f"ServerLaunch.mps: True, False or None (auto), got {self.mps!r}")
        gpus = tuple(self.gpus) if isinstance(self.gpus, (list, tuple)) else None
        if not gpus or any(type(g) is not int or g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
            raise ValueError(f"ServerLaunch.gpus: distinct GPU indices >= 0, got {self.gpus!r}")
        object.__setattr__(self, "gpus", gpus)
        if self.replicas is None:
            object.__setattr__(self, "replicas", len(gpus))
        if type(self.replicas) is not int or self.replicas < 1:
            raise ValueError(f"ServerLaunch.replicas: an integer >= 1 or None, got {self.replicas!r}")
        if self.mem_fraction is not None and not (isinstance(self.mem_fraction, (int, float))
                                                  and 0 < self.mem_fraction < 1):
            raise ValueError(f"ServerLaunch.mem_fraction: in (0, 1) or None, got {self.mem_fraction!r}")
        if (isinstance(self.reserve_gib, bool) or not isinstance(self.reserve_gib, (int, float))
                or not 0 <= self.reserve_gib < 1024):
            raise ValueError(f"ServerLaunch.reserve_gib: GiB in [0, 1024), got {self.reserve_gib!r}")
        if self.port is not None and (type(self.port) is not int or not 1 <= self.port <= 65535 - self.replicas):
            raise ValueError(f"ServerLaunch.port: 1 to {65535 - self.replicas} or None, got {self.port!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"ServerLaunch.host: a host name or address, got {self.host!r}")
        if self.decode_graph_max_bs != AUTO:
            try:
                resolve_max_bs(self.decode_graph_max_bs)
            except ValueError:
                raise ValueError(f"ServerLaunch.decode_graph_max_bs: 'auto', a positive int or None, "
                                 f"got {self.decode_graph_max_bs!r}") from None
        try:
            resolve_prefill_graph(self.prefill_graph)
        except ValueError as e:
            raise ValueError(f"ServerLaunch.prefill_graph: {e}") from None
        thresholds = gc_probe.check_threshold(self.gc_threshold, "ServerLaunch.gc_threshold")
        object.__setattr__(self, "gc_threshold", thresholds)
        if isinstance(self.extra_args, str) or not all(isinstance(x, str) for x in self.extra_args):
            raise TypeError(f"ServerLaunch.extra_args: a sequence of strings, got {self.extra_args!r}")
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        if not isinstance(self.start_timeout_s, (int, float)) or self.start_timeout_s <= 0:
            raise ValueError(f"ServerLaunch.start_timeout_s: seconds > 0, got {self.start_timeout_s!r}")

    def wants_mps(self) -> bool:
        """Whether the group asks for an MPS daemon: ``mps``, or where it is None, whether two or
        more replicas share a GPU."""
        if self.mps is not None:
            return self.mps
        return self.replicas > len(self.gpus)  # replica k runs on gpus[k % len(gpus)]

    def placements(self) -> list[tuple[int, float | None]]:
        """``(gpu, share)`` per replica, in start order: the share of the GPU's memory free before
        its first replica starts that each of its replicas takes as static memory (the first
        replica's ``--mem-fraction-static``), or None for SGLang's own choice. A plan: the
        default share assumes :data:`NOMINAL_FREE_BYTES` free, and :meth:`ServerGroup.start`
        recomputes it from the memory it reads."""
        gpus = [self.gpus[k % len(self.gpus)] for k in range(self.replicas)]
        out = []
        for g in gpus:
            share = gpus.count(g)
            total = (self.mem_fraction if self.mem_fraction is not None
                     else shared_gpu_mem(share, reserve=self.reserve_bytes) if share > 1 else None)
            out.append((g, None if total is None else _floor4(total / share)))
        return out

    @property
    def reserve_bytes(self) -> int:
        """``reserve_gib`` in bytes."""
        return int(self.reserve_gib * GIB)

    def shared(self, k: int) -> bool:
        """Whether replica ``k`` starts after another replica of its GPU (its fraction is then
        balanced at its start)."""
        gpus = [g for g, _ in self.placements()]
        return gpus[k] in gpus[:k]

    def rounds(self) -> list[list[int]]:
        """Replica indices started together: the first replica of every GPU, then the second..."""
        seen: dict[int, int] = {}
        out: list[list[int]] = []
        for k, (g, _) in enumerate(self.placements()):
            r = seen.get(g, 0)
            seen[g] = r + 1
            if r == len(out):
                out.append([])
            out[r].append(k)
        return out

    def graph_flags(self) -> list[str]:
        """The CUDA-graph flags ``SGLangEngine`` would pass (imports SGLang's ServerArgs, for the
        names the installed version takes; none when both settings keep SGLang's defaults)."""
        if self.decode_graph_max_bs is None and self.prefill_graph is None:
            return []
        fields = server_arg_fields()
        given = dict(_given(self.extra_args))
        return cli_flags({**decode_graph_args(resolve_max_bs(self.decode_graph_max_bs), fields, given),
                          **prefill_graph_args(self.prefill_graph, fields, given)})

    def commands(self, ports: Sequence[int], python: str = sys.executable,
                 fractions: dict[int, float] | None = None) -> list[list[str]]:
        """Each replica's command line, on ``ports``; ``fractions`` overrides replicas' static
        fractions (a later replica of a shared GPU: :func:`balanced_fraction`)."""
        graphs = self.graph_flags()
        out = []
        for k, ((gpu, mem), port) in enumerate(zip(self.placements(), ports)):
            mem = (fractions or {}).get(k, mem)
            cmd = [python, "-m", "sglang.launch_server", "--model-path", self.model, "--host", self.host,
                   "--port", str(port), "--base-gpu-id", str(gpu)]
            if mem is not None:
                cmd += ["--mem-fraction-static", str(mem)]
            out.append(cmd + graphs + list(self.extra_args))
        return out

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The servers' environment: ``base`` (this one's) with the collector's thresholds for
        srca's plugin, unless ``base`` names its own; without them when ``gc_threshold`` is None."""
        env = dict(os.environ if base is None else base)
        if self.gc_threshold is None:
            env.pop(gc_probe.THRESHOLD_ENV, None)
        else:
            gc_probe.export_threshold(self.gc_threshold, env)
        return env


def _given(args: Sequence[str]) -> dict[str, Any]:
    """``--flag value`` pairs of ``args`` as server-arg names, integers read as such (enough to
    see which graph options the caller set, and ``--max-running-requests``, which caps the decode
    graphs: a flag without a value counts as set)."""
    out: dict[str, Any] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            nxt = args[i + 1] if i + 1 < len(args) else None
            raw = value if eq else True if nxt is None or nxt.startswith("--") else nxt
            out[name.replace("-", "_")] = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
    return out


class MpsDaemon:
    """A CUDA MPS control daemon of this group's own (NVIDIA's Multi-Process Service): its pipe
    and log folders under ``root``, so only the processes given :meth:`env` are its clients. The
    GPUs' settings (compute mode) and the machine's other CUDA processes are left as they are; MPS
    runs in the default compute mode. Without it, processes that share a GPU take turns on it;
    with it, their kernels run at once (SGLang's issue #35648 and sglang-omni's same-GPU replicas
    use it for the same reason). ``binary``: the control program (on ``PATH``)."""

    BINARY = "nvidia-cuda-mps-control"

    def __init__(self, root: str, binary: str = BINARY) -> None:
        self.root, self.binary = root, binary
        self.started = False

    def env(self) -> dict[str, str]:
        """What a client's environment needs to reach this daemon."""
        return {"CUDA_MPS_PIPE_DIRECTORY": os.path.join(self.root, "pipe"),
                "CUDA_MPS_LOG_DIRECTORY": os.path.join(self.root, "log")}

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeError(f"mps: {self.binary} not found on PATH (NVIDIA's driver utilities); "
                               "start the servers without mps")
        return subprocess.run([path, *args], input=stdin, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **self.env()})

    def start(self) -> None:
        """Start the daemon (``-d``); ``RuntimeError`` saying why when it cannot."""
        for d in self.env().values():
            os.makedirs(d, exist_ok=True)
        try:
            done = self._run(["-d"])
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError(f"mps: {self.binary} -d failed: {e}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise RuntimeError(f"mps: {self.binary} -d exited with {done.returncode}"
                               + (f": {why[-1]}" if why else ""))
        self.started = True

    def stop(self) -> None:
        """Ask the daemon to quit (its MPS server goes with it); nothing when not started."""
        if not self.started:
            return
        self.started = False
        try:
            self._run([], stdin="quit\n")
        except (OSError, subprocess.SubprocessError, RuntimeError) as e:
            log.warning("mps: the daemon under %s did not quit: %s", self.root, e)


def _signal_group(proc: Any, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: Any, timeout_s: float) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL if it has not exited after ``timeout_s``."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


class ServerGroup:
    """The servers of one :class:`ServerLaunch`: :meth:`start` them (their URLs), :meth:`stop`
    them (each in its own session, so SGLang's scheduler processes go too); a context manager."""

    def __init__(self, launch: ServerLaunch, free_memory: Callable[[int], int | None] | None = None) -> None:
        self.launch = launch
        # a GPU's free bytes (None: unknown), read before each round; default gpu_free_bytes
        self.free_memory = free_memory or gpu_free_bytes
        self.fractions: dict[int, float | None] = {}  # each started replica's --mem-fraction-static
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self._logs: list[IO[Any]] = []
        self.mps: MpsDaemon | None = None
        self._mps_tmp: str | None = None

    def _start_mps(self, strict: bool) -> None:
        """The group's MPS daemon, its folders beside the servers' logs or in a temporary one
        removed at stop. ``strict`` (``mps=True``): a daemon that cannot start fails the start;
        otherwise (auto) it is logged and the servers start without one."""
        la = self.launch
        if not strict and shutil.which(MpsDaemon.BINARY) is None:
            log.info("mps: %s is not on PATH; replicas that share a GPU will take turns on it", MpsDaemon.BINARY)
            return
        if la.log_dir is None:
            self._mps_tmp = tempfile.mkdtemp(prefix="srca-mps-")
        self.mps = MpsDaemon(os.path.join(la.log_dir, "mps") if la.log_dir is not None else self._mps_tmp)
        try:
            self.mps.start()
        except RuntimeError as e:
            if strict:
                self.stop()
                raise
            log.warning("%s; the servers start without MPS (mps=True makes this an error)", e)
            self.mps = None
            if self._mps_tmp is not None:
                shutil.rmtree(self._mps_tmp, ignore_errors=True)
                self._mps_tmp = None

    def log_path(self, k: int) -> str | None:
        d = self.launch.log_dir
        return None if d is None else os.path.join(d, "server.out" if k == 0 else f"server{k}.out")

    def start(self, on_ready: Callable[[int, str], None] | None = None) -> list[str]:
        """Start every replica, round by round; the URLs. ``on_ready(k, url)`` as each answers.
        ``RuntimeError`` (the servers started so far stopped) when one exits or a round passes
        ``start_timeout_s``."""
        if self.procs:
            raise RuntimeError("ServerGroup.start: already started (a group starts once; make another)")
        la = self.launch
        ports: list[int] = []
        for k in range(la.replicas):
            ports.append(la.port + k if la.port is not None else free_port(la.host, avoid=ports))
        env = la.environment()
        if la.log_dir is not None:
            os.makedirs(la.log_dir, exist_ok=True)
        if la.wants_mps():
            self._start_mps(strict=la.mps is True)
        if self.mps is not None:
            env.update(self.mps.env())
        host = "127.0.0.1" if la.host in ("0.0.0.0", "::") else la.host
        urls = [f"http://{host}:{p}" for p in ports]
        atexit.register(self.stop)  # servers run in sessions of their own: never leave them behind
        plan = la.placements()
        first_free: dict[int, int | None] = {}
        shares = {g: s for g, s in plan}  # each GPU's share per replica, the default's from its free memory
        for rnd in la.rounds():
            fractions: dict[int, float] = {}
            for k in rnd:
                gpu, share = plan[k]
                if share is None:
                    continue
                try:
                    if gpu not in first_free:  # its GPU's first replica (la.shared(k) is False)
                        first_free[gpu] = free = self.free_memory(gpu)
                        n = sum(1 for g, _ in plan if g == gpu)
                        if free is not None and n > 1:
                            if la.mem_fraction is None:
                                shares[gpu] = fractions[k] = _floor4(shared_gpu_mem(n, free, la.reserve_bytes) / n)
                            check_shared_fit(shares[gpu], n, free, la.reserve_bytes)
                        continue
                    share = fractions[k] = shares[gpu]  # the first's, unless balanced below
                    now = self.free_memory(gpu) if first_free[gpu] is not None else None
                    if now is not None:
                        fractions[k] = balanced_fraction(share, first_free[gpu], now)
                    else:
                        log.warning("GPU %d's free memory could not be read (nvidia-smi): replica %d starts with "
                                    "the first's fraction, %s, and gets a smaller KV pool", gpu, k, share)
                except RuntimeError as e:
                    self.stop()
                    raise RuntimeError(f"sglang.launch_server replica {k} on GPU {gpu}: {e}") from None
            for k in rnd:
                self.fractions[k] = fractions.get(k, plan[k][1])
                self.procs.append(self._spawn(k, la.commands(ports, fractions=fractions)[k], env))
                self.urls.append(urls[k])
            deadline = time.time() + la.start_timeout_s
            for k in rnd:
                where = f" (see {self.log_path(k)})" if la.log_dir is not None else ""
                for attempt in range(PORT_RETRIES + 1):
                    try:
                        wait_healthy(self.procs[k], urls[k], deadline, la.start_timeout_s,
                                     f"sglang.launch_server replica {k}{where}", self.stop, self.log_path(k))
                        break
                    except PortTaken as e:
                        if la.port is not None or attempt == PORT_RETRIES:
                            self.stop()
                            raise RuntimeError(f"{e} (tried {attempt + 1} port(s); "
                                               + ("ServerLaunch.port fixes it" if la.port is not None
                                                  else "retried on other ports") + ")") from None
                        _kill_group(self.procs[k], 60.0)  # it waits for its scheduler: end them all
                        old = ports[k]
                        ports[k] = free_port(la.host, avoid=ports)
                        urls[k] = self.urls[k] = f"http://{host}:{ports[k]}"
                        log.warning("sglang.launch_server replica %d: port %d was taken, starting it again on %d",
                                    k, old, ports[k])
                        self.procs[k] = self._spawn(k, la.commands(ports, fractions=fractions)[k], env)
                if on_ready is not None:
                    on_ready(k, urls[k])
        return list(self.urls)

    def _spawn(self, k: int, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Replica ``k``'s server process, in a session of its own, its output in its log file
        (opened anew: a restart's log holds its own start only) or on this process's stderr."""
        path = self.log_path(k)
        out: Any = 2  # no log folder: the servers' output on this process's stderr (stdout stays ours)
        if path is not None:
            out = open(path, "w")
            self._logs.append(out)
        return subprocess.Popen(cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT, env=env)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM to each server's process group, SIGKILL to any still there after ``timeout_s``."""
        atexit.unregister(self.stop)
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            _kill_group(proc, timeout_s)
        if self.mps is not None:
            self.mps.stop()
        if self._mps_tmp is not None:
            shutil.rmtree(self._mps_tmp, ignore_errors=True)
            self._mps_tmp = None
        for f in self._logs:
            f.close()
        self._logs = []

    def __enter__(self) -> "ServerGroup":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()



class LaunchedServersEngine(SGLangServerEngine):
    """SGLangServerEngine over ``sglang.launch_server`` replicas it starts itself
    (:class:`ServerLaunch`, :class:`ServerGroup`) and stops on :meth:`close` (and at interpreter
    exit): ``make_engine("sglang-servers", model=M, replicas=2)``, or on the command line
    ``--engine sglang-servers --model M --engine-option replicas=2``.

    replicas: servers in all (None: one per GPU of ``gpus``); two on one GPU are two scheduler
        processes for it (DVTS@16 1.80x faster than one server on one H100, benchmarks/RUNS.md,
        "Seventeenth run").
    gpus, mem_fraction, reserve_gib, decode_graph_max_bs, prefill_graph, gc_threshold, log_dir, start_timeout_s,
    mps: as :class:`ServerLaunch`'s; server_args: more ``sglang.launch_server`` flags (a list).
    **options: :class:`~srca.engines.sglang_http.SGLangServerEngine`'s (``timeout_s``,
        ``stop_mode``, ``submit_window_ms``, ...), checked before any server starts.
    """

    def __init__(self, model: str, replicas: int | None = None, gpus: Sequence[int] = (0,),
                 mem_fraction: float | None = None, reserve_gib: float = REPLICA_RESERVE_BYTES / GIB,
                 decode_graph_max_bs: int | str | None = AUTO,
                 prefill_graph: str | None = PREFILL_GRAPH,
                 gc_threshold: Sequence[int] | str | None = gc_probe.DEFAULT_THRESHOLD,
                 server_args: Sequence[str] = (), log_dir: str | None = None, start_timeout_s: float = 900.0,
                 mps: bool | None = None, **options: Any) -> None:
        if isinstance(server_args, str):
            raise TypeError(f"LaunchedServersEngine.server_args: a list of flags, got {server_args!r}")
        try:
            launch = ServerLaunch(model=model, replicas=replicas, gpus=gpus, mem_fraction=mem_fraction,
                                  reserve_gib=reserve_gib, decode_graph_max_bs=decode_graph_max_bs,
                                  prefill_graph=prefill_graph, gc_threshold=gc_threshold,
                                  extra_args=tuple(server_args), log_dir=log_dir, start_timeout_s=start_timeout_s,
                                  mps=mps)
        except (ValueError, TypeError) as e:  # named as this engine's options
            raise type(e)(str(e).replace("ServerLaunch.", "LaunchedServersEngine.")) from None
        allowed = set(inspect.signature(SGLangServerEngine.__init__).parameters) - {"self", "url", "model"}
        unknown = sorted(set(options) - allowed)
        if unknown:  # before minutes of server starts
            raise TypeError(f"LaunchedServersEngine: unexpected option {unknown[0]!r}")
        check_sglang(launch.environment())
        self.servers = ServerGroup(launch)
        urls = self.servers.start()
        try:
            super().__init__(urls if len(urls) > 1 else urls[0], model=model, **options)
        except BaseException:
            self.servers.stop()
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self.servers.stop)
