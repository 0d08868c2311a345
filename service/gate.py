"""What every route asks of a request before any work: who calls (API key, rate limit), the
JSON body within the size and time limits, and the request within the per-request caps."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from srca.config import SearchConfig

from .http import read_body
from .limits import check_request
from .runtime import Runtime
from .schemas import SolveInput, parse_solve


class Gate:
    """The checks of one app, over its :class:`Runtime` (auth, limits, base config)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config

    async def caller(self, request: Request) -> str | None:
        """The caller's key id (``None`` when keys are off); 401/429 otherwise."""
        if self.rt.auth.enabled:
            return await self.rt.auth.check(request.headers.get("authorization"))
        return None

    def owner(self, key_id: str | None) -> str | None:
        """Whose jobs a caller may see: its own when keys are on (``None``: any, keys off)."""
        return (key_id or "") if self.rt.auth.enabled else None

    async def body(self, request: Request) -> Any:
        """The request's JSON body (413 over ``max_body_bytes``, 408 past ``body_timeout_s``)."""
        return await read_body(request, self.config.max_body_bytes, self.config.body_timeout_s)

    def check(self, problem: str, cfg: SearchConfig) -> None:
        """422 for a request above the per-request caps (n, tokens, deadline)."""
        c = self.config
        check_request(problem, cfg, c.max_n, c.max_request_tokens, c.max_deadline_s)

    async def solve_input(self, request: Request) -> SolveInput:
        """A ``/solve`` or ``/jobs`` body, parsed and checked."""
        inp = parse_solve(await self.body(request), self.rt.base_config)
        self.check(inp.problem, inp.config)
        return inp
