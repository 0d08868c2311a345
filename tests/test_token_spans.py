"""Token-to-character offsets computed once (srca.engines.token_spans), on a real tokenizer
(SmolLM2's byte-level BPE) and text with multi-byte characters, and the helpers that use them:
the answer's token span, the probe answer's token prefix, CoT-decoding's branch text and the
sample bank's steps. Per-token decoding turns a token holding part of a character into U+FFFD
and drifts; the offsets must match the decoded text exactly."""
from __future__ import annotations

import asyncio

import pytest

from srca import SearchConfig
from srca.eval.data import Problem
from srca.engines.base import GenResult
from srca.engines.fake import ScriptedEngine
from srca.engines.token_spans import TokenSpans, token_spans
from srca.eval.bank import RecordSettings, record_chunk
from srca.methods.context import SearchContext
from srca.methods.cot_decoding import _branch_text

TEXT = "角度 x = √2 × π ≈ 4.44, 答案是 √2π 😀\n\nSo the answer is \\boxed{√2π}"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from srca.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m")))


class RealTokens(ScriptedEngine):
    """The scripted engine with a real tokenizer's tokens."""

    def __init__(self, tok, script=None) -> None:
        super().__init__(script)
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)


def old_ends(decode, ids) -> list[int]:
    """The per-token way this replaces: cumulative ``len(decode([t]))``."""
    out, end = [], 0
    for t in ids:
        end += len(decode([t]))
        out.append(end)
    return out


def test_offsets_match_the_decoded_text_where_per_token_decoding_drifts(tok):
    ids = tok.encode(TEXT, add_special_tokens=False)
    pieces = [tok.decode([t]) for t in ids]
    assert any(p.endswith("\ufffd") for p in pieces)  # the tokenizer does split characters
    assert old_ends(tok.decode, ids)[-1] > len(TEXT)  # so per-token lengths overshoot and drift

    sp = token_spans(tok, ids)
    assert sp.text == tok.decode(ids) == TEXT and sp.ends[-1] == len(TEXT)
    assert "".join(sp.text_of(i, i + 1) for i in range(len(ids))) == TEXT
    for i in range(len(ids)):  # through every token, the characters complete so far, exactly
        prefix = tok.decode(ids[:i + 1])
        assert sp.open[i] == prefix.endswith("\ufffd")
        assert TEXT[:sp.ends[i]] == prefix.rstrip("\ufffd")
    assert all(a <= b for a, b in zip(sp.ends, sp.ends[1:]))


def test_long_sequences_and_an_engine_as_decoder(tok):
    text = (TEXT + "\n\n") * 12  # several windows of the incremental decoding
    eng = RealTokens(tok)
    ids = eng.encode(text)
    assert len(ids) > 200
    sp = token_spans(eng, ids)
    assert sp.text == text and sp == token_spans(tok, ids)
    for i in range(0, len(ids), 7):
        assert text[:sp.ends[i]] == tok.decode(ids[:i + 1]).rstrip("\ufffd")
    assert token_spans(tok, []) == TokenSpans("", (), ())
    with pytest.raises(TypeError, match="decode"):
        token_spans(object(), ids)


def test_span_helpers():
    # tokens: "a" | "" (starts the character "π") | "π" (completes it) | "b"
    sp = TokenSpans("aπb", (1, 1, 2, 3), (False, True, False, False))
    assert list(sp.touching(1, 2)) == [1, 2]  # both tokens holding bytes of "π"
    assert list(sp.touching(0, 1)) == [0]
    assert list(sp.touching(2, 3)) == [3]
    assert list(sp.touching(0, 3)) == [0, 1, 2, 3]
    assert list(sp.touching(3, 4)) == []
    # "a" and the start of "π" in one token: it touches both characters
    sp2 = TokenSpans("aπb", (1, 2, 3), (True, False, False))
    assert list(sp2.touching(1, 2)) == [0, 1] and list(sp2.touching(0, 1)) == [0]
    assert sp.through(0) == 1 and sp.through(2) == 3 and sp.through(9) == 4
    assert sp.text_of(1, 3) == "π" and sp.text_of(0, 0) == "" and sp.text_of(1, 2) == ""


def context(tok) -> SearchContext:
    from srca.scorers import SelfConfidenceScorer

    return SearchContext("q", SearchConfig(), RealTokens(tok), SelfConfidenceScorer())


def test_answer_span_logprobs_are_the_answers_own_tokens(tok):
    ctx = context(tok)
    ids = tok.encode(TEXT, add_special_tokens=False)
    node = ctx.new_node(ctx.root, text=TEXT, ids=ids, logprobs=[float(i) for i in range(len(ids))])
    picked = [int(i) for i in ctx.answer_span_logprobs(node, "√2π")]  # logprob i marks token i
    assert tok.decode([ids[i] for i in picked]) == "√2π"  # exactly the tokens spelling it
    # the per-token way lands on other tokens: its offsets ran past the text before the answer
    pos, old = TEXT.rfind("√2π"), old_ends(tok.decode, ids)
    assert tok.decode([ids[picked[0]]]).endswith("\ufffd")  # the token with the first byte of √ counts
    old_picked = [i for i in range(len(ids)) if old[i] > pos and (old[i - 1] if i else 0) < pos + 3]
    assert old_picked != picked and tok.decode([ids[i] for i in old_picked]) != "√2π"


def test_probe_answer_prefix_covers_the_whole_answer(tok):
    ctx = context(tok)
    ids = tok.encode("√2π}\n", add_special_tokens=False)
    r = GenResult(text="√2π}\n", token_ids=ids, finish_reason="stop", logprobs=[-0.5] * len(ids))
    k = len(ctx._prefix_logprobs(r, len("√2π")))
    assert tok.decode(ids[:k]) == "√2π"  # every token of the answer, nothing after it
    assert old_ends(tok.decode, ids).index(3) + 1 < k  # per token, two halves of √ counted as 2 chars


def test_cot_decoding_branch_text_completes_a_split_first_character(tok):
    eng = RealTokens(tok)
    ids = eng.encode("√2 is irrational, so \\boxed{√2}")
    rest = eng.decode(ids[1:])  # the continuation's own text starts with U+FFFD
    assert rest.startswith("\ufffd") and eng.decode(ids[:1]) + rest != "√2 is irrational, so \\boxed{√2}"
    text, sp = _branch_text(eng, ids, rest)
    assert text == sp.text == "√2 is irrational, so \\boxed{√2}"
    ids = eng.encode("x = √2")  # a whole first token: the text is the token's, then the rest
    assert _branch_text(eng, ids, eng.decode(ids[1:]))[0] == "x = √2"
    ids = eng.encode(" √2")  # the first token is " " and the start of √
    assert eng.decode(ids[:1]) == " \ufffd" and _branch_text(eng, ids, eng.decode(ids[1:]))[0] == " √2"


def test_bank_records_multibyte_answers_and_steps(tok):
    path = "角度 x = √2 × π\n\n所以 \\boxed{√2π}"

    def script(prompt, req, i):
        body = prompt.split("<assistant>", 1)[1]
        if body.endswith("\\boxed{"):
            return "√2}\n"  # the probe after step 1
        return path[len(body):]

    eng = RealTokens(tok, script)
    prob = Problem(unique_id="p", problem="q", answer="√2π")
    s = RecordSettings(samples=1, topk=0, config=SearchConfig(prompt="math"))
    (line,) = asyncio.run(record_chunk(eng, [prob], s))
    (sample,) = line["samples"]
    steps = sample["steps"]
    assert [st[1:3] for st in steps] == [["", "√2"], ["path", "√2π"]]  # per token: a U+FFFD-garbled answer
    ids = eng.encode(path)
    assert steps[0][0] + steps[1][0] == sample["tokens"] == len(ids)
    assert eng.decode(ids[:steps[0][0]]) == "角度 x = √2 × π\n\n"  # the step ends after its delimiter
    assert sample["answer"] == "√2π"



@pytest.mark.parametrize("text", ["Let x = 3.\n\nThen 2x + 1 = 7, so \\boxed{7}.", TEXT, "√2 then ascii", "ascii then √"])
def test_fast_path_gives_the_incremental_spans(tok, text):
    """Whole-character pieces that add up to the text take the fast path (one decode per
    distinct token, memoized); any split character falls back to the incremental decoding.
    Both give the same spans."""
    from srca.engines.token_spans import _incremental, _piecewise

    ids = tok.encode(text, add_special_tokens=False)
    memo: dict[int, str] = {}
    fast = _piecewise(tok, ids, memo)
    assert (fast is not None) == text.isascii()
    assert set(memo) == set(ids)
    assert token_spans(tok, ids, memo) == _incremental(tok, ids)


def test_every_call_on_one_decoder_shares_its_piece_memo():
    """The per-token pieces are decoded once per decoder, not once per sequence: an engine that
    spans thousands of samples decodes each token alone once (shared_pieces)."""
    from srca.engines.token_spans import shared_pieces

    class Counting:
        def __init__(self):
            self.single = 0

        def decode(self, ids):
            self.single += len(ids) == 1
            return "".join(chr(97 + i % 26) for i in ids)

    a, b = Counting(), Counting()
    for _ in range(3):
        assert token_spans(a, [1, 2, 3, 2, 1]).text == "bcdcb"
    assert a.single == 3 and set(shared_pieces(a)) == {1, 2, 3}
    token_spans(b, [1, 4])
    assert b.single == 2 and set(shared_pieces(b)) == {1, 4}  # its own memo
    own: dict[int, str] = {}
    token_spans(a, [5], own)  # a memo given is the one used
    assert set(own) == {5} and 5 not in shared_pieces(a)
