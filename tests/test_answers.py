import pytest

from srca.answers import canonical, cluster, equivalent, extract_answer, extract_boxed, parse_probe


@pytest.mark.parametrize("text,want", [
    (r"so \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"first \boxed{1} then \boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"\boxed{\sqrt{\frac{a}{b}}} end", r"\sqrt{\frac{a}{b}}"),
    (r"\fbox{7}", "7"),
    (r"\boxed{unclosed", None),
    (r"\boxed{}", None),
    ("no box here", None),
])
def test_extract_boxed_balances_braces(text, want):
    assert extract_boxed(text) == want


@pytest.mark.parametrize("probe,want", [
    ("72}.", "72"),
    (r"\frac{3}{4}} so", r"\frac{3}{4}"),
    (r"\{1,2\}}", r"\{1,2\}"),
    ("", None),
    ("}", None),
    ("   }", None),
    ("12 apples", None),  # cut short before the box closed
    (r"(\sqrt{9}, \tan^{-1", None),
    ("5\nmore", None),
])
def test_parse_probe(probe, want):
    assert parse_probe(probe) == want


def test_extract_answer_falls_back_to_plain_answer():
    assert extract_answer("blah. The answer is 42.") == "42"
    assert extract_answer("Final answer: $\\frac{1}{2}$") == "\\frac{1}{2}"
    assert extract_answer("#### 18") == "18"
    assert extract_answer("I think 5 and 6") is None
    assert extract_answer(r"The answer is \boxed{9}.") == "9"


def test_equivalence_and_clusters():
    assert equivalent("72", "72.0")
    assert equivalent(r"\frac{1}{2}", "0.5")
    assert equivalent("(1,2]", "(1, 2]")
    assert not equivalent("(1,2]", "[1,2]")
    assert equivalent(r"\text{Evelyn}", "evelyn")
    assert not equivalent("3", "4")
    assert cluster(["72", "72.0", None, r"\frac{1}{2}", "0.5", "36"]) == [0, 0, -1, 1, 1, 2]
    assert canonical(r"\dfrac{3}{4}") == "3/4"
