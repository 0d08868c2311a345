"""srca.engines.sglang_launch and ``srca sglang-servers``: the plan (placements, start rounds,
command lines, environment) exactly, and the command end to end against stand-in servers (a
``sglang.launch_server`` module that answers ``/health`` and reports what it was given)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from srca.engines import gc_probe, sglang_launch
from srca.engines.sglang_launch import ServerGroup, ServerLaunch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SHIM = '''"""sglang.launch_server stood in for: /health answers 200; /args tells what it was given."""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

argv = sys.argv[1:]
port = int(argv[argv.index("--port") + 1])
if argv[argv.index("--model-path") + 1] == "crash":
    sys.exit(3)
print("started", os.getpid(), flush=True)


class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"argv": argv, "gc": os.environ.get("SRCA_SGLANG_GC_THRESHOLD"), "pid": os.getpid(),
                           "mps": os.environ.get("CUDA_MPS_PIPE_DIRECTORY")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


try:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
except OSError as e:  # as SGLang's server: uvicorn says so, and the process waits for its scheduler
    print(f"ERROR:    [Errno {e.errno}] error while attempting to bind on address ('127.0.0.1', {port}): "
          "address already in use", flush=True)
    import time
    while True:
        time.sleep(60)
httpd.serve_forever()
'''


@pytest.fixture()
def shim(tmp_path, monkeypatch):
    pkg = tmp_path / "shim" / "sglang"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "launch_server.py").write_text(_SHIM)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'shim'}:{ROOT}"}
    env.pop(gc_probe.THRESHOLD_ENV, None)
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.delenv(gc_probe.THRESHOLD_ENV, raising=False)
    return env


def _get(url: str) -> dict:
    with urllib.request.urlopen(url + "/args", timeout=5) as r:
        return json.loads(r.read())


def _gone(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=2)
    except OSError:
        return True
    return False


@pytest.mark.parametrize("field, value", [
    ("model", ""), ("replicas", 0), ("replicas", 1.5), ("gpus", ()), ("gpus", (0, 0)), ("gpus", (-1,)),
    ("mem_fraction", 0.0), ("mem_fraction", 1.0), ("port", 0), ("port", 65535), ("host", ""),
    ("decode_graph_max_bs", 0), ("decode_graph_max_bs", "big"), ("prefill_graph", "off"),
    ("gc_threshold", [0]), ("start_timeout_s", 0), ("reserve_gib", -1.0), ("reserve_gib", True), ("reserve_gib", "9")])
def test_a_bad_plan_is_refused_naming_its_field(field, value):
    kw = {"model": "/m", field: value}
    with pytest.raises(ValueError, match=f"ServerLaunch.{field}"):
        ServerLaunch(**kw)


def test_extra_args_must_be_strings():
    with pytest.raises(TypeError, match="ServerLaunch.extra_args"):
        ServerLaunch(model="/m", extra_args="--foo 1")
    with pytest.raises(TypeError, match="ServerLaunch.gc_threshold"):
        ServerLaunch(model="/m", gc_threshold=7)


def test_replicas_share_gpus_in_turn_and_start_a_round_per_gpu_slot():
    la = ServerLaunch(model="/m", replicas=5, gpus=(0, 1), decode_graph_max_bs=None, prefill_graph=None)
    # GPU 0 holds replicas 0, 2, 4 (0.5632 / 3 each, rounded down, of the memory free before the first, in a plan
    # made before any GPU is read: an 80 GB H100's 79 GiB), GPU 1 replicas 1, 3 (0.7088 / 2 each)
    assert la.placements() == [(0, 0.1877), (1, 0.3544), (0, 0.1877), (1, 0.3544), (0, 0.1877)]
    assert [la.shared(k) for k in range(5)] == [False, False, True, True, True]
    # each replica keeps 11.5 GiB beside its static share: 4 x 11.5 of an H100's 79 GiB leaves 0.42
    assert [sglang_launch.shared_gpu_mem(n) for n in (2, 3, 4, 5, 8)] == [0.7088, 0.5632, 0.4177, 0.2721, 0.05]
    assert [sglang_launch.shared_gpu_mem(n, 139 * GIB) for n in (1, 2, 4)] == [0.85, 0.8345, 0.669]  # an H200
    assert la.rounds() == [[0, 1], [2, 3], [4]]
    one = ServerLaunch(model="/m", replicas=2, gpus=(0, 1), mem_fraction=0.85, decode_graph_max_bs=None,
                       prefill_graph=None)
    assert one.placements() == [(0, 0.85), (1, 0.85)] and one.rounds() == [[0, 1]]
    solo = ServerLaunch(model="/m", decode_graph_max_bs=None, prefill_graph=None)
    assert solo.placements() == [(0, None)]  # one replica on its GPU: SGLang sizes its memory itself
    per_gpu = ServerLaunch(model="/m", gpus=[0, 1], decode_graph_max_bs=None, prefill_graph=None)
    assert per_gpu.replicas == 2 and per_gpu.placements() == [(0, None), (1, None)]  # default: one per GPU


def test_command_lines_carry_placement_graphs_and_extra_flags_last(monkeypatch):
    fields = {"cuda_graph_bs_decode", "cuda_graph_max_bs_decode", "cuda_graph_backend_prefill"}
    monkeypatch.setattr(sglang_launch, "server_arg_fields", lambda: fields)
    la = ServerLaunch(model="/m", replicas=2, port=30001, decode_graph_max_bs=16, extra_args=("--log-level", "info"))
    cmds = la.commands([30001, 30002], python="py")
    graphs = ["--cuda-graph-bs-decode", "1", "2", "4", "8", "12", "16", "--cuda-graph-max-bs-decode", "16",
              "--cuda-graph-backend-prefill", "disabled"]
    assert cmds == [["py", "-m", "sglang.launch_server", "--model-path", "/m", "--host", "127.0.0.1", "--port", str(p),
                     "--base-gpu-id", "0", "--mem-fraction-static", "0.3544", *graphs, "--log-level", "info"]
                    for p in (30001, 30002)]
    # the caller's own graph option wins: no decode graphs of ours beside it
    own = ServerLaunch(model="/m", decode_graph_max_bs=16, extra_args=("--cuda-graph-max-bs-decode", "128"))
    assert own.graph_flags() == ["--cuda-graph-backend-prefill", "disabled"]
    assert ServerLaunch(model="/m", decode_graph_max_bs=16, extra_args=("--disable-cuda-graph",)).graph_flags() == []
    capped = ServerLaunch(model="/m", decode_graph_max_bs=16, prefill_graph=None, extra_args=("--max-running-requests", "8"))
    assert capped.graph_flags() == ["--cuda-graph-bs-decode", "1", "2", "4", "8", "--cuda-graph-max-bs-decode", "8"]
    eq = ServerLaunch(model="/m", decode_graph_max_bs=16, extra_args=("--cuda-graph-backend-prefill=full",))
    assert eq.graph_flags()[-2:] == ["--cuda-graph-max-bs-decode", "16"]  # their prefill backend, our decode graphs


def test_the_servers_environment_names_the_thresholds_unless_the_user_did():
    la = ServerLaunch(model="/m")
    assert la.environment({"A": "1"}) == {"A": "1", gc_probe.THRESHOLD_ENV: "50000,20,100"}
    assert la.environment({gc_probe.THRESHOLD_ENV: "9000"}) == {gc_probe.THRESHOLD_ENV: "9000"}
    assert ServerLaunch(model="/m", gc_threshold="1000,5").environment({}) == {gc_probe.THRESHOLD_ENV: "1000,5"}
    off = ServerLaunch(model="/m", gc_threshold=None)
    assert off.environment({gc_probe.THRESHOLD_ENV: "9000", "A": "1"}) == {"A": "1"}


def test_a_group_starts_round_by_round_and_stops_every_server(shim, tmp_path):
    la = ServerLaunch(model="/m", replicas=3, gpus=(0, 1), decode_graph_max_bs=None, prefill_graph=None,
                      log_dir=str(tmp_path / "logs"), start_timeout_s=60)
    ready = []
    with ServerGroup(la) as group:
        assert len(group.urls) == 3  # __enter__ started them
    assert all(p.poll() is not None for p in group.procs)  # __exit__ stopped them
    # started and stopped: start them again to look at them while up
    group = ServerGroup(la)
    try:
        urls = group.start(on_ready=lambda k, url: ready.append(k))
        assert ready == [0, 1, 2] and len(set(urls)) == 3
        seen = [_get(u) for u in urls]
        gpus = [a["argv"][a["argv"].index("--base-gpu-id") + 1] for a in seen]
        mems = [a["argv"][a["argv"].index("--mem-fraction-static") + 1] if "--mem-fraction-static" in a["argv"]
                else None for a in seen]
        assert gpus == ["0", "1", "0"] and mems == ["0.3544", None, "0.3544"]  # GPU 1's one replica: SGLang's own
        assert all(a["gc"] == "50000,20,100" for a in seen)
        assert sorted(os.listdir(tmp_path / "logs")) == ["server.out", "server1.out", "server2.out"]
        with pytest.raises(RuntimeError, match="already started"):
            group.start()
    finally:
        group.stop()
    assert all(_gone(u) for u in urls) and all(p.poll() is not None for p in group.procs)


GIB = 1 << 30


class _SimGPU:
    """GPU memory as SGLang 0.5.17 takes it: a server started with fraction ``f`` while ``F``
    bytes are free keeps ``f * F`` as static memory (its weights, ``weights``, and its KV pool,
    the rest) and ``over`` beside it (CUDA graphs, activations). Figures of the twenty-fourth run's
    H100 (75.6 GiB free, the 1.5B model's 2.9 GiB, about 6.5 GiB beside)."""

    def __init__(self, free=75.6 * GIB, weights=2.9 * GIB, over=6.5 * GIB):
        self.total, self.weights, self.over = free, weights, over
        self.used: list[float] = []
        self.pools: list[float] = []
        self.reads = 0

    def free(self, gpu: int) -> int:
        self.reads += 1
        return int(self.total - sum(self.used))

    def start(self, fraction: float) -> None:
        free = self.total - sum(self.used)
        self.pools.append(fraction * free - self.weights)
        self.used.append(fraction * free + self.over)


KV_BYTES_PER_TOKEN = 28 * 2 * 2 * 128 * 2  # Qwen2.5-1.5B: 28 layers, K and V, 2 KV heads of 128, bf16


@pytest.mark.parametrize("run, fraction", [
    ("real_workload_h100_seventeenth_replicas2_gc.json.gz", 0.4),
    ("real_workload_h100_eighteenth.json.gz", 0.27),
    ("real_workload_h100_twentyfourth_servers4.json.gz", 0.21)])
def test_the_simulated_gpu_reproduces_the_pools_the_h100_runs_got(run, fraction):
    """The model behind the balanced fractions, checked against what SGLang did: the KV pools the
    stored two-, three- and four-server runs logged (``max_total_num_tokens`` of each replica, in
    start order, all at one fraction) against the simulated GPU's, within 10%."""
    import gzip
    import re

    with gzip.open(os.path.join(ROOT, "benchmarks", "results", run), "rt") as f:
        logged = [int(x) for x in re.findall(r"max_total_num_tokens=(\d+)", f.read())]
    logged = [x for x in logged if x != 2368832]  # the eighteenth run's in-process engines
    sim = _SimGPU()
    for _ in logged:
        sim.start(fraction)
    assert len(logged) in (2, 3, 4)
    for got, pool in zip(logged, sim.pools):
        assert abs(pool / KV_BYTES_PER_TOKEN / got - 1) < 0.10, (logged, [round(p / KV_BYTES_PER_TOKEN) for p in sim.pools])


def test_the_reserve_covers_what_the_replicas_of_the_run_that_ran_out_of_memory_took():
    """The reserve's two parts against the twenty-fifth run's four replicas (0.6 of an H100 for
    their static shares; one ran out of memory): each one's memory once up, from SGLang's capture
    log (the free memory after its CUDA graphs, against the one before it), less its static share
    (its fraction of the memory free when it started), is at most ``REPLICA_OVERHEAD_BYTES``; what
    each held when one ran out (the error lists every process) less that is at most
    ``REPLICA_GROWTH_BYTES``. Lowering either under what a real run took fails here."""
    import gzip
    import re

    with gzip.open(os.path.join(ROOT, "benchmarks", "results", "real_workload_h100_twentyfifth_servers4_oom.json.gz"),
                   "rt") as f:
        oom = json.load(f)["out_of_memory"]
    line = next(x for x in oom["run_out_tail"] if x.startswith("# replicas"))
    fractions = [float(x) for x in re.findall(r"(0\.\d+) \d+", line)]
    after = [oom[name]["avail_mem_gb_graph_capture"][-1] for name in ("server.out", "server1.out", "server2.out",
                                                                       "server3.out")]
    error = next(e for e in oom["server1.out"]["errors"] if "OutOfMemoryError" in e)
    capacity = float(re.search(r"total capacity of ([\d.]+) GiB", error).group(1))
    held = [float(x) for x in re.findall(r"has ([\d.]+) GiB memory in use", error)]  # in start order
    assert len(fractions) == len(after) == len(held) == 4
    before = [capacity] + after[:-1]  # nothing else was on the GPU
    up = [b - a for b, a in zip(before, after)]
    overhead = [u - f * b for u, f, b in zip(up, fractions, before)]
    growth = [h - u for h, u in zip(held, up)]
    assert 6.0 < max(overhead) <= sglang_launch.REPLICA_OVERHEAD_BYTES / GIB, overhead
    assert 4.0 < max(growth) <= sglang_launch.REPLICA_GROWTH_BYTES / GIB, growth
    # what the four grew by, with the 314 MiB asked for, is more than the 6.98 GiB they had left
    assert sum(growth) + 314 / 1024 > after[-1]


def test_balanced_fractions_give_a_shared_gpus_replicas_equal_kv_pools():
    # the same fraction for all (what srca passed before): the twenty-fourth run's skew, 7x
    old = _SimGPU()
    for _ in range(4):
        old.start(0.21)
    assert old.pools[0] / old.pools[3] > 6
    # balanced: each later replica takes the first's static memory of what is left to it
    sim = _SimGPU()
    first = sim.free(0)
    share = sglang_launch._floor4(sglang_launch.shared_gpu_mem(4, first) / 4)
    fracs = []
    for k in range(4):
        fracs.append(share if k == 0 else sglang_launch.balanced_fraction(share, first, sim.free(0)))
        sim.start(fracs[-1])
    assert fracs == [0.0978, 0.1198, 0.1546, 0.218]
    assert max(sim.pools) / min(sim.pools) < 1.001
    # what is left once all four are up is the 5 GiB each grows by under load
    assert 0 <= sim.free(0) - 4 * sglang_launch.REPLICA_GROWTH_BYTES < 0.05 * GIB
    with pytest.raises(RuntimeError, match="lower mem_fraction or the replicas per GPU"):
        sglang_launch.balanced_fraction(0.21, int(75.6 * GIB), int(10 * GIB))  # 15.9 GiB into 10: no
    with pytest.raises(RuntimeError, match="4 GiB beside it"):
        sglang_launch.balanced_fraction(0.21, int(75.6 * GIB), int(18 * GIB))  # fits, but no room beside


def test_a_group_balances_the_replicas_of_a_shared_gpu_from_its_free_memory(shim):
    sim = _SimGPU()
    la = ServerLaunch(model="/m", replicas=4, decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60)
    group = ServerGroup(la, free_memory=sim.free)

    def ready(k, url):
        argv = _get(url)["argv"]
        sim.start(float(argv[argv.index("--mem-fraction-static") + 1]))  # the GPU fills as SGLang would

    try:
        group.start(on_ready=ready)
        # the default share from the free memory read (0.3915 of 75.6 GiB, not the plan's 0.4177)
        assert [group.fractions[k] for k in range(4)] == [0.0978, 0.1198, 0.1546, 0.218]
        assert sim.reads == 4 and max(sim.pools) / min(sim.pools) < 1.002
    finally:
        group.stop()
    # the twenty-fifth run's plan, four replicas at 0.6 of an H100's 79.2 GiB: up, they left 7 GiB
    # for the four to grow into and one ran out of memory in its first batch. Refused before the
    # first starts now, saying how far to lower it
    sim = _SimGPU(free=79.18 * GIB)
    group = ServerGroup(dataclasses.replace(la, mem_fraction=0.6), free_memory=sim.free)
    with pytest.raises(RuntimeError, match=r"replica 0 on GPU 0: .*need 93\.5 GiB.*lower mem_fraction to 0\.419"):
        group.start(on_ready=ready)
    assert group.procs == []
    # a smaller reserve is the caller's to give: at 0.5, four fit beside 9.5 GiB each, not 11.5
    sim = _SimGPU(free=79.18 * GIB)
    group = ServerGroup(dataclasses.replace(la, mem_fraction=0.5), free_memory=sim.free)
    with pytest.raises(RuntimeError, match=r"11\.5 GiB beside it.*lower mem_fraction to 0\.419 or less, the replicas per GPU, or the reserve"):
        group.start(on_ready=ready)
    sim = _SimGPU(free=79.18 * GIB)
    group = ServerGroup(dataclasses.replace(la, mem_fraction=0.5, reserve_gib=9.5), free_memory=sim.free)
    try:
        group.start(on_ready=ready)
        assert group.fractions[0] == 0.125 and max(sim.pools) / min(sim.pools) < 1.002
    finally:
        group.stop()
    # one that fits at first but finds the memory taken since: refused before it starts, the
    # others stopped
    sim = _SimGPU()
    taken = iter([0, 0, 40 * GIB])
    group = ServerGroup(la, free_memory=lambda gpu: sim.free(gpu) - next(taken, 40 * GIB))
    with pytest.raises(RuntimeError, match="replica 2 on GPU 0: .*lower mem_fraction or the replicas per GPU"):
        group.start(on_ready=ready)
    assert len(group.procs) == 2 and all(p.poll() is not None for p in group.procs)


def test_a_later_replica_whose_free_memory_cannot_be_read_takes_the_first_replicas_fraction(shim):
    # the first read gives the default share from the memory free (0.3478 of 75.6 GiB each, not
    # the plan's 0.3544); nvidia-smi then fails: the second starts with the first's fraction
    reads = iter([int(75.6 * GIB), None])
    la = ServerLaunch(model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60)
    group = ServerGroup(la, free_memory=lambda gpu: next(reads))
    try:
        urls = group.start()
        mems = [_get(u)["argv"][_get(u)["argv"].index("--mem-fraction-static") + 1] for u in urls]
        assert mems == ["0.3478", "0.3478"] and group.fractions == {0: 0.3478, 1: 0.3478}
    finally:
        group.stop()


def test_a_server_that_exits_stops_the_others_and_says_which(shim):
    la = ServerLaunch(model="crash", decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60)
    group = ServerGroup(la)
    with pytest.raises(RuntimeError, match="replica 0 exited with 3"):
        group.start()
    assert all(p.poll() is not None for p in group.procs)


def test_the_command_prints_the_urls_and_stops_the_servers_on_sigterm(shim, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "srca.cli", "sglang-servers", "--model", "/m", "--replicas", "2",
                             "--decode-graph-max-bs", "none", "--prefill-graph", "none", "--gc-threshold", "700,5",
                             "--start-timeout-s", "60", "--log-dir", str(tmp_path / "logs"), "--", "--log-level", "info"],
                            env=shim, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        urls = line.split(",")
        assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls), line
        seen = [_get(u) for u in urls]
        assert all(a["gc"] == "700,5" and a["argv"][-2:] == ["--log-level", "info"] for a in seen)
        assert [a["argv"][a["argv"].index("--mem-fraction-static") + 1] for a in seen] == ["0.3544", "0.3544"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "replica 0 ready" in err and "replica 1 ready" in err and "stopping the servers" in err
    assert "--mem-fraction-static 0.3544)" in err  # no nvidia-smi here: the second keeps the first's fraction
    assert "free memory could not be read" in err, err
    deadline = time.time() + 10
    while not all(_gone(u) for u in urls) and time.time() < deadline:
        time.sleep(0.2)
    assert all(_gone(u) for u in urls)


def test_the_command_fails_with_exit_1_when_a_server_dies_at_start(shim):
    out = subprocess.run([sys.executable, "-m", "srca.cli", "sglang-servers", "--model", "crash",
                          "--decode-graph-max-bs", "none", "--prefill-graph", "none", "--start-timeout-s", "60"],
                         env=shim, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "replica 0 exited with 3" in out.stderr and out.stdout == ""


@pytest.mark.parametrize("flags, named", [(["--replicas", "0"], "--replicas"), (["--gpus", "0,x"], "--gpus"),
                                          (["--mem-fraction", "2"], "--mem-fraction"),
                                          (["--gc-threshold", "0"], "--gc-threshold"),
                                          (["--port", "0"], "--port"),
                                          (["--reserve-gib", "-1"], "--reserve-gib")])
def test_bad_flags_exit_2_naming_the_flag(flags, named):
    out = subprocess.run([sys.executable, "-m", "srca.cli", "sglang-servers", "--model", "/m", *flags],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and named in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_the_engine_kind_starts_its_servers_and_stops_them_on_close(shim):
    import asyncio

    from srca.engines import make_engine

    eng = make_engine("sglang-servers", model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None,
                      start_timeout_s=60, tokenizer=False)
    urls = list(eng.urls)
    try:
        assert len(urls) == 2 and [a["gc"] for a in map(_get, urls)] == ["50000,20,100"] * 2
    finally:
        asyncio.run(eng.close())
    assert all(_gone(u) for u in urls) and all(p.poll() is not None for p in eng.servers.procs)


def test_the_engine_checks_its_options_before_any_server_starts(monkeypatch):
    from srca.engines.sglang_launch import LaunchedServersEngine

    started = []
    monkeypatch.setattr(ServerGroup, "start", lambda self, **kw: started.append(1))
    with pytest.raises(TypeError, match="unexpected option 'bogus'"):
        LaunchedServersEngine("/m", bogus=1)
    with pytest.raises(ValueError, match="LaunchedServersEngine.replicas"):
        LaunchedServersEngine("/m", replicas=0)
    with pytest.raises(TypeError, match="LaunchedServersEngine.server_args"):
        LaunchedServersEngine("/m", server_args="--log-level info")
    assert started == []


def test_without_sglang_the_engine_and_the_command_say_what_to_install(monkeypatch):
    from srca.engines.sglang_launch import LaunchedServersEngine

    monkeypatch.delenv("PYTHONPATH", raising=False)
    if subprocess.run([sys.executable, "-c", "import sglang"], capture_output=True).returncode == 0:
        pytest.skip("sglang is installed here")
    with pytest.raises(ImportError, match=r"srca\[sglang\]"):
        LaunchedServersEngine("/m")
    out = subprocess.run([sys.executable, "-m", "srca.cli", "sglang-servers", "--model", "/m"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "pip install 'srca[sglang]'" in out.stderr and "reinstall" not in out.stderr


def test_free_port_picks_under_the_kernels_ephemeral_range_and_skips_taken_and_avoided_ports():
    import random
    import socket
    lo = 30000
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        held.listen()
        seq = iter([taken, 12345, 23456])

        class Scripted(random.Random):
            def randrange(self, a, b):
                assert (a, b) == (sglang_launch.PORT_FLOOR, lo)
                return next(seq)
        # the first pick is bound by someone, the second is avoided: the third
        assert sglang_launch.free_port("127.0.0.1", avoid=[12345], rng=Scripted(), ephemeral=(lo, 60999)) == 23456
    for _ in range(20):
        port = sglang_launch.free_port(ephemeral=(lo, 60999))
        assert sglang_launch.PORT_FLOOR <= port < lo
    # no room under the range (less than 1,000 ports): the kernel's pick, from its own range, and
    # the random pick is never asked
    class Unasked(random.Random):
        def randrange(self, a, b):
            raise AssertionError("randrange called without room under the range")
    lo_now, hi_now = sglang_launch.ephemeral_ports()
    for _ in range(5):
        port = sglang_launch.free_port(rng=Unasked(), ephemeral=(sglang_launch.PORT_FLOOR + 999, 60999))
        assert lo_now <= port <= hi_now
    assert 1 <= lo_now <= hi_now <= 65535
    assert sglang_launch.ephemeral_ports("/nonexistent/ip_local_port_range") == (32768, 60999)


def _taken_then_free(held_port: int, monkeypatch) -> list[int]:
    """free_port scripted: the first pick is ``held_port`` (taken after it was picked, as in the
    twenty-sixth run), then real free ports; the picks made."""
    picks: list[int] = []
    real = sglang_launch.free_port

    def scripted(host="127.0.0.1", avoid=(), **kw):
        port = held_port if not picks else real(host, avoid=avoid, **kw)
        picks.append(port)
        return port
    monkeypatch.setattr(sglang_launch, "free_port", scripted)
    return picks


def test_a_replica_whose_port_was_taken_starts_again_on_another_at_once(shim, tmp_path, monkeypatch, caplog):
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        picks = _taken_then_free(held.getsockname()[1], monkeypatch)
        la = ServerLaunch(model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None,
                          log_dir=str(tmp_path / "logs"), start_timeout_s=120)
        group = ServerGroup(la, free_memory=lambda gpu: None)
        t0 = time.time()
        try:
            with caplog.at_level("WARNING", logger=sglang_launch.log.name):
                urls = group.start()
            assert time.time() - t0 < 60  # found in the server's output, not after start_timeout_s
            assert len(picks) == 3 and urls == [f"http://127.0.0.1:{picks[2]}", f"http://127.0.0.1:{picks[1]}"]
            assert group.urls == urls and all(_get(u)["pid"] for u in urls)
            assert f"port {picks[0]} was taken, starting it again on {picks[2]}" in caplog.text
            assert "address already in use" not in (tmp_path / "logs" / "server.out").read_text()  # the new start's log
        finally:
            group.stop()
        assert all(p.poll() is not None for p in group.procs)


def test_a_taken_port_the_user_named_fails_at_once_naming_it(shim, tmp_path):
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        la = ServerLaunch(model="/m", port=port, decode_graph_max_bs=None, prefill_graph=None,
                          log_dir=str(tmp_path / "logs"), start_timeout_s=120)
        group = ServerGroup(la, free_memory=lambda gpu: None)
        t0 = time.time()
        with pytest.raises(RuntimeError, match=f"replica 0 .* could not listen on http://127.0.0.1:{port}: its port "
                                               r"is in use \(tried 1 port\(s\); ServerLaunch.port fixes it\)"):
            group.start()
        assert time.time() - t0 < 60
        assert all(p.poll() is not None for p in group.procs)


def test_a_replica_gives_up_after_its_retries_and_stops_the_others(shim, tmp_path, monkeypatch):
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.setattr(sglang_launch, "free_port", lambda host="127.0.0.1", avoid=(), **kw: port)
        la = ServerLaunch(model="/m", decode_graph_max_bs=None, prefill_graph=None,
                          log_dir=str(tmp_path / "logs"), start_timeout_s=120)
        group = ServerGroup(la, free_memory=lambda gpu: None)
        with pytest.raises(RuntimeError, match=r"its port is in use \(tried 3 port\(s\); retried on other ports\)"):
            group.start()
        assert all(p.poll() is not None for p in group.procs)


_MPS_CONTROL = """#!/bin/sh
# nvidia-cuda-mps-control stood in for: -d starts (a file in the pipe folder), 'quit' on stdin stops
echo "$*" >> "$CUDA_MPS_LOG_DIRECTORY/calls"
if [ "$1" = "-d" ]; then
  [ -n "$MPS_FAIL" ] && { echo "An instance of this daemon is already running" >&2; exit 1; }
  touch "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0
fi
read line; echo "stdin $line" >> "$CUDA_MPS_LOG_DIRECTORY/calls"; rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
"""


@pytest.fixture()
def mps_control(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-cuda-mps-control"
    exe.write_text(_MPS_CONTROL)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_with_mps_the_servers_are_clients_of_a_daemon_of_their_own_that_quits_with_them(shim, mps_control, tmp_path):
    la = ServerLaunch(model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None,
                      log_dir=str(tmp_path / "logs"), start_timeout_s=60, mps=True)
    group = ServerGroup(la, free_memory=lambda gpu: None)
    root = tmp_path / "logs" / "mps"
    try:
        urls = group.start()
        assert [_get(u)["mps"] for u in urls] == [str(root / "pipe")] * 2
        assert (root / "pipe" / "control").exists()
    finally:
        group.stop()
    assert (root / "log" / "calls").read_text().splitlines() == ["-d", "", "stdin quit"]
    assert not (root / "pipe" / "control").exists() and all(p.poll() is not None for p in group.procs)
    group.stop()  # twice: the daemon is asked to quit once
    assert (root / "log" / "calls").read_text().count("quit") == 1


def test_with_mps_and_no_log_folder_the_daemons_folders_go_at_stop(shim, mps_control):
    group = ServerGroup(ServerLaunch(model="/m", decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60,
                                     mps=True), free_memory=lambda gpu: None)
    try:
        url = group.start()[0]
        root = os.path.dirname(_get(url)["mps"])
        assert os.path.basename(root).startswith("srca-mps-") and os.path.exists(os.path.join(root, "pipe", "control"))
    finally:
        group.stop()
    assert not os.path.exists(root)


def test_mps_that_cannot_start_says_why_before_any_server(shim, mps_control, tmp_path, monkeypatch):
    la = ServerLaunch(model="/m", decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60, mps=True,
                      log_dir=str(tmp_path / "logs"))
    monkeypatch.setenv("MPS_FAIL", "1")
    group = ServerGroup(la, free_memory=lambda gpu: None)
    with pytest.raises(RuntimeError, match="mps: nvidia-cuda-mps-control -d exited with 1: An instance of this "
                                           "daemon is already running"):
        group.start()
    assert group.procs == []
    monkeypatch.setenv("PATH", "/nonexistent")
    group = ServerGroup(la, free_memory=lambda gpu: None)
    with pytest.raises(RuntimeError, match="mps: nvidia-cuda-mps-control not found on PATH"):
        group.start()
    assert group.procs == []


def test_by_default_mps_is_on_only_where_replicas_share_a_gpu(shim, mps_control, tmp_path):
    assert [ServerLaunch(model="/m", replicas=r, gpus=g).wants_mps() for r, g in
            ((1, (0,)), (2, (0,)), (2, (0, 1)), (3, (0, 1)))] == [False, True, False, True]
    assert ServerLaunch(model="/m", replicas=1, mps=True).wants_mps() is True
    assert ServerLaunch(model="/m", replicas=3, mps=False).wants_mps() is False
    group = ServerGroup(ServerLaunch(model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None,
                                     log_dir=str(tmp_path / "logs"), start_timeout_s=60), free_memory=lambda gpu: None)
    try:
        assert [_get(u)["mps"] for u in group.start()] == [str(tmp_path / "logs" / "mps" / "pipe")] * 2
    finally:
        group.stop()


def test_by_default_mps_that_cannot_start_leaves_the_servers_without_it(shim, mps_control, tmp_path, monkeypatch,
                                                                        caplog):
    monkeypatch.setenv("MPS_FAIL", "1")
    la = ServerLaunch(model="/m", replicas=2, decode_graph_max_bs=None, prefill_graph=None, start_timeout_s=60)
    group = ServerGroup(la, free_memory=lambda gpu: None)
    try:
        with caplog.at_level("WARNING", logger=sglang_launch.log.name):
            urls = group.start()
        assert len(urls) == 2 and [_get(u)["mps"] for u in urls] == [None, None] and group.mps is None
        assert "the servers start without MPS" in caplog.text
    finally:
        group.stop()
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                               if d != str(mps_control)))  # no control program
    group = ServerGroup(la, free_memory=lambda gpu: None)
    try:
        assert len(group.start()) == 2 and group.mps is None
    finally:
        group.stop()


def test_mps_is_a_flag_of_the_command_an_engine_option_and_a_real_workload_flag(monkeypatch):
    import argparse

    from srca.commands import sglang_servers
    from srca.engines.sglang_launch import LaunchedServersEngine

    p = argparse.ArgumentParser()
    sglang_servers.add_parser(p.add_subparsers())
    assert sglang_servers.launch_from_args(p.parse_args(["sglang-servers", "--model", "/m", "--mps"])).mps is True
    assert sglang_servers.launch_from_args(p.parse_args(["sglang-servers", "--model", "/m"])).mps is None
    assert sglang_servers.launch_from_args(p.parse_args(["sglang-servers", "--model", "/m", "--no-mps"])).mps is False
    seen = []
    monkeypatch.setattr(sglang_launch, "check_sglang", lambda env: None)
    monkeypatch.setattr(ServerGroup, "start", lambda self, **kw: seen.append(self.launch.mps) or ["http://x:1"])
    monkeypatch.setattr(sglang_launch.SGLangServerEngine, "__init__", lambda self, *a, **kw: None)
    LaunchedServersEngine("/m", mps=True)
    assert seen == [True]
    with pytest.raises(TypeError, match="LaunchedServersEngine.mps: True, False or None \\(auto\\), got 'on'"):
        LaunchedServersEngine("/m", mps="on")
    with pytest.raises(TypeError, match="ServerLaunch.mps: True, False or None \\(auto\\), got 1"):
        ServerLaunch(model="/m", mps=1)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "real_workload.py"), "--server-mps"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--server-mps: needs --server" in out.stderr
