"""``MemoryCache``: stored answers in this process's memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from joey.caching.store import Entry, ResponseCache

__all__ = ["MemoryCache"]


class MemoryCache(ResponseCache):
    """Answers stored in this process: for one worker, or where every worker may keep its
    own copy (an invalidation reaches only the process that makes it: with several workers,
    use :class:`~joey.caching.RedisCache`).

    At most ``max_entries`` answers are kept, the least recently used dropped first;
    expired ones go when next asked for. ``clock`` gives seconds (monotonic by default).
    Other options: :class:`~joey.caching.ResponseCache`.

    Example::

        from joey.caching import Caching, MemoryCache

        pages = MemoryCache(max_entries=1000)

        @app.get("/front", caching=Caching(store=pages, ttl=30))
        async def front() -> str:
            return "today's front page"
    """

    def __init__(self, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic, wait_timeout: float = 15.0,
                 max_body_size: int = 1024 * 1024, status_header: bool = True) -> None:
        if max_entries < 1:
            raise ValueError("MemoryCache needs max_entries >= 1")
        super().__init__(wait_timeout=wait_timeout, max_body_size=max_body_size,
                         status_header=status_header)
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._variants: dict[str, set[str]] = {}  # resource -> its variants stored
        self._tags: dict[str, set[str]] = {}  # tag -> resources stored under it
        self._tags_of: dict[str, set[str]] = {}  # resource -> its tags
        self._generation = 0  # +1 per invalidation: a computation that saw an older one
        # is not stored (it may hold what was invalidated)

    def __len__(self) -> int:
        return len(self._entries)

    async def _fetch(self, resource: str, variant: str, token: str,
                     ) -> tuple[Entry | None, bool, object, float]:
        # perf: never suspends, so a miss and the lead it takes are one step for asyncio
        now = self._clock()
        key = (resource, variant)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > now:
                self._entries.move_to_end(key)
                return entry, True, self._generation, now
            self._remove(key)
        return None, True, self._generation, now

    async def _put(self, resource: str, variant: str, token: str, entry: Entry, ttl: float,
                   tags: tuple[str, ...], generation: object) -> bool:
        if generation != self._generation:
            return False
        now = self._clock()
        key = (resource, variant)
        self._entries[key] = Entry(entry.status, entry.headers, entry.body, now, now + ttl)
        self._entries.move_to_end(key)
        self._variants.setdefault(resource, set()).add(variant)
        for tag in tags:
            self._tags.setdefault(tag, set()).add(resource)
            self._tags_of.setdefault(resource, set()).add(tag)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))
        return True

    async def _unlock(self, resource: str, variant: str, token: str) -> None:
        return None  # the in-process flight is the only lock

    async def _drop(self, resource: str) -> None:
        self._generation += 1
        for variant in list(self._variants.get(resource, ())):
            self._remove((resource, variant))

    async def _drop_tags(self, tags: tuple[str, ...]) -> None:
        self._generation += 1
        for tag in tags:
            for resource in list(self._tags.get(tag, ())):
                await self._drop(resource)

    async def _clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._variants.clear()
        self._tags.clear()
        self._tags_of.clear()

    def _remove(self, key: tuple[str, str]) -> None:
        resource, variant = key
        self._entries.pop(key, None)
        variants = self._variants.get(resource)
        if variants is None:
            return
        variants.discard(variant)
        if variants:
            return
        del self._variants[resource]
        for tag in self._tags_of.pop(resource, ()):
            members = self._tags.get(tag)
            if members is not None:
                members.discard(resource)
                if not members:
                    del self._tags[tag]

    def __repr__(self) -> str:
        return f"<MemoryCache {len(self._entries)}/{self.max_entries} entries>"
