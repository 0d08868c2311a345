"""Shared by the benchmarks: writing a JSON result (the record plus the machine it ran on and
when), a free local port for a server they start, waiting for that server to be healthy, and
the ``--concurrency`` value they take."""
from __future__ import annotations

import json
import os
import platform
import socket
import time
from typing import Any, Callable


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


def wait_healthy(proc: Any, url: str, deadline: float, limit_s: float, name: str,
                 on_fail: Callable[[], None]) -> None:
    """Until ``url``'s ``GET /health`` answers 200: checked every second while ``proc`` (the
    server's ``subprocess.Popen``) runs. If it exits, or ``time.time()`` passes ``deadline``,
    ``on_fail()`` (stop the servers) and ``RuntimeError`` naming ``name`` or ``url``."""
    import urllib.request

    while True:
        if proc.poll() is not None:
            on_fail()
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            on_fail()
            raise RuntimeError(f"{url} not healthy after {limit_s:g} s")
        time.sleep(1)


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
