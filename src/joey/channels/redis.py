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
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from joey._redis import RedisClient
from joey.channels.backend import Message, logger
from joey.channels.redis_base import DOWN, MAX_DELAY, RedisChannelBackend
from joey.channels.redis_streams import RedisStreamsBackend

__all__ = ["RedisPubSubBackend", "RedisStreamsBackend"]


class RedisPubSubBackend(RedisChannelBackend):
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
        cluster = aioredis.RedisCluster if isinstance(url, str) else url  # (a URL: ours)
        if self._cluster and not hasattr(cluster, "pubsub"):
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
        except DOWN as exc:
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
        except DOWN as exc:
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
        with contextlib.suppress(*DOWN):
            if key not in self._channels:  # not re-listened meanwhile
                await conn.send_command("UNSUBSCRIBE", key, check_health=False)

    async def _sunsubscribe(self, key: str) -> None:
        with contextlib.suppress(*DOWN):
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
            except (*DOWN, ResponseError) as exc:
                if not failing:
                    logger.warning("Channels: lost the Redis connection at %s (%s); "
                                   "reconnecting", self.url, exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
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
