"""``POST /solve``: one problem, answered as JSON or (``"stream": true``) as server-sent events
of the search as it runs."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from srca.config import SearchConfig

from ..errors import public_error
from ..gate import Gate
from ..responses import JSON
from ..runtime import Runtime
from ..schemas import request_body, solve_request_model
from ..streaming import ClientGone, EventStreamResponse, cancel_on_disconnect, sse


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
    """SSE chunks of one solve: its step/checkpoint/select events as they happen, then ``final``
    carrying the whole Solution (or ``error``). The solve is the shared one: a cached result is
    streamed as its ``final`` at once, and an identical solve already running is joined (its
    events so far first)."""
    queue: asyncio.Queue = asyncio.Queue()
    final: dict = {}

    def on_event(ev: dict) -> None:
        if ev.get("type") == "final":
            final.update(ev)
        else:
            queue.put_nowait(ev)

    task = asyncio.ensure_future(rt.solve(problem, cfg, key_id, on_event=on_event))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (ev := await queue.get()) is not None:
            yield sse(ev["type"], ev)
        try:
            out = task.result()
        except Exception as e:  # the status is already 200: say so in-band, details to the log
            status, message = public_error(e)
            yield sse("error", {"type": "error", "status": status, "message": message})
            return
        d = out.data
        yield sse("final", {"answer": d.get("answer"), "confidence": d.get("confidence"),
                            "stop_reason": d.get("stop_reason"), **final, "type": "final",
                            "cache": "hit" if out.cached else "miss", "solution": d})
    finally:
        task.cancel()
