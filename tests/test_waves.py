"""SRCA's waves (ESC-style adaptive sampling): the wave rules (exact values), the online search
on the scripted engine (exact calls, stops and winners) and the bank replay agreeing with it."""
import asyncio

import pytest

from srca import SearchConfig, Solver
from srca.answers import equivalent
from srca.engines.fake import ScriptedEngine
from srca.eval.bank import Policy, RecordSettings, record_chunk, replay_lineages, replay_majority
from srca.eval.data import Problem
from srca.methods.consensus import Ballot, wave_settled, wave_sizes
from srca.seeds import request_seed

from scripts import step_by_step

from _eval_fixtures import count_in_flight
from test_srca_lineage import lineage_script

EQ = equivalent
OFFSETS = {request_seed(0, 0, w): 2 * w for w in range(3)}  # n = 6 in waves of 2: wave w holds 2w, 2w+1


def test_wave_sizes_smaller_first_and_never_below_the_minimum():
    assert wave_sizes(16, 3, 2) == [5, 5, 6]
    assert wave_sizes(32, 3, 2) == [10, 11, 11]
    assert wave_sizes(8, 3, 2) == [2, 3, 3]
    assert wave_sizes(5, 3, 2) == [2, 3]
    assert wave_sizes(4, 3, 2) == [2, 2]  # a wave of 1 could never settle a solve
    assert wave_sizes(3, 3, 2) == [3]
    assert wave_sizes(16, 1, 2) == [16]
    assert wave_sizes(4, 3) == [1, 1, 2]
    assert sum(wave_sizes(97, 5, 3)) == 97


def test_growing_waves_round_by_largest_remainder_and_keep_the_minimum():
    assert wave_sizes(32, 5, 2, 0.5) == [4, 4, 6, 8, 10]  # weights 1, 1, 1.5, 2, 2.5
    assert wave_sizes(28, 5, 2, 0.5) == [3, 4, 5, 7, 9]  # 3.5, 3.5, 5.25, 7, 8.75: ties to the later wave
    assert wave_sizes(32, 4, 2, 1.0) == [4, 5, 9, 14]
    assert wave_sizes(8, 5, 2, 0.5) == [2, 2, 2, 2]  # four waves at most; 1.45 -> 2, from the largest
    assert wave_sizes(6, 5, 2, 3.0) == [2, 2, 2]
    assert wave_sizes(16, 2, 2, 1.0) == [8, 8]  # the first two waves are alike: no growth below three
    assert wave_sizes(32, 8, 2, 0.0) == [4] * 8
    for n in (5, 16, 27, 64, 97):
        for g in (0.25, 0.5, 2.0):
            sizes = wave_sizes(n, 6, 2, g)
            assert sum(sizes) == n and min(sizes) >= 2 and sizes == sorted(sizes)


def test_wave_settled_needs_agreement_and_weight():
    b = lambda a, c=1.0, kind="path": Ballot(a, kind, c)  # noqa: E731
    assert wave_settled([b("7"), b("7")], EQ, 0.5, 2)
    assert not wave_settled([b("7"), b("8")], EQ, 0.5, 2)  # one ballot each: no agreement
    assert not wave_settled([b("7")], EQ, 0.5, 2)
    assert not wave_settled([], EQ, 0.5, 2)
    # 7 twice (0.2 each) against 8 and 9 (0.9 each): 8 leads the weighted vote with one ballot
    assert not wave_settled([b("7", 0.2), b("7", 0.2), b("8", 0.9), b("9", 0.9)], EQ, 0.5, 2)
    # 7 twice of four equal ballots holds exactly half the weight
    four = [b("7"), b("7"), b("8"), b("9")]
    assert wave_settled(four, EQ, 0.5, 2) and not wave_settled(four, EQ, 0.51, 2)
    assert not wave_settled(four, EQ, 0.5, 3)
    # checkpoint ballots weigh in the share but are not votes of their own
    assert not wave_settled([b("7"), b("7", kind="checkpoint")], EQ, 0.5, 2, checkpoint_weight=1.0)
    assert wave_settled([b("7"), b("7"), b("8", kind="checkpoint")], EQ, 0.5, 2, checkpoint_weight=1.0)


def test_wave_settled_by_margin_counts_the_lineages_still_to_come():
    b = lambda a, c=1.0, kind="path": Ballot(a, kind, c)  # noqa: E731
    three_one = [b("7"), b("7"), b("7"), b("8")]  # a lead of 2 ballots
    assert wave_settled(three_one, EQ, 1.0, 2, margin=1.0, remaining=2)  # two more cannot overturn it
    assert not wave_settled(three_one, EQ, 1.0, 2, margin=1.0, remaining=3)
    assert wave_settled(three_one, EQ, 1.0, 2, margin=0.25, remaining=8)  # 2 >= 0.25 * 8
    assert not wave_settled(three_one, EQ, 1.0, 2, margin=0.25, remaining=9)
    # the share rule would stop here (3 of 4 >= 0.5); the margin rule ignores wave_consensus
    assert wave_settled(three_one, EQ, 0.5, 2) and not wave_settled(three_one, EQ, 0.5, 2, margin=0.5, remaining=12)
    # nothing left to come: any winner with min_votes ballots settles; a tie never has a lead
    assert wave_settled([b("7"), b("7"), b("8"), b("8"), b("7")], EQ, 1.0, 2, margin=1.0, remaining=0)
    assert not wave_settled([b("7"), b("7"), b("8"), b("8")], EQ, 1.0, 2, margin=0.1, remaining=4)
    # the lead in mean ballots: 7 weighs 0.9 + 0.9, 8 weighs 0.3; mean ballot 0.7, lead 1.5/0.7 = 2.14
    weighted = [b("7", 0.9), b("7", 0.9), b("8", 0.3)]
    assert wave_settled(weighted, EQ, 1.0, 2, margin=1.0, remaining=2)
    assert not wave_settled(weighted, EQ, 1.0, 2, margin=1.0, remaining=3)
    assert not wave_settled([b("7"), b("8")], EQ, 1.0, 2, margin=0.1, remaining=0)  # min_votes still holds


def solve(finals, steps=lambda L: 3, offsets=OFFSETS, **cfg):
    cfg = dict(dict(method="srca", n=6, waves=3, wave_min=2, wave_consensus=0.5, confidence="mean", keep_top=1.0),
               **cfg)
    script = lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", steps, offsets=offsets)
    eng = ScriptedEngine(script)
    return Solver(engine=eng, config=SearchConfig(**cfg)).solve("q"), eng, script


def sampling_calls(eng):
    return [[(r.n, r.seed) for r in b] for b in eng.calls if b[0].temperature > 0]


def test_an_agreeing_first_wave_stops_the_solve():
    sol, eng, _ = solve(["7", "7", "8", "8", "8", "8"])
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, 0))]]  # one wave of 2 whole lineages
    assert sol.stop_reason == "consensus" and sol.answer == "7"
    assert [(c.source, c.answer) for c in sol.candidates] == [("path", "7")] * 2
    whole_six, _, _ = solve(["7", "7", "8", "8", "8", "8"], waves=1)
    assert whole_six.answer == "8" and whole_six.stop_reason == "finished"  # all six: 8 wins 4 to 2
    assert sol.usage.generated_tokens * 3 == whole_six.usage.generated_tokens  # equal lineages: a third


def test_waves_run_until_the_vote_is_clear():
    sol, eng, _ = solve(["7", "8", "8", "9", "8", "8"])
    # wave 1: 7 and 8 disagree; wave 2: 8 twice of 7, 8, 8, 9, exactly half the weight: stop
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, 0))], [(2, request_seed(0, 0, 1))]]
    assert sol.stop_reason == "consensus" and sol.answer == "8"
    assert [c.answer for c in sol.candidates] == ["7", "8", "8", "9"]  # lineage order
    alone, eng, _ = solve(["1", "2", "3", "4", "5", "5"])
    assert len(sampling_calls(eng)) == 3 and alone.stop_reason == "finished"
    assert [c.answer for c in alone.candidates] == ["1", "2", "3", "4", "5", "5"] and alone.answer == "5"
    # a stricter threshold runs the third wave for the same lineages
    strict, eng, _ = solve(["7", "8", "8", "9", "8", "8"], wave_consensus=0.6)
    assert len(sampling_calls(eng)) == 3 and strict.answer == "8" and strict.stop_reason == "finished"


def test_waves_stop_by_margin():
    # wave 1: 7, 7 (a lead of 2 with 4 lineages to come): 2 >= 0.5 * 4 stops, 2 < 1.0 * 4 does not
    loose, eng, _ = solve(["7", "7", "8", "8", "8", "8"], wave_margin=0.5)
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, 0))]]
    assert (loose.answer, loose.stop_reason) == ("7", "consensus")
    # margin 1: wave 2 gives 7, 7, 8, 8 (no lead), wave 3 runs and 8 wins 4 to 2
    strict, eng, _ = solve(["7", "7", "8", "8", "8", "8"], wave_margin=1.0)
    assert len(sampling_calls(eng)) == 3 and (strict.answer, strict.stop_reason) == ("8", "finished")
    # wave 2: 8, 8, 8 against 7 (a lead of 2 with 2 to come): settled at margin 1
    mid, eng, _ = solve(["7", "8", "8", "8", "9", "9"], wave_margin=1.0)
    assert len(sampling_calls(eng)) == 2 and (mid.answer, mid.stop_reason) == ("8", "consensus")


def test_srca_wide_spends_its_cap_only_on_an_unclear_vote():
    # variant srca-wide at n = 32: 8 waves of 4, a stop once the lead reaches 0.125 of the
    # lineages still to come (with wave_min 2), every lineage's vote weighed by its mean confidence
    from srca.eval.variants import VARIANTS

    wide = {k: v for k, v in VARIANTS["srca-wide"].items() if k != "method"}
    offsets = {request_seed(0, 0, w): 4 * w for w in range(8)}  # wave w holds lineages 4w to 4w + 3
    # wave 1: 7, 7, 7, 8 (a lead of 2 < 0.125 * 28 = 3.5); wave 2: four more 7s (a lead of 6 >=
    # 0.125 * 24 = 3): it stops after 8 of its 32 lineages
    easy = ["7", "7", "7", "8"] + ["7"] * 4 + ["9"] * 24
    res, eng, _ = solve(easy, offsets=offsets, n=32, **wide)
    assert [len(b) for b in sampling_calls(eng)] == [1, 1] and [b[0][0] for b in sampling_calls(eng)] == [4, 4]
    assert (res.answer, res.stop_reason) == ("7", "consensus")
    # no answer pulls ahead until the sixth wave: 7 and 8 trade the lead by one ballot at most
    # (a lead of 1 or 0 against 0.125 * 12 = 1.5 after wave 5), then wave 6 gives 8 four more
    hard = ["7", "8"] * 10 + ["8"] * 4 + ["9"] * 8
    res, eng, _ = solve(hard, offsets=offsets, n=32, **wide)
    assert len(sampling_calls(eng)) == 6 and (res.answer, res.stop_reason) == ("8", "consensus")


def test_srca_wide_fast_runs_growing_waves():
    # variant srca-wide-fast at n = 32: waves of 4, 4, 6, 8, 10 (wave_growth 0.5), a stop once the
    # lead reaches 0.1 of the lineages still to come
    from srca.eval.variants import VARIANTS

    fast = {k: v for k, v in VARIANTS["srca-wide-fast"].items() if k != "method"}
    starts = [0, 4, 8, 14, 22]
    offsets = {request_seed(0, 0, w): s for w, s in enumerate(starts)}
    # 7 and 8 tie after waves 1 to 3 (2-2, 4-4, 7-7), then wave 4's eight 8s lead by 8 >= 0.1 * 10
    tied = ["7", "8"] * 7 + ["8"] * 8 + ["9"] * 10
    res, eng, _ = solve(tied, offsets=offsets, n=32, **fast)
    assert [b[0][0] for b in sampling_calls(eng)] == [4, 4, 6, 8]
    assert (res.answer, res.stop_reason) == ("8", "consensus")
    # the bank replay runs the same waves: the same answer, stop and tokens
    bank_engine = ScriptedEngine(lineage_script(lambda L: tied[L], lambda L, k: f"{L}{k}", lambda L: 3))
    rec = RecordSettings(samples=32, topk=0, config=SearchConfig(prompt="math"))
    (line,) = asyncio.run(record_chunk(bank_engine, [Problem(unique_id="p1", problem="q", answer="8")], rec))
    out = replay_lineages(line, list(range(32)), Policy.from_config(SearchConfig.from_dict(res.config)))
    assert (out.answer, out.stop, out.tokens) == (res.answer, res.stop_reason, res.usage.generated_tokens)
    assert len(out.ballots) == 22
    # an even split never leads: all five waves, all 32 lineages
    res, eng, _ = solve(["7", "8"] * 16, offsets=offsets, n=32, **fast)
    assert [b[0][0] for b in sampling_calls(eng)] == [4, 4, 6, 8, 10] and res.stop_reason == "finished"


@pytest.mark.parametrize("finals", [["7", "7", "8", "8", "8", "8"], ["7", "8", "8", "9", "8", "8"],
                                    ["1", "2", "3", "4", "5", "5"]])
@pytest.mark.parametrize("margin", [0.0, 1.0])
def test_step_by_step_waves_are_the_whole_ones(finals, margin):
    whole, _, _ = solve(finals, steps=lambda L: 2 + L % 3, wave_margin=margin)
    with step_by_step():
        steps, eng, _ = solve(finals, steps=lambda L: 2 + L % 3, wave_margin=margin)
    assert all(len(b) >= 1 for b in sampling_calls(eng))
    assert (whole.answer, whole.stop_reason) == (steps.answer, steps.stop_reason)
    assert [(c.source, c.answer, c.step) for c in whole.candidates] == \
        [(c.source, c.answer, c.step) for c in steps.candidates]
    assert whole.usage.generated_tokens == steps.usage.generated_tokens


@pytest.mark.parametrize("finals,probe_at,max_new", [
    (["7", "7", "8", "8", "8", "8"], "cut", 1024), (["7", "8", "8", "9", "8", "8"], "cut", 1024),
    (["1", "2", "3", "4", "5", "5"], "cut", 1024), (["7", "8", "8", "9", "8", "8"], "step", 1024),
    (["7", "8", "8", "9", "8", "8"], "cut", 30), (["7", "7", "8", "8", "8", "8"], "step", 30)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
def test_replay_matches_the_online_waves(finals, probe_at, max_new, margin):
    # max_new = 30: the longer lineages are cut before they box (checkpoint ballots)
    steps = lambda L: 2 + L % 4  # noqa: E731
    sol, _, _ = solve(finals, steps=steps, probe_at=probe_at, max_new_tokens=max_new, checkpoint_weight=0.25,
                      wave_margin=margin)
    # the bank's sample i is lineage i (one request of all six)
    bank_engine = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", steps))
    rec = RecordSettings(samples=6, topk=0, config=SearchConfig(prompt="math", max_new_tokens=max_new))
    (line,) = asyncio.run(record_chunk(bank_engine, [Problem(unique_id="p1", problem="q", answer="8")], rec))
    if max_new < 1024:
        assert any(st[1] == "cut" for x in line["samples"] for st in x["steps"])
    out = replay_lineages(line, list(range(6)), Policy.from_config(SearchConfig.from_dict(sol.config)))
    assert (out.answer, out.stop) == (sol.answer, sol.stop_reason)
    assert out.tokens == sol.usage.generated_tokens and out.probe_tokens == sol.usage.probe_tokens
    assert [(b.kind, b.answer) for b in out.ballots] == [(c.source, c.answer) for c in sol.candidates]


def test_the_default_search_starts_in_waves():
    c = SearchConfig()
    assert (c.waves, c.wave_consensus, c.wave_min) == (3, 0.5, 2)
    assert Policy.from_config(c).waves == 3
    assert c.wave_margin == 0.0 and Policy.from_config(SearchConfig(wave_margin=0.25)).wave_margin == 0.25
    for bad in ({"waves": 0}, {"waves": 65}, {"wave_min": 0}, {"wave_consensus": 1.5}, {"waves": 2.0},
                {"wave_margin": -0.1}, {"wave_margin": 1.5}, {"wave_margin": "1"},
                {"wave_growth": -0.5}, {"wave_growth": 9}, {"wave_growth": float("nan")}, {"wave_growth": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SearchConfig(**bad)


def test_the_wave_check_runs_in_the_answer_workers():
    # two solves in flight on a solver with one answer worker: each wave check (math-verify's
    # equivalences) goes to the worker process, with the inline result
    script = lineage_script(lambda L: ["7", "8", "8", "9", "8", "8"][L], lambda L, k: f"{L}{k}", lambda L: 3,
                            offsets=OFFSETS)
    cfg = SearchConfig(method="srca", n=6, waves=3, confidence="mean", keep_top=1.0)
    inline = Solver(engine=ScriptedEngine(script), config=cfg).solve("q")
    solver = Solver(engine=ScriptedEngine(script), config=cfg, answer_workers=1)

    async def two():
        return await asyncio.gather(solver.asolve("q"), solver.asolve("q"))

    try:
        a, b = asyncio.run(two())
        stats = solver.answer_work.stats()
    finally:
        solver.close()
    assert (inline.answer, inline.stop_reason) == ("8", "consensus")
    assert [(s.answer, s.stop_reason) for s in (a, b)] == [("8", "consensus")] * 2
    assert [c.answer for c in a.candidates] == [c.answer for c in inline.candidates]
    # per solve: 2 wave checks and the decision, 6 calls, all in the worker (none inline)
    assert stats["calls"] == 6 and stats["inline_calls"] == 0


def test_the_waves_are_told():
    from srca.commands.solve import _progress

    events = []
    script = lineage_script(lambda L: ["7", "8", "8", "9", "8", "8"][L], lambda L, k: f"{L}{k}", lambda L: 3,
                            offsets=OFFSETS)
    Solver(engine=ScriptedEngine(script), config=SearchConfig(n=6, probe_at="step")).solve("q", on_event=events.append)
    waves = [e for e in events if e["type"] == "wave"]
    assert [(e["wave"], e["waves"], e["lineages"], e["before"]) for e in waves] == [(1, 3, 2, 0), (2, 3, 2, 2)]
    lines = []

    class Status:
        def line(self, msg):
            lines.append(msg)

    on = _progress(Status())
    for e in events:
        on(e)
    assert "wave 2 of 3: 2 lineage(s)" in lines
    one = []
    Solver(engine=ScriptedEngine(script), config=SearchConfig(n=6, waves=1)).solve("q", on_event=one.append)
    assert not [e for e in one if e["type"] == "wave"]  # one wave: nothing to tell
    pytest.importorskip("fastapi")
    from srca.service.cache import solution_dict
    from srca.service.reasoning import Narrator

    n = Narrator()
    sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(n=6, probe_at="step")).solve("q")
    text = "".join(n.feed(e) for e in events) + n.finish(solution_dict(sol))
    assert "Wave 1 of 3: 2 lineage(s)\n" in text and "Wave 2 of 3: 2 lineage(s): the vote is not clear yet" in text
    assert text.index("Wave 2") < text.index("  C: ") and "Decision: 8" in text


def test_replay_counts_the_critical_path_wave_by_wave():
    """The critical path (tokens decoded one after another) of 6 lineages in waves of 2 that never
    agree: every wave runs. Lineage L writes 2 + L % 4 steps: 19, 26, 33, 40, 19 and 26 tokens
    (steps of 7 characters, a boxed step of 12; the fake engine's tokens are characters)."""
    finals = ["1", "2", "3", "4", "5", "6"]
    steps = lambda L: 2 + L % 4  # noqa: E731
    eng = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", steps))
    rec = RecordSettings(samples=6, topk=0, verify=False, config=SearchConfig(prompt="math"))
    (line,) = asyncio.run(record_chunk(eng, [Problem(unique_id="p1", problem="q", answer="1")], rec))
    assert [s["tokens"] for s in line["samples"]] == [19, 26, 33, 40, 19, 26]
    pol = Policy(n=6, waves=3, confidence="none", keep_top=1.0)
    # whole lineages: each wave's longest sample, one after another: 26 + 40 + 26
    assert replay_lineages(line, list(range(6)), pol).critical_path == 92
    # a probe (3 tokens) after every step: per step its longest step, then its longest probe;
    # waves 1 and 3 (2 and 3 steps): 7+3, 12+3, 12; wave 2 (4 and 5 steps): 7+3, 7+3, 7+3, 12+3, 12
    stepwise = replay_lineages(line, list(range(6)), Policy(n=6, waves=3, confidence="none", keep_top=1.0,
                                                            probe_at="step"))
    assert stepwise.critical_path == 37 + 57 + 37
    assert replay_majority(line, list(range(6))).critical_path == 40  # its longest sample


def test_overlapping_waves_decide_the_same_and_abort_what_they_do_not_need():
    """wave_overlap: wave w + 1 starts once wave w has run 10 tokens (its first segment), each
    sample's rest continues its own tokens; the decisions are the waves' own, in order. When the
    first wave settles, the waves started after it are aborted (their tokens are counted); when
    every wave is needed, every sample is whole and the tokens are the same."""
    settles = ["7", "7", "8", "8", "8", "8"]
    plain, _, _ = solve(settles)
    sol, eng, _ = solve(settles, wave_overlap=10)
    assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason) == ("7", "consensus")
    assert [(c.source, c.answer) for c in sol.candidates] == [(c.source, c.answer) for c in plain.candidates]
    first = [(r.n, r.seed, r.max_new_tokens) for b in eng.calls for r in b if r.max_new_tokens == 10]
    assert (2, request_seed(0, 0, 1), 10) in first  # wave 2 started before wave 1 was decided
    assert eng.aborted == [eng.calls[0][0].group]  # and was aborted when it settled
    assert sol.usage.generated_tokens > plain.usage.generated_tokens
    for finals in (["1", "2", "3", "4", "5", "5"], ["7", "8", "8", "9", "8", "8"]):
        plain, _, _ = solve(finals)
        sol, eng, _ = solve(finals, wave_overlap=10)
        assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason)
        assert [(c.source, c.answer, c.score) for c in sol.candidates] == \
            [(c.source, c.answer, c.score) for c in plain.candidates]
    plain, _, _ = solve(["1", "2", "3", "4", "5", "5"])
    sol, eng, _ = solve(["1", "2", "3", "4", "5", "5"], wave_overlap=10)
    assert eng.aborted == [] and sol.usage.generated_tokens == plain.usage.generated_tokens == 156


def test_without_an_engine_that_aborts_the_waves_do_not_overlap():
    from srca.methods.lineage import overlap_of

    class NoAbort:  # the scripted engine without abort(group), as the OpenAI engine
        def __init__(self, inner):
            self.info, self.encode, self.decode = inner.info, inner.encode, inner.decode
            self.chat_prompt, self.generate, self.close = inner.chat_prompt, inner.generate, inner.close

    cfg = SearchConfig(method="srca", n=6, waves=3, wave_overlap=10)
    inner = ScriptedEngine(lineage_script(lambda L: "7", lambda L, k: "7", lambda L: 3, offsets=OFFSETS))
    assert overlap_of(cfg, inner, 3) == 10 and overlap_of(cfg, NoAbort(inner), 3) == 0
    assert overlap_of(cfg, inner, 1) == 0  # one wave: nothing to overlap
    assert overlap_of(SearchConfig(wave_overlap=1024, max_new_tokens=1024), inner, 3) == 0
    sol = Solver(engine=NoAbort(inner), config=cfg).solve("q")
    assert all(r.max_new_tokens != 10 for b in inner.calls for r in b) and sol.answer == "7"
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="wave_overlap"):
            SearchConfig(wave_overlap=bad)


def recorded_six(finals):
    """A bank line of 6 lineages of 19, 26, 33, 40, 19, 26 tokens (lineage ``L`` writes ``2 + L % 4``
    steps) boxing ``finals[L]``, recorded from the scripted engine, and the plain 3-wave policy."""
    eng = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", lambda L: 2 + L % 4))
    rec = RecordSettings(samples=6, topk=0, verify=False, config=SearchConfig(prompt="math"))
    (line,) = asyncio.run(record_chunk(eng, [Problem(unique_id="p1", problem="q", answer="1")], rec))
    return line, Policy(n=6, waves=3, confidence="none", keep_top=1.0)


def test_replay_models_overlapping_waves():
    """The 6 lineages above (19, 26, 33, 40, 19, 26 tokens), waves of 2, overlap 10: wave 2
    starts at 10, wave 3 at 20 (each wave's longest is longer than 10)."""
    for finals, want in ((["1", "2", "3", "4", "5", "6"], None), (["7", "7", "8", "8", "8", "8"], "7")):
        line, pol = recorded_six(finals)
        plain = replay_lineages(line, list(range(6)), pol)
        over = replay_lineages(line, list(range(6)), Policy(**{**pol.__dict__, "wave_overlap": 10}))
        assert (over.answer, over.stop) == (plain.answer, plain.stop)
        assert [(b.kind, b.answer) for b in over.ballots] == [(b.kind, b.answer) for b in plain.ballots]
        if want is None:  # every wave decided: the same tokens; ends 26, 10 + 40, 20 + 26
            assert (plain.critical_path, over.critical_path) == (92, 50)
            assert over.tokens == plain.tokens == 163
        else:  # wave 1 settles at 26: wave 2 ran 16 tokens of its two samples, wave 3 six
            assert plain.answer == want and (plain.critical_path, over.critical_path) == (26, 26)
            assert over.tokens == plain.tokens + 2 * 16 + 2 * 6


def test_replay_models_speculative_waves_on_an_idle_engine():
    """The 6 lineages of the test above (19, 26, 33, 40, 19, 26 tokens) with ``wave_speculate``:
    the first wave alone, the later ones together once it is decided (at 26). Every wave
    decided: waves 2 and 3 end at 26 + 40 and 26 + 26, the critical path 66 (92 one after
    another), no token extra. Wave 2 settles (3, 3 after 1, 2): wave 3 ran whole by then (19 +
    26, unused). Wave 1 settles: nothing else ever started."""
    cases = ((["1", "2", "3", "4", "5", "6"], 92, 66, 0), (["1", "2", "3", "3", "3", "3"], 66, 66, 19 + 26),
             (["7", "7", "8", "8", "8", "8"], 26, 26, 0))
    for finals, plain_crit, spec_crit, extra in cases:
        line, pol = recorded_six(finals)
        plain = replay_lineages(line, list(range(6)), pol)
        spec = replay_lineages(line, list(range(6)), Policy(**{**pol.__dict__, "wave_speculate": True}))
        assert (spec.answer, spec.stop) == (plain.answer, plain.stop)
        assert (plain.critical_path, spec.critical_path) == (plain_crit, spec_crit)
        assert spec.tokens == plain.tokens + extra
    assert Policy.from_config(SearchConfig(wave_speculate=True)).wave_speculate


def test_a_cancelled_solve_leaves_no_wave_running():
    finals = ["1", "2", "3", "4", "5", "5"]
    eng = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", lambda L: 3, offsets=OFFSETS),
                         latency_s=0.2)
    solver = Solver(engine=eng, config=SearchConfig(method="srca", n=6, waves=3, wave_overlap=10))

    # cancelled with wave 1's rest and wave 2's first tokens in flight
    assert cancel_mid_solve(solver, eng, calls=2) == []


def cancel_mid_solve(solver, eng, calls):
    """Start a solve, cancel it once the engine has seen ``calls`` calls; the tasks still running
    afterwards (none, when the cancel stopped everything the solve started)."""
    async def go():
        task = asyncio.ensure_future(solver.asolve("q"))
        for _ in range(500):
            if len(eng.calls) >= calls:
                break
            await asyncio.sleep(0.01)
        assert len(eng.calls) >= calls
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]

    return asyncio.run(go())


def solve_spec(finals, capacity, latency_s=0.0, **cfg):
    """``solve`` with ``wave_speculate`` on an engine that says it decodes ``capacity`` sequences
    together (None: says nothing); also returns the solver (its load) and the most sequences in
    flight at once."""
    from dataclasses import replace

    cfg = dict(dict(method="srca", n=6, waves=3, wave_min=2, wave_consensus=0.5, confidence="mean", keep_top=1.0,
                    wave_speculate=True), **cfg)
    eng = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", lambda L: 3, offsets=OFFSETS),
                         latency_s=latency_s)
    eng.info = replace(eng.info, concurrent_sequences=capacity)
    seen = count_in_flight(eng, sequences=True)
    solver = Solver(engine=eng, config=SearchConfig(**cfg))
    return solver.solve("q"), eng, solver, seen


def test_speculative_waves_decide_the_same_and_count_what_they_did_not_need():
    """wave_speculate: the first wave runs alone; once its vote is unclear the second and third
    go out together where the engine's batch has room, whole and with the seeds of the waves one
    after another, so the samples and decisions are the same. When the second wave settles the
    third is aborted and what it generated is counted, also as unused; a first wave that settles
    starts nothing else; when every wave is needed nothing is unused and the tokens are the same."""
    settles = ["7", "7", "8", "8", "8", "8"]
    plain, _, _ = solve(settles)
    sol, eng, solver, _ = solve_spec(settles, capacity=100)
    assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason) == ("7", "consensus")
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, 0))]] and eng.aborted == []
    assert sol.usage.unused_tokens == 0 and sol.usage.generated_tokens == plain.usage.generated_tokens
    second = ["1", "2", "3", "3", "8", "8"]  # 1, 2: unclear; 3, 3: settles
    plain, _, _ = solve(second)
    sol, eng, solver, seen = solve_spec(second, capacity=100)
    assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason) == ("3", "consensus")
    assert [(c.source, c.answer, c.score) for c in sol.candidates] == \
        [(c.source, c.answer, c.score) for c in plain.candidates]
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, w))] for w in range(3)]  # the third went with the second
    assert sol.usage.unused_tokens == 2 * 26  # lineages 4 and 5, three steps each, all generated here
    assert sol.usage.generated_tokens == plain.usage.generated_tokens + sol.usage.unused_tokens
    assert solver.load.in_flight == 0 and solver.load.reserved == 0
    from srca.commands.solve import render

    assert f"({sol.usage.probe_tokens} in probes, 52 by waves not needed)" in render(sol)
    assert "not needed" not in render(plain)
    every = ["1", "2", "3", "4", "5", "5"]
    plain, _, _ = solve(every)
    sol, eng, solver, _ = solve_spec(every, capacity=100)
    assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason)
    assert eng.aborted == [] and sol.usage.unused_tokens == 0
    assert sol.usage.generated_tokens == plain.usage.generated_tokens == 156


@pytest.mark.parametrize("finals,stop", [(["7", "8", "8", "8", "9", "9"], "consensus"),
                                         (["7", "7", "8", "8", "8", "8"], "finished")])
def test_overlapping_and_speculative_waves_stop_by_margin_as_the_plain_ones(finals, stop):
    # margin 1: 8, 8, 8 against 7 after wave 2 (a lead of 2, 2 to come) settles; 7, 7, 8, 8 does not
    plain, _, _ = solve(finals, wave_margin=1.0)
    assert plain.stop_reason == stop
    over, _, _ = solve(finals, wave_margin=1.0, wave_overlap=10)
    spec, _, _, _ = solve_spec(finals, capacity=100, wave_margin=1.0)
    for sol in (over, spec):
        assert (sol.answer, sol.stop_reason) == (plain.answer, plain.stop_reason)
        assert [(c.source, c.answer, c.score) for c in sol.candidates] == \
            [(c.source, c.answer, c.score) for c in plain.candidates]


def test_speculation_takes_only_the_room_the_engine_has():
    every = ["1", "2", "3", "4", "5", "5"]
    plain, plain_eng, _ = solve(every)
    # room for one more wave beside another: wave 1 alone, then waves 2 and 3 together
    sol, eng, solver, seen = solve_spec(every, capacity=4, latency_s=0.02)
    assert seen["most"] == 4 and sol.answer == plain.answer and solver.load.in_flight == 0
    assert sampling_calls(eng) == sampling_calls(plain_eng)  # the same requests, only earlier
    for capacity in (2, None):  # no room beside the first wave / an engine that does not say its batch
        sol, eng, solver, seen = solve_spec(every, capacity=capacity, latency_s=0.01)
        assert seen["most"] == 2 and sampling_calls(eng) == sampling_calls(plain_eng)
        assert sol.usage.generated_tokens == plain.usage.generated_tokens and solver.load.in_flight == 0
    with pytest.raises(ValueError, match="wave_speculate"):
        SearchConfig(wave_speculate=1)


def test_speculation_yields_to_solves_waiting_for_admission():
    """While an admission has solves waiting (``EngineLoad.waiting``) the room is theirs: the
    third wave waits for the second's vote as without speculation, and nothing is unused."""
    from dataclasses import replace

    second = ["1", "2", "3", "3", "8", "8"]
    eng = ScriptedEngine(lineage_script(lambda L: second[L], lambda L, k: f"{L}{k}", lambda L: 3, offsets=OFFSETS))
    eng.info = replace(eng.info, concurrent_sequences=100)
    solver = Solver(engine=eng, config=SearchConfig(method="srca", n=6, waves=3, wave_min=2, wave_consensus=0.5,
                                                    confidence="mean", keep_top=1.0, wave_speculate=True))
    solver.load.watch(lambda: None)  # as LoadSlots does while solves wait for room
    assert solver.load.waiting
    sol = solver.solve("q")
    assert sol.stop_reason == "consensus" and sol.usage.unused_tokens == 0
    assert sampling_calls(eng) == [[(2, request_seed(0, 0, w))] for w in range(2)]  # the third never went


def test_a_cancelled_speculating_solve_leaves_nothing_running_or_counted():
    finals = ["1", "2", "3", "4", "5", "5"]
    from dataclasses import replace

    eng = ScriptedEngine(lineage_script(lambda L: finals[L], lambda L, k: f"{L}{k}", lambda L: 3, offsets=OFFSETS),
                         latency_s=0.2)
    eng.info = replace(eng.info, concurrent_sequences=100)
    solver = Solver(engine=eng, config=SearchConfig(method="srca", n=6, waves=3, wave_speculate=True))

    # cancelled with the three waves in flight
    assert cancel_mid_solve(solver, eng, calls=3) == [] and solver.load.in_flight == 0
