"""Flags shared by subcommands, generated from the dataclasses (one source of defaults)."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, Callable

from ..config import SearchConfig


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def field_choices() -> dict[str, list[str]]:
    """The allowed values of the SearchConfig fields that take a name, read from the library's
    registries (so ``--help`` and the parser never drift from what the config accepts).
    ``prompt`` is not here: an operator can add templates ($SRCA_PROMPTS_DIR), see
    :func:`prompt_names`."""
    from .. import config
    from ..methods import METHODS
    from ..scorers import SCORERS

    out = {"method": sorted(METHODS), "scorer": sorted(SCORERS), "decision": list(config.DECISIONS),
           "aggregation": list(config.AGGREGATIONS)}
    if hasattr(config, "CONFIDENCES"):
        out["confidence"] = list(config.CONFIDENCES)
    out["probe_at"] = list(config.PROBE_AT)
    return out


def prompt_names() -> list[str]:
    """Template names ``--prompt`` accepts now."""
    from .. import prompts

    if hasattr(prompts, "available"):
        return list(prompts.available())
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files(prompts.__name__).iterdir() if p.name.endswith(".json"))


def check_before_load(cfg: SearchConfig) -> None:
    """What can be checked without the model, checked before a model loads for minutes: the
    prompt template exists and a PRM scorer knows where its model is."""
    from .. import prompts

    try:
        prompts.load(cfg.prompt)
    except ValueError as e:
        raise UsageError(f"--prompt: {str(e).removeprefix('prompt: ')}") from None
    if cfg.scorer == "prm":
        import os

        if not (os.environ.get("SRCA_PRM_URL") or os.environ.get("SRCA_PRM_MODEL")):
            raise UsageError("--scorer prm: needs a process reward model; set SRCA_PRM_URL (a running SGLang "
                             "server with the PRM) or SRCA_PRM_MODEL (a model path, served in process by sglang)")


def _none_or(kind: type) -> Any:
    def parse(s: str) -> Any:
        if s.lower() in ("none", "null", ""):
            return None
        return kind(s)

    parse.__name__ = kind.__name__
    return parse


def _unescape(s: str) -> str:
    return s.encode("utf-8").decode("unicode_escape") if "\\" in s else s


def _value_type(hint: Any) -> Any:
    """The type a flag's value is read as: ``int`` for ``int | None``."""
    return next((a for a in typing.get_args(hint) if a is not type(None)), hint)


def add_dataclass_args(p: argparse.ArgumentParser, cls: type, title: str, *, skip: tuple[str, ...] = (),
                       convert: Callable[[Any], Callable[[str], Any]] = _value_type,
                       custom: Callable[[dataclasses.Field, Any], dict[str, Any]] | None = None) -> None:
    """One flag per field of the dataclass ``cls`` (``--beam-width`` for ``beam_width``), in the
    argument group ``title``. Every flag defaults to None, so an unset flag keeps the dataclass
    default (read back with :func:`given_fields`). A ``bool`` field is ``--x/--no-x``; another
    takes a value read by ``convert(type hint)`` and shows its default in the help;
    ``custom(field, hint)`` returns ``add_argument`` keywords that replace those for one field."""
    g = p.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {f.default})")
            continue
        kw: dict[str, Any] = {"type": convert(hint), "default": None, "metavar": _value_type(hint).__name__.upper(),
                              "help": f"(default {f.default!r})"}
        kw.update(custom(f, hint) if custom else {})
        g.add_argument(flag, **kw)


def given_fields(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given (see :func:`add_dataclass_args`)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def _search_value(hint: Any) -> Callable[[str], Any]:
    # a string reads backslash escapes (--step-delimiter '\\n\\n'); an optional number also takes "none"
    base = _value_type(hint)
    if base is str:
        return _unescape
    return _none_or(base) if typing.get_args(hint) else base


def add_config_args(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per SearchConfig field (``--beam-width`` for ``beam_width``); unset flags
    keep the dataclass default. Names from a registry are choices; ``--prompt`` lists the
    templates."""
    choices = field_choices()

    def custom(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
        if f.name == "method":  # a search method, or a named variant of one (srca.eval.variants)
            from ..eval.variants import VARIANTS, method_names

            return {"choices": method_names(), "metavar": "METHOD",
                    "help": f"search method: {', '.join(choices['method'])}; or a named variant "
                            f"({', '.join(sorted(VARIANTS))}): its fields, which the flags given beside "
                            f"it override (default {f.default!r})"}
        if f.name in choices:
            return {"choices": choices[f.name], "metavar": "{" + ",".join(choices[f.name]) + "}"}
        if f.name == "prompt":
            from .. import prompts

            extra = f", or NAME.json in ${prompts.PROMPTS_DIR_ENV}" if hasattr(prompts, "PROMPTS_DIR_ENV") else ""
            return {"metavar": "NAME",
                    "help": f"prompt template: {', '.join(prompt_names())}{extra} (default {f.default!r})"}
        return {}

    add_dataclass_args(p, SearchConfig, "search (SearchConfig fields)", skip=skip, convert=_search_value,
                       custom=custom)


def config_from_args(args: argparse.Namespace, **forced: Any) -> SearchConfig:
    from ..eval.variants import expand

    given = expand(given_fields(args, SearchConfig))
    given.update(forced)
    try:
        return SearchConfig.from_dict(given)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default="local", choices=engine_kinds(),
                   help="backend: local transformers (default), in-process sglang, an SGLang server/router "
                        "(http), SGLang servers started and stopped here (sglang-servers: --engine-option "
                        "replicas=2 runs two on one GPU) or an OpenAI-compatible server")
    g.add_argument("--model", default=None,
                   help="local: qwen2.5-coder-0.5b (default), smollm2-135m, qwen2.5-coder-1.5b or a HF folder; "
                        "sglang, sglang-servers: a model path; openai: the served model name")
    g.add_argument("--engine-url", default=None,
                   help="server URL for --engine http|openai (http: several, comma-separated, get solve affinity)")
    g.add_argument("--device", default=None,
                   help="local engine device (cpu, cuda); on a CPU that other work shares, set SRCA_THREADS=1 "
                        "(torch threads; all cores by default)")
    g.add_argument("--tp-size", type=int, default=None, help="sglang tensor parallel size")
    g.add_argument("--dp-size", type=int, default=None, help="sglang data parallel size")
    g.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other engine constructor option, repeatable; VALUE is read as JSON when it parses "
                        "(true, 0.8, 4), else as a string. E.g. radix_cache=false, mem_fraction_static=0.8, "
                        "attention_backend=fa3, sampling_backend=flashinfer, stop_mode=strings, timeout_s=60")


def engine_options(pairs: list[str], flag: str = "--engine-option") -> dict[str, Any]:
    """``KEY=VALUE`` strings (of ``flag``) as constructor options (VALUE as JSON when it parses)."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UsageError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _url_list(value: str) -> str | list[str]:
    # several servers, comma-separated: each solve stays on one of them
    urls = [u.strip() for u in value.split(",") if u.strip()]
    return urls[0] if len(urls) == 1 else urls


TEST_ENGINE = "fake"  # the scripted engine: tests reach it through srca serve's SRCA_SERVE_TEST_ENGINE


def engine_kinds() -> list[str]:
    """The ``--engine`` choices: the library's engines (``srca.engines.ENGINES``) but the test one."""
    from ..engines import ENGINES

    return [k for k in ENGINES if k != TEST_ENGINE]


# Which constructor argument each engine flag fills, per kind of engine_kinds(): one table instead
# of a branch per engine. The constructors' own names stay (they are public API: README's
# ``Solver(engine="sglang", model_path=M)``). A flag the engine does not take is a usage error.
ENGINE_FLAGS: dict[str, dict[str, str | tuple[str, Any]]] = {
    "local": {"model": "model", "device": "device"},
    "sglang": {"model": "model_path", "tp_size": "tp_size", "dp_size": "dp_size"},
    "http": {"engine_url": ("url", _url_list), "model": "model"},
    "sglang-servers": {"model": "model"},
    "openai": {"engine_url": "base_url", "model": "model"},
}
# flags an engine cannot go without, with what to give
_REQUIRED: dict[str, dict[str, str]] = {"sglang": {"model": " (a model path)"},
                                        "sglang-servers": {"model": " (a model path)"}, "http": {"engine_url": ""},
                                        "openai": {"engine_url": ""}}


def engine_from_args(args: argparse.Namespace) -> Any:
    from ..engines import make_engine

    kind = args.engine
    if kind not in engine_kinds():
        raise UsageError(f"--engine: unknown engine {kind!r}; choose one of {', '.join(engine_kinds())}")
    flags = ENGINE_FLAGS.get(kind, {})
    opts: dict[str, Any] = {}
    for dest in ("model", "engine_url", "device", "tp_size", "dp_size"):
        value = getattr(args, dest, None)
        flag = "--" + dest.replace("_", "-")
        if value is None or value == "":
            if dest in _REQUIRED.get(kind, {}):
                raise UsageError(f"{flag}: required with --engine {kind}{_REQUIRED[kind][dest]}")
            continue
        if dest not in flags:
            takes = ", ".join(k for k, f in ENGINE_FLAGS.items() if dest in f)
            raise UsageError(f"{flag}: only for --engine {takes}")
        target = flags[dest]
        name, convert = target if isinstance(target, tuple) else (target, None)
        opts[name] = convert(value) if convert else value
    extra = engine_options(getattr(args, "engine_option", []) or [])
    clash = sorted(set(extra) & set(opts))
    if clash:
        raise UsageError(f"--engine-option: {clash[0]} has its own flag or is already set")
    opts.update(extra)
    _check_engine_options(kind, opts)
    try:
        return make_engine(kind, **opts)
    except (ValueError, TypeError, FileNotFoundError) as e:
        # bad option values (constructors check them first); what fails later, while loading a
        # model or reaching a server, raises other errors and exits 1 (srca.cli.main)
        raise UsageError(str(e)) from None


def _check_engine_options(kind: str, opts: dict[str, Any]) -> None:
    """Option names against the engine's constructor, and the local model's name, before
    anything is built (a typo should not cost a model load)."""
    import inspect

    from ..engines import engine_class

    try:
        cls = engine_class(kind)
    except ImportError:  # its module needs a package that is missing: the constructor says which
        return
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(opts) - set(params))
        if unknown:
            known = sorted(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
            raise UsageError(f"--engine-option: {unknown[0]} is not an option of the {kind} engine; "
                             f"it takes {', '.join(known)}")
    if kind == "local" and "model" in opts:
        from ..models import is_local_model, model_spec

        if not is_local_model(opts["model"]):
            try:
                model_spec(str(opts["model"]))
            except ValueError as e:
                raise UsageError(f"--model: {str(e).removeprefix('model: ')}") from None


def add_log_format_arg(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's unset flag must not hide the one given before the subcommand
    p.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS,
                   help="stderr log lines as text (default) or one JSON object a line (env SRCA_LOG_FORMAT)")


def note(msg: str, **fields: Any) -> None:
    """A progress line on stderr, or with ``--log-format json`` a log record (``fields`` as its keys)."""
    from .. import logs

    if logs.json_enabled():
        import logging

        logging.getLogger("srca").info(msg, extra=fields)
        return
    print(msg, file=sys.stderr, flush=True)


def err(msg: str) -> None:
    from .. import logs

    if logs.json_enabled():  # a log collector reading JSON lines gets the error as one of them
        import logging

        logging.getLogger("srca").error(msg)
        return
    print(f"srca: error: {msg}", file=sys.stderr)
