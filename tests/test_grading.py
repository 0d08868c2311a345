"""Grading: math-verify with the gold first, plus GSM8K-style numbers."""
import pytest

from srca.eval.data import DataError, gsm8k_answer, load_problems, read_jsonl, record_to_problem
from srca.eval.grading import grade, is_plain_number, numeric_value


@pytest.mark.parametrize("pred, gold", [
    ("\\frac{1}{2}", "0.5"),
    ("1/2", "\\frac12"),
    ("\\dfrac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("\\sqrt{18}", "3\\sqrt{2}"),
    ("x = 2", "2"),
    ("90^\\circ", "90"),
    ("10\\%", "10"),
    ("2, 1", "1,2"),  # an unordered set of solutions
    ("(1, 3]", "(1,3]"),
    ("[2,5)", "x \\in [2,5)"),
    ("(-\\infty, 0) \\cup (1, \\infty)", "(-\\infty,0)\\cup(1,\\infty)"),
    ("\\text{Evelyn}", "\\text{Evelyn}"),
    ("Evelyn", "\\text{Evelyn}"),
    ("C", "\\text{(C)}"),
    ("\\text{(C)}", "\\text{(C)}"),
])
def test_equivalent_forms_are_correct(pred, gold):
    assert grade(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("[1,3]", "(1,3]"),  # closed vs half-open interval
    ("(1,3)", "(1,3]"),
    ("3", "\\frac{1}{3}"),
    ("\\text{Bob}", "\\text{Evelyn}"),
    ("B", "\\text{(C)}"),
    ("2", "1,2"),
    (None, "2"),
    ("", "2"),
    ("2", ""),
])
def test_wrong_answers_are_wrong(pred, gold):
    assert not grade(pred, gold)


@pytest.mark.parametrize("pred", ["1,000", "1000", "\\$1,000", "$1,000$", "1{,}000", "1000.00", "1000 dollars",
                                  "\\text{1000 apples}", "1,000."])
def test_gsm8k_numbers(pred):
    assert grade(pred, "1000")


@pytest.mark.parametrize("pred", ["1,2", "100", "1000 and 2", "10,00", "x"])
def test_gsm8k_wrong_numbers(pred):
    assert not grade(pred, "1000")


def test_numeric_helpers():
    assert is_plain_number("18") and is_plain_number("-2.5") and not is_plain_number("\\frac12")
    assert numeric_value("\\$18.50") == numeric_value("18.5")
    assert numeric_value("3+4") is None and numeric_value("1,2") is None


def test_gold_first_matters_for_intervals_vs_pairs():
    # the same string reads as a pair or an interval depending on the gold
    assert grade("(1,3)", "(1,3)")
    assert not grade("(3,1)", "(1,3)")


def test_data_layouts(tmp_path):
    m = record_to_problem({"unique_id": "u1", "problem": "p", "answer": " 4 ", "subject": "Algebra", "level": 3}, 0)
    assert (m.unique_id, m.answer, m.subject, m.level) == ("u1", "4", "Algebra", 3)
    g = record_to_problem({"question": "q", "answer": "so\n#### 2,125"}, 7)
    assert (g.unique_id, g.answer, g.subject, g.level) == ("gsm8k-test-7", "2125", "gsm8k", None)
    assert gsm8k_answer("18") == "18"
    with pytest.raises(DataError, match="expected fields"):
        record_to_problem({"text": "x"}, 0)
    # the original MATH layout: the answer is the solution's last box, the type its subject
    h = {"problem": "What is $\\frac{6}{4}$?", "level": "Level 2", "type": "Prealgebra",
         "solution": "First \\boxed{2} is wrong; it is $\\boxed{\\frac{3}{2}}$."}
    o = record_to_problem(h, 0)
    assert (o.answer, o.subject, o.level) == ("\\frac{3}{2}", "Prealgebra", 2)
    assert o.unique_id == record_to_problem(dict(h), 5).unique_id and o.unique_id.startswith("math-")
    assert len(o.unique_id) == len("math-") + 12
    assert record_to_problem({**h, "unique_id": "test/x/1.json"}, 0).unique_id == "test/x/1.json"
    assert record_to_problem({**h, "answer": "1.5"}, 0).answer == "1.5"  # an answer given wins
    with pytest.raises(DataError, match="boxed"):
        record_to_problem({**h, "solution": "no box here"}, 0)
    with pytest.raises(DataError, match="unique_id"):  # MATH-500's layout still needs its id
        record_to_problem({"problem": "p", "answer": "1"}, 0)
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": "a", "question": "q1", "answer": "1"}\n\n{"id": "b", "question": "q2", "answer": "2"}\n')
    assert [p.unique_id for p in read_jsonl(f)] == ["a", "b"]
    assert [p.unique_id for p in load_problems("gsm8k", f, limit=1)] == ["a"]
    f.write_text('{"id": "a", "question": "q1", "answer": "1"}\n{"id": "a", "question": "q2", "answer": "2"}\n')
    with pytest.raises(DataError, match="duplicate"):
        load_problems("gsm8k", f)
    f.write_text('{"id": "a", "question": "q1"\n')
    with pytest.raises(DataError, match=":1: not valid JSON"):
        read_jsonl(f)
    with pytest.raises(DataError, match="no such file"):
        load_problems("math500", tmp_path / "missing.jsonl")


def test_no_path_uses_env_dir_then_a_clear_hub_error(tmp_path, monkeypatch):
    (tmp_path / "math500.jsonl").write_text('{"unique_id": "x", "problem": "p", "answer": "1", "level": 1}\n')
    monkeypatch.setenv("SRCA_DATA_DIR", str(tmp_path))
    assert [p.unique_id for p in load_problems("math500")] == ["x"]
    monkeypatch.setenv("SRCA_DATA_DIR", str(tmp_path / "nothing"))
    import srca.eval.data as data

    monkeypatch.setattr(data, "load_hf", lambda ds: (_ for _ in ()).throw(DataError(f"hub: {ds.hf_path}")))
    with pytest.raises(DataError, match="HuggingFaceH4/MATH-500"):
        load_problems("math500")


def test_hub_error_without_datasets(monkeypatch):
    import builtins

    import srca.eval.data as data

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "datasets":
            raise ImportError("no datasets")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(DataError, match="needs the 'datasets' package"):
        data.load_hf(data.DATASETS["math500"])
