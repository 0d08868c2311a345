"""benchmarks/real_workload.py: a job's ratios against the raw phases that bracket it, and the
GPU poller's per-phase summary, the extra SGLang arguments (pure functions; no engine, no GPU)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from real_workload import (GpuPoller, JobSetting, MachineCPU, gpu_line, majority_reference, raw_reference,  # noqa: E402
                           split_job, stack_lines)


def test_ratios_are_to_the_mean_of_the_bracketing_raw_phases():
    job = {"wall_s": 30.0, "gen_tok_s": 50_000.0}
    got = raw_reference(job, {"wall_s": 25.0, "gen_tok_s": 66_000.0}, {"wall_s": 29.0, "gen_tok_s": 58_000.0})
    assert got["raw_ref"] == {"walls_s": [25.0, 29.0], "wall_s": 27.0, "gen_tok_s": 62_000.0, "drift": 1.16}
    assert got["x_raw_wall"] == round(30.0 / 27.0, 3)
    assert got["x_raw_tok_s"] == round(50_000 / 62_000, 3)


def test_without_a_raw_phase_after_the_job_the_one_before_is_the_reference():
    got = raw_reference({"wall_s": 30.0, "gen_tok_s": 50_000.0}, {"wall_s": 25.0, "gen_tok_s": 62_500.0}, None)
    assert got["raw_ref"]["walls_s"] == [25.0] and got["raw_ref"]["drift"] == 1.0
    assert got["x_raw_wall"] == 1.2 and got["x_raw_tok_s"] == 0.8
    assert raw_reference({"wall_s": 1.0, "gen_tok_s": 1.0}, None, None) == {}


def test_a_job_with_unused_tokens_also_gets_the_tok_s_of_the_tokens_it_used():
    """srca-spec's aborted waves generated tokens that did no work: x_raw_tok_s counts them (the
    engine's throughput), x_raw_tok_s_used leaves them out (the search's)."""
    job = {"wall_s": 10.0, "gen_tok_s": 50_000.0, "generated_tokens": 500_000, "usage": {"unused_tokens": 100_000}}
    got = raw_reference(job, {"wall_s": 8.0, "gen_tok_s": 62_500.0}, None)
    assert (got["x_raw_tok_s"], got["x_raw_tok_s_used"]) == (0.8, 0.64)
    job["usage"]["unused_tokens"] = 0
    assert "x_raw_tok_s_used" not in raw_reference(job, {"wall_s": 8.0, "gen_tok_s": 62_500.0}, None)


def test_gpu_poller_summarizes_a_phase_and_ors_the_clock_reasons():
    g = GpuPoller(500)
    g.rows = [(10.0, ["1980", "2619", "500.0", "50", "0x0000000000000000"]),
              (11.0, ["1755", "2619", "690.5", "63", "0x0000000000000004"]),
              (12.0, ["1830", "2619", "[N/A]", "64", "0x0000000000000001"]),
              (20.0, ["900", "2619", "100.0", "40", "0x0000000000000008"])]  # after the phase
    got = g.take(9.5, 12.5)
    assert got["polls"] == 3
    assert got["sm_mhz"]["min"] == 1755.0 and got["sm_mhz"]["max"] == 1980.0
    assert got["power_w"]["n"] == 2 and got["power_w"]["max"] == 690.5  # "[N/A]" is skipped
    assert got["temp_c"]["max"] == 64.0
    assert got["clock_reasons_any"] == "0x5"
    assert "SM 1855.0 MHz mean (min 1755.0)" in gpu_line(got)
    assert gpu_line(g.take(0.0, 1.0)).startswith("GPU: no samples")


def test_sglang_args_become_engine_keywords_and_server_flags():
    from real_workload import server_flags, sglang_args

    args = sglang_args(["enable_mixed_chunk=true", "chunked-prefill-size=4096", "schedule_policy=lpm",
                        "cuda_graph_bs=[1, 2]", "enable_metrics=false"])
    assert args == {"enable_mixed_chunk": True, "chunked_prefill_size": 4096, "schedule_policy": "lpm",
                    "cuda_graph_bs": [1, 2], "enable_metrics": False}
    assert server_flags(args) == ["--enable-mixed-chunk", "--chunked-prefill-size", "4096", "--schedule-policy",
                                  "lpm", "--cuda-graph-bs", "1", "2"]
    for bad in ("enable_mixed_chunk", "=1", "not a key=1"):
        with pytest.raises(ValueError, match="--sglang-arg"):
            sglang_args([bad])


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")
def test_machine_cpu_counts_busy_time_and_names_steal():
    """The machine's CPU seconds over a phase (all cores): half a second of this process's busy
    loop shows as busy time; steal (a VM host's) is always reported, if only as 0."""
    import time

    m = MachineCPU()
    t = time.process_time()
    while time.process_time() - t < 0.5:
        pass
    got = m.since()
    assert set(got) == {"busy_s", "idle_s", "iowait_s", "steal_s"}
    assert got["busy_s"] >= 0.4 and got["steal_s"] >= 0 and got["idle_s"] >= 0


def test_jobs_compare_with_the_majority_vote_at_their_concurrency():
    jobs = [{"method": "majority", "effective_concurrency": 200, "wall_s": 40.0, "generated_tokens": 1000},
            {"method": "srca", "effective_concurrency": 200, "wall_s": 36.0, "generated_tokens": 720},
            {"method": "srca", "effective_concurrency": 500, "wall_s": 50.0, "generated_tokens": 900},
            {"method": "majority", "effective_concurrency": 200, "wall_s": 44.0, "generated_tokens": 1010}]
    majority_reference(jobs)
    assert (jobs[1]["x_majority_wall"], jobs[1]["x_majority_tokens"]) == (0.9, 0.72)
    assert (jobs[0]["x_majority_wall"], jobs[3]["x_majority_wall"]) == (1.0, 1.1)  # the first one is the reference
    assert "x_majority_wall" not in jobs[2]  # no majority job at that concurrency


def test_a_job_suffix_sets_one_engine_setting_for_that_job_alone():
    """dvts, dvts:window200 and dvts:gc50000 run on one engine (no second start): the suffix is
    a tail_logprobs mode, the submit window in ms, or this process's gc threshold, put back after."""
    import gc
    import types

    from srca.engines.sglang_common import SubmitGate

    assert split_job("dvts") == ("dvts", None) and split_job("dvts:window200") == ("dvts", "window200")
    assert split_job("best_of_n:rescore_all") == ("best_of_n", "rescore_all") and split_job("dvts:gc50000")[1] == "gc50000"
    assert split_job("dvts:window0") == ("dvts", "window0")  # the engine's default window off
    for bad in ("dvts:window", "dvts:window01", "dvts:fast", "dvts:gc-1", "dvts:gc0"):
        with pytest.raises(ValueError, match="windowMS"):
            split_job(bad)
    gate = SubmitGate(0.2, busy=256)
    eng = types.SimpleNamespace(tail_logprobs="rescore", gate=gate)
    with JobSetting(eng, "window0"):
        assert eng.gate.window_s == 0.0 and eng.gate.busy == 256 and eng.tail_logprobs == "rescore"
    assert eng.gate is gate
    with JobSetting(eng, "window100"):
        assert eng.gate.window_s == 0.1 and eng.gate.busy == 256
    assert eng.gate is gate
    before = gc.get_threshold()
    with JobSetting(eng, "gc50000"):
        assert gc.get_threshold() == (50000, 20, 100)
    assert gc.get_threshold() == before
    with JobSetting(eng, "inline"):
        assert eng.tail_logprobs == "inline" and eng.gate is gate
    assert eng.tail_logprobs == "rescore"
    with pytest.raises(ValueError, match="an SGLang engine"):
        JobSetting(types.SimpleNamespace(), "window200")


def test_setting_jobs_run_on_either_sglang_engine_and_nowhere_else():
    """A 'method:SETTING' job is accepted for the in-process engine and through --server alike
    (both have tail_logprobs and a submit window: the next chain A/Bs the window through a
    server); the CPU dry run's local engine has neither, and a bad method is named."""
    from real_workload import check_jobs, setting_number

    check_jobs(["dvts", "dvts:window0", "majority", "best_of_n:rescore_all", "dvts:gc50000"], 16, "sglang")
    check_jobs(["dvts", "majority"], 16, "local")
    with pytest.raises(ValueError, match="'dvts:window0'.*SGLang engine"):
        check_jobs(["dvts", "dvts:window0"], 16, "local")
    with pytest.raises(ValueError, match="nosuch"):
        check_jobs(["nosuch"], 16, "sglang")
    assert setting_number("window200") == ("window", 200) and setting_number("gc50000") == ("gc", 50000)
    assert setting_number("inline") is None and setting_number("window01") is None


def test_load_watch_says_how_full_and_how_often_past_the_batch():
    """The controller's sequences in flight against the batch: the share of polls under half of
    it and over it (admission by load may pass it; SGLang queues the rest), and what admission
    held reserved."""
    import asyncio
    import types

    from real_workload import LoadWatch

    load = types.SimpleNamespace(capacity=10, in_flight=0, reserved=0)
    w = LoadWatch(load, interval=0.001)
    for x, r in ((2, 0), (8, 2), (12, 0), (10, 0)):
        load.in_flight, load.reserved = x, r
        w.samples.append(x)
        w.reserved.append(r)
    s = w.summary()
    assert (s["share_below_half"], s["share_over_capacity"], s["reserved_mean"]) == (0.25, 0.25, 0.5)

    async def poll_twice():
        task = asyncio.ensure_future(w.run())
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(poll_twice())
    assert len(w.samples) > 4 and w.reserved[-1] == 0


def test_bywidth_admits_one_job_by_the_widths_held():
    """``majority:bywidth`` runs beside ``majority`` on one solver: the job's solves are admitted
    by the widths they hold (``Solver(admit="width")``, the rule before admission by load),
    put back after it; it needs no SGLang engine."""
    import types
    from dataclasses import replace

    from real_workload import check_jobs

    from srca import Solver
    from srca.engines.fake import ScriptedEngine

    assert split_job("majority:bywidth") == ("majority", "bywidth") and split_job("srca:byload")[1] == "byload"
    check_jobs(["majority", "majority:bywidth"], 16, "local")
    eng = ScriptedEngine(lambda prompt, req, i: ("The answer is \\boxed{1}.", -0.1))
    eng.info = replace(eng.info, concurrent_sequences=64)
    solver = Solver(engine=eng, admit="load")
    assert solver.admit == "load" and solver.batch_admission(None, floor=8).by_load
    assert Solver(engine=eng).admit == "width"  # the default since the twelfth run's unfinished solve
    with JobSetting(types.SimpleNamespace(tail_logprobs="rescore", gate=None), "bywidth", solver):
        adm = solver.batch_admission(None, floor=8)
        assert solver.admit == "width" and adm.by_width and not adm.by_load
    assert solver.admit == "load"
    with pytest.raises(ValueError, match="solver"):
        JobSetting(types.SimpleNamespace(), "bywidth")
    with pytest.raises(ValueError, match="admit"):
        Solver(engine=eng, admit="fast")


def test_a_stalled_job_says_where_its_solves_wait(tmp_path, capsys):
    """No result line for stall_s: one report of what the controller holds, and where each
    pending task waits (the twelfth GPU run's unfinished solve said nothing)."""
    import asyncio

    from real_workload import StallWatch

    from srca import Solver
    from srca.engines.fake import ScriptedEngine

    out = tmp_path / "job.jsonl"
    out.write_text('{"unique_id": "p0"}\n')
    solver = Solver(engine=ScriptedEngine(lambda p, r, i: (" \\boxed{1}", -0.1)))

    async def stuck_solve(ev):
        await ev.wait()  # a solve that never gets what it waits for

    async def go():
        ev = asyncio.Event()
        stuck = asyncio.create_task(stuck_solve(ev))
        watch = StallWatch(str(out), solver, stall_s=0.2)
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.6)
        task.cancel()
        ev.set()
        await stuck
        return watch.stalls

    stalls = asyncio.run(go())
    assert len(stalls) == 1  # told once, not every tick
    rep = stalls[0]
    assert rep["quiet_s"] >= 0.2 and rep["solves_in_flight"] == 0 and rep["sequences_in_flight"] == 0
    assert rep["answer_work"]["timed_out"] == 0
    assert any("stuck_solve" in where for where in rep["tasks_waiting_at"])
    assert "# STALL: no result line" in capsys.readouterr().out
    solver.close()


def test_stack_lines_print_the_schedulers_busiest_thread():
    def rows(key, *pairs):
        return [{key: k, "samples": v, "share": v / 100} for k, v in pairs]

    stacks = {
        "sglang::detokenizer [9]": {"samples": 50, "threads": {"MainThread": {"samples": 50}}},
        "sglang::scheduler [7]": {"samples": 110, "threads": {
            "MainThread": {"samples": 100, "self": rows("frame", ("b.py:2(prefill)@9", 60), ("c.py:3(decode)@4", 40)),
                           "cumulative": rows("function", ("a.py:1(loop)", 100), ("b.py:2(prefill)", 60))},
            "srca-stack-probe": {"samples": 10, "self": [], "cumulative": []}}},
    }
    assert stack_lines(stacks) == [
        "SGLang sglang::scheduler [7] thread MainThread: 100 samples; on the stack:",
        "  100.0% a.py:1(loop)", "  60.0% b.py:2(prefill)",
        "  on top: 60.0% b.py:2(prefill)@9; 40.0% c.py:3(decode)@4"]
    assert stack_lines(None) == [] and stack_lines({"sglang::scheduler [7]": {"samples": 0, "threads": {}}}) == []


def test_server_replicas_share_the_gpu_memory_and_one_engine(monkeypatch, tmp_path):
    """--server-replicas K starts K sglang.launch_server processes, each with --mem / K of the
    GPU's memory free before the first (a later one a larger fraction of what is left), waits for every one to be healthy, and gives the jobs one SGLangServerEngine over all K
    URLs (a solve's calls stay on one replica); the raw phase sends each prompt's samples to one
    replica. Popen and the health check are stood in for: no SGLang here."""
    import subprocess
    import types
    import urllib.request

    import real_workload
    from real_workload import Setup, replica_parts

    started = []

    envs = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            started.append(cmd)
            envs.append(kw.get("env") or {})
            self.pid, self.returncode = 10_000 + len(started), None

        def poll(self):
            return None

    class Ok:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(subprocess, "Popen", FakeProc)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Ok())
    free = iter([80 << 30, 60 << 30])  # GiB free before each replica (read by nvidia-smi on a GPU)
    monkeypatch.setattr("srca.engines.sglang_launch.gpu_free_bytes", lambda gpu: next(free))
    engines = []
    monkeypatch.setattr("srca.engines.sglang_http.SGLangServerEngine",
                        lambda url, **kw: engines.append((url, kw)) or types.SimpleNamespace())
    daemons = []  # --server-mps: the group's MPS daemon (started here without NVIDIA's program)
    monkeypatch.setattr("srca.engines.sglang_launch.MpsDaemon.start", lambda self: daemons.append(self.root))
    a = types.SimpleNamespace(server_replicas=2, server_reserve_gib=None, server_mps=True, model="/m", sampler="flashinfer", mem=0.7, decode_log_interval=40,
                              disable_cuda_graph=True, max_running_requests=None, sglang_args={},
                              prefill_graph="sglang", decode_graph_max_bs="sglang", work_dir=str(tmp_path),
                              submit_window_ms=None, sglang_gc_threshold="engine")
    setup = Setup.__new__(Setup)
    setup.a, setup.procs, setup.urls = a, [], []
    monkeypatch.setattr(real_workload, "server_flags", lambda args: [])
    Setup._start_server(setup)
    import atexit

    atexit.unregister(setup.group.stop)  # stand-in processes (made-up pids): nothing to stop at exit
    # the first takes 0.35 of the 80 GiB free (28 GiB), the second the same 28 of its 60: 0.4667
    assert len(started) == 2 and [c[c.index("--mem-fraction-static") + 1] for c in started] == ["0.35", "0.4667"]
    ports = [c[c.index("--port") + 1] for c in started]
    assert len(set(ports)) == 2 and setup.urls == [f"http://127.0.0.1:{p}" for p in ports]
    assert setup.url == setup.urls[0] and setup.proc is setup.procs[0]
    assert engines == [(setup.urls, {"max_connections": 4096})]
    assert (tmp_path / "server.out").exists() and (tmp_path / "server1.out").exists()
    assert daemons == [str(tmp_path / "mps")] and setup.group.launch.mps is True
    assert [e.get("CUDA_MPS_PIPE_DIRECTORY") for e in envs] == [str(tmp_path / "mps" / "pipe")] * 2
    assert replica_parts([[1], [2], [3]], 2, 2) == [[[1], [1], [3], [3]], [[2], [2]]]
    assert replica_parts([[1], [2]], 1, 1) == [[[1], [2]]]


def test_server_replicas_and_gc_thresholds_are_checked(tmp_path):
    import subprocess
    import sys

    data = tmp_path / "m.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2", "unique_id": "t/1.json"}\n')
    for extra, flag in ((["--server-replicas", "2"], "--server-replicas"),
                        (["--server", "--server-replicas", "0"], "--server-replicas"),
                        (["--sglang-gc-threshold", "0,1"], "--sglang-gc-threshold"),
                        (["--sglang-gc-threshold", "on"], "--sglang-gc-threshold"),
                        (["--engine", "local", "--sglang-gc-threshold", "50000"], "--sglang-gc-threshold"),
                        (["--sglang-env", "NOVALUE"], "--sglang-env"),
                        (["--sglang-env", "1X=2"], "--sglang-env"),
                        (["--sglang-env", "A-B=2"], "--sglang-env")):
        out = subprocess.run([sys.executable, "benchmarks/real_workload.py", "--check", "--data", str(data), *extra],
                             capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert out.returncode == 2 and flag in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "benchmarks/real_workload.py", "--check", "--data", str(data), "--server",
                          "--server-replicas", "2", "--limit", "1", "--jobs", "dvts"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr


_SHIM = '''"""`python -m sglang.launch_server` stood in for: the project's fake SGLang server plus the
endpoints real_workload.py polls (no SGLang on this machine)."""
import argparse
import sys

import uvicorn
from fastapi.responses import JSONResponse

from tests.fake_sglang_server import State, make_app

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int)
ap.add_argument("--mem-fraction-static")
a, _ = ap.parse_known_args()
print("launch_server", " ".join(sys.argv[1:]), flush=True)
import os
print("gc threshold env", os.environ.get("SRCA_SGLANG_GC_THRESHOLD"),
      os.environ.get("SRCA_SGLANG_GC_THRESHOLD_OWNER") != str(os.getpid()), flush=True)
print("sglang env", os.environ.get("SRCA_TEST_SGLANG_ENV"), flush=True)
app = make_app(State())


@app.get("/health")
async def health():
    return JSONResponse({})


@app.get("/v1/loads")
async def loads():
    return {"loads": [{"num_running_reqs": 1, "num_waiting_reqs": 0, "token_usage": 0.01}]}


@app.get("/get_server_info")
async def info():
    return {"mem_fraction_static": a.mem_fraction_static}


@app.post("/freeze_gc")
async def freeze():
    return {}


@app.post("/start_profile")
async def start_profile(body: dict):  # writes a trace at once, as SGLang does after num_steps
    import gzip
    import json
    import time
    d = os.path.join(body["output_dir"], str(time.time()))
    os.makedirs(d, exist_ok=True)
    ev = [{"ph": "X", "cat": "kernel", "name": "k", "ts": 0, "dur": 600},
          {"ph": "X", "cat": "kernel", "name": "k", "ts": 1000, "dur": 400}]
    with gzip.open(os.path.join(d, f"{body['num_steps']}-TP-0.trace.json.gz"), "wt") as f:
        json.dump({"traceEvents": ev, "activities": body["activities"]}, f)
    return {"success": True}

uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")
'''


def test_server_replicas_run_end_to_end_against_stand_in_servers(tmp_path):
    """The whole --server --server-replicas 2 path on this CPU, the GPU machine's servers stood in
    for by the project's fake SGLang server: both replicas start (each with half of --mem), the raw
    phase and the jobs (majority, DVTS) run through them, and the servers are gone afterwards."""
    import glob
    import json
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shim = tmp_path / "shim" / "sglang"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    (shim / "launch_server.py").write_text(_SHIM)
    data = tmp_path / "m.jsonl"
    data.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i),
                                        "unique_id": f"t/{i}.json"}) + "\n" for i in range(3)))
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'shim'}:{root}"}
    out = subprocess.run([sys.executable, "benchmarks/real_workload.py", "--engine", "sglang", "--server",
                          "--server-replicas", "2", "--mem", "0.8", "--model", str(tmp_path / "nomodel"),
                          "--data", str(data), "--limit", "3", "--samples", "2", "--jobs", "majority,dvts",
                          "--concurrency", "4", "--no-raw-bracket", "--no-gc-log", "--gpu-poll-ms", "0",
                          "--prefill-graph", "sglang", "--decode-graph-max-bs", "sglang", "--answer-workers", "1",
                          "--sglang-trace", "7", "--sglang-trace-after", "0",
                          "--sglang-env", "SRCA_TEST_SGLANG_ENV=a=b",
                          "--work-dir", str(work), "--out", str(work / "rw.json")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads((work / "rw.json").read_text())
    assert "each of the 2 sglang.launch_server replicas" in res["raw"]["how"] and res["raw"]["requests"] == 6
    assert [j["job"] for j in res["jobs"]] == ["majority@2", "dvts@2"]
    assert all(j["problems"] == 3 for j in res["jobs"])
    # --sglang-trace: each job asked the first replica for 7 profiled steps and read its trace back
    for j in res["jobs"]:
        t = j["sglang_trace"]
        assert t["gpu_busy_share"] == round(1000 / 1400, 4) and t["span_ms"] == 1.4, t
        assert len(t["paths"]) == 1 and t["paths"][0].endswith("7-TP-0.trace.json.gz")
        assert f"/trace/{j['job'].split('@')[0]}/" in t["paths"][0]
    logs = [(work / name).read_text() for name in ("server.out", "server1.out")]
    assert all("--mem-fraction-static 0.4 " in log for log in logs)
    # the servers' processes get the engines' collector thresholds (--sglang-gc-threshold engine, the
    # default) for srca's plugin, this one is their owner
    assert all("gc threshold env 50000,20,100 True" in log for log in logs)
    # --sglang-env reaches every server's process (the value kept whole, its '=' too)
    assert all("sglang env a=b\n" in log for log in logs)
    ports = {log.split("--port ")[1].split()[0] for log in logs}
    assert len(ports) == 2
    alive = []  # the replicas' processes, by their command lines: stopped with the run
    for cmd in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = open(cmd, "rb").read().split(b"\0")
        except OSError:
            continue
        if b"sglang.launch_server" in args and any(p.encode() in args for p in ports):
            alive.append(cmd)
    assert alive == []
