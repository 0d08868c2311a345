"""The ``srca`` command line: ``srca solve``, ``srca eval``, ``srca report``, ``srca serve``."""
from __future__ import annotations

import argparse
import importlib
import sys

from .commands import SUBCOMMANDS
from .commands.common import UsageError, err


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        name = self.prog.replace("srca", "", 1).strip()
        err(f"{name + ': ' if name else ''}{message}")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="srca", description="SRCA test-time-scaling reasoning: search over reasoning paths.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"srca.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"srca.commands.{name}":
                raise
            continue
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        err(str(e))
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
