"""``srca view solution.json``: the search of a saved Solution as one HTML page."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view", help="draw a saved solution's search tree as an HTML page",
        description="Write the trace viewer page (one self-contained HTML file, no network needed) for a Solution "
                    "saved as JSON: `srca solve --json` output, an `srca eval --traces` file or a job's result.")
    p.add_argument("solution", help="the Solution JSON file ('-' reads stdin)")
    p.add_argument("-o", "--out", default=None,
                   help="the page to write (default: the input's name with .html; '-' prints it)")
    p.add_argument("--title", default=None, help="the page title (default: method and problem)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viewer import render_html, solution_dict

    src = args.solution
    if src == "-":
        if args.out is None:
            raise UsageError("-o/--out: required when the solution comes from stdin")
        text, name = sys.stdin.read(), "<stdin>"
    else:
        if not Path(src).is_file():
            raise UsageError(f"solution: no such file {src!r}")
        text, name = Path(src).read_text(encoding="utf-8"), src
    try:
        sol = solution_dict(json.loads(text))
    except ValueError as e:  # bad JSON, or JSON that holds no Solution
        raise UsageError(f"solution: {name}: {e}") from None
    except TypeError as e:
        raise UsageError(f"solution: {name}: {e}") from None
    page = render_html(sol, title=args.title)
    out = args.out if args.out is not None else str(Path(src).with_suffix(".html"))
    if out == "-":
        sys.stdout.write(page)
        return 0
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(sol['trace'])} trace nodes, answer {json.dumps(sol.get('answer'), ensure_ascii=False)})",
          file=sys.stderr)
    return 0
