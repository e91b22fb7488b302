"""Fixtures every test package may use: the multi-node Redis topologies (tests/redis_cluster.py),
started once per session on first use, and the choice of the Redis the Redis-backed tests run
against: ``--redis=cluster`` (or ``JOEY_TEST_REDIS=cluster``) runs them against a real Redis
Cluster of 3 primaries and 3 replicas, besides the default single redis-server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.redis_cluster import RedisClusterServers, RedisSentinelServers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis", choices=("single", "cluster"),
        default=os.environ.get("JOEY_TEST_REDIS", "single"),
        help="the Redis the Redis-backed tests use: one redis-server (single, the default) "
             "or a Redis Cluster of 3 primaries and 3 replicas (cluster); "
             "env: JOEY_TEST_REDIS")  # fmt: skip


@pytest.fixture(scope="session")
def redis_topology(request: pytest.FixtureRequest) -> str:
    """``"single"`` or ``"cluster"``: what ``--redis`` chose."""
    chosen: str = request.config.getoption("--redis")
    return chosen


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real Redis Cluster (3 primaries, 3 replicas) for the session, on loopback."""
    servers = RedisClusterServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelServers]:
    """A primary, a replica and 3 sentinels for the session, on loopback."""
    servers = RedisSentinelServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.close()
