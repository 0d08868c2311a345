"""benchmarks/vote_exit.py replays early-exit rules over a majority@N run's answer counts: exact
stops for pools whose every order gives the same votes, and usage errors exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_file(path: Path, pools: list[list[tuple[int, bool]]], tokens_per_sample: int = 100, n: int = 32) -> None:
    lines = []
    for i, groups in enumerate(pools):
        lines.append({"unique_id": f"t/{i}.json", "method": "majority", "n": n,
                      "usage": {"generated_tokens": tokens_per_sample * n},
                      "answers": [{"answer": str(k), "paths": paths, "correct": ok} for k, (paths, ok) in enumerate(groups)]})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _replay(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "out.json"
    res = subprocess.run([sys.executable, "benchmarks/vote_exit.py", str(tmp_path / "run.jsonl"), "--draws", "20",
                          "--out", str(out), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text())


def test_unanimous_pools_stop_where_each_rule_allows(tmp_path):
    _run_file(tmp_path / "run.jsonl", [[(32, True)]])  # every sample the right answer
    d = _replay(tmp_path, "--waves", "4,4,4,4")
    assert d["full_vote"]["all"] == {"problems": 1, "accuracy": 1.0, "token_ratio": 1.0, "waves_run": 1.0,
                                     "all_waves": 1.0}
    rows = {(r["rule"], r["x"]): r["all"] for r in d["rules"]}
    # share: 4 of 4 agree after the first wave (a quarter of the tokens), one wave of four run
    assert rows[("share", 0.5)] == {"problems": 1, "accuracy": 1.0, "token_ratio": 0.25, "waves_run": 1.0,
                                    "all_waves": 0.0}
    # margin 1: a lead of 4 < 12 to come, of 8 >= 8 to come: two waves
    assert rows[("margin", 1.0)]["token_ratio"] == 0.5 and rows[("margin", 1.0)]["waves_run"] == 2.0
    # margin 0.3: 4 >= 0.3 * 12 after the first
    assert rows[("margin", 0.3)]["token_ratio"] == 0.25
    # beta: P(Beta(5, 1) > 1/2) = 1 - 2**-5 = 0.969 after 4 of 4; 1 - 2**-9 after 8 of 8
    assert rows[("beta", 0.95)]["token_ratio"] == 0.25
    assert rows[("beta", 0.99)]["token_ratio"] == 0.5
    # the oracle bound: the first wave's leader is already the full vote's
    assert rows[("oracle", 0.0)] == {"problems": 1, "accuracy": 1.0, "token_ratio": 0.25, "waves_run": 1.0,
                                     "all_waves": 0.0}


def test_unanswered_samples_cast_no_ballot(tmp_path):
    # 2 right answers, 30 samples without one: a full vote is right, and no rule ever stops
    # (the leader never has two ballots in a wave of 4 unless both are drawn; never a lead of 12+)
    _run_file(tmp_path / "run.jsonl", [[(2, True)], []])
    d = _replay(tmp_path, "--waves", "16")
    assert d["full_vote"]["all"]["problems"] == 2
    acc = d["full_vote"]["all"]["accuracy"]
    assert 0.0 < acc < 0.5  # the empty problem is always wrong; the other only when one of the 2 is drawn


def test_usage_errors_exit_2(tmp_path):
    _run_file(tmp_path / "run.jsonl", [[(32, True)]])
    for args in (["--waves", "4,4,4"], ["--n", "40"], ["--n", "1"]):
        res = subprocess.run([sys.executable, "benchmarks/vote_exit.py", str(tmp_path / "run.jsonl"), *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("vote_exit: ") and len(res.stderr.strip().splitlines()) == 1


def test_the_replay_stops_where_wave_settled_does():
    """The vectorized rules are srca.methods.consensus.wave_settled with equal weights."""
    import importlib.util

    import numpy as np

    from srca.methods.consensus import Ballot, wave_settled

    spec = importlib.util.spec_from_file_location("vote_exit", ROOT / "benchmarks" / "vote_exit.py")
    ve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ve)
    rng = np.random.default_rng(5)
    eq = lambda a, b: a == b  # noqa: E731
    waves = [4, 4, 2, 2, 2, 2]
    checked = 0
    for groups in ([(10, True), (8, False), (6, False)], [(20, False), (4, True)], [(3, True), (3, False), (2, False)]):
        lines = [{"unique_id": "t/0.json", "n": 32, "usage": {"generated_tokens": 3200},
                  "answers": [{"paths": k, "correct": ok} for k, ok in groups]}]
        (p,) = ve.pools(lines)
        (seq,) = ve.draw_orders([p], 16, 30, seed=int(rng.integers(1000)))
        tie = np.zeros((30, len(p["correct"])))
        for rule in (("share", 0.5), ("share", 0.6), ("margin", 1.0), ("margin", 0.25)):
            _, used = ve.replay(p, seq, waves, rule, 2, tie)
            for d in range(30):
                want = 16
                for e in np.cumsum(waves)[:-1]:
                    ballots = [Ballot(str(g), "path", 1.0) for g in seq[d, :e] if g >= 0]
                    kw = {"margin": rule[1], "remaining": 16 - int(e)} if rule[0] == "margin" else {}
                    if wave_settled(ballots, eq, rule[1] if rule[0] == "share" else 1.0, 2, **kw):
                        want = int(e)
                        break
                assert used[d] == want, (groups, rule, d)
                checked += 1
    assert checked == 3 * 4 * 30


def test_several_runs_pool_by_answer(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from vote_exit import merge
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def line(uid, groups, tokens):
        return {"unique_id": uid, "n": 4, "usage": {"generated_tokens": tokens},
                "answers": [{"answer": a, "paths": k, "correct": ok} for a, k, ok in groups]}

    lines = [line("p", [("1/2", 2, True), ("3", 1, False)], 400),
             line("p", [("0.5", 1, True), (" 3", 2, False), ("7", 1, False)], 800),
             line("q", [("x", 4, True)], 40)]
    by = {p["unique_id"]: p for p in merge(lines)}
    p = by["p"]
    # both runs' right groups are one group, the wrong "3" and " 3" one, "7" its own; one sample
    # of the first run has no answer; tokens: the mean over runs of tokens per sample
    assert sorted(p["labels"].tolist()) == [-1, 0, 0, 0, 1, 1, 1, 2]
    assert p["correct"].tolist() == [True, False, False, False]
    assert p["tokens"] == (100 + 200) / 2 and p["runs"] == 2
    assert by["q"]["labels"].tolist() == [0, 0, 0, 0] and by["q"]["runs"] == 1
    # two files on the command line replay the merged pools: a budget of 8 needs both runs' samples
    (tmp_path / "a.jsonl").write_text(json.dumps(lines[0]) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(line("p", [("0.5", 3, True), ("3", 1, False)], 800)) + "\n")
    out = tmp_path / "out.json"

    def replay(*files):
        return subprocess.run([sys.executable, "benchmarks/vote_exit.py", *map(str, files), "--n", "8", "--draws", "5",
                               "--waves", "8", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert replay(tmp_path / "a.jsonl").returncode == 2  # one run holds 4 samples
    res = replay(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert res.returncode == 0, res.stderr
    # all 8 samples drawn in every order: 5 right ballots against 2 for "3"
    assert json.loads(out.read_text())["full_vote"]["all"] == {"problems": 1, "accuracy": 1.0, "token_ratio": 1.0,
                                                              "waves_run": 1.0, "all_waves": 1.0}
