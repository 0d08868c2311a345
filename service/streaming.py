"""Client disconnects, server-sent events, and a solve as a stream.

A solve must stop when its client goes away. ``until_disconnect`` waits on the ASGI ``receive``
channel for ``http.disconnect``; ``cancel_on_disconnect`` races it against the work.
:func:`solve_stream` runs one solve and yields its events as they happen, keepalive ticks while
it is quiet, then its outcome or its error: what ``POST /solve`` and ``/v1/chat/completions``
stream, each in its own format.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.responses import Response

from .errors import public_error
from .responses import json_text

log = logging.getLogger("srca.service")

KEEPALIVE_S = 15.0  # a quiet stream sends a comment line this often (proxies close idle streams at 30-60 s)
KEEPALIVE = b": keepalive\n\n"


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def until_disconnect(receive: Callable[[], Awaitable[dict]]) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(work: Awaitable[Any], receive: Callable[[], Awaitable[dict]]) -> Any:
    """Await ``work``; if the client disconnects first, cancel it and raise :class:`ClientGone`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        return task.result()
    task.cancel()
    raise ClientGone()


def sse(event: str, data: Any) -> bytes:
    """One server-sent event: its name and its JSON data."""
    return f"event: {event}\ndata: {json_text(data)}\n\n".encode()


def sse_data(data: Any) -> bytes:
    """One unnamed server-sent event (a ``data:`` line alone, as OpenAI's streams send)."""
    return b"data: " + json_text(data).encode() + b"\n\n"


_END = object()


class EventStreamResponse(Response):
    """``text/event-stream`` fed by an async generator of ready-made chunks (bytes). The
    generator runs as a task that is cancelled when the client disconnects, which cancels the
    solve it drives."""

    media_type = "text/event-stream"

    def __init__(self, chunks: Callable[[], AsyncIterator[bytes]], headers: dict[str, str] | None = None) -> None:
        self.status_code = 200
        self.background = None
        hdrs = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                "x-accel-buffering": "no", **{k.lower(): v for k, v in (headers or {}).items()}}
        # no content-length: the body is open-ended
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()]
        self.chunks = chunks

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            try:
                async for chunk in self.chunks():
                    queue.put_nowait(chunk)
            finally:
                queue.put_nowait(_END)

        producer = asyncio.ensure_future(pump())
        watcher = asyncio.ensure_future(until_disconnect(receive))
        watcher.add_done_callback(lambda _: producer.cancel())
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            while True:
                chunk = await queue.get()
                if chunk is _END or watcher.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not watcher.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away while we were writing
            producer.cancel()
        finally:
            watcher.cancel()
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


@dataclass
class Streamed:
    """One item of :func:`solve_stream`: ``kind`` ``event`` (a search event), ``keepalive``
    (nothing happened for a while), ``done`` (``out``: the runtime's outcome) or ``error``
    (``status`` and the public ``message``; the details went to the log)."""

    kind: str
    event: dict | None = None
    out: Any = None
    status: int = 0
    message: str = ""


async def solve_stream(rt: Any, problem: str, cfg: Any, key_id: str | None,
                       keepalive_s: float | None = None) -> AsyncIterator[Streamed]:
    """One solve through ``rt.solve`` (the shared one: a cached result ends at once, an identical
    running solve is joined, its events so far first), as :class:`Streamed` items. Closing the
    generator (the client went away) cancels the solve."""
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(rt.solve(problem, cfg, key_id, on_event=queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    wait = KEEPALIVE_S if keepalive_s is None else keepalive_s
    try:
        while True:
            try:
                ev = await asyncio.wait_for(queue.get(), wait)
            except asyncio.TimeoutError:
                yield Streamed("keepalive")
                continue
            if ev is None:
                break
            yield Streamed("event", event=ev)
        try:
            out = task.result()
        except Exception as e:  # the status is already 200: the caller says so in-band
            status, message = public_error(e)
            yield Streamed("error", status=status, message=message)
            return
        yield Streamed("done", out=out)
    finally:
        task.cancel()
