"""``POST /solve``: one problem, answered as JSON or (``"stream": true``) as server-sent events
of the search as it runs."""
from __future__ import annotations

from typing import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from srca.config import SearchConfig

from ..gate import Gate
from ..responses import JSON
from ..runtime import Runtime
from ..schemas import request_body, solve_request_model
from ..streaming import KEEPALIVE, ClientGone, EventStreamResponse, cancel_on_disconnect, solve_stream, sse


def router(rt: Runtime, gate: Gate) -> APIRouter:
    r = APIRouter()

    @r.post("/solve", openapi_extra=request_body(solve_request_model()),
            summary="Solve one problem (JSON, or SSE with stream=true)")
    async def solve(request: Request) -> Response:
        key_id = await gate.caller(request)
        inp = await gate.solve_input(request)
        rt.require_solver()
        if inp.stream:
            return EventStreamResponse(lambda: solve_events(rt, inp.problem, inp.config, key_id))
        try:
            out = await cancel_on_disconnect(rt.solve(inp.problem, inp.config, key_id), request.receive)
        except ClientGone:
            return Response(status_code=499)
        return Response(out.text, 200, {"X-SRCA-Cache": "hit" if out.cached else "miss"}, JSON)

    return r


async def solve_events(rt: Runtime, problem: str, cfg: SearchConfig, key_id: str | None) -> AsyncIterator[bytes]:
    """SSE chunks of one solve: its step/checkpoint/select events as they happen (a comment line
    while it is quiet), then ``final`` carrying the whole Solution (or ``error``). The solve is
    the shared one (:func:`~srca.service.streaming.solve_stream`)."""
    final: dict = {}
    async for s in solve_stream(rt, problem, cfg, key_id):
        if s.kind == "keepalive":
            yield KEEPALIVE
        elif s.kind == "event":
            if s.event.get("type") == "final":
                final.update(s.event)
            else:
                yield sse(s.event["type"], s.event)
        elif s.kind == "error":
            yield sse("error", {"type": "error", "status": s.status, "message": s.message})
        else:
            d = s.out.data
            yield sse("final", {"answer": d.get("answer"), "confidence": d.get("confidence"),
                                "stop_reason": d.get("stop_reason"), **final, "type": "final",
                                "cache": "hit" if s.out.cached else "miss", "solution": d})
