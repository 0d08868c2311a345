"""Chat prompts when a backend has no template of its own to hand: the tokenizer's chat template
when it has one, else generic ChatML. Used by the SGLang and OpenAI-compatible engines and the
PRM scorer; no tokenizer is loaded here."""
from __future__ import annotations

from typing import Any, Iterable


def chatml(messages: Iterable[dict]) -> str:
    """Generic ChatML (``<|im_start|>role\\ncontent<|im_end|>``) with the assistant turn open."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def apply_chat_template(tokenizer: Any, messages: list[dict]) -> str:
    """The tokenizer's chat template when it has one, else :func:`chatml`."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return chatml(messages)
