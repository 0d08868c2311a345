import pytest

from srca import SearchConfig


def test_defaults_are_valid_and_tree_shape_derives_from_n():
    c = SearchConfig()
    assert c.method == "srca" and c.step_delimiter == "\n\n"
    assert SearchConfig(n=4).tree_shape == (2, 2)
    assert SearchConfig(n=16).tree_shape == (4, 4)
    assert SearchConfig(n=8).tree_shape == (4, 2)
    assert SearchConfig(n=7).tree_shape == (7, 1)
    assert SearchConfig(n=16, beam_width=8).tree_shape == (8, 2)
    assert SearchConfig(n=16, expand=8).tree_shape == (2, 8)


@pytest.mark.parametrize("field,value", [
    ("method", "nope"), ("n", 0), ("n", -3), ("n", 2.5), ("n", True), ("n", 10**6), ("temperature", -0.1),
    ("temperature", float("nan")), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1), ("max_step_tokens", 0),
    ("max_steps", 0), ("probe_max_tokens", 0), ("aggregation", "median"), ("decision", "random"),
    ("step_delimiter", ""), ("checkpoint_cue", ""), ("acs", "yes"), ("seed", -1), ("scorer", "oracle"),
    ("beam_width", 3), ("expand", 0), ("max_tokens_total", 0), ("deadline_s", 0), ("deadline_s", "soon"), ("deadline_s", float("inf")),
])
def test_invalid_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"SearchConfig\.{field}"):
        SearchConfig(**{field: value})


def test_beam_width_times_expand_must_equal_n():
    with pytest.raises(ValueError, match="beam_width"):
        SearchConfig(n=8, beam_width=2, expand=2)
    assert SearchConfig(n=8, beam_width=2, expand=4).tree_shape == (2, 4)


def test_from_dict_rejects_unknown_keys_and_round_trips():
    with pytest.raises(ValueError, match="unknown field"):
        SearchConfig.from_dict({"n": 4, "bogus": 1})
    c = SearchConfig(method="beam", n=8, acs=False)
    assert SearchConfig.from_dict(c.to_dict()) == c
    assert c.replace(n=16).n == 16 and c.n == 8
    with pytest.raises(TypeError):
        SearchConfig.from_dict(["n", 4])
