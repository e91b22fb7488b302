"""The route model: what every route of a built app accepts and returns, read-only.

``app.routes`` lists a :class:`RouteInfo` per route: its methods and path template, the typed
path parameters, the handler (with its file and line), every parameter with its source, wire
name, type, default and constraints, the body and the media types it accepts, the return type
and status code, dependencies (with their own parameters), middleware and tags, and every
error the route can answer instead of its success (:attr:`RouteInfo.errors`). It is made
from the very plans the engine runs, not from a second reading of the signatures, so a tool
built on it (an API document, ``joey routes``) describes exactly what requests are validated
against, and what they can be refused with.

Example::

    for route in app.routes:
        print(route.methods, route.path, route.location)
        for param in route.all_parameters():
            print("  ", param.source, param.key, param.annotation, param.required)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from joey.caching.policy import Caching
from joey.exceptions import ContentTooLarge, Forbidden, NotFound, Unauthorized
from joey.params.extract import raised_by
from joey.params.info import ParamInfo
from joey.params.plan import DependencyNode, in_call_order, security_phase
from joey.pipelines import HandlerMiddleware
from joey.routing import Route


class DependencyInfo(msgspec.Struct, frozen=True):
    """A dependency of a route: what it runs, how long its value lives, what it reads."""

    #: the function called (an override, when ``app.dependency_overrides`` has one)
    function: Callable[..., Any]
    #: the function named in ``Depends(...)``
    declared: Callable[..., Any]
    #: ``"request"`` or ``"app"``
    scope: str
    parameters: tuple[ParamInfo, ...]
    dependencies: tuple[DependencyInfo, ...]
    #: runs in the security phase, before the request is read (reached through
    #: ``Security(...)``: a scheme, what checks its credentials, a guard)
    security: bool = False


class MountInfo(msgspec.Struct, frozen=True):
    """An ASGI app mounted under a path prefix (``app.mount(...)``): ``app.mounts``."""

    #: the full prefix (``""`` for the root), router prefixes included
    path: str
    app: Any
    name: str | None


class SecurityRequirement(msgspec.Struct, frozen=True):
    """A security scheme a route uses, and the scopes it requires of it.

    ``scheme`` is the scheme object (:mod:`joey.security`): ``scheme.scheme_name`` names it,
    ``scheme.openapi()`` describes it as an OpenAPI security scheme object. ``scopes`` are the
    scopes of every ``Security(..., scopes=...)`` on the way from the handler to the scheme.
    ``optional``: a request without these credentials is served too (every use of the scheme
    on the route is annotated ``Credentials | None``, so it gets ``None`` instead of a 401).
    """

    scheme: Any
    scopes: tuple[str, ...]
    optional: bool = False
    #: for ``AnyOf(a, b)`` (``scheme``): the schemes any one of which is enough, each
    #: described by its ``openapi()``; empty for a single scheme
    alternatives: tuple[Any, ...] = ()


class RouteInfo(msgspec.Struct, frozen=True):
    """One route of a built app (see the module docstring)."""

    path: str
    #: the HTTP methods; empty for a WebSocket route
    methods: tuple[str, ...]
    websocket: bool
    name: str
    handler: Callable[..., Any]
    #: path parameter → the type its converter makes (``{"id": int}``)
    path_params: Mapping[str, type]
    #: the handler's own parameters (dependencies' are in :attr:`dependencies`)
    parameters: tuple[ParamInfo, ...]
    #: route, router and app dependencies first, then the handler's, each with its own
    dependencies: tuple[DependencyInfo, ...]
    #: the return annotation (``None`` when there is none)
    return_type: Any
    #: the success status (the decorator's ``status_code``, 200 by default)
    status_code: int
    middleware: tuple[HandlerMiddleware, ...]
    tags: tuple[str, ...]
    #: the handler's docstring, cleaned up (``None`` when it has none)
    description: str | None
    #: the body limit in bytes for this route (``None``: no limit)
    max_body_size: int | None
    # For the API document (:mod:`joey.openapi`), as the route decorator declared them:
    deprecated: bool = False
    #: ``False``: the route is left out of the API document
    include_in_schema: bool = True
    #: exception classes the handler declares it raises
    raises: tuple[type[BaseException], ...] = ()
    #: more responses: status → a type, or an OpenAPI response object (a dict); the route's
    #: ``caching`` adds its headers to the success response's, and its 304 and 412
    responses: Mapping[int, Any] = msgspec.field(default_factory=dict)
    #: raw OpenAPI merged into the route's operation
    openapi_extra: Mapping[str, Any] = msgspec.field(default_factory=dict)
    #: the security schemes the route uses (:mod:`joey.security`), each with the scopes
    #: required of it
    security: tuple[SecurityRequirement, ...] = ()
    #: every scope a ``Security(..., scopes=...)`` of this route requires: what schemes and
    #: guards check the credentials against
    scopes: tuple[str, ...] = ()
    #: every error the route can answer instead of its success, by status (see
    #: :func:`route_errors`); empty for a WebSocket route, which refuses the handshake instead
    errors: tuple[type[BaseException], ...] = ()
    #: how the route's answers are cached (:class:`~joey.caching.Caching`, its routers'
    #: declarations merged in); ``None``: not at all
    caching: Caching | None = None

    @property
    def summary(self) -> str | None:
        """The first line of the docstring."""
        return self.description.split("\n", 1)[0].strip() if self.description else None

    @property
    def location(self) -> str:
        """``file:line`` of the handler."""
        target = inspect.unwrap(self.handler)
        try:
            return f"{inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]}"
        except (TypeError, OSError):
            return "?"

    def all_parameters(self) -> list[ParamInfo]:
        """Every value a request carries for this route, from the handler and from every
        request-scoped dependency, each once (by source and wire name), dependencies first."""
        seen: set[tuple[str, str, str]] = set()
        found: list[ParamInfo] = []

        def visit(parameters: tuple[ParamInfo, ...]) -> None:
            for param in parameters:
                identity = (param.source, param.key, param.name if not param.key else "")
                if param.from_request and identity not in seen:
                    seen.add(identity)
                    found.append(param)

        def walk(dependencies: tuple[DependencyInfo, ...]) -> None:
            for dependency in dependencies:
                if dependency.scope == "request":
                    walk(dependency.dependencies)
                    visit(dependency.parameters)

        walk(self.dependencies)
        visit(self.parameters)
        return found

    @property
    def body(self) -> ParamInfo | None:
        """The body (or whole form) the route reads, if any."""
        for param in self.all_parameters():
            if param.source == "body" or (param.source == "form" and not param.key):
                return param
        return None


def route_info(route: Route, plan: DependencyNode, max_body_size: int | None) -> RouteInfo:
    """The model of ``route``, from the plan the engine compiled for it."""
    memo: dict[int, DependencyInfo] = {}
    guarding = {id(node) for node in security_phase(plan, route.name)}

    def dependency(node: DependencyNode) -> DependencyInfo:
        known = memo.get(id(node))
        if known is None:
            known = memo[id(node)] = DependencyInfo(
                node.func, node.key, node.scope, tuple(node.params),
                tuple(dependency(inner) for _, inner in node.dependencies),
                id(node) in guarding,
            )
        return known

    security, scopes = _security(plan)
    return_type = plan.returns
    errors = () if route.websocket else route_errors(plan, route, max_body_size, security,
                                                      scopes)
    return RouteInfo(
        path=route.path, methods=route.methods, websocket=route.websocket, name=route.name,
        handler=route.endpoint, path_params=route.path_params, parameters=tuple(plan.params),
        dependencies=tuple(dependency(node) for _, node in plan.dependencies),
        return_type=return_type, status_code=route.status_code or 200,
        middleware=route.middleware, tags=route.tags,
        description=inspect.getdoc(route.endpoint), max_body_size=max_body_size,
        deprecated=route.deprecated, include_in_schema=route.include_in_schema,
        raises=route.raises, openapi_extra=route.openapi_extra, security=security,
        scopes=scopes, errors=errors, caching=route.caching,
        responses=route.responses if route.caching is None else _with_caching(route),
    )


def route_errors(plan: DependencyNode, route: Route, max_body_size: int | None,
                 security: tuple[SecurityRequirement, ...], scopes: tuple[str, ...],
                 ) -> tuple[type[BaseException], ...]:
    """What the engine can answer for ``route`` instead of its success, sorted by status,
    each class once: what each extractor and dependency of the plan declares it raises
    (:func:`joey.params.extract.raising`: 422 for a value that can be refused, 400/415 for a
    body that is parsed, a form's 413, a rate limit's 429 and 503) and what a
    ``Depends(..., raises=[...])`` declares of its dependency, the body limit's 413 for
    a route that reads the body, the router's 404 for a path parameter (a segment its
    converter refuses matches no route), 401 for a security scheme (optional credentials
    too: malformed ones are refused) and 403 when scopes are required, then the route's own
    ``raises``. Within one status the engine's come first (the class the document renders).
    """
    found: list[type[BaseException]] = []
    reads_body = False
    for node in in_call_order(plan):
        if node.scope == "app":
            continue  # made at startup, never on a request's behalf
        found.extend(node.raises)
        for _, inner in node.dependencies:  # Depends(..., raises=[...])
            if inner.scope != "app":
                found.extend(node.raises_edges.get(id(inner), ()))
        for _, extract in (*node.sync_extractors, *node.async_extractors):
            found.extend(raised_by(extract))
        reads_body = reads_body or any(p.source in ("body", "form") for p in node.params)
    if reads_body and max_body_size is not None:
        found.append(ContentTooLarge)
    if route.path_params:
        found.append(NotFound)
    if security:
        found.append(Unauthorized)
    if scopes:
        found.append(Forbidden)
    found.extend(route.raises)
    return tuple(sorted(dict.fromkeys(found), key=status_of))


def status_of(error: type[BaseException]) -> int:
    """The status an exception class is answered with (500 when it does not say)."""
    status = getattr(error, "status_code", 500)
    return status if isinstance(status, int) else 500


def _with_caching(route: Route) -> Mapping[int, Any]:
    """The route's declared responses, with what its caching documents merged in (a
    declared success response that is a type, not a response object, is left alone)."""
    from joey.caching.openapi import caching_responses

    merged: dict[int, Any] = dict(route.responses)
    assert route.caching is not None
    for code, made in caching_responses(route.caching, route.methods,
                                        route.status_code or 200).items():
        declared = merged.get(code)
        if declared is None:
            merged[code] = made
        elif isinstance(declared, Mapping) and isinstance(made, Mapping):
            headers = {**made.get("headers", {}), **declared.get("headers", {})}
            merged[code] = {**made, **declared, "headers": headers}
    return merged


def _security(plan: DependencyNode) -> tuple[tuple[SecurityRequirement, ...], tuple[str, ...]]:
    """The schemes a plan reaches through security edges, with the scopes on the way, and
    whether every node that runs the scheme is optional (one that is not answers 401)."""
    found: dict[int, tuple[Any, list[str], list[bool]]] = {}
    every: list[str] = []

    def visit(node: DependencyNode, scopes: tuple[str, ...], secured: bool,
              seen: frozenset[int]) -> None:
        alternatives = getattr(node.key, "__joey_alternatives__", None)
        if secured and getattr(node.key, "__joey_security__", False) and (
                alternatives is not None or callable(getattr(node.key, "openapi", None))):
            _, known, optional = found.setdefault(id(node.key), (node.key, [], [True]))
            known.extend(scope for scope in scopes if scope not in known)
            optional[0] = optional[0] and node.optional
            if alternatives is not None:
                return  # AnyOf: its schemes are its alternatives, not requirements of their own
        for _, inner in node.dependencies:
            if id(inner) in seen:
                continue
            edge = node.security_edges.get(id(inner))
            if edge is not None:
                every.extend(scope for scope in edge if scope not in every)
            visit(inner, (*scopes, *(edge or ())), secured or edge is not None,
                  seen | {id(inner)})

    visit(plan, (), False, frozenset({id(plan)}))
    return (tuple(SecurityRequirement(scheme, tuple(scopes), optional[0],
                                      tuple(getattr(scheme, "__joey_alternatives__", ())))
                  for scheme, scopes, optional in found.values()), tuple(every))


__all__ = [
    "DependencyInfo",
    "MountInfo",
    "RouteInfo",
    "SecurityRequirement",
    "route_errors",
    "route_info",
    "status_of",
]
