"""Step-level tree searches: beam search, DVTS and SRCA.

All three grow paths one step (up to ``step_delimiter``) at a time, expand a kept path into
``expand`` sampled children, score the children and keep the best. Beam search and SRCA's tree
expand every kept path in one engine call and keep ``beam_width``; DVTS keeps one per subtree,
each subtree stepping on its own. SRCA adds checkpoint probes after every step,
Answer-Clustered Search (ACS) for the selection and Checkpoint Candidate Augmentation (CCA) for
the final pool.
"""
from __future__ import annotations

from ..engines.gather import gather_or_cancel
from .context import Node, SearchContext, StopSearch
from .lineage import run_lineages
from .select import acs_select, mark_kept, topk_select


async def run_beam(ctx: SearchContext) -> None:
    """Step-level beam search: keep the ``beam_width`` best children by path score; stops
    when ``n`` paths have finished, none is left open, or at ``max_steps``."""
    await _tree(ctx, probes=False, acs=False, cca=False)


async def run_srca(ctx: SearchContext) -> None:
    """SRCA. Default (``lineages``): the PRM-free lineage search of :mod:`.lineage`. With
    ``lineages=False`` the paper's tree: checkpoint injection after every step, ACS selection,
    CCA final pool (each switchable with ``checkpoints``, ``acs`` and ``cca``)."""
    c = ctx.config
    if c.lineages:
        await run_lineages(ctx)
        return
    await _tree(ctx, probes=c.checkpoints, acs=c.acs, cca=c.cca and c.checkpoints)


async def _tree(ctx: SearchContext, probes: bool, acs: bool, cca: bool) -> None:
    c = ctx.config
    width, expand = c.tree_shape
    active = [ctx.root]
    done = 0
    ctx.stop_reason = "max_steps"
    for _ in range(c.max_steps):
        kids = [k for ks in await ctx.expand(active, expand) for k in ks]
        if probes:
            await ctx.probe(kids)
        await ctx.score(kids)
        open_ = []
        for k in kids:
            if k.finished:
                k.kept = True
                done += 1
                ctx.add_candidate(k, "path")
            elif not k.truncated:
                open_.append(k)
            if cca and k.checkpoint is not None:
                ctx.add_candidate(k, "checkpoint")
        if done >= c.n or not open_:  # like search-and-learn: collect n finished paths
            ctx.stop_reason = "finished"
            return
        chosen = acs_select(open_, width) if acs else topk_select(open_, width)
        mark_kept(chosen)
        ctx.emit({"type": "select", "depth": chosen[0].depth,
                  "kept": [{"id": n.id, "group": n.group, "score": n.path_score, "answer": n.implied_answer} for n in chosen]})
        active = chosen


async def run_dvts(ctx: SearchContext) -> None:
    """Diverse Verifier Tree Search: ``beam_width`` independent subtrees; each keeps its best
    child of ``expand`` per step until it finishes. The subtrees run as tasks of their own, so
    none waits at a step for the others (the engine batches whatever is pending); a subtree's
    request at depth ``d`` is seeded by ``(d, subtree)``, not by node ids, whose order then
    depends on timing. The finished paths join the pool in subtree order. A subtree the token
    budget or the deadline stops ends there while the others finish or stop their own calls (and
    count their tokens; the calls in flight hold their share of the budget:
    :meth:`SearchContext.remaining_tokens`); the solve then stops for that reason."""
    c = ctx.config
    width, expand = c.tree_shape
    found: list[Node | None] = [None] * width
    live = [True] * width
    stops: list[str] = []  # why subtrees were stopped (budget, deadline)

    async def subtree(t: int) -> None:
        node = ctx.root
        try:
            for d in range(c.max_steps):
                (kids,) = await ctx.expand([node], expand, salt=t, index=d)
                await ctx.score(kids)
                (best,) = topk_select(kids, 1)
                mark_kept([best])
                ctx.emit({"type": "select", "depth": best.depth, "subtree": t,
                          "kept": [{"id": best.id, "score": best.path_score}]
                          if not best.finished and not best.truncated else []})
                if best.finished:
                    found[t] = best
                if best.finished or best.truncated:
                    live[t] = False
                    return
                node = best
        except StopSearch as stop:
            stops.append(stop.reason)

    try:
        await gather_or_cancel([subtree(t) for t in range(width)])
    finally:  # also on a failure or a cancel: keep what finished, in the same order
        for best in found:
            if best is not None:
                ctx.add_candidate(best, "path")
    if stops:
        raise StopSearch("deadline" if "deadline" in stops else stops[0])
    ctx.stop_reason = "max_steps" if any(live) else "finished"
