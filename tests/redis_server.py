"""A real redis-server on loopback for a test (or a session) to use, stop, restart, freeze and
thaw: the one helper every Redis-backed test uses (tasks, channels, rate limits).

With ``JOEY_TEST_REDIS=cluster`` in the environment (`make test-redis-cluster`), the fixtures
that share one Redis among tests (`shared_redis`) give a real Redis Cluster instead (3
primaries, 3 replicas: tests/redis_cluster.py), by its URL ``redis+cluster://...``: the Redis
part of the suite then runs unchanged against the cluster. Key prefixes carry a hash tag there
(`key_prefix`), so the key names a test reads are the ones the component wrote. Tests that
stop, freeze or restart a server of their own keep their single redis-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: the Redis-backed tests run against a real Redis Cluster (see the module docstring)
ON_CLUSTER = os.environ.get("JOEY_TEST_REDIS", "") == "cluster"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """The redis-server executable, installed with apt on first use (the test machines are
    Debian and the tests run as root)."""
    found = shutil.which("redis-server")
    if found is None:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "redis-server"], check=True,
                       capture_output=True, timeout=300,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is not installed and apt-get could not install it")
    return found


class RedisServer:
    """A redis-server on 127.0.0.1 and a port of its own. ``durable``: the append-only file
    is on (fsync always), so a restart keeps the data (same port, same directory)."""

    def __init__(self, *, durable: bool = False, prefix: str = "joey-redis-") -> None:
        self.binary = redis_server_binary()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.durable = durable
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers PING (not merely accepts connections: it
        answers LOADING while it reads its append-only file)."""
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
            try:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
            except OSError:
                return False

    def stop(self) -> None:
        """SIGTERM (after SIGCONT, if frozen): redis-server writes its AOF and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(15)
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the socket still accepts, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def clients(self) -> int:
        """Connections the server has right now (the one asking excluded)."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return len(client.client_list()) - 1
        finally:
            client.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class ClusterTarget:
    """The session's Redis Cluster, where a test expects a shared `RedisServer`: its URL."""

    def __init__(self, url: str) -> None:
        self.url = url


@contextmanager
def shared_redis(request: pytest.FixtureRequest, **options: Any) -> Iterator[Any]:
    """A `RedisServer` (started, stopped at the end) that tests share, each under a key
    prefix of its own; with ``JOEY_TEST_REDIS=cluster``, the session's Redis Cluster."""
    if ON_CLUSTER:
        cluster = request.getfixturevalue("redis_cluster")
        yield ClusterTarget("redis+cluster://" + cluster.url.removeprefix("redis://"))
        return
    server = RedisServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.close()


def key_prefix(size: int = 12, end: str = "") -> str:
    """A key prefix of a test's own; in a hash tag on a cluster, so that the names of the
    keys a component writes under it are the names the test reads."""
    name = f"t{uuid.uuid4().hex[:size]}"
    return "{" + name + "}" + end if ON_CLUSTER else name + end


#: for a test about one redis-server itself (its connections, its single keyspace), which
#: the cluster run leaves out
single_redis_only = pytest.mark.skipif(
    ON_CLUSTER, reason="about a single redis-server (JOEY_TEST_REDIS=cluster)")


@contextmanager
def sync_client(url: str) -> Iterator[Any]:
    """A blocking redis-py client for `url`, closed at the end: a ``redis.RedisCluster`` for a
    cluster's URL (``redis+cluster://``), a ``redis.Redis`` otherwise. (A blocking
    ``RedisCluster.close()`` leaves its nodes' pools connected: they are disconnected here.)"""
    import redis

    from joey._redis import cluster_url

    plain = cluster_url(url)
    client = redis.Redis.from_url(url) if plain is None else redis.RedisCluster.from_url(plain)
    try:
        yield client
    finally:
        nodes = client.get_nodes() if plain is not None else []
        client.close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


async def keys(client: Any, pattern: str) -> list[bytes]:
    """``KEYS pattern`` on a single Redis, or on every primary of a cluster (redis-py sends
    ``KEYS`` to one node of a cluster otherwise)."""
    from joey._redis import is_cluster

    options = {"target_nodes": "primaries"} if is_cluster(client) else {}
    found: list[bytes] = await client.keys(pattern, **options)
    return found
