"""Stop strings sent as token ids (SGLang's ``stop_token_ids``) and the cut every SGLang result
gets after its first stop string, however the server stopped; and logprobs asked only when read."""
from __future__ import annotations

import asyncio

import pytest

from srca import SearchConfig, Solver
from srca.engines.base import GenRequest
from srca.engines.fake import ScriptedEngine
from srca.engines.sglang_common import StopTokens, first_stop, sampling_params, to_result, tokens_to_stop

VOCAB = ["a", "b", "\n", "\n\n", ".\n\n", "x}", "}\n", "}", "$", "ab"]


class VocabTokenizer:
    """Token ``i`` is ``VOCAB[i]``."""

    def __len__(self) -> int:
        return len(VOCAB)

    def decode(self, ids, skip_special_tokens=False) -> str:
        return "".join(VOCAB[i] for i in ids)

    def batch_decode(self, seqs, skip_special_tokens=False) -> list[str]:
        return [self.decode(s) for s in seqs]


TOK = VocabTokenizer()


def ids_of(*pieces: str) -> list[int]:
    return [VOCAB.index(p) for p in pieces]


def out(ids, finish, lp=True) -> dict:
    meta = {"finish_reason": finish, "prompt_tokens": 5, "cached_tokens": 2, "completion_tokens": len(ids)}
    if lp:
        meta["output_token_logprobs"] = [[-0.1 * (k + 1), t, None] for k, t in enumerate(ids)]
    return {"text": TOK.decode(ids), "output_ids": ids, "meta_info": meta}


def test_stop_token_ids_are_the_tokens_containing_a_stop():
    st = StopTokens(TOK)
    assert st.ids(["\n\n"]) == ids_of("\n\n", ".\n\n")
    assert st.ids(["}\n", "$"]) == ids_of("}\n", "$")
    assert st.ids(["never"]) == []
    assert st.ids(("$", "}\n")) is st.ids(["}\n", "$"])  # cached per set of strings


def test_sampling_params_send_ids_instead_of_strings():
    st = StopTokens(TOK)
    req = GenRequest(input_ids=[0], stop=("\n\n",))
    p = sampling_params(req, 0, stop_tokens=st)
    assert p["stop_token_ids"] == ids_of("\n\n", ".\n\n") and "stop" not in p
    assert sampling_params(req, 0)["stop"] == ["\n\n"]  # string mode
    p = sampling_params(GenRequest(input_ids=[0], stop=("never",)), 0, stop_tokens=st)
    assert "stop_token_ids" not in p and "stop" not in p  # only a cross-token match could stop it


def test_token_match_gives_the_stop_string():
    ids = ids_of("a", "b", ".\n\n")
    g = to_result(out(ids, {"type": "stop", "matched": ids[-1]}), GenRequest(input_ids=[0], stop=("\n\n",)),
                  decode=TOK.decode)
    assert g.finish_reason == "stop" and g.stop_str == "\n\n" and not g.hit_eos
    assert g.text == "ab.\n\n" and g.token_ids == ids and len(g.logprobs) == 3


def test_server_ran_past_a_stop_spread_over_tokens():
    # "}" then "\n" spells the stop "}\n" across two tokens; the server went on to max tokens
    ids = ids_of("a", "}", "\n", "b", "b")
    g = to_result(out(ids, {"type": "length", "length": 5}), GenRequest(input_ids=[0], stop=("}\n",)),
                  decode=TOK.decode)
    assert g.finish_reason == "stop" and g.stop_str == "}\n"
    assert g.token_ids == ids_of("a", "}", "\n") and g.text == "a}\n"
    assert g.logprobs == pytest.approx([-0.1, -0.2, -0.3]) and g.generated_tokens == 3


def test_earliest_completed_stop_wins_and_text_is_cut_inside_the_last_token():
    ids = ids_of("a", "x}", "$", "\n\n")
    g = to_result(out(ids, {"type": "stop", "matched": ids[-1]}), GenRequest(input_ids=[0], stop=("\n\n", "}$")),
                  decode=TOK.decode)
    assert g.stop_str == "}$" and g.text == "ax}$" and g.token_ids == ids_of("a", "x}", "$")
    # a stop string that ends inside the last token: the token stays, the text is cut after it
    ids = ids_of("a", "}\n")
    g = to_result(out(ids, {"type": "stop", "matched": "}"}), GenRequest(input_ids=[0], stop=("}",)),
                  decode=TOK.decode)
    assert g.text == "a}" and g.token_ids == ids and g.stop_str == "}"


def test_no_stop_string_leaves_the_result_alone():
    ids = ids_of("a", "b")
    g = to_result(out(ids, {"type": "stop", "matched": 0}), GenRequest(input_ids=[0], stop=("\n\n",)),
                  decode=TOK.decode)
    assert g.finish_reason == "stop" and g.stop_str is None and g.hit_eos and g.token_ids == ids
    g = to_result(out(ids, {"type": "length", "length": 2}, lp=False), GenRequest(input_ids=[0], stop=("z",)))
    assert g.finish_reason == "length" and g.text == "ab" and g.logprobs == []


def test_helpers():
    assert first_stop("ab}\n\n", ["\n\n", "}\n"]) == (4, "}\n")
    assert first_stop("abc", ["d"]) is None
    ids = ids_of("a", "b", "\n", "\n", "a", "a")
    assert tokens_to_stop(ids, ["\n\n"], TOK.decode) == 4
    assert tokens_to_stop(ids[:4], ["\n\n"], TOK.decode) == 4
    assert tokens_to_stop([], ["\n\n"], TOK.decode) == 0


# -- token logprobs only when something reads them ----------------------------------------------

class NoLogprobScorer:
    name = "textual"
    uses_logprobs = False

    async def score(self, items):
        return [0.5 for _ in items]


@pytest.mark.parametrize("method,scorer,want", [
    ("majority", "self_confidence", False), ("cot", "self_confidence", False),
    ("best_of_n", "self_confidence", True), ("srca", "self_confidence", True), ("srca", "textual", False),
    ("beam", "textual", False),
])
def test_logprobs_requested_only_when_read(method, scorer, want):
    # srca here is the paper's tree (lineages=False), which scores with the scorer; the lineage
    # default reads token confidences itself: see test_srca_lineage.py
    eng = ScriptedEngine(lambda p, r, i: "So the answer is \\boxed{4}." if "Step one." in p else "Step one.\n\nSo the answer is \\boxed{4}.")
    cfg = SearchConfig(method=method, n=2, beam_width=2, expand=1, max_steps=2, lineages=False)
    solver = Solver(engine=eng, config=cfg, scorer=NoLogprobScorer() if scorer == "textual" else scorer)
    sol = solver.solve("What is 2+2?")
    assert sol.answer == "4"
    assert {r.logprobs for batch in eng.calls for r in batch} == {want}
