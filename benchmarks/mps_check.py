"""Whether CUDA MPS lets processes that share a GPU run their decode steps at once (no SGLang).

    python benchmarks/mps_check.py --procs 3 --batch 512 --seconds 10 --warmup-s 15 \\
        --out benchmarks/results/mps_check_h100.json

SGLang replicas on one GPU (``srca sglang-servers --replicas 3``) each run a decode step of the
same model over their own share of the running requests. Without MPS the GPU runs one process's
kernels at a time; with it (``ServerLaunch.mps``, :class:`srca.engines.sglang_launch.MpsDaemon`)
their kernels may run side by side. This measures that on the machine at hand, with
decode-shaped work: each process replays, in one CUDA graph, the matrix products of a
Qwen2.5-1.5B decode step (28 layers: QKV 1536 -> 2048, output 1536 -> 1536, gate and up
1536 -> 2 x 8960, down 8960 -> 1536; bf16) for a batch of ``--batch`` tokens, as many times as
it can in ``--seconds``. Rows, each run at once and timed over the same window:

* ``one process, batch K x B``: the one-scheduler reference (all requests in one batch);
* ``K processes, batch B each``: replicas taking turns on the GPU;
* ``K processes, batch B each, MPS``: the same under a private MPS daemon (srca's own class).

Tokens per second are summed over the processes; ratios are to the reference. Attention and
sampling are left out (a step's weight reads are what K small batches repeat K times), so this
says whether MPS works here and how much it can give back, not SGLang's figures.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

LAYER = ((1536, 2048), (1536, 1536), (1536, 17920), (8960, 1536))  # in, out per product


def worker(device: str, batch: int, layers: int, scale: int, start_at: float, seconds: float, q) -> None:
    import torch

    dt = torch.bfloat16 if device == "cuda" else torch.float32
    ws = [[torch.randn(i // scale, o // scale, device=device, dtype=dt) * 0.02 for i, o in LAYER]
          for _ in range(layers)]
    x = torch.randn(batch, 1536 // scale, device=device, dtype=dt)
    mid = torch.empty(batch, 8960 // scale, device=device, dtype=dt)

    def step():
        h = x
        for qkv, o, gu, down in ws:
            a = h @ qkv
            h = h + a[:, : h.shape[1]] @ o
            g = h @ gu
            mid.copy_(g[:, : mid.shape[1]] * g[:, mid.shape[1]:])
            h = h + mid @ down
        return h

    run = step
    if device == "cuda":
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
        torch.cuda.synchronize()
    while time.time() < start_at:
        time.sleep(0.001)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(8):
            run()
        if device == "cuda":
            torch.cuda.synchronize()
        n += 8
    q.put({"steps": n, "seconds": time.perf_counter() - t0})


def run_row(name: str, procs: int, batch: int, a, env: dict[str, str] | None = None) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    old = dict(os.environ)
    if env:
        os.environ.update(env)  # spawned children inherit it
    try:
        start_at = time.time() + a.warmup_s
        ps = [ctx.Process(target=worker, args=(a.device, batch, a.layers, a.scale, start_at, a.seconds, q))
              for _ in range(procs)]
        for p in ps:
            p.start()
        got = [q.get(timeout=a.warmup_s + a.seconds + 120) for _ in ps]
        for p in ps:
            p.join(timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(old)
    tok_s = sum(g["steps"] * batch / g["seconds"] for g in got)
    return {"row": name, "procs": procs, "batch": batch, "steps": [g["steps"] for g in got],
            "tok_s": round(tok_s, 1), "ms_per_step": round(1000 * sum(g["seconds"] / g["steps"] for g in got) / procs, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=3, help="processes sharing the GPU (K)")
    ap.add_argument("--batch", type=int, default=512, help="tokens per process per step (B)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup-s", type=float, default=20.0, help="time the processes get to set up before the window")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run of the script")
    ap.add_argument("--scale", type=int, default=1, help="divide the model's widths (a smaller smoke run)")
    ap.add_argument("--no-mps", action="store_true", help="leave out the MPS row")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.procs < 2 or a.batch < 1 or a.seconds <= 0 or a.layers < 1 or a.scale < 1 or 1536 % a.scale:
        ap.error("--procs >= 2, --batch >= 1, --seconds > 0, --layers >= 1, --scale dividing 1536")
    rows = [run_row(f"one process, batch {a.procs} x {a.batch}", 1, a.procs * a.batch, a),
            run_row(f"{a.procs} processes, batch {a.batch} each", a.procs, a.batch, a)]
    if not a.no_mps:
        from srca.engines.sglang_launch import MpsDaemon

        with tempfile.TemporaryDirectory(prefix="srca-mps-check-") as root:
            daemon = MpsDaemon(root)
            daemon.start()
            try:
                rows.append(run_row(f"{a.procs} processes, batch {a.batch} each, MPS", a.procs, a.batch, a,
                                    env=daemon.env()))
            finally:
                daemon.stop()
    ref = rows[0]["tok_s"]
    for r in rows:
        r["x_one_process"] = round(r["tok_s"] / ref, 3) if ref else None
    print("| row | tok/s | x one process | ms / step (per process) |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['row']} | {r['tok_s']:,.0f} | {r['x_one_process']} | {r['ms_per_step']} |")
    if a.out:
        from _common import write_result

        gpu = None
        if a.device == "cuda":
            import torch
            gpu = torch.cuda.get_device_name(0)
        write_result(a.out, "mps_check", a, gpu=gpu, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
