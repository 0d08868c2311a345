"""``srca serve``: run the HTTP service (FastAPI + uvicorn) over one engine.

Service flags are generated from :class:`srca.service.ServiceConfig`, search defaults from
:class:`srca.SearchConfig` (requests override them field by field).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from typing import Any

from .common import (UsageError, add_config_args, add_dataclass_args, add_engine_args, config_from_args,
                     engine_from_args, given_fields)

# tests (and only tests) may swap the engine for the scripted fake: "fake" or "fake:<latency_s>"
# ("fake:100000" plays a hung engine); "fake:<latency_s>:steps=<k>" reasons for k steps before
# its answer (a search with several steps to stream)
TEST_ENGINE_ENV = "SRCA_SERVE_TEST_ENGINE"


def _stepwise_script(steps: int):
    """k short steps, then ``\\boxed{0}``; every checkpoint probe answers 0. A request without
    stop strings (a whole sample) writes the steps left and the answer at once."""

    def script(prompt: str, req: Any, i: int) -> str:
        if prompt.endswith("\\boxed{"):
            return "0}"
        done = prompt.rsplit("<assistant>", 1)[-1].count("Step ")
        left = [f"Step {k}: think it over.\n\n" for k in range(done + 1, steps + 1)]
        if not req.stop:
            return "".join(left) + "The answer is \\boxed{0}."
        return left[0] if left else "The answer is \\boxed{0}."

    return script


def _service_config_cls() -> type:
    from ..service.config import ServiceConfig

    return ServiceConfig


def _service_flag(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    if f.name == "redis_url":  # read as text: "none" turns Redis off (service_config_from_args)
        return {"type": str, "help": f"(default {f.default!r}) ('none': run without Redis; env SRCA_REDIS_URL)"}
    return {}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP service",
                       description="Serve /solve, /jobs, the OpenAI-compatible /v1 facade, /healthz, /readyz "
                                   "and /metrics. API keys: comma-separated in $SRCA_API_KEYS (see --api-keys-env).")
    add_dataclass_args(p, _service_config_cls(), "service (ServiceConfig fields)", custom=_service_flag)
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=run)


def service_config_from_args(args: argparse.Namespace) -> Any:
    cls = _service_config_cls()
    given = given_fields(args, cls)
    if "redis_url" not in given and os.environ.get("SRCA_REDIS_URL"):
        given["redis_url"] = os.environ["SRCA_REDIS_URL"]
    if str(given.get("redis_url", "")).lower() in ("none", "off", "null"):
        given["redis_url"] = None
    try:
        return cls.from_dict(given)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def _engine(args: argparse.Namespace) -> Any:
    test = os.environ.get(TEST_ENGINE_ENV)
    if test:
        from ..engines import make_engine

        kind, _, rest = test.partition(":")
        latency, _, script = rest.partition(":")
        if kind != "fake" or (script and not (script.startswith("steps=") and script[6:].isdigit())):
            raise UsageError(f"{TEST_ENGINE_ENV}: only 'fake[:latency_s[:steps=K]]' is supported")
        opts: dict[str, Any] = {"script": _stepwise_script(int(script[6:]))} if script else {}
        return make_engine("fake", latency_s=float(latency or 0), **opts)
    return engine_from_args(args)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..service import create_app
    except ImportError as e:
        raise UsageError(f"the service needs its extra: pip install 'srca[service]' ({e})") from None
    scfg = service_config_from_args(args)
    cfg = config_from_args(args)
    from .. import logs
    from ..answer_work import check_workers

    try:  # the service's answer workers come from it: a bad value is said before a model loads
        check_workers(None, default="auto")
    except ValueError as e:
        raise UsageError(str(e)) from None

    try:
        fmt = logs.resolve_format(getattr(args, "log_format", None))
    except ValueError as e:
        raise UsageError(str(e)) from None
    level = getattr(logging, scfg.log_level.upper(), logging.INFO)
    # a service logs each line once, through the root handler (timestamped text, or JSON): the
    # CLI's own "srca: ..." progress handler goes, or it would print every srca line twice
    logs.setup(fmt, level)
    logs.route_to_root("srca")
    # Python warnings (a library's deprecation notice) as records too, not raw lines in a JSON log
    logging.captureWarnings(fmt == "json")
    logging.getLogger("srca").setLevel(level)
    log = logging.getLogger("srca.serve")

    def say(msg: str, level: int = logging.INFO) -> None:  # start-up lines: as before, or JSON records
        if fmt == "json":
            log.log(level, msg)
        else:
            print(f"srca serve: {msg}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    say(f"loading {args.engine} engine {args.model or ''}".rstrip())
    try:
        engine = _engine(args)
    except UsageError:
        raise
    except Exception as e:  # an unreachable server, a missing model: one line, not a traceback chain
        why = " ".join(str(e).split())[:400]
        say(f"the engine did not start: {type(e).__name__}: {why}", logging.ERROR)
        return 1
    say(f"engine ready in {time.monotonic() - t0:.1f}s; listening on http://{scfg.host}:{scfg.port} "
        f"(redis: {scfg.redis_url or 'off'})")
    from ..service.http import uvicorn_config

    app = create_app(scfg, engine=engine, search_config=cfg)
    server_config = uvicorn_config(app, scfg)
    # uvicorn installs its own handlers and format while building its config: its lines too go
    # through the root handler, in the chosen format ("uvicorn.access" stays as uvicorn left it,
    # silent: the service writes its own access line, with the request id)
    logs.route_to_root("uvicorn", "uvicorn.error")
    uvicorn.Server(server_config).run()
    return 0
