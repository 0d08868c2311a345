"""What a window of SGLang's scheduler did, from its torch-profiler trace (CPU and GPU activity).

    python benchmarks/sglang_trace.py WORK/trace/dvts/*.trace.json.gz

``real_workload.py --sglang-trace STEPS`` starts SGLang's own profiler (``ProfileReq`` with
``activities=["CPU", "GPU"]``, ``num_steps=STEPS``: it stops by itself) some seconds into each
job and summarizes the trace it writes with :func:`summary`. The question it answers (issue 17,
DVTS at 0.4x the raw engine's tok/s while the GPU draws half of majority's power): over the
window, how much of the time the GPU ran anything (the union of its kernels, copies and sets),
how its idle time falls into gaps, and which CUDA runtime calls the scheduler's CPU spent its
time in (``cudaStreamSynchronize``, ``cudaEventSynchronize`` and ``cudaMemcpy*`` that wait for
the GPU, ``cudaLaunchKernel`` that feeds it), beside the heaviest CPU operators.

Chrome-trace events (``ph`` "X", microseconds ``ts`` and ``dur``) by ``cat``: ``kernel``,
``gpu_memcpy``, ``gpu_memset`` on the GPU; ``cuda_runtime`` and ``cuda_driver`` calls; ``cpu_op``
(aten operators, inclusive of what they call); ``user_annotation`` (SGLang's named ranges).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from typing import Iterable

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
CUDA_CATS = ("cuda_runtime", "cuda_driver")
WAITS = ("Synchronize", "cudaMemcpy", "cuMemcpy", "cudaStreamWait", "cudaEventQuery")


def events(paths: Iterable[str]) -> list[dict]:
    """Complete events (``ph`` "X") of every trace, with their file's index as ``_file``."""
    out = []
    for i, p in enumerate(paths):
        with (gzip.open if p.endswith(".gz") else open)(p, "rt") as f:
            data = json.load(f)
        for ev in data.get("traceEvents", data if isinstance(data, list) else []):
            if isinstance(ev, dict) and ev.get("ph") == "X" and "ts" in ev:
                ev["_file"] = i
                out.append(ev)
    return out


def merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _ms(us: float) -> float:
    return round(us / 1e3, 2)


def by_name(evs: list[dict], top: int) -> list[dict]:
    acc: dict[str, list[float]] = {}
    for ev in evs:
        a = acc.setdefault(ev.get("name", "?")[:100], [0, 0.0, 0.0])
        d = float(ev.get("dur", 0.0))
        a[0] += 1
        a[1] += d
        a[2] = max(a[2], d)
    rows = sorted(acc.items(), key=lambda kv: -kv[1][1])[:top]
    return [{"name": k, "calls": int(v[0]), "total_ms": _ms(v[1]), "max_ms": _ms(v[2])} for k, v in rows]


def summary(paths: list[str], gap_ms: float = 0.5, top: int = 12) -> dict:
    """The window's GPU busy share and idle gaps, and the CUDA calls and CPU operators that took
    the scheduler's time (see the module's docstring). Empty traces give ``{"events": 0}``."""
    evs = events(paths)
    gpu = [e for e in evs if e.get("cat") in GPU_CATS]
    if not gpu:
        return {"traces": len(paths), "events": len(evs), "gpu_events": 0}
    busy = merged([(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))) for e in gpu])
    t0, t1 = busy[0][0], busy[-1][1]
    span = t1 - t0
    busy_us = sum(e - s for s, e in busy)
    gaps = [b[0] - a[1] for a, b in zip(busy, busy[1:])]
    big = sorted((g for g in gaps if g >= gap_ms * 1e3), reverse=True)
    cuda = [e for e in evs if e.get("cat") in CUDA_CATS and t0 <= float(e["ts"]) <= t1]
    waits = [e for e in cuda if any(w in e.get("name", "") for w in WAITS)]
    cpu_ops = [e for e in evs if e.get("cat") == "cpu_op" and t0 <= float(e["ts"]) <= t1]
    ann = [e for e in evs if e.get("cat") == "user_annotation" and t0 <= float(e["ts"]) <= t1]
    return {
        "traces": len(paths), "events": len(evs), "gpu_events": len(gpu), "span_ms": _ms(span),
        "gpu_busy_ms": _ms(busy_us), "gpu_busy_share": round(busy_us / span, 4) if span > 0 else None,
        "gpu_idle_gaps": {"min_gap_ms": gap_ms, "count": len(big), "total_ms": _ms(sum(big)),
                          "share_of_span": round(sum(big) / span, 4) if span > 0 else None,
                          "largest_ms": [_ms(g) for g in big[:8]]},
        "cuda_wait_ms": _ms(sum(float(e.get("dur", 0.0)) for e in waits)),
        "cuda_wait_share_of_span": round(sum(float(e.get("dur", 0.0)) for e in waits) / span, 4) if span > 0 else None,
        "cuda_calls": by_name(cuda, top), "cpu_ops_inclusive": by_name(cpu_ops, top),
        "annotations": by_name(ann, top), "top_kernels": by_name(gpu, top),
    }


def line(s: dict) -> str:
    """One printed line of a :func:`summary`."""
    if not s.get("gpu_events"):
        return f"no GPU events in {s.get('traces', 0)} trace(s)"
    g = s["gpu_idle_gaps"]
    calls = ", ".join(f"{c['name']} {c['total_ms']} ms" for c in s["cuda_calls"][:3])
    return (f"span {s['span_ms']} ms, GPU busy {100 * s['gpu_busy_share']:.1f}%, idle gaps >= {g['min_gap_ms']} ms: "
            f"{g['count']} ({g['total_ms']} ms, {100 * g['share_of_span']:.1f}%), CUDA waits {s['cuda_wait_ms']} ms; "
            f"top CUDA calls: {calls}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="+", help="chrome traces (.json or .json.gz) of one profiled window")
    ap.add_argument("--gap-ms", type=float, default=0.5, help="idle gaps at least this long are counted")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.gap_ms <= 0:
        print("sglang_trace: --gap-ms must be > 0", file=sys.stderr)
        return 2
    try:
        s = summary(a.traces, a.gap_ms)
    except (OSError, ValueError) as e:
        print(f"sglang_trace: {e}", file=sys.stderr)
        return 2
    print(line(s))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(s, f, indent=1)
        print(f"# wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
