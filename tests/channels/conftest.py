"""Fixtures for the channel tests: real redis-servers on loopback, started by the tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.integration.servers import free_port


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:  # the test machines are Debian: install it on first use (as tests/tasks)
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "redis-server"], check=True,
                       capture_output=True, timeout=300,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/bin:/bin:/usr/sbin"})
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is not installed and apt-get could not install it")
    return found


class RedisServer:
    """A redis-server on 127.0.0.1 that a test can stop, restart (same port, same data with
    ``durable``), freeze and thaw."""

    def __init__(self, durable: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.durable = durable
        self.workdir = tempfile.mkdtemp(prefix="joey-channels-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.BusyLoadingError:
                    time.sleep(0.05)
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        pytest.fail(f"redis-server did not start on port {self.port}")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def clients(self) -> int:
        """Connections the server has right now (ours excluded)."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return len(client.client_list()) - 1
        finally:
            client.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (tests use their own key prefix on it)."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A durable redis-server (AOF, fsync always) of this test's own, to stop and restart."""
    server = RedisServer(durable=True)
    server.start()
    yield server
    server.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"
