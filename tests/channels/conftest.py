"""Fixtures for the channel tests: real redis-servers on loopback, started by the tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer, shared_redis


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One redis-server for the session (tests use their own key prefix on it); the session's
    Redis Cluster with ``JOEY_TEST_REDIS=cluster`` (tests/redis_server.py)."""
    with shared_redis(request, prefix="joey-channels-redis-") as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A durable redis-server (AOF, fsync always) of this test's own, to stop and restart."""
    server = RedisServer(durable=True, prefix="joey-channels-redis-")
    server.start()
    yield server
    server.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"
