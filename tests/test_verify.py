"""Self-verification probes (srca.methods.verify): the probe's input, the log-odds read from its
alternatives, the weight it gives a lineage's vote (exact winners on the scripted engine), and
the sample-bank replay agreeing with the online search token for token."""
import asyncio
import math

import pytest

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.eval.bank import Policy, RecordSettings, record_chunk, replay_lineages
from srca.eval.data import Problem
from srca.methods.verify import Verifier, log_odds, turn_suffix, verify_factor

from test_srca_lineage import lineage_script

Q = SearchConfig().verify_question
Y, N = ord("Y"), ord("N")


def test_log_odds_sums_each_word_and_floors_an_absent_one():
    yes, no = {1, 2}, {3}
    top = [(1, math.log(0.5)), (2, math.log(0.2)), (3, math.log(0.1)), (9, math.log(0.05))]
    assert log_odds(top, yes, no) == pytest.approx(math.log(0.7 / 0.1))
    assert log_odds([(1, -0.1), (9, -4.0)], yes, no) == pytest.approx(3.9)  # "no" unseen: at most the floor
    assert log_odds([(9, -0.1)], yes, no) is None  # neither word: no verdict
    assert verify_factor(None, 2.0) == 1.0 and verify_factor(0.0, 2.0) == pytest.approx(0.25)
    assert verify_factor(math.log(3), 1.0) == pytest.approx(0.75) and verify_factor(-5.0, 0) == 1.0


def test_the_probe_is_a_new_user_turn_after_the_path():
    eng = ScriptedEngine()
    assert turn_suffix(eng, Q) == f"</assistant><user>{Q}</user><assistant>"
    v = Verifier(eng, Q)
    assert v.yes == {Y, ord("y")} and v.no == {N, ord("n")}  # " Yes" and " No" share their first token: dropped
    prompt, path = eng.encode("<user>q</user><assistant>"), eng.encode("a \\boxed{7}")
    assert eng.decode(v.ids(prompt, path)) == f"<user>q</user><assistant>a \\boxed{{7}}</assistant><user>{Q}</user><assistant>"
    # a path that ended with the token the turn starts with (its end of turn) does not double it
    assert v.ids(prompt, path + eng.encode("<")) == v.ids(prompt, path)


def verify_script(finals, says, steps=lambda L: 2):
    """Lineage ``L`` boxes ``finals[L]``; asked to verify, it answers Yes with probability
    ``says[L]`` (the alternatives Y and N carry it)."""
    base = lineage_script(lambda L: finals[L], lambda L, k: "0", steps)

    def script(prompt, req, i):
        if prompt.endswith(f"<user>{Q}</user><assistant>"):
            L = int(prompt.split("<assistant>", 1)[1][1:].split(" ", 1)[0])
            p = says[L]
            return ("Y" if p >= 0.5 else "N", -0.1, [[(Y, math.log(p)), (N, math.log(1 - p))]])
        return base(prompt, req, i)

    return script


def run(script, **cfg):
    cfg.setdefault("waves", 1)
    eng = ScriptedEngine(script)
    return Solver(engine=eng, config=SearchConfig(method="srca", confidence="none", keep_top=1.0, **cfg)).solve("q"), eng


def test_verification_outvotes_a_plurality_the_model_rejects():
    finals, says = ["9", "9", "9", "7"], [0.1, 0.1, 0.1, 0.9]
    plain, eng0 = run(verify_script(finals, says), n=4)
    assert plain.answer == "9" and len(eng0.calls) == 1  # no probe without verify
    sol, eng = run(verify_script(finals, says), n=4, verify=2.0)
    # 3 x 0.1^2 = 0.03 against 0.9^2 = 0.81
    assert sol.answer == "7"
    verify_calls = [b for b in eng.calls if b[0].top_logprobs]
    assert [(len(b), b[0].max_new_tokens, b[0].temperature) for b in verify_calls] == [(4, 1, 0.0)]
    assert sol.usage.probe_tokens == 4
    assert [round(c.score, 4) for c in sol.candidates] == [0.01, 0.01, 0.01, 0.81]
    # a weak exponent keeps the plurality: 3 x 0.1^0.25 = 1.69 against 0.9^0.25 = 0.97
    weak, _ = run(verify_script(finals, says), n=4, verify=0.25)
    assert weak.answer == "9"


def test_only_finished_lineages_are_asked():
    # lineage 3 writes 40 steps: the 30-token limit cuts it, it votes its checkpoint unverified
    finals, says = ["9", "9", "9", "7"], [0.9, 0.9, 0.9, 0.9]
    sol, eng = run(verify_script(finals, says, steps=lambda L: 40 if L == 3 else 2), n=4, verify=1.0,
                   max_new_tokens=30)
    (vcall,) = [b for b in eng.calls if b[0].top_logprobs]
    assert len(vcall) == 3
    assert sorted(c.source for c in sol.candidates) == ["checkpoint", "path", "path", "path"]


@pytest.mark.parametrize("waves,max_new", [(1, 1024), (3, 1024), (1, 30), (3, 30)])
def test_replay_matches_the_online_search_with_verification(waves, max_new):
    finals = ["9", "9", "7", "9", "7", "7"]
    says = [0.2, 0.3, 0.95, 0.1, 0.6, 0.9]
    steps = lambda L: 2 + L % 4  # noqa: E731
    script = verify_script(finals, says, steps)
    cfg = dict(n=6, verify=1.0, waves=waves, max_new_tokens=max_new, confidence="mean", keep_top=1.0,
               checkpoint_weight=0.25)
    eng = ScriptedEngine(script)
    sol = Solver(engine=eng, config=SearchConfig(method="srca", **cfg)).solve("q")
    rec = RecordSettings(samples=6, topk=0, config=SearchConfig(prompt="math", max_new_tokens=max_new))
    (line,) = asyncio.run(record_chunk(ScriptedEngine(script), [Problem(unique_id="p1", problem="q", answer="7")], rec))
    assert [s.get("vf") is not None for s in line["samples"]] == [s["steps"][-1][1] == "path" for s in line["samples"]]
    out = replay_lineages(line, list(range(6)), Policy.from_config(SearchConfig.from_dict(sol.config)))
    assert (out.answer, out.stop) == (sol.answer, sol.stop_reason)
    assert out.tokens == sol.usage.generated_tokens and out.probe_tokens == sol.usage.probe_tokens
    assert [(b.kind, b.answer) for b in out.ballots] == [(c.source, c.answer) for c in sol.candidates]
    # the same weights (the bank keeps logprobs as float16)
    assert [b.confidence for b in out.ballots] == pytest.approx([c.score for c in sol.candidates], rel=1e-3)


def test_a_bank_without_verification_refuses_a_verify_policy():
    script = verify_script(["7"] * 4, [0.9] * 4)
    rec = RecordSettings(samples=4, topk=0, verify=False, config=SearchConfig(prompt="math"))
    (line,) = asyncio.run(record_chunk(ScriptedEngine(script), [Problem(unique_id="p", problem="q", answer="7")], rec))
    with pytest.raises(ValueError, match="verif"):
        replay_lineages(line, list(range(4)), Policy(n=4, verify=1.0, waves=1))


def test_verify_is_validated():
    with pytest.raises(ValueError, match="SearchConfig.verify"):
        SearchConfig(verify=-1)
    with pytest.raises(ValueError, match="SearchConfig.verify"):
        SearchConfig(verify=True)
    with pytest.raises(ValueError, match="verify_question"):
        SearchConfig(verify_question="")
