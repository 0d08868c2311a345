"""Search methods, looked up by name (the CLI, the service and the benchmarks share this)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from ..config import SearchConfig
from .context import SearchContext
from .cot_decoding import run_cot_decoding
from .sampling import run_best_of_n, run_cot, run_majority
from .tree import run_beam, run_dvts, run_srca


@dataclass(frozen=True)
class Method:
    """A search method and the facts the rest of the library needs about it (the CLI, the
    evaluation and the Solver read them here instead of keeping lists of names)."""

    name: str
    search: Callable[[SearchContext], Awaitable[None]]
    decision: str | None = None  # fixed decision rule; None: SearchConfig.decision
    summary: str = ""
    scores: bool = True  # calls the scorer (False: token logprobs are not asked of the engine)
    default_decision: str = "best_score"  # the rule SearchConfig.decision "auto" stands for
    ignores_n: bool = False  # one greedy path whatever n is: evaluated once, recorded with n = 1
    # grows its paths a step at a time, so its trace has a checkpoint answer per step (the CLI's
    # timeline): the trees (beam, dvts, srca with lineages=False) and srca's lineages alike
    stepwise: bool = False
    needs_token_ids: bool = False  # works on token ids: a text-only engine cannot run it

    async def run(self, ctx: SearchContext) -> None:
        """Run the search on ``ctx``. Raises ``ValueError`` before any generation when the
        engine cannot serve this method."""
        if self.needs_token_ids and not ctx.token_mode:
            raise ValueError(f"method {self.name}: needs an engine that works on token ids "
                             f"({ctx.engine.info.name} does not)")
        await self.search(ctx)

    def decision_for(self, config: "SearchConfig") -> str:
        """The decision rule a solve with ``config`` uses."""
        if self.decision is not None:
            return self.decision
        return self.default_decision if config.decision == "auto" else config.decision


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("cot", run_cot, "best_score", "one greedy chain of thought", scores=False, ignores_n=True),
    Method("majority", run_majority, "majority", "self-consistency: n samples, majority vote", scores=False),
    Method("best_of_n", run_best_of_n, None, "n samples, the scorer picks"),
    Method("beam", run_beam, None, "step-level beam search with the scorer", stepwise=True),
    Method("dvts", run_dvts, None, "diverse verifier tree search: beam_width independent subtrees", stepwise=True),
    Method("srca", run_srca, None, "n lineages probed after every step; settled and consensus early exits; "
           "confidence-weighted vote (lineages=False: the paper's ACS tree with CCA)",
           default_decision="confidence_vote", stepwise=True),
    Method("cot_decoding", run_cot_decoding, "best_score", "branch on the top-n first tokens, pick by answer confidence",
           needs_token_ids=True),
]}

__all__ = ["METHODS", "Method", "SearchContext"]
