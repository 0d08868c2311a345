"""Loop stops inside SGLang (``SGLangEngine(loop_stops=True)``), the parts that need no SGLang:
the custom logit processor's body forces EOS exactly where the rule fires, and ``to_result``
reports such a sample as ``finish_reason="loop"`` without the forced token."""
from __future__ import annotations

import pytest
import torch

from srca.engines.base import GenRequest
from srca.engines.sglang_common import LOOP_KEY, force_loop_stops, loop_params, to_result
from srca.repetition import LoopRule, loop_at

EOS = 9
RULE = LoopRule(n=2, window=8, share=0.5, every=4, start=8)
LOOPING = [1, 2, 3, 4, 5, 6, 7, 8] + [1, 2, 3, 4] * 3  # repeats from token 8 on
PLAIN = list(range(100, 124))


class Req:  # what SGLang's scheduler puts in custom_params["__req__"]: the sample's tokens so far
    def __init__(self, output_ids):
        self.output_ids = output_ids


def test_the_processor_forces_eos_where_the_rule_fires_and_nowhere_else():
    p = loop_at(LOOPING, RULE)
    assert p == 16  # the first check point with half of the window's bigrams seen before
    params = loop_params(RULE, EOS)
    assert params == {LOOP_KEY: [2, 8, 0.5, 4, 8], "eos": EOS}
    # one decode step per length: the rows of a batch (the looping sample, a plain one, a
    # request without the processor's params) at every length up to the looping one's end
    first = None
    for length in range(1, len(LOOPING) + 1):
        logits = torch.randn(3, 12)
        before = logits.clone()
        rows = [{**params, "__req__": Req(LOOPING[:length])}, {**params, "__req__": Req(PLAIN[:length])}, None]
        out = force_loop_stops(logits, rows)
        forced = [bool(torch.isinf(out[i]).sum() == 11 and out[i, EOS] == 0) for i in range(3)]
        assert forced[1:] == [False, False] and torch.equal(out[1:], before[1:])
        if forced[0]:
            first = length if first is None else first
        else:
            assert torch.equal(out[0], before[0])
    assert first == p  # the sample ends there (later lengths never come)
    # sampled from the forced row, the next token is EOS whatever the temperature
    probs = torch.softmax(force_loop_stops(torch.randn(1, 12), [{**params, "__req__": Req(LOOPING[:p])}]) / 0.7, -1)
    assert torch.multinomial(probs, 1).item() == EOS


def out(ids, finish):
    return {"output_ids": ids, "text": "".join(chr(65 + i) for i in ids),
            "meta_info": {"finish_reason": finish, "prompt_tokens": 3, "cached_tokens": 1,
                          "output_token_logprobs": [(-0.5, t, None) for t in ids]}}


def decode(ids):
    return "".join(chr(65 + i) for i in ids)


def test_a_forced_eos_is_reported_as_a_loop_stop_and_a_natural_end_is_not():
    req = GenRequest(input_ids=[0], max_new_tokens=40, loop_stop=RULE)
    p = loop_at(LOOPING, RULE)
    g = to_result(out(LOOPING[:p] + [EOS], {"type": "stop", "matched": EOS}), req, decode=decode, loops=True)
    assert (g.finish_reason, g.token_ids, g.text, g.generated_tokens) == ("loop", LOOPING[:p], decode(LOOPING[:p]), p)
    assert g.logprobs == [-0.5] * p and g.stop_str is None and (g.prompt_tokens, g.cached_tokens) == (3, 1)
    # one token late (SGLang's overlap scheduler may run the processor before the last token
    # reached output_ids): the same loop stop, cut at the rule's point
    late = to_result(out(LOOPING[:p + 1] + [EOS], {"type": "stop", "matched": EOS}), req, decode=decode, loops=True)
    assert (late.finish_reason, late.token_ids, late.logprobs) == ("loop", LOOPING[:p], [-0.5] * p)
    # an EOS anywhere else, a length end, an engine without the processor, a request without
    # the rule: ordinary results
    early = to_result(out(LOOPING[:p - 1] + [EOS], {"type": "stop", "matched": EOS}), req, decode=decode, loops=True)
    assert early.finish_reason == "stop" and early.token_ids == LOOPING[:p - 1] + [EOS]
    later = to_result(out(LOOPING[:p + 2] + [EOS], {"type": "stop", "matched": EOS}), req, decode=decode, loops=True)
    assert later.finish_reason == "stop" and len(later.token_ids) == p + 3
    cut = to_result(out(LOOPING, {"type": "length", "length": 20}), req, decode=decode, loops=True)
    assert cut.finish_reason == "length"
    off = to_result(out(LOOPING[:p] + [EOS], {"type": "stop", "matched": EOS}), req, decode=decode)
    assert off.finish_reason == "stop"
    plain = GenRequest(input_ids=[0], max_new_tokens=40)
    assert to_result(out(LOOPING[:p] + [EOS], {"type": "stop", "matched": EOS}), plain, decode=decode,
                     loops=True).finish_reason == "stop"


def test_the_engine_option_is_checked_before_sglang_is_needed():
    from srca.engines.sglang_inproc import SGLangEngine

    with pytest.raises(TypeError, match="loop_stops"):
        SGLangEngine("m", loop_stops="yes")
    with pytest.raises(ValueError, match="loop_stops: not with ignore_eos"):
        SGLangEngine("m", loop_stops=True, ignore_eos=True)
