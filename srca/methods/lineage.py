"""SRCA's PRM-free default search: independent lineages, checkpoints, early exits, a weighted vote.

Why not the paper's tree: without a process reward model the policy's own confidence picks the
beams, and on MATH-500 that collapsed the tree onto two or three first steps and lost 17 points
to plain majority voting (DESIGN.md). Here the ``n`` lineages never compete for beams, so they
stay as independent as ``n`` samples, and the checkpoints do what they are good at here:

1. every lineage grows one step (up to ``step_delimiter``) at a time, all lineages of all
   running solves in one engine call; or, when nothing reads a step before its path ends
   (:func:`goes_whole`), all ``n`` lineages in one request of whole samples, cut into the same
   steps afterwards (one engine call per solve, no step barriers: majority voting's cost);
   under a deadline they stop at :func:`soft_deadline`, under a token budget at an equal share
   of what is left, and the lineages either cut are probed;
2. a greedy checkpoint probe asks a lineage for the answer it implies now (the probe is thrown
   away; with a prefix cache it costs only its own few tokens): by default (``probe_at="cut"``)
   only a lineage the token limit cuts before it answered, which then votes that answer; with
   ``probe_at="step"`` every open lineage after every step (what the viewer shows, and what
   ``settle`` needs);
3. with ``settle`` (and ``probe_at="step"``), a lineage whose last ``settle`` checkpoint answers
   agree stops there and votes with that answer (Dynasor-CoT's probe agreement);
4. once one answer holds ``consensus`` of the ``n`` lineages the solve stops;
5. the lineages start in ``waves`` waves (ESC's adaptive sampling: 16 as 5, 5 and 6), each
   wave once the one before has ended; after a wave the solve stops when its vote is already
   clear (:func:`~srca.methods.consensus.wave_settled`: the leading answer holds
   ``wave_consensus`` of the vote's weight with ``wave_min`` full ballots of its own), and the
   lineages of the waves not started are never paid for (``stop_reason`` ``"consensus"``);
6. the decision is a confidence-weighted vote (:func:`srca.methods.consensus.vote`): each
   lineage one ballot, the least confident filtered out, lineages cut before they answered
   voting their last checkpoint at ``checkpoint_weight``;
7. with ``verify`` > 0, every lineage that finished is asked in one more user turn whether its
   answer is right (:mod:`srca.methods.verify`, one generated token with the path cached), and
   its confidence is weighed by ``P(yes) ** verify`` in the vote and in the waves' stop.

Every rule is a pure function in :mod:`srca.methods.consensus`, shared with the sample-bank
replay (:mod:`srca.eval.bank`) that tunes them offline.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from ..answers import equivalent
from ..engines.base import GenRequest, GenResult
from ..engines.token_spans import token_spans
from .consensus import (Ballot, config_wave_sizes, consensus_reached, settled_answer, token_confidence,
                        trace_confidence, wave_settled)
from .context import ABORT_WAIT_S, Node, SearchContext, StopSearch
from .paths import path_steps, whole_paths
from ..repetition import LoopRule, loop_at, rule_for
from .select import mark_kept
from .verify import VERIFY_TOPK, Verifier, verify_factor


CONTINUATION_INDEX = 1_000_000  # seeds of a segmented sample's rest: keyed apart from node ids
PROBE_RESERVE = 0.2  # the share of a deadline whole lineages leave to the probes of those it cuts
PROBE_RESERVE_MAX_S = 10.0  # ... at most this many seconds


def goes_whole(config: Any, token_mode: bool) -> bool:
    """Whether a solve generates each lineage whole, a wave per engine call, and cuts it into
    steps afterwards: when nothing reads a step before its path ends (:func:`~srca.methods.
    paths.whole_paths`) and the engine speaks token ids. Otherwise every lineage grows one step
    per engine call."""
    return token_mode and whole_paths(config.probe_at, config.settle, config.consensus)


def budget_share(remaining: int, samples: int, config: Any) -> int:
    """The tokens each of ``samples`` may generate from the ``remaining`` of a token budget,
    leaving room for a probe each when checkpoints are on (the probe is what gives a lineage the
    budget cuts an answer); below 1 when that room is all there is."""
    room = remaining - (samples * config.probe_max_tokens if config.checkpoints else 0)
    return room // samples


def soft_deadline(config: Any) -> float | None:
    """When whole lineages stop under a deadline, in seconds into the solve: early enough that
    the lineages it cuts can still be probed for the answer they imply before the deadline
    itself (a fifth of it, at most ``PROBE_RESERVE_MAX_S``: with a tenth, a 25 s deadline on
    a busy 2-core CPU left the probes of the embedded model 2.5 s, too little); the deadline without checkpoints;
    None without one. (Step by step, every step is probed under a deadline instead.)"""
    d = config.deadline_s
    if d is None or not config.checkpoints:
        return d
    return d - min(PROBE_RESERVE * d, PROBE_RESERVE_MAX_S)


def joined(head: GenResult, rest: GenResult) -> GenResult:
    """A sample generated in two calls as one result: ``rest`` continued ``head``'s tokens.
    Log-probabilities (and top-k lists) are aligned to the tokens, NaN (or empty) where an
    engine left them out."""
    n = len(head.token_ids)
    lp = (list(head.logprobs) + [float("nan")] * (n - len(head.logprobs)) + list(rest.logprobs)
          if head.logprobs or rest.logprobs else [])
    top = (list(head.top_logprobs) + [[]] * (n - len(head.top_logprobs)) + list(rest.top_logprobs)
           if head.top_logprobs or rest.top_logprobs else [])
    return GenResult(text=head.text + rest.text, token_ids=list(head.token_ids) + list(rest.token_ids),
                     finish_reason=rest.finish_reason, stop_str=rest.stop_str, logprobs=lp, top_logprobs=top,
                     prompt_tokens=head.prompt_tokens, cached_tokens=head.cached_tokens,
                     generated_tokens=head.generated_tokens + rest.generated_tokens)


class _Lineages:
    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.c = ctx.config
        self.tok_conf: dict[int, list[float]] = {}  # node id -> its step's token confidences
        self.open: list[Node] = []
        self.ended: list[tuple[Node, str]] = []  # (last node, kind) with kind path | settled | checkpoint
        self.index: dict[int, int] = {}  # node id -> its lineage's index (ballots go in lineage order)
        self.unsorted: list[Node] = []  # the last step, until sort() files it
        self.last_call = False  # the token budget cut the last step: probe every open lineage
        self.launched = 0  # lineages started so far (a new one's index follows them)
        self.pending = 0  # the size of the wave the next step starts from the root
        self.wave = 0  # the current wave (its root request is salted with it)
        self.capped = False  # some lineage stopped at max_steps without an end of its own
        self.verifier = Verifier(ctx.engine, self.c.verify_question) if self.c.verify > 0 else None
        self.odds: dict[int, float | None] = {}  # finished node id -> its verification log-odds
        self.halted = False  # the solve stopped: overlapping waves start nothing more
        self.looped: set[int] = set()  # the samples (ids of their results) the loop rule stopped
        self.loop_ends: set[int] = set()  # ... and the ids of their lineages' last steps

    def launch(self, size: int, wave: int) -> None:
        """Start the next wave: ``size`` new lineages from the root at the next step."""
        self.pending, self.wave = size, wave

    def step_requests(self) -> list:
        ctx, c = self.ctx, self.c
        reqs = [ctx.step_request(ctx.root, self.pending, salt=self.wave)] if self.pending else \
            [ctx.step_request(p, 1, salt=i) for i, p in enumerate(self.open)]
        for r in reqs:
            self.ask_confidence(r)
        rem = ctx.remaining_tokens()
        if rem is not None and c.checkpoints:
            # under a token budget keep room for each lineage's next probe: the probe is what
            # gives a lineage cut by the budget an answer
            cap = max(1, budget_share(rem, sum(r.n for r in reqs), c))
            for r in reqs:
                self.last_call = self.last_call or cap < r.max_new_tokens  # the budget cuts this step
                r.max_new_tokens = min(r.max_new_tokens, cap)
        return reqs

    async def step(self) -> list[Node]:
        ctx = self.ctx
        parents = [ctx.root] if self.pending else self.open
        results = await ctx.generate(self.step_requests())
        kids = []
        for p, rs in zip(parents, results):
            for r in rs:  # a first step starts lineage launched + len(kids)
                kids.append(self.file(p, r, self.index.get(p.id, self.launched + len(kids))))
        if self.pending:
            self.launched, self.pending = self.launched + self.pending, 0
        self.unsorted = kids
        mark_kept(kids)  # lineages are never pruned
        ctx.emit({"type": "step", "depth": kids[0].depth if kids else 0, "nodes": [ctx.node_event(k) for k in kids]})
        return kids

    async def sample(self, size: int, wave: int, segment: int = 0,
                     on_segment: Callable[[], None] | None = None, reserved: int = 0,
                     on_sent: Callable[[], None] | None = None, loop: LoopRule | None = None) -> list[GenResult]:
        """The ``size`` whole samples of wave ``wave``. With ``segment`` > 0 in two calls: the first
        ``segment`` tokens of each (then ``on_segment()``: the next wave may start), and the rest
        of those that had not ended, each continuing its own tokens (a sample of the same
        distribution; its own seed); unless the solve stopped meanwhile (``halted``). With a
        ``loop`` rule (``loop_share``; no ``segment``) a sample the rule finds repeating itself at
        ``loop.start`` tokens ends there, short of the token limit, so no probe follows and it
        casts no ballot (``usage.loop_stops``): an engine that stops loops itself
        (``EngineInfo.loop_stops``) gets the rule with the one request (``GenRequest.loop_stop``);
        elsewhere the first call runs ``loop.start`` tokens and only the others are continued.
        ``reserved`` and ``on_sent`` go to the first call (:meth:`SearchContext.generate`).
        Stopped by :func:`soft_deadline`: :class:`StopSearch` ``"deadline"`` whose ``partial``
        holds the wave's samples as far as they got (None if the engine could not return them)."""
        ctx, c = self.ctx, self.c
        until = soft_deadline(c)
        if loop is not None and (segment or loop.start >= c.max_new_tokens):
            loop = None  # overlapping waves split the calls their own way; past the limit: nothing to stop
        in_engine = loop is not None and ctx.engine.info.loop_stops
        head = segment or (loop.start if loop is not None and not in_engine else 0)
        req = ctx.request(ctx.root, max_new_tokens=head or c.max_new_tokens, n=size, temperature=c.temperature,
                          top_p=c.top_p, top_k=c.top_k, seed=ctx.seed_for(ctx.root, salt=wave),
                          loop_stop=loop if in_engine else None)
        rem = ctx.remaining_tokens()
        if rem is not None:  # a token budget: an equal share of what is left, room kept for probes
            share = budget_share(rem, size, c)
            if share < 1:
                raise StopSearch("budget")
            req.max_new_tokens = min(req.max_new_tokens, share)
        self.ask_confidence(req)
        try:
            (results,) = await ctx.generate([req], reserved=reserved, on_sent=on_sent, until=until)
        except StopSearch as stop:
            raise StopSearch(stop.reason, stop.partial[0] if stop.partial else None) from None
        if in_engine:  # the engine stopped them: the same samples as the split, in one request
            looping = [r for r in results if r.finish_reason == "loop"]
            ctx.usage.loop_stops += len(looping)
            self.looped.update(id(r) for r in looping)
        if not head:
            return results
        if segment and on_segment is not None:
            on_segment()
        todo = [j for j, r in enumerate(results)
                if r.finish_reason == "length" and len(r.token_ids) < c.max_new_tokens]
        if loop is not None:
            looping = {j for j in todo if loop_at(results[j].token_ids, loop) is not None}
            ctx.usage.loop_stops += len(looping)
            self.looped.update(id(results[j]) for j in looping)
            todo = [j for j in todo if j not in looping]
        if not todo or self.halted:
            return results
        reqs = []
        for j in todo:
            q = ctx.request(ctx.root, suffix_ids=results[j].token_ids, n=1, temperature=c.temperature, top_p=c.top_p,
                            top_k=c.top_k, max_new_tokens=c.max_new_tokens - len(results[j].token_ids),
                            seed=ctx.seed_for(ctx.root, salt=wave, index=CONTINUATION_INDEX + j))
            self.ask_confidence(q)
            reqs.append(q)
        out = list(results)
        try:
            rests = await ctx.generate(reqs, until=until)
        except StopSearch as stop:  # the heads stand; the rests as far as they got
            for j, rs in zip(todo, stop.partial or []):
                out[j] = joined(results[j], rs[0])
            raise StopSearch(stop.reason, out) from None
        for j, (rest,) in zip(todo, rests):
            out[j] = joined(results[j], rest)
        return out

    def cut(self, results: list[GenResult], size: int) -> list[Node]:
        """A wave's whole samples (:meth:`sample`) filed as lineages, each cut into the steps the
        step-by-step search would have seen (:func:`~srca.methods.paths.path_steps`), at most
        ``max_steps``; returns each lineage's last step. Only where nothing reads a step before
        its path ends (:func:`~srca.methods.paths.whole_paths`): the engine then batches whole
        samples as for majority voting, with no step barriers."""
        ctx, c = self.ctx, self.c
        lasts, nodes = [], []
        first, self.launched = self.launched, self.launched + size
        for i, r in enumerate(results, first):
            spans = token_spans(ctx.engine, r.token_ids)
            how = path_steps(spans, len(r.token_ids), r.hit_eos, c.step_delimiter, c.max_step_tokens,
                             c.max_new_tokens)[: c.max_steps]
            node, a = ctx.root, 0
            for b, _ in how:
                eos = r.hit_eos and b == len(r.token_ids)
                piece = GenResult(text=spans.text_of(a, b), token_ids=r.token_ids[a:b], logprobs=r.logprobs[a:b],
                                  top_logprobs=r.top_logprobs[a:b], finish_reason="stop" if eos else "length")
                node = self.file(node, piece, i)
                nodes.append(node)
                a = b
            if id(r) in self.looped:  # consumed here: a later result may reuse a freed one's id
                self.looped.discard(id(r))
                self.loop_ends.add(node.id)
            lasts.append(node)
        mark_kept(nodes)
        for d in sorted({n.depth for n in nodes}):
            ctx.emit({"type": "step", "depth": d, "nodes": [ctx.node_event(n) for n in nodes if n.depth == d]})
        return [n for n in lasts if n is not ctx.root]

    def ask_confidence(self, r: GenRequest) -> None:
        """The vote reads token confidences whatever the scorer (a PRM reads none). A ``tail``
        confidence reads only a path's last ``confidence_window`` tokens: each request then
        asks for its last ``2 * confidence_window`` log-probabilities (``logprob_tail``; twice,
        so that a path's tail is still covered when its sample ran on past the boxed answer,
        or its last step was short), and their top-k alternatives with ``confidence_topk``,
        which an engine may score after sampling."""
        c = self.c
        r.logprobs = c.confidence != "none"
        if c.confidence_topk and r.logprobs:  # DeepConf's confidence: the top-k at every position
            r.top_logprobs, r.top_logprobs_steps = c.confidence_topk, r.max_new_tokens
        if c.confidence == "tail":
            r.logprob_tail = 2 * c.confidence_window

    def file(self, parent: Node, r: GenResult, lineage: int) -> Node:
        """The step ``r`` of lineage ``lineage`` after ``parent``, with its token confidences."""
        k = self.ctx.add_step(parent, r)
        self.index[k.id] = lineage
        if self.c.confidence_topk:
            tops = [[lp for _, lp in alts] for alts in r.top_logprobs]
            self.tok_conf[k.id] = [token_confidence(lp, tops[i] if i < len(tops) else None)
                                   for i, lp in enumerate(r.logprobs) if lp == lp]  # NaN: left out by the engine
        else:  # token_confidence without top-k: the log-probability itself
            self.tok_conf[k.id] = [0.0 if lp is None else float(lp) for lp in r.logprobs if lp == lp]
        k.score = k.path_score = self.confidence(k)  # the lineage's confidence so far
        return k

    def confidence(self, node: Node) -> float:
        """The lineage's weight in the vote: its trace confidence, times its verification factor
        once it was verified (:func:`~srca.methods.verify.verify_factor`)."""
        toks = [x for n in node.chain() for x in self.tok_conf.get(n.id, [])]
        conf = trace_confidence(toks, self.c.confidence, self.c.confidence_window, topk=self.c.confidence_topk > 0)
        return conf * verify_factor(self.odds.get(node.id), self.c.verify)

    async def verify(self) -> None:
        """Ask every finished lineage not yet asked whether its answer is right (one engine
        call; the probe's single token counts as a probe's). Nothing without ``verify``."""
        v, ctx = self.verifier, self.ctx
        todo = [n for n, kind in self.ended if kind == "path" and n.id not in self.odds]
        if v is None or not todo:
            return
        reqs = []
        kw = dict(max_new_tokens=1, temperature=0.0, logprobs=False, top_logprobs=VERIFY_TOPK, top_logprobs_steps=1,
                  group=ctx.solve_id)
        for n in todo:
            if ctx.token_mode:
                reqs.append(GenRequest(input_ids=v.ids(ctx.prompt_ids, [t for x in n.chain() for t in x.ids]), **kw))
            else:
                reqs.append(GenRequest(prompt=ctx.prompt_text + n.path_text() + v.suffix, **kw))
        res = await ctx.generate(reqs, probe=True)
        for n, (r,) in zip(todo, res):
            self.odds[n.id] = v.log_odds(r.top_logprobs[0]) if r.top_logprobs else None
        ctx.emit({"type": "verify", "nodes": [{"id": n.id, "answer": n.answer, "log_odds": self.odds[n.id]}
                                              for n in todo]})

    def end(self, node: Node, kind: str) -> None:
        self.ended.append((node, kind))

    def sort(self, kids: list[Node]) -> None:
        """File each new step: finished, cut, stopped by the loop rule (no ballot), settled, or
        still open."""
        c = self.c
        self.open, self.unsorted = [], []
        for k in kids:
            if k.finished:
                self.end(k, "path")
            elif k.truncated:
                self.end(k, "checkpoint")
            elif k.id in self.loop_ends:
                self.end(k, "loop")
            elif c.checkpoints and settled_answer([x.checkpoint for x in k.chain()], c.settle, equivalent):
                k.answer = k.checkpoint
                self.end(k, "settled")
            else:
                self.open.append(k)

    def tell(self, new: list[Node], depth: int) -> None:
        """The ``select`` event after filing ``new``: the lineages still open, and those of ``new``
        that ended (a wave's earlier lineages were told when they ended)."""
        ids = {k.id for k in new}
        self.ctx.emit({"type": "select", "depth": depth,
                       "kept": [{"id": n.id, "answer": n.implied_answer} for n in self.open],
                       "ended": [{"id": n.id, "kind": kind, "answer": n.answer if kind != "checkpoint" else n.checkpoint}
                                 for n, kind in self.ended if n.id in ids]})

    def close_wave(self) -> None:
        """A wave's lineages still open (``max_steps`` reached) end there and vote their last
        checkpoint, as at the end of a solve; the next wave starts from the root."""
        if self.open:
            self.capped = True
            self.ended += [(n, "checkpoint") for n in self.open]
            self.open = []

    def full_answers(self) -> list[str]:
        return [n.answer for n, kind in self.ended if kind != "checkpoint" and n.answer is not None]

    def voters(self) -> list[tuple[Node, str]]:
        """Each lineage's ballot as (node, kind), in lineage order (as the bank replay lists them:
        the vote breaks ties by order); lineages without an answer left out. One still open (or
        cut) votes its latest checkpoint answer, from an earlier step if need be."""
        out = []
        for node, kind in sorted(self.ended + [(n, "checkpoint") for n in self.open],
                                 key=lambda x: self.index.get(x[0].id, 0)):
            if kind == "checkpoint" and node.checkpoint is None:  # not probed, or the probe had no
                # answer (the budget cut it short): the latest checkpoint answer it has
                node = next((x for x in reversed(node.chain()) if x.probed and x.checkpoint is not None), None)
                if node is None:
                    continue
            if (node.checkpoint if kind == "checkpoint" else node.answer) is not None:
                out.append((node, kind))
        return out

    async def settled(self, remaining: int) -> bool:
        """Whether the vote so far is clear enough to start no further wave (:func:`wave_settled`,
        the decision's own vote over the ballots the solve would return now; ``remaining``: the
        lineages the later waves would start, for the margin rule). Its math-verify
        equivalences run in the solver's answer workers (:meth:`SearchContext.offload`): on one
        H200 they held the event loop for 3.7 s of a 72 s srca@16 run when inline."""
        c = self.c
        ballots = [Ballot(n.checkpoint if kind == "checkpoint" else n.answer, "checkpoint" if kind == "checkpoint"
                          else "path", self.confidence(n)) for n, kind in self.voters()]
        return await self.ctx.offload(wave_settled, ballots, equivalent, c.wave_consensus, c.wave_min, c.keep_top,
                                      c.checkpoint_weight, c.keep_min, c.wave_margin, remaining)

    def ballots(self) -> None:
        """One candidate per lineage (:meth:`voters`); the score is the lineage's confidence. A
        stop between a step and its probe (deadline, budget) first files that step: a lineage
        that finished in it votes its answer; one still open votes its latest checkpoint."""
        if self.unsorted:
            self.sort(self.unsorted)
        for node, kind in self.voters():
            node.score = node.path_score = self.confidence(node)
            self.ctx.add_candidate(node, kind)


def _wave_event(ctx: SearchContext, w: int, sizes: list[int]) -> None:
    """Tell the event stream a wave starts (only when there are several): ``wave`` (1-based),
    ``waves``, ``lineages`` in it, ``before``: lineages started by the earlier waves."""
    if len(sizes) > 1:
        ctx.emit({"type": "wave", "wave": w + 1, "waves": len(sizes), "lineages": sizes[w], "before": sum(sizes[:w])})


async def run_lineages(ctx: SearchContext) -> None:
    c = ctx.config
    lin = _Lineages(ctx)
    # nothing here reads a probe's logprobs (no scorer is called); the steps ask for their own
    ctx.want_logprobs = False
    ctx.stop_reason = "max_steps"
    sizes = config_wave_sizes(c)
    if goes_whole(c, ctx.token_mode):  # no stop between steps: each lineage in one go
        await _run_whole(ctx, lin, sizes)
        return
    try:
        for w, size in enumerate(sizes):
            _wave_event(ctx, w, sizes)
            lin.launch(size, w)
            for depth in range(c.max_steps):
                kids = await lin.step()
                # probe every open lineage where no step may follow: the last step, a budget-cut step, and
                # under a deadline every step (the probe is the answer a deadline stop returns)
                last = depth == c.max_steps - 1 or lin.last_call or c.deadline_s is not None
                if c.checkpoints:  # every open lineage, or only those the token limit cut (probe_at)
                    await ctx.probe([k for k in kids
                                     if not k.finished and (c.probe_at == "step" or k.truncated or last)])
                lin.sort(kids)
                await lin.verify()
                lin.tell(kids, kids[0].depth if kids else 0)
                if not lin.open:
                    break
                if consensus_reached(lin.full_answers(), c.n, c.consensus, equivalent):
                    ctx.stop_reason = "consensus"
                    return
            lin.close_wave()
            if w < len(sizes) - 1 and await lin.settled(sum(sizes[w + 1:])):
                ctx.stop_reason = "consensus"
                return
        ctx.stop_reason = "max_steps" if lin.capped else "finished"
    finally:  # also on a budget or deadline stop: every lineage gets its ballot
        lin.ballots()


def width(config: Any) -> int:
    """The most lineages a solve with ``config`` decodes at once (``Method.width`` of srca, which
    :mod:`srca.admission` admits solves by): its largest wave when the waves run one after
    another; all ``n`` with overlapping waves, and in the paper's tree (``lineages`` off)."""
    if not config.lineages or config.wave_overlap:
        return config.n
    return max(config_wave_sizes(config))


def speculates(config: Any, ctx: SearchContext, waves: int) -> bool:
    """Whether a solve starts its third and later waves with the second where the engine has
    room (``wave_speculate``): with three waves or more one after another (no ``wave_overlap``),
    an engine that can abort a solve's requests and count them, and a solver that counts the
    engine's load against a batch the engine states (:class:`srca.admission.EngineLoad`); no
    token budget."""
    load = ctx.load
    return bool(config.wave_speculate and waves > 2 and overlap_of(config, ctx.engine, waves) == 0
                and config.max_tokens_total is None  # under a budget each wave takes what the last left
                and callable(getattr(ctx.engine, "abort", None)) and load is not None and load.capacity)


def overlap_of(config: Any, engine: Any, waves: int) -> int:
    """The ``wave_overlap`` a solve runs with: 0 (one wave after another) with a single wave, an
    overlap not below ``max_new_tokens``, or an engine that cannot abort a solve's requests and
    count them (``abort(group)``: the local and SGLang engines), or under a token budget (each wave
    takes its share of what the ones before left)."""
    d = config.wave_overlap
    return d if waves > 1 and 0 < d < config.max_new_tokens and callable(getattr(engine, "abort", None)) \
        and config.max_tokens_total is None else 0


async def _run_whole(ctx: SearchContext, lin: _Lineages, sizes: list[int]) -> None:
    """The lineages generated whole, wave by wave (:meth:`_Lineages.sample`); a lineage the token
    limit or ``max_steps`` cut gets its one probe, as in the step-by-step search. With
    ``wave_overlap`` (:func:`overlap_of`) wave ``w + 1`` starts once wave ``w`` has run that many
    tokens; the decisions are the same, made in wave order, and a clear vote aborts the waves
    started after it (the engine returns what they generated, which is counted, and thrown away).
    Under a deadline the wave running at :func:`soft_deadline` is stopped there and filed as far
    as it got: a lineage that boxed an answer by then votes it, the others are probed in the time
    left (a probe the deadline cuts gives no answer) and vote their checkpoint; no wave starts
    after it (``stop_reason`` ``"deadline"``). Under a token budget each wave's samples may run
    to an equal share of what is left less their probes' room (:meth:`_Lineages.sample`); a wave
    the share cut ends the same way (``"budget"``), and one that cannot have a token per sample
    does not start."""
    c = ctx.config
    d = overlap_of(c, ctx.engine, len(sizes))
    spec = speculates(c, ctx, len(sizes))
    loop = rule_for(c) if c.max_tokens_total is None else None  # under a budget each wave runs its share
    until = soft_deadline(c)
    tasks: list[asyncio.Future] = []
    decided = 0  # the waves whose samples the decision read

    def start(w: int, reserved: int = 0, on_sent: Callable[[], None] | None = None) -> None:
        if w < len(sizes) and len(tasks) == w and not lin.halted:
            # from the second wave on: the first runs alone (most solves stop after it)
            sent = on_sent or ((lambda: speculate(w + 1)) if spec and w >= 1 else None)
            tasks.append(asyncio.ensure_future(lin.sample(sizes[w], w, d, lambda: start(w + 1), reserved=reserved,
                                                          on_sent=sent, loop=loop)))

    def speculate(w: int) -> None:
        """Wave ``w`` now, if the engine's batch has room for it: its sequences are counted at
        once (solves deciding together must not all take the same room), and its engine call
        takes the count over when it goes out; a wave stopped before that gives it back."""
        if not (w < len(sizes) and len(tasks) == w and not lin.halted and ctx.load.room() >= sizes[w]
                and not ctx.load.waiting):  # room that solves waiting for admission need is theirs
            return
        size, held = sizes[w], [True]

        def sent() -> None:
            held[0] = False
            speculate(w + 1)

        ctx.load.add(size)
        start(w, reserved=size, on_sent=sent)
        tasks[w].add_done_callback(lambda _: ctx.load.add(-size) if held[0] else None)

    try:
        for w, size in enumerate(sizes):
            if len(tasks) == w and until is not None and time.monotonic() - ctx.t0 >= until:
                ctx.stop_reason = "deadline"  # no wave starts past the soft deadline
                break
            start(w)  # without overlap, or when the wave before failed to start it
            cut = None  # what stopped this wave: the deadline, or the budget's share
            try:
                results = await tasks[w]
            except StopSearch as stop:
                if stop.partial is None:  # the engine returned nothing to file
                    raise
                results, cut, lin.halted = stop.partial, "deadline", True
            if cut is None and c.max_tokens_total is not None and any(
                    r.finish_reason == "length" and len(r.token_ids) < c.max_new_tokens for r in results):
                cut = "budget"
            decided = w + 1
            _wave_event(ctx, w, sizes)
            lasts = lin.cut(results, size)
            lin.unsorted = lasts  # filed by ballots() should a probe meet the deadline
            if c.checkpoints:
                await ctx.probe([k for k in lasts if not k.finished and (k.truncated or k.depth >= c.max_steps or cut)])
            lin.sort(lasts)
            if not cut:
                await lin.verify()
            lin.tell(lasts, max((k.depth for k in lasts), default=0))
            lin.close_wave()
            if cut:
                ctx.stop_reason = cut
                break
            if w < len(sizes) - 1 and await lin.settled(sum(sizes[w + 1:])):
                ctx.stop_reason = "consensus"
                break
        else:
            ctx.stop_reason = "max_steps" if lin.capped else "finished"
    finally:
        lin.halted = True
        await _abort_waves(ctx, tasks, overlapping=bool(d) or spec)
        ctx.usage.unused_tokens += _unused_tokens(tasks[decided:])
        lin.ballots()  # also on a deadline or budget stop: every lineage gets its ballot


def _unused_tokens(tasks: list[asyncio.Future]) -> int:
    """Tokens the waves started early and not read by the decision generated (what came back
    from their engine calls; a wave cancelled before it answered counts nothing)."""
    out = 0
    for t in tasks:
        if t.done() and not t.cancelled():
            e = t.exception()
            rows = t.result() if e is None else (e.partial if isinstance(e, StopSearch) else None)
            out += sum(r.generated_tokens for r in rows or [])
    return out


async def _abort_waves(ctx: SearchContext, tasks: list[asyncio.Future], overlapping: bool) -> None:
    """Stop the overlapping waves still running: the engine aborts the solve's requests and
    their calls return what was generated (counted by :meth:`SearchContext.generate`); what is
    still running after ``ABORT_WAIT_S`` is cancelled. Without overlap only a solve that failed
    or was cancelled leaves a wave running: it is cancelled."""
    live = [t for t in tasks if not t.done()]
    if live and overlapping:
        ctx.engine.abort(ctx.solve_id)
        await asyncio.wait(live, timeout=ABORT_WAIT_S)
    for t in tasks:
        if not t.done():
            t.cancel()
        elif not t.cancelled():
            t.exception()  # retrieved: a wave thrown away may fail as it stops
