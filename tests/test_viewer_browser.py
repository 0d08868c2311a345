"""The trace viewer in a real browser: headless Chromium renders pages made from scripted-engine
solves, and the tests assert on the DOM after the page's scripts ran.

Needs Debian's ``chromium`` (``apt-get install chromium``; CI installs it in ``.ci/run``);
skipped when no Chromium is on PATH (``SRCA_CHROMIUM`` names another binary), except under
``CI=true`` or ``SRCA_REQUIRE_CHROMIUM=1``, where that is an error. Screenshots are
kept as test artifacts in ``tests/artifacts/`` (git-ignored): ``viewer_<method>.png``.
"""
import json
import os
import select
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from srca import SearchConfig, Solver
from srca.engines.fake import ScriptedEngine
from srca.viewer import page_data, render_html, winner_index, write_html

from scripts import stepwise

ARTIFACTS = Path(__file__).parent / "artifacts"


def _chromium() -> str | None:
    for name in (os.environ.get("SRCA_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
# CI installs it (.ci/run, which runs with CI=true): there a missing browser is an error, never a skip
REQUIRED = os.environ.get("SRCA_REQUIRE_CHROMIUM") == "1" or os.environ.get("CI", "").lower() in ("1", "true")
if CHROMIUM is None and REQUIRED:
    raise RuntimeError("no chromium on PATH, and CI (or SRCA_REQUIRE_CHROMIUM=1) needs the browser test to run")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")


def browser(url: str, tmp_path: Path, *extra: str, timeout: float = 90.0) -> str:
    """Run headless Chromium on ``url``; returns its stdout (the DOM with --dump-dom)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *extra, url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: it
    reads commands on fd 3 and writes replies on fd 4, NUL-terminated JSON), for pages that
    change after loading: ``--dump-dom`` dumps at load (its virtual time does not reliably wait
    for a streamed fetch), this waits for what the page says it is done with."""

    def __init__(self, tmp_path: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends at 3 and 4, where Chromium looks
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={tmp_path / 'devtools-profile'}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4))  # kept open: the pipe ends fds() put there
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, timeout: float = 60.0, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply
                    return reply["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"no reply to {method} in {timeout} s"
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                assert chunk, "chromium closed the pipe"
                self._buf += chunk

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", session=self.session, expression=expr, returnByValue=True)
        return r["result"].get("value")

    def dom_when(self, url: str, ready_expr: str, timeout: float = 60.0) -> str:
        """Open ``url``, wait until ``ready_expr`` is truthy, return the document's HTML."""
        self.call("Page.navigate", session=self.session, url=url)
        deadline = time.monotonic() + timeout
        while not self.eval(ready_expr):
            assert time.monotonic() < deadline, f"the page never got to {ready_expr!r}"
            time.sleep(0.1)
        return self.eval("document.documentElement.outerHTML")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass  # it may close the pipe before it answers
        finally:
            os.close(self._w)
            os.close(self._r)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Dom(HTMLParser):
    """The rendered tree's nodes and the tally's rows, by their data attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.nodes: list[dict] = []
        self.rows: list[dict] = []
        self.body: dict = {}
        self.answer = ""
        self._in_answer = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-node-id" in a:
            self.nodes.append(a)
        elif tag == "tr" and "data-group" in a:
            self.rows.append(a)
        elif tag == "body":
            self.body = a
        self._in_answer = self._in_answer or a.get("id") == "answer"

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_answer = False

    def handle_data(self, data):
        if self._in_answer:
            self.answer += data


def scripted_solve(method: str, n: int = 4, events: list | None = None):
    # answers drift by sample before they agree, so the tree carries several answer groups
    script = stepwise(answers_by_step=lambda k, tag: str(5 + int(tag) % 3) if k < 2 else "7",
                      final=lambda tag: str(7 + int(tag) % 2), steps_to_finish=4)
    extra = {"probe_at": "step"} if method == "srca" else {}  # checkpoints after every step, to draw
    s = Solver(engine=ScriptedEngine(script), config=SearchConfig(method=method, n=n, max_steps=6, **extra))
    return s.solve("Natalia sold 48 clips in April and half as many in May. How many in all? (x < y & \\frac{a}{b})",
                   on_event=None if events is None else events.append)


def check_page(dom: Dom, sol) -> None:
    d = page_data(sol)
    assert dom.body.get("data-ready") == "1", "the page's script did not finish"
    # one element per trace node, the whole trace
    assert sorted(int(x["data-node-id"]) for x in dom.nodes) == sorted(t.id for t in sol.trace)
    # each node carries its answer's group, each group one colour, distinct groups distinct colours
    want = d["view"]["answer_groups"]
    colour: dict[str, str] = {}
    same: dict[str, str] = {}  # the renderer's group -> the page's: the same partition of the answers
    for x, t in zip(sorted(dom.nodes, key=lambda x: int(x["data-node-id"])), sorted(sol.trace, key=lambda t: t.id)):
        a = t.answer if t.finished else t.checkpoint
        assert (x.get("data-group") is None) == (a is None), (t, x)
        if a is not None:
            key = want[a]
            if key.startswith("g"):  # a pool group: the candidates' own group, whoever grouped
                assert x["data-group"] == key, (t, x)
            assert same.setdefault(key, x["data-group"]) == x["data-group"], (t, x)
            assert colour.setdefault(x["data-group"], x["data-color"]) == x["data-color"]
            assert x["data-color"].startswith(("#", "hsl"))
    assert len(set(same.values())) == len(same)
    assert len(colour) >= 2 and len(set(colour.values())) == len(colour)
    # the tally: one row per pool group, coloured like the tree
    pool_groups = {f"g{c.group}" for c in sol.candidates}
    assert {r["data-group"] for r in dom.rows} == pool_groups
    for r in dom.rows:
        if r["data-group"] in colour:
            assert r["data-color"] == colour[r["data-group"]]
    # the winner: exactly one node, the one its candidate came from; its tally row marked too
    w = sol.candidates[winner_index(d["solution"])]
    winners = [x for x in dom.nodes if "winner" in x["class"].split()]
    assert [int(x["data-node-id"]) for x in winners] == [w.node]
    assert [r["data-group"] for r in dom.rows if "winner" in r["class"].split()] == [f"g{w.group}"]
    assert sol.answer in dom.answer


@pytest.mark.parametrize("method", ["srca", "beam"])
def test_page_renders_the_whole_trace(method, tmp_path):
    sol = scripted_solve(method)
    page = write_html(sol, tmp_path / "trace.html")
    dom = Dom(browser(page.as_uri(), tmp_path, "--dump-dom"))
    check_page(dom, sol)
    if method == "beam":  # beam search prunes: pruned nodes are drawn as such
        pruned = [x for x in dom.nodes if x["data-status"] == "pruned"]
        assert len(pruned) == sum(1 for t in sol.trace if t.depth > 0 and not t.kept and not t.finished) > 0
    # the screenshot is kept for a person to look at (tests/artifacts/, git-ignored)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"viewer_{method}.png"
    shot.unlink(missing_ok=True)
    browser(page.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1440,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


class _Service(BaseHTTPRequestHandler):
    """A stand-in for ``srca serve``: the empty viewer page, and ``POST /solve`` answering with
    the recorded events of a scripted solve as server-sent events."""

    body: bytes = b""
    seen: list = []

    def do_GET(self):
        page = render_html(None).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        type(self).seen.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):  # keep pytest's output clean
        pass


def sse(events) -> bytes:
    # the service's own framing (service/streaming.py sse): event line, one data line, blank line
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def follow(events: list, tmp_path: Path) -> tuple[Dom, list]:
    """The empty page opened as ``?stream=1`` beside a stand-in service that answers ``events``:
    the DOM once the stream has ended, and the request bodies the service saw."""
    handler = type("H", (_Service,), {"body": sse(events), "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/view?stream=1&problem=What%20is%203%2B4%3F&method=beam&n=4"
        chrome = DevTools(tmp_path)
        try:  # the page marks body[data-stream] once the stream has ended and its last event is drawn
            return Dom(chrome.dom_when(url, "document.body.dataset.stream === 'ended'")), handler.seen
        finally:
            chrome.close()
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("with_final", [True, False])
def test_page_follows_a_stream(with_final, tmp_path):
    events: list = []
    sol = scripted_solve("beam", events=events)
    events = [e for e in events if e["type"] != "final"]
    if with_final:
        events.append({"type": "final", "answer": sol.answer, "confidence": sol.confidence,
                       "stop_reason": sol.stop_reason, "solution": sol.to_dict()})
    dom, seen = follow(events, tmp_path)
    assert seen == [{"problem": "What is 3+4?", "method": "beam", "n": 4, "stream": True}]
    if with_final:  # the final event's Solution replaces what the events built
        check_page(dom, sol)
    else:  # the tree as the step, checkpoint and select events drew it
        step_ids = {x["id"] for e in events if e["type"] == "step" for x in e["nodes"]}
        assert sorted(int(x["data-node-id"]) for x in dom.nodes) == sorted(step_ids | {0})
        kept = {k["id"] for e in events if e["type"] == "select" for k in e["kept"]}
        assert kept and {int(x["data-node-id"]) for x in dom.nodes if x["data-status"] == "kept"} == kept
        assert any(x["data-status"] == "pruned" for x in dom.nodes)


def test_answers_that_are_names_of_object_properties(tmp_path):
    # answers are free text: "constructor" or "__proto__" must be groups like any other
    sol = scripted_solve("srca")
    words = iter(["constructor", "__proto__", "toString", "hasOwnProperty"])
    rename = {}
    for t in sol.trace:
        for attr in ("answer", "checkpoint"):
            a = getattr(t, attr)
            if a is not None:
                if a not in rename:
                    rename[a] = next(words)
                setattr(t, attr, rename[a])
    for c in sol.candidates:
        c.answer = c.canonical = rename[c.answer]
    sol.answer = sol.canonical = rename[sol.answer]
    check_page(Dom(browser(write_html(sol, tmp_path / "t.html").as_uri(), tmp_path, "--dump-dom")), sol)
    # streamed, the page groups answers itself (no renderer's groups in a final event)
    final = {"type": "final", "answer": sol.answer, "confidence": sol.confidence, "stop_reason": sol.stop_reason,
             "solution": sol.to_dict()}
    dom, _ = follow([final], tmp_path)
    check_page(dom, sol)


def test_page_of_a_solve_stopped_before_any_answer(tmp_path):
    # the token budget runs out after one step: no candidates, no answer, still a page
    s = Solver(engine=ScriptedEngine(stepwise()), config=SearchConfig(method="beam", n=4, max_tokens_total=3))
    sol = s.solve("What is 3 + 4?")
    assert sol.answer is None and not sol.candidates and sol.stop_reason == "budget"
    dom = Dom(browser(write_html(sol, tmp_path / "t.html").as_uri(), tmp_path, "--dump-dom"))
    assert dom.body.get("data-ready") == "1"
    assert sorted(int(x["data-node-id"]) for x in dom.nodes) == [t.id for t in sol.trace]
    assert not dom.rows and not [x for x in dom.nodes if "winner" in x["class"].split()]
    assert "none" in dom.answer


def test_page_follows_the_service_stream(tmp_path):
    # the real app's POST /solve stream (service/routes/solve.py), with the page served from the same
    # origin (the service refuses cross-origin writes); redis is not needed for a streamed solve
    pytest.importorskip("fastapi")
    from fastapi.responses import HTMLResponse

    from redis_fixture import ServerThread
    from srca.service import ServiceConfig, create_app

    engine = ScriptedEngine(stepwise(answers_by_step=lambda k, tag: str(5 + int(tag) % 3) if k < 2 else "7",
                                     final=lambda tag: str(7 + int(tag) % 2), steps_to_finish=4))
    app = create_app(ServiceConfig(redis_url=None), engine=engine)
    app.add_api_route("/view", lambda: HTMLResponse(render_html(None)), methods=["GET"])
    with ServerThread(app) as srv:
        chrome = DevTools(tmp_path)
        try:
            html = chrome.dom_when(f"{srv.url}/view?stream=1&problem=What%20is%203%2B4%3F&method=beam&n=4",
                                   "document.body.dataset.stream === 'ended' || document.body.dataset.stream === 'error'")
        finally:
            chrome.close()
    dom = Dom(html)
    assert dom.body.get("data-stream") == "ended", html[-3000:]
    # the same solve again, directly: the page must show what the final event carried
    sol = Solver(engine=ScriptedEngine(engine.script), config=SearchConfig(method="beam", n=4)).solve("What is 3+4?")
    assert sorted(int(x["data-node-id"]) for x in dom.nodes) == [t.id for t in sol.trace]
    assert [int(x["data-node-id"]) for x in dom.nodes if "winner" in x["class"].split()] == \
        [sol.candidates[winner_index(sol.to_dict())].node]
    assert sol.answer in dom.answer
