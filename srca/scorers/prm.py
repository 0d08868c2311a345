"""PRMScorer: a process reward model served by SGLang, behind the :class:`~srca.scorers.Scorer`
protocol. It returns, per path, the PRM's score in [0, 1] of the path's LAST step given the
whole path; the controller aggregates step scores (last/min/prod/mean).

Two ways to read a step reward, both one batched SGLang call per :meth:`score`:

* ``mode="reward"`` (Qwen2.5-Math-PRM style): the path is formatted as the PRM was trained, steps
  joined by ``step_separator`` (``<extra_0>``) inside the chat template, and the text is cut
  right after the last separator. A reward model served with ``is_embedding=True`` and LAST
  pooling then reads the reward at that separator: SGLang's ``encode`` in process, or
  ``POST /classify`` over HTTP. A 2-value output is read as logits ``[wrong, right]``
  (probability of ``label_index``), a 1-value output through a sigmoid. Note: SGLang 0.5.x
  registers reward heads such as ``Qwen2ForRewardModel`` and ``LlamaForSequenceClassification``
  but not ``Qwen2ForProcessRewardModel`` itself; Qwen2.5-Math-PRM runs once SGLang serves that
  architecture (or a checkpoint re-headed as a sequence classifier), the plumbing here is the same.
* ``mode="token"`` (Math-Shepherd style generative PRM): steps each end with a tag
  (``step_separator``, e.g. ``"ки"``); a one-token greedy generation after the last tag returns
  the log-probabilities of ``good_token`` and ``bad_token`` (``token_ids_logprob``), and the
  score is ``p(good) / (p(good) + p(bad))``. Any SGLang generation server or engine serves it,
  and its radix cache shares the path prefixes between steps.

Step texts are stripped of surrounding whitespace (the step delimiter) before formatting.
SGLang is imported only when an in-process PRM is built. Over HTTP, calls are retried by
:class:`~srca.engines.httpclient.RetryPolicy` like the engines' (scoring is idempotent).
"""
from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any, Sequence

from ..engines.chat_template import apply_chat_template
from ..engines.httpclient import LoopClient, RetryPolicy, retry_policy, send_with_retries

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
MODES = ("reward", "token")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def reward_to_prob(emb: Sequence[float], label_index: int = 1) -> float:
    """A reward head's output at the last separator as a probability."""
    if len(emb) == 1:
        return _sigmoid(float(emb[0]))
    if len(emb) == 2:
        a, b = float(emb[0]), float(emb[1])
        m = max(a, b)
        ea, eb = math.exp(a - m), math.exp(b - m)
        return (eb if label_index == 1 else ea) / (ea + eb)
    raise ValueError(f"PRMScorer: reward output has {len(emb)} values; expected 1 (score) or 2 (logits)")


def good_bad_prob(lps: Sequence[Any], good_id: int, bad_id: int) -> float:
    """``p(good) / (p(good) + p(bad))`` from SGLang's ``output_token_ids_logprobs[0]``
    entries ``(logprob, token_id, text)``."""
    by_id = {int(e[1]): float(e[0]) for e in lps if e[0] is not None}
    if good_id not in by_id or bad_id not in by_id:
        raise ValueError(f"PRMScorer: server returned no logprob for tokens {good_id}/{bad_id}")
    g, b = by_id[good_id], by_id[bad_id]
    m = max(g, b)
    return math.exp(g - m) / (math.exp(g - m) + math.exp(b - m))


class PRMScorer:
    """Process reward model scorer (see module docstring).

    Give exactly one of ``model_path`` (in-process ``sglang.Engine``; ``server_args`` go to it,
    e.g. ``load_format="dummy"``, ``mem_fraction_static=0.2``) or ``url`` (a running SGLang server
    with the PRM; ``/classify`` or ``/generate``). Without either (the scorer registry builds it
    bare, ``SearchConfig(scorer="prm")``), ``$SRCA_PRM_URL`` or else ``$SRCA_PRM_MODEL`` is used.

    Args:
        mode: ``"reward"`` or ``"token"``.
        tokenizer: tokenizer name/folder (default ``model_path``); gives the chat template and
            the good/bad token ids. Without one (HTTP only): generic ChatML, and ``"token"``
            mode needs ``good_token_id``/``bad_token_id``.
        step_separator: ``"<extra_0>"`` for Qwen2.5-Math-PRM; ``"ки"`` for Math-Shepherd.
        system_prompt: system turn of the chat template (``mode="reward"``); None for none.
        chat: format inside the chat template (default: True for reward, False for token).
        label_index: which of two logits means "correct".
        max_batch: paths per SGLang call.
        timeout_s: read timeout of one HTTP call.
        retry: the HTTP calls' :class:`~srca.engines.httpclient.RetryPolicy` (or a dict of its
            fields; default ``RetryPolicy()``).
    """

    name = "prm"
    uses_logprobs = False  # it reads the path's text

    def __init__(self, model_path: str | None = None, *, url: str | None = None, mode: str = "reward",
                 tokenizer: str | None = None, step_separator: str | None = None,
                 system_prompt: str | None = QWEN_PRM_SYSTEM, chat: bool | None = None,
                 good_token: str = "+", bad_token: str = "-", good_token_id: int | None = None,
                 bad_token_id: int | None = None, label_index: int = 1, max_batch: int = 256,
                 timeout_s: float = 300.0, retry: RetryPolicy | dict | None = None, **server_args: Any) -> None:
        if model_path is None and url is None:  # the registry builds scorers without options
            url = os.environ.get("SRCA_PRM_URL") or None
            model_path = None if url else (os.environ.get("SRCA_PRM_MODEL") or None)
        if (model_path is None) == (url is None):
            raise ValueError("PRMScorer: give exactly one of model_path (in process) or url (server)")
        if mode not in MODES:
            raise ValueError(f"PRMScorer.mode: must be one of {MODES}, got {mode!r}")
        if label_index not in (0, 1):
            raise ValueError(f"PRMScorer.label_index: must be 0 or 1, got {label_index}")
        if max_batch < 1:
            raise ValueError(f"PRMScorer.max_batch: must be >= 1, got {max_batch}")
        if url is not None and server_args:
            raise ValueError(f"PRMScorer: server options {sorted(server_args)} only apply with model_path")
        self.mode = mode
        self.url = url.rstrip("/") if url else None
        self.sep = step_separator or ("<extra_0>" if mode == "reward" else "ки")
        self.system_prompt = system_prompt
        self.chat = (mode == "reward") if chat is None else chat
        self.label_index, self.max_batch, self.timeout_s = label_index, max_batch, timeout_s
        self.retry = retry_policy("PRMScorer", retry)
        self.retries = 0  # HTTP tries repeated
        self.calls = 0  # SGLang calls made
        self.tokenizer = None
        tok_name = tokenizer or model_path
        if tok_name is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tok_name)
        self.good_id, self.bad_id = good_token_id, bad_token_id
        if mode == "token":
            if self.good_id is None or self.bad_id is None:
                if self.tokenizer is None:
                    raise ValueError("PRMScorer(mode='token'): needs a tokenizer or good_token_id and bad_token_id")
                self.good_id = self.tokenizer.encode(good_token, add_special_tokens=False)[-1]
                self.bad_id = self.tokenizer.encode(bad_token, add_special_tokens=False)[-1]
        self._engine = None
        self._client = LoopClient(timeout_s=self.timeout_s)
        if model_path is not None:
            import sglang

            args = dict(model_path=model_path, log_level="error")
            if mode == "reward":
                args["is_embedding"] = True
            args.update(server_args)
            self._engine = sglang.Engine(**args)
            # SGLang binds to the first loop that uses it: keep every call on one private loop.
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="srca-prm-loop", daemon=True)
            self._thread.start()

    # -- formatting ---------------------------------------------------------------------------
    def format(self, problem: str, steps: Sequence[str]) -> str:
        """The text whose last token is the separator after the last step."""
        steps = [s.strip() for s in steps]
        if self.mode == "reward":
            body = "".join(s + self.sep for s in steps)
        else:
            body = "\n".join(f"{s} {self.sep}" for s in steps)
        if not self.chat:
            return f"{problem} {body}"
        msgs = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + \
            [{"role": "user", "content": problem}]
        return apply_chat_template(self.tokenizer, msgs) + body

    # -- scoring ------------------------------------------------------------------------------
    async def score(self, items: Sequence[Any]) -> list[float]:
        """Score in [0, 1] of each path's last step (0.5 for a path with no steps)."""
        out = [0.5] * len(items)
        todo = [(k, self.format(it.problem, it.steps)) for k, it in enumerate(items) if it.steps]
        for lo in range(0, len(todo), self.max_batch):
            chunk = todo[lo: lo + self.max_batch]
            scores = await self._score_texts([t for _, t in chunk])
            for (k, _), s in zip(chunk, scores):
                out[k] = min(1.0, max(0.0, s))
        return out

    async def _score_texts(self, texts: list[str]) -> list[float]:
        self.calls += 1
        if self._engine is not None:
            fut = asyncio.run_coroutine_threadsafe(self._inproc(texts), self._loop)
            outs = await asyncio.wrap_future(fut)
        else:
            outs = await self._http(texts)
        if isinstance(outs, dict):
            outs = [outs]
        if len(outs) != len(texts):
            raise RuntimeError(f"PRMScorer: asked for {len(texts)} scores, got {len(outs)}")
        if self.mode == "reward":
            return [reward_to_prob(o["embedding"], self.label_index) for o in outs]
        return [good_bad_prob(o["meta_info"]["output_token_ids_logprobs"][0], self.good_id, self.bad_id) for o in outs]

    def _gen_args(self, texts: list[str]) -> dict[str, Any]:
        return dict(sampling_params={"max_new_tokens": 1, "temperature": 0.0}, return_logprob=True,
                    token_ids_logprob=[self.good_id, self.bad_id])

    async def _inproc(self, texts: list[str]) -> Any:
        if self.mode == "reward":
            return await self._engine.async_encode(prompt=texts)
        return await self._engine.async_generate(prompt=texts, **self._gen_args(texts))

    async def _http(self, texts: list[str]) -> Any:
        if self.mode == "reward":
            path, body = "/classify", {"text": texts}
        else:
            path, body = "/generate", {"text": texts, **self._gen_args(texts)}
        client = self._client.get()

        def retried() -> None:
            self.retries += 1

        r = await send_with_retries(lambda: client.post(self.url + path, json=body), self.retry,
                                    what=f"PRM server at {self.url}", path=path, timeout_s=self.timeout_s,
                                    idempotent=True, on_retry=retried)
        return r.json()

    async def close(self) -> None:
        await self._client.aclose()
        if self._engine is not None:
            await asyncio.to_thread(self._engine.shutdown)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._engine = None
