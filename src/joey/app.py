"""The application: what an app *is*, declared; and ``__call__``, where a request comes in.

``App`` holds the declarations: configuration, routes and routers, middleware, dependencies,
exception handlers, lifespan steps. When the app starts (its lifespan startup, its first
request, or :meth:`App.freeze`) they are frozen and compiled, once, into a private *engine*
(:mod:`joey._engine`) that serves every request; a later declaration raises
:class:`~joey.declarations.LateDeclaration`. Only ``dependency_overrides`` may change after.

To follow a request, read ``App.__call__`` (:func:`joey._engine.entry.app_call`), then the
engine's HTTP path, :meth:`joey._engine.http.Engine.handle_http`, top to bottom.

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
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from joey._engine.connections import OpenConnectionsAPI
from joey._engine.entry import app_call
from joey._engine.errors import declared_schemas
from joey._engine.lifecycle import Lifecycle, Lifespan
from joey._engine.lifespan import serve_lifespan
from joey.datastructures import State
from joey.declarations import DeclaredDict, DeclaredList, Frozen
from joey.limits import DEFAULT_MAX_BODY_SIZE
from joey.overrides import DependencyOverrides
from joey.params import Depends
from joey.pipelines import CallNext, HandlerMiddleware
from joey.requests import Request
from joey.responses import Response
from joey.routing import Route, RouteDecorators, Router
from joey.stack import Middleware, MiddlewareDeclarations, split_middleware
from joey.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from joey._engine.errors import ExceptionHandler, ExceptionPolicy
    from joey._engine.http import Engine
    from joey.channels import Channels
    from joey.metrics import Metrics
    from joey.observability.tracing import Tracing
    from joey.openapi import OpenAPI
    from joey.routeinfo import MountInfo, RouteInfo
    from joey.tasks.base import TaskBackend, TaskDecorator

__all__ = ["DEFAULT_MAX_BODY_SIZE", "App", "CallNext", "DependencyOverrides",
           "HandlerMiddleware", "Middleware"]

E = TypeVar("E", bound=BaseException)
HandlerOf = Callable[[Request, E], Response | Awaitable[Response]]  # an exception handler
HookT = TypeVar("HookT", bound=Callable[[], Any])



class App(Frozen, RouteDecorators, MiddlewareDeclarations, OpenConnectionsAPI):
    """A Joey application.

    Args:
        debug: show unhandled errors: a debug page (traceback with source, request, route) for
            browsers, the traceback in the problem document for API clients. Never in production.
        middleware: handler middleware for every route, outermost first (as in Starlette);
            ``Middleware(Cls, ...)`` items are ASGI middleware, inside ``asgi_middleware``.
        dependencies: ``Depends(...)`` run for every route.
        asgi_middleware: ASGI middleware around the whole app, outermost first.
        exception_handlers: ``{ExceptionType: handler(request, exc) -> Response}``. A handler
            that returns a value (``-> ErrorBody``) has it documented in the API document;
            one that returns a ``Response`` says what its body is with ``exception_schemas``.
        exception_schemas: ``{ExceptionType: SchemaType}``: the body the handler for that
            type answers with, for the API document (as ``exception_handler(..., schema=)``).
        on_startup: callables (sync or async) run by the lifespan at startup.
        on_shutdown: callables (sync or async) run by the lifespan at shutdown.
        lifespan: an async context manager factory ``lifespan(app)``; a mapping it yields
            becomes the lifespan state (``app.state`` and ``request.state``).
        max_body_size: default request body limit in bytes (``None``: no limit).
        redirect_slashes: a 308 from ``/x`` to ``/x/`` (and back) when only the other is routed.
        shutdown_timeout: seconds open WebSockets and streams get to end at shutdown.
        tasks: the background task queue (default: in memory, made on first use).
        channels: publish/subscribe (default: in memory, made on first use).
        openapi: serve the API document and its docs pages (``OpenAPI(title=...)``, see
            :mod:`joey.openapi`); ``None`` (default): no such routes.
        metrics: Prometheus metrics (``Metrics()``, see :mod:`joey.metrics`); ``None``: none.
        tracing: OpenTelemetry spans (``Tracing()``, :mod:`joey.observability.tracing`).
    """

    declared_attributes = frozenset({
        "debug", "router", "asgi_middleware", "exception_handlers", "exception_schemas",
        "lifespan_context", "max_body_size", "redirect_slashes", "openapi", "metrics"})

    def __init__(
        self,
        *,
        debug: bool = False,
        middleware: Sequence[HandlerMiddleware | Middleware] = (),
        dependencies: Sequence[Depends] = (),
        asgi_middleware: Sequence[Middleware] = (),
        exception_handlers: Mapping[type[BaseException], ExceptionHandler] | None = None,
        exception_schemas: Mapping[type[BaseException], Any] | None = None,
        on_startup: Sequence[Callable[[], Any]] = (),
        on_shutdown: Sequence[Callable[[], Any]] = (),
        lifespan: Lifespan | None = None,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        redirect_slashes: bool = True,
        shutdown_timeout: float = 10.0,
        tasks: TaskBackend | None = None,
        channels: Channels | None = None,
        openapi: OpenAPI | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.debug = debug
        handlers, asgi = split_middleware(middleware)  # Middleware(Cls) is ASGI (Starlette's)
        self.router = Router(middleware=handlers, dependencies=dependencies,
                             on_startup=on_startup, on_shutdown=on_shutdown)
        self.asgi_middleware: list[Middleware] = DeclaredList([*asgi_middleware, *asgi])
        self.exception_handlers: dict[type[BaseException], ExceptionHandler] = DeclaredDict(
            exception_handlers or {})
        self.lifespan_context = lifespan
        self.max_body_size = max_body_size
        self.redirect_slashes = redirect_slashes
        self.state = State()
        self.shutdown_timeout = shutdown_timeout
        # startup, shutdown, and what lives as long as the app (not one compiled engine)
        self._lifecycle = Lifecycle(tasks, channels, metrics, tracing)
        self._overrides = DependencyOverrides(self._drop_engine)
        #: exception type → (schema type, media type) its handler's responses have (for the
        #: API document: see ``exception_handler(..., schema=...)``)
        self.exception_schemas: dict[type[BaseException], tuple[Any, str]] = DeclaredDict(
            declared_schemas(exception_schemas or {}, self.exception_handlers))
        self.openapi, self.metrics = openapi, metrics
        for extension in (openapi, metrics):
            if extension is not None:
                extension.attach(self)  # their routes
        # Compiled when the app starts; again (same declarations) when an override changes.
        self._engine: Engine | None = None
        self._stack: ASGIApp | None = None
        self._serve_http: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    # -- registration ---------------------------------------------------------------------

    @property
    def tasks(self) -> TaskBackend:
        """The background task queue (an :class:`~joey.tasks.InMemoryTasks` unless
        ``App(tasks=...)`` chose another). It starts and stops with the lifespan."""
        return self._lifecycle.tasks

    @property
    def channels(self) -> Channels:
        """Publish/subscribe (:class:`~joey.channels.Channels`; in-memory unless
        ``App(channels=...)`` chose a backend). They start and stop with the lifespan, and a
        handler parameter annotated ``Channels`` receives them."""
        return self._lifecycle.channels

    @property
    def task(self) -> TaskDecorator:
        """Register a background task: ``@app.task`` or ``@app.task(name=..., retries=3)``."""
        return self.tasks.task

    @property
    def dependency_overrides(self) -> DependencyOverrides:
        """``app.dependency_overrides[real] = fake``: swap a dependency (tests, mostly).

        A complete mutable mapping, and the one declaration not frozen at startup: a change
        applies from the next request on. Assigning a mapping replaces the contents.
        """
        return self._overrides

    @dependency_overrides.setter
    def dependency_overrides(
        self, overrides: Mapping[Callable[..., Any], Callable[..., Any]]
    ) -> None:
        self._overrides.replace(overrides)

    def add_route(self, route: Route) -> None:
        self.router.add_route(route)

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Add a :class:`Router`'s routes (and the routers it includes) under ``prefix``."""
        self.router.include_router(router, prefix=prefix)

    def mount(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Send every request and websocket under ``path`` to another ASGI app; it sees
        ``root_path`` extended by ``path`` and the full ``path``, as the ASGI spec says."""
        self.router.mount(path, app, name=name)

    def exception_handler(
        self, exc_type: type[E], *, schema: Any = None, media_type: str = "application/json",
    ) -> Callable[[HandlerOf[E]], HandlerOf[E]]:
        """Register a handler for ``exc_type`` and its subclasses (matched along the MRO).

        Example::

            @app.exception_handler(KeyError)
            async def missing(request: Request, exc: KeyError) -> Response:
                return JSONResponse({"missing": str(exc)}, status_code=404)

        ``schema`` (a type: Struct, dataclass, TypedDict...) with ``media_type`` says what the
        handler's responses look like, so the API document shows them instead of a problem
        document wherever ``exc_type`` can be raised.
        """

        def decorator(func: HandlerOf[E]) -> HandlerOf[E]:
            self.exception_handlers[exc_type] = func
            self.exception_schemas.pop(exc_type, None)
            if schema is not None:
                self.exception_schemas[exc_type] = (schema, media_type)
            return func

        return decorator

    async def render_exception(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """The response this app's exception handlers give ``exc`` (a problem document if none
        matches), for ASGI middleware that fails after the handler ran; the caller sends it."""
        return await self._current_engine().policy.respond(Request(scope, receive, self), exc,
                                                           None)

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

            @app.get("/users/{id:int}")
            async def get_user(id: int) -> None: ...
            assert app.url_path_for("get_user", id=42) == "/users/42"
        """
        return self._model().tree.url_path_for(name, params)

    @property
    def routes(self) -> list[RouteInfo]:
        """The route model: a :class:`~joey.routeinfo.RouteInfo` for every route, made from
        the plans that validate requests (see :mod:`joey.routeinfo`). Reading it changes
        nothing: before the app starts it compiles the declarations as they stand."""
        return list(self._model().routes)

    @property
    def mounts(self) -> list[MountInfo]:
        """The mounted ASGI apps (:meth:`mount`) with their full path prefixes: the app's
        own, then those of included routers. Reading it changes nothing, like :attr:`routes`."""
        from joey.routeinfo import MountInfo
        return [MountInfo(m.path, m.app, m.name) for m in self._model().mounts]

    # -- compiling the engine: once, when the app starts -----------------------------------

    def freeze(self) -> None:
        """Freeze the declarations and compile the app, as its lifespan startup or first
        request does; a later declaration raises :class:`~joey.declarations.LateDeclaration`.

        Example::

            app.freeze()      # in a test: the app as a server starts it
            assert app.frozen  # app.include_router(...) now raises LateDeclaration
        """
        self._current_engine()

    def _current_engine(self) -> Engine:
        # Compiled at the first call, which freezes what it reads (the router and what it
        # includes too), and again from the same declarations after an override changed.
        engine = self._engine
        if engine is None:
            self.freeze_declarations("the app")
            engine = self._lifecycle.compile(self)
            if self._stack is None:
                self._stack = self._lifecycle.stack(self.asgi_middleware, self._dispatch)
            self._engine = engine
            self._serve_http = self._lifecycle.serving(engine, self._stack, self._dispatch)
        return engine

    def _policy(self) -> ExceptionPolicy:
        return self._current_engine().policy

    def _model(self) -> Engine:
        # What app.routes reads: the engine once started; before, a preview kept nowhere.
        return self._current_engine() if self.frozen else self._lifecycle.compile(self)

    def _drop_engine(self) -> None:
        # An override changed: compile again. The ASGI stack stays (its instances have state).
        self._engine = None
        self._serve_http = None

    # -- the ASGI entry point ----------------------------------------------------------------

    #: The ASGI entry point, ``await app(scope, receive, send)``: read
    #: :func:`joey._engine.entry.app_call` (a function of a module the compiled build compiles:
    #: the class stays interpreted, the path a request takes through it does not).
    __call__ = app_call

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The innermost app of the ASGI middleware stack."""
        if scope["type"] == "lifespan":
            await serve_lifespan(self.startup, self.shutdown, scope.get("state"), receive, send)
        else:
            await self._current_engine().dispatch(scope, receive, send)

    # -- lifespan: startup and shutdown (their order: joey.lifespan) -------------------------

    async def startup(self, lifespan_state: dict[str, Any] | None = None) -> None:
        """Freeze and compile the app, and run every startup step (see :mod:`joey.lifespan`).
        The server's lifespan calls this; call it yourself only without a lifespan."""
        await self._lifecycle.start(self, self._current_engine(), lifespan_state)

    async def shutdown(self) -> None:
        """End open streams, close WebSockets (1001), stop spawned tasks, and undo every
        startup step in reverse order. Every step runs even if one fails; failures are
        logged and then raised together as :class:`joey.lifespan.LifespanFailed`."""
        await self._lifecycle.stop(self.shutdown_timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
              ) -> asyncio.Task[Any]:
        """Start a task that lives until shutdown (then it is cancelled and awaited)."""
        return self._lifecycle.manager.spawn(coro, name=name)

    def __repr__(self) -> str:
        return f"<App routes={len(list(self.router.walk())) - 1}>"
