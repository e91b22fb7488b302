"""HTTP caching: conditional requests, ``Cache-Control`` and ``Vary`` declared per route or
router, and a server-side response store with stampede protection. See docs/caching.md.

* :class:`Caching`: the declaration, ``@app.get(..., caching=Caching(...))`` or
  ``Router(caching=...)``; it shows in the route model (``RouteInfo.caching``) and the API
  document (the headers of the success response, 304, 412).
* :class:`Validators`, :func:`evaluate_preconditions`, :class:`PreconditionFailed`: the
  conditional request machinery routes and files share (:mod:`joey.caching.conditional`).
* :class:`MemoryCache` (one process) and :class:`RedisCache` (every worker, the ``redis``
  extra): where stored answers live, and how they are invalidated, by path or by tag.

An app that declares no caching runs none of this: it is compiled into the routes that ask
for it. Names load on first use, so ``import joey.caching`` costs nothing until then.

Example::

    from joey.caching import Caching, MemoryCache

    store = MemoryCache()

    @app.get("/menu", caching=Caching(cache_control="public, max-age=300", etag=True,
                                      store=store, tags=["menu"]))
    async def menu() -> list[str]:
        return ["soup", "bread"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from joey.lazy import lazy_attributes

if TYPE_CHECKING:
    from joey.caching.conditional import (
        PreconditionFailed,
        Validators,
        evaluate_preconditions,
    )
    from joey.caching.memory import MemoryCache
    from joey.caching.policy import Caching
    from joey.caching.redis import RedisCache
    from joey.caching.store import CacheUnavailable, ResponseCache

__all__ = ["CacheUnavailable", "Caching", "MemoryCache", "PreconditionFailed", "RedisCache",
           "ResponseCache", "Validators", "evaluate_preconditions"]

__getattr__ = lazy_attributes(__name__, globals(), {
    "Caching": "joey.caching.policy",
    "CacheUnavailable": "joey.caching.store",
    "MemoryCache": "joey.caching.memory",
    "PreconditionFailed": "joey.caching.conditional",
    "RedisCache": "joey.caching.redis",
    "ResponseCache": "joey.caching.store",
    "Validators": "joey.caching.conditional",
    "evaluate_preconditions": "joey.caching.conditional",
})
