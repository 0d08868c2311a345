"""SRCA's default lineage search: its rules (exact values), the search on the scripted engine
(exact orders, winners and early exits), and the sample-bank replay agreeing with it."""
import asyncio
import contextlib
import time
import math
import random

import pytest

from srca import SearchConfig, Solver
from srca.answers import equivalent
from srca.eval.data import Problem
from srca.engines.fake import ScriptedEngine
from srca.eval.bank import Policy, RecordSettings, record_chunk, replay_lineages, replay_majority, unpack_ids
from srca.methods.paths import split_steps
from srca.methods.consensus import Ballot, consensus_reached, settled_answer, trace_confidence, vote
from srca.seeds import request_seed

from scripts import step_by_step

EQ = equivalent


# -- rules ------------------------------------------------------------------------------------
def test_trace_confidence_windows():
    lp = [-1.0, -1.0, -0.1, -0.1, -0.1, -2.0]
    assert trace_confidence(lp, "none") == 1.0
    assert trace_confidence(lp, "mean") == pytest.approx(math.exp(sum(lp) / 6))
    assert trace_confidence(lp, "tail", window=2) == pytest.approx(math.exp(-1.05))
    assert trace_confidence(lp, "lowest", window=2) == pytest.approx(math.exp(-1.05))  # last two
    assert trace_confidence(lp, "lowest", window=3) == pytest.approx(math.exp(-2.2 / 3))  # -.1,-.1,-2
    assert trace_confidence([3.0, 1.0], "mean", topk=True) == pytest.approx(2.0)  # DeepConf: -mean(top-k)
    with pytest.raises(ValueError, match="confidence"):
        trace_confidence(lp, "max")


def test_settled_needs_k_agreeing_checkpoints():
    assert settled_answer(["3", "5", "5"], 2, EQ) == "5"
    assert settled_answer(["3", "5", "5"], 3, EQ) is None
    assert settled_answer(["5", "5.0", "5"], 3, EQ) == "5"  # equivalent spellings agree
    assert settled_answer(["5", None, "5"], 2, EQ) is None
    assert settled_answer(["5", "5"], 0, EQ) is None  # off


def test_vote_weights_filters_and_keeps_checkpoints_from_winning_alone():
    b = [Ballot("9", "path", 0.1), Ballot("9", "path", 0.1), Ballot("9", "path", 0.1), Ballot("7", "path", 0.9)]
    assert b[vote(b, EQ).winner].answer == "7"  # 0.9 > 0.3
    assert b[vote(b, EQ, weighted=False).winner].answer == "9"  # plain majority
    t = vote(b, EQ, keep_top=0.5)  # the two most confident: 7 (0.9) and one 9 (0.1)
    assert t.kept == [True, False, False, True] and b[t.winner].answer == "7"
    assert t.share == pytest.approx(0.9 / 1.0)
    # a checkpoint-only group never wins while a full ballot exists, however heavy
    c = [Ballot("4", "checkpoint", 1.0)] * 5 + [Ballot("6", "settled", 0.2)]
    assert c[vote(c, EQ, checkpoint_weight=1.0).winner].answer == "6"
    # with no full ballot at all, checkpoints decide
    assert vote([Ballot("4", "checkpoint", 1.0)], EQ, checkpoint_weight=0.25).winner == 0
    assert vote([], EQ).winner is None


def test_consensus_counts_full_answers_against_all_lineages():
    assert consensus_reached(["7", "7"], 4, 0.5, EQ)
    assert not consensus_reached(["7", "8"], 4, 0.5, EQ)
    assert not consensus_reached(["7", "7"], 5, 0.5, EQ)
    assert not consensus_reached(["7"] * 4, 4, 0.0, EQ)  # off


# -- the online search ------------------------------------------------------------------------
def lineage_script(final, probe, steps, lp=None, offsets=None):
    """Lineage ``L`` (its first step names it) writes ``steps(L)`` steps then boxes ``final(L)``;
    a probe after ``k`` steps answers ``probe(L, k)``. Whole-path requests write the same text
    in one go, so the online search and a bank recorded from this engine see the same paths.
    Sample ``i`` of a request from the root starts lineage ``offsets[seed] + i`` (waves: the
    root request of wave ``w`` is seeded ``w`` under seed 0), ``i`` without ``offsets``."""
    lp = lp or (lambda L: -0.1)
    offsets = offsets or {}

    def path(L):
        return "".join(f"L{L} s{k}\n\n" for k in range(1, steps(L))) + f"L{L} \\boxed{{{final(L)}}}"

    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        L = int(body[1:].split(" ", 1)[0]) if body.startswith("L") else offsets.get(req.seed, 0) + i
        if body.endswith("\\boxed{"):
            return (f"{probe(L, body.count(chr(10) * 2) - 1)}}}", -0.01)
        rest = path(L)[len(body):]
        return (rest, lp(L))

    return script


def run(script, **cfg):
    """One srca solve; a single wave unless ``waves`` is given (the tests below pin what happens
    inside a wave; the waves have tests of their own)."""
    cfg.setdefault("waves", 1)
    eng = ScriptedEngine(script)
    return Solver(engine=eng, config=SearchConfig(method="srca", **cfg)).solve("q"), eng


def test_lineages_fan_out_once_then_step_each_lineage_without_pruning():
    script = lineage_script(lambda L: "7", lambda L, k: str(k), lambda L: 3)
    sol, eng = run(script, n=4, probe_at="step")
    steps = [b for b in eng.calls if b[0].temperature > 0]
    assert [(len(b), [r.n for r in b]) for b in steps] == [(1, [4]), (4, [1] * 4), (4, [1] * 4)]
    assert all(t.kept for t in sol.trace if t.depth > 0)  # no lineage is pruned
    assert sol.answer == "7" and sol.stop_reason == "finished"
    assert sorted(c.source for c in sol.candidates) == ["path"] * 4
    # the default reads no step before a path ends: one request for the n whole lineages, no probe
    whole, eng = run(script, n=4)
    assert [(len(b), [r.n for r in b], b[0].max_new_tokens, b[0].stop) for b in eng.calls] == [(1, [4], 1024, ())]
    assert sorted((t.depth, t.text) for t in whole.trace) == sorted((t.depth, t.text) for t in sol.trace)
    assert not any(t.checkpoint for t in whole.trace)
    assert whole.answer == "7" and sorted(c.source for c in whole.candidates) == ["path"] * 4


@pytest.mark.parametrize("max_new,max_steps", [(1024, 40), (30, 40), (1024, 2), (30, 3)])
def test_whole_lineages_are_the_step_by_step_search(max_new, max_steps):
    script = lineage_script(lambda L: str(7 + (L % 3 == 2)), lambda L, k: str((L + k) % 3),
                            lambda L: 2 + L % 4, lp=lambda L: -0.1 * (L + 1))
    cfg = dict(n=6, confidence="mean", keep_top=1.0, checkpoint_weight=0.25, max_new_tokens=max_new,
               max_steps=max_steps)
    whole, eng = run(script, **cfg)
    with step_by_step():
        steps, eng2 = run(script, **cfg)
    assert len([b for b in eng.calls if b[0].temperature > 0]) == 1 < len([b for b in eng2.calls if b[0].temperature > 0])
    assert (whole.answer, whole.stop_reason) == (steps.answer, steps.stop_reason)
    assert [(c.source, c.answer, c.step) for c in whole.candidates] == [(c.source, c.answer, c.step) for c in steps.candidates]
    assert sorted((t.depth, t.text, t.checkpoint or "", t.finished) for t in whole.trace) == \
        sorted((t.depth, t.text, t.checkpoint or "", t.finished) for t in steps.trace)
    if max_steps == 40:  # these paths end at their box: the same tokens
        assert whole.usage.generated_tokens == steps.usage.generated_tokens
    else:  # max_steps cut some lineages: a whole sample still ran to its end
        assert whole.usage.generated_tokens > steps.usage.generated_tokens
    assert whole.usage.probe_tokens == steps.usage.probe_tokens


def test_whole_lineages_pay_for_the_text_after_the_box():
    # each lineage boxes 7 in its second step and then writes on: the step-by-step search stops
    # at the box, a whole sample runs to its end (as majority's does) and pays for the rest;
    # the bank replay counts the same
    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        full = "a s1\n\nb \\boxed{7}\n\nc check it again and again"
        return (full[len(body):] if not req.stop else full[len(body):].split("\n\n")[0] + "\n\n", -0.1)

    whole, _ = run(script, n=2)
    with step_by_step():
        steps, _ = run(script, n=2)
    assert whole.answer == steps.answer == "7" and [c.step for c in whole.candidates] == [2, 2]
    assert whole.usage.generated_tokens > steps.usage.generated_tokens
    eng = ScriptedEngine(script)
    (line,) = asyncio.run(record_chunk(eng, [Problem(unique_id="p", problem="q", answer="7")],
                                       RecordSettings(samples=2, topk=0, config=SearchConfig(prompt="math"))))
    assert replay_lineages(line, [0, 1], Policy(n=2, waves=1)).tokens == whole.usage.generated_tokens
    # every sample's token ids, whole: the sampled text reads back from them
    (sampled,) = [b for b in eng.calls if b[0].n == 2]
    for x, r in zip(line["samples"], eng.results[eng.calls.index(sampled)][0]):
        assert unpack_ids(x["ids"]) == list(r.token_ids) and len(r.token_ids) == x["tokens"]
    assert replay_lineages(line, [0, 1], Policy(n=2, probe_at="step", waves=1)).tokens < whole.usage.generated_tokens


def test_settled_lineages_stop_early_with_their_checkpoint_answer():
    script = lineage_script(lambda L: "9", lambda L, k: "5", lambda L: 6)
    long, _ = run(script, n=4, settle=0)
    short, _ = run(script, n=4, settle=2, probe_at="step")
    assert long.answer == "9" and short.answer == "5"
    assert [c.source for c in short.candidates] == ["settled"] * 4 and all(c.step == 2 for c in short.candidates)
    assert short.usage.generated_tokens < long.usage.generated_tokens / 2
    assert not short.from_checkpoint  # a settled lineage is a full answer, not a checkpoint rescue


def test_consensus_stops_the_solve_once_enough_lineages_agree():
    # lineages 0 and 1 finish with 7 after 2 steps; 2 and 3 would take 8 steps
    script = lineage_script(lambda L: "7" if L < 2 else "8", lambda L, k: f"{L}{k}", lambda L: 2 if L < 2 else 8)
    sol, _ = run(script, n=4, settle=0, consensus=0.5, probe_at="step")
    assert sol.stop_reason == "consensus" and sol.answer == "7"
    assert max(t.depth for t in sol.trace) == 2
    assert sorted(c.source for c in sol.candidates) == ["checkpoint", "checkpoint", "path", "path"]
    lazy, _ = run(script, n=4, settle=0, consensus=0.5)  # probe_at="cut": the stopped lineages hold no probe
    assert lazy.stop_reason == "consensus" and sorted(c.source for c in lazy.candidates) == ["path", "path"]
    full, _ = run(script, n=4, settle=0, consensus=0.0)
    assert full.stop_reason == "finished" and max(t.depth for t in full.trace) == 8


def test_confidence_weighted_vote_decides():
    # three unsure lineages say 9, one sure lineage says 7
    script = lineage_script(lambda L: "7" if L == 0 else "9", lambda L, k: "1", lambda L: 3,
                            lp=lambda L: -0.01 if L == 0 else -3.0)
    sol, _ = run(script, n=4, settle=0, confidence="mean", keep_top=1.0)
    assert sol.answer == "7"
    plain, _ = run(script, n=4, settle=0, confidence="none", keep_top=1.0)
    assert plain.answer == "9"
    # the paper's CCA pool counts every checkpoint as a full candidate: the probes' "1" drowns both
    paper, _ = run(script, n=4, lineages=False, decision="majority")
    assert paper.answer == "1"


def test_a_lineage_cut_short_votes_its_checkpoint_but_never_wins_alone():
    script = lineage_script(lambda L: "7", lambda L, k: "3", lambda L: 2 if L == 0 else 50)
    sol, _ = run(script, n=2, settle=0, max_new_tokens=40, checkpoint_weight=1.0, confidence="none")
    kinds = sorted((c.source, c.answer) for c in sol.candidates)
    assert kinds == [("checkpoint", "3"), ("path", "7")]
    assert sol.answer == "7"


def test_probe_at_cut_probes_only_the_lineages_the_token_limit_cuts():
    # lineage 0 boxes 7 after 2 steps; lineages 1-3 never finish within 40 tokens: each is cut
    # once, probed once (answer 3), and votes that checkpoint, which cannot win alone
    script = lineage_script(lambda L: "7", lambda L, k: "3", lambda L: 2 if L == 0 else 50)
    sol, eng = run(script, n=4, max_new_tokens=40, confidence="none", keep_top=1.0, checkpoint_weight=1.0)
    probes = [r for b in eng.calls for r in b if r.temperature == 0]
    assert len(probes) == 3
    assert sorted((c.source, c.answer) for c in sol.candidates) == [("checkpoint", "3")] * 3 + [("path", "7")]
    assert sol.answer == "7" and sol.usage.probe_tokens > 0
    every, eng2 = run(script, n=4, max_new_tokens=40, confidence="none", keep_top=1.0, checkpoint_weight=1.0,
                      probe_at="step")
    assert len([r for b in eng2.calls for r in b if r.temperature == 0]) > len(probes)
    assert every.usage.generated_tokens > sol.usage.generated_tokens  # the probes were the difference


def test_settle_needs_a_probe_after_every_step():
    with pytest.raises(ValueError, match="settle"):
        SearchConfig(settle=3)
    with pytest.raises(ValueError, match="probe_at"):
        SearchConfig(probe_at="sometimes")
    assert SearchConfig(settle=3, probe_at="step").settle == 3


# -- the bank replay agrees with the online search -----------------------------------------------
def test_split_steps_cuts_like_the_engine():
    assert split_steps(["a", "\n", "\n", "b", "c"], "\n\n", 256, 1024) == [3, 5]
    assert split_steps(["a", ".\n\n", "b"], "\n\n", 256, 1024) == [2, 3]
    assert split_steps(list("abcde"), "\n\n", 2, 1024) == [2, 4, 5]
    assert split_steps(list("abcde"), "\n\n", 256, 3) == [3]  # the path is out of tokens


def test_split_steps_matches_the_step_text_rule_on_random_tokens():
    # the rule as stated: a step ends after the token whose addition puts the delimiter in the
    # step's whole text (split_steps checks only the step's tail; this keeps it honest)
    def reference(toks, delim, max_step, max_new):
        ends, start, text = [], 0, ""
        for i, t in enumerate(toks[:max_new]):
            text += t
            if delim in text or i + 1 - start >= min(max_step, max_new - start):
                ends.append(i + 1)
                start, text = i + 1, ""
        if start < min(len(toks), max_new):
            ends.append(min(len(toks), max_new))
        return ends

    rng = random.Random(7)
    pieces = ["a", "\n", "\n\n", ".\n", "b\n\nc", "\n\n\n", " x", "##", "#"]
    for _ in range(400):
        toks = [rng.choice(pieces) for _ in range(rng.randint(0, 40))]
        for delim in ("\n\n", "\n", "###", "\n\n\n"):
            args = (delim, rng.choice([3, 8, 256]), rng.choice([5, 30, 1024]))
            assert split_steps(toks, *args) == reference(toks, *args), (toks, args)


@pytest.mark.parametrize("settle,consensus,max_new,probe_at,max_steps", [
    (0, 0.0, 1024, "step", 40), (2, 0.0, 1024, "step", 40), (0, 0.5, 1024, "step", 40), (3, 0.75, 1024, "step", 40),
    (0, 0.0, 30, "step", 40), (2, 0.5, 30, "step", 40), (0, 0.0, 1024, "cut", 40), (0, 0.5, 1024, "cut", 40),
    (0, 0.0, 30, "cut", 40), (0, 0.5, 30, "cut", 40), (0, 0.0, 1024, "cut", 2), (2, 0.0, 1024, "step", 2)])
def test_replay_matches_the_online_search(settle, consensus, max_new, probe_at, max_steps):
    # max_new = 30: the longer lineages run out of tokens mid-step ("cut", a checkpoint ballot)
    script = lineage_script(lambda L: str(7 + (L % 3 == 2)), lambda L, k: str((L + k) % 3),
                            lambda L: 2 + L % 4, lp=lambda L: -0.1 * (L + 1))
    n = 6
    eng = ScriptedEngine(script)
    prob = Problem(unique_id="p1", problem="q", answer="7")
    s = RecordSettings(samples=n, topk=0, config=SearchConfig(prompt="math", max_new_tokens=max_new))
    (line,) = asyncio.run(record_chunk(eng, [prob], s))
    if max_new < 1024:
        assert any(st[1] == "cut" for x in line["samples"] for st in x["steps"])
    pol = Policy(n=n, settle=settle, consensus=consensus, confidence="mean", keep_top=1.0, checkpoint_weight=0.25,
                 probe_at=probe_at, max_steps=max_steps, waves=1)
    out = replay_lineages(line, list(range(n)), pol)
    sol, _ = run(script, n=n, settle=settle, consensus=consensus, confidence="mean", keep_top=1.0,
                 checkpoint_weight=0.25, max_new_tokens=max_new, probe_at=probe_at, max_steps=max_steps)
    assert out.answer == sol.answer and out.stop == sol.stop_reason
    assert out.tokens == sol.usage.generated_tokens and out.probe_tokens == sol.usage.probe_tokens
    assert sorted((b.kind, b.answer) for b in out.ballots) == sorted(
        ("settled" if c.source == "settled" else c.source, c.answer) for c in sol.candidates)
    maj = replay_majority(line, list(range(n)))
    assert maj.answer == "7" and maj.tokens == sum(x["tokens"] for x in line["samples"])


def test_cli_text_names_settled_votes():
    from srca.commands.solve import render

    sol, _ = run(lineage_script(lambda L: "9", lambda L, k: "5", lambda L: 6), n=4, settle=2, probe_at="step")
    text = render(sol)
    assert "Answer: 5" in text and "4 vote(s)  (0 path(s), 4 settled, 0 checkpoint(s))" in text


def test_lineages_ask_for_logprobs_only_when_the_vote_reads_them():
    script = lineage_script(lambda L: "7", lambda L, k: "1", lambda L: 2)
    _, eng = run(script, n=2, settle=0)
    steps = [r for b in eng.calls for r in b if r.temperature > 0]
    assert steps and all(r.logprobs and r.top_logprobs == 0 for r in steps)
    _, eng = run(script, n=2, settle=0, confidence_topk=5)
    steps = [r for b in eng.calls for r in b if r.temperature > 0]
    assert all(r.top_logprobs == 5 and r.top_logprobs_steps == r.max_new_tokens for r in steps)
    _, eng = run(script, n=2, settle=0, confidence="none", probe_at="step")
    assert not any(r.logprobs for b in eng.calls for r in b if r.temperature > 0)
    probes = [r for b in eng.calls for r in b if r.temperature == 0]
    assert probes and not any(r.logprobs for r in probes)  # nothing reads a probe's logprobs here


def test_a_deadline_between_a_step_and_its_probe_keeps_the_finished_lineages():
    # lineages 0 and 1 box 7 at step 2; every probe says 5; the probe after step 2 hangs past
    # the deadline: the two finished lineages must still vote (they did not before)
    class SlowSecondProbe(ScriptedEngine):
        async def generate(self, requests):
            probes = sum(1 for b in self.calls if b[0].temperature == 0.0)
            self.latency_s = 5.0 if requests[0].temperature == 0.0 and probes >= 1 else 0.0
            return await super().generate(requests)

    eng = SlowSecondProbe(lineage_script(lambda L: "7" if L < 2 else "8", lambda L, k: "5",
                                         lambda L: 2 if L < 2 else 6))
    sol = Solver(engine=eng, config=SearchConfig(method="srca", n=4, settle=0, deadline_s=1.0, waves=1,
                                                 probe_at="step")).solve("q")
    assert sol.stop_reason == "deadline" and sol.answer == "7"
    assert sorted((c.source, c.answer, c.step) for c in sol.candidates) == [
        ("checkpoint", "5", 1), ("checkpoint", "5", 1), ("path", "7", 2), ("path", "7", 2)]


def test_a_deadline_stops_whole_lineages_in_time_to_probe_the_ones_it_cut():
    # the default generates each lineage whole, in a call of 1.8 s here. The deadline (1 s)
    # stops it at 0.8 s, when the fake engine has written 44% of each sample:
    # lineages 0 and 1 had boxed 7 by then (one step each), 2 and 3 were inside their second
    # step; those two are probed in the time kept for it and vote 5 and 8
    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        if body.endswith("\\boxed{"):
            return ("5}" if body.startswith("L2") else "8}"), -0.01
        if i < 2:
            return f"L{i} \\boxed{{7}}" + " and so on" * 4, -0.1
        return f"L{i} s1\n\nL{i} s2 " + "." * 80 + f"\\boxed{{{i}}}", -0.1

    class SlowWhole(ScriptedEngine):
        async def generate(self, requests):
            self.latency_s = 1.8 if requests[0].temperature > 0 else 0.0
            out = await super().generate(requests)
            self.done_at.append(time.monotonic() - t0)
            return out

    eng = SlowWhole(script)
    eng.done_at = []
    t0 = time.monotonic()
    sol = Solver(engine=eng, config=SearchConfig(method="srca", n=4, waves=1, deadline_s=1.0)).solve("q")
    assert sol.stop_reason == "deadline" and sol.answer == "7"
    # the wave stopped at 0.8 s, its probes done before the deadline (the decision's first
    # math-verify import may come after it: the service imports it at its start)
    assert 0.8 <= eng.done_at[0] <= eng.done_at[1] < 1.0
    assert [(len(b), b[0].temperature > 0) for b in eng.calls] == [(1, True), (2, False)]  # the wave, 2 probes
    assert sorted((c.source, c.answer, c.step) for c in sol.candidates) == [
        ("checkpoint", "5", 2), ("checkpoint", "8", 2), ("path", "7", 1), ("path", "7", 1)]
    assert sol.usage.generated_tokens == sum(r.generated_tokens for b in eng.results for rs in b for r in rs)


def test_a_token_budget_gives_each_wave_of_whole_lineages_a_share_of_what_is_left():
    # budget 200, probes of up to 16 tokens: wave 1 (lineages 0, 1) may write (200 - 2 * 16) / 2
    # = 84 tokens each; they box 7 and 8 in 12 tokens each, a vote not yet clear; wave 2 gets
    # (176 - 32) / 2 = 72 each, and lineages 2 and 3 (20 steps) are cut there, probed (7), and vote
    script = lineage_script(lambda L: "7" if L != 1 else "8", lambda L, k: "7", lambda L: 1 if L < 2 else 20,
                            offsets={request_seed(0, 0, 0): 0, request_seed(0, 0, 1): 2})
    sol, eng = run(script, n=4, waves=2, max_tokens_total=200, probe_max_tokens=16, keep_top=1.0)
    assert [(r.n, r.max_new_tokens, r.temperature > 0) for b in eng.calls for r in b][:2] == [(2, 84, True), (2, 72, True)]
    assert [len(b) for b in eng.calls if b[0].temperature == 0] == [2]  # one call probing the two cut lineages
    assert sol.stop_reason == "budget" and sol.answer == "7"
    assert sorted((c.source, c.answer) for c in sol.candidates) == [
        ("checkpoint", "7"), ("checkpoint", "7"), ("path", "7"), ("path", "8")]
    assert sol.usage.generated_tokens == 12 + 12 + 72 + 72 + 4 <= 200


@pytest.mark.parametrize("confidence,keep_top", [("none", 1.0), ("tail", 0.9)])
def test_replay_and_online_break_ties_the_same_way(confidence, keep_top):
    # lineages 0 and 1 answer 8 late, 2 and 3 answer 7 early, all equally sure: a tie that the
    # vote breaks by ballot order, so both sides must list ballots in lineage order
    script = lineage_script(lambda L: "8" if L < 2 else "7", lambda L, k: str(10 + L), lambda L: 4 if L < 2 else 2)
    eng = ScriptedEngine(script)
    (line,) = asyncio.run(record_chunk(eng, [Problem(unique_id="p", problem="q", answer="7")],
                                       RecordSettings(samples=4, topk=0, config=SearchConfig(prompt="math"))))
    cfg = dict(n=4, settle=0, confidence=confidence, keep_top=keep_top, waves=1)
    out = replay_lineages(line, list(range(4)), Policy.from_config(SearchConfig(**cfg)))
    sol, _ = run(script, **cfg)
    assert out.answer == sol.answer == "8"
    assert [b.answer for b in out.ballots] == [c.answer for c in sol.candidates] == ["8", "8", "7", "7"]


def test_auto_decision_follows_the_search_structure():
    from srca.methods import METHODS

    srca = METHODS["srca"]
    assert srca.decision_for(SearchConfig()) == "confidence_vote"
    assert srca.decision_for(SearchConfig(lineages=False)) == "best_score"  # the paper's tree
    assert srca.decision_for(SearchConfig(lineages=False, decision="majority")) == "majority"
    assert METHODS["best_of_n"].decision_for(SearchConfig()) == "best_score"


def test_the_default_vote_keeps_the_most_confident_half():
    # lineage L samples its tokens at log-probability -0.1 * (L + 1): 0 is the surest. Finals 7, 8,
    # 9, 9: with keep_min 1, the default filter (tail confidence, keep_top 0.5) keeps lineages 0
    # and 1 only, so the two unsure 9s do not count and the surest answer wins; the default
    # keep_min (8) keeps all four of n = 4, and their weights (0.90, 0.82, 0.74 + 0.67) pick 9
    script = lineage_script(lambda L: {0: "7", 1: "8"}.get(L, "9"), lambda L, k: "1", lambda L: 3,
                            lp=lambda L: -0.1 * (L + 1))
    assert (SearchConfig().keep_top, SearchConfig().keep_min, SearchConfig().confidence) == (0.5, 8, "tail")
    sol, _ = run(script, n=4, keep_min=1)
    assert sol.answer == "7" and sorted(c.answer for c in sol.candidates) == ["7", "8", "9", "9"]
    assert run(script, n=4)[0].answer == "9"
    plain, _ = run(script, n=4, confidence="none", keep_top=1.0)
    assert plain.answer == "9"


def test_the_filter_keeps_at_least_keep_min_ballots():
    # two sure 9s, four unsure 7s, a checkpoint (weight 0 here): the top half is 9, 9 and one 7
    b = [Ballot("9", "path", 0.9), Ballot("7", "path", 0.5), Ballot("9", "path", 0.8), Ballot("7", "path", 0.5),
         Ballot("7", "path", 0.5), Ballot("7", "path", 0.5), Ballot("3", "checkpoint", 1.0)]
    t = vote(b, EQ, keep_top=0.5, keep_min=1)
    assert t.kept == [True, True, True, False, False, False, False] and b[t.winner].answer == "9"  # 1.7 to 0.5
    t = vote(b, EQ, keep_top=0.5, keep_min=4)
    assert t.kept == [True, True, True, True, False, False, False] and b[t.winner].answer == "9"  # 1.7 to 1.0
    t = vote(b, EQ, keep_top=0.5, keep_min=8)  # more than there are: every full ballot counts
    assert t.kept == [True] * 6 + [False] and b[t.winner].answer == "7"  # 2.0 to 1.7
    with pytest.raises(ValueError, match="keep_min"):
        vote(b, EQ, keep_min=0)
    with pytest.raises(ValueError, match="keep_min"):
        SearchConfig(keep_min=0)
    # the search passes it on: with n = 4 the default keeps every lineage (keep_min 8 > 4)
    script = lineage_script(lambda L: "7" if L == 0 else "9", lambda L, k: "1", lambda L: 3,
                            lp=lambda L: -0.01 if L == 0 else -0.5)
    assert run(script, n=4, keep_min=1)[0].answer == "7"  # the top half: the sure 7 and one 9; 7 weighs more
    assert run(script, n=4)[0].answer == "9"  # all four: three 9s outweigh the one sure 7


class _TailOnly(ScriptedEngine):
    """Token logprobs that vary along the text (``-0.01 * (id % 17)``); with ``tail_only`` it
    leaves out (NaN) all but each request's last ``logprob_tail``, as SGLang's tail rescoring does."""

    def __init__(self, script, tail_only):
        super().__init__(script)
        self.tail_only = tail_only

    async def generate(self, requests):
        out = await super().generate(requests)
        for req, rs in zip(requests, out):
            for r in rs:
                if r.logprobs:
                    r.logprobs = [-0.01 * (t % 17) for t in r.token_ids]
                    if self.tail_only and req.logprob_tail:
                        k = len(r.logprobs) - req.logprob_tail
                        r.logprobs[:max(k, 0)] = [float("nan")] * max(k, 0)
        return out


@pytest.mark.parametrize("stepwise", [False, True])
def test_a_tail_confidence_reads_only_the_tail_it_asks_for(stepwise):
    # lineages of 3 steps, each sample writing on after its box: with the engine leaving out all
    # but the last 2 * window logprobs of each request, every lineage's confidence (and so the
    # vote) is what it is with every logprob there
    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        L = int(body[1:].split(" ", 1)[0]) if body.startswith("L") else i
        full = f"L{L} first step of {'x' * (5 * L)}\n\nL{L} more\n\nL{L} so{'y' * L} \\boxed{{{7 + L % 2}}} ok"
        return full[len(body):] if not req.stop else full[len(body):].split("\n\n")[0] + "\n\n"

    cfg = dict(n=4, confidence_window=10, keep_min=1, waves=1)
    sols = {}
    for tail_only in (False, True):
        eng = _TailOnly(script, tail_only)
        with step_by_step() if stepwise else contextlib.nullcontext():
            sols[tail_only] = Solver(engine=eng, config=SearchConfig(method="srca", **cfg)).solve("q")
        reqs = [r for b in eng.calls for r in b if r.temperature > 0]
        assert reqs and all(r.logprob_tail == 20 for r in reqs)
    full, tail = sols[False], sols[True]
    assert [c.score for c in tail.candidates] == pytest.approx([c.score for c in full.candidates])
    assert len({round(c.score, 6) for c in full.candidates}) > 1 and tail.answer == full.answer
    # a mean confidence reads the whole path: no tail is asked for
    _, eng = run(lineage_script(lambda L: "7", lambda L, k: "1", lambda L: 2), n=2, confidence="mean")
    assert all(r.logprob_tail == 0 for b in eng.calls for r in b)
