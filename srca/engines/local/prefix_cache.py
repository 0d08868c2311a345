"""PrefixCache: KV tensors keyed by token ids; longest-prefix match, LRU, bounded in bytes.

A finished row stores the KV of every token it fed; a later prompt reuses its longest cached
prefix, so a search path's next step only prefills its new tokens (``cached_tokens`` reports how
many prompt tokens came from here: at most ``prompt_tokens - 1``).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass
class _Entry:
    ids: torch.Tensor  # [T] int64, the tokens whose KV is held
    kv: torch.Tensor  # [layers, 2, kv_heads, T, head_dim]
    nbytes: int


class PrefixCache:
    """KV of token sequences, found by longest common prefix, LRU-evicted to ``max_bytes``.

    An entry serves any prefix of itself. Storing a sequence drops entries that are prefixes of
    it (the new one serves them) and is skipped when an entry already extends it, so a growing
    search path keeps one entry per leaf.
    """

    def __init__(self, max_bytes: int, max_logits: int = 64) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # oldest use first
        self._next = 0
        # Last-token logits [V] of recent prompts. A repeated prompt then reuses the very numbers
        # of its first run instead of recomputing its last token under another batch shape
        # (bf16 results depend on the shape), so a seeded request repeats exactly.
        self.max_logits = max_logits
        self._logits: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    @staticmethod
    def _key(ids: torch.Tensor) -> bytes:
        return ids.cpu().numpy().tobytes()

    def get_logits(self, ids: torch.Tensor) -> torch.Tensor | None:
        key = self._key(ids)
        out = self._logits.get(key)
        if out is not None:
            self._logits.move_to_end(key)
        return out

    def put_logits(self, ids: torch.Tensor, logits: torch.Tensor) -> None:
        if self.max_logits <= 0:
            return
        self._logits[self._key(ids)] = logits
        self._logits.move_to_end(self._key(ids))
        while len(self._logits) > self.max_logits:
            self._logits.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _common(a: torch.Tensor, b: torch.Tensor) -> int:
        m = min(a.numel(), b.numel())
        if m == 0:
            return 0
        neq = (a[:m] != b[:m]).nonzero()
        return m if neq.numel() == 0 else int(neq[0, 0])

    def match(self, ids: torch.Tensor, limit: int) -> tuple[int, torch.Tensor | None]:
        """Longest cached prefix of ``ids`` (at most ``limit`` tokens): ``(length, kv)`` with kv
        ``[layers, 2, kv_heads, T >= length, head_dim]`` (use ``[..., :length, :]``)."""
        best, best_key = 0, None
        for key, e in self._entries.items():
            if min(e.ids.numel(), limit) <= best:
                continue
            k = min(self._common(e.ids, ids), limit)
            if k > best:
                best, best_key = k, key
        if best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        return best, self._entries[best_key].kv

    def insert(self, ids: torch.Tensor, kv: torch.Tensor) -> None:
        """Hold ``kv`` [layers, 2, kv_heads, len(ids), head_dim] for ``ids``."""
        n = ids.numel()
        if n == 0:
            return
        for key, e in list(self._entries.items()):
            c = self._common(e.ids, ids)
            if c == n and e.ids.numel() >= n:  # already served by a longer (or equal) entry
                self._entries.move_to_end(key)
                return
            if c == e.ids.numel():  # e is a prefix of the new sequence
                self.bytes -= e.nbytes
                del self._entries[key]
        nbytes = kv.numel() * kv.element_size()
        if nbytes > self.max_bytes:
            return
        self._entries[self._next] = _Entry(ids.clone(), kv, nbytes)
        self._next += 1
        self.bytes += nbytes
        while self.bytes > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self._entries.clear()
        self._logits.clear()
        self.bytes = 0
