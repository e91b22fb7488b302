"""The server-side response store: what a cached route reads, fills and invalidates.

:class:`ResponseCache` is the part every store shares; :class:`~joey.caching.MemoryCache`
(one process) and :class:`~joey.caching.RedisCache` (every worker and machine) keep the
entries. Per request, a cached route asks :meth:`ResponseCache.lookup` and, when it has to
compute the answer, hands it to :meth:`ResponseCache.complete`.

Stampede protection: when many requests miss the same entry at once, one computes and the
others wait for its answer. In one process the waiters share the computing request's future;
across processes (Redis) the computing request holds a lock key (a random token, with an
expiry that it renews while it computes: a worker that dies cannot hold it for longer) and the
other processes poll for the entry or the lock, with a bound (``wait_timeout``). A waiter
that gives up, or whose computation ended without an answer to keep, runs the handler
itself.

When the store fails (Redis down or hanging), the failure is logged once and, for
``retry_after`` seconds, the store is left alone: with ``fail_open=True`` (the default) the
handler answers every request itself, still one computation per key and process at a time;
with ``fail_open=False`` requests to cached routes get ``503`` with ``Retry-After``. Either
way never a 500, and the recovery is logged once too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Coroutine, Iterable
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote

from joey.datastructures import RawHeaders
from joey.exceptions import ServiceUnavailable

__all__ = [
    "CacheUnavailable",
    "Entry",
    "Lookup",
    "ResponseCache",
    "canonical_path",
    "encode_segments",
    "resource_key",
]

logger = logging.getLogger("joey")
T = TypeVar("T")

#: Cache-Status (RFC 9211) of a request, by what the store did for it
Outcome = Literal["hit", "collapsed", "miss", "bypass"]
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


class CacheUnavailable(ServiceUnavailable):
    """503: the response store failed and is configured to fail closed
    (``fail_open=False``)."""


class Entry:
    """A stored answer: status, headers (without ``Content-Length``) and body; ``stored`` and
    ``expires`` in seconds on the store's clock."""

    __slots__ = ("body", "expires", "headers", "status", "stored")

    def __init__(self, status: int, headers: RawHeaders, body: bytes, stored: float = 0.0,
                 expires: float = 0.0) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stored = stored
        self.expires = expires


class Lookup:
    """What :meth:`ResponseCache.lookup` found for one request.

    ``entry``: an answer to send (``outcome`` "hit", or "collapsed" when it waited for another
    request's); ``age`` / ``ttl``: its seconds in the store, and left. Without an entry the
    request computes the answer; ``leads`` says it should then :meth:`~ResponseCache.complete`
    it (others may be waiting).
    """

    __slots__ = ("_flight", "_generation", "_key", "_renewal", "_token", "age", "entry", "leads",
                 "outcome", "ttl")

    def __init__(self, outcome: Outcome, entry: Entry | None = None, age: float = 0.0,
                 ttl: float = 0.0) -> None:
        self.outcome: Outcome = outcome
        self.entry = entry
        self.age = age
        self.ttl = ttl
        self.leads = False
        self._key: tuple[str, str] = ("", "")
        self._token = ""
        self._generation: object = None
        self._flight: asyncio.Future[Lookup | None] | None = None
        self._renewal: asyncio.Task[None] | None = None  # keeps the store's lock while computing

    def _lead(self, key: tuple[str, str], token: str, generation: object,
              flight: asyncio.Future[Lookup | None] | None) -> Lookup:
        self.leads = True
        self._key, self._token, self._generation, self._flight = key, token, generation, flight
        return self


class _Down(Exception):
    """The store failed just now, or is being left alone after a failure."""


class ResponseCache:
    """What every response store shares: stampede protection, failure handling, and the
    invalidation API. Subclasses keep the entries (the ``_fetch``/``_put``... methods).

    ``wait_timeout``: seconds a request waits for another one computing the same answer
    before it computes the answer itself. ``fail_open`` / ``retry_after``: what requests get
    while the store fails (see the module docstring). ``max_body_size``: larger bodies are
    not stored. ``status_header``: send ``Cache-Status`` (RFC 9211: ``joey; hit``,
    ``joey; fwd=uri-miss; stored``...) on the answers of cached routes.
    """

    #: asking the store suspends (a network round trip): concurrent lookups of one key in
    #: this process then share one
    _remote = False

    def __init__(self, *, wait_timeout: float = 15.0, fail_open: bool = True,
                 retry_after: int = 5, max_body_size: int = 1024 * 1024,
                 status_header: bool = True) -> None:
        if wait_timeout <= 0 or retry_after < 1:
            raise ValueError("wait_timeout must be > 0 and retry_after >= 1 second")
        self.wait_timeout = wait_timeout
        self.fail_open = fail_open
        self.retry_after = retry_after
        self.max_body_size = max_body_size
        self.status_header = status_header
        self._flights: dict[tuple[str, str], asyncio.Future[Lookup | None]] = {}
        self._down_until = 0.0  # monotonic: the store is left alone until then
        self._failing = False

    # -- invalidation (public) ----------------------------------------------------------------

    async def invalidate(self, target: str, *, key: str | None = None) -> None:
        """Drop what is stored for ``target``, a path with its query as the app routes it
        (``"/books?page=2"``), every ``vary`` variant of it; ``key``: the route's ``key=``
        value it was stored under. Seen by every process sharing the store.

        Example::

            from joey.caching import MemoryCache

            cache = MemoryCache()
            await cache.invalidate("/books/7")
        """
        path, _, query = target.partition("?")
        await self._invalidating(self._drop(resource_key(canonical_path(path), query, key)))

    async def invalidate_tag(self, *tags: str) -> None:
        """Drop every answer stored under any of ``tags`` (a route's ``tags=``, path
        parameters filled in: ``"book:7"``). Seen by every process sharing the store."""
        if tags:
            await self._invalidating(self._drop_tags(tags))

    async def clear(self) -> None:
        """Drop every stored answer."""
        await self._invalidating(self._clear())

    async def _invalidating(self, operation: Coroutine[Any, Any, None]) -> None:
        # An invalidation that fails is the caller's to know about: what it meant to drop
        # could be served again once the store is back (until its ttl runs out).
        try:
            await self._backend(operation)
        except _Down as down:
            raise CacheUnavailable("The response cache could not be invalidated.",
                                   retry_after=max(1, self.retry_in())) from down.__cause__

    # -- what a cached route calls ------------------------------------------------------------

    async def lookup(self, resource: str, variant: str) -> Lookup:
        """The stored answer for this request, a wait for another request's, or the lead
        (the caller computes and then calls :meth:`complete`)."""
        key = (resource, variant)
        flight = self._flights.get(key)
        if flight is not None:
            return await self._wait(flight)
        if not self._remote:
            # perf: a store in this process answers without suspending: looking up and
            # taking the lead are one step for asyncio, and a hit needs no flight
            entry, _, generation, now = await self._fetch(resource, variant, "")
            if entry is not None:
                return Lookup("hit", entry, now - entry.stored, entry.expires - now)
            self._flights[key] = mine = asyncio.get_running_loop().create_future()
            return Lookup("miss")._lead(key, "", generation, mine)
        # This process's other requests for the key wait for what this one finds (a stored
        # answer, or one it computes): one request per process asks the store.
        self._flights[key] = mine = asyncio.get_running_loop().create_future()
        token = secrets.token_hex(8)
        lookup = Lookup("miss")._lead(key, token, None, mine)
        try:
            return await self._find(lookup, resource, variant, token)
        except BaseException:
            self._settle(lookup, None)
            raise

    async def _find(self, lookup: Lookup, resource: str, variant: str, token: str) -> Lookup:
        """Ask the store for the entry, or its lock; while another process holds the lock,
        ask again until its entry is there or the lock is gone (that process failed, or died
        and the lock expired) and taken; compute here after ``wait_timeout``."""
        deadline: float | None = None
        delay = 0.005
        while True:
            try:
                entry, locked, generation, now = await self._backend(
                    self._fetch(resource, variant, token))
            except _Down:
                if not self.fail_open:
                    raise self._unavailable() from None
                lookup.outcome = "bypass"  # computed here, for this process's requests
                return lookup
            lookup._generation = generation
            if entry is not None:
                found = Lookup("hit" if deadline is None else "collapsed", entry,
                               now - entry.stored, entry.expires - now)
                self._settle(lookup, found)
                return found
            if locked:
                return self._hold(lookup)
            if deadline is None:
                deadline = time.monotonic() + self.wait_timeout
            elif time.monotonic() >= deadline:
                return lookup  # computed here; storing it is still right
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _wait(self, flight: asyncio.Future[Lookup | None]) -> Lookup:
        try:
            found = await asyncio.wait_for(asyncio.shield(flight), self.wait_timeout)
        except TimeoutError:
            found = None
        if found is not None:
            outcome: Outcome = "hit" if found.outcome == "hit" else "collapsed"
            return Lookup(outcome, found.entry, found.age, found.ttl)
        if not self.fail_open and time.monotonic() < self._down_until:
            raise self._unavailable()
        return Lookup("miss")  # the computation kept nothing: answer this request here

    def _unavailable(self) -> CacheUnavailable:
        return CacheUnavailable("The response cache is unavailable.",
                                retry_after=max(1, self.retry_in()))

    def _hold(self, lookup: Lookup) -> Lookup:
        """The lookup holds the store's lock: keep it while the answer is computed, however
        long that takes (a holder that dies stops renewing it, and it expires)."""
        interval = self._renew_every()
        if interval is not None:
            resource, variant = lookup._key
            lookup._renewal = asyncio.ensure_future(
                self._keep_lock(resource, variant, lookup._token, interval))
        return lookup

    async def _keep_lock(self, resource: str, variant: str, token: str,
                         interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._backend(self._renew(resource, variant, token)):
                    return  # it expired and another process took it
            except _Down:
                return

    async def complete(self, lookup: Lookup, entry: Entry | None, ttl: float,
                       tags: Iterable[str]) -> bool:
        """Hand the computed answer (``None``: nothing to keep) to the requests waiting for
        it, store it for ``ttl`` seconds under ``tags``, and release the lock. True when it
        was stored. Never raises: a store failure is logged (once) and handled."""
        if lookup._renewal is not None:
            lookup._renewal.cancel()
            lookup._renewal = None
        if entry is not None and len(entry.body) > self.max_body_size:
            entry = None
        # the waiters in this process need not wait for the store
        self._settle(lookup, Lookup("collapsed", entry, 0.0, ttl) if entry else None)
        if not lookup.leads or lookup.outcome == "bypass":
            return False
        resource, variant = lookup._key
        try:
            if entry is not None:
                return await self._backend(self._put(
                    resource, variant, lookup._token, entry, ttl, tuple(tags),
                    lookup._generation))
            await self._backend(self._unlock(resource, variant, lookup._token))
        except _Down:
            pass
        return False

    def _settle(self, lookup: Lookup, found: Lookup | None) -> None:
        flight = lookup._flight
        if flight is None:
            return
        lookup._flight = None
        if not flight.done():
            flight.set_result(found)
        if self._flights.get(lookup._key) is flight:
            del self._flights[lookup._key]

    # -- failures ------------------------------------------------------------------------------

    async def _backend(self, operation: Coroutine[Any, Any, T]) -> T:
        """Run a store operation; a failure marks the store down for ``retry_after``
        seconds and raises :class:`_Down`, as does any call meanwhile."""
        if time.monotonic() < self._down_until:
            operation.close()
            raise _Down
        try:
            result = await operation
        except Exception as exc:
            self._down_until = time.monotonic() + self.retry_after
            if not self._failing:
                self._failing = True
                logger.warning(
                    "Response cache %r failed (%s): %s for %d s, then trying it again", self,
                    str(exc) or type(exc).__name__,
                    "serving without it" if self.fail_open else "answering 503",
                    self.retry_after)
            raise _Down from exc
        if self._failing:
            self._failing = False
            logger.warning("Response cache %r works again", self)
        return result

    @property
    def failing(self) -> bool:
        """Whether the last operation on the store failed (it is logged once)."""
        return self._failing

    def retry_in(self) -> int:
        """Seconds until a failed store is tried again (0 when it is not failing)."""
        return max(0, math.ceil(self._down_until - time.monotonic()))

    # -- what a store implements ---------------------------------------------------------------

    async def _fetch(self, resource: str, variant: str, token: str,
                     ) -> tuple[Entry | None, bool, object, float]:
        """The live entry, or whether the lock for computing it was taken with ``token``;
        then the invalidation generation and the store's clock."""
        raise NotImplementedError

    async def _put(self, resource: str, variant: str, token: str, entry: Entry, ttl: float,
                   tags: tuple[str, ...], generation: object) -> bool:
        """Store ``entry`` unless an invalidation came after ``generation``; release the
        lock if ``token`` holds it. True when stored."""
        raise NotImplementedError

    async def _unlock(self, resource: str, variant: str, token: str) -> None:
        raise NotImplementedError

    def _renew_every(self) -> float | None:
        """Seconds between renewals of a held lock; ``None``: the store has no lock."""
        return None

    async def _renew(self, resource: str, variant: str, token: str) -> bool:
        """Extend the lock ``token`` holds; False when it holds it no more."""
        raise NotImplementedError

    async def _drop(self, resource: str) -> None:
        raise NotImplementedError

    async def _drop_tags(self, tags: tuple[str, ...]) -> None:
        raise NotImplementedError

    async def _clear(self) -> None:
        raise NotImplementedError


def canonical_path(path: str) -> str:
    """``path`` (percent-encoded or not) as a store files it: each segment decoded, then
    encoded again the one way; an encoded ``/`` stays inside its segment.

    Example::

        assert canonical_path("/books/Grüße") == canonical_path("/books/Gr%C3%BC%C3%9Fe")
        assert canonical_path("/a%2Fb") != canonical_path("/a/b")
    """
    return encode_segments([unquote(segment) for segment in path[1:].split("/")])


def encode_segments(segments: list[str]) -> str:
    """Path segments (decoded), as :func:`canonical_path` writes them."""
    return "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in segments)


def resource_key(path: str, query: str, key: str | None) -> str:
    """What a stored answer is filed under, before its ``vary`` variant: GET and HEAD share
    it (a HEAD is answered from the GET's entry)."""
    resource = f"GET {path}?{query}" if query else f"GET {path}"
    return resource if key is None else f"{resource}\x1f{key}"
