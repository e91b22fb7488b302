"""Where server-side sessions live: the :class:`SessionStore` contract, and two stores.

:class:`MemoryStore` keeps sessions in this process (tests, development, one process);
:class:`RedisStore` keeps them in Redis, shared by every process and machine. A store that
fails raises :class:`SessionStoreError`; :class:`~joey.middleware.SessionMiddleware` answers
that with a 503 and leaves the user's cookie alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from joey._json import decode_json

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster


class SessionStoreError(Exception):
    """A session store could not do its job (its backend is down, full, refusing...).

    Raise it from a custom :class:`SessionStore` for a backend failure; the middleware answers
    503 with ``Retry-After`` and leaves the client's cookie alone. ``OSError`` (which includes
    ``ConnectionError`` and ``TimeoutError``) counts as such a failure too. Any other exception
    from a store is a bug and is answered 500 by the app's exception handlers.
    """


@runtime_checkable
class SessionStore(Protocol):
    """Where server-side sessions live, keyed by session id.

    ``max_age`` is the lifetime in seconds the store should keep the data (None: no expiry).
    ``load`` returns None for an unknown or expired id. Implement these three coroutines to use
    any database; data is a JSON-compatible dict. Raise :class:`SessionStoreError` when the
    backend fails.
    """

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None: ...

    async def delete(self, session_id: str) -> None: ...


class MemoryStore:
    """Sessions in this process's memory: for tests, development and single-process apps.

    Data is stored encoded, so a handler changing a dict it loaded never changes the store.

    Example::

        from joey.middleware import SessionMiddleware

        asgi_app = SessionMiddleware(app, secret_key=os.environ["SESSION_SECRET"],
                                     store=MemoryStore())
    """

    __slots__ = ("_data", "_writes")

    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, bytes]] = {}
        self._writes = 0

    async def load(self, session_id: str) -> dict[str, Any] | None:
        entry = self._data.get(session_id)
        if entry is None:
            return None
        expires, payload = entry
        if expires is not None and expires <= time.monotonic():
            del self._data[session_id]
            return None
        data: dict[str, Any] = msgspec.json.decode(payload)
        return data

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        expires = None if max_age is None else time.monotonic() + max_age
        self._data[session_id] = (expires, msgspec.json.encode(data))
        self._writes += 1
        if self._writes % 1000 == 0:
            self._sweep()

    async def delete(self, session_id: str) -> None:
        self._data.pop(session_id, None)

    def _sweep(self) -> None:
        # Expired sessions nobody asks for again would otherwise stay forever.
        now = time.monotonic()
        for key in [k for k, (exp, _) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class RedisStore:
    """Sessions in Redis (``redis.asyncio``), shared by every process and machine of the app.

    Keys are ``prefix + session_id`` with a Redis expiry of the session's ``max_age``; every
    operation is one command on one key, so on a Redis Cluster sessions spread over the shards.
    ``client``: a ready ``redis.asyncio`` client (``Redis``, ``RedisCluster``, or a Sentinel
    master from ``Sentinel(...).master_for(...)``), yours to create at startup and close at
    shutdown; or a URL, for which the store creates a client of its own, closed by
    :meth:`aclose`. A Redis error is raised as :class:`SessionStoreError` (the request gets a
    503, the user stays logged in).

    Example::

        from redis.asyncio import Redis

        from joey.middleware import SessionMiddleware

        redis = Redis.from_url("redis://localhost:6379/0")  # connects on first use
        asgi_app = SessionMiddleware(app, secret_key=os.environ["SESSION_SECRET"],
                                     store=RedisStore(redis))
    """

    __slots__ = ("_client", "_errors", "_owned", "_prefix")

    def __init__(self, client: Redis | RedisCluster | str, *,
                 prefix: str = "joey:session:") -> None:
        from redis.exceptions import RedisError

        from joey._redis import from_url

        self._owned = isinstance(client, str)
        self._client = from_url(client) if isinstance(client, str) else client
        self._prefix = prefix
        self._errors = RedisError

    async def load(self, session_id: str) -> dict[str, Any] | None:
        try:
            payload = await self._client.get(self._prefix + session_id)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to load a session: {exc}") from exc
        if payload is None:
            return None
        try:
            data = decode_json(payload)
        except msgspec.DecodeError:  # too deep included
            return None  # not ours, or corrupted: treat as no session
        return data if isinstance(data, dict) else None

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        payload = msgspec.json.encode(data)  # outside the try: unencodable data is a bug, a 500
        try:
            await self._client.set(self._prefix + session_id, payload, ex=max_age)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to save a session: {exc}") from exc

    async def delete(self, session_id: str) -> None:
        try:
            await self._client.delete(self._prefix + session_id)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to delete a session: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client the store created from a URL; a client passed in stays open."""
        if self._owned:
            await self._client.aclose()

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SessionStore",
    "SessionStoreError",
]
