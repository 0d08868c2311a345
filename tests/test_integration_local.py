"""End to end on the real embedded engine (SmolLM2-135M, the fast plumbing model):
CLI -> Solver -> method -> LocalEngine -> Solution JSON."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
NATALIA = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
           "How many clips did Natalia sell altogether in April and May?")


def srca_cli(*args, timeout=600):
    env = dict(os.environ, SRCA_THREADS="1")
    return subprocess.run([sys.executable, "-m", "srca.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_srca_json_on_the_real_model():
    r = srca_cli("solve", "--method", "srca", "--n", "4", "--json", "--model", "smollm2-135m",
                 "--max-steps", "3", "--max-step-tokens", "48", NATALIA)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    for key in ("answer", "canonical", "confidence", "method", "candidates", "trace", "usage", "timings", "stop_reason"):
        assert key in d
    assert d["method"] == "srca"
    u = d["usage"]
    assert u["cached_tokens"] > 0 and u["probe_tokens"] > 0 and u["engine_calls"] >= 2
    steps = [t for t in d["trace"] if t["depth"] > 0]
    assert len(steps) >= 2 and sum(1 for t in steps if t["kept"]) >= 1
    assert all(t["score"] is not None for t in steps)
    assert "step 1" in r.stderr  # progress while it works


@pytest.fixture(scope="module")
def solver():
    from srca import SearchConfig, Solver

    s = Solver(model="smollm2-135m", threads=1, config=SearchConfig(max_steps=2, max_step_tokens=32, max_new_tokens=64))
    yield s
    s.close()


@pytest.mark.parametrize("method", ["cot", "majority", "best_of_n", "beam", "dvts", "srca", "cot_decoding"])
def test_every_method_runs_on_the_real_model(solver, method):
    sol = solver.solve("What is 2 + 3?", method=method, n=2)
    assert sol.method == method and sol.usage.generated_tokens > 0
    assert sol.stop_reason in ("finished", "max_steps")
    assert len(sol.trace) >= 2


def test_same_seed_same_solution(solver):
    a = solver.solve("What is 7 * 6?", method="majority", n=2, seed=3)
    b = solver.solve("What is 7 * 6?", method="majority", n=2, seed=3)
    assert [t.text for t in a.trace] == [t.text for t in b.trace]
