"""``RedisCache``: stored answers in Redis, shared by every worker process and machine.

Keys, under ``prefix``:

* ``r:<hash of method, path, query, key>``: a hash, one field per ``vary`` variant, each value
  ``"<expires ms> <stored ms> <msgpack of status, headers, body>"`` (times from the Redis
  server's clock, so the machines' clocks do not matter); the hash expires with its
  longest-lived variant, each variant is checked against its own expiry;
* ``t:<tag>``: the set of entry hashes stored under a tag;
* ``l:<hash of the entry and variant>``: the lock of the process computing that answer, a
  random token with an expiry (``lock_timeout``);
* ``generation``: counts invalidations; an answer computed across one is not stored.

Each step is one script (atomic, one round trip): look up or take the lock; store, tag and
unlock; invalidate. An invalidation by tag deletes the keys it finds in the tag's set, and
every answer checks the one ``generation`` key: the keys of one cache must share a hash slot.
On a Redis Cluster the prefix therefore becomes a hash tag (``{joey:cache:}r:...``): a cache
lives on one shard (give caches different prefixes to spread them).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

import msgspec

from joey.caching.store import Entry, ResponseCache

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

__all__ = ["RedisCache"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: entry hash, lock, generation; ARGV: variant, token, lock ms
# -> {1, value, now, generation} a hit; {2, '', now, generation} the lock is ours; {0, ...}
_FETCH = _NOW + """
local generation = redis.call('GET', KEYS[3]) or '0'
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then
  local expires = tonumber(string.match(value, '^(%d+) '))
  if expires and expires > now then return {1, value, now, generation} end
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {2, '', now, generation}
end
return {0, '', now, generation}
"""
# KEYS: entry hash, lock, generation, tag sets...; ARGV: variant, token, ttl ms, payload,
# generation seen -> 1 stored, 0 not (an invalidation came between)
_PUT = _NOW + """
local stored = 0
if (redis.call('GET', KEYS[3]) or '0') == ARGV[5] then
  local ttl = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], ARGV[1],
             string.format('%d %d ', now + ttl, now) .. ARGV[4])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  for i = 4, #KEYS do
    redis.call('SADD', KEYS[i], KEYS[1])
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
  stored = 1
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return stored
"""
# KEYS: lock; ARGV: token, lock ms -> 1 extended, 0 not ours any more
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# KEYS: lock; ARGV: token
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
# KEYS: generation, entry hashes... -> drop them
_DROP = """
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('INCR', KEYS[1])
return 1
"""
# KEYS: generation, tag sets... -> drop every entry hash of each tag, and the tags
_DROP_TAGS = """
for i = 2, #KEYS do
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do redis.call('DEL', member) end
  redis.call('DEL', KEYS[i])
end
redis.call('INCR', KEYS[1])
return 1
"""

_Payload = tuple[int, list[tuple[bytes, bytes]], bytes]
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Payload).decode


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape"),
                        usedforsecurity=False).hexdigest()


class RedisCache(ResponseCache):
    """Answers stored in Redis (the ``redis`` extra), shared by every worker and machine: an
    invalidation is seen by all.

    ``client``: a ready ``redis.asyncio`` client (``Redis``, ``RedisCluster``, or a Sentinel
    master from ``Sentinel(...).master_for(...)``), yours to create and close; or a URL, for
    which the cache creates a client of its own, closed by :meth:`aclose`.

    ``timeout`` bounds every Redis call, so a Redis that hangs fails like one that is down.
    ``lock_timeout``: the life of the lock of the process computing an answer, which renews
    it every third of that while it computes; if the process dies, another takes over
    within ``lock_timeout`` seconds. Other options (``fail_open``, ``retry_after``,
    ``wait_timeout``...): :class:`~joey.caching.ResponseCache`. The client must return bytes
    (no ``decode_responses=True``).

    <!-- docs-test: fragment: needs a Redis server -->
    Example::

        from redis.asyncio import Redis

        from joey.caching import Caching, RedisCache

        shared = RedisCache(Redis.from_url(os.environ["REDIS_URL"]), prefix="shop:cache:")

        @app.get("/products", caching=Caching(store=shared, ttl=60, tags=["products"]))
        async def products() -> list[str]:
            return ["kettle"]
    """

    _remote = True

    def __init__(self, client: Redis | RedisCluster | str, *, prefix: str = "joey:cache:",
                 timeout: float = 0.5,
                 lock_timeout: float = 10.0, wait_timeout: float = 15.0,
                 fail_open: bool = True, retry_after: int = 5,
                 max_body_size: int = 1024 * 1024, status_header: bool = True) -> None:
        if lock_timeout <= 0 or timeout <= 0:
            raise ValueError("RedisCache needs timeout > 0 and lock_timeout > 0 seconds")
        super().__init__(wait_timeout=wait_timeout, fail_open=fail_open,
                         retry_after=retry_after, max_body_size=max_body_size,
                         status_header=status_header)
        from joey._redis import Script, from_url, slot_prefix

        self._owned = isinstance(client, str)
        if isinstance(client, str):
            client = from_url(client)
        self._client = client
        prefix = slot_prefix(prefix, client)  # one slot for the whole cache on a cluster
        self.prefix = prefix
        self.timeout = timeout
        self.lock_timeout = lock_timeout
        self._generation_key = prefix + "generation"
        self._scripts = {name: Script(client, source) for name, source in (
            ("fetch", _FETCH), ("put", _PUT), ("unlock", _UNLOCK), ("renew", _RENEW),
            ("drop", _DROP),
            ("drop_tags", _DROP_TAGS))}

    def _entry_key(self, resource: str) -> str:
        return f"{self.prefix}r:{_digest(resource)}"

    def _lock_key(self, resource: str, variant: str) -> str:
        return f"{self.prefix}l:{_digest(resource + chr(30) + variant)}"

    async def _run(self, script: str, keys: list[str], args: list[bytes | str | int],
                   ) -> object:
        async with asyncio.timeout(self.timeout):
            return await self._scripts[script](keys=keys, args=args)

    async def _fetch(self, resource: str, variant: str, token: str,
                     ) -> tuple[Entry | None, bool, object, float]:
        found = await self._run(
            "fetch", [self._entry_key(resource), self._lock_key(resource, variant),
                      self._generation_key],
            [variant, token, max(1, round(self.lock_timeout * 1000))])
        assert isinstance(found, list)
        kind, value, now, generation = found
        seconds = int(now) / 1000
        if int(kind) != 1:
            return None, int(kind) == 2, bytes(generation), seconds
        expires, stored, payload = bytes(value).split(b" ", 2)
        status, headers, body = _decode(payload)
        entry = Entry(status, [(name, val) for name, val in headers], body,
                      int(stored) / 1000, int(expires) / 1000)
        return entry, False, bytes(generation), seconds

    async def _put(self, resource: str, variant: str, token: str, entry: Entry, ttl: float,
                   tags: tuple[str, ...], generation: object) -> bool:
        payload = _encode((entry.status, entry.headers, entry.body))
        stored = await self._run(
            "put", [self._entry_key(resource), self._lock_key(resource, variant),
                    self._generation_key, *(f"{self.prefix}t:{tag}" for tag in tags)],
            [variant, token, max(1, round(ttl * 1000)), payload,
             generation if isinstance(generation, bytes) else b"0"])
        return bool(stored)

    async def _unlock(self, resource: str, variant: str, token: str) -> None:
        await self._run("unlock", [self._lock_key(resource, variant)], [token])

    def _renew_every(self) -> float | None:
        return self.lock_timeout / 3

    async def _renew(self, resource: str, variant: str, token: str) -> bool:
        renewed = await self._run("renew", [self._lock_key(resource, variant)],
                                  [token, max(1, round(self.lock_timeout * 1000))])
        return bool(renewed)

    async def _drop(self, resource: str) -> None:
        await self._run("drop", [self._generation_key, self._entry_key(resource)], [])

    async def _drop_tags(self, tags: tuple[str, ...]) -> None:
        await self._run("drop_tags", [self._generation_key,
                                      *(f"{self.prefix}t:{tag}" for tag in tags)], [])

    async def _clear(self) -> None:
        async with asyncio.timeout(self.timeout * 20):
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=_glob_escape(self.prefix) + "*",
                                                     count=500):
                if name != self._generation_key.encode():
                    batch.append(name)
                if len(batch) >= 500:
                    await self._client.unlink(*batch)
                    batch = []
            if batch:
                await self._client.unlink(*batch)
            await self._client.incr(self._generation_key)

    async def aclose(self) -> None:
        """Close the client the cache created from a URL; a client passed in stays open."""
        if self._owned:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"<RedisCache prefix={self.prefix!r}>"


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
