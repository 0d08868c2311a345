"""SearchConfig: the one source of defaults for the CLI, the Python API and the REST schema."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

# Both registries are leaf modules (they import nothing of srca), so validating names here makes
# no import cycle: the searches import SearchConfig, and this module never imports the searches.
from .method_registry import METHODS
from .scorers import SCORERS

AGGREGATIONS = ("last", "min", "prod", "mean")
# "auto": the method's own rule (srca: confidence_vote; best_of_n, beam, dvts: best_score)
DECISIONS = ("auto", "confidence_vote", "best_score", "weighted_vote", "majority")
CONFIDENCES = ("none", "mean", "tail", "lowest")  # srca.methods.consensus.trace_confidence
PROBE_AT = ("cut", "step")  # lineage search: probe only lineages cut by the token limit, or after every step


@dataclass(frozen=True)
class SearchConfig:
    """How one problem is searched. Validates itself; unknown keys are rejected by :meth:`from_dict`.

    Budget ``n`` by method: ``cot`` ignores it (one greedy path); ``majority`` and ``best_of_n``
    draw ``n`` samples; ``cot_decoding`` branches on the top-``n`` first tokens; ``srca`` (by
    default, ``lineages``) grows ``n`` independent lineages a step at a time and ignores
    ``beam_width`` and ``expand``; tree methods (``beam``, ``dvts``, ``srca`` with
    ``lineages=False``) keep ``beam_width`` paths and expand each into ``expand``
    children per step, so ``n = beam_width * expand`` candidates are scored per step (for
    ``dvts`` the ``beam_width`` paths are independent subtrees). Leave ``beam_width`` and
    ``expand`` unset to derive them from ``n`` (``expand`` = the largest divisor of ``n`` not
    above ``sqrt(n)``).
    """

    method: str = "srca"
    n: int = 4
    beam_width: int | None = None
    expand: int | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    max_step_tokens: int = 256
    max_steps: int = 40  # a path also ends at max_new_tokens
    max_new_tokens: int = 1024  # per path (sampling methods: per sample)
    max_tokens_total: int | None = None  # generated tokens for the whole solve, probes included
    deadline_s: float | None = None
    step_delimiter: str = "\n\n"
    checkpoint_cue: str = "So, the answer is \\boxed{"
    probe_max_tokens: int = 16
    checkpoints: bool = True  # SRCA: checkpoint probes (the tree: after every step; lineages: see probe_at)
    # SRCA's PRM-free default (srca.methods.lineage): n independent lineages, no pruning by score.
    # Defaults tuned on a MATH-500 sample bank (benchmarks/README.md, "The SRCA study")
    lineages: bool = True  # False: the paper's beam_width x expand tree with ACS (srca-paper)
    probe_at: str = "cut"  # lineages: probe only a lineage the token limit cuts ("cut") or after every step
    settle: int = 0  # a lineage stops once its last `settle` checkpoint answers agree (0: never; needs probe_at=step)
    consensus: float = 0.0  # stop the solve once one answer holds this share of the n lineages (0: off)
    # ESC-style adaptive sampling: the lineages start in `waves` waves (smaller first), and after
    # each wave but the last the solve stops once the vote's leading answer holds `wave_consensus`
    # of the vote's weight with at least `wave_min` full ballots of its own (1 wave: all n at once).
    # `wave_margin` > 0 stops by the lead instead: the leader's lead over the runner-up, in mean
    # ballots, at least `wave_margin` times the lineages the later waves would start (1: no later
    # wave could overturn a plain vote; srca.methods.consensus.wave_settled)
    waves: int = 3
    # 0: waves as equal as can be; > 0: the first two alike, then each `wave_growth` of the first's
    # size larger than the one before (32 in 5 waves at 0.5: 4, 4, 6, 8, 10;
    # srca.methods.consensus.wave_sizes): fewer waves one after another for the same cap
    wave_growth: float = 0.0
    wave_consensus: float = 0.5
    wave_margin: float = 0.0
    wave_min: int = 2
    # lineages generated whole: the next wave starts once the current one has run this many
    # tokens, not once it has ended; a clear vote then aborts the waves it does not need (their
    # tokens so far counted). Less latency for more tokens; needs an engine with abort (local,
    # SGLang); 0: one wave after another
    wave_overlap: int = 0
    # lineages generated whole, three waves or more: the first runs alone; the later ones go out
    # with the second, before the vote on it, while the engine's batch has room for them beside
    # every solve's sequences in flight and no solve waits for admission
    # (EngineInfo.concurrent_sequences; an engine that does not say never has room). The same
    # samples and decisions as one wave after another; a clear vote aborts the waves it does not
    # need (their tokens counted, and as usage.unused_tokens). Needs an engine with abort.
    wave_speculate: bool = False
    # lineages generated whole: a sample still running after `loop_after` tokens is stopped there
    # when at least `loop_share` of the 8-grams starting in its last 128 tokens repeat ones it
    # wrote before (srca.repetition.LoopRule); it ends there without an answer (no probe,
    # no ballot) and counts in usage.loop_stops. An engine that stops loops itself
    # (EngineInfo.loop_stops) gets the rule with the request; elsewhere the samples go out in two
    # calls (the first `loop_after` tokens, then the rest of those not stopped). 0: off. Not with wave_overlap (which
    # splits the calls its own way) nor under a token budget (ignored there)
    loop_share: float = 0.0
    loop_after: int = 512
    confidence: str = "tail"  # path confidence for the vote: none | mean | tail | lowest (window)
    confidence_window: int = 64  # tokens of the tail / sliding window
    confidence_topk: int = 0  # 0: sampled tokens' logprobs; k: DeepConf's -mean(top-k logprobs)
    keep_top: float = 0.5  # the vote counts only this most confident share of the lineages
    keep_min: int = 8  # ... but never fewer than this many of them (all of them when fewer finished)
    checkpoint_weight: float = 0.25  # a lineage cut before it answered votes its last checkpoint at this weight
    # self-verification (srca.methods.verify): a finished lineage is asked `verify_question` in a
    # new user turn and its vote weighs P(yes) ** verify more (0: no probe)
    verify: float = 0.0
    verify_question: str = "Is the final answer above correct? Answer Yes or No."
    # majority-pot (chains of thought and programs in one vote): the share of n drawn as programs
    # of the pot template (srca.execution runs them), and a program's vote against a chain's 1;
    # 1.25 chosen on MATH-500's tune half (benchmarks/README, "Programs beside chains of thought")
    program_share: float = 0.5
    program_weight: float = 1.25
    acs: bool = True  # SRCA tree: answer-clustered selection (off: plain top-k by score)
    cca: bool = True  # SRCA tree: checkpoints join the final candidate pool
    aggregation: str = "last"  # path score from step scores
    decision: str = "auto"  # final pick over the candidate pool ("auto": the method's rule)
    scorer: str = "self_confidence"
    prompt: str = "math"
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"SearchConfig.{name}: {why}")

        if not isinstance(self.method, str) or self.method not in METHODS:
            bad("method", f"unknown method {self.method!r}; choose one of {sorted(METHODS)}")
        if not isinstance(self.scorer, str) or self.scorer not in SCORERS:
            bad("scorer", f"unknown scorer {self.scorer!r}; choose one of {sorted(SCORERS)}")
        for name in ("n", "max_step_tokens", "max_steps", "max_new_tokens", "probe_max_tokens", "confidence_window",
                     "keep_min", "waves", "wave_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                bad(name, f"must be an integer, got {v!r}")
            if v < 1:
                bad(name, f"must be >= 1, got {v}")
        if self.n > 4096:
            bad("n", f"must be <= 4096, got {self.n}")
        if self.waves > 64:
            bad("waves", f"must be <= 64, got {self.waves}")
        if isinstance(self.wave_growth, bool) or not isinstance(self.wave_growth, (int, float)) \
                or not 0 <= self.wave_growth <= 8:
            bad("wave_growth", f"must be a number in [0, 8] (0: equal waves), got {self.wave_growth!r}")
        if isinstance(self.wave_overlap, bool) or not isinstance(self.wave_overlap, int) or self.wave_overlap < 0:
            bad("wave_overlap", f"must be an integer >= 0 (tokens; 0: off), got {self.wave_overlap!r}")
        if isinstance(self.loop_share, bool) or not isinstance(self.loop_share, (int, float)) \
                or not 0 <= self.loop_share <= 1:
            bad("loop_share", f"must be a number in [0, 1] (0: off), got {self.loop_share!r}")
        if isinstance(self.loop_after, bool) or not isinstance(self.loop_after, int) or self.loop_after < 128:
            bad("loop_after", f"must be an integer >= 128 (tokens: the rule reads the last 128), got {self.loop_after!r}")
        if self.loop_share and self.wave_overlap:
            bad("loop_share", "not with wave_overlap: both split the samples' engine calls")
        for name in ("beam_width", "expand", "max_tokens_total"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                bad(name, f"must be a positive integer or null, got {v!r}")
        for name in ("temperature", "top_p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, f"must be a number, got {v!r}")
        if not 0 <= self.temperature <= 5:
            bad("temperature", f"must be in [0, 5], got {self.temperature}")
        if not 0 < self.top_p <= 1:
            bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            bad("top_k", f"must be an integer >= 0, got {self.top_k!r}")
        if self.deadline_s is not None and (
            isinstance(self.deadline_s, bool)
            or not isinstance(self.deadline_s, (int, float))
            or not 0 < self.deadline_s < math.inf
        ):
            bad("deadline_s", f"must be a positive finite number or null, got {self.deadline_s!r}")
        if isinstance(self.verify, bool) or not isinstance(self.verify, (int, float)) or not 0 <= self.verify <= 16:
            bad("verify", f"must be a number in [0, 16], got {self.verify!r}")
        for name in ("step_delimiter", "checkpoint_cue", "prompt", "verify_question"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                bad(name, "must be a non-empty string")
        for name in ("settle", "confidence_topk"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 20:
                bad(name, f"must be an integer in [0, 20], got {v!r}")
        if self.settle == 1:
            bad("settle", "must be 0 (off) or >= 2: one probe cannot agree with itself")
        if self.probe_at not in PROBE_AT:
            bad("probe_at", f"must be one of {PROBE_AT}, got {self.probe_at!r}")
        if self.settle and (self.probe_at != "step" or not self.checkpoints):
            bad("settle", "needs a probe after every step: set probe_at='step' (and checkpoints on)")
        for name, lo_open in (("consensus", False), ("keep_top", True), ("checkpoint_weight", False),
                              ("wave_consensus", False), ("wave_margin", False), ("program_share", False)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, f"must be a number, got {v!r}")
            if not (0 < v <= 1 if lo_open else 0 <= v <= 1):
                bad(name, f"must be in {'(0, 1]' if lo_open else '[0, 1]'}, got {v}")
        if isinstance(self.program_weight, bool) or not isinstance(self.program_weight, (int, float)) \
                or not 0 <= self.program_weight <= 16:
            bad("program_weight", f"must be a number in [0, 16], got {self.program_weight!r}")
        if self.confidence not in CONFIDENCES:
            bad("confidence", f"must be one of {CONFIDENCES}, got {self.confidence!r}")
        for name in ("checkpoints", "acs", "cca", "lineages", "wave_speculate"):
            if not isinstance(getattr(self, name), bool):
                bad(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.aggregation not in AGGREGATIONS:
            bad("aggregation", f"must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.decision not in DECISIONS:
            bad("decision", f"must be one of {DECISIONS}, got {self.decision!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.beam_width is not None and self.expand is not None:
            if self.beam_width * self.expand != self.n:
                bad("beam_width", f"beam_width * expand must equal n ({self.beam_width} * {self.expand} != {self.n})")
        elif self.beam_width is not None and self.n % self.beam_width:
            bad("beam_width", f"must divide n ({self.n}), got {self.beam_width}")
        elif self.expand is not None and self.n % self.expand:
            bad("expand", f"must divide n ({self.n}), got {self.expand}")

    # -- derived shape of tree searches ---------------------------------------------------
    @property
    def tree_shape(self) -> tuple[int, int]:
        """(beam_width, expand) with ``beam_width * expand == n``."""
        if self.beam_width is not None:
            return self.beam_width, self.n // self.beam_width
        if self.expand is not None:
            return self.n // self.expand, self.expand
        e = max(d for d in range(1, math.isqrt(self.n) + 1) if self.n % d == 0)
        return self.n // e, e

    # -- mapping to and from plain dicts (CLI, REST, JSON) --------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "SearchConfig | None" = None) -> "SearchConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping):
            raise TypeError(f"SearchConfig.from_dict: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"SearchConfig: unknown field(s) {unknown}")
        return dataclasses.replace(base or cls(), **dict(data))

    def replace(self, **changes: Any) -> "SearchConfig":
        return self.from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
