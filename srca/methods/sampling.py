"""Whole-path methods: greedy CoT, self-consistency (majority), best-of-N and program of thought."""
from __future__ import annotations

import asyncio

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


async def run_pot(ctx: SearchContext) -> None:
    """Program of thought (PAL, Gao et al. 2022; PoT, Chen et al. 2022): ``n`` samples of the
    ``pot`` prompt, each a program; the last fenced block of each runs in a child process
    (:func:`srca.execution.run_program`, at most one per CPU core at a time) and the last line it
    prints is its answer; the most frequent answer wins. A sample without a program, or whose
    program fails, times out or prints nothing, has no answer and does not vote."""
    from ..execution import extract_program, pool, program_answer, run_program

    nodes = await _sample(ctx, ctx.config.n, greedy=False)
    loop = asyncio.get_running_loop()

    async def run(node: Node) -> None:
        code = extract_program(node.text)
        result = await loop.run_in_executor(pool(), run_program, code) if code is not None else None
        node.answer = program_answer(result) if result is not None else None
        node.answer_logprobs = None  # printed by the program, not written by the model
        node.kept = True
        node.path_score = node.score = 1.0

    await asyncio.gather(*(run(n) for n in nodes))
    for node in nodes:
        ctx.add_candidate(node, "path")
