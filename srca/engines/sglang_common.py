"""Pieces shared by the SGLang backends (in-process and HTTP); no SGLang import here.

* :func:`sampling_params` maps a :class:`GenRequest` sample onto SGLang's sampling params.
* :func:`to_result` maps one SGLang output dict (``text``, ``output_ids``, ``meta_info``) onto a
  :class:`GenResult`, cutting it after the first stop string however the engine stopped.
* :class:`StopTokens` turns stop strings into ``stop_token_ids`` (the vocabulary entries whose
  text contains one), so SGLang's scheduler checks a set per token instead of detokenizing the
  tail of every running request at every decode step.
* :func:`tail_rescore` and :func:`with_tail_logprobs`: the last ``GenRequest.logprob_tail``
  log-probabilities of a sample from one prefill-only request after it (``max_new_tokens = 0``,
  ``logprob_start_len``) instead of ``return_logprob`` on every decode step;
* :class:`SubmitGate` holds engine calls for a short window so that those arriving close
  together reach SGLang's scheduler together (the steps of tree searches, while the engine is
  busy: ``GenRequest.may_wait``; :func:`submit_gate`, :class:`LoopGates`);
* :func:`loop_params` and :func:`force_loop_stops`: loop stops inside SGLang
  (``GenRequest.loop_stop``, an engine's ``loop_stops`` option): a custom logit processor
  (``srca.engines.sglang_loops``, server arg ``enable_custom_logit_processor``) forces EOS as the
  next token of a sample the rule finds in a loop, and :func:`to_result` reports that sample as
  ``finish_reason="loop"`` without the forced token;
* :class:`ReplicaRouter` keeps every request of one solve (``GenRequest.group``) on one replica
  so that replica's radix cache holds the solve's whole tree; a new group goes to the replica
  with the least work in flight.

Facts about SGLang 0.5.x these rely on (``sglang/srt``): sampling param names (``stop``,
``top_k == -1`` for no truncation, ``ignore_eos``, ``no_stop_trim``, ``sampling_seed``, which
the sampler only honours with the server arg ``enable_deterministic_inference``);
``meta_info["finish_reason"]`` is ``{"type": "stop", "matched": str | int}``,
``{"type": "length", ...}`` or ``{"type": "abort", ...}``; ``meta_info["output_token_logprobs"]``
holds ``(logprob, token_id, text | None)`` per generated token and ``output_top_logprobs`` a
list of those per position; ``meta_info["dp_rank"]`` names the replica when dp_size > 1.
A prefill-only request (``max_new_tokens = 0``) with ``return_logprob`` and
``logprob_start_len = s`` returns ``meta_info["input_token_logprobs"]`` for positions ``s ..
len(input_ids) - 1``, the first ``None`` (its logit is not computed), each the model's own
log-probability (no temperature: ``LogitsProcessor`` applies none, while decode logprobs are
taken after the temperature), and the prefix is matched in the radix cache only up to ``s``
(``Req.init_next_round_input``), so the prefill is the tail alone.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import uuid
import weakref
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Sequence

from ..repetition import LoopRule, loop_at, stops_here
from ..seeds import sample_seed
from .base import GenRequest, GenResult

ROUTINGS = ("affinity", "round_robin", "sglang")
# SGLang engines: how logprobs are served. rescore: a request's logprob_tail by a prefill after
# sampling; inline: return_logprob while decoding; rescore_all: every logprob request so, whole
# (an experiment for best_of_n, which reads every token's: real_workload.py job best_of_n:rescore_all)
TAIL_LOGPROBS = ("rescore", "inline", "rescore_all")
STOP_MODES = ("tokens", "strings")


def sampling_params(req: GenRequest, i: int, *, ignore_eos: bool = False,
                    stop_tokens: "StopTokens | None" = None) -> dict[str, Any]:
    """SGLang sampling params for sample ``i`` of ``req``.

    ``no_stop_trim`` keeps the matched stop string in ``text`` (SGLang trims it by default);
    :func:`to_result` then cuts the text right after it, as the Engine contract asks.
    With ``stop_tokens``, the stop strings go as ``stop_token_ids`` instead (see
    :class:`StopTokens`), except with ``ignore_eos``: SGLang then skips token stops too.
    """
    p: dict[str, Any] = {
        "max_new_tokens": req.max_new_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k if req.top_k > 0 else -1,
        "no_stop_trim": True,
    }
    if req.stop:
        if stop_tokens is not None and not ignore_eos:
            ids = stop_tokens.ids(req.stop)
            if ids:
                p["stop_token_ids"] = ids
        else:
            p["stop"] = list(req.stop)
    if ignore_eos:
        p["ignore_eos"] = True
    s = sample_seed(req.seed, i)
    if s is not None and not req.greedy:
        p["sampling_seed"] = s
    return p


LOOP_KEY = "srca_loop"  # custom_params: the rule's fields (JSON-safe: they cross SGLang's IPC)


def loop_params(rule: LoopRule, eos: int) -> dict[str, Any]:
    """The ``custom_params`` of a request whose samples :func:`force_loop_stops` watches."""
    return {LOOP_KEY: [rule.n, rule.window, rule.share, rule.every, rule.start], "eos": int(eos)}


@lru_cache(maxsize=64)
def _rule(fields: tuple) -> LoopRule:
    n, window, share, every, start = fields
    return LoopRule(n=n, window=window, share=share, every=every, start=start)


def force_loop_stops(logits: Any, params_list: Sequence[dict | None]) -> Any:
    """SGLang's custom logit processor body (``logits``: one row per request, in
    ``params_list``'s order, each dict with SGLang's ``__req__``): the row of a request whose
    output so far :func:`~srca.repetition.stops_here` under its rule gets every logit but its
    EOS's set to minus infinity, so the sample ends with EOS whatever the sampling params. Costs
    a length test per request and step, and one n-gram scan at a rule's check points."""
    for i, params in enumerate(params_list):
        if not params or LOOP_KEY not in params:
            continue
        req = params.get("__req__")
        if req is None:
            continue
        if stops_here(req.output_ids, _rule(tuple(params[LOOP_KEY]))):
            eos = int(params["eos"])
            logits[i].fill_(float("-inf"))
            logits[i, eos] = 0.0
    return logits


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


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """``(end, stop)`` of the stop string that is complete earliest in ``text``, or None."""
    best: tuple[int, str] | None = None
    for s in stops:
        pos = text.find(s) if s else -1
        if pos >= 0 and (best is None or pos + len(s) < best[0]):
            best = (pos + len(s), s)
    return best


def tokens_to_stop(ids: Sequence[int], stops: Sequence[str], decode) -> int:
    """The fewest leading tokens of ``ids`` whose decoding holds a stop string (``len(ids)`` when
    only the whole does): where an engine that checks stop strings per token would have stopped."""
    def hit(k: int) -> bool:
        return first_stop(decode(list(ids[:k])), stops) is not None

    n = len(ids)
    if n <= 1 or not hit(n - 1):
        return n
    lo, hi = 1, n - 1  # hit(hi) holds; find the smallest k with hit(k)
    while lo < hi:
        mid = (lo + hi) // 2
        if hit(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class StopTokens:
    """Stop strings as token ids: every vocabulary entry whose own text contains one.

    SGLang checks ``stop`` strings by detokenizing the tail of each running request at every
    decode step, in the scheduler's loop; ``stop_token_ids`` is a set lookup. The two agree on
    every stop string that lies inside one token (a blank line, or a full stop and a blank line, in
    byte-level BPE vocabularies). A stop string spread over several tokens is not seen by the
    server; :func:`to_result` still cuts the output after it (the server ran past it, which
    costs tokens, not correctness). The vocabulary is decoded once, on first use.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._texts: list[str] | None = None
        self._ids: dict[tuple[str, ...], list[int]] = {}

    def texts(self) -> list[str]:
        if self._texts is None:
            n = len(self.tokenizer)
            self._texts = list(self.tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False))
        return self._texts

    def ids(self, stops: Sequence[str]) -> list[int]:
        key = tuple(sorted({s for s in stops if s}))
        got = self._ids.get(key)
        if got is None:
            got = [i for i, t in enumerate(self.texts()) if any(s in t for s in key)]
            self._ids[key] = got
        return got


def to_result(out: dict, req: GenRequest, *, decode=None, loops: bool = False) -> GenResult:
    """Map one SGLang output dict onto a :class:`GenResult`.

    With ``loops`` (the engine stops loops: :func:`force_loop_stops`), a sample of a request with
    ``loop_stop`` that ended on a token match right where the rule stops it (or one token after)
    is a loop stop: ``finish_reason="loop"``, cut at the rule's point.

    The result ends right after the first stop string of ``req`` wherever it is: SGLang reports
    a string match (``stop``) or a token match (``stop_token_ids``, :class:`StopTokens`), or ran
    past a stop string spread over tokens; then ``token_ids`` (and logprobs) are cut to the token
    that completes it, found with ``decode``. ``decode(ids)`` also gives the text when the output
    has none.
    """
    meta = out.get("meta_info") or {}
    ids = out.get("output_ids")
    ids = [int(t) for t in ids] if ids is not None else []
    text = out.get("text")
    if text is None:
        text = decode(ids) if decode is not None else ""
    finish, matched = _finish(meta)
    stop_str = None
    logprobs: list[float] = []
    if req.logprobs:
        logprobs = [float(x[0]) if x[0] is not None else 0.0 for x in meta.get("output_token_logprobs") or []]
    if loops and req.loop_stop is not None and finish == "stop" and isinstance(matched, int) and ids:
        # the forced EOS follows the rule's point, or one token later where SGLang's overlap
        # scheduler ran the processor before the previous step's token reached output_ids
        core = ids[:-1] if ids[-1] == matched else ids
        p = loop_at(core, req.loop_stop)
        if p is not None and len(core) - p <= 1:
            ids, logprobs, finish = core[:p], logprobs[:p], "loop"
            text = decode(ids) if decode is not None else text
    hit = first_stop(text, req.stop) if req.stop else None
    if hit is not None:
        end, stop_str = hit
        string_match = finish == "stop" and isinstance(matched, str) and matched in req.stop
        if not string_match and decode is not None and ids:  # the server may have run past it
            k = tokens_to_stop(ids, req.stop, decode)
            ids, logprobs = ids[:k], logprobs[:k]
        finish, text = "stop", text[:end]
    top: list[list[tuple[int, float]]] = []
    if req.top_logprobs:
        for pos in (meta.get("output_top_logprobs") or [])[: req.top_logprobs_steps]:
            alts = [(int(t[1]), float(t[0])) for t in (pos or []) if t[0] is not None]
            alts.sort(key=lambda a: -a[1])
            top.append(alts[: req.top_logprobs])
        if ids:
            top = top[: len(ids)]
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


def tail_to_score(req: GenRequest, mode: str, ids: bool = True) -> int:
    """Tokens of ``req``'s tail to score after sampling (0: logprobs inline, or none): with
    ``mode == "rescore"``, a request that reads only its last ``logprob_tail`` logprobs (and,
    with ``top_logprobs``, their alternatives at every position), whose prompt ids the engine
    has (``ids``); with ``"rescore_all"`` any such request, its whole sample when it names no tail."""
    if mode == "inline" or not ids or not (req.logprobs or req.top_logprobs):
        return 0
    if req.top_logprobs and req.top_logprobs_steps < req.max_new_tokens:  # a head's alternatives (CoT-decoding)
        return 0
    if mode == "rescore_all":
        return req.logprob_tail or req.max_new_tokens
    return req.logprob_tail


def tail_rescore(prompt_ids: Sequence[int], out_ids: Sequence[int], tail: int) -> tuple[list[int], int, int] | None:
    """The prefill-only request that scores the last ``tail`` tokens of a sample:
    ``(input_ids, logprob_start_len, k)`` with ``k = min(tail, len(out_ids))``, or None when
    there is nothing to score. The start sits one token before the tail: SGLang returns None
    for the first position it is given."""
    k = min(tail, len(out_ids))
    if k <= 0 or not prompt_ids:
        return None
    full = list(prompt_ids) + list(out_ids)
    return full, len(full) - k - 1, k


def with_tail_logprobs(out: dict, scored: dict, k: int) -> dict:
    """``out`` (a sample generated without logprobs) with ``meta_info["output_token_logprobs"]``
    filled from the prefill-only output ``scored``: the last ``k`` tokens' log-probabilities,
    NaN before them (and where SGLang gave none); and ``output_top_logprobs`` from its
    ``input_top_logprobs`` when it has them (empty lists before the tail). Its prompt and cached
    tokens are added to the sample's (``prefilled = prompt - cached`` then counts the tail
    prefill). Checks the scored token ids are the sample's."""
    ids = [int(t) for t in out.get("output_ids") or []]
    smeta = scored.get("meta_info") or {}
    got = (smeta.get("input_token_logprobs") or [])[-k:] if k > 0 else []
    if len(got) != k or [int(x[1]) for x in got] != ids[len(ids) - k:]:
        raise RuntimeError(f"SGLang tail rescoring: expected the last {k} token ids of the sample back, "
                           f"got {[x[1] for x in got][:8]}...")
    nan = float("nan")
    lps = [(nan, t, None) for t in ids[: len(ids) - k]]
    lps += [(float(x[0]) if x[0] is not None else nan, int(x[1]), None) for x in got]
    meta = dict(out.get("meta_info") or {})
    meta["output_token_logprobs"] = lps
    for key in ("prompt_tokens", "cached_tokens"):  # the engine's work includes the scoring prefill
        meta[key] = int(meta.get(key, 0) or 0) + int(smeta.get(key, 0) or 0)
    tops = smeta.get("input_top_logprobs")
    if tops:
        meta["output_top_logprobs"] = [[] for _ in ids[: len(ids) - k]] + [list(p or []) for p in tops[-k:]]
    return {**out, "meta_info": meta}


# The SGLang engines' submit window for requests that may wait (GenRequest.may_wait, a tree
# search's steps): 200 ms took DVTS (200 MATH problems x 16, one H100) from 130.7 to 103.5 s,
# prefill batches per decode iteration 1.00 -> 0.46 (benchmarks/RUNS.md, "Eleventh run"); held only while at
# least SUBMIT_WINDOW_BUSY samples are in flight (that run had about 1,500 running).
SUBMIT_WINDOW_MS = 200.0
SUBMIT_WINDOW_BUSY = 256


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _window_ok(window_s: Any) -> bool:
    return _number(window_s) and math.isfinite(window_s) and 0 <= window_s <= 10


def _busy_ok(busy: Any) -> bool:
    return isinstance(busy, int) and not isinstance(busy, bool) and busy >= 0


class SubmitGate:
    """Holds engine calls for up to ``window_s`` seconds so that calls arriving close together
    reach SGLang at once (0: off, every call goes at once). The first call after a release
    opens a window; every call arriving in it waits for its end, then all go together. Only
    while the engine is busy: a call that finds fewer than ``busy`` samples already in flight
    goes at once (there is no decode batch for its prefill to interrupt, and a lone solve
    keeps its latency).

    Why: a search that sends each step as a new request (DVTS, beam, the paper's tree)
    has a few requests end and a few arrive at nearly every decode iteration, and SGLang then
    runs a prefill forward between nearly every two decode steps (the ninth H200 run: DVTS 0.98
    prefill batches per decode iteration, 98.8 ms an iteration against majority's 39.8 ms;
    ``benchmarks/batch_cost.py``). A window longer than an iteration makes fewer, larger
    prefills at the price of up to ``window_s`` more latency per call. Use it on one event loop
    (the in-process engine's own). A call waiting in the window when its group is aborted still
    goes out afterwards; cancelling the caller (the deadline's fallback) aborts it there."""

    def __init__(self, window_s: float = 0.0, busy: int = 0, tally: dict[str, int] | None = None) -> None:
        if not _window_ok(window_s):
            raise ValueError(f"submit window: must be between 0 and 10 seconds, got {window_s!r}")
        if not _busy_ok(busy):
            raise ValueError(f"submit window's busy threshold: must be an int >= 0, got {busy!r}")
        self.window_s = float(window_s)
        self.busy = busy
        self._open: asyncio.Future | None = None
        # calls that waited in a window, windows opened (LoopGates: one tally for every loop's gate)
        self.tally = tally if tally is not None else {"held": 0, "windows": 0}

    @property
    def held(self) -> int:
        return self.tally["held"]

    @property
    def windows(self) -> int:
        return self.tally["windows"]

    async def wait(self, in_flight: int = 0) -> None:
        """Wait for the window (``in_flight``: samples the engine has in flight now)."""
        if self.window_s <= 0 or in_flight < self.busy:
            return
        if self._open is None or self._open.done():
            loop = asyncio.get_running_loop()
            self._open = loop.create_future()
            loop.call_later(self.window_s, _release, self._open)
            self.tally["windows"] += 1
        self.tally["held"] += 1
        await asyncio.shield(self._open)

    def stats(self) -> dict[str, Any]:
        """The window's settings and what it held (calls, windows opened)."""
        return _window_stats(self, self.tally)


def _window_stats(gate: SubmitGate, tally: dict[str, int]) -> dict[str, Any]:
    return {"window_ms": round(gate.window_s * 1000, 3), "busy": gate.busy, **tally}


def _release(f: asyncio.Future) -> None:
    if not f.done():
        f.set_result(None)


def submit_gate(owner: str, window_ms: Any, busy: Any) -> SubmitGate:
    """An engine's :class:`SubmitGate` from its ``submit_window_ms`` and ``submit_window_busy``
    arguments; a bad one is a ValueError naming ``owner``'s argument."""
    window_s = window_ms / 1000 if _number(window_ms) else window_ms
    if not _window_ok(window_s):
        raise ValueError(f"{owner}.submit_window_ms: must be between 0 and 10000, got {window_ms!r}")
    if not _busy_ok(busy):
        raise ValueError(f"{owner}.submit_window_busy: must be an int >= 0, got {busy!r}")
    return SubmitGate(window_s, busy)


class LoopGates:
    """One :class:`SubmitGate` per event loop, each with the settings of the gate passed to
    :meth:`get` (an engine called from several loops, as the HTTP engine is: a gate's window is
    a future of one loop). A new template (a benchmark's A/B swaps it) takes effect at once."""

    def __init__(self) -> None:
        self._by: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.tally = {"held": 0, "windows": 0}  # over every loop's gate, closed loops' included

    def get(self, template: SubmitGate) -> SubmitGate:
        loop = asyncio.get_running_loop()
        tpl, gate = self._by.get(loop, (None, None))
        if tpl is not template or gate is None:
            gate = SubmitGate(template.window_s, template.busy, tally=self.tally)
            self._by[loop] = (template, gate)
        return gate

    def stats(self, template: SubmitGate) -> dict[str, Any]:
        """``template``'s settings and what every loop's gate held."""
        return _window_stats(template, self.tally)


class InFlight:
    """Each group's (one solve's) requests in flight, so that ``abort(group)`` reaches them:
    ``add`` before a call goes out, ``remove`` when it is back (``pairs``: ``(group, request
    key)``; a group without requests is forgotten)."""

    def __init__(self) -> None:
        self._by: dict[str, set[Any]] = {}

    def add(self, pairs: list[tuple[str, Any]]) -> None:
        for g, x in pairs:
            self._by.setdefault(g, set()).add(x)

    def remove(self, pairs: list[tuple[str, Any]]) -> None:
        for g, x in pairs:
            left = self._by.get(g)
            if left is not None:
                left.discard(x)
                if not left:
                    del self._by[g]

    def of(self, group: str) -> list[Any]:
        return sorted(self._by.get(group, ()))

    def __len__(self) -> int:
        return len(self._by)


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
