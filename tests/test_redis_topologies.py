"""Every Redis-backed component on a real Redis Cluster (3 primaries, 3 replicas) and under
Sentinel (a primary, a replica, 3 sentinels), given a ready redis-py client: tasks, both
channels backends, rate limits, sessions and the response cache. And who closes what: a
component never closes a client it was given."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from joey import App, Router
from joey.caching import Caching, RedisCache
from joey.channels import Channels, RedisPubSubBackend, RedisStreamsBackend, Subscription
from joey.channels.backend import Message
from joey.middleware.session_stores import RedisStore
from joey.params.markers import Security
from joey.ratelimit import RateLimit, RedisRateLimits
from joey.tasks import RedisTasks, TaskNotReplicated, TaskState
from joey.testing import AsyncTestClient
from tests.redis_cluster import (
    RedisClusterServers,
    RedisSentinelServers,
    skip_without_sharded_pubsub,
)

# redis-py's RedisCluster leaves node objects, connections and (redis-py 5.0) a client it
# re-initialised to the garbage collector, even once closed: ignored here as in
# tests/test_redis_failover.py (the cluster run too: tests/conftest.py), and collected at the
# module's end (below). Joey's own leaks stay errors everywhere else in `make test`.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Unclosed:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:loop is closed:ResourceWarning"),
]

aioredis = pytest.importorskip("redis.asyncio")
from redis.asyncio.cluster import RedisCluster  # noqa: E402
from redis.asyncio.sentinel import Sentinel  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _collect_redis_py_leftovers() -> Iterator[None]:
    """After the module: redis-py's RedisCluster can leave node objects (and a connection of
    theirs) that it replaced, or that a cancelled blocking read held, to the garbage collector,
    even once closed (the failover tests see the same). Collected here, their ResourceWarnings
    ignored, rather than failing whichever later test the collector runs in."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
async def cluster(redis_cluster: RedisClusterServers) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url)
    yield client
    await client.aclose()


@pytest.fixture
async def sentinel_master(redis_sentinel: RedisSentinelServers) -> AsyncIterator[Any]:
    sentinel = Sentinel(redis_sentinel.sentinels, socket_timeout=2)
    client = sentinel.master_for(redis_sentinel.service, socket_timeout=5)
    yield client
    # master_for's client does not own its pool: closing the client leaves the pool open
    await client.aclose()
    await client.connection_pool.disconnect()
    for one in sentinel.sentinels:
        await one.aclose()


@pytest.fixture(params=["cluster", "sentinel"])
def client(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("cluster" if request.param == "cluster" else
                                   "sentinel_master")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# -- tasks ------------------------------------------------------------------------------------


async def test_tasks_run_through_a_client_passed_in(client: Any) -> None:
    tasks = RedisTasks(client, prefix=unique("q"), max_concurrency=4, visibility_timeout=2)

    @tasks.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    await tasks.start()
    try:
        ids = [await tasks.enqueue(add, i, i) for i in range(20)]
        ids.append(await tasks.options(delay=0.2).enqueue(add, 1, 1))  # the delayed set, promoted
        kept = await tasks.options(unique="once", delay=0.3).enqueue(add, 5, 5)
        assert await tasks.options(unique="once").enqueue(add, 6, 6) == kept  # still queued
        async with asyncio.timeout(30):
            infos = [await tasks.wait(task_id) for task_id in [*ids, kept]]
        assert [i.state for i in infos] == [TaskState.SUCCEEDED] * 22
        assert [i.result for i in infos] == [2 * i for i in range(20)] + [2, 10]
        assert await tasks.dead_letters() == []
    finally:
        await tasks.stop()
    assert await client.ping()  # the client stays the caller's: still open


async def test_on_a_cluster_a_queue_keeps_to_one_slot_and_queues_spread(
        cluster: RedisCluster) -> None:
    prefixes = [unique(f"queue{i}") for i in range(8)]
    slots = set()
    for prefix in prefixes:
        tasks = RedisTasks(cluster, prefix=prefix, consume=False)
        await tasks.start()
        try:
            await tasks.options(delay=60, unique="u").enqueue("anything")
        finally:
            await tasks.stop()
        keys = [key async for key in cluster.scan_iter(match=f"{{{prefix}}}*")]
        assert len(keys) >= 4  # stream, delayed set, task, unique key
        assert len({cluster.keyslot(key) for key in keys}) == 1, keys
        slots.add(cluster.keyslot(keys[0]))
    assert len(slots) == len(prefixes)  # one slot per queue: queues spread over the shards
    owners = {cluster.get_node_from_key(f"{{{prefix}}}").name for prefix in prefixes}
    assert len(owners) >= 2


async def test_a_confirmed_enqueue_is_on_a_replica_when_it_returns(
        client: Any, redis_cluster: RedisClusterServers,
        redis_sentinel: RedisSentinelServers) -> None:
    """``confirm_replicas=1``: the task's record is on the replica the moment `enqueue`
    returns (read from the replica itself); asking for more replicas than there are is
    refused with `TaskNotReplicated`, saying how many confirmed."""
    on_cluster = isinstance(client, RedisCluster)
    prefix = unique("q")
    async with RedisTasks(client, prefix=prefix, consume=False, confirm_replicas=1) as tasks:
        task_ids = [await tasks.enqueue("report", n) for n in range(20)]
        if on_cluster:
            replica = redis_cluster.replica_of(redis_cluster.primary_of(f"{{{prefix}}}"))
            keys = [f"{{{prefix}}}:task:{task_id}" for task_id in task_ids]
        else:
            replica = redis_sentinel.replica
            keys = [f"{prefix}:task:{task_id}" for task_id in task_ids]
        reader = aioredis.Redis(port=replica, single_connection_client=True)
        try:
            if on_cluster:
                await reader.execute_command("READONLY")  # reads served by a replica
            assert await reader.exists(*keys) == len(keys)
        finally:
            await reader.aclose()
        tasks.confirm_replicas = 2  # each primary has one replica
        tasks.confirm_timeout = 0.2
        with pytest.raises(TaskNotReplicated) as refused:
            await tasks.enqueue("report", 99)
        assert refused.value.confirmed == 1


# -- channels ---------------------------------------------------------------------------------


async def take(subscription: Subscription, count: int, within: float = 15) -> list[str]:
    async def run() -> list[str]:
        return [(await anext(subscription)).text for _ in range(count)]

    return await asyncio.wait_for(run(), within)


@pytest.mark.parametrize("backend", [RedisPubSubBackend, RedisStreamsBackend])
async def test_channels_deliver_across_processes_through_a_client_passed_in(
        client: Any, backend: type[RedisPubSubBackend | RedisStreamsBackend]) -> None:
    skip_without_sharded_pubsub(backend, client)
    prefix = unique("ch")
    one, two = Channels(backend(client, prefix=prefix)), Channels(backend(client, prefix=prefix))
    # channels whose names hash to different slots (on a cluster: different shards)
    names = [f"room{i}" for i in range(6)]
    async with one, two, one.subscribe(*names) as a, two.subscribe(names[0]) as b:
        for i in range(30):
            await (one if i % 2 else two).publish(names[i % len(names)], str(i))
        assert sorted(await take(a, 30), key=int) == [str(i) for i in range(30)]
        assert await take(b, 5) == [str(i) for i in range(0, 30, 6)]
    assert await client.ping()


async def test_sharded_pubsub_on_a_cluster(cluster: RedisCluster) -> None:
    """On a cluster pub/sub is sharded: a plain SUBSCRIBE to the channel hears nothing (the
    message goes to the channel's shard only), SSUBSCRIBE does."""
    skip_without_sharded_pubsub(RedisPubSubBackend, cluster)
    prefix = unique("ch")
    channels = Channels(RedisPubSubBackend(cluster, prefix=prefix))
    key = f"{prefix}:news"
    watcher = cluster.pubsub()
    await watcher.ssubscribe(key)
    async with channels, channels.subscribe("news") as news:
        await channels.publish("news", "hello")
        assert await take(news, 1) == ["hello"]
        async with asyncio.timeout(10):
            while (got := await watcher.get_sharded_message(
                    ignore_subscribe_messages=True, timeout=0.5)) is None:
                pass
        assert got["data"] == b"hello"
    await watcher.aclose()


async def test_streams_resume_since_an_id_on_a_cluster(cluster: RedisCluster) -> None:
    prefix = unique("ch")
    one = Channels(RedisStreamsBackend(cluster, prefix=prefix))
    async with one:
        ids = [await one.publish("log", str(i)) for i in range(5)]
        async with one.subscribe("log", since=ids[1]) as log:
            assert await take(log, 3) == ["2", "3", "4"]


async def test_a_streams_delivery_on_a_cluster_carries_the_publishers_trace(
        cluster: RedisCluster) -> None:
    """The cluster's per-stream reader hands on the trace context a traced publish wrote, as
    the single-Redis reader and the history replay do (a delivery span links to it)."""
    backend = RedisStreamsBackend(cluster, prefix=unique("ch"))
    delivered: list[Message] = []
    context = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    await backend.start(delivered.append)
    try:
        await backend.listen("log")
        await backend.publish("log", b"traced", trace=context)
        async with asyncio.timeout(10):
            while not delivered:  # noqa: ASYNC110 - the reader runs on this loop
                await asyncio.sleep(0.02)
    finally:
        await backend.stop()
    assert [(m.data, m.trace) for m in delivered] == [(b"traced", context)]


async def test_pubsub_on_a_cluster_is_refused_where_redis_py_cannot_shard(
        cluster: RedisCluster) -> None:
    """Where this redis-py's RedisCluster has no pubsub() (the lowest supported release),
    pub/sub on a cluster is refused at construction, naming the fix; elsewhere it is made."""
    if hasattr(cluster, "pubsub"):
        RedisPubSubBackend(cluster, prefix=unique("ch"))
        return
    with pytest.raises(TypeError, match="upgrade redis-py, or use RedisStreamsBackend"):
        RedisPubSubBackend(cluster, prefix=unique("ch"))


# -- rate limits ------------------------------------------------------------------------------


async def test_a_limit_of_5_allows_5_of_7_through_a_client_passed_in(
        client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Before: on a cluster every check failed (its script built key names of its own, on
    other slots) and the limit failed open without a word: 7 of 7 allowed."""
    for policy in ("fixed", "sliding", "token_bucket"):
        limit = RateLimit(5, 600, policy=policy,  # type: ignore[arg-type]
                          backend=RedisRateLimits(client, prefix=unique("rl") + ":"),
                          name="api")
        app = App()
        api = Router(dependencies=[Security(limit)])

        @api.get("/")
        async def index() -> dict[str, bool]:
            return {"ok": True}

        app.include_router(api)
        async with AsyncTestClient(app) as http:
            statuses = [(await http.get("/")).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2, (policy, caplog.text)
    assert "cannot count" not in caplog.text


async def test_rate_limit_keys_spread_over_the_cluster(cluster: RedisCluster) -> None:
    limits = RedisRateLimits(cluster, prefix=unique("rl") + ":")
    for user in range(12):
        await limits.hit(f"api:user{user}", 5, 60, "fixed")
    keys = [key async for key in cluster.scan_iter(match=f"{limits._prefix}*")]
    assert len(keys) == 12
    assert len({cluster.get_node_from_key(key).name for key in keys}) >= 2


async def test_a_rate_limit_backend_from_a_url_closes_its_own_client(
        redis_sentinel: RedisSentinelServers) -> None:
    limits = RedisRateLimits(f"redis://127.0.0.1:{redis_sentinel.current_primary()}/0")
    decision = await limits.hit(unique("k"), 2, 60, "fixed")
    assert decision.allowed and decision.remaining == 1
    await limits.aclose()


# -- sessions and the cache -------------------------------------------------------------------


async def test_sessions_through_a_client_passed_in(client: Any) -> None:
    store = RedisStore(client, prefix=unique("s") + ":")
    ids = [uuid.uuid4().hex for _ in range(10)]
    for n, session_id in enumerate(ids):
        await store.save(session_id, {"user": n}, 60)
    assert [await store.load(session_id) for session_id in ids] == [
        {"user": n} for n in range(10)]
    await store.delete(ids[0])
    assert await store.load(ids[0]) is None
    await store.aclose()  # a no-op for a client passed in
    assert await client.ping()


async def test_the_response_cache_through_a_client_passed_in(client: Any) -> None:
    prefix = unique("c") + ":"
    store = RedisCache(client, prefix=prefix, timeout=5)
    app = App()
    calls = 0

    @app.get("/products", caching=Caching(store=store, ttl=60, tags=["products"]))
    async def products() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"calls": calls}

    async with AsyncTestClient(app) as http:
        first = (await http.get("/products")).json()
        second = (await http.get("/products")).json()
        assert first == second == {"calls": 1}
        await store.invalidate_tag("products")
        assert (await http.get("/products")).json() == {"calls": 2}
    if isinstance(client, RedisCluster):  # one cache, one slot: its scripts run on one shard
        keys = [key async for key in client.scan_iter(match="{" + prefix + "}*")]
        assert keys and len({client.keyslot(key) for key in keys}) == 1


# -- a cluster's URL --------------------------------------------------------------------------


async def test_every_component_takes_a_cluster_s_url(
        redis_cluster: RedisClusterServers, cluster: RedisCluster) -> None:
    """``redis+cluster://``: each component makes a RedisCluster of its own (before, a
    `ValueError` from redis-py: a URL named one Redis), keys a queue and a cache into one slot
    as with a client passed in, and closes what it made."""
    url = "redis+cluster://" + redis_cluster.url.removeprefix("redis://")
    prefix = unique("q")
    tasks = RedisTasks(url, prefix=prefix, max_concurrency=2)

    @tasks.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    async with tasks:
        assert isinstance(tasks._client, RedisCluster)
        async with asyncio.timeout(30):
            info = await tasks.wait(await tasks.enqueue(double, 21))
        assert (info.state, info.result) == (TaskState.SUCCEEDED, 42)
    keys = [key async for key in cluster.scan_iter(match=f"{{{prefix}}}*")]
    assert keys and len({cluster.keyslot(key) for key in keys}) == 1

    # (sharded pub/sub needs a redis-py whose RedisCluster has pubsub(): not 5.0; refused then,
    # tested by test_pubsub_on_a_cluster_is_refused_where_redis_py_cannot_shard)
    sharded = hasattr(RedisCluster, "pubsub")
    backends = [RedisPubSubBackend] * sharded + [RedisStreamsBackend]
    for backend in (make(url, prefix=unique("ch")) for make in backends):
        async with Channels(backend) as one, Channels(type(backend)(url, prefix=backend.prefix)) \
                as two, two.subscribe("room") as subscription:
            await asyncio.sleep(0.2)  # (pub/sub: the subscription reaches the shard first)
            await one.publish("room", "hi")
            assert (await asyncio.wait_for(anext(subscription), 10)).text == "hi"

    limits = RedisRateLimits(url, prefix=unique("rl") + ":")
    assert [(await limits.hit("api:ann", 2, 60, "fixed")).allowed for _ in range(3)] == [
        True, True, False]
    await limits.aclose()

    store = RedisStore(url, prefix=unique("s") + ":")
    await store.save("abc", {"user": 1}, 60)
    assert await store.load("abc") == {"user": 1}
    await store.aclose()

    cache = RedisCache(url, prefix=unique("c") + ":", timeout=5)
    assert cache.prefix.startswith("{")  # one slot for the whole cache, as on a client
    await cache.aclose()
