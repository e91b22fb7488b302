"""Rate limits on a real redis-server: one budget across two uvicorn worker processes, every
policy atomic, and a Redis outage answered as configured (open or 503), never a 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from joey._redis import from_url
from tests.integration.servers import run_server, uvicorn_argv
from tests.redis_server import RedisServer, key_prefix, keys, shared_redis

redis_asyncio = pytest.importorskip("redis.asyncio")


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server of the test's own; the session's Redis Cluster with
    ``JOEY_TEST_REDIS=cluster`` (tests/redis_server.py)."""
    with shared_redis(request, prefix="joey-ratelimit-redis-") as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, always (to stop)."""
    server = RedisServer(prefix="joey-ratelimit-redis-")
    server.start()
    yield server
    server.close()


def env(server: RedisServer, **values: str) -> dict[str, str]:
    return {"REDIS_URL": server.url, "PREFIX": key_prefix(8, ":"), **values}


async def burst(base_url: str, count: int) -> list[httpx.Response]:
    # one connection per request, so the requests spread over both workers
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            return await client.get("/")

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_the_limit_holds_across_two_worker_processes(
        redis_server: RedisServer, tmp_path: Path, http: str) -> None:
    argv = uvicorn_argv("tests.security.ratelimit_app:asgi", "--workers", "2", "--http", http)
    # windows are aligned on the Redis clock: a window of 11 days keeps the test from
    # straddling a boundary (a new window, a fresh budget) by chance
    # failing closed, with time to answer: on a loaded machine a slow Redis call must show
    # as a 503 here, never as one request too many let through
    with run_server(argv, tmp_path, env=env(redis_server, LIMIT="25", WINDOW="1000000",
                                            FAIL_OPEN="0", REDIS_TIMEOUT="10"),
                    ready_path="/health") as server:
        responses = asyncio.run(burst(server.base_url, 80))
        # which worker accepts a connection is the kernel's choice: go on (bounded) until
        # both have answered, so the budget is shown shared, not per process
        deadline = time.monotonic() + 20
        while len({r.headers["x-pid"] for r in responses}) < 2 and (
                time.monotonic() < deadline):
            responses += asyncio.run(burst(server.base_url, 20))
        allowed = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        # (the ready probe's 404 is no route: app dependencies run for routes only)
        assert len(allowed) == 25, server.output
        assert len(refused) == len(responses) - 25
        assert len({r.headers["x-pid"] for r in responses}) == 2  # both workers served
        assert all(r.headers["ratelimit-policy"] == '"shared";q=25;w=1000000' for r in refused)
        assert all(1 <= int(r.headers["retry-after"]) <= 1000000 for r in refused)


@pytest.mark.parametrize("policy", ["sliding", "token_bucket"])
def test_every_policy_is_atomic_across_processes(
        redis_server: RedisServer, tmp_path: Path, policy: str) -> None:
    argv = uvicorn_argv("tests.security.ratelimit_app:app", "--workers", "2")
    with run_server(argv, tmp_path, env=env(redis_server, LIMIT="20", WINDOW="1000000",
                                            POLICY=policy, FAIL_OPEN="0", REDIS_TIMEOUT="10"),
                    ready_path="/health") as server:
        responses = asyncio.run(burst(server.base_url, 60))
    assert sum(r.status_code == 200 for r in responses) == 20
    assert {r.status_code for r in responses} == {200, 429}


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_stopped_mid_test_answers_as_configured(
        own_redis: RedisServer, tmp_path: Path, fail_open: bool) -> None:
    redis_server = own_redis
    argv = uvicorn_argv("tests.security.ratelimit_app:app")
    # a stopped server refuses connections at once; the timeout only spares a loaded machine
    values = env(redis_server, LIMIT="3", WINDOW="600", FAIL_OPEN="1" if fail_open else "0",
                 REDIS_TIMEOUT="2")
    with run_server(argv, tmp_path, env=values, ready_path="/health") as server, \
            httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert [client.get("/").status_code for _ in range(4)] == [200, 200, 200, 429]
        redis_server.stop()
        started = time.monotonic()
        during = [client.get("/") for _ in range(3)]
        assert time.monotonic() - started < 5  # bounded by the backend's timeout
        if fail_open:
            assert [r.status_code for r in during] == [200, 200, 200]
            assert "letting requests through" in server.output
        else:
            assert [r.status_code for r in during] == [503, 503, 503]
            assert all(r.headers["retry-after"] == "3" for r in during)
            assert during[0].headers["content-type"] == "application/problem+json"
        assert "Traceback" not in server.output
        redis_server.start()  # back: the budget is counted again (a fresh, empty Redis)
        deadline = time.monotonic() + 10
        statuses: list[int] = []
        while time.monotonic() < deadline:
            statuses = [client.get("/").status_code for _ in range(4)]
            if statuses == [200, 200, 200, 429]:
                break
            time.sleep(0.2)
        assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("policy", ["fixed", "sliding", "token_bucket"])
async def test_each_limit_expires_by_its_own_window_in_redis(
        redis_server: RedisServer, policy: str) -> None:
    """The in-memory backend once swept every key by the caller's window; in Redis each
    key carries a TTL of its own limit's window: a 1-second limit beside a 5-per-hour one
    never gives the hour's budget back."""
    from joey.ratelimit import RateLimit, RateLimitExceeded, RedisRateLimits

    client = from_url(redis_server.url)
    prefix = key_prefix(8, ":")
    try:
        backend = RedisRateLimits(client, prefix=prefix)
        login = RateLimit(5, 3600, policy=policy, backend=backend,  # type: ignore[arg-type]
                          name="login")
        burst = RateLimit(1, 1, backend=backend, name="burst")
        for _ in range(5):
            await login.check("ann")
        await burst.check("ann")
        # A second and more: the burst key expired (its own window), the hour's did not.
        deadline = time.monotonic() + 10
        while await keys(client, f"{prefix}burst:*") and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert await keys(client, f"{prefix}burst:*") == []
        await burst.check("ann")
        with pytest.raises(RateLimitExceeded):
            await login.check("ann")
        ttls = [await client.pttl(key) for key in await keys(client, f"{prefix}login:*")]
        assert ttls and all(1000 < ttl <= 2 * 3600 * 1000 for ttl in ttls), ttls
    finally:
        await client.aclose()
