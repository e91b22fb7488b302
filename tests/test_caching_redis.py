"""RedisCache against a real redis-server on loopback: entries and invalidations shared by
separate stores (each the view of one worker process), the lock that lets one of them compute
and expires when its holder dies, expiry by the server's clock, and outages (stopped, frozen):
served without the store and logged once, or 503 with Retry-After; never a 500."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from joey import App
from joey._redis import from_url
from joey.caching import CacheUnavailable, Caching, RedisCache
from joey.caching.store import Entry
from joey.testing import AsyncTestClient
from tests.redis_server import RedisServer, key_prefix, keys, shared_redis

# Redis calls on a loaded test machine can take longer than the default timeout (0.5 s): the
# tests that are not about failures give them more.
PATIENT = 5.0


@pytest.fixture(scope="module")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A redis-server for the module (the session's Redis Cluster with
    ``JOEY_TEST_REDIS=cluster``: tests/redis_server.py)."""
    with shared_redis(request, prefix="joey-redis-cache-") as server:
        yield server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop or freeze."""
    server = RedisServer(prefix="joey-redis-cache-own-")
    server.start()
    yield server
    server.close()


@pytest.fixture
def prefix() -> str:
    return key_prefix(10, ":")


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[aioredis.Redis]]:
    """Two clients: two worker processes' connections."""
    made: list[aioredis.Redis] = [from_url(redis_url) for _ in range(2)]
    yield made
    for client in made:
        await client.aclose()


class Handler:
    """A counted handler; ``gate`` holds every run until it is set."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()  # set by every run

    def app(self, store: RedisCache, **options: Any) -> App:
        app = App()

        @app.get("/items/{id:int}", caching=Caching(store=store, ttl=60,
                                                    tags=["items", "item:{id}"], **options))
        async def item(id: int) -> dict[str, int]:
            self.runs += 1
            run = self.runs
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
            return {"id": id, "run": run}

        return app


async def test_what_one_process_stores_another_serves(clients: list[aioredis.Redis],
                                                      prefix: str) -> None:
    handler = Handler()
    one, two = (handler.app(RedisCache(client, prefix=prefix, timeout=PATIENT))
                for client in clients)
    async with AsyncTestClient(one) as first, AsyncTestClient(two) as second:
        stored = await first.get("/items/1")
        assert stored.headers["cache-status"] == "joey; fwd=uri-miss; stored"
        served = await second.get("/items/1")
        assert served.json() == {"id": 1, "run": 1}
        assert served.headers["cache-status"].startswith("joey; hit; ttl=")
        assert int(served.headers["age"]) >= 0
        head = await second.head("/items/1")
        assert head.status_code == 200 and head.content == b"" and handler.runs == 1


async def test_invalidations_are_seen_by_every_process(clients: list[aioredis.Redis],
                                                       prefix: str) -> None:
    handler = Handler()
    stores = [RedisCache(client, prefix=prefix, timeout=PATIENT) for client in clients]
    one, two = (handler.app(store) for store in stores)
    async with AsyncTestClient(one) as first, AsyncTestClient(two) as second:
        async def run(client: AsyncTestClient, path: str) -> int:
            value: int = (await client.get(path)).json()["run"]
            return value

        assert (await run(first, "/items/1"), await run(first, "/items/2")) == (1, 2)
        await stores[1].invalidate("/items/1")
        assert (await run(first, "/items/1"), await run(first, "/items/2")) == (3, 2)
        await stores[1].invalidate_tag("item:2")
        assert (await run(first, "/items/1"), await run(first, "/items/2")) == (3, 4)
        await stores[0].invalidate_tag("items")
        assert (await run(second, "/items/1"), await run(second, "/items/2")) == (5, 6)
        await stores[0].clear()
        assert await run(second, "/items/1") == 7
    leftovers = await keys(clients[0], prefix + "*")
    assert b"generation" in {key.removeprefix(prefix.encode()) for key in leftovers}


async def test_concurrent_misses_in_two_processes_compute_once(
        clients: list[aioredis.Redis], prefix: str) -> None:
    handler = Handler()
    handler.gate = asyncio.Event()
    one, two = (handler.app(RedisCache(client, prefix=prefix, timeout=PATIENT))
                for client in clients)
    async with AsyncTestClient(one) as first, AsyncTestClient(two) as second:
        requests = [asyncio.ensure_future(client.get("/items/1"))
                    for _ in range(25) for client in (first, second)]
        await asyncio.wait_for(handler.started.wait(), 30)
        await asyncio.sleep(0.2)  # the other process polls the lock meanwhile
        handler.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*requests), 60)
    assert handler.runs == 1
    assert {answer.json()["run"] for answer in answers} == {1}
    statuses = [answer.headers["cache-status"] for answer in answers]
    assert statuses.count("joey; fwd=uri-miss; stored") == 1
    assert all(s == "joey; fwd=uri-miss; collapsed" or s.startswith("joey; hit")
               for s in statuses if not s.endswith("stored"))


async def test_the_lock_is_renewed_while_its_holder_computes(
        clients: list[aioredis.Redis], prefix: str) -> None:
    holder = RedisCache(clients[0], prefix=prefix, timeout=PATIENT, lock_timeout=1.0)
    lead = await holder.lookup("GET /long", "")
    assert lead.leads
    await asyncio.sleep(3.5)  # several lock lifetimes
    locks = await keys(clients[1], prefix + "l:*")
    assert len(locks) == 1
    assert await holder.complete(lead, Entry(200, [], b"done"), 60, ())
    assert await keys(clients[1], prefix + "l:*") == []


async def test_the_lock_of_a_process_that_died_expires_and_another_computes(
        clients: list[aioredis.Redis], prefix: str) -> None:
    dead = RedisCache(clients[0], prefix=prefix, timeout=PATIENT, lock_timeout=0.5)
    alive = RedisCache(clients[1], prefix=prefix, timeout=PATIENT, lock_timeout=0.5,
                       wait_timeout=60)
    taken = await dead.lookup("GET /x", "")
    assert taken.leads and taken.entry is None
    # The process dies: what renews its lock stops (a real kill -9 of a process holding the
    # lock: tests/integration/test_caching_workers.py).
    assert taken._renewal is not None
    taken._renewal.cancel()
    started = time.monotonic()
    took_over = await alive.lookup("GET /x", "")
    waited = time.monotonic() - started
    assert took_over.leads and took_over.entry is None
    assert 0.2 <= waited < 30  # the lock expired; it did not give up waiting
    assert await alive.complete(took_over, Entry(200, [(b"x", b"1")], b"body"), 60, ())
    hit = await alive.lookup("GET /x", "")
    assert hit.entry is not None and hit.outcome == "hit" and hit.entry.body == b"body"


async def test_a_waiter_gets_the_answer_the_other_process_stores(
        clients: list[aioredis.Redis], prefix: str) -> None:
    computing = RedisCache(clients[0], prefix=prefix, timeout=PATIENT)
    waiting = RedisCache(clients[1], prefix=prefix, timeout=PATIENT)
    lead = await computing.lookup("GET /y", "de")
    waiter = asyncio.ensure_future(waiting.lookup("GET /y", "de"))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    body = bytes(range(256))  # any bytes survive the trip
    assert await computing.complete(lead, Entry(203, [(b"content-type", b"x/y")], body), 60,
                                    ["t"])
    found = await asyncio.wait_for(waiter, 10)
    assert found.outcome == "collapsed" and found.entry is not None
    assert (found.entry.status, found.entry.headers, found.entry.body) == (
        203, [(b"content-type", b"x/y")], body)
    other_variant = await waiting.lookup("GET /y", "en")
    assert other_variant.entry is None and other_variant.leads
    await waiting.complete(other_variant, None, 60, ())


async def test_an_answer_computed_across_an_invalidation_is_not_stored(
        clients: list[aioredis.Redis], prefix: str) -> None:
    computing = RedisCache(clients[0], prefix=prefix, timeout=PATIENT)
    other = RedisCache(clients[1], prefix=prefix, timeout=PATIENT)
    lead = await computing.lookup("GET /z", "")
    await other.invalidate("/z")
    assert not await computing.complete(lead, Entry(200, [], b"read before"), 60, ())
    again = await other.lookup("GET /z", "")
    assert again.entry is None and again.leads  # and the lock was released
    await other.complete(again, None, 60, ())


async def test_entries_expire_by_the_server_s_clock(clients: list[aioredis.Redis],
                                                    prefix: str) -> None:
    store = RedisCache(clients[0], prefix=prefix, timeout=PATIENT)
    lead = await store.lookup("GET /short", "")
    assert await store.complete(lead, Entry(200, [], b"brief"), 0.3, ())
    hit = await store.lookup("GET /short", "")
    assert hit.entry is not None
    deadline = time.monotonic() + 10
    while True:
        found = await store.lookup("GET /short", "")
        if found.entry is None:
            await store.complete(found, None, 1, ())
            break
        assert time.monotonic() < deadline, "the entry never expired"
        await asyncio.sleep(0.05)


# --- outages -------------------------------------------------------------------------------------

def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "joey" and text in r.getMessage())


async def test_a_stopped_redis_serves_without_the_store_and_logs_once(
        own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "joey")
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    handler = Handler()
    store = RedisCache(client, prefix=prefix, timeout=PATIENT, retry_after=1)
    try:
        async with AsyncTestClient(handler.app(store)) as app:
            assert (await app.get("/items/1")).json()["run"] == 1
            own_redis.stop()
            answers = [await app.get("/items/1") for _ in range(5)]
            assert [a.status_code for a in answers] == [200] * 5
            assert [a.json()["run"] for a in answers] == [2, 3, 4, 5, 6]
            assert {a.headers["cache-status"] for a in answers} == {
                "joey; fwd=bypass; detail=unavailable"}
            assert warnings_of(caplog, "failed") == 1
            # meanwhile, concurrent misses in this process still compute once
            handler.gate = asyncio.Event()
            handler.started.clear()
            burst = [asyncio.ensure_future(app.get("/items/2")) for _ in range(20)]
            await asyncio.wait_for(handler.started.wait(), 30)
            await asyncio.sleep(0.1)
            handler.gate.set()
            burst_answers = await asyncio.wait_for(asyncio.gather(*burst), 30)
            assert {a.json()["run"] for a in burst_answers} == {7} and handler.runs == 7
            handler.gate = None
            own_redis.start()
            deadline = time.monotonic() + 30
            while (await app.get("/items/3")).headers["cache-status"] != (
                    "joey; fwd=uri-miss; stored"):
                assert time.monotonic() < deadline, "the store was never used again"
                await asyncio.sleep(0.2)
            assert (await app.get("/items/3")).headers["cache-status"].startswith("joey; hit")
            assert warnings_of(caplog, "works again") == 1
            assert warnings_of(caplog, "failed") == 1
    finally:
        await client.aclose()


async def test_a_frozen_redis_costs_each_request_at_most_the_timeout(
        own_redis: RedisServer, prefix: str) -> None:
    client = aioredis.Redis.from_url(own_redis.url)
    handler = Handler()
    store = RedisCache(client, prefix=prefix, timeout=0.2, retry_after=1)
    try:
        async with AsyncTestClient(handler.app(store)) as app:
            await app.get("/items/1")
            own_redis.freeze()
            try:
                started = time.monotonic()
                answer = await asyncio.wait_for(app.get("/items/9"), 20)
                assert answer.status_code == 200 and answer.json()["run"] == 2
                assert time.monotonic() - started < 10
                # within retry_after the store is left alone: no wait at all
                assert (await app.get("/items/9")).json()["run"] == 3
            finally:
                own_redis.thaw()
    finally:
        await client.aclose()


async def test_failing_closed_answers_503_with_retry_after(
        own_redis: RedisServer, prefix: str) -> None:
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    handler = Handler()
    store = RedisCache(client, prefix=prefix, timeout=PATIENT, fail_open=False, retry_after=7)
    try:
        async with AsyncTestClient(handler.app(store)) as app:
            own_redis.stop()
            for _ in range(2):
                refused = await app.get("/items/1")
                assert refused.status_code == 503
                assert 1 <= int(refused.headers["retry-after"]) <= 7
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["status"] == 503
            assert handler.runs == 0
            # an invalidation during the outage fails where the caller sees it
            with pytest.raises(CacheUnavailable):
                await store.invalidate("/items/1")
    finally:
        await client.aclose()

