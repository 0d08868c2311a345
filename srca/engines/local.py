"""LocalEngine: the embedded transformers backend (CPU default, also runs on one CUDA GPU).

How a call flows::

    generate(requests) ──► queue ──► scheduler task (one per event loop, started lazily)
                                       drains the whole queue ──► worker thread (one, shared)
                                         1. prefix-cache match per request (token ids)
                                         2. prefill the uncached suffixes, grouped by length
                                         3. first token: ``srca.kernels.sample_fanout`` per parent
                                         4. decode every child of every request together
                                         5. store prompt+generated KV back into the cache

* **Batching across solves.** Every ``generate`` call queues its requests; a scheduler task
  (one per event loop, alive only while there is work, so nothing dangles between calls) runs all
  queued requests (of every caller) as one batch. A caller that is cancelled only loses its
  results; the batch and the other callers carry on.
* **Prefix cache** (:class:`PrefixCache`): KV tensors keyed by token ids, longest-prefix match,
  LRU, bounded in bytes. A finished row stores the KV of ``prompt + generated[:-1]`` (every token
  that was fed), so the next step of that path only prefills its new tokens. ``cached_tokens``
  reports how many prompt tokens came from it (at most ``prompt_tokens - 1``: the last prompt
  token is always run to get the next-token logits).
* **Batch layout.** One KV buffer ``[layers, 2, rows, kv_heads, capacity, head_dim]`` with a
  ``valid[rows, capacity]`` mask: cached prefixes are left-padded, suffixes right-padded, every
  row gets its own position ids; padded columns are masked out, so rows of any length decode
  together. Finished rows leave the batch.
* **Sampling.** Greedy is argmax. The first token of a request comes from
  ``srca.kernels.sample_fanout`` (one read of the parent row for all ``n`` children). Later tokens
  use :func:`_sample_row`, the same top-k → temperature → top-p semantics, with a counter-based
  uniform from ``(seed, child, step)`` so a row's draws do not depend on what else is in the
  batch. Greedy requests with ``n > 1`` decode once and are copied.
* **Logprobs** are of the unmodified (temperature 1) distribution.
* ``token_ids`` keep an EOS token when one ended the row (``text`` does not show it).

The model is loaded in ``__init__`` (so ``encode``/``chat_prompt`` work at once); nothing
happens at import. See :mod:`srca.models` for names and the cache of converted weights.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..models import DEFAULT_MODEL, load_model
from .base import EngineInfo, GenRequest, GenResult
from .local_sampling import _fanout, _sample_row, _stream_seed, _uniform
from .prefix_cache import PrefixCache

log = logging.getLogger("srca.engines.local")

_DECODE_CAP = 256  # decode columns allocated up front (the buffer doubles when full)
_PREFILL_CHUNK = 512  # longest prefill forward (bounds activation memory)


# ---------------------------------------------------------------------------------------------
# batch KV state


def _cache_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A cache layer writing into a preallocated ``[B, H, cap, D]`` buffer (no concat per step)."""

        def __init__(self, kbuf: torch.Tensor, vbuf: torch.Tensor, n: int) -> None:
            super().__init__()
            self.kbuf, self.vbuf, self.n = kbuf, vbuf, n
            self.dtype, self.device = kbuf.dtype, kbuf.device
            self.keys, self.values = kbuf[:, :, :n], vbuf[:, :, :n]
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            s = key_states.shape[-2]
            self.kbuf[:, :, self.n:self.n + s] = key_states
            self.vbuf[:, :, self.n:self.n + s] = value_states
            self.n += s
            self.keys, self.values = self.kbuf[:, :, :self.n], self.vbuf[:, :, :self.n]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.n

    return BufferLayer


class _State:
    """KV of a batch of rows: ``buf`` [layers, 2, B, H, cap, D], ``valid`` [B, cap] bool,
    ``n`` columns used, ``pos`` [B] next position id of each row."""

    def __init__(self, rows: list[torch.Tensor], cap_extra: int, shape: tuple, dtype, device) -> None:
        L, H, D = shape
        B = len(rows)
        P = max((r.shape[3] for r in rows), default=0)
        self.buf = torch.zeros((L, 2, B, H, P + cap_extra, D), dtype=dtype, device=device)
        self.valid = torch.zeros((B, P + cap_extra), dtype=torch.bool, device=device)
        self.pos = torch.zeros(B, dtype=torch.long, device=device)
        for b, kv in enumerate(rows):  # left-pad: row b ends at column P
            t = kv.shape[3]
            if t:
                self.buf[:, :, b, :, P - t:P] = kv
                self.valid[b, P - t:P] = True
            self.pos[b] = t
        self.n = P

    def reserve(self, s: int) -> None:
        """Make room for ``s`` more columns (grow the buffers by doubling)."""
        cap = self.valid.shape[1]
        if self.n + s <= cap:
            return
        new = max(self.n + s, 2 * cap)
        buf = self.buf.new_zeros(self.buf.shape[:4] + (new,) + self.buf.shape[5:])
        buf[:, :, :, :, :self.n] = self.buf[:, :, :, :, :self.n]
        valid = self.valid.new_zeros((self.valid.shape[0], new))
        valid[:, :self.n] = self.valid[:, :self.n]
        self.buf, self.valid = buf, valid

    def row_kv(self, b: int) -> torch.Tensor:
        """Compact KV of row ``b``: [layers, 2, H, T, D] (its valid columns, in order)."""
        cols = self.valid[b, :self.n].nonzero().squeeze(1)
        return self.buf[:, :, b].index_select(3, cols)

    def keep(self, rows: list[int]) -> None:
        idx = torch.tensor(rows, dtype=torch.long, device=self.valid.device)
        self.buf = self.buf.index_select(2, idx)
        self.valid = self.valid.index_select(0, idx)
        self.pos = self.pos.index_select(0, idx)


@dataclass
class _Row:
    """One continuation being decoded."""

    req: int  # index of its request in the batch
    child: int
    stream: int  # sampling stream seed
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[tuple[int, float]]] = field(default_factory=list)
    finish: str | None = None
    stop_str: str | None = None
    text: str | None = None


# ---------------------------------------------------------------------------------------------
# engine


class _LoopState:
    def __init__(self) -> None:
        self.pending: list[tuple[GenRequest, list[int], asyncio.Future]] = []
        self.task: asyncio.Task | None = None


class LocalEngine:
    """The embedded transformers engine (see module docstring).

    ``model``: a registry short name (:data:`srca.models.MODELS`) or a local HF folder.
    ``device``: default CUDA when available, else CPU. ``dtype``: default bfloat16.
    ``threads``: torch intra-op threads (process-wide; ``None``: ``$SRCA_THREADS`` if set, else
    torch's setting; use 1 when other work shares the CPU).
    ``cache_bytes``: prefix-cache budget. ``max_batch``: most rows decoded together
    (larger queues run in several batches).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: torch.dtype | str | None = None,
                 threads: int | None = None, cache_bytes: int = 1 << 30, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError(f"LocalEngine.max_batch: must be >= 1, got {max_batch}")
        if cache_bytes < 0:
            raise ValueError(f"LocalEngine.cache_bytes: must be >= 0, got {cache_bytes}")
        if threads is None and os.environ.get("SRCA_THREADS"):
            threads = int(os.environ["SRCA_THREADS"])
        if threads is not None:
            if threads < 1:
                raise ValueError(f"LocalEngine.threads: must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype or torch.bfloat16
        t0 = time.time()
        self.model, self.tokenizer = load_model(model, dtype=self.dtype, device=str(self.device))
        self.load_s = time.time() - t0
        cfg = self.model.config
        self._decoder = self.model.get_decoder()
        self._lm_head = self.model.get_output_embeddings()
        self._layer_cls = _cache_layer_class()
        L = cfg.num_hidden_layers
        H = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self._kv_shape = (L, H, D)
        self.vocab_size = int(self._lm_head.weight.shape[0])
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos)
        self.info = EngineInfo(name="local", model=str(model), token_ids=True, reports_cached_tokens=True,
                               max_context=int(getattr(cfg, "max_position_embeddings", 32768)))
        self.cache = PrefixCache(cache_bytes)
        self.max_batch = max_batch
        self.stats = {"batches": 0, "prompt_tokens": 0, "cached_tokens": 0, "generated_tokens": 0,
                      "decode_steps": 0, "prefill_s": 0.0, "decode_s": 0.0}
        self._executor: ThreadPoolExecutor | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._closed = False

    # -- tokenizer -----------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    # -- async front ---------------------------------------------------------------------------
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
        loop = asyncio.get_running_loop()
        st = self._loops.get(loop)
        if st is None:
            for old in [lp for lp in self._loops if lp.is_closed()]:
                del self._loops[old]
            st = self._loops[loop] = _LoopState()
        futs = [loop.create_future() for _ in items]
        st.pending.extend((r, ids, f) for (r, ids), f in zip(items, futs))
        if st.task is None or st.task.done():  # the scheduler runs only while there is work
            st.task = loop.create_task(self._scheduler(st))
        try:
            return list(await asyncio.gather(*futs))
        except asyncio.CancelledError:
            for f in futs:
                f.cancel()
            raise

    async def _scheduler(self, st: _LoopState) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srca-local")
        while st.pending:  # requests queued while a batch runs form the next batch
            todo = [p for p in st.pending if not p[2].done()]  # drop cancelled callers
            st.pending.clear()
            for chunk in self._chunks(todo):
                chunk = [p for p in chunk if not p[2].done()]  # callers may leave while we work
                if not chunk:
                    continue
                try:
                    res = await loop.run_in_executor(self._executor, self._run_batch,
                                                     [(r, ids) for r, ids, _ in chunk])
                except Exception as exc:  # a failed batch fails its callers, not the engine
                    for _, _, f in chunk:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for (_, _, f), out in zip(chunk, res):
                        if not f.done():
                            f.set_result(out)

    def _chunks(self, items: list) -> list[list]:
        chunks, cur, rows = [], [], 0
        for it in items:
            r = 1 if it[0].greedy else it[0].n
            if cur and rows + r > self.max_batch:
                chunks.append(cur)
                cur, rows = [], 0
            cur.append(it)
            rows += r
        if cur:
            chunks.append(cur)
        return chunks

    async def flush_cache(self) -> bool:
        """Empty the prefix cache (KV and memoised logits), on the worker thread so it never
        overlaps a batch; the next solve then computes everything afresh. True."""
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.cache.clear)
        else:
            self.cache.clear()
        return True

    async def close(self) -> None:
        self._closed = True
        for loop, st in list(self._loops.items()):
            if st.task is not None and not st.task.done() and loop is asyncio.get_running_loop():
                st.task.cancel()
        self._loops.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.cache.clear()

    # -- the batch (worker thread) -------------------------------------------------------------
    def _forward(self, st: _State, input_ids: torch.Tensor, positions: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Run ``input_ids`` [B, S] at columns ``st.n .. st.n+S`` and return float32 logits [B, V]
        of the token at index ``last[b]`` of each row (only those rows get the LM head)."""
        from transformers.cache_utils import Cache

        S = input_ids.shape[1]
        L = self._kv_shape[0]
        cache = Cache(layers=[self._layer_cls(st.buf[i, 0], st.buf[i, 1], st.n) for i in range(L)])
        out = self._decoder(input_ids=input_ids, attention_mask=st.valid[:, :st.n + S], position_ids=positions,
                            past_key_values=cache, use_cache=True)
        h = out.last_hidden_state  # [B, S, hidden]
        h = h[torch.arange(h.shape[0], device=h.device), last]  # [B, hidden]
        st.n += S
        return self._lm_head(h).float()  # [B, V]

    def _prefill(self, prompts: list[torch.Tensor]) -> tuple[list[int], list[torch.Tensor], torch.Tensor]:
        """Prefill each prompt (reusing cached prefixes). Returns cached lengths, compact KV per
        prompt [layers, 2, H, T, D], and last-token logits [R, V]."""
        R = len(prompts)
        matched: list[int] = [0] * R
        kvs: list[torch.Tensor | None] = [None] * R
        logits: list[torch.Tensor | None] = [None] * R
        pre: list[torch.Tensor | None] = []  # the cached prefix KV of each prompt to prefill
        L, H, D = self._kv_shape
        for i, ids in enumerate(prompts):
            memo = self.cache.get_logits(ids)
            if memo is not None:  # this exact prompt ran before: reuse its KV and logits as they were
                m, kv = self.cache.match(ids, ids.numel())
                if m == ids.numel():
                    matched[i], kvs[i], logits[i] = m, kv[:, :, :, :m].clone(), memo
                    pre.append(None)
                    continue
            m, kv = self.cache.match(ids, ids.numel() - 1)
            matched[i] = m
            pre.append(kv[:, :, :, :m] if kv is not None else torch.zeros((L, 2, H, 0, D), dtype=self.dtype, device=self.device))
        # group by suffix length so padding wastes little compute
        order = sorted((i for i in range(R) if kvs[i] is None), key=lambda i: prompts[i].numel() - matched[i])
        groups, cur = [], []
        for i in order:
            s = prompts[i].numel() - matched[i]
            real = sum(prompts[j].numel() - matched[j] for j in cur) + s
            if cur and (len(cur) + 1) * s > 1.3 * real + 16:
                groups.append(cur)
                cur = []
            cur.append(i)
        if cur:
            groups.append(cur)
        for g in groups:
            suf = [prompts[i][matched[i]:] for i in g]
            S = max(s.numel() for s in suf)
            st = _State([pre[i] for i in g], S, self._kv_shape, self.dtype, self.device)
            inp = torch.zeros((len(g), S), dtype=torch.long, device=self.device)
            for b, s in enumerate(suf):
                inp[b, :s.numel()] = s.to(self.device)
                st.valid[b, st.n:st.n + s.numel()] = True
            positions = st.pos[:, None] + torch.arange(S, device=self.device)[None, :]
            last = [s.numel() - 1 for s in suf]
            for c0 in range(0, S, _PREFILL_CHUNK):  # long prompts in chunks
                c1 = min(S, c0 + _PREFILL_CHUNK)
                at = torch.tensor([min(max(t - c0, 0), c1 - c0 - 1) for t in last], device=self.device)
                lg = self._forward(st, inp[:, c0:c1], positions[:, c0:c1], at)
                for b, i in enumerate(g):
                    if c0 <= last[b] < c1:
                        logits[i] = lg[b]
            for b, i in enumerate(g):
                kvs[i] = st.row_kv(b)
                logits[i] = logits[i].clone()  # not a view of the whole batch's logits
                self.cache.put_logits(prompts[i], logits[i])
        return matched, kvs, torch.stack(logits)

    def _choose(self, rows: list[_Row], reqs: list[GenRequest], logits: torch.Tensor, step: int) -> list[int]:
        """Pick the next token of each row from ``logits`` [B, V]; record logprobs."""
        lse = torch.logsumexp(logits, -1)  # [B]
        chosen = logits.argmax(-1).tolist()
        for b, row in enumerate(rows):
            r = reqs[row.req]
            if not r.greedy:
                chosen[b] = _sample_row(logits[b], r.temperature, r.top_k, r.top_p, _uniform(row.stream, step))
        self._record(rows, reqs, logits, lse, chosen, step)
        return chosen

    def _record(self, rows, reqs, logits, lse, chosen, step) -> None:
        idx = torch.tensor(chosen, device=logits.device)
        lps = (logits.gather(1, idx[:, None])[:, 0] - lse).tolist()
        for b, row in enumerate(rows):
            r = reqs[row.req]
            row.tokens.append(chosen[b])
            if r.logprobs:
                row.logprobs.append(lps[b])
            if r.top_logprobs and step < r.top_logprobs_steps:
                v, i = logits[b].topk(min(r.top_logprobs, logits.shape[1]))
                row.tops.append(list(zip(i.tolist(), (v - lse[b]).tolist())))

    def _check_done(self, row: _Row, r: GenRequest) -> bool:
        tok = row.tokens[-1]
        if tok in self.eos_ids:
            row.finish = "stop"
            return True
        if r.stop:
            w = max(len(s) for s in r.stop) + 8
            tail = self.tokenizer.decode(row.tokens[-w:], skip_special_tokens=False)
            if any(s and s in tail for s in r.stop):
                full = self.tokenizer.decode(row.tokens, skip_special_tokens=False)
                hits = [(full.find(s), -len(s), s) for s in r.stop if s and full.find(s) >= 0]
                if hits:
                    pos, _, s = min(hits)
                    row.finish, row.stop_str, row.text = "stop", s, full[:pos + len(s)]
                    return True
        if len(row.tokens) >= r.max_new_tokens:
            row.finish = "length"
            return True
        return False

    def _run_batch(self, batch: list[tuple[GenRequest, list[int]]]) -> list[list[GenResult]]:
        with torch.inference_mode():
            return self._run(batch)

    def _run(self, batch: list[tuple[GenRequest, list[int]]]) -> list[list[GenResult]]:
        reqs = [r for r, _ in batch]
        prompts = [torch.tensor(ids, dtype=torch.long) for _, ids in batch]
        budget = [min(r.max_new_tokens, self.info.max_context - p.numel()) for r, p in zip(reqs, prompts)]
        t0 = time.perf_counter()
        matched, kvs, first_logits = self._prefill(prompts)
        t1 = time.perf_counter()

        # first tokens: fan out each parent into its children
        rows: list[_Row] = []
        lse = torch.logsumexp(first_logits, -1)
        for i, r in enumerate(reqs):
            n_rows = 1 if r.greedy else r.n
            seed = r.seed if r.seed is not None else secrets.randbits(62)
            lg = first_logits[i:i + 1]
            if r.greedy:
                toks = [int(lg.argmax())]
            else:
                toks = _fanout(lg, n_rows, r.temperature, r.top_k, r.top_p, _stream_seed(seed, 1 << 32))
            new = [_Row(i, c, _stream_seed(seed, c)) for c in range(n_rows)]
            self._record(new, reqs, lg.expand(n_rows, -1), lse[i:i + 1].expand(n_rows), toks, 0)
            rows.extend(new)

        active: list[_Row] = []
        for row in rows:
            budget_hit = len(row.tokens) >= budget[row.req]
            if self._check_done(row, reqs[row.req]) or budget_hit:
                row.finish = row.finish or "length"
                self._store(prompts[row.req], row, kvs[row.req])
            else:
                active.append(row)

        if active:
            need = max(budget[row.req] for row in active)
            st = _State([kvs[row.req] for row in active], min(need, _DECODE_CAP), self._kv_shape, self.dtype,
                        self.device)
            step = 1
            while active:
                st.reserve(1)
                inp = torch.tensor([[row.tokens[-1]] for row in active], device=self.device)
                st.valid[:, st.n] = True
                logits = self._forward(st, inp, st.pos[:, None], torch.zeros(len(active), dtype=torch.long, device=self.device))
                st.pos += 1
                self.stats["decode_steps"] += 1
                self._choose(active, reqs, logits, step)
                step += 1
                keep = []
                for b, row in enumerate(active):
                    if self._check_done(row, reqs[row.req]) or len(row.tokens) >= budget[row.req]:
                        row.finish = row.finish or "length"
                        self._store(prompts[row.req], row, st.row_kv(b))
                    else:
                        keep.append(b)
                if len(keep) < len(active):
                    active = [active[b] for b in keep]
                    if active:
                        st.keep(keep)

        t2 = time.perf_counter()
        self.stats["prefill_s"] += t1 - t0
        self.stats["decode_s"] += t2 - t1
        log.debug("batch: %d requests, %d rows, prompt %d tokens (%d cached), prefill %.2fs, decode %.2fs, "
                  "%d generated", len(reqs), len(rows), sum(p.numel() for p in prompts), sum(matched), t1 - t0,
                  t2 - t1, sum(len(r.tokens) for r in rows))

        # results
        out: list[list[GenResult]] = [[] for _ in reqs]
        for row in rows:
            r = reqs[row.req]
            if row.text is None:
                ids = row.tokens[:-1] if row.tokens and row.tokens[-1] in self.eos_ids else row.tokens
                row.text = self.tokenizer.decode(ids, skip_special_tokens=False)
            res = GenResult(text=row.text, token_ids=list(row.tokens), finish_reason=row.finish or "length",
                            stop_str=row.stop_str, logprobs=list(row.logprobs), top_logprobs=list(row.tops),
                            prompt_tokens=prompts[row.req].numel(), cached_tokens=matched[row.req],
                            generated_tokens=len(row.tokens))
            out[row.req].append(res)
            self.stats["generated_tokens"] += len(row.tokens)
        for i, r in enumerate(reqs):
            if r.greedy and r.n > 1:  # one greedy decode, copied
                out[i] = [out[i][0]] + [_copy(out[i][0]) for _ in range(r.n - 1)]
            self.stats["prompt_tokens"] += prompts[i].numel()
            self.stats["cached_tokens"] += matched[i]
        self.stats["batches"] += 1
        return out

    def _store(self, prompt: torch.Tensor, row: _Row, kv: torch.Tensor) -> None:
        """Cache the KV of ``prompt + row.tokens[:-1]`` (every token fed so far); ``kv`` holds exactly those."""
        ids = torch.cat([prompt, torch.tensor(row.tokens[:-1], dtype=torch.long)])
        if kv.shape[3] != ids.numel():  # pragma: no cover - an internal invariant
            raise RuntimeError(f"LocalEngine: KV of {kv.shape[3]} tokens for {ids.numel()} ids")
        self.cache.insert(ids, kv)


def _copy(r: GenResult) -> GenResult:
    return GenResult(text=r.text, token_ids=list(r.token_ids), finish_reason=r.finish_reason, stop_str=r.stop_str,
                     logprobs=list(r.logprobs), top_logprobs=[list(t) for t in r.top_logprobs],
                     prompt_tokens=r.prompt_tokens, cached_tokens=r.cached_tokens,
                     generated_tokens=r.generated_tokens)


__all__ = ["LocalEngine", "PrefixCache"]
