"""Report maths over hand-made result lines."""
import math

import pytest

from srca.eval.report import breakdown, redecide, render, rescue_rate, summarize, summarize_group


def rec(uid, method, n, correct, *, level=1, subject="Algebra", gen=100, prompt=50, cached=10, rescued=False,
        any_correct=None, from_checkpoint=False):
    return {"unique_id": uid, "method": method, "n": n, "correct": correct, "level": level, "subject": subject,
            "rescued": rescued, "from_checkpoint": from_checkpoint,
            "any_correct": correct if any_correct is None else any_correct,
            "usage": {"generated_tokens": gen, "prompt_tokens": prompt, "cached_tokens": cached,
                      "prefilled_tokens": prompt - cached, "probe_tokens": 0, "scorer_calls": 2},
            "timings": {"total_s": 1.0}}


RECORDS = [
    rec("a", "srca", 4, True, level=1, gen=100, rescued=True, from_checkpoint=True),
    rec("b", "srca", 4, True, level=2, gen=200, subject="Geometry"),
    rec("c", "srca", 4, False, level=2, gen=300, any_correct=True),
    rec("d", "srca", 4, True, level=3, gen=400, rescued=True, from_checkpoint=True),
    rec("a", "cot", 1, False, level=1, gen=10, prompt=40, cached=0),
    rec("b", "cot", 1, True, level=2, gen=30, prompt=40, cached=0, subject="Geometry"),
    rec("a", "srca", 8, True, level=1, gen=900),
]


def test_summary_rows_and_maths():
    rows = summarize(RECORDS)
    assert [(r["method"], r["n"]) for r in rows] == [("srca", 4), ("srca", 8), ("cot", 1)]
    s4 = rows[0]
    assert (s4["count"], s4["correct"]) == (4, 3)
    assert s4["accuracy"] == 0.75
    assert s4["ci95"] == pytest.approx(1.96 * math.sqrt(0.75 * 0.25 / 4))
    assert s4["oracle"] == 1.0
    assert s4["generated_tokens"] == 250 and s4["prefilled_tokens"] == 40
    assert s4["rescue_rate"] == pytest.approx(2 / 3) and s4["rescued"] == 2
    assert s4["from_checkpoint"] == 0.5
    cot = rows[2]
    assert cot["accuracy"] == 0.5 and cot["generated_tokens"] == 20 and cot["prefilled_tokens"] == 40
    assert cot["rescue_rate"] is None  # not an SRCA method


def test_rescue_rate_counts_only_correct_answers():
    assert rescue_rate([rec("a", "srca", 4, False)]) is None
    assert rescue_rate([rec("a", "srca", 4, True, rescued=True), rec("b", "srca", 4, True),
                        rec("c", "srca", 4, False)]) == 0.5
    assert summarize_group([rec("a", "srca-noacs", 4, True, rescued=True)])["rescue_rate"] == 1.0


def test_prefilled_falls_back_to_prompt_minus_cached():
    r = rec("a", "cot", 1, True, prompt=70, cached=30)
    del r["usage"]["prefilled_tokens"]
    assert summarize_group([r])["prefilled_tokens"] == 40


def test_breakdown_by_level_and_subject():
    levels, rows = breakdown(RECORDS, "level")
    assert levels == [1, 2, 3]
    srca4 = rows[0]
    assert srca4["cells"] == {1: (1, 1), 2: (1, 2), 3: (1, 1)}
    assert rows[2]["cells"][3] == (0, 0)
    subjects, rows = breakdown(RECORDS, "subject")
    assert subjects == ["Algebra", "Geometry"]


def test_runs_from_several_files_stay_apart():
    a = [dict(r, _run="x") for r in RECORDS[:2]]
    b = [dict(r, _run="y") for r in RECORDS[:2]]
    rows = summarize(a + b)
    assert [(r["run"], r["method"], r["n"]) for r in rows] == [("x", "srca", 4), ("y", "srca", 4)]
    assert "x: srca" in render(a + b)


def test_render_text():
    text = render(RECORDS)
    lines = text.splitlines()
    assert lines[0].startswith("Accuracy per method x n")
    assert any(l.split()[:4] == ["srca", "4", "4", "75.0%"] for l in lines)
    assert "66.7% (2/3)" in text  # rescue column
    assert "Accuracy per level" in text and "Accuracy per subject" in text
    assert render([]) == "no result lines"


def test_plot_writes_png(tmp_path):
    from srca.eval.report import plot

    out = tmp_path / "p.png"
    plot(RECORDS, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_save_as_palette_pngs_and_other_formats_as_drawn(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from srca.eval.report import save_figure

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    save_figure(fig, str(tmp_path / "p.png"), colors=16)
    save_figure(fig, str(tmp_path / "p.svg"))
    plt.close(fig)
    im = Image.open(tmp_path / "p.png")
    assert im.mode == "P" and len(im.getcolors()) <= 16
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_redecide_votes_over_stored_groups():
    g = lambda ans, paths, ckpts, score, ok: {"answer": ans, "paths": paths, "checkpoints": ckpts,  # noqa: E731
                                               "best_score": score, "correct": ok}
    lines = [
        # the pool vote picks "5" (3 candidates against 2, wrong); the paths vote picks "4" (correct)
        {**rec("a", "srca", 4, False), "answers": [g("5", 1, 2, 0.9, False), g("4", 2, 0, 0.5, True)]},
        # a tie in paths (1-1) goes to the higher best score
        {**rec("b", "srca", 4, False), "answers": [g("7", 1, 0, 0.2, False), g("8", 1, 0, 0.6, True)]},
        # only checkpoints: no paths vote at all
        {**rec("c", "srca", 4, True), "answers": [g("1", 0, 3, 0.4, True)]},
        {**rec("d", "srca", 4, False)},  # no groups stored: wrong under every rule
    ]
    (row,) = redecide(lines)
    assert row["count"] == 4 and row["as_run"] == 0.25
    assert row["vote_pool"] == pytest.approx(2 / 4)  # b (tie -> 8) and c
    assert row["vote_paths"] == pytest.approx(2 / 4)  # a and b
    assert "Other decision rules" in render(lines) and "Other decision rules" not in render(RECORDS)


def test_files_merge_unless_they_hold_the_same_cell(tmp_path):
    import json

    from srca.commands.report import load

    def write(name, recs):
        p = tmp_path / name
        p.write_text("".join(json.dumps(r) + "\n" for r in recs))
        return str(p)

    cot, srca4, srca8 = [RECORDS[4], RECORDS[5]], RECORDS[:4], [RECORDS[6]]
    merged = load([write("cot.jsonl", cot), write("srca4.jsonl", srca4), write("srca8.jsonl", srca8)])
    assert all("_run" not in r for r in merged)
    assert [(r["method"], r["n"]) for r in summarize(merged)] == [("cot", 1), ("srca", 4), ("srca", 8)]
    again = load([write("old.jsonl", srca4), write("new.jsonl", srca4 + cot)])  # srca@4 twice: two runs
    assert {r["_run"] for r in again} == {"old", "new"}
    assert len(summarize(again)) == 3


def test_unused_tokens_are_averaged_and_shown_beside_the_generated():
    spec = [rec("a", "srca-spec", 16, True, gen=1000), rec("b", "srca-spec", 16, False, gen=3000)]
    spec[0]["usage"]["unused_tokens"] = 400  # the second line has none (and older lines lack the field)
    (row,) = summarize(spec)
    assert row["generated_tokens"] == 2000 and row["unused_tokens"] == 200
    assert "2000 (200 unused)" in render(spec)
    assert "unused" not in render(RECORDS)


def test_latency_per_problem_and_engine_calls():
    # ten problems of 1 to 10 s and 1 to 10 engine calls: mean 5.5 s, the 90th percentile by nearest
    # rank the 9th value, 5.5 calls a problem
    recs = []
    for i in range(1, 11):
        r = rec(f"p{i}", "srca-wide", 32, i % 2 == 0)
        r["timings"] = {"total_s": float(i)}
        r["usage"]["engine_calls"] = i
        recs.append(r)
    (row,) = summarize(recs)
    assert (row["wall_s"], row["wall_p90_s"], row["engine_calls"]) == (5.5, 9.0, 5.5)
    text = render(recs)
    assert "s / problem (p90)" in text and " 5.5 (9.0) " in text
    assert summarize_group([])["wall_p90_s"] == 0.0
