"""Program of thought (``pot``): the program's extraction, its run under limits, its answer, the
vote, the prompt it asks with, and the service's refusal unless the operator allows code."""
import os
import time

import pytest

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.execution import (ExecLimits, ExecResult, extract_program, program_answer, program_of, read_printed,
                            run_program)
from srca.methods import METHODS


def test_extract_program_takes_the_last_fenced_block():
    text = "plan\n```python\nprint(1)\n```\nthen\n```py\nprint(2)\n```\n```\n\n```"
    assert extract_program(text) == "print(2)\n"
    assert extract_program("```\nx = 3\nprint(x)\n```") == "x = 3\nprint(x)\n"
    assert extract_program("no code here, \\boxed{4}") is None
    with pytest.raises(TypeError):
        extract_program(None)


def test_extract_program_reads_fences_line_by_line():
    # Qwen's coder writes its code, then the output it expects: the output block is no program
    tir = "Plan.\n```python\nprint(2 + 2)\n```\n```output\n4\n```\nSo 4.\n```python\nprint(5)\n"
    assert extract_program(tir) == "print(2 + 2)\n"  # the last block is cut (still open): none
    assert extract_program("```python\nprint(1)\n```output\n1\n```") == "print(1)\n"
    assert extract_program("1. Run:\n   ```python\n   x = 2\n   print(x)\n   ```\n") == "x = 2\nprint(x)\n"
    assert extract_program("```latex\n\\frac{1}{2}\n```\n```\nprint(3)\n```") == "print(3)\n"
    assert extract_program("```\nprint(3)\n```\n```py\nprint(4)\n```\n```\nprint(5)\n```") == "print(4)\n"
    assert extract_program("```text\nno code\n```") is None


def test_pot_samples_stop_where_the_model_writes_its_expected_output():
    seen = []

    def script(prompt, req, i):
        seen.append(req.stop)
        if "Python program" in prompt:
            return "```python\nprint(4)\n```\n```output"
        return "\\boxed{4}"
    for method in ("pot", "majority-pot"):
        seen.clear()
        sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(method=method, n=2)).solve("2 + 2?")
        assert sol.answer == "4"
        assert ("```output",) in seen
    seen.clear()
    Solver(engine=ScriptedEngine(script), config=SearchConfig(method="majority", n=2)).solve("2 + 2?")
    assert seen == [(), ()]  # chains of thought are not cut there


@pytest.mark.parametrize("out, want", [
    ("1\n2\n\n", "2"), ("$\\frac{1}{2}$\n", "\\frac{1}{2}"), ("\\boxed{\\sqrt{2}}\n", "\\sqrt{2}"),
    ("", None), ("   \n", None), ("x" * 201 + "\n", None),
    ("72.0\n", "72"), ("-3.000\n", "-3"), ("72.5\n", "72.5"), ("1.0e3\n", "1.0e3"), ("0.0\n", "0"),
])
def test_program_answer_is_the_last_printed_line(out, want):
    assert program_answer(ExecResult(out, "", 0)) == want


def test_a_failed_or_killed_program_has_no_answer():
    assert program_answer(ExecResult("7\n", "Traceback", 1)) is None
    assert program_answer(ExecResult("7\n", "", None, timed_out=True)) is None


def test_run_program_prints_and_exits():
    r = run_program("import fractions\nprint(fractions.Fraction(1, 3) + fractions.Fraction(1, 6))")
    assert r.ok and r.stdout.strip() == "1/2" and program_answer(r) == "1/2"
    r = run_program("raise SystemExit(3)")
    assert r.returncode == 3 and not r.ok


def test_run_program_is_killed_at_the_timeout_with_its_children(tmp_path):
    marker = tmp_path / "alive"
    child = f"import time; time.sleep(3); open({str(marker)!r}, 'w').close()"
    code = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)\n"
    t0 = time.monotonic()
    r = run_program(code, ExecLimits(timeout_s=1.0))
    assert r.timed_out and r.returncode is None and not r.ok
    assert time.monotonic() - t0 < 20
    time.sleep(3.5)  # the grandchild, had it lived, would have written the marker by now
    assert not marker.exists()


def test_run_program_limits_memory_and_hides_the_environment(monkeypatch):
    r = run_program("x = bytearray(4 * 1024 ** 3)", ExecLimits(memory_mb=512))
    assert r.returncode != 0 and "MemoryError" in r.stderr
    monkeypatch.setenv("SRCA_TEST_SECRET", "s3cret")
    r = run_program("import os\nprint(os.environ.get('SRCA_TEST_SECRET'))\nprint(os.getcwd())")
    out = r.stdout.splitlines()
    assert out[0] == "None" and "srca-pot-" in out[1] and not os.path.exists(out[1])  # its folder is gone


@pytest.mark.parametrize("field, value, exc", [
    ("timeout_s", 0, ValueError), ("timeout_s", 601, ValueError), ("cpu_s", 1.5, TypeError),
    ("memory_mb", -1, ValueError), ("output_bytes", True, TypeError), ("file_mb", "1", TypeError),
])
def test_exec_limits_validate_themselves(field, value, exc):
    with pytest.raises(exc, match=f"ExecLimits.{field}"):
        ExecLimits(**{field: value})


def _programs(outputs):
    """A scripted engine whose i-th sample is a program printing outputs[i] (None: no program;
    "!": a program that fails)."""
    prompts = []

    def script(prompt, req, i):
        prompts.append(prompt)
        o = outputs[i]
        if o is None:  # a chain of thought where a program was asked
            return f"I think it is \\boxed{{{20 + i}}}."
        body = "raise ValueError('no')" if o == "!" else f"print({o!r})"
        return f"Compute.\n```python\n{body}\n```\nThe answer is \\boxed{{9}}."
    return script, prompts


def test_pot_votes_over_what_the_programs_print_not_the_text():
    script, prompts = _programs(["7", "12", None, "\\frac{24}{2}", "!", "13", None, "9.5"])
    sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(method="pot", n=8)).solve("What is 5 + 7?")
    # 12 and 24/2 are one answer (math-verify): 2 votes against 1 each (were they two, the tie
    # would go to 7, seen first); the boxed 9s beside the programs never vote, the sample whose
    # program failed is no candidate, and the two that wrote no program vote what they boxed
    assert sol.answer == "12"
    assert [c.answer for c in sol.candidates] == ["7", "12", "22", "\\frac{24}{2}", "13", "26", "9.5"]
    assert "Python program" in prompts[0] and "sympy.latex" in prompts[0]


def test_pot_asks_with_its_own_prompt_unless_the_config_names_a_program_prompt(tmp_path, monkeypatch):
    for cot in ("math", "qwen", "plain"):  # templates that ask for a chain of thought give way
        assert METHODS["pot"].prompt_for(SearchConfig(method="pot", prompt=cot)) == "pot"
    (tmp_path / "mycode.json").write_text('{"asks": "program", "user": "Write code: {problem}"}')
    (tmp_path / "bad.json").write_text('{"asks": "poem", "user": "{problem}"}')
    monkeypatch.setenv("SRCA_PROMPTS_DIR", str(tmp_path))
    assert METHODS["pot"].prompt_for(SearchConfig(method="pot", prompt="mycode")) == "mycode"
    with pytest.raises(ValueError, match="'asks' must be"):
        METHODS["pot"].prompt_for(SearchConfig(method="pot", prompt="bad"))
    assert METHODS["majority"].prompt_for(SearchConfig(method="majority", prompt="qwen")) == "qwen"
    assert [m.name for m in METHODS.values() if m.runs_code] == ["pot", "majority-pot"]


def test_the_service_refuses_pot_unless_its_operator_allows_code(monkeypatch):
    pytest.importorskip("fastapi")
    from srca.service.schemas import InputError, build_config

    monkeypatch.delenv("SRCA_ALLOW_CODE", raising=False)
    with pytest.raises(InputError) as e:
        build_config({"method": "pot"}, SearchConfig())
    assert e.value.status == 422 and "method" in str(e.value.errors) and "SRCA_ALLOW_CODE=1" in str(e.value.errors)
    monkeypatch.setenv("SRCA_ALLOW_CODE", "1")
    assert build_config({"method": "pot"}, SearchConfig()).method == "pot"
    monkeypatch.setenv("SRCA_ALLOW_CODE", "0")
    with pytest.raises(InputError):
        build_config({"method": "pot"}, SearchConfig())


def test_the_openai_facade_lists_srca_pot_only_where_code_is_allowed(monkeypatch):
    pytest.importorskip("fastapi")
    from srca.service.openai_facade import model_names

    monkeypatch.delenv("SRCA_ALLOW_CODE", raising=False)
    assert "srca-pot" not in model_names() and "srca-dvts" in model_names()
    monkeypatch.setenv("SRCA_ALLOW_CODE", "1")
    assert model_names()["srca-pot"] == "pot"


@pytest.mark.parametrize("text, want", [
    ("```python\n8\n```", "print(8)\n"),
    ("```python\nx = 3\nx * 2\n```", "x = 3\nprint(x * 2)\n"),
    ("```python\nx = (1 +\n  2)\n(x,\n x)\n```", "x = (1 +\n  2)\nprint((x,\n x))\n"),
    ("```python\nx = 1\nprint(x)\nx\n```", "x = 1\nprint(x)\nx\n"),  # it prints: left as it is
    ("```python\nfor i in range(2): pass\n```", "for i in range(2): pass\n"),  # ends in no expression
    ("```python\nx = \n```", "x = \n"),  # a syntax error fails as it is
    ("no program \\boxed{3}", None),
])
def test_program_of_prints_a_last_expression_the_program_never_prints(text, want):
    assert program_of(text) == want


def test_pot_votes_a_last_expression_and_a_boxed_answer_without_a_program():
    texts = ["```python\nimport sympy\nsympy.Rational(6, 2) + 1\n```", "```python\nprint(4)\n```",
             "No code. \\boxed{5}", "No code, no box."]
    sol = Solver(engine=ScriptedEngine(lambda prompt, req, i: texts[i]),
                 config=SearchConfig(method="pot", n=4)).solve("2 + 2?")
    assert sol.answer == "4" and [c.answer for c in sol.candidates] == ["4", "4", "5"]


def _chains_and_programs(chains, programs):
    """A scripted engine: the i-th chain of thought boxes chains[i]; pot's prompt gets a program
    printing programs[i] ("!": one that fails)."""
    prompts = []

    def script(prompt, req, i):
        prompts.append(prompt)
        if "Python program" in prompt:
            o = programs[i]
            if isinstance(o, tuple):  # ("chain", answer): a chain of thought where a program was asked
                return f"No code. \\boxed{{{o[1]}}}"
            body = "raise ValueError('no')" if o == "!" else f"print({o!r})"
            return f"Compute.\n```python\n{body}\n```"
        return f"Think. \\boxed{{{chains[i]}}}"
    return script, prompts


@pytest.mark.parametrize("weight, want", [(1.5, "4"), (0.4, "5"), (0.0, "5")])
def test_majority_pot_weighs_a_program_against_a_chain_of_thought(weight, want):
    script, prompts = _chains_and_programs(["5", "5", "4"], ["4", "\\frac{8}{2}", "!"])
    engine = ScriptedEngine(script)
    cfg = SearchConfig(method="majority-pot", n=6, program_weight=weight)
    sol = Solver(engine=engine, config=cfg).solve("What is 2 + 2?")
    # 5: two chains (2); 4: one chain and two programs that print 4 and 8/2 (1 + 2w)
    assert sol.answer == want
    # the chains first, then the programs; the failed program is no candidate
    assert [(c.answer, c.score) for c in sol.candidates] == [("5", 1.0), ("5", 1.0), ("4", 1.0), ("4", weight),
                                                             ("\\frac{8}{2}", weight)]
    chains = [p for p in prompts if "Python program" not in p]
    assert len(chains) == 3 and len(prompts) == 6  # the solve's template for the chains, pot's for the programs
    assert sol.usage.engine_calls == 1  # both kinds in one engine call


def test_majority_pot_default_weight_ties_to_the_larger_group():
    # five chains say 5; four programs print 4 (the fifth fails): 5 x 1 against 4 x 1.25, equal
    # mass, so the larger group wins; at a weight of 1.5 the programs would
    assert SearchConfig().program_weight == 1.25 and SearchConfig().program_share == 0.5
    for weight, want in ((None, "5"), (1.5, "4")):
        script, _ = _chains_and_programs(["5"] * 5, ["4"] * 4 + ["!"])
        extra = {} if weight is None else {"program_weight": weight}
        sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(method="majority-pot", n=10, **extra)).solve("?")
        assert sol.answer == want


def test_majority_pot_splits_n_by_program_share():
    for share, programs in ((0.0, 0), (0.25, 2), (0.5, 4), (1.0, 8)):
        script, prompts = _chains_and_programs(["3"] * 8, ["3"] * 8)
        sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(method="majority-pot", n=8,
                                                                        program_share=share)).solve("1 + 2?")
        assert sum("Python program" in p for p in prompts) == programs and len(prompts) == 8
        assert sol.answer == "3" and len(sol.candidates) == 8


@pytest.mark.parametrize("field, value", [("program_share", 1.5), ("program_share", -0.1), ("program_weight", -1),
                                          ("program_weight", 17), ("program_weight", True), ("program_share", "x")])
def test_program_fields_validate_themselves(field, value):
    with pytest.raises(ValueError, match=f"SearchConfig.{field}"):
        SearchConfig(method="majority-pot", **{field: value})


def test_the_service_refuses_majority_pot_unless_its_operator_allows_code(monkeypatch):
    pytest.importorskip("fastapi")
    from srca.service.schemas import InputError, build_config

    monkeypatch.delenv("SRCA_ALLOW_CODE", raising=False)
    with pytest.raises(InputError):
        build_config({"method": "majority-pot"}, SearchConfig())
    monkeypatch.setenv("SRCA_ALLOW_CODE", "1")
    assert build_config({"method": "majority-pot", "program_weight": 2}, SearchConfig()).program_weight == 2


def test_majority_pot_counts_a_program_sample_that_wrote_no_program_as_a_chain():
    script, _ = _chains_and_programs(["5", "5"], [("chain", "4"), "4"])
    sol = Solver(engine=ScriptedEngine(script), config=SearchConfig(method="majority-pot", n=4)).solve("?")
    assert [(c.answer, c.score) for c in sol.candidates] == [("5", 1.0), ("5", 1.0), ("4", 1.0), ("4", 1.25)]
    assert [c.source for c in sol.candidates] == ["path", "path", "path", "program"]
    assert sol.answer == "4" and not sol.from_checkpoint  # 1 + 1.25 against 2
    from srca.eval.data import Problem
    from srca.eval.records import make_record

    rec = make_record(Problem("p", "?", "4"), "majority-pot", 4, sol, 0)
    groups = {g["answer"]: g for g in rec["answers"]}
    # the program's vote is a path of its group, and counted apart: a replay can weigh it again
    assert (groups["4"]["paths"], groups["4"].get("programs"), groups["5"]["paths"], groups["5"].get("programs")) \
        == (2, 1, 2, None)
    assert rec["correct"] and rec["path_correct"] and not rec["from_checkpoint"]


@pytest.mark.parametrize("line, want", [
    ("Median: 14.0", "14"), ("The minimum possible value of the expression is: -9", "-9"),
    ("The coordinates of point P are: (8, -2).", "(8, -2)"), ("The answer is 5*r**5", "5 r^{5}"),
    ("\\{x : x > 0\\}", "\\{x : x > 0\\}"),  # no label of words before the colon: set-builder stays
    ("x is undefined", "x is undefined"), ("Navin earns the most.", "Navin earns the most."),
    ("Answer: " + "1 + " * 30 + "1", "Answer: " + "1 + " * 30 + "1"),  # the value too long to be one
])
def test_a_labelled_line_gives_its_value(line, want):
    assert read_printed(line) == want
