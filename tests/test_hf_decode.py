"""srca.engines.hf_decode: the engines' decode through the Rust tokenizer gives exactly what the
Hugging Face tokenizer's own decode gives (the real Qwen2.5 tokenizer of the default model)."""
from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from srca.models import DEFAULT_MODEL, resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL))


def test_same_text_as_the_tokenizers_decode(tok):
    from srca.engines.hf_decode import hf_decoder

    fast = hf_decoder(tok)
    assert fast.__name__ == "decode"  # Qwen2.5's fast tokenizer keeps its spaces: the Rust path
    text = ("Step 1: $\\sqrt{2} \\approx 1.414$, so √2 ≈ 1.41.\n\n读者 ok\n\nThe answer is "
            "$\\boxed{\\frac{\\pi}{2}}$.<|im_end|>")
    ids = tok.encode(text, add_special_tokens=False)
    rng = random.Random(0)
    cases = [ids, ids[:1], [], ids[3:17]] + [ids[a:a + rng.randint(1, 9)] for a in range(len(ids))]
    cases += [[rng.randrange(len(tok)) for _ in range(rng.randint(1, 30))] for _ in range(200)]  # any ids, split characters too
    for c in cases:
        want = tok.decode(c, skip_special_tokens=False)
        assert fast(c) == want
        assert fast(tuple(c)) == want  # any sequence of ints


def test_a_tokenizer_that_decodes_its_own_way_keeps_its_decode(tok):
    from transformers import AutoTokenizer

    from srca.engines.hf_decode import hf_decoder
    from srca.models import DEFAULT_MODEL, resolve_model

    class Own(type(tok)):  # a class with its own decoding (as some models' tokenizers have)
        def _decode(self, token_ids, **kw):
            return "own:" + super()._decode(token_ids, **kw)

    own = Own.from_pretrained(resolve_model(DEFAULT_MODEL))
    assert hf_decoder(own)([40, 1079]) == "own:" + tok.decode([40, 1079])
    cleaning = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL), clean_up_tokenization_spaces=True)
    assert hf_decoder(cleaning).__name__ == "slow"  # it cleans up spaces: its own decode
