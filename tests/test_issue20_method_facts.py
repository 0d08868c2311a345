"""Facts about a method live on ``Method`` (issue 20, item 3), and the CLI maps its engine flags
from one table instead of a branch per engine."""
import argparse
import dataclasses

import pytest

import srca.engines
from srca import SearchConfig, Solver
from srca.commands.common import ENGINE_FLAGS, UsageError, add_engine_args, engine_from_args, engine_kinds
from srca.commands.solve import render
from srca.engines.fake import ScriptedEngine
from srca.eval.variants import config_for, effective_n
from srca.methods import METHODS

from scripts import stepwise

TIMELINE = "Checkpoint timeline"


def test_the_facts_are_on_the_methods():
    assert {m for m, x in METHODS.items() if x.ignores_n} == {"cot"}
    assert {m for m, x in METHODS.items() if x.stepwise} == {"srca", "beam", "dvts"}
    assert {m for m, x in METHODS.items() if x.needs_token_ids} == {"cot_decoding"}


def test_effective_n_reads_ignores_n(monkeypatch):
    assert effective_n("cot", 16) == 1 and config_for("cot", 16).n == 1
    assert effective_n("majority", 16) == 16 and effective_n("srca-paper", 16) == 16
    assert effective_n("no-such-method", 8) == 8
    # the budget rule follows the registry, not a list of names kept elsewhere
    monkeypatch.setitem(METHODS, "majority", dataclasses.replace(METHODS["majority"], ignores_n=True))
    assert effective_n("majority", 16) == 1


@pytest.mark.parametrize("cfg, timeline", [
    ({"method": "srca"}, True),  # srca's lineages: a checkpoint per step, as before
    ({"method": "srca", "lineages": False}, True),  # the paper's tree
    ({"method": "beam"}, True),
    ({"method": "dvts"}, True),
    ({"method": "majority"}, False),
    ({"method": "best_of_n"}, False),
    ({"method": "cot"}, False),
])
def test_the_cli_timeline_follows_stepwise(cfg, timeline):
    sol = Solver(engine=ScriptedEngine(stepwise()), config=SearchConfig(n=4, max_steps=5, **cfg)).solve("What is 3 + 4?")
    assert (TIMELINE in render(sol)) is timeline


def test_a_text_only_engine_is_refused_before_any_generation():
    class TextOnly(ScriptedEngine):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.info = dataclasses.replace(self.info, token_ids=False)

    eng = TextOnly(stepwise())
    with pytest.raises(ValueError, match="cot_decoding: needs an engine that works on token ids"):
        Solver(engine=eng, config=SearchConfig(method="cot_decoding", n=2)).solve("What is 3 + 4?")
    assert eng.calls == []
    # the other methods run on text
    assert Solver(engine=eng, config=SearchConfig(method="majority", n=2)).solve("What is 3 + 4?").answer == "7"


def _args(argv):
    p = argparse.ArgumentParser()
    add_engine_args(p)
    return p.parse_args(argv)


def test_engine_choices_come_from_the_library():
    assert engine_kinds() == [k for k in srca.engines.ENGINES if k != "fake"]
    assert set(ENGINE_FLAGS) == set(engine_kinds())  # every engine the CLI offers has its flags mapped
    with pytest.raises(SystemExit):
        _args(["--engine", "fake"])


@pytest.mark.parametrize("argv, want", [
    (["--engine", "local", "--model", "m", "--device", "cpu"], {"kind": "local", "model": "m", "device": "cpu"}),
    (["--engine", "sglang", "--model", "/m", "--tp-size", "2"], {"kind": "sglang", "model_path": "/m", "tp_size": 2}),
    (["--engine", "http", "--engine-url", "http://a:1", "--model", "m"], {"kind": "http", "url": "http://a:1", "model": "m"}),
    (["--engine", "openai", "--engine-url", "http://a:1/v1", "--model", "m"],
     {"kind": "openai", "base_url": "http://a:1/v1", "model": "m"}),
])
def test_each_flag_fills_its_engine_argument(monkeypatch, argv, want):
    seen = {}
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **opts: seen.update(kind=kind, **opts) or "engine")
    monkeypatch.setattr("srca.commands.common._check_engine_options", lambda kind, opts: None)
    engine_from_args(_args(argv))
    assert seen == want


@pytest.mark.parametrize("argv, msg", [
    (["--engine", "sglang"], "--model: required with --engine sglang"),
    (["--engine", "http"], "--engine-url: required with --engine http"),
    (["--engine", "openai", "--model", "m"], "--engine-url: required with --engine openai"),
    (["--engine", "local", "--engine-url", "http://a:1"], "--engine-url: only for --engine http, openai"),
    (["--engine", "http", "--engine-url", "http://a:1", "--device", "cpu"], "--device: only for --engine local"),
    (["--engine", "local", "--tp-size", "2"], "--tp-size: only for --engine sglang"),
])
def test_a_flag_the_engine_does_not_take_is_a_usage_error(monkeypatch, argv, msg):
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **opts: pytest.fail("an engine was built"))
    with pytest.raises(UsageError, match=msg):
        engine_from_args(_args(argv))
