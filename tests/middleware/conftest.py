"""Fixtures for the middleware tests: a real redis-server for RedisStore (the session's Redis
Cluster with ``JOEY_TEST_REDIS=cluster``: tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import shared_redis


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1, no persistence, for the whole test session."""
    with shared_redis(request, prefix="joey-sessions-redis-") as server:
        yield server.url
