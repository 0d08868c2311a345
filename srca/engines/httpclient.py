"""A pooled ``httpx.AsyncClient`` per event loop (a client's connections belong to the loop
that opened them, and engines are used from several loops: ``Solver.solve`` keeps its own)."""
from __future__ import annotations

import asyncio
from typing import Any


class LoopClient:
    def __init__(self, **client_kwargs: Any) -> None:
        self._kwargs = client_kwargs
        self._client: Any = None
        self._loop: Any = None

    def get(self) -> Any:
        """The client of the running loop, opened on first use."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(**self._kwargs)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.aclose()
            except RuntimeError:  # its loop is already closed: nothing left to release
                pass
            self._client = None
