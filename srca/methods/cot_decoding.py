"""CoT-decoding (Wang & Zhou, 2024): branch on the top-``n`` first tokens, continue each branch
greedily, and pick the path whose answer tokens are most confident.

A path's confidence is the mean, over the tokens of its final answer, of the margin between the
best and the second-best token probability (``p1 - p2``).
"""
from __future__ import annotations

import math
from typing import Any

from ..answers import extract_answer
from ..engines.token_spans import TokenSpans, token_spans
from .context import SearchContext


async def run_cot_decoding(ctx: SearchContext) -> None:
    # branches on token ids: Method.needs_token_ids (srca.method_registry) refuses a text-only engine first
    c = ctx.config
    k = c.n
    (first,) = await ctx.generate([ctx.request(ctx.root, max_new_tokens=1, temperature=0.0, top_logprobs=k,
                                                  logprobs=True)])
    alts = first[0].top_logprobs[0] if first[0].top_logprobs else []
    alts = sorted(alts, key=lambda t: -t[1])[:k]
    if not alts:
        alts = [(first[0].token_ids[0], first[0].logprobs[0] if first[0].logprobs else 0.0)]
    reqs = [ctx.request(ctx.root, suffix_ids=[tok], max_new_tokens=max(1, c.max_new_tokens - 1), temperature=0.0,
                        top_logprobs=2, top_logprobs_steps=c.max_new_tokens, logprobs=True) for tok, _ in alts]
    results = await ctx.generate(reqs)
    nodes = []
    for (tok, lp), (r,) in zip(alts, results):
        ids = [tok] + list(r.token_ids)
        text, spans = _branch_text(ctx.engine, ids, r.text)
        node = ctx.new_node(ctx.root, text=text, ids=ids, logprobs=[lp] + list(r.logprobs))
        node.finished = True
        node.answer = extract_answer(text)
        margins = [0.0] + [_margin(alt) for alt in r.top_logprobs]  # aligned with ids
        node.score = node.path_score = _answer_confidence(node, margins, spans)
        node.kept = True
        nodes.append(node)
        ctx.add_candidate(node, "path")
    ctx.emit({"type": "step", "depth": 1, "nodes": [ctx.node_event(x) for x in nodes]})


def _branch_text(engine: Any, ids: list[int], rest: str) -> tuple[str, TokenSpans]:
    """The text of a branch, its first token's then ``rest`` (the continuation's own text, of
    ``ids[1:]``), and the characters each of ``ids`` spells in it."""
    spans = token_spans(engine, ids)
    j = next((k for k, o in enumerate(spans.open) if not o), 0)  # the token that ends the first one's character
    if j == 0:
        return spans.text_of(0, 1) + rest, spans
    # the first token ends inside a character that ids[1:j+1] finish: alone, those decode to
    # U+FFFD at the start of ``rest``, which gives way to the whole character
    return spans.text_of(0, j + 1) + rest[len(engine.decode(ids[1:j + 1])):], spans


def _margin(alts: list[tuple[int, float]]) -> float:
    ps = sorted((math.exp(lp) for _, lp in alts), reverse=True)
    if not ps:
        return 0.0
    return ps[0] - (ps[1] if len(ps) > 1 else 0.0)


def _answer_confidence(node, margins: list[float], spans: TokenSpans) -> float:
    """Mean ``p1 - p2`` over the tokens spelling the answer (0 without an answer); ``spans``:
    the characters each of ``node.ids`` spells in ``node.text``."""
    if node.answer is None:
        return 0.0
    pos = node.text.rfind(node.answer)
    if pos < 0:
        return 0.0
    vals = [margins[i] for i in spans.touching(pos, pos + len(node.answer)) if i < len(margins)]
    return sum(vals) / len(vals) if vals else 0.0
