"""The search methods by name, with the facts the library needs about each (``Method``).

A leaf module (it imports only the standard library; ``Method.prompt_for`` reads
``srca.prompts`` when called): ``SearchConfig`` validates ``method`` against this table and every
search module imports ``SearchConfig``, so the table must not import the searches.
Each entry names its search function as ``"module:function"``, imported when a solve first runs
it (as ``srca.engines.ENGINES`` names the engines). ``srca.methods`` re-exports ``METHODS`` and
``Method``; the CLI, the service, the evaluation and the Solver all read this one table.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Union

# a search: ``async def run_x(ctx: srca.methods.context.SearchContext) -> None``
Search = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Method:
    """A search method and the facts the rest of the library needs about it (the CLI, the
    evaluation and the Solver read them here instead of keeping lists of names).

    ``search``: the search function, or where it lives as ``"module:function"``."""

    name: str
    search: Union[Search, str]
    decision: str | None = None  # fixed decision rule; None: SearchConfig.decision
    summary: str = ""
    scores: bool = True  # calls the scorer (False: token logprobs are not asked of the engine)
    default_decision: str = "best_score"  # the rule SearchConfig.decision "auto" stands for
    tree_decision: str | None = None  # srca: "auto" with lineages=False (the paper's tree) instead
    ignores_n: bool = False  # one greedy path whatever n is: evaluated once, recorded with n = 1
    # grows its paths a step at a time, so its trace has a checkpoint answer per step (the CLI's
    # timeline): the trees (beam, dvts, srca with lineages=False) and srca's lineages alike
    stepwise: bool = False
    needs_token_ids: bool = False  # works on token ids: a text-only engine cannot run it
    # the most sequences one solve decodes at once (srca.admission): "module:function" of the
    # config; None: n (1 for a method that ignores n)
    width: str | None = None
    # its own prompt template and what that asks for: pot asks for a program ("asks": "program"),
    # so a SearchConfig.prompt that asks for reasoning (math, qwen, plain) gives way to it
    prompt: str | None = None
    runs_code: bool = False  # runs what the model wrote (srca.execution): the service asks its operator

    def prompt_for(self, config: Any) -> str:
        """The prompt template a solve with ``config`` (a ``SearchConfig``) asks with:
        ``config.prompt``, unless this method has a template of its own and ``config.prompt``
        asks for something else (a chain of thought where the method needs a program)."""
        if self.prompt is None:
            return config.prompt
        from . import prompts  # srca.prompts (the prompts/ folder)

        return config.prompt if prompts.asks(config.prompt) == prompts.asks(self.prompt) else self.prompt

    def search_fn(self) -> Search:
        """The search function (imported on first use when given as ``"module:function"``)."""
        if callable(self.search):
            return self.search
        module, _, attr = self.search.partition(":")
        return getattr(importlib.import_module(module), attr)

    def width_of(self, config: Any) -> int:
        """The most sequences one solve with ``config`` (a ``SearchConfig``) decodes at once
        (:mod:`srca.admission` admits solves by it)."""
        if self.ignores_n:
            return 1
        if self.width is None:
            return config.n
        module, _, attr = self.width.partition(":")
        return getattr(importlib.import_module(module), attr)(config)

    async def run(self, ctx: Any) -> None:
        """Run the search on ``ctx`` (a ``SearchContext``). Raises ``ValueError`` before any
        generation when the engine cannot serve this method."""
        if self.needs_token_ids and not ctx.token_mode:
            raise ValueError(f"method {self.name}: needs an engine that works on token ids "
                             f"({ctx.engine.info.name} does not)")
        await self.search_fn()(ctx)

    def decision_for(self, config: Any) -> str:
        """The decision rule a solve with ``config`` (a ``SearchConfig``) uses."""
        if self.decision is not None:
            return self.decision
        if config.decision != "auto":
            return config.decision
        if self.tree_decision is not None and not getattr(config, "lineages", True):
            return self.tree_decision
        return self.default_decision


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("cot", "srca.methods.sampling:run_cot", "best_score", "one greedy chain of thought", scores=False,
           ignores_n=True),
    Method("majority", "srca.methods.sampling:run_majority", "majority", "self-consistency: n samples, majority vote",
           scores=False),
    Method("best_of_n", "srca.methods.sampling:run_best_of_n", None, "n samples, the scorer picks"),
    Method("beam", "srca.methods.tree:run_beam", None, "step-level beam search with the scorer", stepwise=True),
    Method("dvts", "srca.methods.tree:run_dvts", None, "diverse verifier tree search: beam_width independent subtrees",
           stepwise=True),
    Method("srca", "srca.methods.tree:run_srca", None, "n lineages probed after every step; settled and consensus "
           "early exits; confidence-weighted vote (lineages=False: the paper's ACS tree with CCA)",
           default_decision="confidence_vote", tree_decision="best_score", stepwise=True,
           width="srca.methods.lineage:width"),
    Method("cot_decoding", "srca.methods.cot_decoding:run_cot_decoding", "best_score",
           "branch on the top-n first tokens, pick by answer confidence", needs_token_ids=True),
    Method("pot", "srca.methods.sampling:run_pot", "majority", "program of thought: n programs run (srca.execution), "
           "majority vote over what they print", scores=False, prompt="pot", runs_code=True),
    Method("majority-pot", "srca.methods.sampling:run_majority_pot", "weighted_vote", "chains of thought and "
           "programs (program_share of n) in one vote, a program's weighing program_weight", scores=False,
           runs_code=True),
]}

