"""The sample bank: record many full samples per problem once (on a GPU), replay search
policies over them on a CPU.

A bank line holds, for one problem, ``K`` independent samples of the policy, each cut into the
steps the online search would see (up to ``step_delimiter`` or ``max_step_tokens``), with a
greedy checkpoint probe after every step and the per-token confidences the vote reads. Every
policy whose lineages never interact except through the decision and the early exits (SRCA's
default, majority voting, confidence-weighted voting, DeepConf-style filtering, consensus
early exit) is then a deterministic function of the bank, so it can be scored on all of
MATH-500 in seconds: :func:`replay_lineages` runs the same rules as the online search
(:mod:`srca.methods.consensus`), step by step, with the same token accounting.

Line format (JSON, one per problem)::

    {"unique_id", "answer" (gold), "level", "subject", "prompt_tokens",
     "samples": [{"answer": final answer of the whole sample (majority's),
                  "tokens": generated tokens of the whole sample,
                  "finish": "stop" | "length",
                  "steps": [[tokens, end, probe_answer, probe_tokens], ...],
                  "lp": base64 float16 sampled-token logprobs of the steps kept,
                  "ids": base64 uint32 token ids of the whole sample (banks recorded since
                         :mod:`srca.repetition`; for rules that read the text),
                  "tc": base64 float16 -mean(top-k logprobs) per token (when recorded),
                  "vf": the self-verification log-odds of a finished sample (when recorded,
                        :mod:`srca.methods.verify`; null: no verdict)}]}

``end`` of a step: ``""`` (open), ``"path"`` (finished: a boxed answer or EOS; its answer is
the path's ``extract_answer``, stored in place of the probe answer, which is not run), or
``"cut"`` (out of tokens). Steps stop at the first finished step, as the online search does.
"""
from __future__ import annotations

import base64
import glob
import gzip
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..answers import equivalent, extract_answer, parse_probe
from ..config import SearchConfig
from ..engines.token_spans import token_spans
from ..methods.consensus import (Ballot, config_wave_sizes, consensus_reached, settled_answer, token_confidence,
                                 trace_confidence, vote, wave_settled)
from ..methods.context import PROBE_STOPS
from ..methods.paths import PATH, path_steps, whole_paths
from ..methods.verify import VERIFY_TOPK, Verifier, verify_factor



# -- encoding -------------------------------------------------------------------------------
def pack(xs: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(xs, dtype=np.float16).tobytes()).decode()


def unpack(s: str | None) -> list[float]:
    if not s:
        return []
    return np.frombuffer(base64.b64decode(s), dtype=np.float16).astype(np.float64).tolist()


def pack_ids(ids: Sequence[int]) -> str:
    return base64.b64encode(np.asarray(ids, dtype="<u4").tobytes()).decode()


def unpack_ids(s: str | None) -> list[int]:
    if not s:
        return []
    return np.frombuffer(base64.b64decode(s), dtype="<u4").astype(np.int64).tolist()


# -- recording --------------------------------------------------------------------------------
@dataclass
class RecordSettings:
    """``samples`` per problem, ``topk`` logprobs per token for DeepConf's confidence (0: none),
    ``verify``: a self-verification probe after every finished sample (``config.verify_question``);
    everything else (sampling, steps, cue, probe length, prompt, seed) from ``config``, the
    SearchConfig the online search would run with."""

    samples: int = 16
    topk: int = 20
    verify: bool = True
    config: SearchConfig = field(default_factory=SearchConfig)


async def record_chunk(engine: Any, problems: Sequence[Any], s: RecordSettings) -> list[dict]:
    """Bank lines for ``problems``: one batched sampling call, then one batched probe call."""
    from .. import prompts
    from ..engines.base import GenRequest
    from .records import problem_seed

    c = s.config
    prompt_ids = [engine.encode(engine.chat_prompt(prompts.messages(c.prompt, p.problem))) for p in problems]
    reqs = [GenRequest(input_ids=ids, max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p,
                       top_k=c.top_k, n=s.samples, seed=problem_seed(c.seed, p.unique_id), logprobs=True,
                       top_logprobs=s.topk, top_logprobs_steps=c.max_new_tokens if s.topk else 0, group=p.unique_id)
            for p, ids in zip(problems, prompt_ids)]
    results = await engine.generate(reqs)
    cue = engine.encode(c.checkpoint_cue)
    lines, probes, where = [], [], []
    verifier = Verifier(engine, c.verify_question) if s.verify else None
    checks, checked = [], []  # verification probes and (line, sample) they belong to
    for p, ids, rs in zip(problems, prompt_ids, results):
        samples = []
        for r in rs:
            toks = list(r.token_ids)
            spans = token_spans(engine, toks)
            how = path_steps(spans, len(toks), r.finish_reason == "stop", c.step_delimiter,
                             c.max_step_tokens, c.max_new_tokens)
            steps, prev = [], 0
            for e, end in how:
                if end == PATH:
                    steps.append([e - prev, PATH, extract_answer(spans.text_of(0, e)), 0])
                else:
                    steps.append([e - prev, end, None, 0])
                    probes.append(ids + toks[:e] + cue)
                    where.append((len(lines), len(samples), len(steps) - 1))
                prev = e
            kept = prev
            if verifier is not None and how and how[-1][1] == PATH:  # sample len(samples), once appended
                checks.append(verifier.ids(ids, toks[:kept]))
                checked.append((len(lines), len(samples)))
            tc = [token_confidence(None, [lp for _, lp in alts]) for alts in r.top_logprobs[:kept]] if s.topk else []
            samples.append({"answer": extract_answer(r.text), "tokens": r.generated_tokens, "finish": r.finish_reason,
                            "steps": steps, "lp": pack(r.logprobs[:kept]), "tc": pack(tc) if tc else "",
                            "ids": pack_ids(toks)})
            if verifier is not None:
                samples[-1]["vf"] = None  # filled below for a finished sample
            r.top_logprobs = []  # free them: a bank chunk holds millions
        lines.append({"unique_id": p.unique_id, "answer": p.answer, "level": p.level, "subject": p.subject,
                      "prompt_tokens": len(ids), "samples": samples})
    preqs = [GenRequest(input_ids=x, max_new_tokens=c.probe_max_tokens, temperature=0.0, stop=PROBE_STOPS,
                        logprobs=False, group=lines[w[0]]["unique_id"]) for x, w in zip(probes, where)]
    for (li, si, st), (r,) in zip(where, await engine.generate(preqs) if preqs else []):
        step = lines[li]["samples"][si]["steps"][st]
        step[2], step[3] = parse_probe(r.text), r.generated_tokens
    if checks:
        vreqs = [GenRequest(input_ids=x, max_new_tokens=1, temperature=0.0, logprobs=False, top_logprobs=VERIFY_TOPK,
                            top_logprobs_steps=1, group=lines[w[0]]["unique_id"]) for x, w in zip(checks, checked)]
        for (li, si), (r,) in zip(checked, await engine.generate(vreqs)):
            lines[li]["samples"][si]["vf"] = verifier.log_odds(r.top_logprobs[0]) if r.top_logprobs else None
    return lines


def bank_files(path: str) -> list[str]:
    """A bank's chunk files: those of a folder (``*.jsonl`` and ``*.jsonl.gz``, sorted; a chunk
    still being written, ``*.tmp``, is not one), or ``[path]`` for a file."""
    if not os.path.isdir(path):
        return [path]
    return sorted(glob.glob(os.path.join(path, "*.jsonl")) + glob.glob(os.path.join(path, "*.jsonl.gz")))


def read_bank(paths: Iterable[str]) -> list[dict]:
    out = []
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


# -- replay -----------------------------------------------------------------------------------
_DEFAULT = SearchConfig()  # the Policy's defaults are SearchConfig's: one place for them


@dataclass(frozen=True)
class Policy:
    """A lineage policy to replay (the fields mirror :class:`srca.SearchConfig`, defaults included)."""

    n: int = 16
    checkpoints: bool = _DEFAULT.checkpoints
    probe_at: str = _DEFAULT.probe_at
    settle: int = _DEFAULT.settle
    consensus: float = _DEFAULT.consensus
    confidence: str = _DEFAULT.confidence
    confidence_window: int = _DEFAULT.confidence_window
    confidence_topk: bool = _DEFAULT.confidence_topk > 0
    keep_top: float = _DEFAULT.keep_top
    keep_min: int = _DEFAULT.keep_min
    checkpoint_weight: float = _DEFAULT.checkpoint_weight
    verify: float = _DEFAULT.verify
    weighted: bool = True
    max_steps: int = _DEFAULT.max_steps
    waves: int = _DEFAULT.waves
    wave_growth: float = _DEFAULT.wave_growth
    wave_consensus: float = _DEFAULT.wave_consensus
    wave_margin: float = _DEFAULT.wave_margin
    wave_min: int = _DEFAULT.wave_min
    wave_overlap: int = _DEFAULT.wave_overlap
    # replayed as on an idle engine (room for every wave at once): the first wave alone, every
    # later one with the second
    wave_speculate: bool = _DEFAULT.wave_speculate

    @classmethod
    def from_config(cls, c: Any) -> "Policy":
        """The policy a ``SearchConfig`` runs (the online vote is always confidence-weighted;
        ``confidence="none"`` weighs every lineage 1)."""
        return cls(n=c.n, checkpoints=c.checkpoints, probe_at=c.probe_at, settle=c.settle, consensus=c.consensus,
                   confidence=c.confidence, confidence_window=c.confidence_window,
                   confidence_topk=c.confidence_topk > 0, keep_top=c.keep_top, keep_min=c.keep_min,
                   checkpoint_weight=c.checkpoint_weight, verify=c.verify, weighted=True, max_steps=c.max_steps, waves=c.waves,
                   wave_growth=c.wave_growth, wave_consensus=c.wave_consensus, wave_margin=c.wave_margin, wave_min=c.wave_min,
                   wave_overlap=c.wave_overlap, wave_speculate=c.wave_speculate)


@dataclass
class Outcome:
    answer: str | None
    tokens: int  # generated, probes included
    probe_tokens: int
    stop: str
    ballots: list[Ballot] = field(default_factory=list)
    # tokens decoded one after another: per engine call in sequence, its longest sample (a
    # solve's latency in decode steps when its calls run alone; majority: its longest sample)
    critical_path: int = 0


def _conf(sample: dict, upto: int, p: Policy) -> float:
    key = "tc" if p.confidence_topk else "lp"
    if "_" + key not in sample:
        sample["_" + key] = unpack(sample.get(key))
    toks = sample["_" + key][:upto]
    return trace_confidence(toks, p.confidence, p.confidence_window, topk=p.confidence_topk)


def replay_lineages(line: dict, samples: Sequence[int], p: Policy) -> Outcome:
    """SRCA's lineage search over the bank samples ``samples`` of one problem, step-synchronous
    like the online search (:func:`srca.methods.lineage.run_lineages`), wave by wave (the
    samples in order: the first wave's lineages first). Tokens as it spends them: the steps
    taken and the probes, or, where it generates each lineage whole
    (:func:`srca.methods.paths.whole_paths`), every token of the samples it started and the probes;
    with ``wave_overlap`` also what the waves it did not need generated before the decision
    aborted them, and that critical path, both from a model of decoding in lockstep
    (:func:`_overlapped`; the decisions are the same as without it)."""
    eq = equivalent
    S = [line["samples"][i] for i in samples]
    depth = [0] * len(S)  # steps taken
    used = [0] * len(S)  # tokens of the steps taken
    ckpts: list[list[str | None]] = [[] for _ in S]
    ended: dict[int, tuple[str, str | None]] = {}  # lineage -> (kind, answer)
    tokens = probe = 0
    stop, capped, started = "", False, 0
    crit_steps = crit_whole = 0  # the critical path step by step, and with each wave's lineages whole

    def latest(answers: list[str | None]) -> str | None:  # a cut lineage's ballot, as the online search's
        return next((a for a in reversed(answers) if a is not None), None)

    if p.verify and any("vf" not in smp for smp in S):
        raise ValueError("Policy.verify: this bank holds no verification probes (record it with RecordSettings.verify)")

    def ballots(upto: int) -> list[Ballot]:  # the first ``upto`` lineages' ballots, in lineage order
        out = []
        for i in range(upto):
            kind, ans = ended.get(i, ("checkpoint", latest(ckpts[i])))
            if ans is not None:
                f = verify_factor(S[i]["vf"], p.verify) if kind == "path" and p.verify else 1.0
                out.append(Ballot(ans, kind, _conf(S[i], used[i], p) * f))
        return out

    sizes = config_wave_sizes(p, len(S))
    after_wave: list[int] = []  # each wave's probes and verification, decoded after its samples
    for w, size in enumerate(sizes):
        live = range(started, started + size)
        started += size
        wave_probe = wave_verify = 0  # the wave's longest probe and verification (the whole-path calls)
        for d in range(p.max_steps):
            step_max = probe_max = verified = 0
            for i in live:
                if i in ended:
                    continue
                ntok, end, ans, ptok = S[i]["steps"][depth[i]]
                depth[i] += 1
                used[i] += ntok
                tokens += ntok
                step_max = max(step_max, ntok)
                if end == "path":
                    ended[i] = ("path", ans)
                    if p.verify:  # its verification probe: one generated token
                        tokens += 1
                        probe += 1
                        verified = 1
                    continue
                if p.checkpoints and (p.probe_at == "step" or end == "cut" or d == p.max_steps - 1):
                    tokens += ptok
                    probe += ptok
                    probe_max = max(probe_max, ptok)
                    ckpts[i].append(ans)
                if end == "cut":
                    ended[i] = ("checkpoint", latest(ckpts[i]))
                elif p.checkpoints and (a := settled_answer(ckpts[i], p.settle, eq)) is not None:
                    ended[i] = ("settled", a)
            crit_steps += step_max + probe_max + verified
            wave_probe, wave_verify = max(wave_probe, probe_max), max(wave_verify, verified)
            if all(i in ended for i in live):
                break
            full = [a for k, a in ended.values() if k != "checkpoint" and a is not None]
            if consensus_reached(full, len(S), p.consensus, eq):
                stop = "consensus"
                break
        crit_whole += max(S[i]["tokens"] for i in live) + wave_probe + wave_verify
        after_wave.append(wave_probe + wave_verify)
        if stop:
            break
        capped = capped or any(i not in ended for i in live)
        if w < len(sizes) - 1 and wave_settled(ballots(started), eq, p.wave_consensus, p.wave_min,
                                               keep_top=p.keep_top, checkpoint_weight=p.checkpoint_weight,
                                               keep_min=p.keep_min, margin=p.wave_margin,
                                               remaining=sum(sizes[w + 1:])):
            stop = "consensus"
            break
    stop = stop or ("max_steps" if capped else "finished")
    whole = whole_paths(p.probe_at, p.settle, p.consensus)
    if whole:  # the online search generates each lineage whole
        tokens = sum(smp["tokens"] for smp in S[:started]) + probe
        if p.wave_overlap and len(sizes) > 1 or p.wave_speculate and len(sizes) > 2:
            extra, crit_whole = _overlapped([smp["tokens"] for smp in S], sizes, after_wave, p.wave_overlap,
                                            speculate=not p.wave_overlap)
            tokens += extra
    bs = ballots(started)
    t = vote(bs, eq, keep_top=p.keep_top, checkpoint_weight=p.checkpoint_weight, weighted=p.weighted,
             keep_min=p.keep_min)
    return Outcome(bs[t.winner].answer if t.winner is not None else None, tokens, probe, stop, bs,
                   crit_whole if whole else crit_steps)


def _overlapped(lengths: list[int], sizes: list[int], after_wave: list[int], overlap: int,
                speculate: bool = False) -> tuple[int, int]:
    """Overlapping waves (``wave_overlap``), whole lineages, every sample decoding one token a
    step (a batch in lockstep): wave ``k + 1`` starts ``min(overlap, wave k's longest sample)`` after
    wave ``k``; with ``speculate`` (``wave_speculate`` on an idle engine) the first wave runs
    alone and every later one starts with the second, once the first is decided. Wave ``k``'s
    decision comes once it and every earlier decision are done, plus its probes
    (``after_wave[k]``; ``len(after_wave)`` waves were decided); the waves started by then and
    not needed are aborted there. Returns (their tokens, the critical path)."""
    starts, ends, s, a = [], [], 0, 0
    for k, size in enumerate(sizes):
        longest = max(lengths[a:a + size])
        if speculate and k == 1:
            s = ends[0] + after_wave[0]  # the second wave waits for the first's decision
        starts.append(s)
        ends.append(s + longest)
        if not speculate:
            s += min(overlap, longest)
        a += size
    stop = 0
    for k, cost in enumerate(after_wave):
        stop = max(stop, ends[k]) + cost
    a = sum(sizes[:len(after_wave)])
    extra = 0
    for k in range(len(after_wave), len(sizes)):
        extra += sum(max(0, min(n, stop - starts[k])) for n in lengths[a:a + sizes[k]])
        a += sizes[k]
    return extra, stop


def replay_majority(line: dict, samples: Sequence[int]) -> Outcome:
    """Self-consistency over the same samples: each whole sample's answer, all its tokens."""
    S = [line["samples"][i] for i in samples]
    ballots = [Ballot(s["answer"], "path") for s in S if s["answer"] is not None]
    t = vote(ballots, equivalent, weighted=False)
    return Outcome(ballots[t.winner].answer if t.winner is not None else None, sum(s["tokens"] for s in S), 0,
                   "finished", ballots, max((s["tokens"] for s in S), default=0))


def subsets(line: dict, n: int, draws: int, seed: int = 0, shuffle: bool = False) -> Iterator[list[int]]:
    """``draws`` subsets of ``n`` sample indices (the first ``n`` first; then random ones, in
    index order, or with ``shuffle`` in a random order: the order a lineage search starts its
    waves in, so a fresh draw of it even where ``n`` is every sample the bank holds)."""
    k = len(line["samples"])
    if n > k:
        raise ValueError(f"bank holds {k} samples per problem, fewer than n = {n}")
    yield list(range(n))
    rng = random.Random(f"{seed}:{line['unique_id']}:{n}")
    for _ in range(draws - 1):
        pick = rng.sample(range(k), n)
        yield pick if shuffle else sorted(pick)


def half(unique_id: str, salt: str = "") -> str:
    """``tune`` or ``test``: a fixed split of a data set by a hash of ``unique_id`` (+ ``salt``:
    another split, e.g. of the problems a partial bank holds)."""
    import hashlib

    return "tune" if int(hashlib.sha256((unique_id + salt).encode()).hexdigest(), 16) % 2 == 0 else "test"


__all__ = ["Outcome", "Policy", "RecordSettings", "bank_files", "half", "pack", "pack_ids", "read_bank", "record_chunk", "replay_lineages",
           "replay_majority", "subsets", "unpack", "unpack_ids"]
