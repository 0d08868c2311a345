"""The Solution schema: what a solve returns (and the JSON the CLI prints with --json)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

STOP_REASONS = ("finished", "consensus", "max_steps", "budget", "deadline", "cancelled")


@dataclass
class Usage:
    """Compute spent by one solve. ``prompt_tokens`` counts every prompt sent to the engine
    (probes included); ``cached_tokens`` how many of those were served from a prefix cache;
    ``generated_tokens`` every generated token (probes included); ``probe_tokens`` the share of
    generated tokens spent on checkpoint probes."""

    generated_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    probe_tokens: int = 0
    scorer_calls: int = 0
    engine_calls: int = 0
    engine_requests: int = 0

    def add(self, other: "Usage") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def cache_hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class Candidate:
    """One answer in the final pool. ``source``: ``path`` (a path that finished by itself),
    ``settled`` (an SRCA lineage that stopped once its checkpoint probes agreed, with that
    answer) or ``checkpoint`` (a probe after ``step``). ``votes``: pool members equivalent to this answer.
    ``node``: the trace node it came from."""

    answer: str
    canonical: str
    score: float
    source: str
    step: int
    node: int
    votes: int = 1
    group: int = -1


@dataclass
class TraceNode:
    """One step of one path. ``checkpoint``: the probed answer after this step (None if not
    probed or unparsable). ``kept``: survived selection. ``selected_rank``: order in which ACS
    picked it (-1 if not kept). ``finished``: the path ended here by itself."""

    id: int
    parent: int | None
    depth: int
    text: str
    score: float | None = None
    path_score: float | None = None
    checkpoint: str | None = None
    checkpoint_score: float | None = None
    group: int | None = None
    kept: bool = False
    selected_rank: int = -1
    finished: bool = False
    answer: str | None = None
    tokens: int = 0


@dataclass
class Solution:
    answer: str | None
    canonical: str | None
    confidence: float
    method: str
    candidates: list[Candidate] = field(default_factory=list)
    trace: list[TraceNode] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    stop_reason: str = "finished"
    config: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    @property
    def from_checkpoint(self) -> bool:
        """Whether the chosen answer is backed only by checkpoint candidates (a settled SRCA
        lineage is a full answer of its own, not a checkpoint)."""
        if self.canonical is None:
            return False
        srcs = {c.source for c in self.candidates if c.canonical == self.canonical}
        return bool(srcs) and not srcs & {"path", "settled"}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["usage"]["cache_hit_rate"] = round(self.usage.cache_hit_rate, 4)
        d["from_checkpoint"] = self.from_checkpoint
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Solution":
        d = dict(d)
        d.pop("from_checkpoint", None)
        usage = dict(d.pop("usage", {}))
        usage.pop("cache_hit_rate", None)
        return cls(
            usage=Usage(**usage),
            candidates=[Candidate(**c) for c in d.pop("candidates", [])],
            trace=[TraceNode(**t) for t in d.pop("trace", [])],
            **d,
        )
