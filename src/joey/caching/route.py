"""A route's :class:`~joey.caching.Caching`, compiled: a step before its handler and a step
after it. The compiler builds one :class:`RouteCaching` per route that declares caching;
routes that declare none never meet this module.

Before: the route's ``validators`` decide a 304 or a 412, then the store is asked; a stored
answer skips the handler. Where that happens depends on the route
(:meth:`RouteCaching.step_before`): a route with no dependencies whose parameters read only
what the store's key holds asks the store itself, before its plan runs (a stored answer
skips the plan); any other gets a dependency, put first among its dependencies, so it runs
after the security phase and the validation of every parameter and before every other
dependency (a stored answer is raised as :class:`_Answered` past the rest of the plan).

After (around the handler's call, inside the handler middleware, which thus runs for stored
answers too): the declared headers, the ``ETag``, the answer stored, and the conditional
request answered (304).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from joey.caching.conditional import (
    SAFE_METHODS,
    PreconditionFailed,
    Validators,
    etag_for,
    evaluate_preconditions,
    http_date,
    not_modified_headers,
)
from joey.caching.policy import Caching, parse_cache_control
from joey.caching.store import Entry, Lookup, ResponseCache, encode_segments, resource_key
from joey.datastructures import RawHeaders
from joey.params.info import ParamInfo
from joey.params.markers import Depends
from joey.params.plan import DependencyNode
from joey.paths import routing_path
from joey.pipelines import Pipeline
from joey.requests import Request
from joey.responses import Response
from joey.types import Scope

__all__ = ["RouteCaching"]

STATE = "joey.caching"  # the scope key where the step before leaves what the step after needs
#: RFC 9111 §4.2.2's heuristically cacheable statuses that a handler answers with (206 is
#: for ranges, 405/414/501 are answered before a handler runs)
STORABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 410})
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/!$&'()*+,;=:@\-._~]*")  # what quote() leaves alone
_NOT_STORED = frozenset({b"set-cookie", b"age", b"cache-status", b"content-length"})
_CREDENTIALS = frozenset({b"authorization"})
_CONDITIONS = frozenset({b"if-match", b"if-none-match", b"if-modified-since",
                         b"if-unmodified-since"})


class _Answered(Exception):
    """The step before has the answer (a stored one, or a 304): the handler is skipped."""

    def __init__(self, response: Response, stored: bool = False) -> None:
        super().__init__()
        self.response = response
        self.stored = stored


class _Pending:
    """What the step before leaves for the step after, per request."""

    __slots__ = ("lookup", "outcome", "validators")

    def __init__(self) -> None:
        self.lookup: Lookup | None = None
        self.outcome = ""  # Cache-Status of a request the store did not serve
        self.validators: Validators | None = None


def _has(scope: Scope, names: frozenset[bytes]) -> bool:
    """Whether the request has any of the headers ``names`` (lowercase, as ASGI sends
    header names)."""
    for name, _ in scope["headers"]:  # noqa: SIM110 - perf: no generator per request
        if name in names:
            return True
    return False


def _keyed(param: ParamInfo, vary: tuple[str, ...]) -> bool:
    """Whether what ``param`` reads is part of the store's key (or is the request)."""
    if param.source == "header":
        return param.key.lower() in vary
    return param.source in ("path", "query", "request", "route")


def _request_path(scope: Scope) -> str:
    """The routed path (below ``root_path``), as :func:`canonical_path` writes it."""
    path: str = scope["path"]
    raw: bytes | None = scope.get("raw_path")
    if not scope.get("root_path") and (raw is None or b"%" not in raw) and (
            _PLAIN_PATH.fullmatch(path)):
        return path  # perf: nothing to decode or encode (most paths)
    routed, segments = routing_path(scope)
    if segments is None:
        if _PLAIN_PATH.fullmatch(routed):
            return routed  # perf: nothing to decode or encode (most paths)
        segments = routed[1:].split("/")
    return encode_segments(segments)


class RouteCaching:
    """One route's caching, compiled from its (merged) :class:`~joey.caching.Caching`:
    :meth:`step_before` says what runs first among its dependencies, :meth:`wrap` puts the
    rest around the handler's call. A declaration that cannot work raises ``ValueError``
    naming ``where`` (the handler, its file and line)."""

    def __init__(self, caching: Caching, where: str, path_params: Mapping[str, type]) -> None:
        problems = caching.problems(path_params)
        if problems:
            raise ValueError(f"{where}: caching={caching!r}: " + "; ".join(problems))
        self.caching = caching
        self.cache_control = caching.cache_control
        vary = caching.vary or ()
        self.vary = tuple(name.lower() for name in vary)
        self.vary_header = ", ".join(vary)
        self.etag = bool(caching.etag)
        self.store: ResponseCache | None = caching.store
        self.ttl = caching.stored_for or 0.0
        self.tags = caching.tags or ()
        self.store_cookies = bool(caching.store_cookies)
        self.store_private = bool(caching.store_private)
        directives = caching.directives
        # RFC 9111 §3.5: an answer to a request with credentials is shared only when the
        # route says so (public, s-maxage) or keys the store by something (the user)
        self.shares_credentials = ("public" in directives or "s-maxage" in directives
                                   or caching.key is not None)
        key = caching.key
        self.key_function: Callable[[Request], Any] | None = None
        self.key_marker: Depends | None = None
        if isinstance(key, Depends):
            self.key_marker = key
        elif key is not None:
            self.key_function = key
        self.early = False  # the store is asked before the handler's plan runs (set below)

    def step_before(self, plan: DependencyNode) -> Depends | None:
        """What must run first among the route's dependencies, given the handler's own
        ``plan`` (without it); ``None`` when nothing must (the wrapper asks the store itself).

        The store can be asked before the plan runs when nothing the plan does could change
        the answer or refuse the request differently for requests with the same key: no
        dependency (no security either), no validators, and parameters read only from the
        path, the query (both in the key), headers that ``vary`` names, or the request itself.
        A stored answer then skips the whole plan. Otherwise a dependency asks it, after the
        security phase and the validation of every parameter.
        """
        if self.caching.validators is None and self.store is None:
            return None
        if self.caching.validators is None and self.key_marker is None and (
                not plan.dependencies and all(_keyed(param, self.vary)
                                              for param in plan.params)):
            self.early = True
            return None
        return Depends(self._before_handler(self.caching.validators, self.key_marker))

    # -- before the handler ------------------------------------------------------------------

    def _before_handler(self, validators: Callable[..., Any] | None,
                        key_marker: Depends | None) -> Callable[..., Any]:
        """The dependency that runs first: a function whose signature asks for the request,
        the current validators and the key, as this route declares them."""

        async def caching_step(request: Request, current: Any = None, key: Any = None) -> None:
            await self.before(request, current, key)

        parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY,
                                        annotation=Request)]
        if validators is not None:
            parameters.append(inspect.Parameter("current", inspect.Parameter.KEYWORD_ONLY,
                                                annotation=Annotated[Any, Depends(validators)]))
        if key_marker is not None:
            parameters.append(inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY,
                                                annotation=Annotated[Any, key_marker]))
        caching_step.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        caching_step.__annotations__ = {p.name: p.annotation for p in parameters}
        caching_step.__qualname__ = "Caching (the route's validators and stored answers)"
        return caching_step

    async def before(self, request: Request, current: Any, key: Any) -> None:
        """The dependency's work: the validators' 304 or 412, then the store."""
        pending = _Pending()
        request.scope[STATE] = pending
        method = request.method
        if self.caching.validators is not None:
            if current is not None and not isinstance(current, Validators):
                raise TypeError(f"Caching(validators=...) must return Validators or None, "
                                f"not {current!r}")
            outcome = evaluate_preconditions(method, request.headers, current)
            if outcome == 412:
                raise PreconditionFailed("The resource has changed since the client's copy.")
            if method in SAFE_METHODS:
                pending.validators = current
                if outcome == 304:
                    assert current is not None
                    raise _Answered(self._not_modified(current.headers(), None))
        stored = await self._ask_store(request, pending, key)
        if stored is not None:
            raise _Answered(stored, stored=True)

    async def _ask_store(self, request: Request, pending: _Pending, key: Any,
                         ) -> Response | None:
        """The stored answer for this request, or ``None`` (``pending`` then says whether
        this request computes it for others)."""
        store = self.store
        if store is None or request.method not in SAFE_METHODS:
            return None
        if self.key_function is not None:
            key = self.key_function(request)
            if inspect.isawaitable(key):
                key = await key
        scope = request.scope
        if not self.shares_credentials and _has(scope, _CREDENTIALS):
            pending.outcome = "fwd=bypass; detail=authorization"
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        resource = resource_key(_request_path(scope), query.replace("\x1f", "%1F"),
                                None if key is None else str(key))
        variant = "\n".join(", ".join(request.headers.getlist(name)) for name in self.vary) if (
            self.vary) else ""
        lookup = await store.lookup(resource, variant)
        pending.lookup = lookup
        entry = lookup.entry
        if entry is None:
            return None
        response = Response(entry.body, entry.status)
        raw = [*entry.headers, (b"age", b"%d" % max(0, int(lookup.age)))]
        if store.status_header:
            status = (f"hit; ttl={max(0, int(lookup.ttl))}" if lookup.outcome == "hit"
                      else "fwd=uri-miss; collapsed")
            raw.append((b"cache-status", f"joey; {status}".encode()))
        response.headers.raw = raw
        return response

    # -- after the handler -------------------------------------------------------------------

    def wrap(self, call_handler: Pipeline) -> Pipeline:
        """``call_handler`` with the step after around it, and the store asked before it
        (:meth:`step_before` decided where)."""
        store = self.store

        async def settle(pending: _Pending | None) -> None:
            # the computation failed: the requests waiting for it answer themselves
            if pending is not None and pending.lookup is not None and store is not None:
                await store.complete(pending.lookup, None, self.ttl, ())

        if self.early:
            async def cached_early(request: Request) -> Response:
                pending = _Pending()
                stored = await self._ask_store(request, pending, None)
                if stored is not None:
                    return self._conditional(request, stored)
                try:
                    response = await call_handler(request)
                except BaseException:
                    await settle(pending)
                    raise
                return await self.after(request, response, pending)

            return cached_early

        async def cached(request: Request) -> Response:
            try:
                response = await call_handler(request)
            except _Answered as answered:
                request.scope.pop(STATE, None)
                if not answered.stored:
                    return answered.response
                return self._conditional(request, answered.response)
            except BaseException:
                await settle(request.scope.pop(STATE, None))
                raise
            return await self.after(request, response, request.scope.pop(STATE, None))

        return cached

    async def after(self, request: Request, response: Response,
                    pending: _Pending | None) -> Response:
        status = response.status_code
        headers = response.headers
        if self.cache_control is not None and (status < 400 or status in (404, 410)) and (
                "cache-control" not in headers):
            headers["cache-control"] = self.cache_control
        if self.vary:
            _add_vary(headers.raw, self.vary_header)
        method = request.method
        complete = _body_in_memory(response)
        if complete and status == 200 and method in SAFE_METHODS:
            if pending is not None and pending.validators is not None:
                for name, value in pending.validators.headers():
                    if name not in (item[0] for item in headers.raw):
                        headers.raw.append((name, value))
            if self.etag and "etag" not in headers:
                headers.raw.append((b"etag", etag_for(response.body).encode("ascii")))
        store = self.store
        if store is not None and pending is not None:
            lookup = pending.lookup
            if lookup is not None:
                entry = self._entry(response, status) if complete else None
                stored = await store.complete(lookup, entry, self.ttl, self._tags(request))
                outcome = "fwd=uri-miss; stored" if stored else "fwd=uri-miss"
                if lookup.outcome == "bypass":
                    outcome = "fwd=bypass; detail=unavailable"
            else:
                outcome = pending.outcome
            if store.status_header and outcome:
                headers.raw.append((b"cache-status", f"joey; {outcome}".encode()))
        if complete:
            return self._conditional(request, response)
        return response

    def _entry(self, response: Response, status: int) -> Entry | None:
        """``response`` as it is kept, or ``None`` when it must not be."""
        if status not in STORABLE:
            return None
        raw = response.raw_headers(None)
        names = {name for name, _ in raw}
        if b"set-cookie" in names and not self.store_cookies:
            return None
        if not self.store_private:
            directives = parse_cache_control(", ".join(
                value.decode("latin-1") for name, value in raw if name == b"cache-control"))
            if directives is None or "no-store" in directives or "private" in directives:
                return None
        for name, value in raw:  # a Vary the key does not cover: keep nothing
            if name == b"vary" and any(
                    token.strip().lower() not in self.vary
                    for token in value.decode("latin-1").split(",") if token.strip()):
                return None
        kept = [item for item in raw if item[0] not in _NOT_STORED or (
            item[0] == b"set-cookie" and self.store_cookies)]
        return Entry(status, kept, response.body)

    def _tags(self, request: Request) -> list[str]:
        params = request.path_params
        return [tag.format(**params) if "{" in tag else tag for tag in self.tags]

    def _conditional(self, request: Request, response: Response) -> Response:
        """A 304 (or a 412) when the request's preconditions say so, for a 2xx answer to
        GET or HEAD that has validators."""
        method = request.method
        status = response.status_code
        if method not in SAFE_METHODS or not 200 <= status < 300 or status == 206 or (
                not _has(request.scope, _CONDITIONS)):
            return response
        headers = response.headers
        etag = headers.get("etag")
        last_modified = headers.get("last-modified")
        if etag is None and last_modified is None:
            return response
        try:
            current = Validators(etag, http_date(last_modified))
        except ValueError:
            return response  # a tag the handler wrote by hand that is not one: no 304
        outcome = evaluate_preconditions(method, request.headers, current)
        if outcome == 412:
            raise PreconditionFailed("The resource has changed since the client's copy.")
        if outcome == 304:
            return self._not_modified(response.raw_headers(None), response)
        return response

    def _not_modified(self, validators: RawHeaders, response: Response | None) -> Response:
        """The 304 for ``response`` (or, before the handler ran, for these validators)."""
        answer = Response(b"", 304, background=response.background if response else None)
        raw = not_modified_headers(validators)
        if response is None:
            if self.cache_control is not None:
                raw.append((b"cache-control", self.cache_control.encode("latin-1")))
            if self.vary:
                _add_vary(raw, self.vary_header)
        answer.headers.raw = raw
        return answer


def _add_vary(raw: RawHeaders, names: str) -> None:
    """Add ``names`` to the ``Vary`` of ``raw`` (one line, each name once; ``*`` stays)."""
    existing: list[str] = []
    rest: RawHeaders = []
    for name, value in raw:
        if name == b"vary":
            existing.extend(t.strip() for t in value.decode("latin-1").split(",") if t.strip())
        else:
            rest.append((name, value))
    if "*" not in existing:
        seen = {token.lower() for token in existing}
        existing.extend(n.strip() for n in names.split(",") if n.strip().lower() not in seen)
    raw[:] = [*rest, (b"vary", ", ".join(existing).encode("latin-1"))]


def _body_in_memory(response: Response) -> bool:
    """Whether ``response`` sends the body it holds (``Response.__call__``), not a stream or a
    file. Read along the MRO: in the compiled build every class of ``joey.responses`` has a
    ``__call__`` of its own, all of them Response's."""
    for cls in type(response).__mro__:
        if cls is Response:
            return True
        if "__call__" in vars(cls) and cls.__module__ != "joey.responses":
            return False
    return False
