"""Running a plan: phase two of a request, and the one place that decides how a handler is
called.

:func:`compile_caller` looks at a handler's plan once, at startup, and picks the shortest way
to call it; nothing downstream looks at the plan again. At request time the chosen coroutine
runs the security dependencies first, if the route has any (schemes and guards reached
through ``Security(...)``: a missing credential is a 401 before anything else is read), then
extracts and validates every other value (no user code; all problems in one 422), then calls
each dependency once, in order, and the handler last. Generator dependencies are
torn down after the response has been sent (:class:`DependencyContext`); app-scoped ones at
shutdown (:class:`AppScopedValues`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from joey.describe import describe
from joey.exceptions import MissingCredentials
from joey.params.extract import Extractor, PathValue, take_connection, take_route
from joey.params.issues import ValidationIssue, validation_error
from joey.params.plan import DependencyNode, in_call_order, security_phase

logger = logging.getLogger("joey")


class DependencyContext:
    """The generator dependencies of one connection (or of the app), to finish later.

    A request's context is closed after the response has been sent; each generator gets the
    exception that ended the request (``connection.error``), if any, at its ``yield``.
    """

    __slots__ = ("connection", "generators")

    def __init__(self, connection: Any = None) -> None:
        self.generators: list[Any] = []
        self.connection = connection

    async def close(self) -> None:
        """Finish every generator dependency, newest first; one failing does not stop the
        others (each failure is logged)."""
        error: BaseException | None = getattr(self.connection, "error", None)
        while self.generators:
            generator = self.generators.pop()
            try:
                if inspect.isasyncgen(generator):
                    if error is not None:
                        await generator.athrow(error)
                    else:
                        await generator.__anext__()
                elif await asyncio.to_thread(_resume, generator, error):
                    continue  # finished, as it should
            except StopAsyncIteration:
                continue
            except BaseException as exc:
                if exc is error:
                    continue  # the dependency let the handler's error through: expected
                logger.error("Teardown of a dependency failed", exc_info=exc)
                continue
            logger.error("Dependency generator %s yielded more than once",
                         getattr(generator, "__qualname__", generator))


def _resume(generator: Any, error: BaseException | None) -> bool:
    """Run a sync generator dependency's teardown; True when it finished.

    StopIteration must not escape into the thread pool's future (asyncio refuses it and the
    future never completes), so it is turned into a return value here.
    """
    try:
        if error is not None:
            generator.throw(error)
        else:
            next(generator)
    except StopIteration:
        return True
    return False


def _first_value(generator: Any) -> Any:
    try:
        return next(generator)
    except StopIteration:
        raise RuntimeError(f"Dependency generator {generator!r} did not yield") from None


async def call_node(node: DependencyNode, kwargs: dict[str, Any],
                    context: DependencyContext | None) -> Any:
    func = node.func
    style = node.call_style
    if style == "async":
        return await func(**kwargs)
    if style == "sync":
        return await asyncio.to_thread(functools.partial(func, **kwargs))
    assert context is not None
    if style == "async_generator":
        generator = func(**kwargs)
        value = await generator.__anext__()
    else:
        generator = func(**kwargs)
        value = await asyncio.to_thread(_first_value, generator)
    context.generators.append(generator)
    return value


class AppScopedValues:
    """Values of ``Depends(..., scope="app")``: made once per lifespan, torn down at shutdown.

    A value is keyed by the dependency the user declared and the function that makes it
    (itself, or its override), not by plan node: HTTP and WebSocket routes share one value,
    and a rebuild of the plans (a route added, an override changed) finds the values made
    before it. Only an override of that very dependency makes a new one.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[Callable[..., Any], Callable[..., Any]], Any] = {}
        self.context = DependencyContext()
        self._lock = asyncio.Lock()

    async def get(self, node: DependencyNode) -> Any:
        key = (node.key, node.func)
        try:
            return self.values[key]
        except KeyError:
            pass
        async with self._lock:
            if key not in self.values:
                kwargs = {}
                for name, dependency in node.dependencies:
                    value = await self.get(dependency)
                    if name is not None:
                        kwargs[name] = value
                self.values[key] = await call_node(node, kwargs, self.context)
        return self.values[key]

    async def close(self) -> None:
        self.values.clear()
        await self.context.close()


Caller = Callable[[Any], Awaitable[Any]]


def compile_caller(root: DependencyNode, app_values: AppScopedValues,
                   respond: Callable[[Any], Any], path_params: frozenset[str] = frozenset(),
                   route: Any = None) -> Caller:
    """The coroutine that runs ``root``'s plan for one connection: ``respond(result)``.

    ``respond`` turns the handler's result into what the caller wants (for HTTP routes, a
    ``Response``); ``route`` is the route's model (``RouteInfo``), passed to parameters that
    ask for it. Sync handlers run in a worker thread, so they never block the event loop.
    Each shape of handler gets the shortest closure that can run it; every frame avoided on
    the request path counts (see benchmarks/GAPS.md).
    """
    func = root.func
    guards = security_phase(root, describe(func))
    if guards:
        return _guarded_caller(root, guards, app_values, respond, route)
    sync_extractors = _bind_route(root.sync_extractors, route)
    if not root.dependencies and not root.async_extractors and root.call_style == "async":
        if not sync_extractors:
            async def call_bare(connection: Any) -> Any:
                return respond(await func())

            return call_bare
        if len(sync_extractors) == 1 and sync_extractors[0][1] is take_connection:
            # perf: the handler takes only the request: no extraction step at all
            async def call_with_connection(connection: Any) -> Any:
                return respond(await func(connection))

            return call_with_connection
        if path_params and _takes_only_path_values(root, path_params):
            # perf: the handler takes exactly the path parameters, already typed by the
            # router: the request's path_params are its keyword arguments
            async def call_with_path_values(connection: Any) -> Any:
                return respond(await func(**connection.path_params))

            return call_with_path_values

    if not root.dependencies and not root.async_extractors:
        is_async = root.call_style == "async"

        async def call_simple(connection: Any) -> Any:
            issues: list[ValidationIssue] = []
            kwargs = {name: extract(connection, issues) for name, extract in sync_extractors}
            if issues:
                raise validation_error(issues)
            if is_async:
                return respond(await func(**kwargs))
            return respond(await call_node(root, kwargs, None))

        return call_simple

    if not root.dependencies:
        async_extractors = root.async_extractors

        async def call_extracting(connection: Any) -> Any:
            # perf: a body but no dependencies: no dependency context to set up
            issues: list[ValidationIssue] = []
            kwargs = {name: extract(connection, issues) for name, extract in sync_extractors}
            for name, extract_async in async_extractors:
                kwargs[name] = await extract_async(connection, issues)
            if issues:
                raise validation_error(issues)
            return respond(await call_node(root, kwargs, None))

        return call_extracting

    order = in_call_order(root)
    steps = [(node, _bind_route(node.sync_extractors, route)) for node in order
             if node.scope != "app"]

    async def call_full(connection: Any) -> Any:
        # Phase one: extract and validate everything; no user code runs.
        arguments = await _extract_all(steps, connection)
        # Phase two: call each dependency once, in order, then the handler.
        context = DependencyContext(connection)
        connection.call_on_close(context.close)
        results: dict[int, Any] = {}
        await _call_in_order(order, arguments, results, app_values, context)
        return respond(results[id(root)])

    return call_full


async def _extract_all(steps: list[tuple[DependencyNode, list[tuple[str, Extractor]]]],
                       connection: Any) -> dict[int, dict[str, Any]]:
    """Every node's values, read and validated; all problems at once in one 422."""
    issues: list[ValidationIssue] = []
    arguments: dict[int, dict[str, Any]] = {}
    for node, extractors in steps:
        kwargs = {name: extract(connection, issues) for name, extract in extractors}
        for name, extract_async in node.async_extractors:
            kwargs[name] = await extract_async(connection, issues)
        arguments[id(node)] = kwargs
    if issues:
        raise validation_error(issues)
    return arguments


async def _call_in_order(order: list[DependencyNode], arguments: dict[int, dict[str, Any]],
                         results: dict[int, Any], app_values: AppScopedValues,
                         context: DependencyContext) -> None:
    """Call each node once, in order (dependencies before their dependents), with the values
    extracted for it and the results of its dependencies; app-scoped ones come from the app."""
    for node in order:
        if node.scope == "app":
            results[id(node)] = await app_values.get(node)
            continue
        kwargs = arguments[id(node)]
        for dep_name, dependency in node.dependencies:
            if dep_name is not None:
                kwargs[dep_name] = results[id(dependency)]
        results[id(node)] = await call_node(node, kwargs, context)


def _guarded_caller(root: DependencyNode, guards: list[DependencyNode],
                    app_values: AppScopedValues, respond: Callable[[Any], Any], route: Any,
                    ) -> Caller:
    """The caller of a route with security dependencies: they run first, each as soon as
    its own few values (a header, a cookie) are read, so a request without credentials is
    refused before its body is read or validated. The rest runs as in ``call_full``."""
    guard_ids = {id(node) for node in guards}
    guard_steps = [(node, _bind_route(node.sync_extractors, route)) for node in guards]
    steps = [(node, _bind_route(node.sync_extractors, route)) for node in in_call_order(root)
             if id(node) not in guard_ids and node.scope != "app"]
    order = [node for node in in_call_order(root) if id(node) not in guard_ids]

    async def call_guarded(connection: Any) -> Any:
        context = DependencyContext(connection)
        connection.call_on_close(context.close)
        results: dict[int, Any] = {}
        # Phase one: security. Schemes and guards, and what they depend on.
        for node, extractors in guard_steps:
            if node.scope == "app":
                results[id(node)] = await app_values.get(node)
                continue
            issues: list[ValidationIssue] = []
            kwargs = {name: extract(connection, issues) for name, extract in extractors}
            if issues:
                raise validation_error(issues)
            for dep_name, dependency in node.dependencies:
                if dep_name is not None:
                    kwargs[dep_name] = results[id(dependency)]
            if node.optional:
                try:
                    results[id(node)] = await call_node(node, kwargs, context)
                except MissingCredentials:
                    results[id(node)] = None
            else:
                results[id(node)] = await call_node(node, kwargs, context)
        # Phase two: extract and validate everything else; no user code runs.
        arguments = await _extract_all(steps, connection)
        # Phase three: the other dependencies, in order, then the handler.
        await _call_in_order(order, arguments, results, app_values, context)
        return respond(results[id(root)])

    return call_guarded


def _bind_route(extractors: list[tuple[str, Extractor]], route: Any,
                ) -> list[tuple[str, Extractor]]:
    """``extractors`` with the route's model in place of :func:`take_route` (at startup)."""
    if all(extract is not take_route for _, extract in extractors):
        return extractors

    def give_route(connection: Any, issues: list[ValidationIssue]) -> Any:
        return route

    return [(name, give_route if extract is take_route else extract)
            for name, extract in extractors]


def _takes_only_path_values(node: DependencyNode, route_params: frozenset[str]) -> bool:
    """Whether ``node``'s arguments are exactly the route's path parameters, as the router
    typed them."""
    return (
        all(isinstance(extract, PathValue) and extract.name == name
            for name, extract in node.sync_extractors)
        and {name for name, _ in node.sync_extractors} == route_params
    )
