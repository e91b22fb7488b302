"""Fixtures every test package may use: the multi-node Redis topologies (tests/redis_cluster.py),
each started once per session on first use and stopped at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_cluster import RedisClusterServers, RedisSentinelServers


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
