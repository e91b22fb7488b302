"""The plan: a handler's signature, and its dependencies' signatures, read once at startup.

:class:`PlanBuilder` turns each function into a :class:`DependencyNode`: a
:class:`~joey.params.info.ParamInfo` per parameter (what the route model shows), the
extractor compiled from it (what a request runs), and the dependencies it needs. Mistakes in
a signature are found here, as ``TypeError`` naming the handler with its file and line.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from joey.background import BackgroundTasks
from joey.describe import describe
from joey.params.constraints import check_applies, normalize, with_meta
from joey.params.extract import (
    AsyncExtractor,
    Extractor,
    body_extractor,
    cookie_extractor,
    form_extractor,
    header_extractor,
    path_extractor,
    query_extractor,
    raised_by,
    take_background,
    take_channels,
    take_connection,
    take_route,
)
from joey.params.info import FORM_MEDIA_TYPES, JSON_MEDIA_TYPES, ParamInfo, Source
from joey.params.markers import (
    Body,
    Cookie,
    Depends,
    Form,
    Header,
    ParamMarker,
    Path,
    Query,
    Security,
)
from joey.params.signature_checks import (
    GENERATORS,
    annotated_class,
    check_convertible,
    check_path_parameters,
    is_pydantic_field,
    marker_values,
    refuse_later_teardown,
)
from joey.params.typeinfo import (
    MISSING,
    accepts_none,
    base_type,
    is_body_type,
    is_channels,
    is_route_info,
    is_structured,
    is_upload_file,
)
from joey.requests import HTTPConnection, Request


class DependencyNode:
    """One callable in the graph (a dependency, or the handler itself) and how to call it."""

    __slots__ = (
        "async_extractors", "call_style", "dependencies", "func", "implicit_query", "key",
        "optional", "params", "raises", "raises_edges", "returns", "scope", "security_edges",
        "sync_extractors", "tears_down_first",
    )

    def __init__(self, func: Callable[..., Any], key: Callable[..., Any], scope: str,
                 optional: bool = False) -> None:
        self.func = func
        #: the function the user wrote in Depends(...) (overrides are keyed on it)
        self.key = key
        self.scope = scope
        #: every parameter except dependencies, in signature order
        self.params: list[ParamInfo] = []
        #: the parameters read from the query string only because nothing else claimed them
        #: (no marker, not a path parameter, not a body type)
        self.implicit_query: list[ParamInfo] = []
        self.sync_extractors: list[tuple[str, Extractor]] = []
        self.async_extractors: list[tuple[str, AsyncExtractor]] = []
        #: (parameter name or None for route-level dependencies, node)
        self.dependencies: list[tuple[str | None, DependencyNode]] = []
        #: id of a dependency reached through ``Security(...)`` (or a security scheme) →
        #: the scopes that edge requires: those run in the security phase
        self.security_edges: dict[int, tuple[str, ...]] = {}
        #: a security dependency whose parameter admits ``None``: missing credentials
        #: (:class:`MissingCredentials`) pass ``None`` instead of answering 401
        self.optional = optional
        self.call_style = call_style(func)
        #: the return annotation (``None`` when there is none), read with the parameters
        self.returns: Any = None
        #: what the dependency declares it can answer instead of the handler (its
        #: ``__joey_raises__``: a rate limit's 429); its extractors declare their own
        self.raises: tuple[type[BaseException], ...] = ()
        #: id of a dependency → what the ``Depends(..., raises=[...])`` that reached it
        #: declares (for the API document of every route that uses it)
        self.raises_edges: dict[int, tuple[type[BaseException], ...]] = {}
        #: declared ``Depends(..., scope="function")``: a generator is torn down when the
        #: handler has returned, before the response is sent (``scope`` is ``"request"``)
        self.tears_down_first = False


def is_security(marker: Depends) -> bool:
    """Whether ``marker`` names a security dependency: ``Security(...)``, or a scheme (an
    object that says so with ``__joey_security__``)."""
    return isinstance(marker, Security) or bool(
        getattr(marker.dependency, "__joey_security__", False))


def call_style(func: Callable[..., Any]) -> str:
    """``async``, ``sync``, ``async_generator`` or ``generator``: how ``func`` is called."""
    if inspect.isasyncgenfunction(func):
        return "async_generator"
    if inspect.isgeneratorfunction(func):
        return "generator"
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an instance with an async __call__
    ):
        return "async"
    return "sync"


class PlanBuilder:
    """Reads signatures into :class:`DependencyNode` graphs. One per app build."""

    def __init__(
        self, overrides: dict[Callable[..., Any], Callable[..., Any]], websocket: bool = False
    ) -> None:
        self.overrides = overrides
        self.websocket = websocket
        self._namespace: dict[str, Any] | None = None
        self._nodes: dict[tuple[Callable[..., Any], str, bool], DependencyNode] = {}

    def app_scoped(self) -> list[DependencyNode]:
        """Every ``Depends(..., scope="app")`` node the plans built so far use."""
        return [node for node in self._nodes.values() if node.scope == "app"]

    def build(
        self, func: Callable[..., Any], path_params: dict[str, type],
        route_dependencies: tuple[Any, ...] = (), *, namespace: dict[str, Any] | None = None,
    ) -> DependencyNode:
        where = describe(func)
        self._namespace = namespace
        node = self._node(func, func, "request", path_params, [], where)
        shared: list[tuple[str | None, DependencyNode]] = []
        for marker in route_dependencies:
            if not isinstance(marker, Depends):
                raise TypeError(f"{where}: route dependencies must be Depends(...), "
                                f"got {marker!r}")
            dependency = self._dependency(marker, path_params, [func], where)
            shared.append((None, dependency))
            _add_raises_edge(node, dependency, marker)
            if is_security(marker):
                _add_security_edge(node, dependency, marker)
        node.dependencies[0:0] = shared  # app's, then the router's, then the route's
        check_path_parameters(in_call_order(node), path_params, where)
        return node

    def _dependency(self, marker: Depends, path_params: dict[str, type],
                    chain: list[Callable[..., Any]], where: str, optional: bool = False,
                    ) -> DependencyNode:
        key = marker.named_dependency(where)
        if key in chain:
            cycle = " → ".join(getattr(f, "__qualname__", repr(f)) for f in [*chain, key])
            raise TypeError(f"{where}: dependency cycle {cycle}")
        # "function" is a request-scoped dependency torn down before the response: one node
        # (once per request), one teardown, so every declaration must say the same
        scope = "app" if marker.scope == "app" else "request"
        first = marker.scope == "function"
        cached = self._nodes.get((key, scope, optional))
        if cached is not None:
            if scope == "request" and cached.tears_down_first != first:
                name = describe(cached.func)
                raise TypeError(
                    f"{where}: {name} is declared both with scope=\"function\" and "
                    f"scope=\"request\"; it runs once per request and is torn down once: "
                    "declare it the same way everywhere (one Annotated alias helps)")
            return cached
        runs = self.overrides.get(key, key)
        # An object may name the callable that runs in its place (a RateLimit keyed by a
        # dependency: a function of its own, whose signature asks for that key).
        func = getattr(runs, "__joey_dependency__", runs)
        node = self._node(func, key, scope, path_params, [*chain, key], where, optional)
        node.raises = raised_by(runs)
        node.tears_down_first = first
        if scope == "request" and not first and node.call_style in GENERATORS:
            refuse_later_teardown(node, where)
        if marker.scope == "app":
            for _, inner in node.dependencies:
                if inner.scope != "app":
                    raise TypeError(f"{where}: app-scoped dependency {describe(func)} cannot "
                                    f"depend on request-scoped {describe(inner.func)}")
            if node.sync_extractors or node.async_extractors:
                raise TypeError(f"{where}: app-scoped dependency {describe(func)} cannot take "
                                "request parameters")
        self._nodes[(key, scope, optional)] = node
        return node

    def _node(self, func: Callable[..., Any], key: Callable[..., Any], scope: str,
              path_params: dict[str, type], chain: list[Callable[..., Any]], where: str,
              optional: bool = False) -> DependencyNode:
        node = DependencyNode(func, key, scope, optional)
        # an instance of a class with __call__ (a security scheme): the method holds the
        # annotations (get_type_hints on the instance would read the class's attributes)
        method = inspect.getattr_static(type(func), "__call__", None)
        annotated: Any = method if inspect.isfunction(method) and not (
            inspect.isroutine(func) or isinstance(func, type)) else func
        try:
            hints = typing.get_type_hints(annotated, localns=self._namespace,
                                          include_extras=True)
            signature = inspect.signature(func)
            if isinstance(func, type):
                # a class as a dependency (FastAPI's `Depends(CommonParams)`): its parameters
                # are its __init__'s, typed there, not by the class's attributes
                hints = {**hints, **self._init_hints(func)}
                hints.pop("return", None)
        except Exception as exc:
            raise TypeError(f"{where}: cannot read the signature of {describe(func)}: {exc}"
                            ) from exc
        node.returns = hints.get("return")
        body_params: list[ParamInfo] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{where}: {describe(func)} has *args/**kwargs; handlers and "
                                "dependencies must name every parameter")
            if param.kind is param.POSITIONAL_ONLY:
                raise TypeError(f"{where}: parameter {param.name!r} of {describe(func)} is "
                                "positional-only (before a `/`); Joey passes every value by "
                                "its name: remove the `/`")
            annotation = hints.get(param.name, Any)
            default = MISSING if param.default is param.empty else param.default
            marker: Any = None
            if get_origin(annotation) is Annotated:
                base, *extras = get_args(annotation)
                markers = [e for e in extras if isinstance(e, ParamMarker | Depends)]
                if len(markers) > 1 or (markers and isinstance(default, ParamMarker | Depends)):
                    found = [*markers, default] if len(markers) == 1 else markers
                    raise TypeError(f"{where}: parameter {param.name!r} of {describe(func)} has "
                                    f"several sources {found!r}; keep one")
                if markers:
                    marker = markers[0]
                    others = [e for e in extras if e is not marker]
                    # keep msgspec.Meta constraints: Annotated[int, Meta(ge=1), Query()]
                    annotation = Annotated[(base, *others)] if others else base
            spelled_as_default = isinstance(default, Depends | ParamMarker) and marker is None
            if spelled_as_default:
                marker, default = default, MISSING  # the `x: T = Depends(fn)` spelling
            elif is_pydantic_field(default):
                raise TypeError(
                    f"{where}: parameter {param.name!r} of {describe(func)} has a pydantic "
                    f"Field as its default ({default!r}); Joey reads parameters, not model "
                    f"fields. Write `{param.name}: Annotated[T, Field(...)] = value`, or "
                    f"FastAPI's `{param.name}: T = Query(value, ge=...)`")
            alias: str | None = None
            if isinstance(marker, ParamMarker):
                alias, default = marker_values(marker, not spelled_as_default, default,
                                                where, param.name)
                annotation = with_meta(annotation, marker.meta)
            name = param.name
            if isinstance(marker, Depends):
                if marker.dependency is None:  # FastAPI's `Depends()`: the parameter's class
                    marker = marker.calling(annotated_class(
                        annotation, marker, param, where, describe(func)))
                security = is_security(marker)
                dependency = self._dependency(
                    marker, path_params, chain, where,
                    optional=security and accepts_none(annotation))
                node.dependencies.append((name, dependency))
                _add_raises_edge(node, dependency, marker)
                if security:
                    _add_security_edge(node, dependency, marker)
                continue
            annotation = normalize(annotation, where, name)
            info, extractor = self._parameter(name, annotation, default, marker, alias,
                                              path_params, where)
            node.params.append(info)
            if info.source == "query" and marker is None:
                node.implicit_query.append(info)
            if inspect.iscoroutinefunction(extractor):
                node.async_extractors.append((name, extractor))
                if info.source == "body":
                    body_params.append(info)
            else:
                node.sync_extractors.append((name, extractor))
        if len(body_params) > 1 and not all(p.key for p in body_params):
            names = [p.name for p in body_params]
            raise TypeError(f"{where}: {describe(func)} has several body parameters "
                            f"{names}; combine them into one Struct, or read each from its "
                            "own key of the body with Body(embed=True)")
        keys = [p.key for p in body_params]
        if len(set(keys)) < len(keys):
            raise TypeError(f"{where}: {describe(func)} reads the body key "
                            f"{max(keys, key=keys.count)!r} twice")
        return node

    def _init_hints(self, cls: type) -> dict[str, Any]:
        """The annotations of a class's ``__init__`` written in Python (none for dataclasses
        and Structs, whose fields are the class's annotations)."""
        init = getattr(cls, "__init__", None)
        if dataclasses.is_dataclass(cls) or not inspect.isfunction(init):
            return {}
        return typing.get_type_hints(init, localns=self._namespace, include_extras=True)

    def _parameter(self, name: str, annotation: Any, default: Any, marker: Any,
                   alias: str | None, path_params: dict[str, type], where: str,
                   ) -> tuple[ParamInfo, Any]:
        """What the parameter is (its :class:`ParamInfo`) and the extractor that reads it
        (``alias``: the name on the wire its marker gives)."""
        check_applies(annotation, where, name)
        from joey.websockets import WebSocket

        def info(source: Source, key: str = "", media_types: tuple[str, ...] = (),
                 custom: bool = False) -> ParamInfo:
            return ParamInfo(name, source, key, annotation, default, media_types, custom)

        connection_type = WebSocket if self.websocket else Request
        connection: Source = "websocket" if self.websocket else "request"
        base = base_type(annotation)
        if isinstance(base, type) and issubclass(base, HTTPConnection):
            if not issubclass(connection_type, base):
                raise TypeError(f"{where}: parameter {name!r} asks for a {base.__name__}, but "
                                f"this is a{' WebSocket' if self.websocket else 'n HTTP'} route")
            return info(connection), take_connection
        if is_channels(base):
            return info("channels"), take_channels
        if is_route_info(base):
            return info("route"), take_route
        if base is BackgroundTasks:
            if self.websocket:
                raise TypeError(f"{where}: BackgroundTasks are for HTTP routes")
            return info("background"), take_background
        if annotation is Any and marker is None and name == connection:
            return info(connection), take_connection  # an unannotated `request`/`websocket`
        if is_upload_file(base) and marker is None:
            marker = Form()
        if isinstance(marker, Header):
            check_convertible(where, name, annotation, "a header")
            parameter = info("header", (alias or name.replace("_", "-")).lower())
            return parameter, header_extractor(parameter)
        if isinstance(marker, Cookie):
            check_convertible(where, name, annotation, "a cookie")
            parameter = info("cookie", alias or name)
            return parameter, cookie_extractor(parameter)
        if isinstance(marker, Form):
            self._refuse_on_websocket(where, name, "form")
            whole = alias is None and is_structured(annotation)
            parameter = info("form", "" if whole else alias or name, FORM_MEDIA_TYPES)
            return parameter, form_extractor(parameter, whole)
        if isinstance(marker, Body) or (marker is None and name not in path_params
                                        and is_body_type(annotation)):
            self._refuse_on_websocket(where, name, "body")
            body = marker if isinstance(marker, Body) else None
            custom = body is not None and body.decoder is not None
            if alias is not None and (body is None or not body.embed):
                raise TypeError(f"{where}: parameter {name!r}: Body({alias!r}) names a key of "
                                "the body: use it with embed=True")
            key = (alias or name) if body is not None and body.embed else ""
            parameter = info("body", key, _body_media_types(base if not key else dict, custom),
                             custom)
            return parameter, body_extractor(parameter, body, where)
        if isinstance(marker, Path):
            key = alias or name
            if key not in path_params:
                raise TypeError(f"{where}: parameter {name!r} is Path(), but the route's path "
                                f"has no {{{key}}}; its path parameters: "
                                f"{sorted(path_params) or 'none'}")
            if default is not MISSING:
                raise TypeError(f"{where}: path parameter {name!r} has a default "
                                f"({default!r}); a path parameter is always sent. Remove it")
            parameter = info("path", key)
            return parameter, path_extractor(parameter, path_params[key])
        if marker is None and name in path_params:
            parameter = info("path", name)
            return parameter, path_extractor(parameter, path_params[name])
        if marker is not None and not isinstance(marker, Query):
            raise TypeError(f"{where}: unknown marker {marker!r} on parameter {name!r}")
        custom = marker is not None and marker.extractor is not None
        if not custom:  # an extractor may make anything
            check_convertible(where, name, annotation, "a query string")
        parameter = info("query", alias or name, custom=custom)
        return parameter, query_extractor(parameter, marker)

    def _refuse_on_websocket(self, where: str, name: str, what: str) -> None:
        if self.websocket:
            raise TypeError(f"{where}: parameter {name!r} reads a {what}; WebSocket routes have "
                            "no request body")


def _body_media_types(base: Any, custom: bool) -> tuple[str, ...]:
    if custom:
        return ("*/*",)
    if base is bytes:
        return ("application/octet-stream",)
    if base is str:
        return ("text/plain",)
    return JSON_MEDIA_TYPES


def _add_raises_edge(node: DependencyNode, dependency: DependencyNode, marker: Depends) -> None:
    if marker.raises:
        known = node.raises_edges.get(id(dependency), ())
        node.raises_edges[id(dependency)] = (*known, *marker.raises)


def _add_security_edge(node: DependencyNode, dependency: DependencyNode, marker: Depends) -> None:
    scopes = marker.scopes if isinstance(marker, Security) else ()
    known = node.security_edges.get(id(dependency), ())
    node.security_edges[id(dependency)] = (*known, *(s for s in scopes if s not in known))


def security_phase(root: DependencyNode, where: str) -> list[DependencyNode]:
    """The nodes of ``root``'s plan that run before the rest is read, in call order: every
    dependency reached through a security edge, and what those depend on.

    A security dependency cannot read the body: it runs before the body is read (refused
    here, at startup, naming it).
    """
    guards: set[int] = set()

    def mark(node: DependencyNode) -> None:
        if id(node) not in guards:
            guards.add(id(node))
            for _, inner in node.dependencies:
                mark(inner)

    for node in in_call_order(root):
        for _, dependency in node.dependencies:
            if id(dependency) in node.security_edges:
                mark(dependency)
    ordered = [node for node in in_call_order(root) if id(node) in guards]
    for node in ordered:
        if node.async_extractors:
            names = [name for name, _ in node.async_extractors]
            raise TypeError(
                f"{where}: security dependency {describe(node.func)} reads the request body "
                f"({', '.join(names)}); security runs before the body is read. Take the "
                "credentials from a header, cookie, query or path parameter, or make it a "
                "plain Depends(...)")
    return ordered


def in_call_order(root: DependencyNode) -> list[DependencyNode]:
    """Dependencies before their dependents, each once (the handler last)."""
    ordered: list[DependencyNode] = []
    seen: set[int] = set()

    def visit(node: DependencyNode) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for _, dependency in node.dependencies:
            visit(dependency)
        ordered.append(node)

    visit(root)
    return ordered


__all__ = [
    "DependencyNode",
    "PlanBuilder",
    "call_style",
    "in_call_order",
    "is_security",
    "security_phase",
]
