"""Shared by the benchmarks: writing a JSON result (the record plus the machine it ran on and
when), a free local port for a server they start, and the ``--concurrency`` value they take."""
from __future__ import annotations

import json
import os
import platform
import socket
import time
from typing import Any


def write_result(path: str, benchmark: str, args: Any, **fields: Any) -> None:
    """``{"benchmark", "machine", "args", **fields, "time"}`` as JSON at ``path``; says where."""
    res = dict(benchmark=benchmark, machine=f"{platform.node()} ({os.cpu_count()} cores), Python "
               f"{platform.python_version()}", args=vars(args), **fields, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(f"# wrote {path}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
