"""How a route's handler is called, written as data: its phases, in order, and their steps.

Every call runs the same phases, in the same order (:data:`PHASES`):

1. ``security``: the dependencies reached through ``Security(...)`` (schemes and guards, and
   what they depend on), each as soon as its own few values (a header, a cookie) are read: a
   request without credentials is refused before its body is read or anything else is checked;
2. ``extraction``: every other value is read and validated, with no user code running; the
   problems of the handler and of all its dependencies go into one 422;
3. ``dependencies``: each called once, dependencies before their dependents;
4. ``handler``: the handler itself (a sync one in a worker thread);
5. ``conversion``: what it returned becomes what the connection sends (``respond``).

:func:`describe_call` reads a handler's plan into a :class:`CallPlan` once, at startup: the
steps of each phase, what the extraction phase reads, and the call's *shape*: the first row of
:data:`SHAPES` that the call fits; :data:`joey.params.run.RUNNERS` maps each shape to the
function that assembles its runner. The last two rows, ``full`` and ``guarded``, share one
runner, which runs the five phases exactly as listed above: it is the only place that order is
written. Every other row is a fast path for a call with no security and no dependencies, and
its runner is that same run with those phases left out (and, where there is nothing to
validate, with the extraction folded into the call: ``bare``, ``with_connection``,
``with_path_values``); or, for ``app_values``, with the dependencies phase reduced to looking
up the values of app-scoped dependencies (a database pool), made once per lifespan. The tests
run every shape both ways and compare the answers; a new fast path is a row here, a runner
there, and a case in those tests.

Example::

    from joey.params.plan import PlanBuilder
    from joey.responses import to_response

    async def user(id: int) -> dict[str, int]:     # on /users/{id:int}
        return {"id": id}

    call = describe_call(PlanBuilder({}).build(user, {"id": int}), to_response,
                         frozenset({"id"}))
    assert call.shape == "with_path_values"
    assert call.phases == ("extraction", "handler", "conversion")
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from joey.describe import describe
from joey.params.extract import AsyncExtractor, Extractor, PathValue, take_connection, take_route
from joey.params.issues import ValidationIssue
from joey.params.plan import DependencyNode, in_call_order, security_phase

#: The phases of a call, in the order they run.
PHASES = ("security", "extraction", "dependencies", "handler", "conversion")

#: What the extraction phase reads (:attr:`CallPlan.reads`): no value at all; only the
#: connection (the handler's one parameter, positional, is the request or WebSocket); exactly the
#: route's path parameters, already typed by the router; values read without waiting (query,
#: headers, cookies, path, injected objects); or also the body (or a form), which is awaited.
READS = ("nothing", "connection", "path_values", "values", "body")

#: What the dependencies phase calls (:attr:`CallPlan.depends`): nothing; only app-scoped
#: dependencies (made once per lifespan: a pool, a client), whose values are looked up; or
#: also request-scoped ones, called for each request.
DEPENDS = ("nothing", "app", "request")


class Step(NamedTuple):
    """One node's part in the security or extraction phase: the node and what reads its values
    (the route's model already in place of :func:`~joey.params.extract.take_route`)."""

    node: DependencyNode
    extractors: tuple[tuple[str, Extractor], ...]
    async_extractors: tuple[tuple[str, AsyncExtractor], ...]


class CallPlan:
    """One route's call, phase by phase (see the module docstring). Built once, at startup.

    Its ``security`` holds a step per security dependency (``shape`` is then
    ``"guarded"``), ``extraction`` and ``dependencies`` the other phases' steps.
    """

    __slots__ = ("dependencies", "depends", "extraction", "handler", "reads", "respond",
                 "security", "shape", "tears_down")

    def __init__(self, handler: DependencyNode, security: tuple[Step, ...],
                 extraction: tuple[Step, ...], dependencies: tuple[DependencyNode, ...],
                 respond: Callable[[Any], Any], reads: str) -> None:
        self.handler = handler
        #: security: the guards and what they depend on, in call order
        self.security = security
        #: extraction: every other request-scoped node, in call order (the handler last)
        self.extraction = extraction
        #: what the extraction phase reads: one of :data:`READS`
        self.reads = reads
        #: dependencies: the nodes called between extraction and the handler, in call order
        #: (app-scoped ones come from the app's values)
        self.dependencies = dependencies
        #: what the dependencies phase calls: one of :data:`DEPENDS`
        self.depends = "nothing" if not dependencies else (
            "app" if all(node.scope == "app" for node in dependencies) else "request")
        #: conversion: the handler's result into what the connection sends
        self.respond = respond
        #: whether a generator dependency runs for each connection: only then does a call
        #: need a context that tears them down after the response
        self.tears_down = any(
            node.scope != "app" and node.call_style in ("generator", "async_generator")
            for node in (*(step.node for step in security), *dependencies))
        #: the name of the first row of :data:`SHAPES` this call fits: its runner
        self.shape = next(shape.name for shape in SHAPES if shape.fits(self))

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases this call has, in the order they run."""
        present = {
            "security": bool(self.security), "extraction": self.reads != "nothing",
            "dependencies": bool(self.dependencies), "handler": True, "conversion": True,
        }
        return tuple(phase for phase in PHASES if present[phase])

    def __repr__(self) -> str:
        return (f"<CallPlan {self.shape} {describe(self.handler.func)}: "
                f"{' → '.join(self.phases)}>")


class Shape(NamedTuple):
    """A row of :data:`SHAPES`: a runner's name and the calls it can run (``None``: any)."""

    name: str
    security: bool | None
    reads: frozenset[str] | None
    dependencies: frozenset[str] | None
    handler: frozenset[str] | None

    def fits(self, call: CallPlan) -> bool:
        return (
            (self.security is None or self.security == bool(call.security))
            and (self.reads is None or call.reads in self.reads)
            and (self.dependencies is None or call.depends in self.dependencies)
            and (self.handler is None or call.handler.call_style in self.handler)
        )


_ASYNC = frozenset({"async"})
_NONE = frozenset({"nothing"})

#: The runners, first fit wins: the fast paths first, for calls with no security and no
#: dependencies, or only app-scoped ones (``app_values``); then ``full`` and ``guarded``,
#: which run every phase (one runner; the name says whether a security phase comes first).
SHAPES = (
    #     name                security reads                         deps                handler
    Shape("bare",             False, frozenset({"nothing"}),        _NONE,              _ASYNC),
    Shape("with_connection",  False, frozenset({"connection"}),     _NONE,              _ASYNC),
    Shape("with_path_values", False, frozenset({"path_values"}),    _NONE,              _ASYNC),
    Shape("simple",           False, frozenset(READS) - {"body"},   _NONE,              None),
    Shape("extracting",       False, None,                          _NONE,              None),
    Shape("app_values",       False, None,                          frozenset({"app"}), _ASYNC),
    Shape("full",             False, None,                          None,               None),
    Shape("guarded",          None,  None,                          None,               None),
)


def describe_call(root: DependencyNode, respond: Callable[[Any], Any],
                  path_params: frozenset[str] = frozenset(), route: Any = None) -> CallPlan:
    """``root``'s call as data: which nodes each phase runs, and the shape that runs them.

    ``route`` (a ``RouteInfo``) is what parameters asking for the route receive. Refuses, at
    startup, a handler that is a generator function, and a security dependency that reads the
    body (it would run before the body is read).
    """
    where = describe(root.func)
    if root.call_style not in ("async", "sync"):
        raise TypeError(
            f"{where}: the handler is a generator function; a handler returns its answer. To "
            "stream, return StreamingResponse(a_generator()) from it; to run code after the "
            "response, use a generator dependency (Depends) or BackgroundTasks")
    if _awaitable_annotation(root.returns):
        raise TypeError(
            f"{where}: the handler is declared to return an awaitable ({root.returns!r}); Joey "
            "sends what a handler returns, not what it would give when awaited. Make it "
            "`async def`, `await` inside it, and annotate what it returns")
    guards = security_phase(root, where)
    guard_ids = {id(node) for node in guards}
    rest = [node for node in in_call_order(root) if id(node) not in guard_ids]
    extraction = tuple(_step(node, route) for node in rest if node.scope != "app")
    return CallPlan(
        handler=root,
        security=tuple(_step(node, route) for node in guards),
        extraction=extraction,
        dependencies=tuple(node for node in rest if node is not root),
        respond=respond,
        reads=_reads(extraction, root, path_params),
    )


def _awaitable_annotation(annotation: Any) -> bool:
    """Whether a return annotation says "an awaitable" (``Coroutine[...]``, ``Awaitable[...]``)."""
    origin = typing.get_origin(annotation) or annotation
    return origin in (collections.abc.Awaitable, collections.abc.Coroutine)


def _step(node: DependencyNode, route: Any) -> Step:
    """``node``'s step, with the route's model in place of :func:`take_route`."""

    def give_route(connection: Any, issues: list[ValidationIssue]) -> Any:
        return route

    return Step(
        node,
        tuple((name, give_route if extract is take_route else extract)
              for name, extract in node.sync_extractors),
        tuple(node.async_extractors),
    )


def _reads(extraction: tuple[Step, ...], root: DependencyNode,
           path_params: frozenset[str]) -> str:
    """What the extraction phase reads, one of :data:`READS`."""
    if any(step.async_extractors for step in extraction):
        return "body"
    extractors = [pair for step in extraction for pair in step.extractors]
    if not extractors:
        return "nothing"
    only_root = len(extraction) == 1 and extraction[0].node is root
    if only_root and len(extractors) == 1 and extractors[0][1] is take_connection and (
        _positional(root.func)
    ):
        return "connection"
    if only_root and path_params and (
        all(isinstance(extract, PathValue) and extract.name == name
            for name, extract in extractors)
        and {name for name, _ in extractors} == path_params
    ):
        return "path_values"
    return "values"


def _positional(func: Callable[..., Any]) -> bool:
    """Whether ``func``'s one parameter may be passed by position (the ``with_connection``
    runner does; a keyword-only ``request`` is passed by name, as in every other shape)."""
    try:
        (parameter,) = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)


__all__ = [
    "DEPENDS",
    "PHASES",
    "READS",
    "SHAPES",
    "CallPlan",
    "Shape",
    "Step",
    "describe_call",
]
