"""benchmarks/wave_stream.py: a stop after the wave's barrier against one inside the wave, exact
tokens and answers on a scripted bank line."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from srca.eval.bank import pack

ROOT = Path(__file__).resolve().parents[1]


def _mod():
    if str(ROOT / "benchmarks") not in sys.path:  # wave_stream imports its siblings (bank_replay, _common)
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("wave_stream_under_test", ROOT / "benchmarks" / "wave_stream.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _line(samples: list[tuple[str | None, int]]) -> dict:
    # every token's log-probability the same: equal vote weights
    return {"unique_id": "t/0.json", "answer": "1",
            "samples": [{"answer": a, "tokens": t, "finish": "stop" if a is not None else "length", "lp": pack([-0.1] * t)}
                        for a, t in samples]}


def test_the_barrier_pays_the_whole_wave_and_the_stream_stops_at_the_second_finish():
    # wave 1 (4 lineages): lengths 100..400, answers 1, 1, 1, 2; the lead rule at 0.125.
    # After the wave: lead 2 >= 0.125 x 12 to come: stop, paying 100+200+300+400.
    # Inside it: after the second finish the two ballots agree, lead 2 >= 0.125 x (12 + 2 running):
    # stop, the two running ones cut at 200 tokens: 100 + 200 + 2 x 200.
    m = _mod()
    line = _line([("1", 100), ("1", 200), ("1", 300), ("2", 400)] + [("3", 500)] * 12)
    idx = list(range(16))
    assert m.solve(line, idx, (4, 4, 4, 4), 0.125, stream=False) == ("1", 1000)
    assert m.solve(line, idx, (4, 4, 4, 4), 0.125, stream=True) == ("1", 700)


def test_no_stop_runs_every_wave_and_the_last_wave_never_stops_early():
    # every sample a different answer: no lead, every wave runs, both arms pay all 16 samples whole
    m = _mod()
    line = _line([(str(i + 10), 10 * (i + 1)) for i in range(16)])
    total = sum(10 * (i + 1) for i in range(16))
    for stream in (False, True):
        ans, tok = m.solve(line, list(range(16)), (4, 4, 4, 4), 0.125, stream=stream)
        assert tok == total


def test_a_schedule_that_does_not_add_up_is_a_usage_error(tmp_path):
    res = subprocess.run([sys.executable, "benchmarks/wave_stream.py", str(tmp_path), "--rules", "4x3:0.2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--rules" in res.stderr


def test_a_malformed_rule_is_a_usage_error(tmp_path):
    res = subprocess.run([sys.executable, "benchmarks/wave_stream.py", str(tmp_path), "--rules", "4x4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--rules" in res.stderr
