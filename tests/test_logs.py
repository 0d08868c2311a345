"""srca.logs: the JSON and text formats, context binding across tasks, request notes."""
from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from srca import logs


@pytest.fixture
def capture(monkeypatch):
    """A logger of its own whose lines land in a buffer, in the format asked for."""

    monkeypatch.setattr(logs, "_format", logs.current_format())  # setup() changes it: restored after

    def make(fmt: str) -> tuple[logging.Logger, io.StringIO]:
        buf = io.StringIO()
        monkeypatch.setattr("sys.stderr", buf)  # the handler writes to the stderr of the moment
        logs.setup(fmt, logging.DEBUG, logger="srca.test_logs")
        lg = logging.getLogger("srca.test_logs")
        lg.propagate = False
        return lg, buf

    yield make
    lg = logging.getLogger("srca.test_logs")
    for h in list(lg.handlers):
        lg.removeHandler(h)


def test_json_line_has_time_level_logger_message_context_and_traceback(capture):
    lg, buf = capture("json")
    with logs.bind(request_id="r1"), logs.bind(solve_id="s1"):
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            lg.exception("failed %s", "here", extra={"tokens": 12, "method": "srca"})
    lg.info("after")
    first, second = [json.loads(x) for x in buf.getvalue().splitlines()]  # two records, two lines
    assert first["level"] == "error" and first["logger"] == "srca.test_logs" and first["message"] == "failed here"
    assert first["time"].endswith("Z") and first["request_id"] == "r1" and first["solve_id"] == "s1"
    assert first["tokens"] == 12 and first["method"] == "srca" and "ValueError: boom" in first["exc"]
    assert "request_id" not in second and "solve_id" not in second  # the binding ended with its block


def test_text_line_keeps_its_format_and_adds_context_pairs(capture):
    lg, buf = capture("text")
    with logs.bind(request_id="r2"):
        lg.warning("slow request", extra={"latency_ms": 12.5, "path": "/solve x"})
    line = buf.getvalue().rstrip("\n")
    assert "WARNING srca.test_logs: slow request request_id=r2 latency_ms=12.5" in line
    assert line.endswith('path="/solve x"')  # a value with a space is quoted


def test_context_follows_tasks_without_leaking_between_them():
    seen: dict[str, dict] = {}

    async def request(rid: str) -> None:
        with logs.bind(request_id=rid), logs.request_notes() as notes:
            async def solve() -> None:  # a task started by the request: it sees the id, its
                with logs.bind(solve_id=rid + "-solve"):  # own binding stays its own
                    await asyncio.sleep(0.01)
                    seen[rid + "-task"] = dict(logs.bound())
                logs.annotate(cache="miss", tokens=None)  # None: not noted

            await asyncio.gather(asyncio.ensure_future(solve()), asyncio.sleep(0.005))
            seen[rid] = {**logs.bound(), **notes}

    async def main() -> None:
        await asyncio.gather(request("a"), request("b"))

    asyncio.run(main())
    assert seen["a"] == {"request_id": "a", "cache": "miss"} and seen["b"] == {"request_id": "b", "cache": "miss"}
    assert seen["a-task"] == {"request_id": "a", "solve_id": "a-solve"}
    logs.annotate(cache="hit")  # outside a request: nothing to note, no error
    assert logs.bound() == {}


def test_resolve_format_flag_env_and_errors(monkeypatch):
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    assert logs.resolve_format() == "text" and logs.resolve_format("json") == "json"
    monkeypatch.setenv(logs.FORMAT_ENV, "JSON")
    assert logs.resolve_format() == "json" and logs.resolve_format("text") == "text"
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    with pytest.raises(ValueError, match="SRCA_LOG_FORMAT"):
        logs.resolve_format()
