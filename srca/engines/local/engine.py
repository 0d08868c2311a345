"""LocalEngine: the front of the embedded engine (options, model, tokenizer, the Engine protocol).

The model is loaded in ``__init__`` (so ``encode``/``chat_prompt`` work at once); nothing
happens at import. See :mod:`srca.models` for names and the cache of converted weights.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Sequence

import torch

from ...models import DEFAULT_MODEL, is_local_model, load_model, model_spec
from ..base import EngineInfo, GenRequest, GenResult
from ..hf_decode import hf_decoder
from .batch import BatchRunner, DecodeProgress
from .prefix_cache import PrefixCache
from .runner import ModelRunner
from .scheduler import Scheduler


class LocalEngine:
    """The embedded transformers engine (see :mod:`srca.engines.local`).

    ``model``: a registry short name (:data:`srca.models.MODELS`) or a local HF folder.
    ``device``: default CUDA when available, else CPU. ``dtype``: default bfloat16.
    ``threads``: torch intra-op threads (process-wide; ``None``: ``$SRCA_THREADS`` if set, else
    torch's setting; use 1 when other work shares the CPU).
    ``cache_bytes``: prefix-cache budget. ``max_batch``: most rows decoded together
    (larger queues run in several batches). ``on_progress``: called with a
    :class:`DecodeProgress` while a batch runs (from the worker thread; keep it quick).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: torch.dtype | str | None = None,
                 threads: int | None = None, cache_bytes: int = 1 << 30, max_batch: int = 16,
                 on_progress: Callable[[DecodeProgress], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"LocalEngine.max_batch: must be >= 1, got {max_batch}")
        if cache_bytes < 0:
            raise ValueError(f"LocalEngine.cache_bytes: must be >= 0, got {cache_bytes}")
        if on_progress is not None and not callable(on_progress):
            raise ValueError("LocalEngine.on_progress: must be callable")
        _set_threads(threads)
        dtype = _dtype(dtype)
        self.device = _device(device)
        if not is_local_model(model):
            model_spec(str(model))  # an unknown name is the caller's mistake: ValueError before any work
        self.dtype = dtype or torch.bfloat16
        t0 = time.time()
        try:
            self.model, self.tokenizer = load_model(model, dtype=self.dtype, device=str(self.device))
        except ValueError as e:
            # the arguments were checked above; a ValueError from here on is the installation's
            # or the files' (transformers raises one for a missing accelerate), not the caller's
            raise RuntimeError(f"loading model {model}: {e}") from e
        self.load_s = time.time() - t0
        self._decode = hf_decoder(self.tokenizer)
        self.runner = ModelRunner(self.model, self.dtype, self.device)
        self.vocab_size = self.runner.vocab_size
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.info = EngineInfo(name="local", model=str(model), token_ids=True, reports_cached_tokens=True, loop_stops=True,
                               max_context=int(getattr(self.model.config, "max_position_embeddings", 32768)))
        self.cache = PrefixCache(cache_bytes)
        self.batches = BatchRunner(self.runner, self.cache, self.tokenizer, self.eos_ids, self.info.max_context)
        self.batches.on_progress = on_progress
        self.scheduler = Scheduler(self.batches.run, max_batch)
        self._closed = False

    @property
    def stats(self) -> dict:
        """Counters since construction: batches, prompt/cached/generated tokens, decode steps,
        prefill and decode seconds."""
        return self.batches.stats

    @property
    def max_batch(self) -> int:
        return self.scheduler.max_batch

    @property
    def on_progress(self) -> Callable[[DecodeProgress], None] | None:
        return self.batches.on_progress

    @on_progress.setter
    def on_progress(self, cb: Callable[[DecodeProgress], None] | None) -> None:
        self.batches.on_progress = cb

    # -- tokenizer -----------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(ids)

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # -- the Engine protocol ---------------------------------------------------------------------
    def _prompt_ids(self, req: GenRequest) -> list[int]:
        if not isinstance(req, GenRequest):
            raise ValueError(f"LocalEngine.generate: expected GenRequest, got {type(req).__name__}")
        ids = list(req.input_ids) if req.input_ids is not None else self.encode(req.prompt or "")
        if not ids:
            raise ValueError("GenRequest.prompt: encodes to no tokens")
        if any(not isinstance(t, int) or not 0 <= t < self.vocab_size for t in ids):
            raise ValueError(f"GenRequest.input_ids: token ids must be ints in [0, {self.vocab_size})")
        if len(ids) >= self.info.max_context:
            raise ValueError(f"GenRequest: prompt of {len(ids)} tokens does not fit the context "
                             f"({self.info.max_context})")
        return ids

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        if self._closed:
            raise RuntimeError("LocalEngine: closed")
        items = [(r, self._prompt_ids(r)) for r in requests]  # ValueError before queueing
        if not items:
            return []
        return await self.scheduler.submit(items)

    def abort(self, group: str) -> None:
        """End the rows of every queued or running request of ``group`` at the next decode step;
        their callers get what was generated so far, with ``finish_reason="abort"``."""
        self.scheduler.abort(group)

    async def flush_cache(self) -> bool:
        """Empty the prefix cache (KV and memoised logits), on the worker thread so it never
        overlaps a batch; the next solve then computes everything afresh. True."""
        await self.scheduler.on_worker(self.cache.clear)
        return True

    async def close(self) -> None:
        self._closed = True
        self.scheduler.close()
        self.cache.clear()


def _set_threads(threads: int | None) -> None:
    """torch's intra-op threads: ``threads``, else ``$SRCA_THREADS`` when set, else unchanged."""
    if threads is None and os.environ.get("SRCA_THREADS"):
        raw = os.environ["SRCA_THREADS"]
        try:
            threads = int(raw)
        except ValueError:
            raise ValueError(f"SRCA_THREADS: must be an integer >= 1, got {raw!r}") from None
    if threads is not None:
        if threads < 1:
            raise ValueError(f"LocalEngine.threads: must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"LocalEngine.dtype: {dtype!r} is not a torch dtype (e.g. bfloat16, float32)")
        return getattr(torch, dtype)
    return dtype


def _device(device: str | None) -> torch.device:
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        raise ValueError(f"LocalEngine.device: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("LocalEngine.device: cuda asked for, but this torch sees no CUDA device")
    return dev


def _eos_ids(model, tokenizer) -> frozenset[int]:
    """Every token id that ends a row: the generation config's and the tokenizer's EOS."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None:
        eos.append(tokenizer.eos_token_id)
    return frozenset(eos)
