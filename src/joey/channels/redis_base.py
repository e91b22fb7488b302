"""What both Redis channels backends share (:mod:`joey.channels.redis`): the client (a URL or a
ready client, never closed when given), the listening connection kept up with a growing delay,
and the errors that mean Redis is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from joey._redis import RedisClient, describe, from_url, names_cluster
from joey.channels.backend import Backend, ChannelsUnavailable, Deliver, logger

__all__ = ["DOWN", "MAX_DELAY", "RedisChannelBackend"]

#: the errors that mean Redis is unreachable or too slow
DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)
#: the longest pause between two attempts to listen again
MAX_DELAY = 2.0


class RedisChannelBackend(Backend):
    def __init__(self, url: str | RedisClient = "redis://127.0.0.1:6379/0", *,
                 prefix: str = "joey:channels", timeout: float = 2.0,
                 retry_after: int = 1) -> None:
        # a URL: our client; a client: the caller's, never closed here
        self._given: RedisClient | None = None if isinstance(url, str) else url
        self._cluster = names_cluster(url)  # a cluster client, or a cluster's URL
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
        self._client = from_url(
            self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        if self._cluster:  # a cluster's URL: our own RedisCluster, listened to as one given
            self._reader = asyncio.create_task(self._run_cluster(),
                                               name=f"joey channels {self.url}")
            return
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
            except DOWN as exc:
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
            delay = min(delay * 2, MAX_DELAY)

    async def _before_stop(self) -> None:
        pass

    async def _on_connect(self, conn: Any) -> None:
        raise NotImplementedError

    async def _listen_loop(self, conn: Any) -> None:
        raise NotImplementedError
