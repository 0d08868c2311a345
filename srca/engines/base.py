"""The Engine contract: one batched, async generation call shared by every backend.

Every backend (local transformers, in-process SGLang, SGLang server/router, OpenAI-compatible)
takes a list of :class:`GenRequest` and returns, per request, ``n`` :class:`GenResult`.
The search controller submits every pending request of every running solve in one call, so the
engine can batch across problems and reuse shared prefixes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from ..repetition import LoopRule

FINISH_REASONS = ("stop", "length", "abort", "loop")


@dataclass
class GenRequest:
    """One prompt to continue, ``n`` times.

    Exactly one of ``input_ids`` (preferred: exact prefix reuse) or ``prompt`` (text) is set.
    ``temperature == 0`` means greedy. ``top_k == 0`` and ``top_p == 1`` mean no truncation.
    ``seed`` makes sampling reproducible per request (sample ``i`` of the request uses a stream
    derived from ``(seed, i)``). ``top_logprobs`` asks for the k best alternatives at each of the
    first ``top_logprobs_steps`` generated positions (CoT-decoding uses the first token's).
    ``group`` names the solve the request belongs to (engines with several replicas keep a
    group on one replica so its prefix cache holds the whole tree).
    ``logprob_tail > 0`` says only the log-probabilities of the last ``logprob_tail`` generated
    tokens are read (a tail confidence): an engine may then leave the others out (NaN), as
    the SGLang engines do to score the tail in one short prefill after sampling instead of
    carrying a logprob through every decode step; with ``top_logprobs`` too, only the tail's
    alternatives are read (``top_logprobs_steps`` must then cover every position), and such an
    engine gives one list per generated token, empty before the tail.
    ``may_wait`` says the request is one of many small ones that arrive together (a step of a
    tree search): an engine may hold it briefly to send it with the others (the SGLang engines'
    submit window, while they are busy); others ignore it.
    ``loop_stop`` asks an engine that stops samples itself (``EngineInfo.loop_stops``) to end a
    sample at the first check point of the rule where it repeats itself
    (:func:`srca.repetition.stops_here` after every token), with ``finish_reason="loop"`` and
    the tokens up to that point; an EOS, a stop string or ``max_new_tokens`` at the same token
    ends it the ordinary way. Other engines ignore it: a caller reads ``EngineInfo.loop_stops`` first.
    """

    input_ids: list[int] | None = None
    prompt: str | None = None
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = True
    top_logprobs: int = 0
    top_logprobs_steps: int = 1
    group: str | None = None
    logprob_tail: int = 0
    may_wait: bool = False
    loop_stop: LoopRule | None = None

    def __post_init__(self) -> None:
        if (self.input_ids is None) == (self.prompt is None):
            raise ValueError("GenRequest: set exactly one of input_ids or prompt")
        if self.input_ids is not None and len(self.input_ids) == 0:
            raise ValueError("GenRequest.input_ids: must not be empty")
        if self.max_new_tokens < 1:
            raise ValueError(f"GenRequest.max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenRequest.temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenRequest.top_p: must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"GenRequest.top_k: must be >= 0, got {self.top_k}")
        if self.n < 1:
            raise ValueError(f"GenRequest.n: must be >= 1, got {self.n}")
        if self.top_logprobs < 0 or self.top_logprobs_steps < 0:
            raise ValueError("GenRequest.top_logprobs: must be >= 0")
        if self.logprob_tail < 0:
            raise ValueError(f"GenRequest.logprob_tail: must be >= 0, got {self.logprob_tail}")
        if self.loop_stop is not None and not isinstance(self.loop_stop, LoopRule):
            raise TypeError(f"GenRequest.loop_stop: a srca.repetition.LoopRule or None, got {type(self.loop_stop).__name__}")
        self.stop = tuple(self.stop)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class GenResult:
    """One generated continuation.

    ``token_ids`` are exactly the generated tokens (a path continues from them, so a stop string
    may sit inside the last token); ``text`` is their decoding, cut after the matched stop string.
    ``stop_str`` is the stop string that ended generation, ``None`` for EOS or length.
    ``finish_reason`` is one of ``FINISH_REASONS``: ``"loop"`` where the engine stopped a
    repeating sample (``GenRequest.loop_stop``), ``"abort"`` where the caller aborted its group.
    ``logprobs[i]`` is the log-probability of ``token_ids[i]`` (empty when not requested; NaN
    before the last ``GenRequest.logprob_tail`` tokens where an engine left those out).
    ``top_logprobs[j]`` lists ``(token_id, logprob)`` of the best alternatives at position ``j``.
    ``prompt_tokens`` counts the prompt, ``cached_tokens`` how many of those came from a prefix
    cache instead of being prefilled (both including a tail-scoring prefill where an engine ran
    one, see ``GenRequest.logprob_tail``), ``generated_tokens == len(token_ids)``.
    """

    text: str
    token_ids: list[int]
    finish_reason: str
    stop_str: str | None = None
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0

    @property
    def hit_eos(self) -> bool:
        return self.finish_reason == "stop" and self.stop_str is None


@dataclass(frozen=True)
class EngineInfo:
    """What a backend is and can do. ``token_ids``: accepts ``input_ids`` and returns
    ``token_ids`` (else the controller works on text). ``reports_cached_tokens``: whether
    ``cached_tokens`` is real or always 0. ``concurrent_sequences``: how many sequences the
    backend decodes together at its best (a GPU engine's running batch), which sizes an eval's
    default concurrency (:func:`srca.eval.runner.default_concurrency`); None where unknown.
    ``loop_stops``: ends samples that repeat themselves as it decodes (``GenRequest.loop_stop``);
    where False a search that wants loop stops splits the samples' requests instead."""

    name: str
    model: str
    token_ids: bool = True
    reports_cached_tokens: bool = True
    max_context: int = 32768
    concurrent_sequences: int | None = None
    loop_stops: bool = False


@runtime_checkable
class Engine(Protocol):
    """The backend contract (see module docstring)."""

    info: EngineInfo

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[GenResult]]:
        """Run all requests; result ``i`` holds ``requests[i].n`` continuations."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        ...

    def chat_prompt(self, messages: list[dict]) -> str:
        """The model's chat template applied to ``messages``, ready for generation."""
        ...

    async def close(self) -> None:
        ...
