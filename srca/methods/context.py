"""SearchContext: the per-solve state every method shares.

It owns the engine calls (usage accounting, budget and deadline checks), the tree of
:class:`Node`, checkpoint probes, scoring, events and the final candidate pool.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from ..admission import release_admission
from ..answers import extract_answer, extract_boxed, parse_probe
from ..config import SearchConfig
from ..engines.base import Engine, GenRequest, GenResult
from ..engines.token_spans import token_spans
from ..scorers import ScoreInput, Scorer, aggregate
from ..seeds import request_seed
from ..solution import Candidate, TraceNode, Usage

EventSink = Callable[[dict], Any]

# a probe's answer ends where its box closes (or at a blank line)
PROBE_STOPS = ("}\n", "}$", "\n\n")
ABORT_WAIT_S = 10.0  # how long a deadline waits for an engine to return the rows it stopped


class StopSearch(Exception):
    """Raised inside a method when the solve must end early; ``reason`` is a stop_reason.
    ``partial``: what the engine call that was stopped returned (one list of rows per request,
    ``finish_reason`` ``"abort"`` where stopped; None when the engine could not return them),
    for a caller that files the tokens generated so far (srca's whole lineages, :func:`~srca.
    methods.lineage.soft_deadline`)."""

    def __init__(self, reason: str, partial: list | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


@dataclass(eq=False)
class Node:
    """One step of one path (the root holds the prompt and no step)."""

    id: int
    parent: "Node | None"
    depth: int
    text: str = ""
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finished: bool = False  # the path ended by itself (EOS, or a boxed final answer)
    truncated: bool = False  # the path ran out of tokens
    answer: str | None = None  # final answer of a finished path
    answer_logprobs: list[float] | None = None
    checkpoint: str | None = None  # probed answer after this step
    checkpoint_logprobs: list[float] | None = None
    probed: bool = False
    score: float | None = None
    path_score: float | None = None
    group: int | None = None
    kept: bool = False
    selected_rank: int = -1

    def chain(self) -> list["Node"]:
        """Nodes from the first step to this one (root excluded)."""
        out, n = [], self
        while n is not None and n.parent is not None:
            out.append(n)
            n = n.parent
        return out[::-1]

    @property
    def path_tokens(self) -> int:
        return sum(len(n.ids) for n in self.chain())

    def path_text(self) -> str:
        return "".join(n.text for n in self.chain())

    @property
    def implied_answer(self) -> str | None:
        """The answer this path stands for now: its final answer, else its last checkpoint."""
        return self.answer if self.finished else self.checkpoint


class SearchContext:
    def __init__(self, problem: str, config: SearchConfig, engine: Engine, scorer: Scorer,
                 on_event: EventSink | None = None, want_logprobs: bool = True,
                 offload: Callable[..., Awaitable[Any]] | None = None, load: Any = None) -> None:
        from .. import prompts  # srca.prompts

        self.problem = problem
        self.config = config
        self.engine = engine
        self.scorer = scorer
        self.on_event = on_event
        # token logprobs only when something reads them (the self-confidence scorer does; a PRM
        # and plain voting do not): less for the engine to compute and send back
        self.want_logprobs = want_logprobs
        # a pure CPU-heavy function (math-verify's equivalences) off the event loop: the solver's
        # answer workers (srca.answer_work); inline without them
        self._offload = offload
        # the solver's count of sequences in engine calls (srca.admission.EngineLoad); None: alone
        self.load = load
        self.usage = Usage()
        self.reserved_tokens = 0  # what the engine calls in flight may still generate (the budget's share)
        self.solve_id = uuid.uuid4().hex
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {"engine_s": 0.0, "scorer_s": 0.0}
        self._in_engine = 0  # engine calls in flight (engine_s counts the time any is)
        self._engine_since = 0.0
        self.nodes: list[Node] = []
        self.pool: list[Candidate] = []
        self.stop_reason = "finished"
        self.token_mode = engine.info.token_ids
        from ..method_registry import METHODS

        self.prompt_text = engine.chat_prompt(prompts.messages(METHODS[config.method].prompt_for(config), problem))
        self.prompt_ids = engine.encode(self.prompt_text) if self.token_mode else []
        self.cue_ids = engine.encode(config.checkpoint_cue) if self.token_mode else []
        self.root = self.new_node(None)

    # -- tree -----------------------------------------------------------------------------
    def new_node(self, parent: Node | None, **kw: Any) -> Node:
        node = Node(id=len(self.nodes), parent=parent, depth=0 if parent is None else parent.depth + 1, **kw)
        self.nodes.append(node)
        return node

    def request(self, node: Node, suffix: str = "", suffix_ids: Sequence[int] = (), **params: Any) -> GenRequest:
        """A request continuing ``node``'s path (plus an optional suffix such as the cue)."""
        params.setdefault("group", self.solve_id)
        params.setdefault("logprobs", self.want_logprobs)
        if self.token_mode:
            ids = self.prompt_ids + [t for n in node.chain() for t in n.ids] + list(suffix_ids)
            return GenRequest(input_ids=ids, **params)
        return GenRequest(prompt=self.prompt_text + node.path_text() + suffix, **params)

    def template_request(self, template: str, **params: Any) -> GenRequest:
        """A request for the problem asked with another prompt template than the solve's
        (majority-pot's programs beside its chains of thought): its answers are new paths from
        the root, in the same engine call as the others when the caller batches them."""
        from .. import prompts  # srca.prompts

        params.setdefault("group", self.solve_id)
        params.setdefault("logprobs", self.want_logprobs)
        text = self.engine.chat_prompt(prompts.messages(template, self.problem))
        if self.token_mode:
            return GenRequest(input_ids=self.engine.encode(text), **params)
        return GenRequest(prompt=text, **params)

    def seed_for(self, node: Node, salt: int = 0, index: int | None = None) -> int:
        """The seed of a request continuing ``node`` (:func:`srca.seeds.request_seed`), keyed by
        the node's id or by ``index`` (a search whose node ids depend on timing, DVTS's
        independent subtrees, keys its requests by their place instead)."""
        return request_seed(self.config.seed, node.id if index is None else index, salt)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (a pure, picklable function) in the solver's answer workers when it has
        them, so a search's own answer checks (the waves' vote) do not hold the event loop that
        feeds every other solve; inline otherwise."""
        if self._offload is None:
            return fn(*args)
        return await self._offload(fn, *args)

    # -- engine calls ---------------------------------------------------------------------
    def remaining_tokens(self) -> int | None:
        """The token budget left: less what was generated and what the calls in flight may
        still generate (a search with concurrent calls, DVTS's subtrees, never overshoots)."""
        if self.config.max_tokens_total is None:
            return None
        return self.config.max_tokens_total - self.usage.generated_tokens - self.reserved_tokens

    def check_limits(self) -> None:
        rem = self.remaining_tokens()
        if rem is not None and rem <= 0:
            raise StopSearch("budget")
        if self.config.deadline_s is not None and time.monotonic() - self.t0 >= self.config.deadline_s:
            raise StopSearch("deadline")

    async def generate(self, requests: list[GenRequest], probe: bool = False, reserved: int = 0,
                       on_sent: Callable[[], Any] | None = None, until: float | None = None) -> list[list[GenResult]]:
        """Run ``requests`` on the engine within the solve's budget and deadline, their sequences
        counted in the solver's load while they run. ``reserved``: sequences the caller already
        added to that load for this call (srca's speculative waves reserve theirs when they
        decide to start); ``on_sent()``: called once they are counted, before the engine answers;
        ``until``: seconds into the solve, before its deadline, at which the call is stopped as
        the deadline stops it (:class:`StopSearch` ``"deadline"`` with the rows returned)."""
        units = sum(r.n for r in requests)
        if self.load is not None:
            self.load.add(units - reserved)
            release_admission()  # counted now: the admission's reservation for this solve goes
        try:
            if not requests:
                return []
            if on_sent is not None:
                on_sent()
            return await self._generate(requests, probe, until)
        finally:
            if self.load is not None:
                self.load.add(-units)

    async def _generate(self, requests: list[GenRequest], probe: bool, until: float | None) -> list[list[GenResult]]:
        self.check_limits()
        rem = self.remaining_tokens()
        if rem is not None:  # share what is left over everything this call may generate
            want = sum(r.n for r in requests)
            if rem < want:  # not one token for every sample: running it would overshoot the budget
                raise StopSearch("budget")
            cap = rem // want
            for r in requests:
                r.max_new_tokens = min(r.max_new_tokens, cap)
        reserve = sum(r.max_new_tokens * r.n for r in requests) if rem is not None else 0
        self.reserved_tokens += reserve
        self._engine_enter()
        call = asyncio.ensure_future(self.engine.generate(requests))
        try:
            limit = min((t for t in (self.config.deadline_s, until) if t is not None), default=None)
            if limit is not None:
                await asyncio.wait({call}, timeout=max(0.0, limit - (time.monotonic() - self.t0)))
                if not call.done():
                    raise StopSearch("deadline", partial=await self._abort(call, probe))
            results = await call
        finally:
            self.reserved_tokens -= reserve
            if not call.done():  # this solve was cancelled: so is its engine work
                call.cancel()
            self._engine_exit()
        self._account(results, probe)
        return results

    def _engine_enter(self) -> None:
        if self._in_engine == 0:
            self._engine_since = time.monotonic()
        self._in_engine += 1

    def _engine_exit(self) -> None:
        """``timings["engine_s"]``: the wall time during which at least one of this solve's
        engine calls was in flight (DVTS's subtrees call concurrently: a sum would count that
        time once per subtree and exceed the solve's own wall)."""
        self._in_engine -= 1
        if self._in_engine == 0:
            self.timings["engine_s"] += time.monotonic() - self._engine_since

    async def _abort(self, call: asyncio.Future, probe: bool) -> list[list[GenResult]] | None:
        """The deadline passed while ``call`` ran: stop its requests, count what the engine
        spent on them and return what it answered. An engine with ``abort(group)`` (local,
        SGLang in process or behind its server, fake) ends this solve's requests and returns them
        (finish_reason ``abort``), so their tokens are counted; any other engine is cancelled
        (the OpenAI engine's requests are then aborted by the closed connection) and what it
        spent cannot be known (None)."""
        abort = getattr(self.engine, "abort", None)
        if callable(abort):
            abort(self.solve_id)
            try:
                results = await asyncio.wait_for(asyncio.shield(call), ABORT_WAIT_S)
            except asyncio.TimeoutError:
                pass
            except Exception:  # the engine failed while stopping; the deadline is the news
                return None
            else:
                self._account(results, probe)
                return results
        call.cancel()
        await asyncio.wait({call}, timeout=ABORT_WAIT_S)
        if call.done() and not call.cancelled():
            call.exception()  # retrieved: an engine failing as it stops is not the news here
        return None

    def _account(self, results: list[list[GenResult]], probe: bool) -> None:
        u = self.usage
        u.engine_calls += 1
        u.engine_requests += len(results)
        for per_req in results:
            for r in per_req:
                u.prompt_tokens += r.prompt_tokens
                u.cached_tokens += r.cached_tokens
                u.generated_tokens += r.generated_tokens
                if probe:
                    u.probe_tokens += r.generated_tokens

    # -- steps ----------------------------------------------------------------------------
    def step_request(self, node: Node, n: int, salt: int = 0, index: int | None = None,
                     may_wait: bool = False) -> GenRequest:
        c = self.config
        left = c.max_new_tokens - node.path_tokens
        return self.request(
            node, max_new_tokens=max(1, min(c.max_step_tokens, left)), temperature=c.temperature,
            top_p=c.top_p, top_k=c.top_k, n=n, stop=(c.step_delimiter,), seed=self.seed_for(node, salt, index),
            may_wait=may_wait,
        )

    def add_step(self, parent: Node, r: GenResult) -> Node:
        """A child node from one generated step; marks it finished or truncated."""
        child = self.new_node(parent, text=r.text, ids=list(r.token_ids), logprobs=list(r.logprobs))
        boxed = extract_boxed(r.text)
        if r.hit_eos or boxed is not None:
            child.finished = True
            child.answer = extract_answer(child.path_text())
            if self.want_logprobs:  # only a scorer reads them (the lineage search calls none)
                child.answer_logprobs = self.answer_span_logprobs(child, child.answer)
        elif child.path_tokens >= self.config.max_new_tokens:
            child.truncated = True  # out of tokens: the path ends without an answer of its own
        return child

    async def expand(self, parents: Sequence[Node], n: int, salt: int = 0, index: int | None = None) -> list[list[Node]]:
        """Expand every parent into ``n`` sampled children, in one engine call (parent ``i``'s
        request salted ``salt + i``; seeds keyed by ``index`` when given, see :meth:`seed_for`).
        The steps may wait to go out with other solves' (``GenRequest.may_wait``): a tree search
        sends every step as a new request, many small ones at nearly every decode iteration."""
        res = await self.generate([self.step_request(p, n, salt=salt + i, index=index, may_wait=True)
                                   for i, p in enumerate(parents)])
        kids = [[self.add_step(p, r) for r in rs] for p, rs in zip(parents, res)]
        self.emit({"type": "step", "depth": parents[0].depth + 1 if parents else 0,
                   "nodes": [self.node_event(k) for ks in kids for k in ks]})
        return kids

    def answer_span_logprobs(self, node: Node, answer: str | None) -> list[float] | None:
        """Log-probabilities of the tokens that spell ``answer`` at its last occurrence in the
        node's step (it needs token ids and logprobs)."""
        if answer is None or not node.ids or len(node.logprobs) != len(node.ids):
            return None
        pos = node.text.rfind(answer)
        if pos < 0:
            return None
        span = token_spans(self.engine, node.ids).touching(pos, pos + len(answer))
        lps = [node.logprobs[i] for i in span]
        return lps if lps and all(x == x for x in lps) else None  # NaN: the engine left it out

    # -- checkpoints ----------------------------------------------------------------------
    async def probe(self, nodes: Sequence[Node]) -> None:
        """Checkpoint injection: append the cue to each unfinished path, decode the answer
        greedily, parse it, and throw the probe away (the path continues from the step)."""
        todo = [n for n in nodes if not n.finished and not n.probed]
        if not todo:
            return
        c = self.config
        reqs = [self.request(n, suffix=c.checkpoint_cue, suffix_ids=self.cue_ids, max_new_tokens=c.probe_max_tokens,
                             temperature=0.0, stop=PROBE_STOPS) for n in todo]
        res = await self.generate(reqs, probe=True)
        for n, (r,) in zip(todo, res):
            n.probed = True
            n.checkpoint = parse_probe(r.text)
            if n.checkpoint is not None and r.logprobs:
                # the answer's own tokens: up to where the box closes
                n.checkpoint_logprobs = self._prefix_logprobs(r, len(n.checkpoint))
        self.emit({"type": "checkpoint", "nodes": [{"id": n.id, "depth": n.depth, "answer": n.checkpoint} for n in todo]})

    def _prefix_logprobs(self, r: GenResult, nchars: int) -> list[float]:
        if not self.token_mode or not r.token_ids:
            return list(r.logprobs)
        return list(r.logprobs[:token_spans(self.engine, r.token_ids).through(nchars)])

    # -- scoring --------------------------------------------------------------------------
    async def score(self, nodes: Sequence[Node]) -> None:
        todo = [n for n in nodes if n.score is None]
        if not todo:
            return
        items = []
        for n in todo:
            chain = n.chain()
            ans, alp = (n.answer, n.answer_logprobs) if n.finished else (n.checkpoint, n.checkpoint_logprobs)
            items.append(ScoreInput(problem=self.problem, steps=[x.text for x in chain],
                                    step_logprobs=[x.logprobs for x in chain], answer=ans, answer_logprobs=alp))
        t = time.monotonic()
        scores = await self.scorer.score(items)
        self.timings["scorer_s"] += time.monotonic() - t
        self.usage.scorer_calls += len(items)
        for n, s in zip(todo, scores):
            n.score = float(s)
            n.path_score = aggregate([x.score for x in n.chain() if x.score is not None], self.config.aggregation)

    # -- candidates and events ------------------------------------------------------------
    def add_candidate(self, node: Node, source: str) -> None:
        # source: path (finished by itself), program (what the program it wrote printed),
        # settled (stopped once its probes agreed: the answer it settled on) or checkpoint (a
        # probe's answer)
        ans = node.answer if source in ("path", "program") else node.checkpoint
        if ans is None:
            return
        score = node.path_score if node.path_score is not None else 0.0
        # canonical: set with the decision (srca.answer_work.decide_pool), off the event loop
        self.pool.append(Candidate(answer=ans, canonical="", score=score, source=source, step=node.depth, node=node.id))

    def emit(self, event: dict) -> None:
        if self.on_event is not None:
            event.setdefault("t", round(time.monotonic() - self.t0, 3))
            self.on_event(event)

    @staticmethod
    def node_event(n: Node) -> dict:
        return {"id": n.id, "parent": n.parent.id if n.parent else None, "depth": n.depth, "text": n.text,
                "finished": n.finished, "answer": n.answer}

    def trace(self) -> list[TraceNode]:
        return [TraceNode(id=n.id, parent=n.parent.id if n.parent else None, depth=n.depth, text=n.text,
                          score=n.score, path_score=n.path_score, checkpoint=n.checkpoint,
                          checkpoint_score=n.path_score if n.checkpoint is not None else None, group=n.group,
                          kept=n.kept, selected_rank=n.selected_rank, finished=n.finished, answer=n.answer,
                          tokens=len(n.ids)) for n in self.nodes]
