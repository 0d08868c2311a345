"""The ``srca`` command line: ``srca solve``, ``srca eval``, ``srca report``, ``srca serve``,
``srca view``, ``srca sglang-servers``."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .commands import SUBCOMMANDS
from . import logs
from .commands.common import UsageError, add_log_format_arg, err


class _Formatter(argparse.HelpFormatter):
    """argparse's, wrapping only at spaces: a method or variant name (``srca-margin-loops``) is
    never split at its hyphens."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2
        name = self.prog.replace("srca", "", 1).strip()
        err(f"{name + ': ' if name else ''}{message}")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="srca", description="SRCA test-time-scaling reasoning: search over reasoning paths.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = f"srca.commands.{name.replace('-', '_')}"
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        mod.add_parser(sub)
    # before or after the subcommand: `srca --log-format json serve` or `srca serve --log-format json`
    add_log_format_arg(p)
    for sp in sub.choices.values():
        add_log_format_arg(sp)
    return p


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    if len(msg) > 400:
        msg = msg[:397] + "..."
    if isinstance(e, ImportError):
        if "pip install" in msg:  # the error says what to install (an optional extra, e.g. srca[sglang])
            return f"missing dependency: {msg}"
        return f"missing dependency: {msg}; reinstall srca (pip install -e .) to get every dependency"
    if isinstance(e, (ConnectionError, TimeoutError)):
        return f"engine unreachable: {msg}"
    return msg


def _setup_logging(argv: list[str] | None, fmt: str) -> None:
    """Progress of the model download and conversion (the ``srca`` loggers) on stderr, as
    ``srca: ...`` lines or JSON objects; ``--quiet`` keeps only warnings."""
    quiet = any(a in ("-q", "--quiet") for a in (sys.argv[1:] if argv is None else argv))
    logs.setup(fmt, logging.WARNING if quiet else logging.INFO, logger="srca", text_format=logs.CLI_TEXT)


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad usage (flags, values, names), 1 a runtime failure (a missing
    dependency, an engine that is down, a model that cannot load), 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        args.log_format = logs.resolve_format(getattr(args, "log_format", None))
    except ValueError as e:  # a bad $SRCA_LOG_FORMAT (the flag's choices are checked by argparse)
        err(str(e))
        return 2
    _setup_logging(argv, args.log_format)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        err(str(e))
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as e:  # a runtime failure: one line, not a traceback (SRCA_DEBUG=1 shows it)
        if os.environ.get("SRCA_DEBUG"):
            raise
        err(f"{_one_line(e)} (SRCA_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
