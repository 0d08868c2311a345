"""The OpenAI-compatible ``/v1`` routes: ``GET /v1/models``, ``GET /v1/models/{name}`` and
``POST /v1/chat/completions`` (JSON, or a stream of ``chat.completion.chunk`` events). What the
requests and answers mean is in :mod:`srca.service.openai_facade`."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from srca.config import SearchConfig

from ..errors import public_error
from ..gate import Gate
from ..openai_facade import (answer_pieces, chat_request_model, completion, completion_chunk, finish_reason,
                             model_card, model_names, parse_chat, srca_summary, usage)
from ..reasoning import Narrator
from ..responses import error_body, json_response
from ..runtime import Runtime
from ..schemas import request_body
from ..streaming import ClientGone, EventStreamResponse, cancel_on_disconnect, sse_data

KEEPALIVE_S = 15.0  # a quiet stream sends a comment line this often (proxies close idle streams at 30-60 s)


def router(rt: Runtime, gate: Gate) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["openai"])

    @r.get("/models")
    async def list_models(request: Request) -> Response:
        await gate.caller(request)
        return json_response({"object": "list", "data": [model_card(n, m) for n, m in model_names().items()]})

    @r.get("/models/{name}")
    async def get_model(name: str, request: Request) -> Response:
        await gate.caller(request)
        m = model_names().get(name)
        if m is None:
            return json_response(error_body(request.url.path, f"unknown model {name!r}", "invalid_request_error",
                                            "model", code="model_not_found"), 404)
        return json_response(model_card(name, m))

    @r.post("/chat/completions", openapi_extra=request_body(chat_request_model()))
    async def chat(request: Request) -> Response:
        key_id = await gate.caller(request)
        model, problem, cfg, stream, include_usage = parse_chat(await gate.body(request), rt.base_config)
        gate.check(problem, cfg)
        rt.require_solver()
        cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
        if stream:
            return EventStreamResponse(lambda: chunks(rt, cid, created, model, problem, cfg, include_usage, key_id))
        try:
            out = await cancel_on_disconnect(rt.solve(problem, cfg, key_id), request.receive)
        except ClientGone:
            return Response(status_code=499)
        return json_response(completion(cid, created, model, out))

    return r


async def chunks(rt: Runtime, cid: str, created: int, model: str, problem: str, cfg: SearchConfig,
                 include_usage: bool, key_id: str | None = None) -> AsyncIterator[bytes]:
    """The stream of one chat completion: the role, then the search as it runs, told as
    ``reasoning_content`` deltas (see :mod:`srca.service.reasoning`: each step's kept text,
    checkpoint answers, the answers' tally), the decision, then the answer's reasoning as
    ``content``, the finish reason and (``include_usage``) the usage. The solve is the shared one:
    a cached result tells its decision at once, a joined solve replays its events so far."""
    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
        return sse_data(completion_chunk(cid, created, model, delta, finish, **extra))

    yield chunk({"role": "assistant", "content": ""})
    queue: asyncio.Queue = asyncio.Queue()

    def on_event(ev: dict) -> None:
        queue.put_nowait(ev)

    narrator = Narrator()
    task = asyncio.ensure_future(rt.solve(problem, cfg, key_id, on_event=on_event))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while True:
            try:
                ev = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:  # a comment line keeps proxies from closing a long, quiet step
                yield b": keepalive\n\n"
                continue
            if ev is None:
                break
            text = narrator.feed(ev)
            if text:
                yield chunk({"reasoning_content": text})
        try:
            out = task.result()
        except Exception as e:  # the status is already 200: say so in-band, details to the log
            status, message = public_error(e)
            yield sse_data({"error": {"message": message, "type": "server_error", "code": status}})
            return
        d = out.data
        yield chunk({"reasoning_content": narrator.finish(d, out.cached)})
        for piece in answer_pieces(d):
            yield chunk({"content": piece})
        yield chunk({}, finish_reason(d), usage=usage(d), srca=srca_summary(out))
        if include_usage:
            yield sse_data({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [], "usage": usage(d)})
        yield b"data: [DONE]\n\n"
    finally:
        task.cancel()
