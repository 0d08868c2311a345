"""SGLangServerEngine: a running SGLang server (or sglang-router) over its native ``/generate``.

The samples of one ``generate()`` call that go to one replica travel as **one batched
``/generate``** (SGLang's list form: ``input_ids``, ``sampling_params``, ``rid`` one entry per
sample), as the in-process engine hands them to ``async_generate``: one search phase of one solve
is one HTTP request, not one per sample (per-sample requests made the client, not the GPU, the
limit: see benchmarks/README.md). A router in front (sglang-router) sends a batch to one worker,
routed on its first sequence, which is where a solve's requests belong. ``batch=False`` sends one
request per sample instead. Requests go through one pooled aiohttp session per event loop (:mod:`.httpclient`).

* **Retries** follow :class:`~srca.engines.httpclient.RetryPolicy` (connection failures and
  429/502/503/504 answers, exponential backoff with jitter, ``Retry-After`` honoured; a
  ``/generate`` is idempotent, so a try whose connection broke is repeated too), each try (of the
  whole batch) under fresh ``rid``s, a broken try's rids aborted. Another 4xx raises the server's
  message at once (:class:`~srca.engines.httpclient.HTTPStatusError`); when the server stays
  unreachable the error is a :class:`ConnectionError` naming the URL; a read timeout is a
  :class:`TimeoutError`, not retried.
* **Cancellation**: cancelling the awaiting task sends ``POST /abort_request {"rid": ...}`` for
  every request in flight (SGLang would otherwise notice the closed connection only later);
  ``abort(group)`` sends it for one solve's requests without cancelling, and their ``/generate``
  answers with the tokens generated so far (``finish_reason`` ``abort``), which a deadline stop
  counts.
* **Replicas and affinity**: ``url`` may list several servers; every request of one
  ``GenRequest.group`` then goes to one of them (:class:`~srca.engines.sglang_common.ReplicaRouter`).
  A single server started with ``--dp-size N`` gets the same treatment through
  ``routed_dp_rank`` when ``dp_size=N`` is given here. Behind sglang-router (one URL, dp_size 1)
  the router places requests (its default ``cache_aware`` policy keeps shared prefixes
  together); set ``routing_header`` to send the group in a header for a router configured to
  hash on it.
* **Counters** (:meth:`stats`): per replica (URL or dp rank) counted here on the client, since
  the router does not report per-worker counts on ``/generate``; when the server puts
  ``dp_rank`` in ``meta_info`` the samples each rank served are counted too.
* **Tokenizer**: loaded locally with ``AutoTokenizer`` from ``tokenizer`` (a name given that
  does not load is an error), else from the model path the server reports on ``/model_info``;
  if that path is not on this machine (or ``tokenizer=False``), the server's ``/tokenize`` and
  ``/detokenize`` (SGLang 0.5.x has both; blocking calls); if neither works, text mode
  (``EngineInfo(token_ids=False)``, ``encode``/``decode`` raise).
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Sequence

from .base import EngineInfo, GenRequest, GenResult
from .chat_template import apply_chat_template
from .gather import gather_or_cancel
from .hf_decode import hf_decoder
from .httpclient import ConnectionLost, LoopClient, ReadTimedOut, RetryPolicy, retry_policy, send_with_retries
from .sglang_common import (STOP_MODES, SUBMIT_WINDOW_BUSY, SUBMIT_WINDOW_MS, TAIL_LOGPROBS, InFlight, LoopGates,
                            ReplicaRouter, StopTokens, new_rid, sampling_params, submit_gate, tail_rescore,
                            tail_to_score, to_result, with_tail_logprobs)
from .sglang_graphs import SERVER_SEQUENCES

log = logging.getLogger(__name__)


def _down(url: str, err: BaseException) -> ConnectionError:
    return ConnectionError(f"SGLang server at {url} is not reachable ({type(err).__name__}: {err}); "
                           "is it running, and is the URL right?")


def _local_tokenizer(name: str, named: bool) -> Any:
    """The tokenizer ``name`` from this machine (a folder, or the hub when it is reachable).

    ``named``: the user gave ``tokenizer=``; failing to load it is their error (``ValueError``),
    not a reason to go on quietly with another tokenizer. Otherwise ``name`` is only a guess (the
    server's own path, or the model name) and None says it is not here. Only what
    ``from_pretrained`` raises for a name it cannot find or read is caught: ``OSError`` (no such
    folder or hub entry, no hub), ``ValueError`` (files no tokenizer can be built from), and
    ``ImportError`` (transformers or a tokenizer backend missing); anything else is a bug to see.
    """
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, ImportError) as e:
        if named:
            raise ValueError(f"SGLangServerEngine.tokenizer: cannot load {name!r}: {e}") from e
        log.info("SGLangServerEngine: no local tokenizer %r (%s); trying the server's /tokenize", name, e)
        return None


class SGLangServerEngine:
    """Client of SGLang's native HTTP API (see module docstring).

    Args:
        url: base URL (``http://host:30000``) or a list of them (one per replica).
        model: model name for :attr:`info`; asked from ``/model_info`` when not given.
        tokenizer: tokenizer folder/name to load locally (default: the server's model path, and
            the server's ``/tokenize`` when that path is not on this machine). A name given here
            that does not load raises ``ValueError``. ``False``: no local tokenizer (the server's
            ``/tokenize`` when it has one, else text mode).
        timeout_s: read timeout of one request (a long generation must fit in it).
        connect_timeout_s: connect timeout.
        retry: the :class:`~srca.engines.httpclient.RetryPolicy` (or a dict of its fields;
            default ``RetryPolicy()``).
        max_retries: retries after the first try (shorthand: ``retry.attempts - 1``).
        backoff_s: first backoff; doubles each retry (shorthand for ``retry.backoff_s``).
        max_connections: connection pool size (requests beyond it wait for a connection).
        dp_size: data-parallel replicas behind a single URL (``routed_dp_rank`` routing).
        routing: ``"affinity"``, ``"round_robin"`` or ``"sglang"`` (let the server/router place).
        ignore_eos: never stop at EOS (benchmarks on dummy weights); stop strings then go as strings.
        stop_mode: ``"tokens"`` (stop strings as ``stop_token_ids``, needs the local tokenizer; see
            :class:`~srca.engines.sglang_common.StopTokens`) or ``"strings"``.
        routing_header: header carrying ``GenRequest.group`` (for header-hashing routers).
        api_key: sent as ``Authorization: Bearer`` when the server needs one.
        batch: one batched ``/generate`` per replica and ``generate()`` call (default), or one
            request per sample (``False``: a router in front then places every sample itself).
        tail_logprobs: ``"rescore"`` (a request with ``logprob_tail`` and token ids is sampled
            without logprobs and its tail scored by a prefill-only ``/generate`` to the same
            server after it; see :class:`~srca.engines.sglang_inproc.SGLangEngine`), ``"inline"``
            or ``"rescore_all"``.
        submit_window_ms, submit_window_busy: as :class:`~srca.engines.sglang_inproc.
            SGLangEngine`'s: a tree search's steps (``GenRequest.may_wait``) wait up to 200 ms
            to go out with the steps of other solves while this client has 256 samples or more
            in flight, so the server prefills them as one batch (0: off). Measured in process
            (DVTS 0.79x its wall, one H100); through a server not yet.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        model: str | None = None,
        tokenizer: str | bool | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 5.0,
        max_retries: int | None = None,
        backoff_s: float | None = None,
        max_connections: int = 512,
        dp_size: int = 1,
        routing: str = "affinity",
        ignore_eos: bool = False,
        stop_mode: str = "tokens",
        routing_header: str | None = None,
        api_key: str | None = None,
        batch: bool = True,
        retry: RetryPolicy | dict | None = None,
        tail_logprobs: str = "rescore",
        submit_window_ms: float = SUBMIT_WINDOW_MS,
        submit_window_busy: int = SUBMIT_WINDOW_BUSY,
    ) -> None:
        import httpx

        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("SGLangServerEngine: url must name at least one server")
        self.urls = [u.rstrip("/") for u in urls]
        if dp_size < 1:
            raise ValueError(f"SGLangServerEngine.dp_size: must be >= 1, got {dp_size}")
        if dp_size > 1 and len(self.urls) > 1:
            raise ValueError("SGLangServerEngine: use several URLs or dp_size > 1, not both")
        self.retry = retry_policy("SGLangServerEngine", retry, max_retries=max_retries, backoff_s=backoff_s)
        if stop_mode not in STOP_MODES:
            raise ValueError(f"SGLangServerEngine.stop_mode: must be one of {STOP_MODES}, got {stop_mode!r}")
        if tail_logprobs not in TAIL_LOGPROBS:
            raise ValueError(f"SGLangServerEngine.tail_logprobs: must be one of {TAIL_LOGPROBS}, got {tail_logprobs!r}")
        self.tail_logprobs = tail_logprobs
        self.gate = submit_gate("SGLangServerEngine", submit_window_ms, submit_window_busy)
        self._gates = LoopGates()  # the gate's window, one per calling event loop
        self._samples_in_flight = 0  # samples in POSTs now (the submit window's busy test)
        self.dp_size = dp_size
        self.stop_mode = stop_mode
        self.router = ReplicaRouter(max(len(self.urls), dp_size), routing)
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)  # the blocking helpers
        self.timeout_s = timeout_s
        self.ignore_eos = ignore_eos
        self.routing_header = routing_header
        self.batch = bool(batch)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = LoopClient(timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                                max_connections=max_connections, headers=self.headers)
        self._sync: Any = None
        self._bg: set[asyncio.Task] = set()
        self.retries = 0
        self.aborts = 0
        self._in_flight = InFlight()  # each solve's (url, rid) while its POST is out
        self.errors = 0
        self.dp_rank_counts: Counter[int] = Counter()

        info: dict[str, Any] = {}
        if tokenizer is True or (tokenizer is not None and not isinstance(tokenizer, (str, bool))):
            raise ValueError(f"SGLangServerEngine.tokenizer: a tokenizer name, False or None, got {tokenizer!r}")
        if model is None or tokenizer is None:
            info = self._model_info()
        self.model = model or info.get("model_path") or self.urls[0]
        self.remote_tokenizer, self.tokenizer = False, None
        if tokenizer is not False:
            self.tokenizer = _local_tokenizer(tokenizer or info.get("tokenizer_path") or self.model, named=bool(tokenizer))
        if self.tokenizer is None:  # none on this machine: use the server's tokenizer
            self.remote_tokenizer = self._probe_remote_tokenizer()
            if not self.remote_tokenizer:
                log.warning("SGLangServerEngine: no tokenizer for %s; text mode (token_ids=False)", self.urls[0])
        self._decode = hf_decoder(self.tokenizer) if self.tokenizer is not None else None
        self.stop_tokens = StopTokens(self.tokenizer) if self.tokenizer is not None else None
        if self.stop_tokens is not None and stop_mode == "tokens":
            self.stop_tokens.texts()  # decode the vocabulary now, not in the first solve
        has_tok = self.tokenizer is not None or self.remote_tokenizer
        max_ctx = int(info.get("max_context") or 32768)
        self.info = EngineInfo(name="sglang_http", model=str(self.model), token_ids=has_tok,
                               reports_cached_tokens=True, max_context=max_ctx,
                               concurrent_sequences=SERVER_SEQUENCES * len(self.urls))

    # -- blocking helpers (construction, remote tokenizer) --------------------------------------
    def _sync_client(self) -> Any:
        import httpx

        if self._sync is None:
            self._sync = httpx.Client(timeout=self.timeout, headers=self.headers)
        return self._sync

    def _model_info(self) -> dict[str, Any]:
        import httpx

        url = self.urls[0]
        for path in ("/model_info", "/get_model_info"):
            try:
                r = self._sync_client().get(url + path, timeout=httpx.Timeout(10.0, connect=self.timeout.connect))
            except httpx.TransportError as e:
                raise _down(url, e) from e
            if r.status_code == 200:
                return r.json()
        log.warning("SGLangServerEngine: %s has no /model_info; pass model= explicitly", url)
        return {}

    def _probe_remote_tokenizer(self) -> bool:
        import httpx

        try:
            r = self._sync_client().post(self.urls[0] + "/tokenize", json={"prompt": "a", "add_special_tokens": False})
        except httpx.TransportError:
            return False
        return r.status_code == 200 and "tokens" in r.json()

    # -- tokenizer --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if self.tokenizer is not None:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        if self.remote_tokenizer:
            r = self._sync_client().post(self.urls[0] + "/tokenize", json={"prompt": text, "add_special_tokens": False})
            r.raise_for_status()
            return list(r.json()["tokens"])
        raise RuntimeError(f"SGLangServerEngine({self.urls[0]}): no tokenizer (text mode); pass tokenizer=")

    def decode(self, ids: Sequence[int]) -> str:
        if self.tokenizer is not None:
            return self._decode(ids)
        if self.remote_tokenizer:
            r = self._sync_client().post(self.urls[0] + "/detokenize", json={"tokens": list(ids), "skip_special_tokens": False})
            r.raise_for_status()
            return r.json()["text"]
        raise RuntimeError(f"SGLangServerEngine({self.urls[0]}): no tokenizer (text mode); pass tokenizer=")

    def chat_prompt(self, messages: list[dict]) -> str:
        """The local tokenizer's chat template, else generic ChatML."""
        return apply_chat_template(self.tokenizer, messages)

    # -- generation -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        s = self.router.stats()
        for rep in s["replicas"]:
            rep["url"] = self.urls[rep["replica"]] if len(self.urls) > 1 else self.urls[0]
        s.update(retries=self.retries, aborts=self.aborts, errors=self.errors,
                 dp_rank_reported=dict(self.dp_rank_counts))
        return s

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        client = self._http.get()
        if any(r.may_wait for r in requests):  # steps close together go together (submit_window_ms)
            await self._gates.get(self.gate).wait(self._samples_in_flight)
        # Samples grouped per replica (and prompt kind: a SGLang batch is all ids or all text);
        # each group is one batched POST, or one POST per sample when ``batch`` is off.
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for k, req in enumerate(requests):
            replica = self.router.pick(req.group)
            for i in range(req.n):
                # placed by the server/router (replica None): one batch per solve, routed on it
                key = ((replica, req.input_ids is not None, req.group if replica is None else None)
                       if self.batch else (replica, k, i))
                groups.setdefault(key, []).append((k, i))
        calls = [self._post(client, key[0], requests, slots) for key, slots in groups.items()]
        results: list[list[GenResult | None]] = [[None] * r.n for r in requests]
        for slots, outs in zip(groups.values(), await gather_or_cancel(calls)):
            for (k, i), g in zip(slots, outs):
                results[k][i] = g
        return results  # type: ignore[return-value]

    def window_stats(self) -> dict[str, Any]:
        """The submit window's settings and what it held so far (calls, windows opened)."""
        return self._gates.stats(self.gate)

    def _target(self, replica: int | None) -> tuple[str, int | None]:
        """(base URL, routed_dp_rank) of a replica."""
        if replica is None:
            return self.urls[0], None
        if len(self.urls) > 1:
            return self.urls[replica], None
        return self.urls[0], (replica if self.dp_size > 1 else None)

    def _body(self, requests: Sequence[GenRequest], slots: list[tuple[int, int]]) -> dict[str, Any]:
        """The ``/generate`` body for ``slots`` ((request, sample) pairs): SGLang's single form for
        one sample, its batch form (lists, one entry per sample) for several."""
        params, prompts, want_lp, top_n = [], [], [], []
        for k, i in slots:
            req = requests[k]
            params.append(sampling_params(req, i, ignore_eos=self.ignore_eos,
                                          stop_tokens=self.stop_tokens if self.stop_mode == "tokens" else None))
            prompts.append(list(req.input_ids) if req.input_ids is not None else req.prompt)
            tail = self._tail(req)
            want_lp.append(bool(req.logprobs or req.top_logprobs) and not tail)
            top_n.append(0 if tail else int(req.top_logprobs))
        key = "input_ids" if requests[slots[0][0]].input_ids is not None else "text"
        if len(slots) == 1:
            body: dict[str, Any] = {key: prompts[0], "sampling_params": params[0], "return_logprob": want_lp[0]}
            if top_n[0]:
                body["top_logprobs_num"] = top_n[0]
        else:
            body = {key: prompts, "sampling_params": params, "return_logprob": want_lp}
            if any(top_n):
                body["top_logprobs_num"] = top_n
        body["stream"] = False
        return body

    def _tail(self, req: GenRequest) -> int:
        return tail_to_score(req, self.tail_logprobs, ids=req.input_ids is not None)

    async def _post(self, client: Any, replica: int | None, requests: Sequence[GenRequest],
                    slots: list[tuple[int, int]]) -> list[GenResult]:
        """One POST /generate for ``slots`` on ``replica``, retried as a whole (fresh rids)."""
        url, dp_rank = self._target(replica)
        body = self._body(requests, slots)
        if dp_rank is not None:
            body["routed_dp_rank"] = dp_rank
        group = requests[slots[0][0]].group
        headers = {self.routing_header: group} if (self.routing_header and group) else None
        tokens = sum(requests[k].max_new_tokens for k, _ in slots)
        self.router.start(replica, len(slots), tokens)
        self._samples_in_flight += len(slots)
        results: list[GenResult] = []

        async def send() -> Any:  # one try, under fresh rids
            rids = [new_rid() for _ in slots]
            body["rid"] = rids[0] if len(slots) == 1 else rids
            mine = [(requests[k].group, (url, rid)) for (k, _), rid in zip(slots, rids)
                    if requests[k].group is not None]
            self._in_flight.add(mine)  # abort(group) reaches them while the POST is out
            try:
                return await client.post(url + "/generate", json=body, headers=headers)
            except (asyncio.CancelledError, ReadTimedOut, ConnectionLost):
                self._abort_later(url, rids)  # the server may be running them
                raise
            finally:
                self._in_flight.remove(mine)

        def retried() -> None:
            self.retries += 1

        try:
            try:
                resp = await send_with_retries(send, self.retry, what=f"SGLang server at {url}", path="/generate",
                                               timeout_s=self.timeout_s, idempotent=True, on_retry=retried)
                data = resp.json()
                outs = data if isinstance(data, list) else [data]
                if len(outs) != len(slots):
                    raise RuntimeError(f"SGLang server at {url} answered {len(outs)} results for {len(slots)} samples")
            except Exception:
                self.errors += 1
                raise
            tails = [self._tail(requests[k]) for k, _ in slots]
            if any(tails):
                outs = await self._score_tails(client, url, dp_rank, headers, requests, slots, list(outs), tails)
            decode = self.decode if self.info.token_ids else None
            results = [to_result(o, requests[k], decode=decode) for o, (k, _) in zip(outs, slots)]
            for o, g in zip(outs, results):
                rank = (o.get("meta_info") or {}).get("dp_rank")
                if isinstance(rank, int):
                    self.dp_rank_counts[rank] += 1
                    if replica is None and self.router.n > 1:
                        self.router.record(rank, [g])
            return results
        finally:
            self.router.done(replica, len(slots), tokens, results)
            self._samples_in_flight -= len(slots)

    async def _score_tails(self, client: Any, url: str, dp_rank: int | None, headers: dict | None,
                           requests: Sequence[GenRequest], slots: list[tuple[int, int]], outs: list[dict],
                           tails: list[int]) -> list[dict]:
        """Each sample's last ``tails[j]`` log-probabilities from one prefill-only ``/generate``
        (batched) to the URL that sampled it (behind sglang-router the router places it: its
        cache-aware policy sends it where the prefix is cached; elsewhere it is recomputed, the
        same values at more cost); retried like the sampling call."""
        todo = []
        for j, ((k, _), o, tail) in enumerate(zip(slots, outs, tails)):
            got = tail_rescore(requests[k].input_ids or [], o.get("output_ids") or [], tail) if tail else None
            if got is not None:
                todo.append((j, *got))
        if not todo:
            return outs
        body: dict[str, Any] = {"input_ids": [full for _, full, _, _ in todo],
                                "sampling_params": [{"max_new_tokens": 0} for _ in todo],
                                "return_logprob": [True] * len(todo),
                                "logprob_start_len": [start for _, _, start, _ in todo], "stream": False}
        top_n = [int(requests[slots[j][0]].top_logprobs) for j, _, _, _ in todo]
        if any(top_n):
            body["top_logprobs_num"] = top_n
        if dp_rank is not None:
            body["routed_dp_rank"] = dp_rank

        async def send() -> Any:
            rids = [new_rid() for _ in todo]
            body["rid"] = rids
            try:
                return await client.post(url + "/generate", json=body, headers=headers)
            except (asyncio.CancelledError, ReadTimedOut, ConnectionLost):
                self._abort_later(url, rids)
                raise

        resp = await send_with_retries(send, self.retry, what=f"SGLang server at {url}", path="/generate",
                                       timeout_s=self.timeout_s, idempotent=True)
        scored = resp.json()
        scored = scored if isinstance(scored, list) else [scored]
        if len(scored) != len(todo):
            raise RuntimeError(f"SGLang server at {url} answered {len(scored)} results for {len(todo)} tail scorings")
        for (j, _, _, k), sc in zip(todo, scored):
            outs[j] = with_tail_logprobs(outs[j], sc, k)
        return outs

    async def flush_cache(self) -> bool:
        """Empty every server's prefix cache (``/flush_cache``; between benchmark runs). True
        when all of them did (SGLang refuses while requests run)."""
        client = self._http.get()
        ok = True
        for url in self.urls:
            resp = await client.post(url + "/flush_cache")
            ok = ok and resp.status_code == 200
        return ok

    def abort(self, group: str) -> None:
        """End the samples of ``group`` (one solve) in flight: ``/abort_request`` for each, and the
        ``/generate`` that holds them answers with what the server had generated, with
        ``finish_reason="abort"`` (SGLang answers a user abort like a finished request), so a
        deadline stop counts those tokens. Call it on the loop that awaits the call."""
        for url, rid in self._in_flight.of(group):
            self._abort_later(url, [rid])

    def _abort_later(self, url: str, rids: list[str]) -> None:
        """Fire ``/abort_request`` for each of ``rids`` without waiting (we are being cancelled)."""
        self.aborts += len(rids)
        for rid in rids:
            t = asyncio.get_running_loop().create_task(self._abort(url, rid))
            self._bg.add(t)
            t.add_done_callback(self._bg.discard)

    async def _abort(self, url: str, rid: str) -> None:
        try:
            await self._http.get().post(url + "/abort_request", json={"rid": rid}, timeout_s=5.0)
        except Exception as e:  # best effort: the server may be gone or the request finished
            log.debug("abort of %s at %s failed: %s", rid, url, e)

    async def close(self) -> None:
        if self._bg:
            await asyncio.wait(list(self._bg), timeout=5)
        await self._http.aclose()
        if self._sync is not None:
            self._sync.close()
            self._sync = None
