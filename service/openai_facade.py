"""OpenAI-compatible facade: what ``/v1`` requests and answers mean (the routes are in
:mod:`.routes.openai`).

The model name picks the search method (``srca``, ``srca-beam``, ``srca-best-of-n`` ...); any
SearchConfig field can ride along as an extra body field (``extra_body`` in the openai client).
OpenAI's own ``temperature``, ``top_p`` and ``seed`` are SearchConfig fields of the same name;
``n`` is the search budget (one choice is always returned). As OpenAI defines them for
reasoning models, ``max_completion_tokens`` caps every token the solve generates, its hidden
reasoning included (``max_tokens_total``), and ``max_tokens`` the completion the client sees:
the returned content is one path, so it caps each path (``max_new_tokens``), never above the
server's own per-path cap. Until 2026-12-05 ``max_tokens`` capped the whole solve too, and a
client's usual 256 to 1,024 cut srca's first wave to a sample or two.
The problem is the last user message. ``usage`` reports the tokens the solve spent, with
``prompt_tokens_details.cached_tokens`` from the engine's prefix cache.
"""
from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from srca.config import SearchConfig
from srca.methods import METHODS

from .cache import Outcome
from .schemas import STRICT, InputError, build_config, checked_problem, code_refused, config_field_definitions, validate

# OpenAI request fields that are accepted and ignored (they have no meaning for a search)
IGNORED = ("user", "metadata", "store", "frequency_penalty", "presence_penalty", "logit_bias", "stop",
           "parallel_tool_calls", "service_tier", "logprobs", "top_logprobs", "response_format")
MAX_MESSAGES = 256  # a conversation longer than this is not a problem statement


def model_names() -> dict[str, str]:
    """Served model name -> method: ``srca``, ``srca-<method>`` (``_`` written as ``-``) and the
    named variants under their own names (``srca-lean``; :mod:`srca.eval.variants`); ``srca-pot``
    only where the operator allows model-written code (``SRCA_ALLOW_CODE=1``)."""
    from srca.eval.variants import VARIANTS

    out = {"srca": "srca"}
    for m in sorted(METHODS):
        if code_refused(m):  # a request naming it gets a 422
            continue
        if m != "srca":
            out["srca-" + m.replace("_", "-")] = m
    for v in sorted(VARIANTS):
        out.setdefault(v, v)
    return out


def model_card(name: str, method: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "srca", "method": method}


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


@functools.cache
def chat_request_model() -> type[BaseModel]:
    """``POST /v1/chat/completions`` body: OpenAI's fields, and every SearchConfig field but ``method``."""
    return create_model(
        "ChatCompletionRequest", __config__=STRICT,
        model=(str, Field(description="srca, srca-beam, srca-majority, ... (GET /v1/models)")),
        messages=(list[_Message], Field(min_length=1, max_length=MAX_MESSAGES)),
        stream=(bool, False), stream_options=(_StreamOptions | None, None),
        max_tokens=(int | None, None), max_completion_tokens=(int | None, None),
        **{k: (Any, None) for k in IGNORED},
        **config_field_definitions(skip=("method",)),
    )


def _text(msg: _Message) -> str:
    if isinstance(msg.content, list):
        return "".join(p.text for p in msg.content)
    return msg.content or ""


def parse_chat(body: Any, base: SearchConfig) -> tuple[str, str, SearchConfig, bool, bool]:
    """-> (model, problem, SearchConfig, stream, include_usage); raises InputError."""
    try:
        req: Any = validate(chat_request_model(), body)
    except InputError as e:
        if any(x["loc"] == ["body", "method"] and x["type"] == "extra_forbidden" for x in e.errors):
            raise InputError.one("model", "the model name picks the method (srca, srca-beam, ...); "
                                          "do not send 'method'") from None
        raise
    names = model_names()
    if req.model not in names:
        raise InputError.one("model", f"unknown model {req.model!r}; choose one of {sorted(names)}", "model_not_found")
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise InputError.one("messages", "needs a user message (the problem)")
    problem = checked_problem(_text(users[-1]), "messages")
    given = {k: v for k, v in req.model_dump(exclude_unset=True).items()
             if k not in IGNORED and k not in ("model", "messages", "stream", "stream_options",
                                               "max_tokens", "max_completion_tokens")}
    for name, cap in (("max_completion_tokens", req.max_completion_tokens), ("max_tokens", req.max_tokens)):
        if cap is not None and cap < 1:
            raise InputError.one(name, f"must be >= 1, got {cap}")
    if req.max_completion_tokens is not None and "max_tokens_total" not in given:
        given["max_tokens_total"] = req.max_completion_tokens
    if req.max_tokens is not None and "max_new_tokens" not in given:
        given["max_new_tokens"] = min(req.max_tokens, base.max_new_tokens)
    given["method"] = names[req.model]
    cfg = build_config(given, base)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return req.model, problem, cfg, req.stream, include_usage


def answer_text(d: dict[str, Any]) -> str:
    """The reasoning behind the chosen answer: the winning candidate's path (for a checkpoint
    candidate: the path prefix, the cue and the probed answer)."""
    cands = [c for c in d.get("candidates", []) if c["canonical"] == d.get("canonical")]
    if not cands:
        return d.get("answer") or ""
    best = max(cands, key=lambda c: c["score"])
    nodes = {t["id"]: t for t in d.get("trace", [])}
    parts, nid = [], best["node"]
    while nid is not None and nid in nodes and nodes[nid]["parent"] is not None:
        parts.append(nodes[nid]["text"])
        nid = nodes[nid]["parent"]
    text = "".join(reversed(parts))
    if best["source"] in ("checkpoint", "settled"):  # the answer came from a probe
        text += d.get("config", {}).get("checkpoint_cue", "") + best["answer"] + "}"
    return text or (d.get("answer") or "")


def answer_pieces(d: dict[str, Any]) -> list[str]:
    """:func:`answer_text` cut after each step delimiter: the ``content`` deltas of a stream."""
    text = answer_text(d)
    delim = d.get("config", {}).get("step_delimiter") or "\n\n"
    pieces = [p + delim for p in text.split(delim)]
    pieces[-1] = pieces[-1][: len(pieces[-1]) - len(delim)]
    return [p for p in pieces if p]


FINISH = {"finished": "stop", "consensus": "stop", "cancelled": "stop"}


def finish_reason(d: dict[str, Any]) -> str:
    return FINISH.get(d.get("stop_reason"), "length")


def usage(d: dict[str, Any]) -> dict[str, Any]:
    u = d.get("usage", {})
    p, g = u.get("prompt_tokens", 0), u.get("generated_tokens", 0)
    return {"prompt_tokens": p, "completion_tokens": g, "total_tokens": p + g,
            "prompt_tokens_details": {"cached_tokens": u.get("cached_tokens", 0)}}


def srca_summary(out: Outcome) -> dict[str, Any]:
    """The ``srca`` field of an answer: the decision in the service's own terms."""
    d = out.data
    return {"answer": d.get("answer"), "canonical": d.get("canonical"), "confidence": d.get("confidence"),
            "stop_reason": d.get("stop_reason"), "method": d.get("method"), "cache": "hit" if out.cached else "miss",
            "candidates": len(d.get("candidates", []))}


def completion(cid: str, created: int, model: str, out: Outcome) -> dict[str, Any]:
    """A ``chat.completion`` of one choice: the reasoning behind the answer."""
    d = out.data
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text(d)},
                     "finish_reason": finish_reason(d), "logprobs": None}],
        "usage": usage(d), "srca": srca_summary(out),
    }


def completion_chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
                     **extra: Any) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
