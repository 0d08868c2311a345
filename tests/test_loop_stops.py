"""srca's loop stops (SearchConfig.loop_share): a lineage repeating itself after loop_after tokens
is not continued, exactly where the rule says; the others run on as before."""
from __future__ import annotations

import pytest

from srca import Solver
from srca.commands.solve import render
from srca.config import SearchConfig
from srca.engines.fake import ScriptedEngine
from srca.eval.data import Problem
from srca.eval.records import make_record
from srca.repetition import LoopRule, loop_at, rule_for

DISTINCT = "".join(chr(0x4E00 + k) for k in range(300))  # the engine's tokens are characters
LOOP = DISTINCT[:40] + "abcdefghij" * 60  # repeats itself from token 40 on, past the 400-token limit
LONG = DISTINCT + " The answer is \\boxed{7}."  # long, never repeating
SHORT = "The answer is \\boxed{7}."


def script(prompt, req, i):
    if req.temperature == 0:  # a checkpoint probe
        return "7}"
    if req.n == 3:  # the wave's three samples
        return [LOOP, LONG, SHORT][i]
    for text in (LOOP, LONG):  # a continuation of one of them: the rest of its text
        if prompt.endswith(text[:128]):
            return text[128:]
    raise AssertionError(f"unexpected request: {prompt[-40:]!r}")


def run(script=script, events=None, loop_stops=False, **cfg):
    eng = ScriptedEngine(script, loop_stops=loop_stops)
    config = SearchConfig(method="srca", n=3, waves=1, max_new_tokens=400, confidence="mean", keep_top=1.0, **cfg)
    return Solver(engine=eng, config=config).solve("q", on_event=None if events is None else events.append), eng


def sampled(eng):
    return [[(r.n, r.max_new_tokens) for r in b] for b in eng.calls if b[0].temperature > 0]


def test_a_looping_lineage_is_stopped_at_loop_after_and_the_others_run_on():
    # at 128 tokens the 8-grams starting in [0, 121) repeat from 50 on: 71 of 121 (0.59)
    assert loop_at([ord(c) for c in LOOP[:128]], LoopRule(share=0.5, start=128, every=400)) == 128
    assert loop_at([ord(c) for c in LOOP[:128]], LoopRule(share=0.6, start=128, every=400)) is None
    events = []
    sol, eng = run(events=events, loop_share=0.5, loop_after=128)
    assert sampled(eng) == [[(3, 128)], [(1, 400 - 128)]]  # only LONG is continued
    assert sol.usage.loop_stops == 1 and sol.answer == "7"
    plain, peng = run()
    assert sampled(peng) == [[(3, 400)]] and plain.usage.loop_stops == 0
    # the stopped lineage spent 128 tokens where it ran to the 400-token limit and then had its
    # 2-token probe before; it ends without an answer: no probe, no ballot
    assert sol.usage.probe_tokens == 0 and plain.usage.probe_tokens == 2
    assert plain.usage.generated_tokens - sol.usage.generated_tokens == 400 - 128 + 2
    assert sorted(c.source for c in plain.candidates) == ["checkpoint", "path", "path"]
    assert sorted(c.source for c in sol.candidates) == ["path", "path"]
    assert sol.stop_reason == plain.stop_reason == "finished"
    ends = [e for ev in events if ev["type"] == "select" for e in ev["ended"]]
    assert sorted(e["kind"] for e in ends) == ["loop", "path", "path"]
    rec = make_record(Problem(unique_id="p", problem="q", answer="7"), "srca", 3, sol, seed=0)
    assert rec["usage"]["loop_stops"] == 1 and rec["correct"]
    assert "(0 in probes; 1 sample stopped as a loop)" in render(sol) and "loop" not in render(plain)


def test_an_engine_that_stops_loops_itself_gets_the_rule_in_one_request_and_stops_the_same_samples():
    # EngineInfo.loop_stops: no split, no continuation; the engine ends LOOP at the rule's point
    # and the solve files it as the split did: same tokens, ballots, candidates and answer
    split, _ = run(loop_share=0.5, loop_after=128)
    sol, eng = run(loop_stops=True, loop_share=0.5, loop_after=128)
    assert sampled(eng) == [[(3, 400)]]
    (req,) = eng.calls[0]
    assert req.loop_stop == rule_for(SearchConfig(loop_share=0.5, loop_after=128, max_new_tokens=400))
    assert [(r.finish_reason, len(r.token_ids)) for r in eng.results[0][0]] == \
        [("loop", 128), ("stop", len(LONG)), ("stop", len(SHORT))]
    assert sol.usage.loop_stops == split.usage.loop_stops == 1
    assert sol.usage.generated_tokens == split.usage.generated_tokens and sol.usage.probe_tokens == 0
    assert sorted(c.source for c in sol.candidates) == sorted(c.source for c in split.candidates) == ["path", "path"]
    assert sol.answer == split.answer == "7" and sol.stop_reason == "finished"
    # off, the rule goes to no engine
    plain, peng = run(loop_stops=True)
    assert peng.calls[0][0].loop_stop is None and plain.usage.loop_stops == 0


def test_a_solve_whose_every_sample_loops_has_no_answer_and_ran_out_of_nothing():
    def loops(prompt, req, i):
        assert req.temperature > 0 and req.n == 3, "a stopped lineage is neither probed nor continued"
        return LOOP
    sol, eng = run(loops, loop_share=0.5, loop_after=128)
    assert sampled(eng) == [[(3, 128)]] and sol.usage.loop_stops == 3
    assert sol.answer is None and sol.candidates == [] and sol.usage.generated_tokens == 3 * 128
    assert sol.stop_reason == "finished"  # not max_steps: no lineage was left open
    rec = make_record(Problem(unique_id="p", problem="q", answer="7"), "srca", 3, sol, seed=0)
    assert rec["usage"]["loop_stops"] == 3 and not rec["correct"]
    assert "3 samples stopped as loops" in render(sol)


def test_a_share_the_sample_does_not_reach_stops_nothing():
    sol, eng = run(loop_share=0.6, loop_after=128)
    assert sampled(eng) == [[(3, 128)], [(1, 272), (1, 272)]]  # both long samples continued
    assert sol.usage.loop_stops == 0
    plain, _ = run()
    assert sol.usage.generated_tokens == plain.usage.generated_tokens and sol.answer == plain.answer


def test_off_by_default_and_past_the_limit():
    assert rule_for(SearchConfig()) is None
    assert rule_for(SearchConfig(loop_share=0.8)) == LoopRule(share=0.8, start=512, every=1024)
    sol, eng = run(loop_share=0.5, loop_after=400)  # the limit comes first: one call, as without
    assert sampled(eng) == [[(3, 400)]] and sol.usage.loop_stops == 0


@pytest.mark.parametrize("kw, field", [({"loop_share": -0.1}, "loop_share"), ({"loop_share": 1.5}, "loop_share"),
                                       ({"loop_share": True}, "loop_share"), ({"loop_after": 64}, "loop_after"),
                                       ({"loop_after": 512.0}, "loop_after"),
                                       ({"loop_share": 0.8, "wave_overlap": 64}, "loop_share")])
def test_the_fields_are_checked(kw, field):
    with pytest.raises(ValueError, match=f"SearchConfig.{field}"):
        SearchConfig(**kw)
