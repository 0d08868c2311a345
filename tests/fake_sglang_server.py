"""A small stand-in for an SGLang server, for CPU tests of the HTTP engines (no model).

Tokens are characters (``id == ord(char)``). The "model" continues every prompt with
:data:`CONTINUATION` (or the answer chosen by ``sampling_seed`` when sampling), and the server
answers the way SGLang 0.5.x does:

* ``POST /generate`` (single or batched ``input_ids``/``text``): ``text``, ``output_ids`` and
  ``meta_info`` with ``finish_reason`` (``{"type": "stop", "matched": str | int}`` /
  ``{"type": "length", "length": n}`` / ``{"type": "abort"}``), ``prompt_tokens``,
  ``cached_tokens`` (a token trie plays the radix cache), ``completion_tokens``,
  ``output_token_logprobs`` and ``output_top_logprobs`` as ``[logprob, id, None]``; the stop
  string stays in ``text`` only with ``no_stop_trim``, as in SGLang;
* ``POST /abort_request``, ``GET /model_info``, ``POST /tokenize``, ``POST /detokenize``;
* ``POST /v1/completions`` (OpenAI completions: ``choices[].text`` without the stop string,
  ``logprobs.tokens/token_logprobs/top_logprobs``, ``usage`` with optional
  ``prompt_tokens_details.cached_tokens``, SGLang's ``matched_stop``).

Fault injection through :class:`State`: ``fail_next`` answers 503 that many times; a prompt
containing ``SLOW`` waits until aborted (or ``slow_s``) before answering.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from srca.engines.fake import match_and_insert

CONTINUATION = "First step.\n\nSecond step.\n\nThe answer is \\boxed{42}."
EOS_ID = 0


@dataclass
class State:
    fail_next: int = 0
    fail_status: int = 503
    slow_s: float = 20.0
    with_tokenize: bool = True
    report_cached: bool = True  # /v1/completions usage.prompt_tokens_details.cached_tokens
    report_matched_stop: bool = True  # /v1/completions choices[].matched_stop
    bodies: list = field(default_factory=list)
    completions: list = field(default_factory=list)
    aborted: list = field(default_factory=list)
    flushes: int = 0
    started_slow: list = field(default_factory=list)
    trie: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    dp_size: int = 1
    script: Any = None  # a ScriptedEngine script: when set, /generate runs it (see run_script)
    _scripted: Any = None




def continuation(prompt: str, params: dict) -> str:
    seed = params.get("sampling_seed")
    if params.get("temperature", 1.0) > 0 and seed is not None:
        return CONTINUATION.replace("42", str(seed % 1000))
    return CONTINUATION


def run_model(state: State, ids: list[int], params: dict) -> dict:
    """One generation: (text, output ids, finish reason, counts) the way SGLang reports them."""
    prompt = "".join(chr(i) for i in ids)
    text = continuation(prompt, params)
    max_new = int(params.get("max_new_tokens", 128))
    stops = params.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    cut, matched = len(text), None
    hits = [(text.find(s), s) for s in stops if s and text.find(s) >= 0]
    if hits:
        pos, s = min(hits)
        cut, matched = pos + len(s), s
    if cut > max_new:
        cut, matched = max_new, None
        finish = {"type": "length", "length": max_new}
    elif matched is not None:
        finish = {"type": "stop", "matched": matched}
    elif params.get("ignore_eos"):
        finish = {"type": "length", "length": max_new}
    else:
        finish = {"type": "stop", "matched": EOS_ID}
    out_text = text[:cut]
    out_ids = [ord(c) for c in out_text]
    cached = match_and_insert(state.trie, ids)
    match_and_insert(state.trie, ids + out_ids)
    shown = out_text
    if matched is not None and not params.get("no_stop_trim"):
        shown = out_text[: out_text.find(matched)]
    return dict(text=shown, ids=out_ids, finish=finish, prompt_tokens=len(ids), cached=min(cached, len(ids)))


def prefill_lp(token: int) -> float:
    """The stand-in model's log-probability of ``token`` in a prefill (untempered, as SGLang's)."""
    return -0.05 - (token % 10) / 10


def prefill_top(token: int, k: int) -> list:
    """The stand-in model's ``k`` best alternatives where ``token`` was read: the token itself
    at :func:`prefill_lp`, then ``token + 1, ...`` each 1.0 lower."""
    return [[prefill_lp(token) - a, token + a, None] for a in range(k)]


def prefill_only(ids: list[int], start: int, k: int = 0) -> dict:
    """SGLang's answer to a prefill-only request (``max_new_tokens = 0``) with ``return_logprob``
    and ``logprob_start_len = start``: ``input_token_logprobs`` for positions ``start ..``, the
    first None (and with ``top_logprobs_num = k``, ``input_top_logprobs`` alike); the prefix up
    to ``start`` counted as cached."""
    meta = {"finish_reason": {"type": "length", "length": 0}, "prompt_tokens": len(ids), "cached_tokens": start,
            "completion_tokens": 0,
            "input_token_logprobs": [[None if j == start else prefill_lp(ids[j]), ids[j], None]
                                     for j in range(start, len(ids))]}
    if k:
        meta["input_top_logprobs"] = [None if j == start else prefill_top(ids[j], k) for j in range(start, len(ids))]
    return {"text": "", "output_ids": [], "meta_info": meta}


def run_script(state: State, ids: list[int], params: dict, want_lp: bool, top_n: int) -> dict:
    """/generate through :class:`srca.engines.fake.ScriptedEngine` (the contract suite's stand-in
    model), answered in SGLang's shape. ``sampling_seed`` plays the request seed (sample 0)."""
    from srca.engines.base import GenRequest
    from srca.engines.fake import ScriptedEngine

    if state._scripted is None:
        state._scripted = ScriptedEngine(state.script)
    temp = float(params.get("temperature", 1.0))
    top_k = int(params.get("top_k", -1))
    # stop_token_ids: tokens are characters here, so a stop token is a one-character stop string
    stop_ids = {int(t) for t in params.get("stop_token_ids") or ()}
    stops = tuple(params.get("stop") or ()) + tuple(chr(t) for t in sorted(stop_ids))
    req = GenRequest(input_ids=ids, max_new_tokens=int(params.get("max_new_tokens", 128)), temperature=temp,
                     top_p=float(params.get("top_p", 1.0)), top_k=max(0, top_k), stop=stops,
                     seed=params.get("sampling_seed"), logprobs=want_lp, top_logprobs=top_n,
                     top_logprobs_steps=int(params.get("max_new_tokens", 128)))
    g = state._scripted._one(req, 0)
    if g.stop_str is not None and len(g.stop_str) == 1 and ord(g.stop_str) in stop_ids:
        finish = {"type": "stop", "matched": ord(g.stop_str)}  # a token match reports the id
    elif g.stop_str is not None:
        finish = {"type": "stop", "matched": g.stop_str}
    elif g.finish_reason == "length":
        finish = {"type": "length", "length": req.max_new_tokens}
    else:
        finish = {"type": "stop", "matched": EOS_ID}
    text = g.text
    if g.stop_str is not None and not params.get("no_stop_trim"):
        text = text[: text.find(g.stop_str)]
    meta: dict[str, Any] = {"finish_reason": finish, "prompt_tokens": g.prompt_tokens,
                            "cached_tokens": g.cached_tokens, "completion_tokens": g.generated_tokens}
    if want_lp:
        meta["output_token_logprobs"] = [[lp, t, None] for lp, t in zip(g.logprobs, g.token_ids)]
        if top_n:
            meta["output_top_logprobs"] = [[[lp, t, None] for t, lp in alts] for alts in g.top_logprobs]
    return {"text": text, "output_ids": g.token_ids, "meta_info": meta}


def make_app(state: State):
    app = FastAPI()

    async def _maybe_slow(rid: str, prompt: str) -> bool:
        """True when the request was aborted while waiting."""
        if "SLOW" not in prompt:
            return False
        ev = state.events.setdefault(rid, asyncio.Event())
        state.started_slow.append(rid)
        try:
            await asyncio.wait_for(ev.wait(), timeout=state.slow_s)
            return True
        except asyncio.TimeoutError:
            return False

    @app.post("/classify")
    async def classify(request: Request):
        """A reward head: logits [wrong, right]; a path whose last step says WRONG is wrong."""
        body = await request.json()
        state.bodies.append(body)
        texts = [body["text"]] if isinstance(body["text"], str) else body["text"]
        outs = [{"embedding": [2.0, 0.0] if t.endswith("WRONG<extra_0>") else [0.0, 2.0],
                 "meta_info": {"id": f"c{i}", "prompt_tokens": len(t)}} for i, t in enumerate(texts)]
        return JSONResponse(outs[0] if isinstance(body["text"], str) else outs)

    @app.post("/generate")
    async def generate(request: Request):
        body = await request.json()
        state.bodies.append(body)
        if body.get("token_ids_logprob"):  # a generative PRM: good/bad token logprobs after the tag
            good, bad = body["token_ids_logprob"]
            texts = [body["text"]] if isinstance(body["text"], str) else body["text"]
            outs = []
            for t in texts:
                g, b = (-3.0, -0.05) if t.endswith("WRONG ки") else (-0.05, -3.0)
                outs.append({"text": "+", "output_ids": [good], "meta_info": {
                    "finish_reason": {"type": "length", "length": 1}, "prompt_tokens": len(t), "cached_tokens": 0,
                    "completion_tokens": 1, "output_token_ids_logprobs": [[[g, good, None], [b, bad, None]]]}})
            return JSONResponse(outs[0] if isinstance(body["text"], str) else outs)
        if state.fail_next > 0:
            state.fail_next -= 1
            return Response(status_code=state.fail_status, content="busy")
        single = not (isinstance(body.get("input_ids"), list) and body["input_ids"] and isinstance(body["input_ids"][0], list)) \
            and not isinstance(body.get("text"), list)
        if body.get("input_ids") is not None:
            batch_ids = [body["input_ids"]] if single else body["input_ids"]
        else:
            texts = [body["text"]] if single else body["text"]
            batch_ids = [[ord(c) for c in t] for t in texts]
        n = len(batch_ids)
        params = body.get("sampling_params") or {}
        params = params if isinstance(params, list) else [params] * n
        rids = body.get("rid")
        rids = [rids] if isinstance(rids, str) else (rids or [f"r{time.time_ns()}_{i}" for i in range(n)])
        want_lp = body.get("return_logprob", False)
        want_lp = want_lp if isinstance(want_lp, list) else [want_lp] * n
        if params and all(p.get("max_new_tokens") == 0 for p in params):  # prefill-only scoring
            starts = body.get("logprob_start_len")
            starts = starts if isinstance(starts, list) else [starts] * n
            ks = body.get("top_logprobs_num") or 0
            ks = ks if isinstance(ks, list) else [ks] * n
            outs = [prefill_only(ids, s, k) for ids, s, k in zip(batch_ids, starts, ks)]
            return JSONResponse(outs[0] if single else outs)
        top_n = body.get("top_logprobs_num") or 0
        top_n = top_n if isinstance(top_n, list) else [top_n] * n
        outs = []
        for ids, p, rid, lp, k in zip(batch_ids, params, rids, want_lp, top_n):
            if await _maybe_slow(rid, "".join(chr(i) for i in ids)):
                outs.append({"text": "", "output_ids": [], "meta_info": {
                    "id": rid, "finish_reason": {"type": "abort", "message": "aborted"},
                    "prompt_tokens": len(ids), "cached_tokens": 0, "completion_tokens": 0}})
                continue
            if state.script is not None:
                o = run_script(state, ids, p, bool(lp), int(k or 0))
                o["meta_info"]["id"] = rid
                outs.append(o)
                continue
            r = run_model(state, ids, p)
            meta: dict[str, Any] = {
                "id": rid, "finish_reason": r["finish"], "prompt_tokens": r["prompt_tokens"],
                "cached_tokens": r["cached"], "completion_tokens": len(r["ids"]),
            }
            if state.dp_size > 1 and body.get("routed_dp_rank") is not None:
                meta["dp_rank"] = body["routed_dp_rank"]
            if lp:
                meta["output_token_logprobs"] = [[-0.1, t, None] for t in r["ids"]]
                meta["input_token_logprobs"] = []
                if k:
                    meta["output_top_logprobs"] = [[[-0.1, t, None], [-2.5, t + 1, None]][:k] for t in r["ids"]]
            outs.append({"text": r["text"], "output_ids": r["ids"], "meta_info": meta})
        return JSONResponse(outs[0] if single else outs)

    @app.post("/flush_cache")
    async def flush_cache():
        """Empties the prefix trie (SGLang refuses while requests run; the fake never does)."""
        state.trie.clear()
        state.flushes += 1
        return Response(status_code=200)

    @app.post("/abort_request")
    async def abort_request(request: Request):
        body = await request.json()
        rid = body.get("rid")
        state.aborted.append(rid)
        state.events.setdefault(rid, asyncio.Event()).set()  # also before its /generate waits
        return Response(status_code=200)

    @app.get("/health")
    async def health():  # as SGLang's: 200 once the server takes requests
        return Response(status_code=200)

    @app.get("/model_info")
    async def model_info():
        return {"model_path": "fake-model", "tokenizer_path": "/nonexistent/fake-tokenizer", "is_generation": True}

    @app.post("/tokenize")
    async def tokenize(request: Request):
        if not state.with_tokenize:
            return Response(status_code=404)
        body = await request.json()
        toks = [ord(c) for c in body["prompt"]]
        return {"tokens": toks, "count": len(toks), "max_model_len": 4096}

    @app.post("/detokenize")
    async def detokenize(request: Request):
        if not state.with_tokenize:
            return Response(status_code=404)
        body = await request.json()
        return {"text": "".join(chr(i) for i in body["tokens"])}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        state.completions.append(body)
        if state.fail_next > 0:
            state.fail_next -= 1
            return Response(status_code=state.fail_status, content="busy")
        prompt = body["prompt"]
        ids = [ord(c) for c in prompt]
        n = int(body.get("n", 1))
        rid = f"cmpl-{time.time_ns()}"
        if await _maybe_slow(rid, prompt):
            return Response(status_code=499)
        choices, completion_tokens, cached = [], 0, 0
        for i in range(n):
            seed = body.get("seed")
            p = {"max_new_tokens": body.get("max_tokens", 16), "stop": body.get("stop"),
                 "temperature": body.get("temperature", 1.0),
                 "sampling_seed": None if seed is None else seed + i, "no_stop_trim": False}
            r = run_model(state, ids, p)
            if i == 0:
                cached = r["cached"]
            text = r["text"]  # stop string trimmed, as OpenAI servers do
            toks = list(text)
            completion_tokens += len(toks)
            ch: dict[str, Any] = {"index": i, "text": text,
                                  "finish_reason": "length" if r["finish"]["type"] == "length" else "stop"}
            if state.report_matched_stop and r["finish"]["type"] == "stop":
                ch["matched_stop"] = r["finish"]["matched"]
            if body.get("logprobs") is not None:
                k = int(body["logprobs"])
                ch["logprobs"] = {"tokens": toks, "token_logprobs": [-0.1] * len(toks),
                                  "top_logprobs": [{t: -0.1, t + "~": -2.5} if k > 1 else {t: -0.1} for t in toks],
                                  "text_offset": list(range(len(toks)))}
            else:
                ch["logprobs"] = None
            choices.append(ch)
        usage: dict[str, Any] = {"prompt_tokens": len(ids), "completion_tokens": completion_tokens,
                                 "total_tokens": len(ids) + completion_tokens}
        if state.report_cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return {"id": rid, "object": "text_completion", "model": body.get("model"), "choices": choices, "usage": usage}

    return app


class Server:
    """Runs an app with uvicorn on 127.0.0.1 (random port) in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # do not wait for handlers still sleeping (slow requests)
        self.thread.join(timeout=5)
        self.sock.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def server():
    """A fake SGLang server on a free port; its State is ``server.state``."""
    state = State()
    with Server(make_app(state)) as srv:
        srv.state = state
        yield srv
