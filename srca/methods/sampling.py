"""Whole-path methods: greedy CoT, self-consistency (majority) and best-of-N."""
from __future__ import annotations

from .context import Node, SearchContext


async def _sample(ctx: SearchContext, n: int, greedy: bool) -> list[Node]:
    c = ctx.config
    req = ctx.request(ctx.root, max_new_tokens=c.max_new_tokens, n=n,
                      temperature=0.0 if greedy else c.temperature, top_p=1.0 if greedy else c.top_p,
                      top_k=0 if greedy else c.top_k, seed=ctx.seed_for(ctx.root))
    (results,) = await ctx.generate([req])
    nodes = []
    for r in results:
        node = ctx.new_node(ctx.root, text=r.text, ids=list(r.token_ids), logprobs=list(r.logprobs))
        node.finished = True
        from ..answers import extract_answer

        node.answer = extract_answer(r.text)
        node.answer_logprobs = ctx.answer_span_logprobs(node, node.answer)
        node.truncated = r.finish_reason == "length"
        nodes.append(node)
    ctx.emit({"type": "step", "depth": 1, "nodes": [ctx.node_event(x) for x in nodes]})
    return nodes


async def run_cot(ctx: SearchContext) -> None:
    """One greedy chain of thought."""
    (node,) = await _sample(ctx, 1, greedy=True)
    node.kept = True
    node.path_score = node.score = 1.0
    ctx.add_candidate(node, "path")


async def run_majority(ctx: SearchContext) -> None:
    """Self-consistency: ``n`` samples, the most frequent answer wins."""
    for node in await _sample(ctx, ctx.config.n, greedy=False):
        node.kept = True
        node.path_score = node.score = 1.0
        ctx.add_candidate(node, "path")


async def run_best_of_n(ctx: SearchContext) -> None:
    """``n`` samples, the scorer's best wins (decision rule from the config)."""
    nodes = await _sample(ctx, ctx.config.n, greedy=False)
    await ctx.score(nodes)
    for node in nodes:
        node.kept = True
        ctx.add_candidate(node, "path")
