"""The OpenAI-compatible ``/v1`` routes: ``GET /v1/models``, ``GET /v1/models/{name}`` and
``POST /v1/chat/completions`` (JSON, or a stream of ``chat.completion.chunk`` events). What the
requests and answers mean is in :mod:`srca.service.openai_facade`."""
from __future__ import annotations

import time
import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from srca.config import SearchConfig

from ..gate import Gate
from ..openai_facade import (answer_pieces, chat_request_model, completion, completion_chunk, finish_reason,
                             model_card, model_names, parse_chat, srca_summary, usage)
from ..reasoning import Narrator
from ..responses import error_body, json_response
from ..runtime import Runtime
from ..schemas import request_body
from ..streaming import KEEPALIVE, ClientGone, EventStreamResponse, cancel_on_disconnect, solve_stream, sse_data


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
    ``content``, the finish reason and (``include_usage``) the usage. The solve is the shared one
    (:func:`~srca.service.streaming.solve_stream`): a cached result tells its decision at once, a
    joined solve replays its events so far."""
    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> bytes:
        return sse_data(completion_chunk(cid, created, model, delta, finish, **extra))

    yield chunk({"role": "assistant", "content": ""})
    narrator = Narrator()
    async for s in solve_stream(rt, problem, cfg, key_id):
        if s.kind == "keepalive":  # a comment line keeps proxies from closing a long, quiet step
            yield KEEPALIVE
        elif s.kind == "event":
            text = narrator.feed(s.event)
            if text:
                yield chunk({"reasoning_content": text})
        elif s.kind == "error":
            yield sse_data({"error": {"message": s.message, "type": "server_error", "code": s.status}})
        else:
            out = s.out
            d = out.data
            yield chunk({"reasoning_content": narrator.finish(d, out.cached)})
            for piece in answer_pieces(d):
                yield chunk({"content": piece})
            yield chunk({}, finish_reason(d), usage=usage(d), srca=srca_summary(out))
            if include_usage:
                yield sse_data({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                "choices": [], "usage": usage(d)})
            yield b"data: [DONE]\n\n"
