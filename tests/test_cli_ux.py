"""The command line's promises to a person: ``--help`` lists the allowed values (from the library's
registries), usage errors exit 2 before any model loads, runtime failures exit 1 with one line,
and a long generation shows progress on stderr."""
from __future__ import annotations

import io
import socket

import pytest

import srca.commands.solve as solve_cmd
import srca.engines
import srca.methods
from srca import config
from srca.cli import main
from srca.commands.common import prompt_names
from srca.commands.solve import StatusLine
from srca.engines.fake import ScriptedEngine
from srca.engines.local import DecodeProgress
from srca.scorers import SCORERS

from _eval_fixtures import write_data
from scripts import stepwise


def _help(capsys, monkeypatch, *cmd: str) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal width
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_solve_help_lists_the_allowed_values(capsys, monkeypatch):
    text = _help(capsys, monkeypatch, "solve")
    for flag, values in (("--scorer", sorted(SCORERS)), ("--decision", config.DECISIONS),
                         ("--aggregation", config.AGGREGATIONS)):
        assert f"{flag} {{{','.join(values)}}}" in text, flag
    # --method: the search methods, then the named variants it also takes (srca.eval.variants)
    from srca.eval.variants import VARIANTS

    assert (f"--method METHOD search method: {', '.join(sorted(srca.methods.METHODS))}; or a named variant "
            f"({', '.join(sorted(VARIANTS))})") in text
    assert "--prompt NAME prompt template: " + ", ".join(prompt_names()) in text
    assert "math" in prompt_names()


def test_help_follows_the_registry(capsys, monkeypatch):
    # the choices come from the library's registry, not from a list typed into the CLI
    monkeypatch.setitem(srca.methods.METHODS, "zz_added", srca.methods.METHODS["cot"])
    assert "zz_added" in _help(capsys, monkeypatch, "solve")


@pytest.fixture
def no_engine(monkeypatch):
    """Fails the test if the command builds an engine (i.e. would load a model)."""
    built = []

    def make_engine(kind, **opts):
        built.append(kind)
        raise AssertionError("an engine was built")

    monkeypatch.setattr(srca.engines, "make_engine", make_engine)
    return built


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("srca: error:")]


@pytest.mark.parametrize("argv, names", [
    (["--prompt", "nope"], ["--prompt", "math"]),
    (["--scorer", "prm"], ["--scorer prm", "SRCA_PRM_URL", "SRCA_PRM_MODEL"]),
    (["--model", "no-such-model"], ["--model", "qwen2.5-coder-0.5b"]),
    (["--engine-option", "no_such_option=1"], ["no_such_option", "max_batch"]),
])
def test_usage_errors_exit_2_before_the_model_loads(argv, names, no_engine, capsys, monkeypatch):
    monkeypatch.delenv("SRCA_PRM_URL", raising=False)
    monkeypatch.delenv("SRCA_PRM_MODEL", raising=False)
    assert main(["solve", "-q", *argv, "What is 2+2?"]) == 2
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert err.strip() == line  # one line, nothing else
    for name in names:
        assert name in line
    assert no_engine == []


def test_eval_rejects_prm_without_its_model_before_loading(no_engine, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SRCA_PRM_URL", raising=False)
    monkeypatch.delenv("SRCA_PRM_MODEL", raising=False)
    data = write_data(tmp_path / "d.jsonl")
    assert main(["eval", "math500", "--data", str(data), "--scorer", "prm", "-q", "--out",
                 str(tmp_path / "o.jsonl")]) == 2
    assert "SRCA_PRM_URL" in capsys.readouterr().err and no_engine == []


def test_eval_rejects_bad_answer_workers_before_loading(no_engine, capsys, monkeypatch, tmp_path):
    data = write_data(tmp_path / "d.jsonl")
    args = ["eval", "math500", "--data", str(data), "-q", "--out", str(tmp_path / "o.jsonl")]
    assert main([*args, "--answer-workers", "-1"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--answer-workers" in line and ">= 0" in line
    monkeypatch.setenv("SRCA_ANSWER_WORKERS", "many")
    assert main(args) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "SRCA_ANSWER_WORKERS" in line and "'many'" in line and no_engine == []


def test_serve_rejects_bad_answer_workers_before_loading(no_engine, capsys, monkeypatch):
    pytest.importorskip("uvicorn")
    monkeypatch.setenv("SRCA_ANSWER_WORKERS", "-3")
    assert main(["serve", "--port", "0"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "answer_workers" in line and "'auto'" in line and no_engine == []


def test_bad_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["solve", "--decision", "coin_flip", "q"])
    assert e.value.code == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--decision" in line and "weighted_vote" in line


def test_missing_dependency_exits_1_with_one_line(monkeypatch, capsys):
    def make_engine(kind, **opts):
        raise ModuleNotFoundError("No module named 'accelerate'", name="accelerate")

    monkeypatch.setattr(srca.engines, "make_engine", make_engine)
    assert main(["solve", "-q", "What is 2+2?"]) == 1
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert err.strip() == line and "missing dependency" in line and "accelerate" in line


def test_a_model_that_cannot_load_is_a_runtime_failure(monkeypatch, capsys):
    # transformers raises ValueError for a missing accelerate; it must not read as bad usage
    import srca.engines.local.engine as local

    def load_model(*a, **k):
        raise ValueError("accelerate is required when loading a GGUF file `pip install accelerate`.")

    monkeypatch.setattr(local, "load_model", load_model)
    assert main(["solve", "-q", "--model", "smollm2-135m", "What is 2+2?"]) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert "accelerate is required" in line


def test_engine_down_exits_1(capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["solve", "-q", "--engine", "http", "--engine-url", f"http://127.0.0.1:{port}", "q"]) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert "not reachable" in line


# -- progress ---------------------------------------------------------------------------------------


def test_status_line_redraws_on_a_terminal_and_stays_quiet_in_a_log():
    log = io.StringIO()
    s = StatusLine(0.0, stream=log, tty=False, log_every_s=3600)
    s.status("generating: 5 tokens")
    s.line("step 1: 4 candidate(s)")
    assert "generating" not in log.getvalue() and "step 1" in log.getvalue()

    term = io.StringIO()
    s = StatusLine(0.0, stream=term, tty=True)
    s.status("generating: 5 tokens")
    s.line("step 1")
    out = term.getvalue()
    assert out.startswith("\r\033[K") and "generating: 5 tokens" in out
    # the permanent line first clears the status it replaces
    assert out.index("generating") < out.rindex("\r\033[K") < out.index("step 1")


class _ProgressEngine(ScriptedEngine):
    """A scripted engine that reports decode progress as the local engine does."""

    on_progress = None

    async def generate(self, requests):
        if self.on_progress is not None:
            rows = sum(r.n for r in requests)
            for k in (1, 2, 3):
                self.on_progress(DecodeProgress(rows, rows, k * rows, 1024, 40, 0, 0.5 * k))
        return await super().generate(requests)


def test_solve_shows_generation_progress(monkeypatch, capsys):
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **o: _ProgressEngine(stepwise()))
    monkeypatch.setattr(solve_cmd, "StatusLine", lambda t0: StatusLine(t0, tty=True))  # as on a terminal
    assert main(["solve", "--method", "majority", "--n", "4", "What is 3 + 4?"]) == 0
    cap = capsys.readouterr()
    assert "generating: 4 tokens, 4 of 4 continuation(s) running" in cap.err
    assert cap.out.startswith("Answer: 7")


def test_progress_names_the_lineages_that_ended_when_none_is_kept():
    log = io.StringIO()
    on_event = solve_cmd._progress(StatusLine(0.0, stream=log, tty=False))
    on_event({"type": "select", "depth": 3, "kept": [{"id": 4, "answer": "7"}], "ended": []})
    on_event({"type": "select", "depth": 8, "kept": [], "ended": [{"id": 6, "kind": "path", "answer": "72"},
                                                                   {"id": 9, "kind": "checkpoint", "answer": None}]})
    on_event({"type": "select", "depth": 9, "kept": [], "ended": []})  # nothing to say: no line
    lines = [x.split("] ", 1)[1] for x in log.getvalue().splitlines()]
    assert lines == ["  kept: #4(7)", "  ended: #6(72), #9"]


@pytest.mark.parametrize("method, text, says", [
    ("majority", "I am not sure.", "(no answer: 4 path(s) ended without one the grader could read)"),
    ("dvts", "Still thinking.\n\n", "(no answer: no path ended within the token limit; try a larger --max-new-tokens)"),
])
def test_solve_without_an_answer_says_why(method, text, says, monkeypatch, capsys):
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **o: ScriptedEngine(lambda p, r, i: text))
    assert main(["solve", "--method", method, "--n", "4", "--max-new-tokens", "64", "What is 3 + 4?"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Answer: None") and out[1] == "  " + says
