"""Client-side cost of the HTTP engines' transport: httpx vs aiohttp vs SGLangServerEngine itself,
against a local server that answers SGLang-shaped ``/generate`` batches at once.

The search keeps ~128 solves in flight, each sending one request per phase. With httpx's
connection pool each request cost milliseconds of client CPU at that concurrency; this measures
it so the choice of client library rests on a number. The server runs in its own process (it
should not share the client's CPU); on a 2-core machine the two still compete a little.

    python benchmarks/http_client.py [--solves 128] [--calls 8] [--batch 16]

Writes JSON (``--out``) and prints wall and client CPU seconds per variant (best of ``--repeats``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import textwrap
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import free_port, write_result  # noqa: E402

SERVER = textwrap.dedent("""
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def one(n_out):
        ids = list(range(1000, 1000 + n_out))
        return {"text": " w" * n_out, "output_ids": ids, "meta_info": {
            "finish_reason": {"type": "length", "length": n_out}, "prompt_tokens": 300, "cached_tokens": 290,
            "completion_tokens": n_out, "output_token_logprobs": [[-0.5, t, None] for t in ids]}}

    async def generate(request):
        body = await request.json()
        ids = body.get("input_ids")
        batch = isinstance(ids, list) and ids and isinstance(ids[0], list)
        params = body.get("sampling_params") or {}
        if batch:
            params = params if isinstance(params, list) else [params] * len(ids)
            return JSONResponse([one(p.get("max_new_tokens", 64)) for p in params])
        return JSONResponse(one(params.get("max_new_tokens", 64)))

    async def health(request):
        return JSONResponse({})

    app = Starlette(routes=[Route("/generate", generate, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
""")


def body(a) -> dict:
    rng = random.Random(0)
    ids = [[rng.randrange(150000) for _ in range(a.prompt_tokens)] for _ in range(a.batch)]
    return {"input_ids": ids, "sampling_params": [{"max_new_tokens": a.new_tokens, "temperature": 0.8}] * a.batch,
            "return_logprob": [True] * a.batch, "stream": False}


async def raw_httpx(a, url):
    import httpx

    b = body(a)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=4096, max_keepalive_connections=4096),
                                 timeout=60) as c:
        async def solve():
            for _ in range(a.calls):
                (await c.post(url + "/generate", json=b)).json()
        await asyncio.gather(*[solve() for _ in range(a.solves)])


async def raw_aiohttp(a, url):
    import aiohttp

    b = body(a)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4096)) as s:
        async def solve():
            for _ in range(a.calls):
                async with s.post(url + "/generate", json=b) as r:
                    await r.json()
        await asyncio.gather(*[solve() for _ in range(a.solves)])


def engine_variant(a, url, batch: bool):
    from srca.engines.base import GenRequest
    from srca.engines.sglang_http import SGLangServerEngine

    eng = SGLangServerEngine(url, model="bench", tokenizer=False, stop_mode="strings", batch=batch,
                             max_connections=4096)
    rng = random.Random(0)
    prompt = [rng.randrange(150000) for _ in range(a.prompt_tokens)]

    async def run():
        async def solve(k):
            for _ in range(a.calls):
                await eng.generate([GenRequest(input_ids=prompt, n=a.batch, max_new_tokens=a.new_tokens,
                                               temperature=0.8, group=f"s{k}")])
        await asyncio.gather(*[solve(k) for k in range(a.solves)])
        await eng._http.aclose()
    return run


def timed(fn, repeats: int) -> dict:
    asyncio.run(fn())  # warm-up (connections, imports)
    best = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        asyncio.run(fn())
        r = dict(wall_s=round(time.perf_counter() - t0, 3), client_cpu_s=round(time.process_time() - c0, 3))
        best = r if best is None or r["wall_s"] < best["wall_s"] else best
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solves", type=int, default=128, help="concurrent solves")
    ap.add_argument("--calls", type=int, default=8, help="requests per solve, one after another")
    ap.add_argument("--batch", type=int, default=16, help="samples per request")
    ap.add_argument("--prompt-tokens", type=int, default=300)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "http_client.json"))
    a = ap.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        variants = {
            "httpx, one batched request per call": lambda: raw_httpx(a, url),
            "aiohttp, one batched request per call": lambda: raw_aiohttp(a, url),
            "SGLangServerEngine (batched)": engine_variant(a, url, batch=True),
            "SGLangServerEngine (batch=False: one request per sample)": engine_variant(a, url, batch=False),
        }
        rows = []
        for name, fn in variants.items():
            r = timed(fn, a.repeats)
            per_sample = "per sample" in name
            reqs = a.solves * a.calls * (a.batch if per_sample else 1)
            r.update(variant=name, requests=reqs, client_cpu_ms_per_request=round(1000 * r["client_cpu_s"] / reqs, 3))
            rows.append(r)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    print(f"{a.solves} solves x {a.calls} calls, {a.batch} samples per call; best of {a.repeats}")
    print(f"{'variant':58} {'requests':>8} {'wall s':>7} {'client cpu s':>12} {'cpu ms/req':>10}")
    for r in rows:
        print(f"{r['variant']:58} {r['requests']:>8} {r['wall_s']:>7.2f} {r['client_cpu_s']:>12.2f} "
              f"{r['client_cpu_ms_per_request']:>10.3f}")
    write_result(a.out, "http_client", a, rows=rows)


if __name__ == "__main__":
    main()
