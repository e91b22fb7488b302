"""Declaring routes: ``Route``, ``Mount``, and ``Router``, a group of them.

A route says which handler answers which methods at which path template (see
:mod:`joey.paths` for the template syntax), with what middleware, dependencies and options.
Routers group routes under a prefix with shared middleware, dependencies, tags and lifespan
hooks, and include each other. Nothing here runs a request: when the app starts, its engine
flattens the routers (:meth:`Router.walk`) and compiles them into the route tree, once; then
the app freezes them (see :mod:`joey.declarations`). A router holds nothing of the apps that
include it.

Example::

    from joey import Router

    users = Router(prefix="/users")

    @users.get("/{id:int}")
    async def get_user(id: int) -> dict[str, int]:
        return {"id": id}

    app.include_router(users, prefix="/api")   # GET /api/users/42
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

from joey._namespaces import defining_namespace
from joey.declarations import DeclaredDict, DeclaredList, Frozen
from joey.paths import Segment, parse_template
from joey.pipelines import HandlerMiddleware, check_handler_middleware
from joey.types import ASGIApp

if TYPE_CHECKING:
    from joey.caching.policy import Caching

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


class RouteConflict(ValueError):
    """Two routes would answer the same request; raised at startup, naming both."""


class Route:
    """One handler at one path, for one or more methods (or a WebSocket).

    Created by the decorators; the app compiles it into a ready-to-run plan at startup.
    """

    __slots__ = (
        "caching", "dependencies", "deprecated", "endpoint", "include_in_schema",
        "max_body_size", "methods", "middleware", "name", "namespace", "openapi_extra", "path",
        "raises", "responses", "segments", "status_code", "tags", "websocket",
    )

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str] = ("GET",),
        name: str | None = None,
        status_code: int | None = None,
        middleware: Sequence[HandlerMiddleware] = (),
        dependencies: Sequence[Any] = (),
        max_body_size: int | EllipsisType | None = ...,  # ``...``: the app's default
        websocket: bool = False,
        namespace: dict[str, Any] | None = None,
        tags: Sequence[str] = (),
        deprecated: bool = False,
        include_in_schema: bool = True,
        raises: Sequence[type[BaseException]] = (),
        responses: Mapping[int, Any] | None = None,
        openapi_extra: Mapping[str, Any] | None = None,
        caching: Caching | None = None,
    ) -> None:
        # "" (like "/") under a router prefix means the prefix itself; parsed here, once, so
        # a bad template is an error that points at the decorator
        self.path = path or "/"
        self.segments: tuple[Segment, ...] = tuple(parse_template(self.path))
        self.endpoint = endpoint
        self.methods = tuple(dict.fromkeys(m.upper() for m in methods)) if not websocket else ()
        for method in self.methods:
            if method not in HTTP_METHODS:
                raise ValueError(f"Unknown HTTP method {method!r} for route {path!r}")
        self.name: str = name or str(getattr(endpoint, "__name__", type(endpoint).__name__))
        self.status_code = status_code
        self.middleware = tuple(check_handler_middleware(mw) for mw in middleware)
        self.dependencies = tuple(dependencies)
        self.max_body_size = max_body_size
        self.websocket = websocket
        #: the local names where the handler was defined, to resolve string annotations
        self.namespace = namespace
        self.tags = tuple(tags)
        # For the API document only (see joey.openapi); nothing here changes how requests run.
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.raises = tuple(raises)
        self.responses: Mapping[int, Any] = dict(responses or {})
        self.openapi_extra: Mapping[str, Any] = dict(openapi_extra or {})
        #: how the route's answers are cached (:mod:`joey.caching`), its routers' merged in
        self.caching = caching

    @property
    def path_params(self) -> dict[str, type]:
        """The path parameters and the type their converter makes: ``{"id": int}``."""
        return {s.name: s.converter.type for s in self.segments
                if s.name is not None and s.converter is not None}

    def with_prefix(
        self, prefix: str, middleware: Sequence[HandlerMiddleware], dependencies: Sequence[Any],
        name_prefix: str, tags: Sequence[str] = (), caching: Caching | None = None, *,
        raises: Sequence[type[BaseException]] = (), responses: Mapping[int, Any] | None = None,
    ) -> Route:
        """A copy of this route under a group's prefix, middleware, dependencies, tags,
        caching (what the route's own ``caching`` leaves unset), and the errors and responses
        the group declares (the route's own win, status by status)."""
        route = Route.__new__(Route)
        route.path = _join(prefix, self.path)
        route.segments = (tuple(parse_template(route.path)) if route.path != self.path
                          else self.segments)
        route.endpoint = self.endpoint
        route.methods = self.methods
        route.name = f"{name_prefix}{self.name}"
        route.status_code = self.status_code
        route.middleware = (*middleware, *self.middleware)
        route.dependencies = (*dependencies, *self.dependencies)
        route.max_body_size = self.max_body_size
        route.websocket = self.websocket
        route.namespace = self.namespace
        route.tags = (*dict.fromkeys((*tags, *self.tags)),)
        route.deprecated, route.include_in_schema = self.deprecated, self.include_in_schema
        route.raises = (*dict.fromkeys((*self.raises, *raises)),)  # the route's first
        route.responses = {**responses, **self.responses} if responses else self.responses
        route.openapi_extra = self.openapi_extra
        route.caching = None if self.websocket else _merge_caching(caching, self.caching)
        return route

    def __repr__(self) -> str:
        kind = "WS" if self.websocket else ",".join(self.methods)
        return f"<Route {kind} {self.path} → {self.name}>"


class Mount:
    """An ASGI app that receives every request and websocket under a path prefix."""

    __slots__ = ("app", "name", "path", "segments")

    def __init__(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        if path != "/" and path.endswith("/"):
            path = path.rstrip("/")
        self.segments = tuple(parse_template(path if path else "/"))
        for segment in self.segments:
            if segment.is_param:
                raise ValueError(f"Mount path {path!r} cannot contain parameters")
        self.path = "" if path == "/" else path
        self.app = app
        self.name = name


def _merge_caching(outer: Caching | None, inner: Caching | None) -> Caching | None:
    if inner is None:
        return outer
    return inner.under(outer)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not prefix.startswith("/"):
        raise ValueError(f"Prefix {prefix!r} must start with '/'")
    prefix = prefix.rstrip("/")
    return prefix + path if path not in ("", "/") else (prefix or "/")


class RouteOptions(TypedDict, total=False):
    """The options every route decorator takes (see :meth:`RouteDecorators.route`)."""

    name: str | None
    status_code: int | None
    middleware: Sequence[HandlerMiddleware]
    dependencies: Sequence[Any]
    max_body_size: int | EllipsisType | None
    tags: Sequence[str]
    deprecated: bool
    include_in_schema: bool
    raises: Sequence[type[BaseException]]
    responses: Mapping[int, Any] | None
    openapi_extra: Mapping[str, Any] | None
    caching: Caching | None


#: route keywords of FastAPI that Joey spells otherwise: what to write instead
_FASTAPI_KEYWORDS = {
    "response_model": "annotate the handler's return type (`-> Item`): Joey converts what it "
                      "returns to that type and documents it",
    "response_class": "return that response class (`-> HTMLResponse`), or annotate the "
                      "handler with it",
    "summary": "the first line of the handler's docstring is its summary (or "
               "openapi_extra={'summary': ...})",
    "description": "the handler's docstring is its description (or "
                   "openapi_extra={'description': ...})",
    "operation_id": "the route's name is its operationId (name=...)",
    "response_description": "openapi_extra={'responses': {...}}",
    "response_model_exclude_none": "return a msgspec Struct with omit_defaults=True, or build "
                                   "the dict you want to send",
    "response_model_exclude_unset": "return a msgspec Struct with omit_defaults=True, or "
                                    "build the dict you want to send",
}


def _known(options: Any) -> Any:
    """The options of a route decorator, or a ``TypeError`` naming the fix for a keyword of
    FastAPI's that Joey spells otherwise (any other unknown keyword: Python's own error)."""
    for key in options:
        if key in _FASTAPI_KEYWORDS:
            raise TypeError(f"{key}= is FastAPI's; in Joey, {_FASTAPI_KEYWORDS[key]}")
    return options


class RouteDecorators:
    """The route decorators shared by :class:`Router` and :class:`joey.App`."""

    def add_route(self, route: Route) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def route(
        self,
        path: str,
        methods: Sequence[str] = ("GET",),
        *,
        name: str | None = None,
        status_code: int | None = None,
        middleware: Sequence[HandlerMiddleware] = (),
        dependencies: Sequence[Any] = (),
        max_body_size: int | EllipsisType | None = ...,
        tags: Sequence[str] = (),
        deprecated: bool = False,
        include_in_schema: bool = True,
        raises: Sequence[type[BaseException]] = (),
        responses: Mapping[int, Any] | None = None,
        openapi_extra: Mapping[str, Any] | None = None,
        caching: Caching | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated handler at ``path`` for every method in ``methods``.

        ``name`` names the route for ``url_path_for`` (default: the function's name);
        ``status_code`` is the success status; ``middleware`` and ``dependencies`` apply to
        this route only; ``max_body_size`` overrides the app's body limit (``None``: none);
        ``tags`` group the route in the route model (and an API document built from it).
        For the API document only (:mod:`joey.openapi`): ``deprecated``, ``include_in_schema``
        (``False`` leaves the route out), ``raises`` (exception classes the handler raises,
        documented as its handler renders them), ``responses`` (more responses: status → a
        type or an OpenAPI response object) and ``openapi_extra`` (merged into the operation).
        ``caching``: ``Cache-Control``, ``Vary``, ``ETag``, conditional requests and a
        server-side store for this route (:class:`~joey.caching.Caching`).

        Example::

            @app.route("/items", methods=["GET", "POST"])
            async def items(request: Request) -> list[str]:
                return [request.method]
        """

        def decorator(func: F) -> F:
            self.add_route(Route(
                path, func, methods=methods, name=name, status_code=status_code,
                middleware=middleware, dependencies=dependencies, max_body_size=max_body_size,
                namespace=defining_namespace(func, dependencies), tags=tags, deprecated=deprecated,
                include_in_schema=include_in_schema, raises=raises, responses=responses,
                openapi_extra=openapi_extra, caching=caching,
            ))
            return func

        return decorator

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register a ``GET`` handler (``HEAD`` is answered by it too)."""
        return self.route(path, ["GET"], **_known(options))

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register a ``POST`` handler."""
        return self.route(path, ["POST"], **_known(options))

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register a ``PUT`` handler."""
        return self.route(path, ["PUT"], **_known(options))

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register a ``PATCH`` handler."""
        return self.route(path, ["PATCH"], **_known(options))

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register a ``DELETE`` handler."""
        return self.route(path, ["DELETE"], **_known(options))

    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register an explicit ``HEAD`` handler (otherwise ``GET`` handlers answer HEAD)."""
        return self.route(path, ["HEAD"], **_known(options))

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[F], F]:
        """Register an explicit ``OPTIONS`` handler (otherwise Joey answers with ``Allow``)."""
        return self.route(path, ["OPTIONS"], **_known(options))

    def websocket(
        self, path: str, *, name: str | None = None, dependencies: Sequence[Any] = (),
        tags: Sequence[str] = (),
    ) -> Callable[[F], F]:
        """Register a WebSocket handler at ``path`` (same tree, parameters and groups).

        Handler middleware (request → response) does not apply to WebSockets; ASGI
        middleware sees them.
        """

        def decorator(func: F) -> F:
            self.add_route(Route(path, func, name=name, dependencies=dependencies,
                                 websocket=True, namespace=defining_namespace(func, dependencies),
                                 tags=tags))
            return func

        return decorator


class Router(Frozen, RouteDecorators):
    """A group of routes with a shared prefix, middleware, dependencies and lifespan hooks;
    for the API document, ``tags``, and the ``raises`` and ``responses`` of every route in it
    (merged with each route's own: a route's response for a status wins).

    Include it into an app (or into another router) with ``include_router``. Routes may be
    added to a router after it was included, until an app that includes it starts: the app
    compiles it then, once, and freezes it; a later change raises
    :class:`~joey.declarations.LateDeclaration`. One router may be included into many apps.

    Example::

        api = Router(prefix="/api", name="api")

        @api.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        app.include_router(api)
        app.url_path_for("api.health")   # "/api/health"
    """

    declared_attributes = frozenset({
        "prefix", "name", "middleware", "dependencies", "routes", "mounts", "children",
        "startup_hooks", "shutdown_hooks", "tags", "caching", "raises", "responses"})

    def __init__(
        self,
        prefix: str = "",
        *,
        name: str | None = None,
        middleware: Sequence[HandlerMiddleware] = (),
        dependencies: Sequence[Any] = (),
        on_startup: Sequence[Callable[[], Any]] = (),
        on_shutdown: Sequence[Callable[[], Any]] = (),
        tags: Sequence[str] = (),
        caching: Caching | None = None,
        raises: Sequence[type[BaseException]] = (),
        responses: Mapping[int, Any] | None = None,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"Router prefix {prefix!r} must start and not end with '/'")
        self.prefix = prefix
        self.name = name
        self.middleware: list[HandlerMiddleware] = DeclaredList(
            check_handler_middleware(mw) for mw in middleware)
        self.dependencies: list[Any] = DeclaredList(dependencies)
        self.routes: list[Route] = DeclaredList()
        self.mounts: list[Mount] = DeclaredList()
        self.children: list[tuple[Router, str]] = DeclaredList()
        self.startup_hooks: list[Callable[[], Any]] = DeclaredList(on_startup)
        self.shutdown_hooks: list[Callable[[], Any]] = DeclaredList(on_shutdown)
        self.tags: list[str] = DeclaredList(tags)
        #: caching for every route of the router (and of those it includes) that leaves
        #: options of its own ``caching`` unset (:class:`~joey.caching.Caching`)
        self.caching = caching
        #: for the API document, as a route's ``raises`` and ``responses``, for every route of
        #: the router and of those it includes (a route's own responses win, status by status)
        self.raises: list[type[BaseException]] = DeclaredList(raises)
        self.responses: dict[int, Any] = DeclaredDict(responses or {})

    def freeze_declarations(self, owner: str | None = None) -> None:
        """Refuse any further change to this router and to those it includes
        (:class:`~joey.declarations.LateDeclaration`): an app that includes it has started.
        The app calls this; ``owner`` names the router in refusals."""
        if self.frozen:
            return
        super().freeze_declarations(owner or f"{self!r} (included in an app)")
        for child, _ in self.children:
            child.freeze_declarations()

    def add_route(self, route: Route) -> None:
        self.routes.append(route)

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Add every route of ``router`` (and of the routers it includes) under ``prefix``."""
        if router is self:
            raise ValueError("A router cannot include itself")
        stack = [child for child, _ in router.children]
        while stack:  # refused here, naming both, rather than when the app starts
            child = stack.pop()
            if child is self:
                raise ValueError(f"Including {router!r} into {self!r} would make a cycle")
            stack.extend(grandchild for grandchild, _ in child.children)
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"Include prefix {prefix!r} must start and not end with '/'")
        self.children.append((router, prefix))

    def mount(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Hand every request and websocket under ``path`` to another ASGI app."""
        self.mounts.append(Mount(path, app, name))

    def walk(
        self, prefix: str = "", middleware: tuple[Any, ...] = (),
        dependencies: tuple[Any, ...] = (), name_prefix: str = "",
        _seen: frozenset[int] = frozenset(), tags: tuple[str, ...] = (),
        caching: Caching | None = None, raises: tuple[type[BaseException], ...] = (),
        responses: Mapping[int, Any] | None = None,
    ) -> Iterator[Route | Mount | Router]:
        """This router (so the app can collect lifespan hooks), then every route and mount
        with prefixes, middleware and dependencies applied, then the included routers'."""
        if id(self) in _seen:
            raise ValueError(f"Router {self!r} includes itself through a cycle")
        seen = _seen | {id(self)}
        full_prefix = _join(prefix, self.prefix) if self.prefix else prefix
        middleware = (*middleware, *self.middleware)
        dependencies = (*dependencies, *self.dependencies)
        tags = (*tags, *self.tags)
        caching = _merge_caching(caching, self.caching)
        raises = (*raises, *self.raises)
        responses = {**(responses or {}), **self.responses}
        if self.name:
            name_prefix = f"{name_prefix}{self.name}."
        yield self  # parents first, so an app's hooks run before its routers'
        for route in self.routes:
            yield route.with_prefix(full_prefix, middleware, dependencies, name_prefix, tags,
                                    caching, raises=raises, responses=responses)
        for mount in self.mounts:
            yield Mount(_join(full_prefix, mount.path or "/"), mount.app, mount.name)
        for child, child_prefix in self.children:
            yield from child.walk(
                _join(full_prefix, child_prefix) if child_prefix else full_prefix,
                middleware, dependencies, name_prefix, seen, tags, caching, raises, responses,
            )

    def __repr__(self) -> str:
        return f"<Router prefix={self.prefix!r} routes={len(self.routes)}>"


__all__ = [
    "HTTP_METHODS",
    "Mount",
    "Route",
    "RouteConflict",
    "RouteDecorators",
    "RouteOptions",
    "Router",
]
