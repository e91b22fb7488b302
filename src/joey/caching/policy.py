"""``Caching``: what a route or router declares about caching its responses.

A declaration is read once, when the app compiles its routes; nothing here runs per request.
A route's declaration fills in what its router's leaves unset (and a router's what the router
including it leaves unset): every option left at ``None`` is inherited.

Example::

    from joey.caching import Caching, MemoryCache

    pages = MemoryCache()

    @app.get("/news", caching=Caching(cache_control="public, max-age=60", etag=True,
                                      store=pages, tags=["news"]))
    async def news() -> list[str]:
        return ["Joey caches"]
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from joey.params.markers import Depends

if TYPE_CHECKING:
    from joey.caching.store import ResponseCache

__all__ = ["Caching", "parse_cache_control"]

_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(_TOKEN_CHARS)
_QUOTED = r'"(?:[^"\\\x00-\x1f]|\\[^\x00-\x1f])*"'
_DIRECTIVE = re.compile(  # OWS is spaces and tabs only: never a line break in a header
    rf"[ \t]*({_TOKEN_CHARS})[ \t]*(?:=[ \t]*({_TOKEN_CHARS}|{_QUOTED}))?[ \t]*(?:,|$)")
_SECONDS = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error")
_FIELDS = ("cache_control", "vary", "etag", "validators", "store", "ttl", "tags", "key",
           "store_cookies", "store_private")


def parse_cache_control(value: str) -> dict[str, str | None] | None:
    """The directives of a ``Cache-Control`` value (names lowercased, quotes removed), or
    ``None`` when it is not one.

    Example::

        assert parse_cache_control('public, max-age=60, no-cache="set-cookie"') == {
            "public": None, "max-age": "60", "no-cache": "set-cookie"}
        assert parse_cache_control("max-age=60; public") is None
    """
    directives: dict[str, str | None] = {}
    position = 0
    text = value.strip(" \t")
    while position < len(text):
        match = _DIRECTIVE.match(text, position)
        if match is None or match.end() == position:
            return None
        name, argument = match.group(1).lower(), match.group(2)
        if argument is not None and argument.startswith('"'):
            argument = re.sub(r"\\(.)", r"\1", argument[1:-1])
        directives.setdefault(name, argument)
        position = match.end()
    return directives


class Caching:
    """How a route's (or a router's routes') responses are cached.

    For clients and shared caches (browsers, CDNs, proxies):

    * ``cache_control``: the ``Cache-Control`` header of the route's 2xx, 3xx, 404 and 410
      answers, unless the handler sets its own;
    * ``vary``: request headers the answer depends on, added to ``Vary``;
    * ``etag=True``: a strong ``ETag`` hashed from the body of every 200 answer to GET/HEAD,
      and 304 for an ``If-None-Match`` that matches it (the handler still runs: the bytes
      travel once, the work is not saved; see ``validators`` and ``store`` for that);
    * ``validators``: a dependency (it may take path parameters like any other) returning the
      resource's current :class:`~joey.caching.Validators`, or ``None`` when the resource does
      not exist. It runs before the handler: a GET whose copy is current gets its 304 without
      the handler running, an unsafe method whose ``If-Match`` / ``If-Unmodified-Since`` fails
      gets a 412 before anything changes (and ``If-None-Match: *`` refuses to overwrite).

    On the server (``store``, a :class:`~joey.caching.MemoryCache` or
    :class:`~joey.caching.RedisCache`): GET and HEAD answers are kept for ``ttl`` seconds
    (default: the ``s-maxage`` or ``max-age`` of ``cache_control``), keyed by path, query,
    the ``vary`` headers and ``key``. ``key`` (``key(request) -> str``, sync or async, or a
    ``Depends``/``Security`` whose value is the key) tells apart what the path does not, such
    as the user. ``tags`` name groups to invalidate together; ``"{id}"`` in a tag is the path
    parameter. ``store_cookies=True`` also stores answers that set cookies (replayed to every
    client!), ``store_private=True`` answers marked ``private`` or ``no-store`` (for a cache
    keyed per user). See docs/caching.md for what is stored and when.

    Example::

        from joey.caching import Caching, Validators

        VERSIONS = {1: 3}  # book id -> version

        async def book_version(id: int) -> Validators | None:
            version = VERSIONS.get(id)
            return Validators(etag=f"v{version}") if version is not None else None

        @app.put("/books/{id:int}", caching=Caching(validators=book_version))
        async def replace_book(id: int, book: dict[str, Any]) -> dict[str, int]:
            VERSIONS[id] = VERSIONS.get(id, 0) + 1   # If-Match held: nobody changed it meanwhile
            return {"version": VERSIONS[id]}
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        cache_control: str | None = None,
        vary: Sequence[str] | None = None,
        etag: bool | None = None,
        validators: Callable[..., Any] | None = None,
        store: ResponseCache | None = None,
        ttl: float | None = None,
        tags: Sequence[str] | None = None,
        key: Callable[..., Any] | Depends | None = None,
        store_cookies: bool | None = None,
        store_private: bool | None = None,
    ) -> None:
        if cache_control is not None and parse_cache_control(cache_control) is None:
            raise ValueError(f"Caching: cache_control={cache_control!r} is not a Cache-Control "
                             "value (comma-separated directives: 'public, max-age=60')")
        if isinstance(vary, str):
            raise TypeError(f"Caching: vary takes a list of header names, not the string "
                            f"{vary!r}: vary=[{vary!r}]")
        if isinstance(tags, str):
            raise TypeError(f"Caching: tags takes a list, not the string {tags!r}: "
                            f"tags=[{tags!r}]")
        for name in vary or ():
            if name != "*" and not _TOKEN.fullmatch(name):
                raise ValueError(f"Caching: {name!r} in vary is not a header name")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"Caching: ttl={ttl!r} must be more than 0 seconds")
        if isinstance(key, Depends):
            key.named_dependency("Caching(key=...)")  # Depends() has no parameter's class here
        if validators is not None and not callable(validators):
            raise TypeError(f"Caching: validators must be a dependency (a function returning "
                            f"Validators or None), not {validators!r}")
        self.cache_control = cache_control
        self.vary = tuple(vary) if vary is not None else None
        self.etag = etag
        self.validators = validators
        self.store = store
        self.ttl = ttl
        self.tags = tuple(tags) if tags is not None else None
        self.key = key
        self.store_cookies = store_cookies
        self.store_private = store_private

    def under(self, outer: Caching | None) -> Caching:
        """This declaration with what it leaves unset taken from ``outer`` (its router's)."""
        if outer is None:
            return self
        merged = Caching.__new__(Caching)
        for name in _FIELDS:
            own = getattr(self, name)
            setattr(merged, name, own if own is not None else getattr(outer, name))
        return merged

    @property
    def directives(self) -> dict[str, str | None]:
        """The ``cache_control`` directives (empty when there is none)."""
        return parse_cache_control(self.cache_control or "") or {}

    @property
    def stored_for(self) -> float | None:
        """Seconds an answer stays in ``store``: ``ttl``, else ``s-maxage``, else
        ``max-age``; ``None`` when none is given."""
        if self.ttl is not None:
            return self.ttl
        directives = self.directives
        for name in ("s-maxage", "max-age"):
            seconds = directives.get(name)
            if seconds is not None and seconds.isdigit():
                return float(seconds)
        return None

    def problems(self, path_params: Mapping[str, type]) -> list[str]:
        """What is wrong with this declaration on a route with ``path_params`` (the app
        refuses to start with any: this is the merged declaration of a route)."""
        found: list[str] = []
        directives = self.directives
        for name in _SECONDS:
            seconds = directives.get(name, "0")
            if seconds is None or not seconds.isdigit():
                found.append(f"{name} in cache_control must be a number of seconds")
        for tag in self.tags or ():
            try:
                fields = {field for _, field, _, _ in string.Formatter().parse(tag) if field}
            except ValueError:
                fields = {tag}
            unknown = fields - set(path_params)
            if unknown:
                found.append(f"tag {tag!r} names {', '.join(sorted(unknown))}, which is not "
                             f"a path parameter of the route (those are: "
                             f"{', '.join(path_params) or 'none'})")
        if self.store is None:
            for option in ("ttl", "tags", "key", "store_cookies", "store_private"):
                if getattr(self, option) is not None:
                    found.append(f"{option}= applies to a server-side store; give store=")
            return found
        lifetime = self.stored_for
        if lifetime is None or lifetime <= 0:
            found.append("a stored answer needs a lifetime: give ttl= (seconds), or a max-age "
                         "or s-maxage in cache_control")
        refused = [name for name in ("no-store", "private") if name in directives]
        if refused and not self.store_private:
            found.append(f"cache_control says {' and '.join(refused)}, which forbids storing "
                         "the answer: drop store=, or pass store_private=True for a store "
                         "keyed per user (key=...)")
        if "*" in (self.vary or ()):
            found.append("vary=['*'] means the answer depends on everything: it cannot be "
                         "stored")
        return found

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS
                          if getattr(self, name) is not None)
        return f"Caching({shown})"
