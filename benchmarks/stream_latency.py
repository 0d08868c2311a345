"""Time to the first reasoning delta vs the whole answer, through the OpenAI facade with the
official ``openai`` client (``stream=True``), against a real ``srca serve`` on the embedded model.

    python benchmarks/stream_latency.py --model qwen2.5-coder-0.5b --n 4 [--out result.json]

Starts ``srca serve`` (no Redis: every run solves, no cache hit), waits until it is ready, sends
the Quick start problem once and prints the arrival time of the first reasoning delta, the first
content delta and the end of the stream (seconds from the request), with the number of reasoning
deltas. Nothing runs at import.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import free_port  # noqa: E402  (the product's rule: srca.engines.sglang_launch)

PROBLEM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
           "How many clips did Natalia sell altogether in April and May?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--method", default="srca", help="the facade's model name: srca, srca-beam, ...")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--problem", default=PROBLEM)
    ap.add_argument("--ready-timeout-s", type=float, default=900)
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    args = ap.parse_args()

    import httpx
    import openai

    port = free_port()
    exe = shutil.which("srca")
    cmd = [exe] if exe else [sys.executable, "-m", "srca.cli"]
    log = open(os.devnull, "wb") if args.out is None else open(args.out + ".serve.log", "wb")
    srv = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(port), "--redis-url", "none",
                            "--model", args.model], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + args.ready_timeout_s
        while True:  # bounded: the model loads, or the deadline passes
            if srv.poll() is not None:
                raise SystemExit(f"srca serve exited with {srv.returncode}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("srca serve was not ready in time")
            time.sleep(0.5)
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=3600)
        t0 = time.monotonic()
        first_reasoning = first_content = None
        deltas, reasoning, content = 0, [], []
        for ch in client.chat.completions.create(model=args.method, messages=[{"role": "user", "content": args.problem}],
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_body={"n": args.n}):
            now = time.monotonic() - t0
            if not ch.choices:
                continue
            d = ch.choices[0].delta
            r = (d.model_extra or {}).get("reasoning_content")
            if r:
                deltas += 1
                reasoning.append(r)
                first_reasoning = first_reasoning if first_reasoning is not None else now
            if d.content:
                content.append(d.content)
                first_content = first_content if first_content is not None else now
        total = time.monotonic() - t0
    finally:
        srv.terminate()
        try:
            srv.wait(30)
        except subprocess.TimeoutExpired:
            srv.kill()
    result = {"model": args.model, "method": args.method, "n": args.n, "first_reasoning_s": round(first_reasoning, 2),
              "first_content_s": round(first_content, 2), "total_s": round(total, 2), "reasoning_deltas": deltas,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}",
              "srca_threads": os.environ.get("SRCA_THREADS"), "reasoning": "".join(reasoning),
              "content": "".join(content)}
    print(json.dumps({k: v for k, v in result.items() if k not in ("reasoning", "content")}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
