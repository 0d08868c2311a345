"""srca.repetition: where a sample's own n-grams start repeating, exactly."""
from __future__ import annotations

import pytest

import random

from srca.repetition import LoopRule, loop_at, repeat_shares, seen_before, stops_here


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


def test_an_engine_checking_every_token_stops_where_loop_at_says():
    # stops_here is what an engine that stops samples itself asks after each token: its first
    # True must be loop_at's point on the whole sample, for any tokens
    rng = random.Random(3)
    rules = [LoopRule(n=4, window=32, share=0.5, every=16, start=64), LoopRule(n=2, window=8, share=0.3, every=1, start=8),
             LoopRule(n=3, window=16, share=1.0, every=5, start=20)]
    samples = [list(range(100, 200)) + list(range(7, 17)) * 10]
    samples += [[rng.randrange(k) for _ in range(300)] for k in (4, 12, 60, 1000)]
    for ids in samples:
        for rule in rules:
            first = next((p for p in range(1, len(ids) + 1) if stops_here(ids[:p], rule)), None)
            assert first == loop_at(ids, rule)
    assert loop_at(samples[0], rules[0]) == 128 and stops_here(samples[0][:128], rules[0])
    assert not stops_here(samples[0][:127], rules[0]) and not stops_here(samples[0][:112], rules[0])


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
