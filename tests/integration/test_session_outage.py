"""Issue #12.3: a Redis outage under a real uvicorn never logs anyone out.

A real redis-server on loopback is frozen (SIGSTOP) and then stopped outright while a real
uvicorn serves Redis-backed sessions: every request that needs the session gets the app's own
503 with Retry-After, in bounded time, the cookie is never deleted or rewritten, and the same
cookie works again as soon as Redis is back.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import free_port, run_server, uvicorn_argv
from tests.redis_server import redis_server_binary as _redis_binary


class RedisProcess:
    """A redis-server on one loopback port that can be frozen, thawed, stopped and restarted.

    Append-only persistence in its own directory, so a restart keeps the sessions.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen one cannot act on SIGTERM
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    redis = RedisProcess(workdir)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def _assert_outage_answer(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"error": "sessions are down", "retry_after": 7}  # the app's own
    assert "set-cookie" not in response.headers  # the cookie is neither deleted nor rewritten
    assert elapsed < 5  # store_timeout=0.5 bounds a frozen Redis


def _timed(call: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    started = time.monotonic()
    response = call.request(method, path, **kwargs)  # type: ignore[arg-type]
    _assert_outage_answer(response, time.monotonic() - started)
    return response


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_redis_outage_is_a_503_and_the_session_survives(
    http: str, redis_process: RedisProcess, tmp_path: Path
) -> None:
    argv = uvicorn_argv("tests.integration.session_app:app", "--http", http)
    env = {"JOEY_TEST_REDIS_URL": redis_process.url}
    with run_server(argv, tmp_path, env=env, ready_path="/health") as server, httpx.Client(
        base_url=server.base_url, timeout=10
    ) as client:
        login = client.post("/login")
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].split(";")[0]
        client.cookies.clear()  # each request below says exactly which cookie it sends
        assert client.get("/me", headers={"cookie": cookie}).json() == {"user": "ada"}

        # 1. Frozen Redis: loads and saves time out.
        redis_process.signal(signal.SIGSTOP)
        try:
            _timed(client, "GET", "/me", headers={"cookie": cookie})  # the load fails
            _timed(client, "POST", "/login")  # no cookie: only the save fails
            assert client.get("/health", headers={"cookie": cookie}).text == "ok"
        finally:
            redis_process.signal(signal.SIGCONT)
        assert client.get("/me", headers={"cookie": cookie}).json() == {"user": "ada"}

        # 2. Redis gone: connections are refused.
        redis_process.stop()
        _timed(client, "GET", "/me", headers={"cookie": cookie})
        _timed(client, "POST", "/login")
        redis_process.start()
        deadline = time.monotonic() + 10
        while True:  # bounded: the client's pool reconnects on the next command
            back = client.get("/me", headers={"cookie": cookie})
            if back.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert back.status_code == 200 and back.json() == {"user": "ada"}
        assert "set-cookie" not in back.headers

    assert "Exception in ASGI application" not in server.output
    assert "Session store could not load a session: timed out" in server.output
    assert "Session store could not save a session" in server.output
