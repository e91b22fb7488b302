"""The application: an ASGI 3 callable. Read this file top to bottom to follow a request.

1. ``App.__call__`` gets ``(scope, receive, send)`` from the server and hands it to the ASGI
   middleware stack, whose innermost app is ``App._dispatch``.
2. ``_dispatch`` looks at ``scope["type"]``: ``http``, ``websocket`` or ``lifespan``.
3. For ``http``, ``_handle_http`` looks the path up in the route tree (built once, at startup),
   picks the route for the method, and runs its *pipeline*: the handler middleware chain and
   the handler's parameter plan, all composed at startup.
4. The handler's return value becomes a ``Response``; an exception becomes one through the
   exception handlers. The response is sent, then per-request cleanups run.

Example::

    from joey import App

    app = App()

    @app.get("/")
    async def hello() -> str:
        return "Hello, world!"

    # uvicorn module:app
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import traceback
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, overload

from joey.datastructures import State
from joey.describe import describe
from joey.exceptions import BadRequest, HTTPError, MethodNotAllowed, NotFound, WebSocketDisconnect
from joey.lifespan import LifespanDriver, LifespanFailed, LifespanManager
from joey.params import Depends
from joey.params.plan import PlanBuilder
from joey.params.returns import return_converter
from joey.params.run import AppScopedValues, compile_caller
from joey.requests import ClientDisconnect, Request
from joey.responses import ProblemResponse, RedirectResponse, Response, to_response
from joey.routing import (
    BadPath,
    Endpoint,
    Mount,
    Route,
    RouteDecorators,
    Router,
    RouteTree,
    describe,
    parse_template,
    routing_path,
)
from joey.types import ASGIApp, Receive, Scope, Send
from joey.websockets import WebSocket, WebSocketState

if TYPE_CHECKING:
    from joey.channels import Channels
    from joey.tasks import Backoff, TaskBackend

logger = logging.getLogger("joey")

Pipeline = Callable[[Request], Awaitable[Response]]
CallNext = Callable[[Request], Awaitable[Response]]
#: ``async def mw(request, call_next) -> Response``
HandlerMiddleware = Callable[[Request, CallNext], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]]
E = TypeVar("E", bound=BaseException)
MiddlewareT = TypeVar("MiddlewareT", bound=HandlerMiddleware)
HookT = TypeVar("HookT", bound=Callable[[], Any])

FuncT = TypeVar("FuncT", bound=Callable[..., Any])


class TaskDecorator(Protocol):
    """The type of ``app.task``: a decorator, bare or with options; keeps the signature."""

    @overload
    def __call__(self, fn: FuncT, /) -> FuncT: ...
    @overload
    def __call__(
        self, fn: None = None, /, *, name: str | None = None, timeout: float | None = None,
        retries: int = 0, backoff: Backoff | None = None,
    ) -> Callable[[FuncT], FuncT]: ...


DEFAULT_MAX_BODY_SIZE = 1024 * 1024
"""1 MiB: the default body limit; raise it per route (``max_body_size=``) for uploads."""


class Middleware:
    """An ASGI middleware class and its options, instantiated once when the app starts.

    Example::

        App(asgi_middleware=[Middleware(GZipMiddleware, minimum_size=500)])
    """

    __slots__ = ("cls", "options")

    def __init__(self, cls: Callable[..., ASGIApp], /, **options: Any) -> None:
        self.cls = cls
        self.options = options

    def wrap(self, app: ASGIApp) -> ASGIApp:
        return self.cls(app, **self.options)

    def __repr__(self) -> str:
        return f"Middleware({getattr(self.cls, '__name__', self.cls)!r}, **{self.options!r})"


class App(RouteDecorators):
    """A Joey application.

    Args:
        debug: show tracebacks in 500 responses (never in production).
        middleware: handler middleware for every route, outermost first.
        asgi_middleware: ASGI middleware around the whole app, outermost first.
        exception_handlers: ``{ExceptionType: handler(request, exc) -> Response}``.
        on_startup / on_shutdown: callables (sync or async) run by the lifespan.
        lifespan: an async context manager factory ``lifespan(app)``; a mapping it yields
            becomes the lifespan state (``app.state`` and ``request.state``).
        max_body_size: default request body limit in bytes (``None``: no limit).
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        middleware: Sequence[HandlerMiddleware] = (),
        dependencies: Sequence[Depends] = (),
        asgi_middleware: Sequence[Middleware] = (),
        exception_handlers: Mapping[type[BaseException], ExceptionHandler] | None = None,
        on_startup: Sequence[Callable[[], Any]] = (),
        on_shutdown: Sequence[Callable[[], Any]] = (),
        lifespan: Lifespan | None = None,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        redirect_slashes: bool = True,
        shutdown_timeout: float = 10.0,
        tasks: TaskBackend | None = None,
        channels: Channels | None = None,
    ) -> None:
        self.debug = debug
        self.router = Router(middleware=middleware, dependencies=dependencies,
                             on_startup=on_startup, on_shutdown=on_shutdown)
        self.router._listeners.append(self._invalidate)
        self.asgi_middleware = list(asgi_middleware)
        self.exception_handlers: dict[type[BaseException], ExceptionHandler] = dict(
            exception_handlers or {}
        )
        self.lifespan_context = lifespan
        self.max_body_size = max_body_size
        self.redirect_slashes = redirect_slashes
        self.state = State()
        self.shutdown_timeout = shutdown_timeout
        self._lifespan = LifespanManager()
        self._websockets: dict[WebSocket, asyncio.Event] = {}
        self._streams: set[asyncio.Task[Any]] = set()
        self._end_streams: asyncio.Future[None] | None = None
        self._mounts: list[Mount] = []
        self._routers: list[Router] = []
        self._overrides = DependencyOverrides(self._invalidate)
        self._app_values = AppScopedValues()
        self._tasks = tasks
        self._channels = channels
        # Built by _build(), once, at startup or on the first request.
        self._stack: ASGIApp | None = None
        self._routes_ready = False
        self._direct = False
        self._tree = RouteTree()
        self._static_routes: dict[str, Endpoint] = {}
        self._slash_templates = False
        self._not_found: Pipeline | None = None
        self._bad_target: Pipeline | None = None
        self._handler_cache: dict[type[BaseException], ExceptionHandler | None] = {}

    # -- registration ---------------------------------------------------------------------

    @property
    def tasks(self) -> TaskBackend:
        """The background task queue (an :class:`~joey.tasks.InMemoryTasks` unless
        ``App(tasks=...)`` chose another). It starts and stops with the lifespan."""
        if self._tasks is None:
            from joey.tasks import InMemoryTasks

            self._tasks = InMemoryTasks()
        return self._tasks

    @property
    def channels(self) -> Channels:
        """Publish/subscribe (:class:`~joey.channels.Channels`; in-memory unless
        ``App(channels=...)`` chose a backend). They start and stop with the lifespan, and a
        handler parameter annotated ``Channels`` receives them."""
        if self._channels is None:
            from joey.channels import Channels

            self._channels = Channels()
            if self._lifespan.started:  # made after startup: stop them at shutdown all the same
                self._lifespan._undo.append(("channels", self._channels.stop))
        return self._channels

    @property
    def task(self) -> TaskDecorator:
        """Register a background task: ``@app.task`` or ``@app.task(name=..., retries=3)``."""
        return self.tasks.task

    @property
    def dependency_overrides(self) -> DependencyOverrides:
        """``app.dependency_overrides[real] = fake``: swap a dependency (tests, mostly).

        A complete mutable mapping; any change applies from the next request on. Assigning a
        whole mapping (``app.dependency_overrides = {real: fake}``) replaces the contents.
        """
        return self._overrides

    @dependency_overrides.setter
    def dependency_overrides(
        self, overrides: Mapping[Callable[..., Any], Callable[..., Any]]
    ) -> None:
        if overrides is not self._overrides:
            self._overrides.clear()
            self._overrides.update(overrides)
            self._invalidate()

    def middleware(self, func: MiddlewareT) -> MiddlewareT:
        """Register app-wide handler middleware (innermost of those already registered).

        Example::

            @app.middleware
            async def timing(request: Request, call_next: CallNext) -> Response:
                started = time.perf_counter()
                response = await call_next(request)
                response.headers["server-timing"] = f"app;dur={time.perf_counter() - started}"
                return response
        """
        self.add_middleware(func)
        return func

    @property
    def handler_middleware(self) -> list[HandlerMiddleware]:
        """The app-wide handler middleware, outermost first."""
        return self.router.middleware

    def add_route(self, route: Route) -> None:
        self.router.add_route(route)

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Add a :class:`Router`'s routes (and the routers it includes) under ``prefix``."""
        self.router.include_router(router, prefix=prefix)

    def mount(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Send every request and websocket under ``path`` to another ASGI app.

        The mounted app sees ``root_path`` extended by ``path`` and the full ``path``, as the
        ASGI spec says, so it can route on the rest and build correct absolute URLs.
        """
        self.router.mount(path, app, name=name)

    def add_middleware(self, middleware: HandlerMiddleware) -> None:
        """Add app-wide handler middleware (innermost of those already added)."""
        self.router.middleware.append(middleware)
        self._invalidate()

    def exception_handler(self, exc_type: type[E]) -> Callable[
        [Callable[[Request, E], Response | Awaitable[Response]]],
        Callable[[Request, E], Response | Awaitable[Response]],
    ]:
        """Register a handler for ``exc_type`` and its subclasses (matched along the MRO).

        Example::

            @app.exception_handler(KeyError)
            async def missing(request: Request, exc: KeyError) -> Response:
                return JSONResponse({"missing": str(exc)}, status_code=404)
        """

        def decorator(
            func: Callable[[Request, E], Response | Awaitable[Response]],
        ) -> Callable[[Request, E], Response | Awaitable[Response]]:
            self.exception_handlers[exc_type] = func
            self._handler_cache.clear()
            return func

        return decorator

    async def render_exception(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """The response this app's exception handlers give ``exc`` (a problem document if
        none matches): for ASGI middleware around the app that fails after the handler ran,
        e.g. a session store that cannot save. The caller sends it."""
        return await self._handle_exception(Request(scope, receive, self), exc, None)

    def on_startup(self, func: HookT) -> HookT:
        """Run ``func`` (sync or async) when the server starts, before the first request."""
        self.router.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: HookT) -> HookT:
        """Run ``func`` (sync or async) when the server stops."""
        self.router.shutdown_hooks.append(func)
        return func

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route named ``name`` with ``params`` filled in.

        Example::

            app.url_path_for("get_user", id=42)   # "/users/42"
        """
        self._ensure_built()
        return self._tree.url_path_for(name, params)

    # -- build: everything computed once ----------------------------------------------------

    def _invalidate(self) -> None:
        # Routes, plans or overrides changed: recompile them on the next call. The ASGI
        # middleware stack is kept: its instances may hold state (connections, counters).
        self._routes_ready = False
        self._direct = False

    def _ensure_built(self) -> ASGIApp:
        if not self._routes_ready:
            self._build()
        if self._stack is None:
            stack: ASGIApp = self._dispatch
            for middleware in reversed(self.asgi_middleware):
                stack = middleware.wrap(stack)
            self._stack = stack
        self._direct = not self.asgi_middleware
        return self._stack

    def _build(self) -> None:
        self._plans = PlanBuilder(dict(self.dependency_overrides))
        self._ws_plans = PlanBuilder(dict(self.dependency_overrides), websocket=True)
        tree = RouteTree()
        routers: list[Router] = []
        mounts: list[Mount] = []
        for item in self.router.walk():
            if isinstance(item, Route):
                endpoint = tree.add(item)
                if item.websocket:
                    endpoint.websocket = self._compile_websocket(item)
                else:
                    pipeline = self._compile(item)
                    for method in item.methods:
                        endpoint.handlers[method] = pipeline
            elif isinstance(item, Mount):
                tree.add_mount(item)
                mounts.append(item)
            else:
                routers.append(item)
        self._not_found = self._chain(self.router.middleware, self._answer_not_found)
        self._bad_target = self._chain(self.router.middleware, self._answer_bad_target)
        for endpoint in tree.endpoints:
            self._compile_fallbacks(endpoint)
        self._tree = tree
        self._static_routes = tree.static_routes
        # perf: "/x" can only redirect to "/x/" if some route ends with "/" (404s skip a walk)
        self._slash_templates = any(
            e.template.endswith("/") and e.template != "/" for e in tree.endpoints)
        self._routers = routers
        self._mounts = mounts
        self._routes_ready = True

    def _compile(self, route: Route) -> Pipeline:
        """The route's pipeline: middleware (app → group → route) around the handler."""
        names = {s.name: s.converter.type for s in parse_template(route.path)
                 if s.name and s.converter}
        plan = self._plans.build(route.endpoint, names, route.dependencies,
                                 namespace=route.namespace)
        status_code = route.status_code or 200
        limit = self.max_body_size if isinstance(route.max_body_size, EllipsisType) else (
            route.max_body_size
        )
        respond: Callable[[Any], Response] = (
            to_response if status_code == 200 else functools.partial(to_response,
                                                                     status_code=status_code))
        coerce = return_converter(plan.func, route.namespace)
        if coerce is not None:
            # the return annotation decides: a dict returned from `-> Item` becomes an Item
            send_value = respond

            def respond_converted(value: Any) -> Response:
                if value is not None and not isinstance(value, Response):
                    value = coerce(value)
                return send_value(value)

            respond = respond_converted
        run_handler = compile_caller(plan, self._app_values, respond, frozenset(names))
        pipeline = self._chain(route.middleware, run_handler)
        if limit != DEFAULT_MAX_BODY_SIZE or limit is None:
            inner = pipeline

            async def with_limit(request: Request) -> Response:
                request.max_body_size = limit
                return await inner(request)

            pipeline = with_limit
        setattr(pipeline, "__joey_route__", route)  # noqa: B010 - for error messages
        return pipeline

    def _compile_websocket(
        self, route: Route
    ) -> tuple[Route, Callable[[WebSocket], Awaitable[Any]]]:
        names = {s.name: s.converter.type for s in parse_template(route.path)
                 if s.name and s.converter}
        plan = self._ws_plans.build(route.endpoint, names, route.dependencies,
                                    namespace=route.namespace)
        return route, compile_caller(plan, self._app_values, _ignore)

    def _compile_fallbacks(self, endpoint: Endpoint) -> None:
        if not endpoint.routes:  # a websocket-only path: plain HTTP finds nothing here
            assert self._not_found is not None
            endpoint.handlers["*405"] = self._not_found
            return
        allow = endpoint.allow_header
        allowed = allow.split(", ")

        async def method_not_allowed(request: Request) -> Response:
            error = MethodNotAllowed(allowed, f"{request.method} is not allowed here.")
            if self._lookup_exception_handler(MethodNotAllowed) is not None:
                raise error  # the user's handler decides what a 405 looks like
            return ProblemResponse.from_error(error)

        async def options(request: Request) -> Response:
            return Response(b"", status_code=204, headers={"allow": allow})

        endpoint.handlers.setdefault("*405", self._chain(self.router.middleware,
                                                         method_not_allowed))
        if "OPTIONS" not in endpoint.handlers:
            endpoint.handlers["OPTIONS"] = self._chain(self.router.middleware, options)
        if "HEAD" not in endpoint.handlers and "GET" in endpoint.handlers:
            endpoint.handlers["HEAD"] = endpoint.handlers["GET"]

    @staticmethod
    def _chain(middleware: Sequence[HandlerMiddleware], inner: Pipeline) -> Pipeline:
        """Wrap ``inner`` in ``middleware``, the first one outermost. Built once per route."""
        pipeline = inner
        for mw in reversed(middleware):
            pipeline = _bind(mw, pipeline)
        return pipeline

    # -- the ASGI entry point ----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        if self._direct and scope["type"] == "http":
            # perf: no ASGI middleware, so straight to HTTP handling (one frame less)
            await self._handle_http(scope, receive, send)
            return
        stack = self._stack
        if stack is None or not self._routes_ready:
            try:
                stack = self._ensure_built()
            except Exception:
                if scope["type"] != "lifespan":
                    raise
                # A server reads an exception here as "no lifespan support" and serves
                # anyway; answer lifespan.startup.failed instead (startup rebuilds, fails).
                await self._handle_lifespan(scope, receive, send)
                return
        await stack(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._handle_http(scope, receive, send)
        elif kind == "websocket":
            await self._handle_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._handle_lifespan(scope, receive, send)
        else:
            raise RuntimeError(f"Unknown ASGI scope type {kind!r}")

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # 1. Find the route. Most requests need no percent-decoding and no root_path
        #    stripping, and many hit a fully static path: one dict lookup.
        path: str = scope["path"]
        raw_path: bytes | None = scope.get("raw_path")
        bad_target = False
        if path[:1] == "/" and not scope.get("root_path") and (
            raw_path is None or b"%" not in raw_path
        ):
            endpoint = self._static_routes.get(path)
            match = None if endpoint is not None else self._tree.walk(path, None)
        else:
            endpoint = match = None
            try:
                routed, segments = routing_path(scope)
            except BadPath:
                bad_target = True  # not a path, or not UTF-8: a 400, below
            else:
                match = self._tree.lookup(routed, segments)
        params: dict[str, Any]
        if endpoint is not None:
            params = {}
        elif match is None:
            endpoint, params = None, {}
        elif match.endpoint is None:
            assert match.mount is not None
            await self._handle_mount(match.mount, scope, receive, send)
            return
        else:
            endpoint, params = match.endpoint, match.params
        # 2. Pick the pipeline for the method: handler middleware around the handler's plan.
        if endpoint is None:
            pipeline = self._bad_target if bad_target else self._not_found
            assert pipeline is not None
        else:
            handlers = endpoint.handlers
            pipeline = handlers.get(scope["method"]) or handlers["*405"]
        # 3. Run it; an exception becomes a response through the exception handlers.
        request = Request(scope, receive, self, params, self.max_body_size)
        try:
            response = await pipeline(request)
        except Exception as exc:
            request.error = exc  # generator dependencies see it at teardown
            if isinstance(exc, ClientDisconnect):
                await request.run_cleanups()
                return
            response = await self._handle_exception(request, exc, pipeline)
        # 4. Send it, then run what waits for the response to be gone.
        await self._send(response, request, scope, receive, send)

    async def _send(
        self, response: Response, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if type(response).__call__ is Response.__call__:
            # perf: a complete body cannot fail half-way; no need to track the start message.
            try:
                await response(scope, receive, send)
            except OSError:
                logger.debug("Client went away before the response was sent")
            finally:
                if request.cleanups is not None:
                    await request.run_cleanups()
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await response(scope, receive, tracking_send)  # type: ignore[arg-type]
        except Exception as exc:
            if started:
                # Too late for an error status: log it and leave the response unfinished so
                # the server aborts the connection and the client sees a truncated body
                # rather than a short one that looks complete.
                logger.error(
                    "Error while sending the response to %s %s after it had started",
                    scope.get("method"), scope.get("path"), exc_info=exc,
                )
            else:
                error_response = await self._handle_exception(request, exc, None)
                await error_response(scope, receive, send)
        finally:
            if request.cleanups is not None:
                await request.run_cleanups()

    async def _answer_not_found(self, request: Request) -> Response:
        if self.redirect_slashes and request.method in ("GET", "HEAD") and (
            self._slash_templates or request.scope["path"].endswith("/")
        ):
            location = self._slash_redirect(request)
            if location is not None:
                return RedirectResponse(location, status_code=308)
        error = NotFound(f"Nothing at {request.path}.")
        if self._lookup_exception_handler(NotFound) is not None:
            raise error  # the user's handler decides what a 404 looks like
        # perf: nobody customises 404s, so answer without raising (~1.5 µs saved)
        return ProblemResponse.from_error(error)

    async def _answer_bad_target(self, request: Request) -> Response:
        # The route lookup refused this target; ask again for the reason. Raised, so the
        # app's exception handlers decide what the 400 looks like (rare: no fast path).
        try:
            routing_path(request.scope)
        except BadPath as exc:
            raise BadRequest(str(exc)) from None
        raise BadRequest("The request target cannot be routed.")

    def _slash_redirect(self, request: Request) -> str | None:
        """The other trailing-slash form of the path, if that one is routed."""
        path, segments = routing_path(request.scope)
        if segments is None:
            segments = path[1:].split("/") if path != "/" else []
        if not segments:
            return None
        # Segment-wise, so an encoded "%2F" at the end is not taken for a trailing slash.
        trailing = segments[-1] == ""
        others = segments[:-1] if trailing else [*segments, ""]
        other = "/" + "/".join(others)
        if other.startswith("//"):  # "//host" would be read as another site: never send it
            return None
        match = self._tree.lookup(other, others)
        if match is None or match.endpoint is None:
            return None
        # From raw_path (root_path included, as servers send it), so "%3F" stays encoded.
        raw: bytes | None = request.scope.get("raw_path")
        if raw and raw.isascii():
            target = raw.split(b"?", 1)[0].decode("ascii")
            target = target[:-1] if trailing else target + "/"
        else:
            root_path: str = request.scope.get("root_path", "")
            target = root_path + other
        query = request.scope.get("query_string", b"").decode("latin-1")
        # Relative (no scheme, no host): never downgrades https behind a proxy.
        return target + (f"?{query}" if query else "")

    async def _handle_exception(
        self, request: Request, exc: Exception, pipeline: Pipeline | None
    ) -> Response:
        handler = self._lookup_exception_handler(type(exc))
        if handler is not None:
            if not isinstance(exc, HTTPError) and _catches_everything(
                    type(exc), self.exception_handlers):
                # A handler for Exception renders the 500; the error is still unexpected,
                # so its traceback is logged whoever renders the response.
                self._log_unhandled(request, exc, pipeline,
                                    f" (rendered by exception handler {describe(handler)})")
            try:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                return result if isinstance(result, Response) else _error_value_response(
                    result, exc, handler)
            except Exception as handler_exc:
                logger.error("Exception handler %s failed", describe(handler),
                             exc_info=handler_exc)
                exc = handler_exc
        if isinstance(exc, HTTPError):
            return ProblemResponse.from_error(exc)
        self._log_unhandled(request, exc, pipeline, "")
        detail = "".join(traceback.format_exception(exc)) if self.debug else None
        return ProblemResponse(
            {"type": "about:blank", "title": "Internal Server Error", "status": 500,
             **({"detail": detail} if detail else {})},
            status_code=500,
        )

    @staticmethod
    def _log_unhandled(request: Request, exc: Exception, pipeline: Pipeline | None,
                       note: str) -> None:
        route = getattr(pipeline, "__joey_route__", None)
        where = describe(route.endpoint) if route is not None else "middleware"
        logger.error(
            "Unhandled %s in %s for %s %s%s", type(exc).__name__, where, request.method,
            request.path, note, exc_info=exc,
        )

    def _lookup_exception_handler(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        if not self.exception_handlers:
            return None
        try:
            return self._handler_cache[exc_type]
        except KeyError:
            pass
        found = None
        for cls in exc_type.__mro__:
            if cls in self.exception_handlers:
                found = self.exception_handlers[cls]
                break
        self._handler_cache[exc_type] = found
        return found

    # -- mounted apps ----------------------------------------------------------------------------

    async def _handle_mount(self, mount: Mount, scope: Scope, receive: Receive, send: Send) -> None:
        child = dict(scope)
        child["root_path"] = scope.get("root_path", "") + mount.path
        await mount.app(child, receive, send)

    # -- WebSocket -----------------------------------------------------------------------------

    async def _handle_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            path, segments = routing_path(scope)
            match = self._tree.lookup(path, segments)
        except BadPath:
            match = None
        if match is not None and match.endpoint is None and match.mount is not None:
            await self._handle_mount(match.mount, scope, receive, send)
            return
        compiled = match.endpoint.websocket if match is not None and match.endpoint else None
        websocket = WebSocket(scope, receive, send, self, match.params if match else {})
        if compiled is None:
            # No route: refuse before accepting (the server answers the handshake with 403).
            await websocket.close(1008)
            return
        route, handler = compiled
        done = asyncio.Event()
        self._websockets[websocket] = done
        try:
            await handler(websocket)
        except WebSocketDisconnect:
            pass
        except OSError:
            logger.debug("WebSocket %s: the peer went away while we were sending", path)
        except Exception as exc:
            where = describe(route.endpoint)
            if websocket.connection_state is WebSocketState.CONNECTING:
                logger.error("WebSocket handler %s failed before accepting; refusing the "
                             "connection", where, exc_info=exc)
                await _quietly(websocket.close(1008))
            else:
                logger.error("WebSocket handler %s failed; closing with 1011", where,
                             exc_info=exc)
                await _quietly(websocket.close(1011))
        else:
            if websocket.connection_state is not WebSocketState.CLOSED:
                await _quietly(websocket.close(1000))
        finally:
            if websocket.cleanups is not None:
                await websocket.run_cleanups()
            del self._websockets[websocket]
            done.set()

    @property
    def open_websockets(self) -> int:
        """How many WebSocket handlers are running right now."""
        return len(self._websockets)

    async def close_websockets(self, code: int = 1001, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Close every open WebSocket with ``code`` (1001: going away) and wait up to
        ``timeout`` seconds for their handlers to finish. Used at shutdown."""
        waiters = []
        for websocket, done in list(self._websockets.items()):
            if websocket.connection_state is WebSocketState.CONNECTED:
                await _quietly(websocket.close(code, "Server shutting down"))
            waiters.append(done.wait())
        if waiters:
            try:
                await asyncio.wait_for(asyncio.gather(*waiters), timeout)
            except TimeoutError:
                logger.warning("%d WebSocket handler(s) still running after %.1fs at shutdown",
                               len(self._websockets), timeout)

    # -- lifespan --------------------------------------------------------------------------------

    async def _handle_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            raise RuntimeError(f"Expected lifespan.startup, got {message['type']!r}")
        try:
            await self.startup(scope.get("state"))
        except Exception as exc:
            logger.error("Startup failed: %s", exc, exc_info=exc)
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await self.shutdown()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def startup(self, lifespan_state: dict[str, Any] | None = None) -> None:
        """Build the app and run every startup step (see :mod:`joey.lifespan`).

        The server's lifespan calls this; call it yourself only without a lifespan.
        """
        self._ensure_built()
        manager = self._lifespan
        if manager.started:
            return
        manager.started = True
        if lifespan_state is not None:
            # The lifespan-state extension: the server copies this mapping into every
            # request's scope["state"], so app.state and request.state share it.
            lifespan_state.update(self.state._data)
            object.__setattr__(self.state, "_data", lifespan_state)
        try:
            for mount in self._mounts:
                driver = LifespanDriver(mount.app, self.state._data)
                await manager.run_step(f"mounted app at {mount.path or '/'}", driver.startup,
                                       driver.shutdown)
            for router in self._routers:
                for hook in router.shutdown_hooks:
                    manager._undo.append((f"shutdown hook {describe(hook)}", hook))
            for router in self._routers:
                for hook in router.startup_hooks:
                    await manager.run_step(f"startup hook {describe(hook)}", hook, None)
            manager._undo.append(("app-scoped dependencies", self._app_values.close))
            await self._start_app_dependencies(manager)
            if self.lifespan_context is not None:
                yielded = await manager.enter_context(
                    f"lifespan {describe(self.lifespan_context)}", self.lifespan_context(self)
                )
                if yielded:
                    for key, value in yielded.items():
                        setattr(self.state, key, value)
            if self._channels is not None:  # before tasks, which may publish
                await manager.run_step("channels", self._channels.start, self._channels.stop)
            if self._tasks is not None:  # started last: tasks may use what startup made
                await manager.run_step("background task queue", self._tasks.start,
                                       self._tasks.stop)
        except BaseException:
            await manager.shutdown()
            raise

    async def _start_app_dependencies(self, manager: LifespanManager) -> None:
        for plan in (*self._plans.app_scoped(), *self._ws_plans.app_scoped()):
            await manager.run_step(f"app-scoped dependency {describe(plan.func)}",
                                   functools.partial(self._app_values.get, plan), None)

    async def shutdown(self) -> None:
        """End open streams, close WebSockets (1001), stop spawned tasks, and undo every
        startup step in reverse order. Every step runs even if one fails; failures are
        logged and then raised together as :class:`joey.lifespan.LifespanFailed`."""
        await asyncio.gather(self.close_streams(self.shutdown_timeout),
                             self.close_websockets(1001, self.shutdown_timeout))
        failures = await self._lifespan.shutdown()
        if failures:
            raise LifespanFailed("Shutdown failed: " + "; ".join(failures))

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Start a task that lives until shutdown (then it is cancelled and awaited)."""
        return self._lifespan.spawn(coro, name=name)

    def __repr__(self) -> str:
        return f"<App routes={len(list(self.router.walk())) - 1}>"


class DependencyOverrides(MutableMapping[Callable[..., Any], Callable[..., Any]]):
    """``app.dependency_overrides``: ``{real: fake}``, a complete mapping.

    Every change (``[k] = v``, ``del``, ``update``, ``pop``, ``popitem``, ``setdefault``,
    ``clear``, ``|=``) makes the app rebuild its plans before the next request.
    """

    __slots__ = ("_items", "_on_change")

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._items: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._on_change = on_change

    def __getitem__(self, key: Callable[..., Any]) -> Callable[..., Any]:
        return self._items[key]

    def __setitem__(self, key: Callable[..., Any], value: Callable[..., Any]) -> None:
        self._items[key] = value
        self._on_change()

    def __delitem__(self, key: Callable[..., Any]) -> None:
        del self._items[key]
        self._on_change()

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __ior__(self, other: Mapping[Callable[..., Any], Callable[..., Any]]) -> Self:
        self.update(other)
        return self

    def clear(self) -> None:  # one rebuild, not one per key
        if self._items:
            self._items.clear()
            self._on_change()

    def __repr__(self) -> str:
        return f"DependencyOverrides({self._items!r})"


def _catches_everything(exc_type: type[BaseException],
                        handlers: Mapping[type[BaseException], Any]) -> bool:
    """Whether the handler for ``exc_type`` is the one registered for ``Exception`` (or
    ``BaseException``): a catch-all that renders unexpected errors."""
    for cls in exc_type.__mro__:
        if cls in handlers:
            return cls is Exception or cls is BaseException
    return False


def _error_value_response(value: Any, exc: Exception, handler: Callable[..., Any]) -> Response:
    """What an exception handler returned, when it is not a Response: converted like a route
    handler's value, with the error's status (500 for errors that are not HTTPError) and
    headers (``Allow``, ``Retry-After``...)."""
    status = exc.status_code if isinstance(exc, HTTPError) else 500
    try:
        response = to_response(value, status)
    except TypeError as problem:
        raise TypeError(
            f"Exception handler {describe(handler)} returned a {type(value).__name__} for "
            f"{type(exc).__name__}: {problem}"
        ) from None
    if isinstance(exc, HTTPError):
        for name, header in exc.headers.items():
            response.headers.setdefault(name, header)
    return response


def _ignore(value: Any) -> None:
    """WebSocket handlers' return values mean nothing."""


async def _quietly(closing: Awaitable[None]) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        await closing


def _bind(middleware: HandlerMiddleware, call_next: Pipeline) -> Pipeline:
    async def step(request: Request) -> Response:
        return await middleware(request, call_next)

    return step

