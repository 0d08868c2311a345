"""Logging for the CLI and the service: human-readable text (the default) or one JSON object a
line (``--log-format json`` or ``$SRCA_LOG_FORMAT=json``), for a log collector.

A JSON line holds ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message`` and
the context of the record: the ids bound to the running task (:func:`bind`: ``request_id``,
``solve_id``) and the fields given with ``extra=`` (``method``, ``n``, ``tokens``,
``latency_ms``, ``stop_reason``, ``cache``, ``status`` ...). Text lines show the same context as
``key=value`` pairs after the message.

Context lives in ``contextvars``, so it follows a request into the tasks it starts (asyncio
copies the context into a new task) and never leaks between requests.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import os
import sys
from typing import Any, Iterator, Mapping

FORMATS = ("text", "json")
FORMAT_ENV = "SRCA_LOG_FORMAT"

# the ids every record of the running task carries (copy-on-write: a task that binds a new id
# never changes what its parent task's records say)
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("srca_log_bound", default={})
# the current request's notes for its access log line (mutated in place: a solve annotates the
# request that awaits it, and the access log reads the notes when the response ends)
_notes: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("srca_log_notes", default=None)

# LogRecord's own attributes: everything else on a record came in through ``extra=``
# (uvicorn adds ``color_message``, the message with terminal colours: never context)
_STD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName",
                                                                         "color_message"}

_format = "text"


def resolve_format(given: str | None = None) -> str:
    """The format to use: ``given`` (a flag), else ``$SRCA_LOG_FORMAT``, else ``text``.
    Raises ``ValueError`` for anything else."""
    fmt = (given or os.environ.get(FORMAT_ENV) or "text").strip().lower()
    if fmt not in FORMATS:
        src = "--log-format" if given else FORMAT_ENV
        raise ValueError(f"{src}: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def current_format() -> str:
    """The format :func:`setup` installed last (``text`` before any call)."""
    return _format


def json_enabled() -> bool:
    return _format == "json"


# -- context --------------------------------------------------------------------------------------
@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged by this task (and the tasks it starts) inside the
    block."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> Mapping[str, Any]:
    return _bound.get()


@contextlib.contextmanager
def request_notes(**fields: Any) -> Iterator[dict[str, Any]]:
    """Open the notes of one request (the access log middleware); yields the dict it will read."""
    notes = dict(fields)
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def annotate(**fields: Any) -> None:
    """Note ``fields`` for the current request's access log line (nothing outside a request)."""
    notes = _notes.get()
    if notes is not None:
        notes.update({k: v for k, v in fields.items() if v is not None})


# -- formatters -----------------------------------------------------------------------------------
def record_context(record: logging.LogRecord) -> dict[str, Any]:
    """The bound ids, then the record's ``extra`` fields (which win on a clash)."""
    ctx = dict(getattr(record, "_srca_bound", None) or {})
    for k, v in record.__dict__.items():
        if k not in _STD and not k.startswith("_"):
            ctx[k] = v
    return ctx


class _ContextFilter(logging.Filter):
    """Stamps each record with the ids bound in the task that logged it (a record that already
    carries them, re-handled by another handler, keeps its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_srca_bound"):
            record._srca_bound = _bound.get()
        return True


def _plain(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes into ``exc`` (never a line of its own)."""

    def format(self, record: logging.LogRecord) -> str:
        t = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        out: dict[str, Any] = {"time": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage()}
        for k, v in record_context(record).items():
            out.setdefault(k, _plain(v))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """The given format, then the record's context as ``key=value`` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = record_context(record)
        if not ctx:
            return line
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in ctx.items())
        head, nl, rest = line.partition("\n")  # a traceback stays below the line
        return f"{head} {pairs}{nl}{rest}"


def _text_value(v: Any) -> str:
    s = str(v)
    return json.dumps(s, ensure_ascii=False) if (not s or any(c.isspace() or c in '"=' for c in s)) else s


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it between calls)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


# -- setup ----------------------------------------------------------------------------------------
SERVICE_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CLI_TEXT = "srca: %(message)s"


def formatter(fmt: str, text_format: str = SERVICE_TEXT) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter(text_format)


def setup(fmt: str = "text", level: int | str = logging.INFO, *, logger: str = "",
          text_format: str = SERVICE_TEXT) -> logging.Handler:
    """Send the records of ``logger`` (``""``: the root) to stderr in ``fmt``, replacing the
    handlers it had (so a line is never printed twice). Returns the handler."""
    global _format
    if fmt not in FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    _format = fmt
    target = logging.getLogger(logger or None)
    for h in list(target.handlers):
        target.removeHandler(h)
    h = _StderrHandler()
    h.setFormatter(formatter(fmt, text_format))
    h.addFilter(_ContextFilter())
    target.addHandler(h)
    target.setLevel(level if isinstance(level, int) else getattr(logging, str(level).upper(), logging.INFO))
    return h


def route_to_root(*names: str) -> None:
    """Let the named loggers (uvicorn's, which install their own handlers) log through the root
    handler, so every line has one format."""
    for name in names:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
