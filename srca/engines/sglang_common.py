"""Pieces shared by the SGLang backends (in-process and HTTP); no SGLang import here.

* :func:`sampling_params` maps a :class:`GenRequest` sample onto SGLang's sampling params.
* :func:`to_result` maps one SGLang output dict (``text``, ``output_ids``, ``meta_info``) onto a
  :class:`GenResult`.
* :class:`ReplicaRouter` keeps every request of one solve (``GenRequest.group``) on one replica
  so that replica's radix cache holds the solve's whole tree; a new group goes to the replica
  with the least work in flight.
* :func:`chatml` is the generic chat template used when no tokenizer template is available.

Facts about SGLang 0.5.x these rely on (``sglang/srt``): sampling param names (``stop``,
``top_k == -1`` for no truncation, ``ignore_eos``, ``no_stop_trim``, ``sampling_seed``, which
the sampler only honours with the server arg ``enable_deterministic_inference``);
``meta_info["finish_reason"]`` is ``{"type": "stop", "matched": str | int}``,
``{"type": "length", ...}`` or ``{"type": "abort", ...}``; ``meta_info["output_token_logprobs"]``
holds ``(logprob, token_id, text | None)`` per generated token and ``output_top_logprobs`` a
list of those per position; ``meta_info["dp_rank"]`` names the replica when dp_size > 1.
"""
from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import OrderedDict
from typing import Any, Iterable, Sequence

from .base import GenRequest, GenResult

ROUTINGS = ("affinity", "round_robin", "sglang")


def sample_seed(seed: int | None, i: int) -> int | None:
    """Seed of sample ``i`` of a request seeded with ``seed`` (a stream per ``(seed, i)``)."""
    if seed is None:
        return None
    return (int(seed) * 1_000_003 + i) & 0x7FFFFFFF


def sampling_params(req: GenRequest, i: int, *, ignore_eos: bool = False) -> dict[str, Any]:
    """SGLang sampling params for sample ``i`` of ``req``.

    ``no_stop_trim`` keeps the matched stop string in ``text`` (SGLang trims it by default);
    :func:`to_result` then cuts the text right after it, as the Engine contract asks.
    """
    p: dict[str, Any] = {
        "max_new_tokens": req.max_new_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k if req.top_k > 0 else -1,
        "no_stop_trim": True,
    }
    if req.stop:
        p["stop"] = list(req.stop)
    if ignore_eos:
        p["ignore_eos"] = True
    s = sample_seed(req.seed, i)
    if s is not None and not req.greedy:
        p["sampling_seed"] = s
    return p


def new_rid() -> str:
    return uuid.uuid4().hex


def _finish(meta: dict) -> tuple[str, Any]:
    fr = meta.get("finish_reason")
    if isinstance(fr, dict):
        kind = fr.get("type")
        matched = fr.get("matched")
    elif isinstance(fr, str):  # some front ends flatten it
        kind, matched = fr, meta.get("matched_stop")
    else:
        kind, matched = None, None
    if kind not in ("stop", "length", "abort"):
        kind = "abort"
    return kind, matched


def cut_after_stop(text: str, stop: str) -> str:
    """``text`` up to and including the first occurrence of ``stop`` (SGLang stops at the
    first match, so later text, if any, is what the last token decoded to past it)."""
    pos = text.find(stop)
    return text if pos < 0 else text[: pos + len(stop)]


def to_result(out: dict, req: GenRequest, *, decode=None) -> GenResult:
    """Map one SGLang output dict onto a :class:`GenResult`.

    ``decode(ids)`` is used only when the output has no ``text``.
    """
    meta = out.get("meta_info") or {}
    ids = out.get("output_ids")
    ids = [int(t) for t in ids] if ids is not None else []
    text = out.get("text")
    if text is None:
        text = decode(ids) if decode is not None else ""
    finish, matched = _finish(meta)
    stop_str = None
    if finish == "stop" and isinstance(matched, str) and matched in req.stop:
        stop_str = matched
        text = cut_after_stop(text, matched)
    logprobs: list[float] = []
    if req.logprobs:
        logprobs = [float(x[0]) if x[0] is not None else 0.0 for x in meta.get("output_token_logprobs") or []]
    top: list[list[tuple[int, float]]] = []
    if req.top_logprobs:
        for pos in (meta.get("output_top_logprobs") or [])[: req.top_logprobs_steps]:
            alts = [(int(t[1]), float(t[0])) for t in (pos or []) if t[0] is not None]
            alts.sort(key=lambda a: -a[1])
            top.append(alts[: req.top_logprobs])
    generated = len(ids) if out.get("output_ids") is not None else int(meta.get("completion_tokens", 0))
    return GenResult(
        text=text,
        token_ids=ids,
        finish_reason=finish,
        stop_str=stop_str,
        logprobs=logprobs,
        top_logprobs=top,
        prompt_tokens=int(meta.get("prompt_tokens", 0)),
        cached_tokens=int(meta.get("cached_tokens", 0) or 0),
        generated_tokens=generated,
    )


def chatml(messages: Iterable[dict]) -> str:
    """Generic ChatML (``<|im_start|>role\\ncontent<|im_end|>``) with the assistant turn open."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def apply_chat_template(tokenizer: Any, messages: list[dict]) -> str:
    """The tokenizer's chat template when it has one, else :func:`chatml`."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return chatml(messages)


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


class ReplicaRouter:
    """Chooses a replica for each request and counts work per replica.

    ``routing``:

    * ``"affinity"``: every request of one group goes to the replica the group was first given;
      a new group (or a request without a group) goes to the replica with the fewest tokens in
      flight (``max_new_tokens`` of every unfinished sample), ties broken by fewer groups held.
      Each replica's prefix cache then holds whole search trees.
    * ``"round_robin"``: requests are dealt out in turn, ignoring groups (the baseline).
    * ``"sglang"``: no choice here (``pick`` returns ``None``); the backend's own load balancer
      decides. Counters then follow what the backend reports, when it does.

    Groups are remembered in LRU order, at most ``max_groups`` (a forgotten group is placed
    afresh if it comes back).
    """

    def __init__(self, n: int, routing: str = "affinity", max_groups: int = 100_000) -> None:
        if n < 1:
            raise ValueError(f"ReplicaRouter: need at least one replica, got {n}")
        if routing not in ROUTINGS:
            raise ValueError(f"routing: must be one of {ROUTINGS}, got {routing!r}")
        self.n, self.routing, self.max_groups = n, routing, max_groups
        self._groups: OrderedDict[str, int] = OrderedDict()
        self._rr = itertools.count()
        self.tokens_in_flight = [0] * n
        self.requests_in_flight = [0] * n
        self.requests = [0] * n  # samples sent
        self.finished = [0] * n
        self.groups_assigned = [0] * n
        self.prompt_tokens = [0] * n
        self.cached_tokens = [0] * n
        self.generated_tokens = [0] * n

    def _least_loaded(self) -> int:
        return min(range(self.n), key=lambda r: (self.tokens_in_flight[r], self.requests_in_flight[r],
                                                 self.groups_assigned[r], r))

    def pick(self, group: str | None) -> int | None:
        if self.n == 1:
            return 0
        if self.routing == "sglang":
            return None
        if self.routing == "round_robin":
            return next(self._rr) % self.n
        if group is None:
            return self._least_loaded()
        r = self._groups.get(group)
        if r is None:
            r = self._least_loaded()
            self._groups[group] = r
            self.groups_assigned[r] += 1
            if len(self._groups) > self.max_groups:
                _, old = self._groups.popitem(last=False)
                self.groups_assigned[old] -= 1
        else:
            self._groups.move_to_end(group)
        return r

    def start(self, replica: int | None, samples: int, tokens: int) -> None:
        if replica is None:
            return
        self.requests[replica] += samples
        self.requests_in_flight[replica] += samples
        self.tokens_in_flight[replica] += tokens

    def done(self, replica: int | None, samples: int, tokens: int, results: Sequence[GenResult] = ()) -> None:
        if replica is None:
            return
        self.requests_in_flight[replica] -= samples
        self.tokens_in_flight[replica] -= tokens
        self.finished[replica] += len(results)
        for g in results:
            self.prompt_tokens[replica] += g.prompt_tokens
            self.cached_tokens[replica] += g.cached_tokens
            self.generated_tokens[replica] += g.generated_tokens

    def record(self, replica: int, results: Sequence[GenResult]) -> None:
        """Count results the backend placed itself (``routing == "sglang"``)."""
        if 0 <= replica < self.n:
            self.requests[replica] += len(results)
            self.done(replica, 0, 0, results)

    def stats(self) -> dict[str, Any]:
        return {
            "routing": self.routing,
            "replicas": [
                {
                    "replica": r,
                    "requests": self.requests[r],
                    "finished": self.finished[r],
                    "requests_in_flight": self.requests_in_flight[r],
                    "tokens_in_flight": self.tokens_in_flight[r],
                    "groups": self.groups_assigned[r],
                    "prompt_tokens": self.prompt_tokens[r],
                    "cached_tokens": self.cached_tokens[r],
                    "generated_tokens": self.generated_tokens[r],
                }
                for r in range(self.n)
            ],
        }
