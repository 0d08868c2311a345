"""Shared by the benchmarks: writing a JSON result (the record plus the machine it ran on and
when), reading an eval run's result lines, a free local port for a server they start, and the
``--concurrency`` value they take."""
from __future__ import annotations

import gzip
import json
import os
import platform
import time
from typing import Any

# a server's port: one rule, the product's (srca sglang-servers uses it)
from srca.engines.sglang_launch import free_port  # noqa: F401,E402


def read_result_lines(path: str) -> list[dict]:
    """The result lines of one eval result file (``.jsonl`` or ``.jsonl.gz``); a file that holds
    more than one method or budget is refused (pool like with like)."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    kinds = {(r.get("method"), r.get("n")) for r in lines}
    if len(kinds) != 1:
        raise SystemExit(f"{path}: one method and n per file, found {sorted(kinds, key=str)}")
    return lines


def write_result(path: str, benchmark: str, args: Any, **fields: Any) -> None:
    """``{"benchmark", "machine", "args", **fields, "time"}`` as JSON at ``path`` (gzipped where
    ``path`` ends in ``.gz``: large results stay small in git); says where."""
    res = dict(benchmark=benchmark, machine=f"{platform.node()} ({os.cpu_count()} cores), Python "
               f"{platform.python_version()}", args=vars(args), **fields, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with (gzip.open(path, "wt") if path.endswith(".gz") else open(path, "w")) as f:
        json.dump(res, f, indent=1)
    print(f"# wrote {path}")


def concurrency(text: str) -> int | None:
    """A ``--concurrency`` value: solves in flight (an integer >= 1), or ``auto`` (None: the
    eval's own rule, :mod:`srca.admission`). ``argparse.ArgumentTypeError`` otherwise."""
    import argparse

    text = text.strip()
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"an integer >= 1 or auto, got {text!r}")
    return n
