"""The Redis Streams channels backend (history, resumable): see :mod:`joey.channels.redis`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from joey._redis import RedisClient, client_kwargs
from joey.channels.backend import Message, id_key, logger
from joey.channels.redis_base import DOWN, MAX_DELAY, RedisChannelBackend

__all__ = ["RedisStreamsBackend"]


class RedisStreamsBackend(RedisChannelBackend):
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
        except DOWN as exc:
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
        except DOWN as exc:
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
        with contextlib.suppress(*DOWN):
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
            except (*DOWN, ResponseError) as exc:
                # (a ResponseError: the node stopped being the stream's primary while the read
                # was blocked, "UNBLOCKED ... instance state changed"; read again from the new)
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
            for _, entries in (reply.items() if isinstance(reply, dict) else reply or ()):
                for entry_id, fields in entries:
                    if key not in positions:
                        return
                    positions[key] = entry_id
                    deliver(Message(channel, fields[b"d"], entry_id.decode(),
                                    _trace(fields.get(b"t"))))

    def position(self, channel: str) -> str | None:
        last = self._positions.get(self._key(channel).encode())
        return last.decode() if last is not None else None

    async def replay(self, channel: str, after: str, until: str) -> list[Message]:
        client = self._client
        assert client is not None
        try:
            entries = await client.xrange(self._key(channel), f"({after}", until)
        except DOWN as exc:
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
