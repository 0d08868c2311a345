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
    name: str
    run: Callable[[SearchContext], Awaitable[None]]
    decision: str | None = None  # fixed decision rule; None: SearchConfig.decision
    summary: str = ""
    scores: bool = True  # calls the scorer (False: token logprobs are not asked of the engine)
    default_decision: str = "best_score"  # the rule SearchConfig.decision "auto" stands for

    def decision_for(self, config: "SearchConfig") -> str:
        """The decision rule a solve with ``config`` uses."""
        if self.decision is not None:
            return self.decision
        return self.default_decision if config.decision == "auto" else config.decision


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("cot", run_cot, "best_score", "one greedy chain of thought", scores=False),
    Method("majority", run_majority, "majority", "self-consistency: n samples, majority vote", scores=False),
    Method("best_of_n", run_best_of_n, None, "n samples, the scorer picks"),
    Method("beam", run_beam, None, "step-level beam search with the scorer"),
    Method("dvts", run_dvts, None, "diverse verifier tree search: beam_width independent subtrees"),
    Method("srca", run_srca, None, "n lineages probed after every step; settled and consensus early exits; "
           "confidence-weighted vote (lineages=False: the paper's ACS tree with CCA)",
           default_decision="confidence_vote"),
    Method("cot_decoding", run_cot_decoding, "best_score", "branch on the top-n first tokens, pick by answer confidence"),
]}

__all__ = ["METHODS", "Method", "SearchContext"]
