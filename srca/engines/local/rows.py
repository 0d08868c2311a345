"""One continuation of a request (:class:`Row`), and what each token does to it: its logprobs
are recorded (:func:`record`) and it may end by itself (:class:`StopChecker`: EOS, a stop
string, ``max_new_tokens``, a loop: ``GenRequest.loop_stop``). Logprobs are of the unmodified (temperature 1) distribution;
``token_ids`` keep an EOS token when one ended the row (``text`` does not show it)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...repetition import stops_here
from ..base import GenRequest, GenResult


@dataclass
class Row:
    """One continuation being decoded."""

    req: int  # index of its request in the batch
    child: int
    stream: int  # sampling stream seed (srca.seeds.stream_seed)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[tuple[int, float]]] = field(default_factory=list)
    finish: str | None = None
    stop_str: str | None = None
    text: str | None = None


class StopChecker:
    """The tokenizer's side of a row: when it ends by itself, and its final text."""

    def __init__(self, tokenizer, eos_ids: frozenset[int]) -> None:
        self.tokenizer, self.eos_ids = tokenizer, eos_ids

    def done(self, row: Row, r: GenRequest) -> bool:
        """True, with ``row.finish`` set, when the row's last token ends it: EOS, a stop string
        (``row.text`` is then cut right after the first one), ``max_new_tokens``, or the request's
        loop rule (``finish="loop"``; the others first where they end the same token)."""
        tok = row.tokens[-1]
        if tok in self.eos_ids:
            row.finish = "stop"
            return True
        if r.stop:
            w = max(len(s) for s in r.stop) + 8
            tail = self.tokenizer.decode(row.tokens[-w:], skip_special_tokens=False)
            if any(s and s in tail for s in r.stop):
                full = self.tokenizer.decode(row.tokens, skip_special_tokens=False)
                hits = [(full.find(s), -len(s), s) for s in r.stop if s and full.find(s) >= 0]
                if hits:
                    pos, _, s = min(hits)
                    row.finish, row.stop_str, row.text = "stop", s, full[:pos + len(s)]
                    return True
        if len(row.tokens) >= r.max_new_tokens:
            row.finish = "length"
            return True
        if r.loop_stop is not None and stops_here(row.tokens, r.loop_stop):
            row.finish = "loop"
            return True
        return False

    def text(self, row: Row) -> str:
        """The row's text: its tokens without a final EOS."""
        ids = row.tokens[:-1] if row.tokens and row.tokens[-1] in self.eos_ids else row.tokens
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def record(rows: list[Row], reqs: list[GenRequest], logits: torch.Tensor, lse: torch.Tensor,
           chosen: list[int], step: int) -> None:
    """Append ``chosen[b]`` to row ``b`` with what its request asked for: its logprob and
    the top alternatives. logits: [B, V], lse: [B] (their logsumexp)."""
    idx = torch.tensor(chosen, device=logits.device)
    lps = (logits.gather(1, idx[:, None])[:, 0] - lse).tolist()
    for b, row in enumerate(rows):
        r = reqs[row.req]
        row.tokens.append(chosen[b])
        if r.logprobs:
            row.logprobs.append(lps[b])
        if r.top_logprobs and step < r.top_logprobs_steps:
            v, i = logits[b].topk(min(r.top_logprobs, logits.shape[1]))
            row.tops.append(list(zip(i.tolist(), (v - lse[b]).tolist())))


def copy_result(r: GenResult) -> GenResult:
    """A copy of ``r`` sharing no list with it (a greedy result handed to several children)."""
    return GenResult(text=r.text, token_ids=list(r.token_ids), finish_reason=r.finish_reason, stop_str=r.stop_str,
                     logprobs=list(r.logprobs), top_logprobs=[list(t) for t in r.top_logprobs],
                     prompt_tokens=r.prompt_tokens, cached_tokens=r.cached_tokens,
                     generated_tokens=r.generated_tokens)
