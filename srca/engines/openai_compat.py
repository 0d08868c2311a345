"""OpenAIEngine: any OpenAI-compatible server through ``POST {base_url}/completions``.

Works on text (``EngineInfo(token_ids=False)``): a request's ``prompt`` is sent as is, and a
request given as ``input_ids`` is sent as a token-id list, which vLLM and SGLang accept. One
HTTP request per ``GenRequest`` with ``n`` choices, ``stop``, ``seed``, ``temperature``,
``top_p`` (``top_k`` only when set, a vLLM/SGLang extension) and ``logprobs``.

What such servers do not say, and how it is handled:

* **Which stop string matched.** OpenAI trims it from ``text``. SGLang says it in
  ``choices[].matched_stop``, vLLM in ``choices[].stop_reason``; they are used when present and
  the stop string is put back at the end of ``text`` (the Engine contract keeps it). When the
  server says neither, a ``"stop"`` finish on a request with stop strings is taken as its first
  stop string (logged once): EOS and a stop string cannot be told apart then.
* **Cached prompt tokens.** Read from ``usage.prompt_tokens_details.cached_tokens``;
  ``info.reports_cached_tokens`` turns True the first time a server returns it. A one-time
  warning says so when it does not (then ``cached_tokens`` is 0).
* **Token ids.** With ``tokenizer`` (a local Hugging Face name or folder) ``token_ids`` are the
  tokenization of the returned text (a re-tokenization, close to but not always the server's
  own tokens) and ``generated_tokens == len(token_ids)``. Without one ``token_ids`` is empty
  and ``generated_tokens`` is the number of log-probability entries (always requested), or the
  usage count split over the ``n`` choices.
* **Chat template.** ``chat_prompt`` applies the tokenizer's template when ``tokenizer`` is
  given, else generic ChatML (``<|im_start|>role\\n...<|im_end|>``), right for Qwen-family
  models and wrong for others: pass ``tokenizer`` for those.

Retries follow :class:`~srca.engines.httpclient.RetryPolicy`, as in every HTTP client here:
connection failures and 429/502/503/504 answers, exponential backoff with jitter,
``Retry-After`` honoured; a completion is idempotent, so a try whose connection broke is
repeated too. Another 4xx raises the server's message at once
(:class:`~srca.engines.httpclient.HTTPStatusError`), an unreachable server a
:class:`ConnectionError` naming the URL, a read timeout a :class:`TimeoutError`. A cancelled
caller closes its connection, which vLLM and SGLang take as an abort.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

from .base import EngineInfo, GenRequest, GenResult
from .chat_template import apply_chat_template
from .gather import gather_or_cancel
from .httpclient import LoopClient, RetryPolicy, retry_policy, send_with_retries

log = logging.getLogger(__name__)


class OpenAIEngine:
    """Client of an OpenAI-compatible ``/v1/completions`` endpoint (see module docstring).

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (``/v1`` is added when missing).
        model: the model name the server expects.
        api_key: sent as ``Authorization: Bearer``.
        tokenizer: local tokenizer name/folder for token ids, counts and the chat template.
        timeout_s, connect_timeout_s, max_connections: HTTP behaviour.
        retry: the :class:`~srca.engines.httpclient.RetryPolicy` (or a dict of its fields;
            default ``RetryPolicy()``); ``max_retries`` (retries after the first try) and
            ``backoff_s`` are shorthands for its ``attempts - 1`` and ``backoff_s``.
        max_context: reported in :attr:`info`.
        ignore_eos: send ``ignore_eos`` (vLLM/SGLang extension; benchmarks on dummy weights).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        tokenizer: str | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 5.0,
        max_retries: int | None = None,
        backoff_s: float | None = None,
        max_connections: int = 256,
        max_context: int = 32768,
        ignore_eos: bool = False,
        retry: RetryPolicy | dict | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.retry = retry_policy("OpenAIEngine", retry, max_retries=max_retries, backoff_s=backoff_s)
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self.ignore_eos = ignore_eos
        self.tokenizer = None
        if tokenizer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.info = EngineInfo(name="openai", model=model, token_ids=False, reports_cached_tokens=False,
                               max_context=max_context)
        self.retries = 0
        self._http = LoopClient(timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                                max_connections=max_connections, headers=self.headers)
        self._warned_cache = False
        self._warned_stop = False

    # -- tokenizer --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise RuntimeError("OpenAIEngine: encode needs a local tokenizer (pass tokenizer=)")
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        if self.tokenizer is None:
            raise RuntimeError("OpenAIEngine: decode needs a local tokenizer (pass tokenizer=)")
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict]) -> str:
        return apply_chat_template(self.tokenizer, messages)

    # -- generation -------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        client = self._http.get()
        return await gather_or_cancel([self._one(client, r) for r in requests])

    def _body(self, req: GenRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": req.prompt if req.prompt is not None else list(req.input_ids or []),
            "max_tokens": req.max_new_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "n": req.n,
            # always ask for per-token entries: they give the exact generated-token count
            "logprobs": max(1, req.top_logprobs),
        }
        if req.top_k > 0:
            body["top_k"] = req.top_k
        if req.stop:
            body["stop"] = list(req.stop)
        if req.seed is not None:
            body["seed"] = req.seed
        if self.ignore_eos:
            body["ignore_eos"] = True
        return body

    async def _one(self, client: Any, req: GenRequest) -> list[GenResult]:
        body = self._body(req)

        def retried() -> None:
            self.retries += 1

        resp = await send_with_retries(lambda: client.post(self.base_url + "/completions", json=body), self.retry,
                                       what=f"OpenAI-compatible server at {self.base_url}", path="/completions",
                                       timeout_s=self.timeout_s, idempotent=True, on_retry=retried)
        return self._results(req, resp.json())

    def _results(self, req: GenRequest, data: dict) -> list[GenResult]:
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if cached is not None and not self.info.reports_cached_tokens:
            self.info = dataclasses.replace(self.info, reports_cached_tokens=True)
        elif cached is None and not self._warned_cache:
            self._warned_cache = True
            log.warning("OpenAIEngine: %s does not return usage.prompt_tokens_details.cached_tokens; "
                        "cached_tokens will read 0 (prefix-cache reuse is not measured)", self.base_url)
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != req.n:
            raise RuntimeError(f"OpenAI-compatible server at {self.base_url}: asked for n={req.n}, got {len(choices)} choices")
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_total = int(usage.get("completion_tokens", 0))
        out = []
        for ch in choices:
            text = ch.get("text") or ""
            fr = ch.get("finish_reason")
            finish = fr if fr in ("stop", "length", "abort") else "stop"
            stop_str = None
            if finish == "stop" and req.stop:
                matched = ch.get("matched_stop", ch.get("stop_reason"))
                if isinstance(matched, str) and matched in req.stop:
                    stop_str = matched
                elif "matched_stop" not in ch and "stop_reason" not in ch:
                    stop_str = req.stop[0]
                    if not self._warned_stop:
                        self._warned_stop = True
                        log.warning("OpenAIEngine: %s does not say which stop string matched; a 'stop' finish is "
                                    "read as %r (EOS cannot be told apart)", self.base_url, stop_str)
                if stop_str is not None and not text.endswith(stop_str):
                    text += stop_str
            lp = ch.get("logprobs") or {}
            token_lps = [float(x) if x is not None else 0.0 for x in (lp.get("token_logprobs") or [])]
            top: list[list[tuple[int, float]]] = []
            if req.top_logprobs:
                for alts in (lp.get("top_logprobs") or [])[: req.top_logprobs_steps]:
                    pairs = sorted(((self._token_id(t), float(v)) for t, v in (alts or {}).items()), key=lambda a: -a[1])
                    top.append(pairs[: req.top_logprobs])
            if self.tokenizer is not None:
                ids = self.encode(text)
                generated = len(ids)
            else:
                ids = []
                generated = len(token_lps) if lp.get("token_logprobs") is not None else completion_total // max(1, req.n)
            out.append(GenResult(
                text=text, token_ids=ids, finish_reason=finish, stop_str=stop_str,
                logprobs=token_lps if req.logprobs else [], top_logprobs=top,
                prompt_tokens=prompt_tokens, cached_tokens=int(cached or 0), generated_tokens=generated,
            ))
        return out

    def _token_id(self, token: str) -> int:
        """Id of an alternative given as text: its single token under the local tokenizer, else -1."""
        if self.tokenizer is not None:
            ids = self.tokenizer.encode(token, add_special_tokens=False)
            if len(ids) == 1:
                return int(ids[0])
        return -1

    async def close(self) -> None:
        await self._http.aclose()
