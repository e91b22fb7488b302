"""The response cache across real worker processes: uvicorn ``--workers 2`` (httptools and
h11) serving tests/integration/caching_app.py with a RedisCache on a real redis-server.

A hundred concurrent misses of one key, spread over both workers on connections known to
reach each, run the handler once; an invalidation made through one worker is seen by both;
the lock of a process that dies while computing expires and another computes; conditional
requests (304, HEAD) go over the wire as HTTP says under both parsers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.servers import ROOT, Server, run_server, uvicorn_argv
from tests.redis_server import key_prefix, shared_redis, sync_client

HTTP = pytest.mark.parametrize("http", ["httptools", "h11"])


@pytest.fixture(scope="module")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A redis-server for the module (the session's Redis Cluster with
    ``JOEY_TEST_REDIS=cluster``: tests/redis_server.py)."""
    with shared_redis(request, prefix="joey-redis-workers-") as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    return key_prefix(10, ":")


@pytest.fixture
def counts(redis_url: str) -> Iterator[redis.Redis]:
    with sync_client(redis_url) as client:
        yield client


def serve(http: str, tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Server]:
    argv = uvicorn_argv("tests.integration.caching_app:app", "--http", http, "--workers", "2")
    env = {"JOEY_TEST_REDIS_URL": redis_url, "JOEY_TEST_PREFIX": prefix}
    with run_server(argv, tmp_path, env=env, ready_path="/health") as server:
        yield server


class Connection:
    """One keep-alive HTTP/1.1 connection: every request on it reaches the same worker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.worker = ""

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = cls(reader, writer)
        _, headers, _ = await connection.request("GET", "/health")
        connection.worker = headers["x-worker"]
        return connection

    async def send(self, method: str, path: str, headers: dict[str, str] | None = None,
                   ) -> None:
        lines = [f"{method} {path} HTTP/1.1", "host: test", "content-length: 0",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def receive(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 60)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        length = int(headers.get("content-length", "0"))
        body = b""
        if method != "HEAD" and status not in (204, 304) and length:
            body = await asyncio.wait_for(self.reader.readexactly(length), 60)
        return status, headers, body

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      ) -> tuple[int, dict[str, str], bytes]:
        await self.send(method, path, headers)
        return await self.receive(method)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def connections_to_both_workers(port: int, each: int) -> list[Connection]:
    """At least ``each`` open connections to each of the two workers (bounded)."""
    found: dict[str, list[Connection]] = {}
    extra: list[Connection] = []
    for _ in range(40):
        batch = await asyncio.gather(*(Connection.open(port) for _ in range(20)))
        for connection in batch:
            bucket = found.setdefault(connection.worker, [])
            (bucket if len(bucket) < each else extra).append(connection)
        if len(found) == 2 and all(len(b) >= each for b in found.values()):
            break
    await asyncio.gather(*(c.close() for c in extra))
    assert len(found) == 2 and all(len(b) >= each for b in found.values()), (
        f"connections per worker: { {w: len(b) for w, b in found.items()} }")
    return [c for bucket in found.values() for c in bucket]


@HTTP
async def test_a_hundred_concurrent_misses_over_two_workers_run_the_handler_once(
        http: str, tmp_path: Path, redis_url: str, prefix: str, counts: redis.Redis) -> None:
    for server in serve(http, tmp_path, redis_url, prefix):
        connections = await connections_to_both_workers(server.port, 50)
        try:
            await asyncio.gather(*(c.send("GET", "/slow") for c in connections))
            deadline = time.monotonic() + 30
            while not counts.exists(prefix + "slow-started"):  # bounded: the first run began
                assert time.monotonic() < deadline, server.output
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the rest arrive and wait: in process, or polling Redis
            counts.set(prefix + "go", 1)
            answers = await asyncio.gather(*(c.receive() for c in connections))
        finally:
            await asyncio.gather(*(c.close() for c in connections))
        output = server.output
    assert int(counts.get(prefix + "slow-runs") or 0) == 1
    assert [status for status, _, _ in answers] == [200] * 100
    assert {body for _, _, body in answers} == {b'{"run":1}'}
    statuses = [headers["cache-status"] for _, headers, _ in answers]
    assert statuses.count("joey; fwd=uri-miss; stored") == 1, statuses
    others = [s for s in statuses if not s.endswith("stored")]
    assert all(s == "joey; fwd=uri-miss; collapsed" or s.startswith("joey; hit")
               for s in others), others
    assert len({headers["x-worker"] for _, headers, _ in answers}) == 2
    assert "Traceback" not in output


@HTTP
async def test_an_invalidation_through_one_worker_is_seen_by_both(
        http: str, tmp_path: Path, redis_url: str, prefix: str, counts: redis.Redis) -> None:
    for server in serve(http, tmp_path, redis_url, prefix):
        connections = await connections_to_both_workers(server.port, 1)
        by_worker = {c.worker: c for c in connections}
        try:
            before = {}
            for worker, connection in by_worker.items():
                status, headers, body = await connection.request("GET", "/version")
                assert status == 200
                before[worker] = (headers["cache-status"], body)
            assert sorted(s for s, _ in before.values())[0].startswith("joey; fwd=uri-miss")
            assert any(s.startswith("joey; hit") for s, _ in before.values())
            assert len({body for _, body in before.values()}) == 1
            first, second = by_worker.values()
            status, _, body = await first.request("POST", "/version")
            assert status == 200 and body == b'{"version":1}'
            after = [await c.request("GET", "/version") for c in (second, first)]
        finally:
            await asyncio.gather(*(c.close() for c in connections))
    assert [body for _, _, body in after] == [b'{"version":1,"run":2}'] * 2
    assert after[0][1]["cache-status"] == "joey; fwd=uri-miss; stored"
    assert after[1][1]["cache-status"].startswith("joey; hit")
    assert int(counts.get(prefix + "version-runs") or 0) == 2


def start_computing_for_ever(redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    """A process of its own serving the app in process, computing /slow until it is killed
    (a worker that dies mid-way: it holds the lock, and renews it while it lives)."""
    env = {**os.environ, "JOEY_TEST_REDIS_URL": redis_url, "JOEY_TEST_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, "-c", "from joey.testing import TestClient\n"
         "from tests.integration.caching_app import app\n"
         "TestClient(app).get('/slow', headers={'x-block': '1'})\n"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@HTTP
async def test_the_lock_of_a_process_that_dies_computing_expires_and_a_worker_computes(
        http: str, tmp_path: Path, redis_url: str, prefix: str, counts: redis.Redis) -> None:
    counts.set(prefix + "go", 1)
    dying = start_computing_for_ever(redis_url, prefix)
    try:
        for server in serve(http, tmp_path, redis_url, prefix):
            deadline = time.monotonic() + 30
            while not counts.exists(prefix + "slow-started"):  # it holds the lock now
                assert time.monotonic() < deadline and dying.poll() is None
                await asyncio.sleep(0.05)
            connection = await Connection.open(server.port)
            try:
                await connection.send("GET", "/slow")
                await asyncio.sleep(0.5)
                assert int(counts.get(prefix + "slow-runs") or 0) == 1  # it waits...
                dying.send_signal(signal.SIGKILL)  # ... for a computation that never ends
                status, headers, body = await connection.receive()
            finally:
                await connection.close()
    finally:
        if dying.poll() is None:
            dying.kill()
        dying.wait(10)
    assert status == 200 and body == b'{"run":2}'
    assert headers["cache-status"] == "joey; fwd=uri-miss; stored"
    assert int(counts.get(prefix + "slow-runs") or 0) == 2


@HTTP
async def test_conditional_requests_over_the_wire(
        http: str, tmp_path: Path, redis_url: str, prefix: str) -> None:
    for server in serve(http, tmp_path, redis_url, prefix):
        connection = await Connection.open(server.port)
        try:
            status, headers, body = await connection.request("GET", "/version")
            etag = headers["etag"]
            assert status == 200 and headers["cache-control"] == "public, max-age=60"
            status, headers, body = await connection.request(
                "GET", "/version", {"if-none-match": etag})
            assert status == 304 and body == b""
            assert headers["etag"] == etag and "content-length" not in headers
            assert headers["cache-status"].startswith("joey; hit")
            status, headers, body = await connection.request("HEAD", "/version")
            assert status == 200 and body == b"" and int(headers["content-length"]) > 0
            # the connection is still in step: the next answer is the next request's
            status, _, body = await connection.request("GET", "/health")
            assert status == 200 and body == b"ok"
        finally:
            await connection.close()
