"""Running a call: the runners of :mod:`joey.params.phases`, and the dependencies they call.

:func:`compile_caller` describes a handler's call once, at startup
(:func:`~joey.params.phases.describe_call`: its phases as data, and its shape) and assembles
the runner that shape names (:data:`RUNNERS`); nothing downstream looks at the plan again.
One runner, :func:`_every_phase`, runs the phases in their order: security (a missing
credential is a 401 before anything else is read), extraction and validation (no user code;
all problems in one 422), dependencies (each once, in order), the handler, the conversion of
its result. The other runners are that run for calls that have neither security nor
dependencies, with those phases left out, or whose only dependencies are app-scoped, whose
values they look up: every frame avoided on the request path counts (see
benchmarks/GAPS.md). Generator dependencies are torn down after the response has been sent
(:class:`DependencyContext`), those declared ``scope="function"`` when the handler has
returned, before it; app-scoped ones at shutdown (:class:`AppScopedValues`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from joey.exceptions import MissingCredentials
from joey.params.issues import ValidationIssue, validation_error
from joey.params.phases import CallPlan, describe_call
from joey.params.plan import DependencyNode

logger = logging.getLogger("joey")


class DependencyContext:
    """The generator dependencies of one connection (or of the app), to finish later.

    A request's context is closed after the response has been sent; each generator gets the
    exception that ended the request (``connection.error``), if any, at its ``yield``. Those
    declared ``scope="function"`` are finished first, before the response
    (:meth:`finish_early`).
    """

    __slots__ = ("connection", "early", "generators")

    def __init__(self, connection: Any = None) -> None:
        self.generators: list[Any] = []
        #: the generators of ``Depends(..., scope="function")``, also in ``generators``
        self.early: list[Any] = []
        self.connection = connection

    async def close(self) -> None:
        """Finish every generator dependency, newest first; one failing does not stop the
        others (each failure is logged)."""
        error: BaseException | None = getattr(self.connection, "error", None)
        while self.generators:
            generator = self.generators.pop()
            try:
                if await _finish(generator, error):
                    continue  # finished, as it should
            except BaseException as exc:
                if exc is error:
                    continue  # the dependency let the handler's error through: expected
                logger.error("Teardown of a dependency failed", exc_info=exc)
                continue
            logger.error("Dependency generator %s yielded more than once",
                         getattr(generator, "__qualname__", generator))

    async def finish_early(self, error: Exception | None) -> None:
        """Finish the ``scope="function"`` generators, newest first, before the response:
        each gets ``error`` (what the handler raised), if any, at its ``yield``. Raises what
        the first failing teardown raised (it becomes the response, through the exception
        handlers; the others are logged), else ``error``: a teardown cannot turn a failed
        request into a success."""
        # (Spelled without a tuple assignment and reversed(): mypyc fails on them here.)
        early: list[Any] = self.early
        self.early = []
        failure: BaseException | None = None
        for index in range(len(early) - 1, -1, -1):
            generator = early[index]
            self.generators.remove(generator)
            try:
                if await _finish(generator, error):
                    continue
                problem: BaseException = RuntimeError(
                    f"Dependency generator {getattr(generator, '__qualname__', generator)} "
                    "yielded more than once")
            except BaseException as exc:
                if exc is error:
                    continue
                problem = exc
            if failure is None:
                failure = problem
            else:
                logger.error("Teardown of a dependency failed", exc_info=problem)
        if failure is not None:
            raise failure
        if error is not None:
            raise error


async def _finish(generator: Any, error: BaseException | None) -> bool:
    """Resume a generator dependency after its ``yield`` (``error`` thrown in, if any):
    True when it finished; what its teardown raises propagates."""
    if not inspect.isasyncgen(generator):
        return await asyncio.to_thread(_resume, generator, error)
    try:
        if error is not None:
            await generator.athrow(error)
        else:
            await generator.__anext__()
    except StopAsyncIteration:
        return True
    return False


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
    if node.tears_down_first:
        context.early.append(generator)
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

    Example::

        from joey.params.plan import PlanBuilder
        from joey.responses import to_response

        async def hello() -> str:
            return "hi"

        caller = compile_caller(PlanBuilder({}).build(hello, {}), AppScopedValues(),
                                to_response)
        response = await caller(None)      # the connection: unused by this handler
        assert response.body == b"hi"
    """
    return assemble(describe_call(root, respond, path_params, route), app_values)


def assemble(call: CallPlan, app_values: AppScopedValues, shape: str | None = None) -> Caller:
    """The runner of ``call``: the one its shape names, or ``shape``'s (any call can be run
    by ``guarded``, which runs every phase; the tests compare the two). It is named
    ``call_<shape>``."""
    shape = shape or call.shape
    runner = RUNNERS[shape](call, app_values)
    runner.__name__ = f"call_{shape}"  # for the full and guarded shapes, which share one
    return runner


def _bare(call: CallPlan, app_values: AppScopedValues) -> Caller:
    func, respond = call.handler.func, call.respond

    async def call_bare(connection: Any) -> Any:
        return respond(await func())

    return call_bare


def _with_connection(call: CallPlan, app_values: AppScopedValues) -> Caller:
    # perf: the handler takes only the request: no extraction step at all
    func, respond = call.handler.func, call.respond

    async def call_with_connection(connection: Any) -> Any:
        return respond(await func(connection))

    return call_with_connection


def _with_path_values(call: CallPlan, app_values: AppScopedValues) -> Caller:
    # perf: the handler takes exactly the path parameters, already typed by the router: the
    # request's path_params are its keyword arguments
    func, respond = call.handler.func, call.respond

    async def call_with_path_values(connection: Any) -> Any:
        return respond(await func(**connection.path_params))

    return call_with_path_values


def _simple(call: CallPlan, app_values: AppScopedValues) -> Caller:
    # perf: values read without waiting, no dependencies: one loop, no per-node dicts
    handler, respond = call.handler, call.respond
    func, is_async = handler.func, handler.call_style == "async"
    (step,) = call.extraction
    extractors = step.extractors

    async def call_simple(connection: Any) -> Any:
        issues: list[ValidationIssue] = []
        kwargs = {}
        for name, extract in extractors:  # (a loop: no comprehension frame on 3.11)
            kwargs[name] = extract(connection, issues)
        if issues:
            raise validation_error(issues)
        if is_async:
            return respond(await func(**kwargs))
        return respond(await call_node(handler, kwargs, None))

    return call_simple


def _extracting(call: CallPlan, app_values: AppScopedValues) -> Caller:
    # perf: a body but no dependencies: no dependency context, no per-node dicts
    handler, respond = call.handler, call.respond
    func, is_async = handler.func, handler.call_style == "async"
    (step,) = call.extraction
    extractors, async_extractors = step.extractors, step.async_extractors

    async def call_extracting(connection: Any) -> Any:
        issues: list[ValidationIssue] = []
        kwargs = {}
        for name, extract in extractors:  # (a loop: no comprehension frame on 3.11)
            kwargs[name] = extract(connection, issues)
        for name, extract_async in async_extractors:
            kwargs[name] = await extract_async(connection, issues)
        if issues:
            raise validation_error(issues)
        if is_async:
            return respond(await func(**kwargs))
        return respond(await call_node(handler, kwargs, None))

    return call_extracting


def _with_app_values(call: CallPlan, app_values: AppScopedValues) -> Caller:
    # perf: the only dependencies are app-scoped (a pool, a client): made once, so after the
    # first request each is one dict lookup; no dependency context, no per-node dicts, no
    # coroutine per dependency
    handler, respond = call.handler, call.respond
    func = handler.func
    (step,) = call.extraction  # app-scoped nodes read nothing: only the handler's step
    extractors, async_extractors = step.extractors, step.async_extractors
    made = app_values.values  # (the same dict for the app's life: close() clears it)
    # the handler's own dependencies (name None: a route-level one), with their keys in `made`
    wanted = tuple((name, node, (node.key, node.func)) for name, node in handler.dependencies)
    dependencies = call.dependencies  # all of them, in call order: how they are made

    async def call_with_app_values(connection: Any) -> Any:
        issues: list[ValidationIssue] = []
        kwargs = {}
        for name, extract in extractors:  # (a loop: no comprehension frame on 3.11)
            kwargs[name] = extract(connection, issues)
        for name, extract_async in async_extractors:
            kwargs[name] = await extract_async(connection, issues)
        if issues:
            raise validation_error(issues)
        for param, node, key in wanted:
            try:
                value = made[key]
            except KeyError:  # no lifespan made them: the first request does, in call order
                for dependency in dependencies:
                    await app_values.get(dependency)
                value = await app_values.get(node)
            if param is not None:
                kwargs[param] = value
        return respond(await func(**kwargs))

    return call_with_app_values


def _every_phase(call: CallPlan, app_values: AppScopedValues) -> Caller:
    """The runner of every phase, in order: the one place the order is written."""
    security, extraction, dependencies = call.security, call.extraction, call.dependencies
    handler, respond, tears_down = call.handler, call.respond, call.tears_down

    async def call_every_phase(connection: Any) -> Any:
        results: dict[DependencyNode, Any] = {}
        context = DependencyContext(connection) if tears_down else None
        try:
            try:
                # 1. Security: each guard as soon as its own values are read.
                for node, extractors, _ in security:
                    if node.scope == "app":
                        results[node] = await app_values.get(node)
                        continue
                    issues: list[ValidationIssue] = []
                    kwargs = {}
                    for name, extract in extractors:  # (a loop: no comprehension frame on 3.11)
                        kwargs[name] = extract(connection, issues)
                    if issues:
                        raise validation_error(issues)
                    try:
                        results[node] = await _call_with(node, kwargs, results, context)
                    except MissingCredentials:
                        if not node.optional:
                            raise
                        results[node] = None  # optional authentication: no credentials
                # 2. Extraction: everything else, read and validated; no user code runs.
                issues = []
                arguments: dict[DependencyNode, dict[str, Any]] = {}
                for node, extractors, async_extractors in extraction:
                    kwargs = {}
                    for name, extract in extractors:  # (a loop: no comprehension frame on 3.11)
                        kwargs[name] = extract(connection, issues)
                    for name, extract_async in async_extractors:
                        kwargs[name] = await extract_async(connection, issues)
                    arguments[node] = kwargs
                if issues:
                    raise validation_error(issues)
            finally:
                # after extraction, so teardowns run before the BackgroundTasks it made (the
                # newest cleanup runs first); and even when a guard refused the request
                if context is not None:
                    connection.call_on_close(context.close)
            # 3. Dependencies, each once, in order.
            for node in dependencies:
                if node.scope == "app":
                    results[node] = await app_values.get(node)
                else:
                    results[node] = await _call_with(node, arguments[node], results, context)
            # 4. The handler. 5. Its result converted.
            result = respond(await _call_with(handler, arguments[handler], results, context))
        except Exception as exc:
            if context is not None and context.early:
                await context.finish_early(exc)  # raises exc, or what a teardown raised
            raise
        # The scope="function" generators end before the response is sent, so what their
        # teardown raises is the response.
        if context is not None and context.early:
            await context.finish_early(None)
        return result

    return call_every_phase


def _call_with(node: DependencyNode, kwargs: dict[str, Any], results: dict[DependencyNode, Any],
               context: DependencyContext | None) -> Awaitable[Any]:
    """Call ``node`` with its values and its dependencies' results."""
    for name, dependency in node.dependencies:
        if name is not None:
            kwargs[name] = results[dependency]
    if node.call_style == "async":
        # perf: an async function is awaited directly, not through call_node's frame
        result: Awaitable[Any] = node.func(**kwargs)
        return result
    return call_node(node, kwargs, context)


#: The runner of each shape of :data:`~joey.params.phases.SHAPES`, by name.
RUNNERS: dict[str, Callable[[CallPlan, AppScopedValues], Caller]] = {
    "bare": _bare,
    "with_connection": _with_connection,
    "with_path_values": _with_path_values,
    "simple": _simple,
    "extracting": _extracting,
    "app_values": _with_app_values,
    "full": _every_phase,
    "guarded": _every_phase,
}


__all__ = [
    "RUNNERS",
    "AppScopedValues",
    "Caller",
    "DependencyContext",
    "assemble",
    "call_node",
    "compile_caller",
]
