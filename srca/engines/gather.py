"""Running an engine call's requests concurrently, all or none: :func:`gather_or_cancel`."""
from __future__ import annotations

import asyncio
from typing import Any, Sequence


async def gather_or_cancel(coros: Sequence[Any]) -> list[Any]:
    """Run ``coros`` concurrently; on the first failure or on cancellation, cancel the rest
    (so their cancellation handlers run) before raising."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]
