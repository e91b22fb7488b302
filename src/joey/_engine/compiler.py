"""The compiler: an app's declarations in, a ready-to-serve :class:`Engine` out.

Run once, when the app starts (and again, from the same frozen declarations, when
``dependency_overrides`` change; ``app.routes`` before startup compiles a preview that is kept
nowhere). For every route it reads
the handler's plan (:mod:`joey.params`), lets :func:`~joey.params.run.compile_caller` choose
how the handler is called, wraps that in the route's handler middleware and body limit, and
puts the pipeline in the route tree; each path also gets its 405, ``OPTIONS`` and ``HEAD``
answers. The route model (``app.routes``) is made from the same plans.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol

from joey._engine.connections import OpenConnections
from joey._engine.errors import ExceptionHandler, ExceptionPolicy
from joey._engine.http import Engine
from joey._engine.tree import Endpoint, RouteTree, WebSocketHandler
from joey.describe import describe
from joey.exceptions import MethodNotAllowed
from joey.params.plan import PlanBuilder
from joey.params.returns import return_converter, sent_as_json
from joey.params.run import AppScopedValues, compile_caller
from joey.pipelines import Pipeline, chain
from joey.requests import Request
from joey.responses import JSONResponse, ProblemResponse, Response, to_response
from joey.routeinfo import route_info
from joey.routing import Mount, Route, Router

if TYPE_CHECKING:
    from joey.observability.tracing import Tracing


class Declarations(Protocol):
    """What the compiler reads of an app (:class:`joey.App` is one)."""

    @property
    def router(self) -> Router: ...
    @property
    def dependency_overrides(self) -> Mapping[Callable[..., Any], Callable[..., Any]]: ...
    @property
    def exception_handlers(self) -> Mapping[type[BaseException], ExceptionHandler]: ...
    @property
    def debug(self) -> bool: ...
    @property
    def max_body_size(self) -> int | None: ...
    @property
    def redirect_slashes(self) -> bool: ...


def compile_engine(app: Declarations, app_values: AppScopedValues,
                   connections: OpenConnections, tracing: Tracing | None = None, *,
                   check_enqueues: bool = False) -> Engine:
    """Compile ``app``'s root router, with everything it includes, and its options; with
    ``tracing``, every route names the request's span after itself (``check_enqueues``: fail
    a request whose handler dropped an ``enqueue`` unawaited)."""
    router, max_body_size = app.router, app.max_body_size
    tree = RouteTree()
    routes: list[tuple[Route, Endpoint]] = []
    mounts: list[Mount] = []
    routers: list[Router] = []
    for item in router.walk():
        if isinstance(item, Route):
            routes.append((item, tree.add(item)))
        elif isinstance(item, Mount):
            tree.add_mount(item)
            mounts.append(item)
        else:
            routers.append(item)
    engine = Engine(app, tree, ExceptionPolicy(app.exception_handlers, app.debug), connections,
                    max_body_size=max_body_size, redirect_slashes=app.redirect_slashes)
    engine.mounts, engine.routers = mounts, routers
    compiler = _Compiler(engine, dict(app.dependency_overrides), app_values, router.middleware,
                         max_body_size, check_enqueues)
    for route, endpoint in routes:
        if route.websocket:
            endpoint.websocket = compiler.websocket(route)
        else:
            pipeline = compiler.http(route)
            for method in route.methods:
                endpoint.handlers[method] = pipeline
    engine.not_found = chain(router.middleware, engine.answer_not_found)
    engine.bad_target = chain(router.middleware, engine.answer_bad_target)
    for endpoint in tree.endpoints:
        compiler.fallbacks(endpoint)
    engine.app_scoped = [*compiler.http_plans.app_scoped(), *compiler.ws_plans.app_scoped()]
    if tracing is not None:
        _trace_routes(tree, tracing)
    return engine


def _trace_routes(tree: RouteTree, tracing: Tracing) -> None:
    """Every route's pipelines name the request's span after the route (``App(tracing=)``
    only: an app without it runs none of this)."""
    for endpoint in tree.endpoints:
        template = endpoint.template
        endpoint.handlers = {method: tracing.wrap_route(pipeline, template, method)
                             for method, pipeline in endpoint.handlers.items()}
        if endpoint.routes and endpoint.fallback is not None:  # the 405 of a routed path
            endpoint.fallback = tracing.wrap_route(endpoint.fallback, template, None)
        if endpoint.websocket is not None:
            route, handler = endpoint.websocket
            endpoint.websocket = route, tracing.wrap_websocket(handler, template)


class _Compiler:
    def __init__(self, engine: Engine, overrides: dict[Callable[..., Any], Callable[..., Any]],
                 app_values: AppScopedValues, app_middleware: list[Any],
                 max_body_size: int | None, check_enqueues: bool) -> None:
        self.engine = engine
        self.http_plans = PlanBuilder(overrides)
        self.ws_plans = PlanBuilder(overrides, websocket=True)
        self.app_values = app_values
        self.app_middleware = app_middleware
        self.max_body_size = max_body_size
        self.check_enqueues = check_enqueues

    def http(self, route: Route) -> Pipeline:
        """The route's pipeline: middleware (app → group → route) around the handler."""
        path_params = route.path_params
        plan = self.http_plans.build(route.endpoint, path_params, route.dependencies,
                                     namespace=route.namespace)
        caching = None
        if route.caching is not None:  # only routes that declare caching load joey.caching
            from joey.caching.route import RouteCaching

            caching = RouteCaching(route.caching, describe(route.endpoint), path_params)
            step = caching.step_before(plan)
            if step is not None:  # planned again, with it first among the dependencies
                plan = self.http_plans.build(route.endpoint, path_params,
                                             (step, *route.dependencies),
                                             namespace=route.namespace)
        limit = self.max_body_size if isinstance(route.max_body_size, EllipsisType) else (
            route.max_body_size)
        info = route_info(route, plan, limit)
        self.engine.routes.append(info)
        status_code = route.status_code or 200
        respond: Callable[[Any], Response] = (
            to_response if status_code == 200
            else functools.partial(to_response, status_code=status_code))
        coerce = return_converter(plan.func, plan.returns)
        if coerce is not None:
            # the return annotation decides: a dict returned from `-> Item` becomes an Item
            send_value = respond

            def respond_converted(value: Any) -> Response:
                if value is not None and not isinstance(value, Response):
                    value = coerce(value)
                return send_value(value)

            respond = respond_converted
            as_declared = sent_as_json(plan.returns)
            if as_declared is not None:

                def respond_declared(value: Any) -> Response:
                    if as_declared(value):  # perf: an Item from `-> Item`, sent as it is
                        return JSONResponse(value, status_code)
                    return respond_converted(value)

                respond = respond_declared
        run_handler = compile_caller(plan, self.app_values, respond, frozenset(path_params),
                                     info)
        if self.check_enqueues:  # only apps with a task queue pay for the check
            from joey.tasks.unawaited import checking_enqueues

            run_handler = checking_enqueues(run_handler)
        if caching is not None:
            run_handler = caching.wrap(run_handler)
        pipeline = chain(route.middleware, run_handler)
        if limit != self.max_body_size:
            inner = pipeline

            async def with_limit(request: Request) -> Response:
                request.max_body_size = limit
                return await inner(request)

            pipeline = with_limit
        setattr(pipeline, "__joey_route__", route)  # noqa: B010 - for error messages
        return pipeline

    def websocket(self, route: Route) -> WebSocketHandler:
        plan = self.ws_plans.build(route.endpoint, route.path_params, route.dependencies,
                                   namespace=route.namespace)
        info = route_info(route, plan, None)
        self.engine.routes.append(info)
        return route, compile_caller(plan, self.app_values, _ignore, route=info)

    def fallbacks(self, endpoint: Endpoint) -> None:
        """405 for other methods, ``OPTIONS`` with ``Allow``, ``HEAD`` answered by ``GET``."""
        if not endpoint.routes:  # a websocket-only path: plain HTTP finds nothing here
            endpoint.fallback = self.engine.not_found
            return
        allow = endpoint.allow_header
        allowed = allow.split(", ")
        policy = self.engine.policy

        async def method_not_allowed(request: Request) -> Response:
            error = MethodNotAllowed(f"{request.method} is not allowed here.", allowed=allowed)
            if policy.lookup(MethodNotAllowed) is not None:
                raise error  # the user's handler decides what a 405 looks like
            return ProblemResponse.from_error(error)

        async def options(request: Request) -> Response:
            return Response(b"", status_code=204, headers={"allow": allow})

        endpoint.fallback = chain(self.app_middleware, method_not_allowed)
        if "OPTIONS" not in endpoint.handlers:
            endpoint.handlers["OPTIONS"] = chain(self.app_middleware, options)
        if "HEAD" not in endpoint.handlers and "GET" in endpoint.handlers:
            endpoint.handlers["HEAD"] = endpoint.handlers["GET"]


def _ignore(value: Any) -> None:
    """WebSocket handlers' return values mean nothing."""
