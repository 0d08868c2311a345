"""ScriptedEngine: a deterministic fake backend for unit tests (no model).

Tokens are characters (``id == ord(char)``), so prompts and paths are easy to read in tests.
A *script* decides each continuation: ``script(prompt_text, request, sample_index)`` returns the
full continuation text, or ``(text, logprob_per_token)``, or
``(text, logprob_per_token, top_logprobs)``. The engine applies ``stop`` strings and
``max_new_tokens`` the way a real engine does, and keeps a token trie to report
``cached_tokens`` like a prefix cache would.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from .base import EngineInfo, GenRequest, GenResult

Script = Callable[[str, GenRequest, int], object]


def match_and_insert(trie: dict, ids: Sequence[int]) -> int:
    """Length of the longest prefix of ``ids`` already in ``trie``; then inserts ``ids``."""
    node, matched, still = trie, 0, True
    for t in ids:
        if still and t in node:
            matched += 1
        else:
            still = False
        node = node.setdefault(t, {})
    return matched


class ScriptedEngine:
    def __init__(self, script: Script | None = None, *, model: str = "scripted", latency_s: float = 0.0,
                 default_logprob: float = -0.1, **_: object) -> None:
        self.script: Script = script or (lambda prompt, req, i: " The answer is \\boxed{0}.")
        self.info = EngineInfo(name="fake", model=model)
        self.latency_s = latency_s
        self.default_logprob = default_logprob
        self.calls: list[list[GenRequest]] = []  # every batch, for tests to inspect
        self._trie: dict = {}

    # -- tokenizer -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def chat_prompt(self, messages: list[dict]) -> str:
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + "<assistant>"

    # -- prefix cache simulation -------------------------------------------------------------
    def _match_and_insert(self, ids: Sequence[int]) -> int:
        return match_and_insert(self._trie, ids)

    def _one(self, req: GenRequest, i: int) -> GenResult:
        prompt_ids = list(req.input_ids) if req.input_ids is not None else self.encode(req.prompt or "")
        prompt = self.decode(prompt_ids)
        out = self.script(prompt, req, i)
        lp, top = self.default_logprob, None
        if isinstance(out, tuple):
            text, lp, *rest = out
            top = rest[0] if rest else None
        else:
            text = str(out)
        finish, stop_str, cut = "stop", None, len(text)
        hits = [(text.find(s), s) for s in req.stop if s and text.find(s) >= 0]
        if hits:
            pos, s = min(hits)
            cut, stop_str = pos + len(s), s
        if cut > req.max_new_tokens:
            cut, finish, stop_str = req.max_new_tokens, "length", None
        text = text[:cut]
        ids = self.encode(text)
        cached = min(self._match_and_insert(prompt_ids), len(prompt_ids))
        self._match_and_insert(prompt_ids + ids)
        return GenResult(
            text=text, token_ids=ids, finish_reason=finish, stop_str=stop_str,
            logprobs=[float(lp)] * len(ids) if req.logprobs else [],
            top_logprobs=(top or [])[: req.top_logprobs_steps] if req.top_logprobs else [],
            prompt_tokens=len(prompt_ids), cached_tokens=cached, generated_tokens=len(ids),
        )

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        self.calls.append(list(requests))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return [[self._one(r, i) for i in range(r.n)] for r in requests]

    async def flush_cache(self) -> bool:
        """Forget every cached prefix (as SGLang's ``/flush_cache``). True."""
        self._trie.clear()
        self.flushes = getattr(self, "flushes", 0) + 1
        return True

    async def close(self) -> None:
        return None
