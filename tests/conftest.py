"""Fixtures every test package may use: the multi-node Redis topologies (tests/redis_cluster.py),
each started once per session on first use and stopped at its end."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

from tests.redis_cluster import RedisClusterServers, RedisSentinelServers
from tests.redis_server import ON_CLUSTER


def pytest_configure(config: pytest.Config) -> None:
    if ON_CLUSTER:
        # The cluster run (JOEY_TEST_REDIS=cluster): redis-py's RedisCluster can leave a node
        # connection it was using when a blocking read of a channel's stream is cancelled (a
        # subscriber leaving) for the garbage collector to close, and its ResourceWarning then
        # fails whichever test the collection lands in (the same as in
        # tests/test_redis_failover.py). The single-Redis run (`make test`) keeps them errors.
        # ("Unclosed ClusterNode object", "Unclosed RedisCluster client", "unclosed
        # Connection", "unclosed <socket.socket", "unclosed transport", "loop is closed")
        for message in ("Unclosed", "unclosed", "loop is closed"):
            config.addinivalue_line("filterwarnings", f"ignore:{message}:ResourceWarning")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if ON_CLUSTER:
        # the same leftovers, collected before pytest collects them itself at exit (where
        # the filters above no longer apply)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


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
