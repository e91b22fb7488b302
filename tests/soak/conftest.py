"""Fixtures of the soak and idle tests: a redis-server of the module's own, and the soak app's
environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(prefix="joey-soak-redis-")
    server.start()
    yield server
    server.close()


@pytest.fixture
def soak_env(redis_server: RedisServer) -> dict[str, str]:
    """The soak app's settings (tests/soak/app.py): this server, keys of the test's own."""
    return {"SOAK_REDIS_URL": redis_server.url, "SOAK_PREFIX": f"s{uuid.uuid4().hex[:10]}"}
