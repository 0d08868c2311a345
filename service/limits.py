"""Admission: what one request may cost, and what this replica runs at once.

A solve's cost is an estimate of the KV-cache tokens it holds at its peak: ``rows x
(max_new_tokens + probe_max_tokens + prompt tokens)``, where ``rows`` is what it decodes at once
(:func:`srca.admission.width`: ``n``, one for ``cot``, srca's largest wave) and
the prompt is taken as a quarter of the problem's characters plus the template. That is what
grows an engine's memory (the local engine keeps a KV row per sample; a GPU server's KV pool
is shared the same way), so it is what the caps count.

* ``max_n`` and ``max_request_tokens`` bound one request: beyond them a 422 names the field.
* ``max_inflight_tokens`` bounds the sum over the solves running in this replica: a ``/solve``
  that does not fit gets 429 with ``Retry-After`` at once (a client can back off; a queue
  here would only hold its connection), a job waits for room (it was already accepted).
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

from srca.admission import Slots, width
from srca.config import SearchConfig

from .schemas import InputError

PROMPT_OVERHEAD_TOKENS = 128  # a chat template and system prompt, roughly


class Overloaded(Exception):
    """This replica is at its in-flight token budget."""

    public = True  # its message is meant for the client


def solve_cost(problem: str, cfg: SearchConfig) -> int:
    rows = width(cfg)  # the rows it decodes at once (srca's waves: the largest), the Method's rule
    # a probe's tokens sit on its path's KV for a moment: count them too
    per_row = cfg.max_new_tokens + cfg.probe_max_tokens + len(problem) // 4 + PROMPT_OVERHEAD_TOKENS
    return rows * per_row


def check_request(problem: str, cfg: SearchConfig, max_n: int, max_request_tokens: int, max_deadline_s: float) -> None:
    """422 for a request above the per-request caps (the field named)."""
    if cfg.n > max_n:
        raise InputError.one("n", f"must be <= {max_n} on this service, got {cfg.n}")
    cost = solve_cost(problem, cfg)
    if cost > max_request_tokens:
        field = "probe_max_tokens" if cfg.probe_max_tokens > cfg.max_new_tokens else "max_new_tokens"
        raise InputError.one(field, f"n x (max_new_tokens + probe_max_tokens + prompt) is about {cost} tokens; this "
                                    f"service takes at most {max_request_tokens} per request (lower n or {field})")
    if cfg.deadline_s is not None and cfg.deadline_s > max_deadline_s:
        raise InputError.one("deadline_s", f"must be <= {max_deadline_s} on this service, got {cfg.deadline_s}")


class Admission:
    """A token budget shared by the solves of one replica (:class:`srca.admission.Slots`: the
    budget's units are tokens, waiters served in arrival order)."""

    def __init__(self, capacity: int) -> None:
        self.slots = Slots(capacity)

    @property
    def capacity(self) -> int:
        return self.slots.capacity

    @property
    def used(self) -> int:
        return self.slots.used

    @contextlib.asynccontextmanager
    async def hold(self, cost: int, wait: bool) -> AsyncIterator[None]:
        """Hold ``cost`` tokens of the budget while the block runs (a cost above the whole budget
        holds all of it); without ``wait`` raise :class:`Overloaded` when they are not free now."""
        if not wait and not self.slots.free_now(cost):
            raise Overloaded(f"this replica is at its limit of {self.capacity} in-flight tokens")
        async with self.slots.hold(cost):
            yield
