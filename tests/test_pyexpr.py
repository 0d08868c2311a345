"""srca.pyexpr: a program's printed line in Python's or SymPy's syntax, read as LaTeX without eval."""
import pytest

from srca.answers import equivalent
from srca.eval.grading import grade
from srca.execution import ExecResult, program_answer
from srca.pyexpr import to_latex


@pytest.mark.parametrize("printed, gold", [
    # real lines from the twenty-seventh GPU run's pot@16 that math-verify read wrong as printed
    ("5*r**5", "5r^5"), ("6*r**2 - 4*r - 24", "6r^2-4r-24"), ("(3, pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("Interval.Lopen(3/5, 8/3)", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]"), ("1/tan(x)", "\\cot x"),
    ("oo", "\\infty"), ("12*pi", "12\\pi"), ("E**2", "e^2"), ("Eq(y, 2*x + 1)", "y = 2x + 1"), ("sqrt(2)*I", "\\sqrt{2} i"),
])
def test_python_output_grades_as_the_latex_it_means(printed, gold):
    assert not grade(printed, gold)  # as printed, math-verify misreads it (** is no operator, pi is p*i)
    latex = to_latex(printed)
    assert latex is not None and grade(latex, gold), latex


def test_what_math_verify_read_right_stays_right_and_a_list_is_no_interval():
    assert grade("3*sqrt(3)/4", "\\frac{3\\sqrt{3}}{4}") and grade(to_latex("3*sqrt(3)/4"), "\\frac{3\\sqrt{3}}{4}")
    assert to_latex("[3, 5, 7]") == "3, 5, 7" and grade(to_latex("[3, 5, 7]"), "3, 5, 7")
    # printed, the list read as the interval [2 - sqrt 5, 2 + sqrt 5] and graded right against 2
    assert grade("[2 - sqrt(5), 2 + sqrt(5)]", "2") and not grade(to_latex("[2 - sqrt(5), 2 + sqrt(5)]"), "2")


@pytest.mark.parametrize("printed", [
    "72", "1/2", "0.75", "(8, -2)", "\\frac{1}{2}", "2^{10}", "south", "None", "True", "ellipse",
    "The answer is 5", "x = 3", "",
])
def test_what_needs_no_reading_or_is_not_math_stays_as_printed(printed):
    assert to_latex(printed) is None


@pytest.mark.parametrize("printed", [
    "__import__('os').system('touch /tmp/srca-pyexpr-pwned')", "x.__class__", "(lambda: 1)()",
    "open('/etc/passwd').read()", "[c for c in 'ab']", "eval('1+1')", "Interval.__init__(1, 2)", "f(x)*2",
])
def test_no_code_runs_and_unknown_names_or_nodes_are_left_alone(printed, tmp_path):
    assert to_latex(printed) is None


@pytest.mark.parametrize("printed", ["9**9**9", "((((9**64)**64)**64)**64)", "factorial(10**6)",
                                     "binomial(10**7, 5*10**6)", "2**(10**9)"])
def test_huge_exact_numbers_are_not_computed(printed):
    assert to_latex(printed) is None


def test_undefined_results_are_not_answers_and_small_powers_are():
    assert to_latex("zoo*(x + 1)") is None and to_latex("nan") is None
    assert to_latex("2**10") == "1024" and to_latex("2**pi") == "2^{\\pi}"
    assert to_latex("factorial(5)") == "120"


def test_a_program_answer_votes_with_the_chains_that_wrote_it_in_latex():
    assert program_answer(ExecResult("r = 2\n5*r**5\n", "", 0)) == "5 r^{5}"
    assert equivalent("5r^5", program_answer(ExecResult("5*r**5\n", "", 0)))
    assert program_answer(ExecResult("72.0\n", "", 0)) == "72"
