"""``--engine-option KEY=VALUE``: any engine constructor option from the command line."""
import argparse

import pytest

import srca.engines
from srca.cli import main
from srca.commands.common import UsageError, add_engine_args, engine_from_args, engine_options


def test_values_parse_as_json_else_strings():
    assert engine_options(["radix_cache=false", "mem_fraction_static=0.8", "dp-size=2", "stop_mode=strings",
                           "attention_backend=fa3", "extra={\"a\": 1}"]) == {
        "radix_cache": False, "mem_fraction_static": 0.8, "dp_size": 2, "stop_mode": "strings",
        "attention_backend": "fa3", "extra": {"a": 1}}
    for bad in ("noequals", "=1", "two words=1"):
        with pytest.raises(UsageError, match="--engine-option"):
            engine_options([bad])


def _args(argv):
    p = argparse.ArgumentParser()
    add_engine_args(p)
    return p.parse_args(argv)


def test_options_reach_the_engine_constructor(monkeypatch):
    seen = {}
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **opts: seen.update(kind=kind, **opts) or "engine")
    engine_from_args(_args(["--engine", "sglang", "--model", "/m", "--dp-size", "2",
                            "--engine-option", "radix_cache=false", "--engine-option", "sampling_backend=flashinfer"]))
    assert seen == {"kind": "sglang", "model_path": "/m", "dp_size": 2, "radix_cache": False,
                    "sampling_backend": "flashinfer"}
    with pytest.raises(UsageError, match="dp_size"):  # a flag of its own wins; saying it twice is an error
        engine_from_args(_args(["--engine", "sglang", "--model", "/m", "--dp-size", "2", "--engine-option", "dp_size=4"]))


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["solve", "--engine", "local", "--model", "smollm2-135m", "--engine-option", "no_such_option=1",
                 "What is 2+2?"]) == 2
    assert "no_such_option" in capsys.readouterr().err


def test_engine_url_lists_several_http_servers(monkeypatch):
    seen = {}
    monkeypatch.setattr(srca.engines, "make_engine", lambda kind, **opts: seen.update(kind=kind, **opts) or "engine")
    engine_from_args(_args(["--engine", "http", "--engine-url", "http://a:1, http://b:2"]))
    assert seen == {"kind": "http", "url": ["http://a:1", "http://b:2"]}
    seen.clear()
    engine_from_args(_args(["--engine", "http", "--engine-url", "http://a:1"]))
    assert seen == {"kind": "http", "url": "http://a:1"}
