"""Fixtures for the service tests: a real ``redis-server`` (or ``$SRCA_TEST_REDIS_URL``), the app
over real HTTP (uvicorn in a thread) and ``srca serve`` subprocesses.

Import from test modules: ``from redis_fixture import redis_url, ...`` (tests/ is on sys.path).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` child process on a random port; ``kill()`` and ``start()`` again keep
    the port (the data is kept across restarts only with ``appendonly``)."""

    def __init__(self, tmpdir: Path, appendonly: bool = False) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.dir = tmpdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--daemonize", "no", "--dir", str(self.dir), "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--loglevel", "warning", "--maxclients", "4000"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A Redis URL for the session: ``$SRCA_TEST_REDIS_URL`` or a redis-server of our own."""
    env = os.environ.get("SRCA_TEST_REDIS_URL")
    if env:
        yield env
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.kill()


@pytest.fixture
def own_redis(tmp_path: Path):
    """A private redis-server that a test may kill and restart."""
    server = RedisServer(tmp_path, appendonly=True).start()
    yield server
    server.kill()


def unique_prefix() -> str:
    """Keys of each test live under their own prefix (a shared Redis is never flushed)."""
    return f"srca-test-{uuid.uuid4().hex[:8]}:"


class ServerThread:
    """An ASGI app served by uvicorn over real HTTP on 127.0.0.1, in a thread of this process."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", timeout_graceful_shutdown=3, backlog=4096))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ServiceProcess:
    """``srca serve`` as a child process, started as a user would (``SRCA_SERVE_TEST_ENGINE``
    swaps in the scripted engine). Logs go to ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 60) -> "ServiceProcess":
        exe = shutil.which("srca")
        cmd = [exe] if exe else [sys.executable, "-m", "srca.cli"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=str(ROOT))
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"srca serve exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"srca serve not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
