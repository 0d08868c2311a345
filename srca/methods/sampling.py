"""Whole-path methods: greedy CoT, self-consistency (majority), best-of-N, program of thought, and
chains of thought with programs in one vote (majority-pot)."""
from __future__ import annotations

import asyncio

from .context import Node, SearchContext


async def _sample(ctx: SearchContext, n: int, greedy: bool, stop: tuple[str, ...] = ()) -> list[Node]:
    c = ctx.config
    req = ctx.request(ctx.root, max_new_tokens=c.max_new_tokens, n=n,
                      temperature=0.0 if greedy else c.temperature, top_p=1.0 if greedy else c.top_p,
                      top_k=0 if greedy else c.top_k, seed=ctx.seed_for(ctx.root), stop=stop)
    (results,) = await ctx.generate([req])
    nodes = _nodes(ctx, results)
    ctx.emit({"type": "step", "depth": 1, "nodes": [ctx.node_event(x) for x in nodes]})
    return nodes


def _nodes(ctx: SearchContext, results) -> list[Node]:
    """Finished root children of an engine call's samples, each with its boxed answer."""
    from ..answers import extract_answer

    nodes = []
    for r in results:
        node = ctx.new_node(ctx.root, text=r.text, ids=list(r.token_ids), logprobs=list(r.logprobs))
        node.finished = True
        node.answer = extract_answer(r.text)
        node.answer_logprobs = ctx.answer_span_logprobs(node, node.answer)
        node.truncated = r.finish_reason == "length"
        nodes.append(node)
    return nodes


async def _run_programs(nodes: list[Node]) -> list[bool]:
    """Run the program each node wrote (:func:`srca.execution.program_of`: its last fenced
    block), forked from a warm interpreter with sympy loaded (:func:`srca.warm_exec.warm_pool`;
    cold, :func:`srca.execution.run_program`, where none starts), at most one per CPU core at a
    time; the last line it prints becomes the node's answer, and a program that fails, times out
    or prints nothing gives none. A node whose text holds no program keeps the boxed answer it
    wrote, if any: the model answered with a chain of thought where a program was asked. Whether
    each node ran a program."""
    from ..execution import pool, program_answer, program_of
    from ..warm_exec import warm_pool

    loop = asyncio.get_running_loop()

    async def run(node: Node) -> bool:
        code = program_of(node.text)
        if code is None:
            return False
        # the answer read in the worker too: its LaTeX (srca.pyexpr) is SymPy's work, off the loop
        node.answer = await loop.run_in_executor(pool(), lambda: program_answer(warm_pool().run(code)))
        node.answer_logprobs = None  # printed by the program, not written by the model
        return True

    return list(await asyncio.gather(*(run(n) for n in nodes)))


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
    ``pot`` prompt, each a program that runs (:func:`_run_programs`) and answers with the last
    line it prints; the most frequent answer wins. A sample stops where the model starts to
    write the output it expects (:data:`srca.execution.PROGRAM_STOP`): the program runs instead.
    A sample whose program gives no answer does not vote; one that wrote no program votes the
    answer it boxed, if any."""
    from ..execution import PROGRAM_STOP

    nodes = await _sample(ctx, ctx.config.n, greedy=False, stop=PROGRAM_STOP)
    ran = await _run_programs(nodes)
    for node, program in zip(nodes, ran):
        node.kept = True
        node.path_score = node.score = 1.0
        ctx.add_candidate(node, "program" if program else "path")


async def run_majority_pot(ctx: SearchContext) -> None:
    """Chains of thought and programs in one vote: of the ``n`` samples, ``program_share`` (rounded)
    are programs of the ``pot`` template (:func:`_run_programs`), the rest chains of thought of
    the solve's template, all in one engine call. A chain votes 1 for its boxed answer, a program
    ``program_weight`` for what it prints (a program sample that wrote a chain of thought
    instead votes as a chain); the heaviest answer group wins (``weighted_vote``:
    ties to the larger group, then to the one seen first, the chains' before the programs').
    Programs err differently from chains of thought: on MATH-500 the joint vote of 8 and 8 was
    about 6 points above majority@16 at the same tokens (benchmarks/README, "Programs beside
    chains of thought")."""
    from ..execution import PROGRAM_STOP

    c = ctx.config
    k = round(c.n * c.program_share)
    sampling = dict(max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p, top_k=c.top_k)
    reqs = []
    if c.n - k:
        reqs.append(ctx.request(ctx.root, n=c.n - k, seed=ctx.seed_for(ctx.root), **sampling))
    if k:
        reqs.append(ctx.template_request("pot", n=k, seed=ctx.seed_for(ctx.root, salt=1), stop=PROGRAM_STOP,
                                         **sampling))
    results = await ctx.generate(reqs)
    chains = _nodes(ctx, results[0]) if c.n - k else []
    programs = _nodes(ctx, results[-1]) if k else []
    ctx.emit({"type": "step", "depth": 1, "nodes": [ctx.node_event(x) for x in chains + programs]})
    ran = await _run_programs(programs)
    for node in chains:
        node.path_score = node.score = 1.0
    for node, program in zip(programs, ran):
        node.path_score = node.score = float(c.program_weight) if program else 1.0
    for node, program in zip(chains + programs, [False] * len(chains) + ran):
        node.kept = True
        ctx.add_candidate(node, "program" if program else "path")
