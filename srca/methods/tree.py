"""Step-level tree searches: beam search, DVTS and SRCA.

All three grow paths one step (up to ``step_delimiter``) at a time, expand every kept path into
``expand`` sampled children in one engine call, score the children and keep ``beam_width`` of
them. SRCA adds checkpoint probes after every step, Answer-Clustered Search (ACS) for the
selection and Checkpoint Candidate Augmentation (CCA) for the final pool.
"""
from __future__ import annotations

from .context import SearchContext
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
    child of ``expand`` per step until it finishes. All live subtrees step together."""
    c = ctx.config
    width, expand = c.tree_shape
    active = [ctx.root] * width
    ctx.stop_reason = "max_steps"
    for _ in range(c.max_steps):
        groups = await ctx.expand(active, expand)
        await ctx.score([k for ks in groups for k in ks])
        nxt = []
        for ks in groups:
            (best,) = topk_select(ks, 1)
            mark_kept([best])
            if best.finished:
                ctx.add_candidate(best, "path")
            elif not best.truncated:
                nxt.append(best)
        ctx.emit({"type": "select", "depth": nxt[0].depth if nxt else 0,
                  "kept": [{"id": n.id, "score": n.path_score} for n in nxt]})
        if not nxt:
            ctx.stop_reason = "finished"
            return
        active = nxt
