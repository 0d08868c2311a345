"""The model on its device: forwards over a batch's KV buffer, prefill through the prefix cache.

* **Batch layout** (:class:`KVBatch`). One KV buffer ``[layers, 2, rows, kv_heads, capacity,
  head_dim]`` with a ``valid[rows, capacity]`` mask: cached prefixes are left-padded, suffixes
  right-padded, every row gets its own position ids; padded columns are masked out, so rows of
  any length decode together. Finished rows leave the batch (:meth:`KVBatch.keep`).
* **Prefill** (:meth:`ModelRunner.prefill`). Each prompt reuses its longest cached prefix (at
  most all but its last token: that one is always run to get the next-token logits; a prompt
  whose exact run is memoised reuses its KV and logits as they were). The uncached suffixes run
  in groups of similar length (:func:`length_groups`), each group in chunks of
  :data:`PREFILL_CHUNK` tokens.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from .prefix_cache import PrefixCache

PREFILL_CHUNK = 512  # longest prefill forward (bounds activation memory)


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


class KVBatch:
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
class Prefilled:
    """What prefill gives each prompt ``i``: ``matched[i]`` tokens from the cache, its compact KV
    ``kvs[i]`` [layers, 2, H, T, D] and its last-token ``logits[i]`` (float32; [R, V] once done)."""

    matched: list[int]
    kvs: list
    logits: list | torch.Tensor


def length_groups(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Split ``order`` (indices sorted by ``lengths[i]``, shortest first) into groups prefilled
    together: a group ends before a prompt that would make its padded size ``rows * longest``
    exceed 1.3x its real tokens + 16, so padding wastes little compute."""
    groups, cur = [], []
    for i in order:
        s = lengths[i]
        real = sum(lengths[j] for j in cur) + s
        if cur and (len(cur) + 1) * s > 1.3 * real + 16:
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups


class ModelRunner:
    """A loaded causal LM (``model``) on ``device``: its decoder and LM head run over a
    :class:`KVBatch`, and its KV shape ``kv_shape`` = (layers, kv_heads, head_dim)."""

    def __init__(self, model, dtype: torch.dtype, device: torch.device) -> None:
        cfg = model.config
        self.dtype, self.device = dtype, device
        self.decoder = model.get_decoder()
        self.lm_head = model.get_output_embeddings()
        self._layer_cls = _cache_layer_class()
        # transformers 5.2x renamed the decoder's ``past_key_values`` argument to ``cache`` (the
        # old name still works but warns on every call); pass whichever this version takes
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        L = cfg.num_hidden_layers
        H = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.kv_shape = (L, H, D)
        self.vocab_size = int(self.lm_head.weight.shape[0])

    def new_batch(self, rows: list[torch.Tensor], cap_extra: int) -> KVBatch:
        """A :class:`KVBatch` holding ``rows`` (compact KV each) and ``cap_extra`` free columns."""
        return KVBatch(rows, cap_extra, self.kv_shape, self.dtype, self.device)

    def forward(self, st: KVBatch, input_ids: torch.Tensor, positions: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Run ``input_ids`` [B, S] at columns ``st.n .. st.n+S`` and return float32 logits [B, V]
        of the token at index ``last[b]`` of each row (only those rows get the LM head)."""
        from transformers.cache_utils import Cache

        S = input_ids.shape[1]
        L = self.kv_shape[0]
        cache = Cache(layers=[self._layer_cls(st.buf[i, 0], st.buf[i, 1], st.n) for i in range(L)])
        out = self.decoder(input_ids=input_ids, attention_mask=st.valid[:, :st.n + S], position_ids=positions,
                           use_cache=True, **{self._cache_kw: cache})
        h = out.last_hidden_state  # [B, S, hidden]
        h = h[torch.arange(h.shape[0], device=h.device), last]  # [B, hidden]
        st.n += S
        return self.lm_head(h).float()  # [B, V]

    def decode_step(self, st: KVBatch, tokens: list[int]) -> torch.Tensor:
        """Feed each row's last token (``tokens[b]``); returns the next-token logits [B, V]."""
        st.reserve(1)
        inp = torch.tensor([[t] for t in tokens], device=self.device)
        st.valid[:, st.n] = True
        logits = self.forward(st, inp, st.pos[:, None], torch.zeros(len(tokens), dtype=torch.long, device=self.device))
        st.pos += 1
        return logits

    def prefill(self, prompts: list[torch.Tensor], cache: PrefixCache) -> Prefilled:
        """Prefill each prompt [T] (reusing cached prefixes, memoising last-token logits in ``cache``)."""
        R = len(prompts)
        out = Prefilled([0] * R, [None] * R, [None] * R)
        pre = self._lookup(prompts, cache, out)
        order = sorted((i for i in range(R) if out.kvs[i] is None), key=lambda i: prompts[i].numel() - out.matched[i])
        lengths = [p.numel() - m for p, m in zip(prompts, out.matched)]
        for g in length_groups(order, lengths):
            self._prefill_group(g, prompts, pre, cache, out)
        out.logits = torch.stack(out.logits)
        return out

    def _lookup(self, prompts: list[torch.Tensor], cache: PrefixCache, out: Prefilled) -> list[torch.Tensor | None]:
        """Fill ``out`` for prompts whose exact run is memoised; return the cached prefix KV of
        every other prompt (None for the memoised ones)."""
        pre: list[torch.Tensor | None] = []
        L, H, D = self.kv_shape
        for i, ids in enumerate(prompts):
            memo = cache.get_logits(ids)
            if memo is not None:  # this exact prompt ran before: reuse its KV and logits as they were
                m, kv = cache.match(ids, ids.numel())
                if m == ids.numel():
                    out.matched[i], out.kvs[i], out.logits[i] = m, kv[:, :, :, :m].clone(), memo
                    pre.append(None)
                    continue
            m, kv = cache.match(ids, ids.numel() - 1)
            out.matched[i] = m
            pre.append(kv[:, :, :, :m] if kv is not None else torch.zeros((L, 2, H, 0, D), dtype=self.dtype, device=self.device))
        return pre

    def _prefill_group(self, g: list[int], prompts: list[torch.Tensor], pre: list, cache: PrefixCache,
                       out: Prefilled) -> None:
        """Run the uncached suffixes of prompts ``g`` as one batch, in chunks."""
        suf = [prompts[i][out.matched[i]:] for i in g]
        S = max(s.numel() for s in suf)
        st = self.new_batch([pre[i] for i in g], S)
        inp = torch.zeros((len(g), S), dtype=torch.long, device=self.device)
        for b, s in enumerate(suf):
            inp[b, :s.numel()] = s.to(self.device)
            st.valid[b, st.n:st.n + s.numel()] = True
        positions = st.pos[:, None] + torch.arange(S, device=self.device)[None, :]
        last = [s.numel() - 1 for s in suf]
        for c0 in range(0, S, PREFILL_CHUNK):  # long prompts in chunks
            c1 = min(S, c0 + PREFILL_CHUNK)
            at = torch.tensor([min(max(t - c0, 0), c1 - c0 - 1) for t in last], device=self.device)
            lg = self.forward(st, inp[:, c0:c1], positions[:, c0:c1], at)
            for b, i in enumerate(g):
                if c0 <= last[b] < c1:
                    out.logits[i] = lg[b]
        for b, i in enumerate(g):
            out.kvs[i] = st.row_kv(b)
            out.logits[i] = out.logits[i].clone()  # not a view of the whole batch's logits
            cache.put_logits(prompts[i], out.logits[i])
