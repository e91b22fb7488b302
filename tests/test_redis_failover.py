"""What survives a failover: on a Redis Cluster, the primary holding a queue's slot hands over
to its replica (`CLUSTER FAILOVER`, the graceful kind: the replica catches up first, so nothing
acknowledged is lost; and kill -9) while two workers run tasks and a producer enqueues; rate
limits and sessions on the same cluster; and under Sentinel (`SENTINEL FAILOVER`). The time
from the failover to the first successful operation is measured per component and printed
(`-s`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from joey import App, Request
from joey.channels import (
    Channels,
    ChannelsUnavailable,
    RedisPubSubBackend,
    RedisStreamsBackend,
    Subscription,
)
from joey.middleware.session_stores import RedisStore
from joey.ratelimit import RedisRateLimits
from joey.sse import EventSourceResponse
from joey.tasks import RedisTasks, TaskState, TasksUnavailable
from joey.testing import AsyncTestClient
from tests.channels.test_channels_memory import read_events
from tests.redis_cluster import (
    RedisClusterServers,
    RedisSentinelServers,
    cli,
    skip_without_sharded_pubsub,
)

aioredis = pytest.importorskip("redis.asyncio")
from redis.asyncio.cluster import RedisCluster  # noqa: E402
from redis.asyncio.sentinel import Sentinel  # noqa: E402

# After a failover redis-py's cluster client can drop a node object of the old topology with a
# connection still open (its own objects, e.g. a shard's pub/sub reader after a kill -9: the
# client is the test's, and Joey never creates a node); the ResourceWarnings of the node and
# its socket at garbage collection would fail whichever test runs then. Joey's own sockets
# are watched by the soak tests (tests/soak/), which count file descriptors.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Unclosed ClusterNode object:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:unclosed transport:ResourceWarning"),
]

TASKS, FAIL_AT = 2_000, 750  # tasks enqueued; the failover begins after this many


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterServers]:
    """A cluster of this test's own: a failover changes who holds what."""
    servers = RedisClusterServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


@pytest.fixture
async def cluster(own_cluster: RedisClusterServers) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(own_cluster.url)
    yield client
    await client.aclose()


def fail_over(servers: RedisClusterServers, key: str, *, kill: bool = False,
              ) -> tuple[float, float]:
    """`CLUSTER FAILOVER` on the replica of the primary holding ``key`` (or, with ``kill``,
    kill -9 that primary and let the cluster promote the replica); waits until the replica is
    the primary. Returns when the failover began (the kill, or the request) and when the
    replica became the primary (`time.monotonic()`)."""
    primary = servers.primary_of(key)
    replica = servers.replica_of(primary)
    began = time.monotonic()
    deadline = began + 60
    if kill:
        servers.kill(primary)
        while "role:master" not in cli(replica, "INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not take over"
            time.sleep(0.05)
    while "role:master" not in cli(replica, "INFO", "replication"):
        assert time.monotonic() < deadline, "the replica did not take over"
        # a manual failover is given up after 5 s (a loaded machine): ask again then
        assert cli(replica, "CLUSTER", "FAILOVER").strip() == "OK"
        asked = time.monotonic()
        while ("role:master" not in cli(replica, "INFO", "replication")
               and time.monotonic() - asked < 6):
            time.sleep(0.05)
    took_over = time.monotonic()
    servers.wait_healthy()
    return began, took_over


@pytest.mark.parametrize(("kill", "confirm"), [(False, 0), (True, 0), (True, 1)],
                         ids=["cluster-failover", "kill-9", "kill-9-confirmed"])
async def test_tasks_survive_a_failover_of_their_primary(
        own_cluster: RedisClusterServers, cluster: RedisCluster, kill: bool, confirm: int,
) -> None:
    """Two workers run 2,000 tasks; the primary of the queue's slot fails over after 750 were
    enqueued (the producer retries what is refused meanwhile). Killed (-9), the primary may
    take with it what it acknowledged and had not yet sent to its replica (replication is
    asynchronous; the workers then create the queue's consumer group again): those tasks are
    counted and printed; none is dead-lettered, and every other one succeeds. With
    ``confirm_replicas=1`` an acknowledged task is on the replica already: none is lost."""
    prefix = f"q{uuid.uuid4().hex[:8]}"
    workers = [RedisTasks(cluster, prefix=prefix, max_concurrency=8, visibility_timeout=5,
                          enqueue_timeout=2, redis_timeout=2, commit_timeout=60,
                          confirm_replicas=confirm)
               for _ in range(2)]
    done: list[int] = []
    for worker in workers:
        @worker.task(name="work")
        async def work(n: int) -> int:
            await asyncio.sleep(0.02)
            done.append(n)
            return n

    for worker in workers:
        await worker.start()
    producer = workers[0]
    acknowledged: dict[str, int] = {}
    failed_over_at: float | None = None
    first_enqueue_after: float | None = None
    refused = 0
    try:
        for n in range(TASKS):
            if n == FAIL_AT:
                killed = own_cluster.primary_of(f"{{{prefix}}}:stream")
                began, failed_over_at = await asyncio.to_thread(
                    fail_over, own_cluster, f"{{{prefix}}}:stream", kill=kill)
                if kill and confirm:
                    # the new primary has no replica: confirmed enqueues are refused until
                    # the old primary is back, as its replica
                    await asyncio.to_thread(own_cluster.revive, killed)
            while True:  # a producer retries what the queue refused while it moved
                try:
                    acknowledged[await producer.enqueue("work", n)] = n
                    break
                except TasksUnavailable:
                    refused += 1
                    await asyncio.sleep(0.05)
            if failed_over_at is not None and first_enqueue_after is None:
                first_enqueue_after = time.monotonic() - failed_over_at
        lost = []
        infos = []
        async with asyncio.timeout(180):
            for task_id in acknowledged:
                try:
                    infos.append(await producer.wait(task_id))
                except LookupError:  # its record never reached the replica
                    lost.append(acknowledged[task_id])
        dead = await producer.dead_letters()
    finally:
        for worker in workers:
            await worker.stop()
    assert dead == []
    assert [info.state for info in infos] == [TaskState.SUCCEEDED] * len(infos)
    if not kill or confirm:
        # a graceful failover: the replica caught up first; confirmed: it had each task
        assert lost == []
    # killed: only what was enqueued before can be lost (what the replica had not received;
    # on a loaded machine it can be the whole queue), never a task enqueued after
    assert all(n < FAIL_AT for n in lost), lost
    assert sorted(info.result for info in infos) == sorted(set(range(TASKS)) - set(lost))
    # each recorded task ran (at least once); a task whose record the kill lost may have run
    # before it (its run is in `done`, its record is not)
    assert {info.result for info in infos} <= set(done)
    assert set(done) <= set(range(TASKS)) and set(done) - {i.result for i in infos} <= set(lost)
    assert first_enqueue_after is not None and failed_over_at is not None
    print(f"\ntasks ({'kill -9' if kill else 'CLUSTER FAILOVER'}, confirm_replicas={confirm}):"
          f" the replica took over "
          f"{failed_over_at - began:.3f}s after the failover began, the first enqueue "
          f"{first_enqueue_after:.3f}s later ({refused} enqueues refused meanwhile); "
          f"acknowledged and lost: {len(lost)}")


async def test_rate_limits_and_sessions_recover_from_a_failover(
        own_cluster: RedisClusterServers, cluster: RedisCluster) -> None:
    limits = RedisRateLimits(cluster, prefix=f"rl{uuid.uuid4().hex[:6]}:", timeout=2)
    store = RedisStore(cluster, prefix=f"s{uuid.uuid4().hex[:6]}:")
    limit_key, session_id = "api:alice", uuid.uuid4().hex
    await store.save(session_id, {"user": "alice"}, 600)
    for _ in range(3):
        await limits.hit(limit_key, 5, 600, "fixed")
    # the session's primary, then the limit's (each key is on its own slot)
    timings = {}
    for what, key in (("session", f"{store._prefix}{session_id}"),
                      ("rate limit", f"{limits._prefix}{limit_key}")):
        _, started = fail_over(own_cluster, key)
        deadline = started + 30
        while True:
            try:
                if what == "session":
                    assert await store.load(session_id) == {"user": "alice"}
                else:
                    decision = await limits.hit(limit_key, 5, 600, "fixed")
                    # the count survived the (graceful) failover: 3 before, this is the 4th
                    assert (decision.allowed, decision.remaining) == (True, 1)
                break
            except Exception:
                assert time.monotonic() < deadline, f"the {what} did not recover"
                await asyncio.sleep(0.05)
        timings[what] = time.monotonic() - started
    print("\nfirst success after the replica took over: "
          + ", ".join(f"{what} {seconds:.3f}s" for what, seconds in timings.items()))


@pytest.fixture
def own_sentinel() -> Iterator[RedisSentinelServers]:
    servers = RedisSentinelServers()
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


async def test_tasks_sessions_and_limits_survive_a_sentinel_failover(
        own_sentinel: RedisSentinelServers) -> None:
    """`SENTINEL FAILOVER` mid-run: the clients of `master_for` find the new primary by
    themselves; nothing acknowledged is lost (the replica was in sync), nothing dead."""
    sentinel = Sentinel(own_sentinel.sentinels, socket_timeout=2)
    client = sentinel.master_for(own_sentinel.service, socket_timeout=5)
    tasks = RedisTasks(client, prefix="q", max_concurrency=8, visibility_timeout=5,
                       enqueue_timeout=2, redis_timeout=2, commit_timeout=60)
    store = RedisStore(client)
    limits = RedisRateLimits(client, timeout=2)

    @tasks.task(name="work")
    async def work(n: int) -> int:
        await asyncio.sleep(0.02)
        return n

    await store.save("alice", {"user": "alice"}, 600)
    await limits.hit("api:alice", 5, 600, "fixed")
    acknowledged: dict[str, int] = {}
    first_after: dict[str, float] = {}
    await tasks.start()
    try:
        for n in range(200):
            if n == 80:
                old = own_sentinel.current_primary()
                assert cli(own_sentinel.sentinel_ports[0], "SENTINEL", "FAILOVER",
                            own_sentinel.service).strip() == "OK"
                began = time.monotonic()
                deadline = began + 60
                while own_sentinel.current_primary() == old:
                    assert time.monotonic() < deadline, "the sentinels did not fail over"
                    await asyncio.sleep(0.05)
            while True:
                try:
                    acknowledged[await tasks.enqueue("work", n)] = n
                    break
                except TasksUnavailable:
                    await asyncio.sleep(0.05)
            if n == 80:
                first_after["tasks"] = time.monotonic() - began
                for what, operation in (
                        ("session", lambda: store.load("alice")),
                        ("rate limit", lambda: limits.hit("api:alice", 5, 600, "fixed"))):
                    while True:
                        try:
                            await operation()
                            break
                        except Exception:
                            assert time.monotonic() < deadline, f"the {what} did not recover"
                            await asyncio.sleep(0.05)
                    first_after[what] = time.monotonic() - began
        async with asyncio.timeout(120):
            infos = [await tasks.wait(task_id) for task_id in acknowledged]
        assert await tasks.dead_letters() == []
        assert await store.load("alice") == {"user": "alice"}  # nobody logged out
        decision = await limits.hit("api:alice", 5, 600, "fixed")
        assert (decision.allowed, decision.remaining) == (True, 2)  # the 3rd of 5: counted on
    finally:
        await tasks.stop()
        await client.aclose()
        await client.connection_pool.disconnect()
        for one in sentinel.sentinels:
            await one.aclose()
    assert [info.state for info in infos] == [TaskState.SUCCEEDED] * 200
    assert sorted(info.result for info in infos) == list(range(200))
    print("\nSENTINEL FAILOVER, first success after the failover began: "
          + ", ".join(f"{what} {seconds:.3f}s" for what, seconds in first_after.items()))


@pytest.mark.parametrize("kill", [False, True], ids=["cluster-failover", "kill-9"])
@pytest.mark.parametrize("backend", [RedisPubSubBackend, RedisStreamsBackend],
                         ids=["pubsub", "streams"])
async def test_channels_keep_delivering_after_a_failover(
        own_cluster: RedisClusterServers, cluster: RedisCluster, kill: bool,
        backend: type[RedisPubSubBackend | RedisStreamsBackend]) -> None:
    """Two processes' subscribers keep receiving after the channel's primary fails over. On
    Streams nothing is lost or repeated (a graceful failover; killed, what the primary had not
    replicated may be lost); pub/sub loses what is published while the shard moves."""
    skip_without_sharded_pubsub(backend, cluster)
    one = Channels(backend(cluster, prefix="ch"))
    two = Channels(backend(cluster, prefix="ch"))
    async with one, two, one.subscribe("room") as a, two.subscribe("room") as b:
        for i in range(20):
            await one.publish("room", str(i))
        before = [str(i) for i in range(20)]
        assert await take(a, 20) == before and await take(b, 20) == before
        began, took_over = await asyncio.to_thread(fail_over, own_cluster, "ch:room", kill=kill)
        sent: list[str] = []
        deadline = time.monotonic() + 60
        for i in range(20, 60):
            while True:  # published after the failover: retried until the new primary takes it
                try:
                    await two.publish("room", str(i))
                    break
                except ChannelsUnavailable:
                    assert time.monotonic() < deadline, "publishing did not recover"
                    await asyncio.sleep(0.05)
            sent.append(str(i))
            if i == 20:
                first_publish = time.monotonic() - took_over
            await asyncio.sleep(0.02)
        if backend is RedisStreamsBackend:
            # resumed from the last id delivered: every message once, in order
            assert await take(a, 40, within=60) == sent
            assert await take(b, 40, within=60) == sent
        else:
            # a subscriber moved to the new primary hears what is published from then on:
            # the last message reaches both (what came while it moved may be lost)
            for subscription in (a, b):
                got: list[str] = []
                while sent[-1] not in got:
                    got += await take(subscription, 1, within=60)
    print(f"\nchannels {backend.__name__} ({'kill -9' if kill else 'CLUSTER FAILOVER'}): "
          f"the replica took over {took_over - began:.3f}s after the failover began, "
          f"the first publish {first_publish:.3f}s later")


async def take(subscription: Subscription, count: int, within: float = 15) -> list[str]:
    async def run() -> list[str]:
        return [(await anext(subscription)).text for _ in range(count)]

    return await asyncio.wait_for(run(), within)


async def test_an_event_source_resumes_from_last_event_id_across_a_failover(
        own_cluster: RedisClusterServers, cluster: RedisCluster) -> None:
    """An SSE client reads 10 events and goes; 5 messages are published, the channel's
    primary fails over (`CLUSTER FAILOVER`), 5 more are published. Reconnecting with
    ``Last-Event-ID``, it gets the 10 it missed, before and after the failover, once each and
    in order, then live events."""
    channels = Channels(RedisStreamsBackend(cluster, prefix="sse"))
    app = App(channels=channels)

    @app.get("/rooms/{room}/events")
    async def events(room: str, request: Request, channels: Channels) -> EventSourceResponse:
        return await channels.event_source(request, room, ping_interval=None)

    async def publish(text: str, deadline: float) -> None:
        while True:  # retried until the new primary takes it
            try:
                await channels.publish("lobby", text)
                return
            except ChannelsUnavailable:
                assert time.monotonic() < deadline, "publishing did not recover"
                await asyncio.sleep(0.05)

    async with AsyncTestClient(app) as client:
        async with client.stream("GET", "/rooms/lobby/events") as response:
            assert response.status_code == 200
            for i in range(10):
                await channels.publish("lobby", str(i))
            first = await read_events(response, 10)
        assert [event["data"] for event in first] == [str(i) for i in range(10)]
        for i in range(10, 15):  # missed while away, before the failover
            await channels.publish("lobby", str(i))
        await asyncio.to_thread(fail_over, own_cluster, "sse:lobby")
        deadline = time.monotonic() + 60
        for i in range(15, 20):  # missed while away, after it
            await publish(str(i), deadline)
        async with client.stream("GET", "/rooms/lobby/events",
                                 headers={"last-event-id": first[-1]["id"]}) as response:
            assert response.status_code == 200
            await publish("20", deadline)  # live, once resumed
            async with asyncio.timeout(30):
                again = await read_events(response, 11)
    assert [event["data"] for event in again] == [str(i) for i in range(10, 21)]
    ids = [event["id"] for event in first + again]
    assert len(set(ids)) == len(ids) == 21
