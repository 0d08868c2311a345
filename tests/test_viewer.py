"""The trace viewer page without a browser: embedding, escaping, every method, the CLI."""
import json
import re

import pytest

import srca.engines
from srca import SearchConfig, Solver
from srca.cli import main
from srca.engines.fake import ScriptedEngine
from srca.methods import METHODS
from srca.solution import Solution
from srca.viewer import page_data, render_html, solution_dict, winner_index, write_html

from scripts import stepwise

NASTY = 'Is </script><script>alert(1)</script> <!-- & "q" \'s\' \\frac{1}{2} \\\\ $x<y$ \u2028 ]]> __SRCA_DATA__?'


def embedded(page: str) -> dict:
    """The JSON the page carries, read the way the browser reads it: the text up to the first
    ``</script>`` after the data tag's start."""
    m = re.search(r'<script type="application/json" id="srca-data">(.*?)</script>', page, re.S)
    assert m, "no data script in the page"
    return json.loads(m.group(1))


def solve(method: str, **cfg) -> Solution:
    # answers drift by sample at the first step, so trees carry several answer groups
    script = stepwise(answers_by_step=lambda k, tag: str(5 + int(tag) % 3) if k < 2 else "7",
                      final=lambda tag: str(7 + int(tag) % 2), steps_to_finish=4)
    if method == "srca":  # the viewer draws each lineage's checkpoint answers: probe after every step
        cfg.setdefault("probe_at", "step")
    s = Solver(engine=ScriptedEngine(script), config=SearchConfig(method=method, n=4, max_steps=6, **cfg))
    return s.solve("What is $3 + 4$?")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_renders_and_round_trips(method):
    sol = solve(method)
    page = render_html(sol)
    data = embedded(page)
    assert data["solution"] == json.loads(json.dumps(sol.to_dict()))  # the Solution as is
    back = Solution.from_dict(data["solution"])
    assert back.answer == sol.answer and len(back.trace) == len(sol.trace) and back.candidates == sol.candidates
    w = data["view"]["winner"]
    assert sol.candidates[w].answer == sol.answer and sol.candidates[w].canonical == sol.canonical
    # every answer in the tree has a group, and pool answers keep the group decide() gave them
    groups = data["view"]["answer_groups"]
    for t in sol.trace:
        a = t.answer if t.finished else t.checkpoint
        if a is not None:
            assert a in groups
    for c in sol.candidates:
        assert groups[c.answer] == f"g{c.group}"
    # nothing to fetch: no external scripts, styles, images or imports
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|<link|@import|url\(""", page, re.I)


def test_text_that_looks_like_markup_stays_data():
    sol = solve("srca")
    sol.problem = NASTY
    sol.trace[1].text = NASTY
    sol.candidates[0].answer = "\\frac{1}{2}</script>"
    page = render_html(sol)
    data = embedded(page)
    assert data["solution"]["problem"] == NASTY and data["solution"]["trace"][1]["text"] == NASTY
    assert data["solution"]["candidates"][0]["answer"] == "\\frac{1}{2}</script>"
    # the page has exactly the template's script blocks: the problem opened none, closed none
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<!--" not in page.split('id="srca-data">', 1)[1].split("</script>", 1)[0]
    # the title is HTML-escaped text
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "<" not in title and "&lt;/script&gt;" in title


def test_non_finite_scores_become_null():
    sol = solve("beam")
    sol.trace[1].score = float("nan")
    sol.candidates[0].score = float("-inf")
    data = embedded(render_html(sol))
    assert data["solution"]["trace"][1]["score"] is None and data["solution"]["candidates"][0]["score"] is None


def test_answers_outside_the_pool_join_an_equivalent_pool_group():
    d = solve("srca").to_dict()
    d["candidates"] = [c for c in d["candidates"] if c["source"] != "checkpoint"]  # as without CCA
    pool = {c["answer"] for c in d["candidates"]}
    ckpts = {t["checkpoint"] for t in d["trace"] if t["checkpoint"] is not None}
    assert ckpts - pool  # the test needs an answer only seen in the tree
    d["trace"][1]["checkpoint"] = "7.0"  # equivalent to the pool's 7
    groups = page_data(d)["view"]["answer_groups"]
    seven = next(f"g{c['group']}" for c in d["candidates"] if c["answer"] == "7")
    assert groups["7.0"] == seven
    assert all(groups[a].startswith("c:") for a in ckpts - pool - {"7"})


def test_winner_is_the_best_member_of_the_winning_group():
    d = {"answer": "7", "canonical": "7", "trace": [], "candidates": [
        {"answer": "8", "canonical": "8", "score": 0.99, "group": 0, "node": 1, "source": "path", "step": 1},
        {"answer": "7", "canonical": "7", "score": 0.5, "group": 1, "node": 2, "source": "path", "step": 1},
        {"answer": "7.0", "canonical": "7", "score": 0.7, "group": 1, "node": 3, "source": "checkpoint", "step": 1},
        {"answer": "7", "canonical": "7", "score": 0.7, "group": 1, "node": 4, "source": "path", "step": 1}]}
    assert winner_index(d) == 2  # best of group 1, earliest on ties
    assert winner_index({**d, "answer": None}) is None
    # confidence_vote: the group's most confident full answer, before any checkpoint
    cv = {**d, "method": "srca", "config": {"decision": "confidence_vote"}}
    assert winner_index(cv) == 3
    cv["candidates"] = [dict(c, source="checkpoint") if i == 3 else c for i, c in enumerate(d["candidates"])]
    assert winner_index(cv) == 1


def test_envelopes_and_non_solutions():
    d = solve("cot").to_dict()
    assert solution_dict({"id": "j", "state": "done", "result": d}) is d
    assert solution_dict({"type": "final", "solution": d}) is d
    with pytest.raises(ValueError, match="not a Solution"):
        solution_dict({"answer": "7"})
    with pytest.raises(TypeError):
        solution_dict([d])


def test_stream_only_page():
    page = render_html(None, stream_url="http://127.0.0.1:8000/solve")
    assert embedded(page) == {"solution": None, "view": {}, "stream_url": "http://127.0.0.1:8000/solve"}


def test_write_html_creates_folders(tmp_path):
    p = write_html(solve("majority"), tmp_path / "a" / "b.html")
    assert p.read_text(encoding="utf-8").startswith("<!doctype html>")


# -- the CLI --------------------------------------------------------------------------------
def test_srca_view(tmp_path, capsys):
    src = tmp_path / "sol.json"
    sol = solve("srca")
    src.write_text(json.dumps(sol.to_dict()))
    assert main(["view", str(src)]) == 0
    page = (tmp_path / "sol.html").read_text()
    assert embedded(page)["solution"]["answer"] == sol.answer
    assert main(["view", str(src), "-o", str(tmp_path / "x" / "y.html"), "--title", "T<1>"]) == 0
    assert "<title>T&lt;1&gt;</title>" in (tmp_path / "x" / "y.html").read_text()
    capsys.readouterr()
    assert main(["view", str(src), "-o", "-"]) == 0
    assert embedded(capsys.readouterr().out)["solution"]["method"] == "srca"
    (tmp_path / "bad.json").write_text('{"answer": 1}')
    assert main(["view", str(tmp_path / "bad.json")]) == 2
    assert "not a Solution" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.json")]) == 2


def test_srca_solve_html(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **opts: ScriptedEngine(stepwise()))
    out = tmp_path / "t.html"
    assert main(["solve", "--method", "beam", "--n", "4", "--html", str(out), "-q", "What is 3 + 4?"]) == 0
    data = embedded(out.read_text())
    assert data["solution"]["answer"] == "7" and data["solution"]["method"] == "beam"
    assert main(["solve", "--html", str(tmp_path), "-q", "What is 3 + 4?"]) == 2  # a folder: refused up front
    assert "--html" in capsys.readouterr().err
