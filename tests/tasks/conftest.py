"""Fixtures for the task tests: a real redis-server on loopback, and worker subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from joey.tasks import InMemoryTasks

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        # The test machines are Debian and we run as root: install it on first use.
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "redis-server"],
            check=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is not installed and apt-get could not install it")
    return found


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A fresh redis-server on 127.0.0.1 and a free port, for the whole session."""
    import redis

    binary = _redis_server_binary()
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="joey-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test: tests share one server, never keys."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def memory() -> AsyncIterator[InMemoryTasks]:
    tasks = InMemoryTasks(max_concurrency=4, shutdown_timeout=2)
    await tasks.start()
    yield tasks
    await tasks.stop()


WorkerFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(redis_url: str, prefix: str) -> Iterator[WorkerFactory]:
    """Start `python -m joey worker worker_app:app` processes (or another `target`, imported
    from `app_dir`); all are ended at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        concurrency: int = 4,
        visibility: float = 1.5,
        shutdown: float = 2.0,
        target: str = "worker_app:app",
        app_dir: Path = HERE,
        url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **(extra_env or {}),
            "JOEY_TEST_REDIS_URL": url or redis_url,
            "JOEY_TEST_PREFIX": prefix,
            "JOEY_TEST_VISIBILITY": str(visibility),
            "JOEY_TEST_SHUTDOWN": str(shutdown),
            "JOEY_TEST_CONCURRENCY": str(concurrency),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "joey", "worker", target, "--app-dir", str(app_dir),
             "--log-level", "info"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        # Return once the worker consumes, so every test starts from working workers.
        assert proc.stderr is not None
        while b"] started" not in (line := proc.stderr.readline()):
            if not line:
                pytest.fail(f"the worker exited before starting (status {proc.wait(10)})")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def stop_gracefully(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM a worker process, fail the test if it does not stop cleanly; its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail("the worker did not stop on SIGTERM:\n" + err.decode()[-3000:])
    assert proc.returncode == 0, err.decode()
    return err.decode()


class RedisServer:
    """A redis-server of a test's own, to freeze (SIGSTOP), stop and restart."""

    def __init__(self, *, appendonly: bool = False) -> None:
        self.binary = _redis_server_binary()
        self.port = _free_port()
        self.workdir = tempfile.mkdtemp(prefix="joey-redis-own-")
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
             "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self._ready():  # accepting connections, and done loading its AOF
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
            try:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")  # "-LOADING" while it loads
            except OSError:
                return False

    def stop(self) -> None:
        """SIGTERM: redis-server writes its AOF and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(15)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone (AOF off); stopped and removed at teardown."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def own_redis_aof() -> Iterator[RedisServer]:
    """The same with the append-only file on (fsync always), to survive restarts."""
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)
