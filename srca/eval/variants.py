"""Method names the evaluation accepts: every search method, plus named variants for
ablations (``srca-noacs`` is SRCA with ``acs=False``, ...). The table lives in the library so
the CLI, the benchmarks and the service read the same names."""
from __future__ import annotations

from typing import Any

from ..config import SearchConfig
from ..methods import METHODS

# The paper's SRCA: a beam_width x expand tree, ACS selection, CCA pool, best-score decision
# (the scorer is SearchConfig.scorer: self_confidence without a PRM, prm with one)
PAPER: dict[str, Any] = {"method": "srca", "lineages": False, "decision": "best_score"}

# variant name -> SearchConfig fields it sets (always including ``method``)
VARIANTS: dict[str, dict[str, Any]] = {
    # ablations of the default (lineage) SRCA
    "srca-stepwise": {"method": "srca", "probe_at": "step"},  # a checkpoint after every step (same vote)
    "srca-settle": {"method": "srca", "probe_at": "step", "settle": 3},  # lineages stop once 3 probes agree
    "srca-consensus": {"method": "srca", "consensus": 0.5},  # stop once half the lineages agree
    "srca-nowaves": {"method": "srca", "waves": 1},  # all n lineages at once (no adaptive sampling)
    "srca-overlap": {"method": "srca", "wave_overlap": 384},  # the next wave after 384 tokens of the current one
    # the third wave with the second where the engine's batch has room (the waves' samples and decisions)
    "srca-spec": {"method": "srca", "wave_speculate": True},
    "srca-uniform": {"method": "srca", "confidence": "none", "keep_top": 1.0},  # plain vote of the lineages
    # issue 16's early-exit setting: a fourth wave and an earlier stop (0.4 of the vote), every
    # lineage voting with its mean confidence (ties broken by it); picked on the second bank's
    # tune half at 0.578x majority@16's tokens; held out 0.591x, 1.5 points under majority there
    # (README, "The SRCA study"); through the eval CLI (sixteenth run, all 500) 47.8% at 0.57x,
    # -1.7 points against 18 majority@16 draws pooled: its stop costs accuracy (srca-margin below)
    "srca-lean": {"method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 4, "wave_consensus": 0.4},
    # the same waves stopping by the vote's lead instead of its share (SearchConfig.wave_margin): a
    # lead of a quarter of the lineages still to come; on a plain-vote replay of majority@32's
    # answers (benchmarks/vote_exit.py) 0.68x majority@16's tokens at -0.2 points on the other half,
    # where the share rule needed 0.74x; online 48.6% at 0.73x (seventeenth run), -0.9 points
    # against the pooled majority@16 draws
    "srca-margin": {"method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 4, "wave_margin": 0.25},
    # the default with loop stops (SearchConfig.loop_share): a sample still running at 512 tokens
    # of whose last 128 tokens' 8-grams 40% or more repeat its own ends there, unprobed. 0.4 is the
    # share of benchmarks/loop_rules.py's grid that stopped most without costing majority votes on
    # the tune half of a 500-problem bank (nineteenth run); online on all 500: 0.665x majority@16's
    # tokens (the default 0.741x, same run) at 49.2% against 49.0%, but 0.78x the default's tok/s
    "srca-loops": {"method": "srca", "loop_share": 0.4, "loop_after": 512},
    # issue 16's early-exit candidate: srca-margin's waves stopping at a smaller lead (0.125 of the
    # lineages still to come) with srca-loops' stops. Picked on the tune half of the nineteenth
    # run's bank (the cheapest of a grid of 4 to 8 waves x leads 0.1 to 0.35 that kept majority@16's
    # accuracy there); replayed on the other half: 53.9% against majority's 51.9% at 0.578x its
    # tokens (benchmarks/bank_replay.py; over ten orders of the samples 52.6% against 52.0% at 0.585x); the same waves on a plain-vote replay of another run's
    # majority@32 answers (benchmarks/vote_exit.py, 200 orders): -1.1 points at 0.57x. Online
    # (twentieth and twenty-first runs, all 500, three draws): 48.0%, 50.6%, 49.8% at 0.59x to
    # 0.60x, -0.19 points against 21 majority@16 draws pooled, -1.1 on the held-out half; GSM8K -1.6
    # at 0.43x: not the default
    "srca-margin-loops": {"method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 4, "wave_margin": 0.125,
                          "loop_share": 0.4, "loop_after": 512},
    # the same rules with room to spend: n is a cap, not a budget. Run at twice majority's n
    # (srca-wide:32 against majority@16) it starts 8 waves of 4 and stops at a lead of 0.125 of the
    # lineages still to come, so easy problems stop after a wave or two and the tokens they save go
    # to the hard ones (Adaptive-Consistency's allocation). On a plain-vote replay over the 21
    # pooled majority@16 draws (benchmarks/vote_exit.py, --n 32 --waves 4,4,4,4,4,4,4,4, 200
    # orders; results/vote_exit_wide_math500.json.gz): 51.3% against majority@16's 50.0% at 1.07x
    # its tokens before loop stops (tune half +1.2 points, other half +1.4); GSM8K +0.8 at 0.69x.
    # Online (twenty-second to twenty-fourth runs, one H100, all 500, four draws): 50.4% to 52.0% at
    # 1.05x to 1.09x majority@16's tokens, +1.55 points (+0.47 to +2.64) against 24 majority@16 draws
    # pooled (results/pooled_srca-wide_majority_n16.json); 1.6x to 1.9x majority's wall. srca-wide:28 (waves
    # 3,3,3,3,4,4,4,4): three draws at 0.94x to 0.96x, +0.83 (-0.56 to +2.25)
    "srca-wide": {"method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 8, "wave_margin": 0.125,
                  "loop_share": 0.4, "loop_after": 512},
    # srca-wide's cap and vote in 5 growing waves (wave_growth 0.5: 4, 4, 6, 8, 10 at n 32; 3, 4, 5, 7,
    # 9 at 28) at a lead of 0.1: the hardest problems wait for 5 sample lengths one after another,
    # not 8. Replayed as srca-wide was (benchmarks/vote_exit.py over the 23 pooled majority@16
    # draws, --n 32 --split-salt "" --draws 50, the lead picked on the tune half;
    # results/vote_exit_growth_math500.json.gz): 51.38% at 0.540x the full vote @32's tokens
    # (1.08x majority@16's), 2.98 waves a problem on average, against 8 waves of 4 at 0.125:
    # 51.39% at 0.535x, 3.82 waves; held-out half 52.96% against 52.94%. Online, one draw
    # (twenty-fourth run): 51.2% at 1.09x majority@16's tokens in 0.87x srca-wide's wall
    "srca-wide-fast": {"method": "srca", "confidence": "mean", "keep_top": 1.0, "waves": 5, "wave_growth": 0.5,
                       "wave_margin": 0.1, "loop_share": 0.4, "loop_after": 512},
    "srca-keep90": {"method": "srca", "keep_top": 0.9},  # a milder confidence filter (DeepConf-high)
    "srca-nockpt": {"method": "srca", "checkpoints": False},  # no probes: a cut lineage has no vote
    # DeepConf's token confidence, -mean(top-20 logprobs), over the same tail (scored after sampling)
    "srca-topk": {"method": "srca", "confidence_topk": 20},
    # self-verification: each finished lineage asked whether its answer is right, its vote
    # weighted by P(yes) (srca.methods.verify)
    "srca-verify": {"method": "srca", "verify": 1.0},
    # the paper's tree and its ablations (the names of the MATH-500 study of 2026-11-21)
    "srca-paper": PAPER,
    "srca-noacs": {**PAPER, "acs": False},  # plain top-k selection
    "srca-nocca": {**PAPER, "cca": False},  # checkpoints guide the search, not the final pool
    "srca-vote": {**PAPER, "decision": "weighted_vote"},  # score-weighted vote over the pool
    "srca-min": {**PAPER, "aggregation": "min"},
    "srca-prod": {**PAPER, "aggregation": "prod"},
}

def method_names() -> list[str]:
    return sorted(METHODS) + sorted(VARIANTS)


def base_method(name: str) -> str:
    """The search method behind ``name`` (``srca-noacs`` -> ``srca``); unknown names map to themselves."""
    return VARIANTS.get(name, {}).get("method", name)


def check_method(name: str) -> str:
    if name not in METHODS and name not in VARIANTS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(method_names())}")
    return name


def effective_n(name: str, n: int) -> int:
    """The budget recorded for ``name`` at ``n`` (1 for methods that ignore ``n``: ``Method.ignores_n``)."""
    method = METHODS.get(base_method(name))
    return 1 if method is not None and method.ignores_n else n


def expand(fields: dict[str, Any]) -> dict[str, Any]:
    """SearchConfig fields whose ``method`` may name a variant: the variant's fields, then the
    other fields given, which win (``method="srca-lean", waves=5``: srca-lean with five waves).
    Fields whose ``method`` is a search method (or absent) come back as they are; an unknown name
    is a ``ValueError`` naming both lists."""
    name = fields.get("method")
    if isinstance(name, str) and name not in VARIANTS and name not in METHODS:
        raise ValueError(f"SearchConfig.method: unknown method {name!r}; choose one of {sorted(METHODS)} "
                         f"or a variant: {sorted(VARIANTS)}")
    if not isinstance(name, str) or name not in VARIANTS:
        return dict(fields)
    return {**VARIANTS[name], **{k: v for k, v in fields.items() if k != "method"}}


def config_for(name: str, n: int, base: SearchConfig | None = None, seed: int | None = None) -> SearchConfig:
    """The SearchConfig that runs method (or variant) ``name`` at budget ``n``: ``base``'s other
    fields, then the variant's fields. Raises ``ValueError`` for an unknown name or a budget
    that does not fit ``base`` (e.g. a fixed ``beam_width`` that does not divide ``n``)."""
    check_method(name)
    base = base or SearchConfig()
    changes: dict[str, Any] = {"method": name, **VARIANTS.get(name, {}), "n": effective_n(name, n)}
    if seed is not None:
        changes["seed"] = seed
    return base.replace(**changes)
