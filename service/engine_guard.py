"""GuardedEngine: the service's view of its engine.

It wraps the engine the solver calls so that the service can tell *engine* failures from its
own bugs and from client mistakes, and knows whether the engine is up:

* an exception from ``generate`` becomes :class:`EngineFailure` (answered 503 with
  ``Retry-After``; the cause, which may name the engine's URL or quote its error body, goes to
  the log only), except ``ValueError`` (the engine refused this request, e.g. a prompt longer
  than its context: :class:`EngineRejected`, answered 422);
* after a failure the engine is *down* (``/readyz`` says so, 503) until a call succeeds; a
  probe (one greedy token) runs every ``retry_s`` while it is down, so a replica that a load
  balancer took out of rotation comes back by itself;
* a sampled request with ``n`` above the engine's batch cap (``max_batch``, the local engine)
  is split into requests of at most that many rows, so one large fan-out runs as several
  batches instead of allocating every row at once.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from typing import Any, Sequence

from srca.engines.base import GenRequest, GenResult
from srca.seeds import request_seed

log = logging.getLogger("srca.service")


class EngineFailure(Exception):
    """The engine failed or is unreachable. ``str()`` is safe to show a client."""

    public = True  # its message is meant for the client

    def __init__(self, error_id: str) -> None:
        super().__init__(f"the engine is unavailable (error id {error_id})")
        self.error_id = error_id


class EngineRejected(Exception):
    """The engine refused a request as invalid (its message is about the request)."""

    public = True  # its message is meant for the client


def error_id() -> str:
    return uuid.uuid4().hex[:12]


class GuardedEngine:
    def __init__(self, engine: Any, retry_s: float = 5.0) -> None:
        self.inner = engine
        self.info = engine.info
        self.retry_s = retry_s
        self.up = True
        self._probe: asyncio.Task | None = None
        cap = getattr(engine, "max_batch", None)
        self.max_rows = cap if isinstance(cap, int) and cap >= 1 else None

    # the tokenizer may be the server's too (a remote /tokenize): its failures are engine failures
    def encode(self, text: str) -> list[int]:
        return self._guard(self.inner.encode, text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._guard(self.inner.decode, ids)

    def chat_prompt(self, messages: list[dict]) -> str:
        return self._guard(self.inner.chat_prompt, messages)

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as e:
            raise EngineRejected(str(e)) from None
        except Exception as e:
            raise self._failure(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.inner.close()

    @property
    def state(self) -> str:
        return "ready" if self.up else "down"

    # -- generation -----------------------------------------------------------------------
    def _split(self, requests: Sequence[GenRequest]) -> tuple[list[GenRequest], list[int]]:
        """Requests of at most ``max_rows`` rows each, and how many pieces each original took."""
        if self.max_rows is None:
            return list(requests), [1] * len(requests)
        out, pieces = [], []
        for r in requests:
            if r.greedy or r.n <= self.max_rows:  # a greedy request decodes once and is copied
                out.append(r)
                pieces.append(1)
                continue
            k = 0
            for start in range(0, r.n, self.max_rows):
                # piece 0 keeps the seed, so a request within the cap samples exactly as before
                seed = r.seed if r.seed is None or k == 0 else request_seed(r.seed, k)
                out.append(dataclasses.replace(r, n=min(self.max_rows, r.n - start), seed=seed))
                k += 1
            pieces.append(k)
        return out, pieces

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        reqs, pieces = self._split(requests)
        try:
            res = await self.inner.generate(reqs)
        except asyncio.CancelledError:
            raise
        except (json.JSONDecodeError, UnicodeError) as e:  # ValueErrors, but about the engine's answer
            raise self._failure(e) from None
        except ValueError as e:
            raise EngineRejected(str(e)) from None
        except Exception as e:
            raise self._failure(e) from None
        self.up = True
        out, i = [], 0
        for k in pieces:
            out.append([g for part in res[i:i + k] for g in part])
            i += k
        return out

    # -- health ---------------------------------------------------------------------------
    def _failure(self, e: BaseException) -> EngineFailure:
        eid = error_id()
        log.error("engine call failed [error id %s]: %s: %s", eid, type(e).__name__, e)
        self._mark_down()
        return EngineFailure(eid)

    def _mark_down(self) -> None:
        if self.up:
            log.warning("engine is down: probing it every %.1f s", self.retry_s)
        self.up = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while not self.up:
            await asyncio.sleep(self.retry_s)
            if self.up:  # a request got through meanwhile
                return
            try:
                # text, not ids: every engine takes a text prompt, and no tokenizer call blocks the loop
                await asyncio.wait_for(self.inner.generate([GenRequest(prompt="ping", max_new_tokens=1)]),
                                       timeout=max(self.retry_s, 10.0))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("engine probe failed: %s", e)
                continue
            log.info("engine is up again")
            self.up = True
