"""benchmarks/sglang_trace.py: a profiled window's GPU busy share, idle gaps and CUDA waits from a
chrome trace (exact values on a synthetic trace), and real_workload's trace collection."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from real_workload import trace_result  # noqa: E402
from sglang_trace import merged, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trace(path, events):
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)


def _x(cat, name, ts, dur):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 0, "tid": 0}


EVENTS = [
    _x("kernel", "decode_attn", 0, 1000), _x("kernel", "gemm", 500, 1500),  # busy 0-2000 us
    _x("kernel", "gemm", 5000, 1000),  # a 3 ms gap before it
    _x("gpu_memcpy", "Memcpy DtoH", 6500, 500),  # a 0.5 ms gap
    _x("cuda_runtime", "cudaStreamSynchronize", 2100, 2500),
    _x("cuda_runtime", "cudaLaunchKernel", 10, 10), _x("cuda_runtime", "cudaLaunchKernel", 600, 10),
    _x("cuda_runtime", "cudaLaunchKernel", 4990, 10),
    _x("cpu_op", "aten::copy_", 100, 300), _x("cpu_op", "aten::copy_", 9000, 300),  # the second outside the window
    {"ph": "i", "cat": "kernel", "name": "instant", "ts": 3},  # not a complete event
]


def test_merged_joins_overlapping_intervals():
    assert merged([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 6)]


def test_summary_of_a_synthetic_window(tmp_path):
    p = tmp_path / "x-TP-0.trace.json.gz"
    _trace(p, EVENTS)
    s = summary([str(p)])
    assert (s["gpu_events"], s["span_ms"], s["gpu_busy_ms"], s["gpu_busy_share"]) == (4, 7.0, 3.5, 0.5)
    assert s["gpu_idle_gaps"] == {"min_gap_ms": 0.5, "count": 2, "total_ms": 3.5, "share_of_span": 0.5,
                                  "largest_ms": [3.0, 0.5]}
    assert s["cuda_wait_ms"] == 2.5 and s["cuda_wait_share_of_span"] == round(2500 / 7000, 4)
    assert s["cuda_calls"][0] == {"name": "cudaStreamSynchronize", "calls": 1, "total_ms": 2.5, "max_ms": 2.5}
    assert s["cuda_calls"][1] == {"name": "cudaLaunchKernel", "calls": 3, "total_ms": 0.03, "max_ms": 0.01}
    assert s["cpu_ops_inclusive"] == [{"name": "aten::copy_", "calls": 1, "total_ms": 0.3, "max_ms": 0.3}]
    assert summary([str(p)], gap_ms=1.0)["gpu_idle_gaps"]["count"] == 1


def test_no_gpu_events_is_said_not_divided_by_zero(tmp_path):
    p = tmp_path / "cpu.trace.json"
    p.write_text(json.dumps({"traceEvents": [_x("cpu_op", "aten::add", 0, 5)]}))
    assert summary([str(p)]) == {"traces": 1, "events": 1, "gpu_events": 0}


def test_cli_prints_one_line_and_rejects_bad_input(tmp_path):
    p = tmp_path / "x.trace.json.gz"
    _trace(p, EVENTS)
    ok = subprocess.run([sys.executable, "benchmarks/sglang_trace.py", str(p)], cwd=ROOT, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "GPU busy 50.0%" in ok.stdout and "cudaStreamSynchronize 2.5 ms" in ok.stdout
    bad = subprocess.run([sys.executable, "benchmarks/sglang_trace.py", str(tmp_path / "missing.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("sglang_trace: ")


def test_real_workload_collects_the_trace_sglang_wrote(tmp_path):
    assert "error" in trace_result(str(tmp_path), None)  # the job ended before the profiler started
    assert "no trace" in trace_result(str(tmp_path), 1.0, wait_s=0.0)["error"]
    assert trace_result(str(tmp_path), "RuntimeError: busy")["error"] == "the profiler did not start: RuntimeError: busy"
    (tmp_path / "1733.5").mkdir()
    _trace(tmp_path / "1733.5" / "1733.5-TP-0.trace.json.gz", EVENTS)
    got = trace_result(str(tmp_path), 123.4567, wait_s=0.0)
    assert got["started_at"] == 123.457 and got["gpu_busy_share"] == 0.5 and len(got["paths"]) == 1
