"""The Redis channels backends: pub/sub (no history) and Streams (history, resumable).

Each process keeps two connections, whatever the number of subscribers: one for commands
(``PUBLISH`` / ``XADD``, history reads) and one that only listens (``SUBSCRIBE`` or a blocking
``XREAD`` over every listened stream). While nobody listens, the listening connection listens
all the same, to a channel or stream of its own that nothing is sent to: redis-server closes a
client that is idle for longer than its ``timeout`` setting, unless it is subscribed or blocked.
The listening connection is re-established on its own after an error, with a growing delay
(up to 2 s):

* pub/sub re-subscribes every channel; messages published while it was down are lost (pub/sub
  keeps nothing for absent listeners);
* Streams reads on from the last id it delivered per channel, so nothing is lost as long as the
  stream still holds it (its bound) and Redis kept it (persistence, for a Redis restart).

A command that fails because Redis is unreachable or too slow (``timeout``) raises
:class:`~joey.channels.ChannelsUnavailable`, a 503 with ``Retry-After`` by default.

Both backends take a URL (they create their client at start and close it at stop) or a ready
``redis.asyncio`` client, which they use and never close: ``Redis``, a Sentinel master
(``Sentinel(...).master_for(...)``: the listening connection comes from its pool, so it
follows a failover) or ``RedisCluster``. On a cluster each channel is its own key, hashed to
its own slot, so channels spread over the shards: pub/sub is sharded pub/sub
(``SPUBLISH``/``SSUBSCRIBE``, Redis 7), whose subscriptions redis-py moves to a slot's new
owner after a failover or a resharding; Streams reads each listened stream with a blocking
``XREAD`` of its own (one ``XREAD`` cannot span slots).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from joey._redis import RedisClient, client_kwargs, describe, is_cluster
from joey.channels.backend import Backend, ChannelsUnavailable, Deliver, Message, id_key, logger

__all__ = ["RedisPubSubBackend", "RedisStreamsBackend"]

_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
_MAX_DELAY = 2.0


class _RedisBackend(Backend):
    def __init__(self, url: str | RedisClient = "redis://127.0.0.1:6379/0", *,
                 prefix: str = "joey:channels", timeout: float = 2.0,
                 retry_after: int = 1) -> None:
        # a URL: our client; a client: the caller's, never closed here
        self._given: RedisClient | None = None if isinstance(url, str) else url
        self._cluster = is_cluster(self._given)
        self.url = url if isinstance(url, str) else describe(url)
        self.prefix = prefix
        self.timeout = timeout
        self.retry_after = retry_after
        self._skip = len(prefix) + 1
        self._deliver: Deliver | None = None
        self._client: Any = None  # redis.asyncio.Redis (typed loosely: replies vary)
        self._pool: Any = None
        self._conn: Any = None  # the listening connection, while connected
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        #: what the listening connection listens to while nobody else does (see the module
        #: docstring); this process's alone, and nothing is ever sent to it
        self._idle_key = f"{prefix}:idle:{uuid.uuid4().hex}"
        #: times the listening connection was re-established after an error
        self.reconnects = 0

    def _key(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    def _unavailable(self, exc: BaseException) -> ChannelsUnavailable:
        logger.warning("Channels: Redis at %s is unavailable: %s", self.url, exc)
        return ChannelsUnavailable("The message service is unavailable; try again shortly.",
                                   retry_after=self.retry_after)

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._stopping = False
        if self._given is not None:
            self._client = self._given
            # the listening connection: one of our own from the client's pool (a Sentinel
            # pool's connections ask the sentinels for the primary when they connect)
            self._pool = None if self._cluster else self._given.connection_pool  # type: ignore[union-attr]
            run = self._run_cluster() if self._cluster else self._run()
            self._reader = asyncio.create_task(run, name=f"joey channels {self.url}")
            return
        # One retry on a broken connection: after a Redis restart the first command on the
        # old socket fails, the retry reconnects. A timeout is not retried (bounded time).
        self._client = aioredis.Redis.from_url(
            self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._pool = aioredis.ConnectionPool.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_keepalive=True)
        self._reader = asyncio.create_task(self._run(), name=f"joey channels {self.url}")

    async def stop(self) -> None:
        self._stopping = True
        await self._before_stop()
        reader, self._reader = self._reader, None
        if reader is not None:
            # Cancel until it is done: a cancellation can be lost in a read's own timeout.
            while not reader.done():
                reader.cancel()
                await asyncio.wait({reader}, timeout=0.5)
            await asyncio.gather(reader, return_exceptions=True)
        await self._stop_cluster()
        if self._given is not None:  # the caller's client: left open
            self._client = self._pool = None
            return
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._pool is not None:
            await self._pool.disconnect()
            self._pool = None

    async def _run_cluster(self) -> None:
        """The listening side on a Redis Cluster (see the subclasses)."""
        raise NotImplementedError

    async def _stop_cluster(self) -> None:
        pass

    async def _run(self) -> None:
        delay = 0.05
        failing = False
        while not self._stopping:
            conn = self._pool.make_connection()
            try:
                await conn.connect()
                # before _on_connect (which awaits): a channel listened from now on is sent
                # on this connection by listen(), one listened before by _on_connect
                self._conn = conn
                await self._on_connect(conn)
                self._connected.set()
                if failing:
                    self.reconnects += 1
                    logger.warning("Channels: reconnected to Redis at %s", self.url)
                failing, delay = False, 0.05
                await self._listen_loop(conn)
            except _DOWN as exc:
                if not failing:
                    logger.warning("Channels: lost the Redis connection at %s (%s); "
                                   "reconnecting", self.url, exc)
                failing = True
            except Exception:
                logger.exception("Channels: unexpected error while listening to Redis")
                failing = True
            finally:
                self._conn = None
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _before_stop(self) -> None:
        pass

    async def _on_connect(self, conn: Any) -> None:
        raise NotImplementedError

    async def _listen_loop(self, conn: Any) -> None:
        raise NotImplementedError


class RedisPubSubBackend(_RedisBackend):
    """Redis pub/sub: the lowest latency, no history (``since=`` is ignored, SSE events get
    no id). A process that is disconnected from Redis misses what is published meanwhile.

    Example::

        from joey.channels import Channels

        channels = Channels(RedisPubSubBackend("redis://127.0.0.1:6379/0"))  # connects at start
    """

    history = False

    def __init__(self, url: str | RedisClient = "redis://127.0.0.1:6379/0",
                 **options: Any) -> None:
        super().__init__(url, **options)
        if self._cluster and not hasattr(url, "pubsub"):
            raise TypeError("RedisPubSubBackend on a Redis Cluster needs sharded pub/sub "
                            "(RedisCluster.pubsub().ssubscribe): upgrade redis-py, or use "
                            "RedisStreamsBackend")
        self._channels: set[str] = set()
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._pubsub: Any = None  # on a cluster: redis-py's ClusterPubSub (sharded)
        self._wanted = asyncio.Event()  # on a cluster: set while a channel is listened

    async def publish(self, channel: str, data: bytes) -> str | None:
        if self._client is None:
            raise RuntimeError("The channels backend is not started")
        try:
            if self._cluster:
                await self._client.spublish(self._key(channel), data)
            else:
                await self._client.publish(self._key(channel), data)
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        return None

    async def listen(self, channel: str) -> None:
        key = self._key(channel)
        self._channels.add(key)
        confirmed = self._confirming.get(key.encode())
        if confirmed is None:
            confirmed = asyncio.get_running_loop().create_future()
            self._confirming[key.encode()] = confirmed
        conn = self._conn
        try:
            if self._cluster:
                self._wanted.set()
                if self._pubsub is not None:
                    await asyncio.wait_for(self._pubsub.ssubscribe(key), self.timeout)
            elif conn is not None:
                await conn.send_command("SUBSCRIBE", key, check_health=False)
            # (when disconnected, the reconnection subscribes it and confirms)
            await asyncio.wait_for(asyncio.shield(confirmed), self.timeout)
        except _DOWN as exc:
            self._channels.discard(key)
            self._confirming.pop(key.encode(), None)
            raise self._unavailable(exc) from exc

    def unlisten(self, channel: str) -> None:
        key = self._key(channel)
        self._channels.discard(key)
        if self._cluster and self._pubsub is not None and not self._stopping:
            task = asyncio.ensure_future(self._sunsubscribe(key))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        conn = self._conn
        if conn is not None and not self._stopping:
            task = asyncio.ensure_future(self._unsubscribe(conn, key))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _before_stop(self) -> None:
        if self._background:  # pending UNSUBSCRIBEs: let them go out first
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _unsubscribe(self, conn: Any, key: str) -> None:
        with contextlib.suppress(*_DOWN):
            if key not in self._channels:  # not re-listened meanwhile
                await conn.send_command("UNSUBSCRIBE", key, check_health=False)

    async def _sunsubscribe(self, key: str) -> None:
        with contextlib.suppress(*_DOWN):
            if key not in self._channels:
                await self._pubsub.sunsubscribe(key)

    async def _run_cluster(self) -> None:
        """Sharded pub/sub: redis-py keeps one connection per shard that holds a listened
        channel, and moves a channel's subscription when its slot moves (failover,
        resharding). Messages published while a shard is unreachable are lost, as with
        pub/sub on one Redis."""
        deliver = self._deliver
        assert deliver is not None
        skip = self._skip
        pubsub = self._pubsub = self._client.pubsub()
        failing = False
        resubscribe = bool(self._channels)  # listened before this task ran
        dropped: set[str] = set()  # channels a shard unsubscribed us from (its slot moved)
        delay = 0.05
        while not self._stopping:
            if not self._channels and not self._confirming:
                self._wanted.clear()
                await self._wanted.wait()  # no channel listened: no shard to read
                continue
            try:
                if (failing or resubscribe) and self._channels:
                    # (again) what a failure may have dropped, or listened before we ran
                    await pubsub.ssubscribe(*self._channels)
                    resubscribe = False
                elif dropped:
                    await pubsub.ssubscribe(*(dropped & self._channels))
                    dropped.clear()
                # perf: the wait is split over the shards read (round robin): a short one
                # bounds the latency of a message on a shard other than the one being read
                reply = await pubsub.get_sharded_message(timeout=0.1)
            except (*_DOWN, ResponseError) as exc:
                if not failing:
                    logger.warning("Channels: lost the Redis connection at %s (%s); "
                                   "reconnecting", self.url, exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
                continue
            if failing:
                self.reconnects += 1
                logger.warning("Channels: reconnected to Redis at %s", self.url)
                failing, delay = False, 0.05
            if reply is None:
                continue
            kind = reply["type"]
            if kind == "smessage":
                deliver(Message(reply["channel"][skip:].decode(), reply["data"]))
            elif kind == "sunsubscribe" and reply["channel"].decode() in self._channels:
                # sent by a shard that stopped serving the channel's slot (a failover, a
                # resharding), not asked for: subscribe again, on the slot's new owner
                dropped.add(reply["channel"].decode())
            elif kind == "ssubscribe":
                waiter = self._confirming.pop(reply["channel"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def _stop_cluster(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # the shard connections are ours: closed, not handed back to the caller's pools
            # (redis-py hands them back; one a cancelled read left half-read is never reused)
            conns = [node.connection for node in pubsub.node_pubsub_mapping.values()
                     if node.connection is not None]
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            for conn in conns:
                with contextlib.suppress(Exception):
                    await conn.disconnect()

    async def _on_connect(self, conn: Any) -> None:
        # the idle channel too: subscribed to nothing, the connection is an idle client
        await conn.send_command("SUBSCRIBE", self._idle_key, *self._channels,
                                check_health=False)

    async def _listen_loop(self, conn: Any) -> None:
        deliver = self._deliver
        assert deliver is not None
        skip = self._skip
        while True:
            reply = await conn.read_response(timeout=math.inf, push_request=True)
            kind = reply[0]
            if kind == b"message":
                deliver(Message(reply[1][skip:].decode(), reply[2]))
            elif kind == b"subscribe":
                waiter = self._confirming.pop(reply[1], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)


class RedisStreamsBackend(_RedisBackend):
    """Redis Streams: one stream per channel, bounded by ``max_len`` messages and/or
    ``max_age`` seconds (a stream nobody publishes to expires after ``max_age``). Every
    message gets an id; subscribers can resume after one (``since=``, SSE ``Last-Event-ID``),
    and a process that lost Redis reads on from where it stopped.

    Example::

        from joey.channels import Channels

        channels = Channels(RedisStreamsBackend("redis://127.0.0.1:6379/0", max_len=10_000))
    """

    history = True
    carries_trace = True

    def __init__(self, url: str | RedisClient = "redis://127.0.0.1:6379/0", *,
                 max_len: int | None = 10_000,
                 max_age: float | None = None, block: float = 1.0, **options: Any) -> None:
        super().__init__(url, **options)
        if max_len is None and max_age is None:
            raise ValueError("Bound the history: give max_len, max_age, or both")
        if max_len is not None and max_len < 1:
            raise ValueError("max_len must be at least 1")
        if max_age is not None and max_age <= 0:
            raise ValueError("max_age must be positive (seconds)")
        self.max_len = max_len
        self.max_age = max_age
        self.block = block
        self._positions: dict[bytes, bytes] = {}  # stream key -> last id delivered
        self._reading: set[bytes] = set()
        self._client_id: int | None = None
        self._stream_readers: dict[bytes, asyncio.Task[None]] = {}  # on a cluster

    async def publish(self, channel: str, data: bytes,
                      trace: dict[str, str] | None = None) -> str | None:
        client = self._client
        if client is None:
            raise RuntimeError("The channels backend is not started")
        key = self._key(channel)
        # "t": the publisher's trace context, beside the data (a reader that does not know
        # the field reads "d" as before)
        fields: dict[str, bytes] = {"d": data} if trace is None else {
            "d": data, "t": msgspec.json.encode(trace)}
        try:
            if self.max_age is None:
                new_id = await client.xadd(key, fields, maxlen=self.max_len,
                                           approximate=False)
            else:
                age_ms = int(self.max_age * 1000)
                pipe = client.pipeline(transaction=False)
                pipe.xadd(key, fields, maxlen=self.max_len, approximate=False)
                pipe.xtrim(key, minid=f"{int(time.time() * 1000) - age_ms}", approximate=False)
                pipe.pexpire(key, age_ms)
                new_id = (await pipe.execute())[0]
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        return new_id.decode() if isinstance(new_id, bytes) else str(new_id)

    async def listen(self, channel: str) -> None:
        key = self._key(channel).encode()
        if key in self._positions:
            return
        client = self._client
        assert client is not None
        try:
            last = await client.xrevrange(key, "+", "-", count=1)
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        self._positions[key] = last[0][0] if last else b"0-0"
        if self._cluster:
            self._stream_readers[key] = asyncio.create_task(
                self._read_stream(key), name=f"joey channels {key.decode()}")
            return
        # The reader may be blocked in an XREAD without this stream (on the idle key, when
        # nobody listened): wake it until it reads this stream too. Bounded: a reader that is
        # reconnecting reads every listened stream once it is back.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        with contextlib.suppress(*_DOWN):
            while (key not in self._reading and self._conn is not None
                   and self._client_id is not None and loop.time() < deadline):
                await client.client_unblock(self._client_id)
                await asyncio.sleep(0.005)

    def unlisten(self, channel: str) -> None:
        key = self._key(channel).encode()
        self._positions.pop(key, None)
        reader = self._stream_readers.pop(key, None)
        if reader is not None:
            reader.cancel()

    async def _run_cluster(self) -> None:
        pass  # each listened stream has a reader of its own (`_read_stream`)

    async def _stop_cluster(self) -> None:
        readers = list(self._stream_readers.values())
        self._stream_readers.clear()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    async def _read_stream(self, key: bytes) -> None:
        """One stream's blocking ``XREAD`` on a cluster, through the client (which follows the
        slot to its current primary), from the last id delivered: nothing is lost while the
        stream holds it."""
        deliver = self._deliver
        assert deliver is not None
        positions = self._positions
        channel = key[self._skip:].decode()
        socket_timeout = client_kwargs(self._client).get("socket_timeout")
        block = min(self.block, socket_timeout / 2) if socket_timeout else self.block
        failing, delay = False, 0.05
        while not self._stopping and key in positions:
            try:
                async with asyncio.timeout(block + self.timeout + 1):
                    reply = await self._client.xread({key: positions[key]}, count=1000,
                                                     block=max(1, int(block * 1000)))
            except (*_DOWN, ResponseError) as exc:
                # (a ResponseError: the node stopped being the stream's primary while the read
                # was blocked, "UNBLOCKED ... instance state changed"; read again from the new)
                if not failing:
                    logger.warning("Channels: lost the Redis connection at %s (%s); "
                                   "reconnecting", self.url, exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
                continue
            if failing:
                self.reconnects += 1
                logger.warning("Channels: reconnected to Redis at %s", self.url)
                failing, delay = False, 0.05
            for _, entries in (reply.items() if isinstance(reply, dict) else reply or ()):
                for entry_id, fields in entries:
                    if key not in positions:
                        return
                    positions[key] = entry_id
                    deliver(Message(channel, fields[b"d"], entry_id.decode()))

    def position(self, channel: str) -> str | None:
        last = self._positions.get(self._key(channel).encode())
        return last.decode() if last is not None else None

    async def replay(self, channel: str, after: str, until: str) -> list[Message]:
        client = self._client
        assert client is not None
        try:
            entries = await client.xrange(self._key(channel), f"({after}", until)
        except _DOWN as exc:
            raise self._unavailable(exc) from exc
        return [Message(channel, fields[b"d"], entry_id.decode(), _trace(fields.get(b"t")))
                for entry_id, fields in entries]

    async def _on_connect(self, conn: Any) -> None:
        await conn.send_command("CLIENT", "ID", check_health=False)
        self._client_id = int(await conn.read_response())

    async def _listen_loop(self, conn: Any) -> None:
        deliver = self._deliver
        assert deliver is not None
        positions = self._positions
        skip = self._skip
        block_ms = int(self.block * 1000)
        idle = [self._idle_key.encode()]
        while not self._stopping:
            # nobody listens: block on the idle key, never wait without a command (an idle
            # client is closed by redis-server; a blocked one is not)
            keys = list(positions) or idle
            self._reading = set(keys)
            await conn.send_command("XREAD", "COUNT", 1000, "BLOCK", block_ms, "STREAMS",
                                    *keys, *(positions.get(k, b"$") for k in keys),
                                    check_health=False)
            try:
                # Bounded, so a frozen or silently gone Redis is noticed; a timeout drops the
                # connection (redis-py disconnects a read it cannot finish) and reconnects.
                reply = await asyncio.wait_for(conn.read_response(timeout=math.inf),
                                               self.block + self.timeout + 1)
            finally:
                self._reading = set()
            if not reply:
                continue  # timed out or unblocked: read again with the current streams
            # RESP3 (redis-py's default from 8) answers a map, RESP2 a list of pairs
            for key, entries in (reply.items() if isinstance(reply, dict) else reply):
                last = positions.get(key)
                if last is None:
                    continue  # nobody here listens any more
                channel = key[skip:].decode()
                floor = id_key(last.decode())
                for entry_id, fields in entries:
                    text_id = entry_id.decode()
                    if id_key(text_id) <= floor:
                        continue  # re-listened meanwhile: already in the history replay
                    positions[key] = entry_id
                    trace = _trace(fields[3]) if len(fields) > 3 and fields[2] == b"t" else None
                    deliver(Message(channel, fields[1], text_id, trace))


_decode_trace = msgspec.json.Decoder(dict[str, str]).decode


def _trace(raw: bytes | None) -> dict[str, str] | None:
    """A stream entry's trace context; one that does not decode is ignored (it only links)."""
    if not raw:
        return None
    try:
        return _decode_trace(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):  # (msgspec 0.18)
        return None
