"""Decoding token ids with a Hugging Face tokenizer, without its per-token Python.

A fast tokenizer's ``decode`` first converts its argument element by element (``to_py_obj``)
and only then calls the Rust tokenizer. A search decodes every token of every sample it reads
(:func:`srca.engines.token_spans.token_spans`, on the controller's event loop), and there that
conversion cost more than the decoding itself (``benchmarks/controller_cost.py``).
:func:`hf_decoder` gives the engines one ``decode(ids)``: the Rust tokenizer's own where that is
the same thing (a fast tokenizer whose class keeps the library's ``decode`` and ``_decode`` and
does not clean up spaces after decoding; special tokens kept, as the engines decode), the
tokenizer's ``decode`` otherwise.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence


def _plain_fast(tokenizer: Any) -> bool:
    """A fast tokenizer whose decoding is exactly its Rust tokenizer's."""
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return False
    cls = type(tokenizer)
    return (isinstance(tokenizer, PreTrainedTokenizerFast) and cls.decode is PreTrainedTokenizerFast.decode
            and cls._decode is PreTrainedTokenizerFast._decode
            and getattr(tokenizer, "clean_up_tokenization_spaces", True) is False
            and callable(getattr(getattr(tokenizer, "_tokenizer", None), "decode", None)))


def hf_decoder(tokenizer: Any) -> Callable[[Sequence[int]], str]:
    """``decode(ids) -> str`` for ``tokenizer`` with ``skip_special_tokens=False``."""
    if _plain_fast(tokenizer):
        backend = tokenizer._tokenizer

        def decode(ids: Sequence[int]) -> str:
            return backend.decode(ids if type(ids) is list else [int(t) for t in ids], skip_special_tokens=False)
        return decode

    def slow(ids: Sequence[int]) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=False)
    return slow


__all__ = ["hf_decoder"]
