"""Sampling kernel speed: srca.kernels (Triton) vs the torch reference vs FlashInfer.

Shapes: parents x n in 1x1, 32x8, 256x1, 128x8 over V=151,936 (as ../shared/gpu/sampling_bench.py),
at T=0.7, top_k=50, top_p=0.95 (the targets), plus the engine's settings (top_k off, top_p 0.95) and
pure temperature sampling at 128x8. For each row the kernel is also timed under every launch config
in ``sampling_triton.CONFIGS`` (A, R, TS, SF: the ones ``default_config`` picks; printed as a second
table) and back to back (20 calls between two events: the GPU time per call without the per-call
host gap). Configs dropped earlier are in kernels/README.md with the figures that decided it.
The Triton kernel reads each parent row once (``sample_fanout``, or ``sample`` when n = 1);
FlashInfer and the torch reference see the rows repeated n times, as an engine does.
Median of CUDA-event timings. Then a per-launch breakdown (torch.profiler, CUDA kernel durations)
of every config at 1x1, 256x1 and 128x8: where the GPU time goes (phase 1 vs combine); host
microseconds per call with Triton's launch path and the cached direct launch. Writes
benchmarks/results/sampling.json (and $OUT/ if set), prints tables.
Usage: python benchmarks/sampling.py [--reps 50] [--out PATH] [--breakdown A,R,TS,SF]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import torch

from srca.kernels import sample, sample_fanout

V = 151_936
T, TOP_K, TOP_P = 0.7, 50, 0.95
# (parents, n, top_k, top_p)
CASES = [(1, 1, TOP_K, TOP_P), (32, 8, TOP_K, TOP_P), (256, 1, TOP_K, TOP_P), (128, 8, TOP_K, TOP_P),
         (128, 8, 0, TOP_P), (256, 1, 0, TOP_P), (128, 8, 0, 1.0)]


def timeit(fn, reps):
    """Median ms over ``reps`` CUDA-event timed calls, after warm-up."""
    return timeit_b2b(fn, reps, inner=1)


def timeit_b2b(fn, reps, inner=20):
    """Median ms per call over ``reps`` groups of ``inner`` back-to-back calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(inner):
            fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / inner)
    return statistics.median(ts)


def launch_breakdown(fn, calls: int = 20) -> dict:
    """Median GPU microseconds per kernel launch of one call of ``fn`` (its launches in order,
    ``name#i``) and of the call's span (first kernel start to last kernel end), from
    torch.profiler's CUDA kernel records."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    ks = sorted((e for e in prof.events() if e.device_type == DeviceType.CUDA
                 and e.name.startswith(("_fanout_kernel", "_combine_kernel"))), key=lambda e: e.time_range.start)
    per = len(ks) // calls
    if per == 0:
        return {"error": f"{len(ks)} kernel records for {calls} calls"}
    out = {}
    for i in range(per):
        out[f"{ks[i].name}#{i}"] = round(statistics.median(ks[c * per + i].time_range.elapsed_us() for c in range(calls)), 2)
    out["span"] = round(statistics.median(ks[c * per + per - 1].time_range.end - ks[c * per].time_range.start
                                          for c in range(calls)), 2)
    return out


def read_floor_ms(nbytes: int, reps: int) -> tuple[float, float]:
    """Measured one-read floor: a sum over the same bytes (memory-bound read of the parents),
    one call and back to back."""
    buf = torch.randn(nbytes // 4, device="cuda")
    return timeit(lambda: buf.sum(), reps), timeit_b2b(lambda: buf.sum(), max(5, reps // 5))


def host_us(fn, calls: int = 200) -> float:
    """Host microseconds per call (wall time of ``calls`` calls queued without a sync; the GPU
    queue does not fill at these counts), median of 5."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        ts.append((time.perf_counter() - t0) / calls * 1e6)
        torch.cuda.synchronize()
    return round(statistics.median(ts), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "sampling.json"))
    ap.add_argument("--breakdown", default="A,R,TS,SF", help="configs for the per-launch breakdown ('' for none)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/sampling.py needs CUDA")
    from srca.kernels.sampling_ref import sample_fanout_ref

    fi = None
    try:
        import flashinfer.sampling as fi
    except Exception as ex:  # report it and keep the other columns
        print("flashinfer import failed:", repr(ex)[:300])
    from srca.kernels import sampling_triton as st
    from srca.kernels import triton_loader
    from srca.kernels.sampling import _launch_fanout

    torch.manual_seed(0)
    rows = []
    floors = {}
    for P, n, K, PP in CASES:
        base = torch.randn(P, V, device="cuda") * 4  # [P, V] parent rows
        rep = base.repeat_interleave(n, dim=0)  # [P*n, V] as an engine sees them
        r = dict(parents=P, n=n, rows=P * n, V=V, temperature=T, top_k=K, top_p=PP)
        if n == 1:
            kern = lambda: sample(base, T, K, PP, seed=1)
        else:
            kern = lambda: sample_fanout(base, n, T, K, PP, seed=1)
        r["kernel_ms"] = round(timeit(kern, args.reps), 4)
        r["kernel_b2b_ms"] = round(timeit_b2b(kern, max(5, args.reps // 5)), 4)
        r["configs_ms"] = {}
        for name, cfg in st.CONFIGS.items():
            f = lambda: _launch_fanout(base, n, T, K, PP, 1, 0, config=cfg)
            try:
                r["configs_ms"][name] = [round(timeit(f, args.reps), 4), round(timeit_b2b(f, max(5, args.reps // 5)), 4)]
            except Exception as ex:  # a config that does not compile/run: report, go on
                r["configs_ms"][name] = repr(ex)[:200]
        r["torch_ref_ms"] = round(timeit(lambda: sample_fanout_ref(rep, 1, T, K, PP, seed=1), max(5, args.reps // 5)), 4)
        if fi is not None:
            try:
                if K > 0:
                    f = lambda: fi.top_k_top_p_sampling_from_logits(rep / T, top_k=K, top_p=PP)
                elif PP < 1:
                    f = lambda: fi.top_p_sampling_from_probs(torch.softmax(rep / T, -1), top_p=PP)
                else:
                    f = lambda: fi.sampling_from_logits(rep / T)
                r["flashinfer_ms"] = round(timeit(f, args.reps), 4)
                r["speedup_vs_flashinfer"] = round(r["flashinfer_ms"] / r["kernel_ms"], 2)
            except Exception as ex:
                r["flashinfer_error"] = repr(ex)[:300]
        if P not in floors:
            floors[P] = tuple(round(t, 4) for t in read_floor_ms(base.numel() * 4, args.reps))
        r["read_floor_ms"], r["read_floor_b2b_ms"] = floors[P]
        r["hbm_3tbs_floor_ms"] = round(base.numel() * 4 / 3.0e12 * 1e3, 4)
        r["kernel_over_floor"] = round(r["kernel_ms"] / r["read_floor_ms"], 2)
        r["b2b_over_floor_b2b"] = round(r["kernel_b2b_ms"] / r["read_floor_b2b_ms"], 2)
        rows.append(r)
        print(json.dumps(r), flush=True)
        base = rep = None  # free the rows before the next case's (not del: the lambdas above close over them)
    # host time per call: Triton's own launch path vs the cached direct launch (triton_loader.Launcher)
    host = []
    for P, n in [(1, 1), (128, 8)]:
        base = torch.randn(P, V, device="cuda") * 4
        for name in st.CONFIGS:
            d = dict(parents=P, n=n, config=name)
            for fast in (False, True):
                triton_loader.FAST_LAUNCH = fast
                d["fast" if fast else "triton"] = host_us(lambda: _launch_fanout(base, n, T, TOP_K, TOP_P, 1, 0,
                                                                                 config=st.CONFIGS[name]))
            host.append(d)
            print(json.dumps(d), flush=True)
        triton_loader.FAST_LAUNCH = True
        d = dict(parents=P, n=n, config="default, public sample_fanout", fast=host_us(
            lambda: sample_fanout(base, n, T, TOP_K, TOP_P, seed=1)))
        host.append(d)
        print(json.dumps(d), flush=True)
        base = None
    breakdown = []
    for P, n, K, PP in [c for c in CASES if c[2] == TOP_K and c[0] * c[1] in (1, 256, 1024) and c[:2] != (32, 8)]:
        base = torch.randn(P, V, device="cuda") * 4
        for name in [c for c in args.breakdown.split(",") if c]:
            cfg = st.CONFIGS[name]
            try:
                b = launch_breakdown(lambda: _launch_fanout(base, n, T, K, PP, 1, 0, config=cfg))
            except Exception as ex:  # no CUPTI, or a config that does not run: report, go on
                b = {"error": repr(ex)[:200]}
            breakdown.append(dict(parents=P, n=n, top_k=K, top_p=PP, config=name, us=b))
            print(json.dumps(breakdown[-1]), flush=True)
        base = None
    res = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__,
               triton=__import__("triton").__version__,
               flashinfer=getattr(__import__("flashinfer"), "__version__", None) if fi else None,
               time=time.strftime("%Y-%m-%d %H:%M:%S"), configs={k: dataclasses.asdict(c) for k, c in st.CONFIGS.items()},
               rows=rows, breakdown=breakdown, host_us=host)
    outs = [args.out] + ([os.path.join(os.environ["OUT"], "sampling.json")] if os.environ.get("OUT") else [])
    for path in outs:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
    print(f"\n{res['device']}  V={V}  T={T}  (median ms; b2b = per call, 20 back to back)")
    hdr = (f"{'parents x n':>12} {'k':>3} {'p':>5} {'kernel':>8} {'b2b':>8} {'torch ref':>10} {'flashinfer':>11} "
           f"{'vs FI':>7} {'read floor':>11} {'/floor':>7} {'floor b2b':>10} {'b2b/b2b':>8}")
    print(hdr)
    for r in rows:
        print(f"{r['parents']:>7} x {r['n']:<2} {r['top_k']:>3} {r['top_p']:>5} {r['kernel_ms']:>8.4f} {r['kernel_b2b_ms']:>8.4f} "
              f"{r['torch_ref_ms']:>10.3f} {r.get('flashinfer_ms', float('nan')):>11.4f} "
              f"{r.get('speedup_vs_flashinfer', float('nan')):>6.2f}x {r['read_floor_ms']:>11.4f} {r['kernel_over_floor']:>6.2f}x "
              f"{r['read_floor_b2b_ms']:>10.4f} {r['b2b_over_floor_b2b']:>7.2f}x")
    names = list(rows[0]["configs_ms"])
    print("\nlaunch configs (default: SF / TS for scalar top_k in 2..64, else R / A; split from",
          st.SPLIT_MIN_PARENTS, "parent rows):")
    for k in names:
        print("  ", st.CONFIGS[k])
    print(f"{'parents x n':>12} {'k':>3} {'p':>5} " + " ".join(f"{k + ' 1call/b2b':>17}" for k in names))
    for r in rows:
        cells = []
        for k in names:
            v = r["configs_ms"][k]
            cells.append(f"{v[0]:>8.4f}/{v[1]:<8.4f}" if isinstance(v, list) else f"{'error':>17}")
        print(f"{r['parents']:>7} x {r['n']:<2} {r['top_k']:>3} {r['top_p']:>5} " + " ".join(cells))
    chk = {(r["parents"], r["n"], r["top_k"], r["top_p"]): r for r in rows}
    a, b = chk[(128, 8, TOP_K, TOP_P)], chk[(256, 1, TOP_K, TOP_P)]
    best = {}
    for key in ((128, 8, TOP_K, TOP_P), (256, 1, TOP_K, TOP_P)):
        cm = {k: v for k, v in chk[key]["configs_ms"].items() if isinstance(v, list)}
        if cm:
            bk = min(cm, key=lambda k: cm[k][0])
            best[key] = (bk, cm[bk], round(cm[bk][0] / chk[key]["read_floor_ms"], 2))
    print("\nbest config (1call/b2b ms, 1call/floor):", {f"{k[0]}x{k[1]}": v for k, v in best.items()})
    print("\nhost microseconds per call (Triton's launch path / cached direct launch):")
    for d in host:
        print(f"{d['parents']:>7} x {d['n']:<2} {d['config']}: " + " / ".join(
            str(d[k]) for k in ("triton", "fast") if k in d))
    if breakdown:
        print("\nper-launch GPU microseconds (torch.profiler, median of 20 calls; span = first kernel start"
              " to last kernel end):")
        for d in breakdown:
            print(f"{d['parents']:>7} x {d['n']:<2} {d['config']}: " + "  ".join(f"{k} {v}" for k, v in d["us"].items()))
    print("goals: 128x8 >= 4x FlashInfer:", a.get("speedup_vs_flashinfer"),
          "| 128x8 <= 2x one-read floor:", a["kernel_over_floor"], "(b2b vs b2b:", a["b2b_over_floor_b2b"], ")",
          "| 256x1 >= 0.9x FlashInfer:", b.get("speedup_vs_flashinfer"))


if __name__ == "__main__":
    main()
