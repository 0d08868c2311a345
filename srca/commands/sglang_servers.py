"""``srca sglang-servers``: start SGLang servers as the engines this project starts set SGLang up,
and keep them until interrupted (:mod:`srca.engines.sglang_launch`)."""
from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from .common import UsageError, err


NONE = "none"  # a flag's value "none": the setting off (argparse's None means "not given")


def _none_or(kind: type):
    def read(text: str) -> Any:
        return NONE if text.strip().lower() == "none" else kind(text)

    read.__name__ = kind.__name__
    return read


def _max_bs(text: str) -> Any:
    text = text.strip().lower()
    if text in ("auto", NONE):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"auto, none or a positive integer, got {text!r}") from None


def _gpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated GPU indices, got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sglang-servers", help="start SGLang servers for --engine http and keep them until interrupted",
        description="Start `sglang.launch_server` replicas (one per GPU, or several sharing one: each is a "
                    "scheduler process of its own) with the decode CUDA graphs, prefill graphs and garbage-"
                    "collector thresholds the in-process sglang engine uses; print their URLs, comma-separated, "
                    "on stdout once all answer, for `--engine http --engine-url URLS`; stop them on Ctrl-C or "
                    "SIGTERM. Flags after `--` go to every server.")
    p.add_argument("--model", required=True, help="model path (--model-path)")
    p.add_argument("--replicas", type=int, default=None, help="servers in all (default one per GPU), placed on --gpus in turn")
    p.add_argument("--gpus", type=_gpus, default=None, metavar="0,1,...", help="GPU indices (default 0)")
    p.add_argument("--mem-fraction", type=_none_or(float), default=None, metavar="F",
                   help="static memory (weights, KV pools) of all a GPU's replicas together, as a share of its "
                        "memory free before the first, split evenly (default: SGLang's own for one replica; "
                        "what leaves each replica 11.5 GiB beside it: 0.42 for four on an 80 GB H100)")
    p.add_argument("--reserve-gib", type=float, default=None, metavar="GIB",
                   help="memory each replica of a shared GPU keeps beside its static share (default 11.5); "
                        "a --mem-fraction that does not leave it is refused before any server starts")
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="the first replica's port, the others the next ones "
                   "(default: free ports)")
    p.add_argument("--decode-graph-max-bs", type=_max_bs, default=None, metavar="auto|none|N",
                   help="decode CUDA graphs up to N running requests (default auto: by the GPU's memory; none: "
                        "SGLang's default)")
    p.add_argument("--prefill-graph", type=_none_or(str), default=None, metavar="BACKEND|none",
                   help="SGLang's prefill CUDA graph backend (default disabled; none: SGLang's default)")
    p.add_argument("--gc-threshold", type=_none_or(str), default=None, metavar="G0,G1,G2|none",
                   help="the garbage collector's thresholds in every server process (default 50000,20,100; "
                        "none: Python's; SRCA_SGLANG_GC_THRESHOLD in this environment wins)")
    p.add_argument("--log-dir", default=None, help="keep each server's output there (server.out, server1.out, ...)")
    p.add_argument("--start-timeout-s", type=float, default=None, help="seconds each round of starts may take "
                   "(default 900)")
    p.add_argument("--mps", action=argparse.BooleanOptionalAction, default=None,
                   help="run the servers under a CUDA MPS daemon of their own, so replicas sharing a GPU run "
                        "their kernels at once instead of taking turns (needs nvidia-cuda-mps-control; default: "
                        "on where replicas share a GPU and the daemon starts)")
    p.add_argument("sglang_args", nargs="*", metavar="-- FLAGS", help="more sglang.launch_server flags")
    p.set_defaults(func=run)


def launch_from_args(args: argparse.Namespace):
    """The :class:`~srca.engines.sglang_launch.ServerLaunch` of the flags (unset flags keep its
    defaults); ``UsageError`` naming the flag for a bad value."""
    from ..engines.sglang_launch import ServerLaunch

    # each flag is its ServerLaunch field's name (--mem-fraction: mem_fraction)
    fields = ("replicas", "gpus", "mem_fraction", "reserve_gib", "host", "port", "decode_graph_max_bs", "prefill_graph",
              "gc_threshold", "log_dir", "start_timeout_s", "mps")
    given = {k: (None if getattr(args, k) == NONE else getattr(args, k)) for k in fields
             if getattr(args, k) is not None}
    try:
        return ServerLaunch(model=args.model, extra_args=tuple(args.sglang_args), **given)
    except (ValueError, TypeError) as e:
        msg = str(e)
        field = msg.split(":", 1)[0].removeprefix("ServerLaunch.")
        flag = "--" + field.replace("_", "-") if field in fields or field == "model" else "-- FLAGS"
        raise UsageError(f"{flag}: {msg.split(':', 1)[1].strip() if ':' in msg else msg}") from None


def run(args: argparse.Namespace) -> int:
    from ..engines.sglang_launch import ServerGroup, check_sglang

    launch = launch_from_args(args)
    check_sglang(launch.environment())
    group = ServerGroup(launch)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        t0 = time.monotonic()
        urls = group.start(on_ready=lambda k, url: err(
            f"replica {k} ready at {url} ({time.monotonic() - t0:.0f} s"
            + ("" if group.fractions.get(k) is None else f", --mem-fraction-static {group.fractions[k]}") + ")"))
        print(",".join(urls), flush=True)
        err(f"{len(urls)} server(s) up; use --engine http --engine-url {','.join(urls)}; Ctrl-C stops them")
        while True:
            for k, proc in enumerate(group.procs):
                if proc.poll() is not None:
                    err(f"replica {k} ({urls[k]}) exited with {proc.returncode}; stopping the others")
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        err("stopping the servers")
        return 0
    finally:
        group.stop()
        signal.signal(signal.SIGTERM, old)

