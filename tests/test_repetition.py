"""srca.methods.repetition: where a sample's own n-grams start repeating, exactly."""
from __future__ import annotations

import pytest

from srca.methods.repetition import LoopRule, loop_at, repeat_shares, seen_before


def test_seen_before_marks_repeated_ngrams_only():
    assert seen_before([1, 2, 3, 1, 2, 3, 1], 3) == [False, False, False, True, True]
    assert seen_before([5, 5, 5, 5], 2) == [False, True, True]  # overlapping occurrences count
    assert seen_before([1, 2], 3) == []


def test_a_loop_is_found_at_the_first_check_point_past_the_share():
    rule = LoopRule(n=4, window=32, share=0.9, every=16, start=64)
    head = list(range(100, 200))  # 100 distinct tokens: nothing repeats
    block = list(range(7, 17))    # then a 10-token block over and over
    ids = head + block * 10
    shares = dict(repeat_shares(ids, rule))
    assert list(shares) == list(range(64, len(ids) + 1, 16))
    assert [shares[p] for p in (64, 80, 96, 112)] == [0.0] * 4
    # at 128 the n-grams starting in [96, 125): those from 110 on (the block's second copy) were
    # written before, 15 of 29; at 144 all of [112, 141)
    assert shares[128] == pytest.approx(15 / 29) and shares[144] == 1.0
    assert loop_at(ids, rule) == 144
    assert loop_at(ids, LoopRule(n=4, window=32, share=0.5, every=16, start=64)) == 128
    assert loop_at(head + block, rule) is None


def test_long_text_without_repeats_is_never_a_loop():
    rule = LoopRule(n=8, window=128, share=0.5, every=32, start=256)
    assert loop_at(list(range(2000)), rule) is None
    assert repeat_shares(list(range(100)), rule) == []  # shorter than start: no check point


@pytest.mark.parametrize("kw, field", [({"n": 0}, "n"), ({"window": 8, "n": 8}, "window"),
                                       ({"start": 64, "window": 128}, "start"), ({"share": 0}, "share"),
                                       ({"share": 1.5}, "share"), ({"every": 2.5}, "every"), ({"n": True}, "n")])
def test_rule_fields_are_checked(kw, field):
    with pytest.raises(ValueError, match=f"LoopRule.{field}"):
        LoopRule(**kw)
