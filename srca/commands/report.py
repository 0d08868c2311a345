"""``srca report FILE... [--plot OUT.png]``: tables (and a plot) over ``srca eval`` results."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="summarize eval results",
                       description="Accuracy per method x n, per level and subject, tokens, CCA rescue rate, "
                                   "seconds and engine calls per problem.")
    p.add_argument("files", nargs="+", help="results files written by 'srca eval'")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="plot accuracy against generated tokens")
    p.add_argument("--json", action="store_true", help="print the summary rows as JSON instead of tables")
    p.set_defaults(func=run)


def load(files: list[str]) -> list[dict]:
    """Records of every file. Files that hold different method x n cells are one study and
    merge (one line per method over its n in the plot); when two files hold the same cell,
    each record is tagged with its file's stem so the runs stay apart."""
    from ..eval import ResultsError, read_records

    per_file: list[list[dict]] = []
    stems = [Path(f).stem for f in files]
    for f in files:
        if not Path(f).is_file():
            raise UsageError(f"no such file: {f}")
        try:
            recs = read_records(f)
        except ResultsError as e:
            raise UsageError(str(e)) from None
        for r in recs:
            for k in ("unique_id", "method", "n", "correct", "usage"):
                if k not in r:
                    raise UsageError(f"{f}: a line lacks field {k!r}; is it an 'srca eval' results file?")
        per_file.append(recs)
    cells = [{(r["method"], int(r["n"])) for r in recs} for recs in per_file]
    overlap = any(cells[i] & cells[j] for i in range(len(cells)) for j in range(i + 1, len(cells)))
    records: list[dict] = []
    for f, stem, recs in zip(files, stems, per_file):
        if overlap:
            for r in recs:
                r["_run"] = stem if stems.count(stem) == 1 else f
        records.extend(recs)
    return records


def run(args: argparse.Namespace) -> int:
    from ..eval.report import plot, render, summarize

    if args.plot:  # a bad path is found before the tables print, not after
        parent = Path(args.plot).expanduser().resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--plot: no such folder {parent}")
    records = load(args.files)
    if args.json:
        print(json.dumps(summarize(records), indent=2))
    else:
        print(render(records))
    if args.plot:
        plot(records, args.plot)  # a failure here is the install's (exit 1), not the command line's
    return 0
