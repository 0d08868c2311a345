"""Sampling kernel speed: srca.kernels (Triton) vs the torch reference vs FlashInfer.

Shapes: parents x n in 1x1, 32x8, 256x1, 128x8 over V=151,936 (as ../shared/gpu/sampling_bench.py).
The Triton kernel reads each parent row once (``sample_fanout``, or ``sample`` when n = 1);
FlashInfer and the torch reference see the rows repeated n times, as an engine does.
Median of CUDA-event timings. Writes benchmarks/results/sampling.json (and $OUT/ if set), prints a table.
Usage: python benchmarks/sampling.py [--reps 50] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from srca.kernels import sample, sample_fanout

V = 151_936
SHAPES = [(1, 1), (32, 8), (256, 1), (128, 8)]
T, TOP_K, TOP_P = 0.7, 50, 0.95


def timeit(fn, reps):
    """Median ms over ``reps`` CUDA-event timed calls, after warm-up."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    return statistics.median(ts)


def read_floor_ms(nbytes: int, reps: int) -> float:
    """Measured one-read floor: a sum over the same bytes (memory-bound read of the parents)."""
    buf = torch.randn(nbytes // 4, device="cuda")
    return timeit(lambda: buf.sum(), reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "sampling.json"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/sampling.py needs CUDA")
    from srca.kernels.sampling_ref import sample_fanout_ref

    fi = None
    try:
        import flashinfer.sampling as fi
    except Exception as ex:  # report it and keep the other columns
        print("flashinfer import failed:", repr(ex)[:300])
    torch.manual_seed(0)
    rows = []
    for P, n in SHAPES:
        base = torch.randn(P, V, device="cuda") * 4  # [P, V] parent rows
        rep = base.repeat_interleave(n, dim=0)  # [P*n, V] as an engine sees them
        r = dict(parents=P, n=n, rows=P * n, V=V, temperature=T, top_k=TOP_K, top_p=TOP_P)
        if n == 1:
            kern = lambda: sample(base, T, TOP_K, TOP_P, seed=1)
        else:
            kern = lambda: sample_fanout(base, n, T, TOP_K, TOP_P, seed=1)
        r["kernel_ms"] = round(timeit(kern, args.reps), 4)
        r["torch_ref_ms"] = round(timeit(lambda: sample_fanout_ref(rep, 1, T, TOP_K, TOP_P, seed=1), max(5, args.reps // 5)), 4)
        if fi is not None:
            try:
                f = lambda: fi.top_k_top_p_sampling_from_logits(rep / T, top_k=TOP_K, top_p=TOP_P)
                r["flashinfer_ms"] = round(timeit(f, args.reps), 4)
                r["speedup_vs_flashinfer"] = round(r["flashinfer_ms"] / r["kernel_ms"], 2)
            except Exception as ex:
                r["flashinfer_error"] = repr(ex)[:300]
        r["read_floor_ms"] = round(read_floor_ms(base.numel() * 4, args.reps), 4)
        r["hbm_3tbs_floor_ms"] = round(base.numel() * 4 / 3.0e12 * 1e3, 4)
        r["kernel_over_floor"] = round(r["kernel_ms"] / r["read_floor_ms"], 2)
        rows.append(r)
        print(json.dumps(r), flush=True)
        del base, rep
    res = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__,
               triton=__import__("triton").__version__,
               flashinfer=getattr(__import__("flashinfer"), "__version__", None) if fi else None,
               time=time.strftime("%Y-%m-%d %H:%M:%S"), rows=rows)
    outs = [args.out] + ([os.path.join(os.environ["OUT"], "sampling.json")] if os.environ.get("OUT") else [])
    for path in outs:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
    print(f"\n{res['device']}  V={V}  T={T} top_k={TOP_K} top_p={TOP_P}  (median ms)")
    hdr = f"{'parents x n':>12} {'kernel':>9} {'torch ref':>10} {'flashinfer':>11} {'vs FI':>7} {'read floor':>11} {'/floor':>7}"
    print(hdr)
    for r in rows:
        print(f"{r['parents']:>7} x {r['n']:<2} {r['kernel_ms']:>9.4f} {r['torch_ref_ms']:>10.3f} "
              f"{r.get('flashinfer_ms', float('nan')):>11.4f} {r.get('speedup_vs_flashinfer', float('nan')):>6.2f}x "
              f"{r['read_floor_ms']:>11.4f} {r['kernel_over_floor']:>6.2f}x")
    chk = {(r["parents"], r["n"]): r for r in rows}
    a, b = chk[(128, 8)], chk[(256, 1)]
    print("\ngoals: 128x8 >= 4x FlashInfer:", a.get("speedup_vs_flashinfer"),
          "| 128x8 <= 2x one-read floor:", a["kernel_over_floor"],
          "| 256x1 >= 0.9x FlashInfer:", b.get("speedup_vs_flashinfer"))


if __name__ == "__main__":
    main()
