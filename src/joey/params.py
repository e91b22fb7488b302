"""Handler parameters: the signature is read once at startup into a plan; requests run it.

A parameter gets its value from, in order of precedence:

* its annotation: ``Request`` (and, later, ``WebSocket`` and ``BackgroundTasks``) are injected;
* an explicit marker in ``Annotated[...]``: ``Query()``, ``Header()``, ``Cookie()``;
* its name matching a path parameter of the route;
* otherwise, the query string (``q: str``, ``limit: int = 10``, ``tags: list[str]``).

Values are converted and validated with msgspec; every failure is collected, then answered as
one 422 listing each field with its location, so a client sees all its mistakes at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.exceptions import UnprocessableContent
from joey.requests import HTTPConnection, Request
from joey.routing import describe

_MISSING: Any = object()


class ParamMarker:
    """Base of the ``Annotated`` markers that say where a value comes from."""

    location = "query"
    __slots__ = ("alias",)

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias


class Query(ParamMarker):
    """Take the value from the query string (``alias`` is the key, default: the name)."""

    __slots__ = ()
    location = "query"


class Header(ParamMarker):
    """Take the value from a request header (default name: ``x_token`` → ``x-token``)."""

    __slots__ = ()
    location = "header"


class Cookie(ParamMarker):
    """Take the value from a cookie (``alias`` is the cookie name, default: the name)."""

    __slots__ = ()
    location = "cookie"


class ValidationIssue:
    """One failing field: where it was looked for, its name, and what is wrong."""

    __slots__ = ("location", "message", "name")

    def __init__(self, location: str, name: str, message: str) -> None:
        self.location = location
        self.name = name
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"loc": self.location, "name": self.name, "message": self.message}


def validation_error(issues: list[ValidationIssue]) -> UnprocessableContent:
    count = len(issues)
    return UnprocessableContent(
        f"{count} parameter{'s' if count != 1 else ''} failed validation.",
        extra={"errors": [issue.to_dict() for issue in issues]},
    )


def _readable(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `int`, got `str`"; the "- at `$...`" suffix names a JSON path
    # that is only meaningful for bodies.
    return str(exc).split(" - at `$", 1)[0]


Extractor = Callable[[Any, list[ValidationIssue]], Any]


def _scalar_extractor(
    location: str, key: str, annotation: Any, default: Any, lookup: Callable[[Request], Any],
    is_list: bool,
) -> Extractor:
    converts = annotation is not str and annotation is not Any

    def extract(request: Request, issues: list[ValidationIssue]) -> Any:
        raw = lookup(request)
        if raw is _MISSING or (is_list and not raw):
            if default is not _MISSING:
                return default
            issues.append(ValidationIssue(location, key, "Field required"))
            return None
        if not converts:
            return raw
        try:
            return msgspec.convert(raw, annotation, strict=False)
        except msgspec.ValidationError as exc:
            issues.append(ValidationIssue(location, key, _readable(exc)))
            return None

    return extract


def _is_list_type(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, set, frozenset, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_type(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


class HandlerPlan:
    """How to call one handler: which value goes to which parameter."""

    __slots__ = ("extractors", "func", "is_async", "kind")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - an instance with async __call__
        )
        self.extractors: list[tuple[str, Extractor]] = []
        #: "none" (no parameters), "request" (only the request), or "full"
        self.kind = "none"


def build_plan(
    func: Callable[..., Any], path_param_names: set[str], *, websocket: bool = False
) -> HandlerPlan:
    """Read ``func``'s signature into a plan. Raises ``TypeError`` naming the handler."""
    plan = HandlerPlan(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise TypeError(f"Cannot read the type hints of {describe(func)}: {exc}") from exc
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"{describe(func)}: *args/**kwargs parameters are not supported in handlers"
            )
        annotation = hints.get(param.name, Any)
        default = _MISSING if param.default is param.empty else param.default
        marker: ParamMarker | None = None
        if get_origin(annotation) is Annotated:
            base, *extras = get_args(annotation)
            for extra in extras:
                if isinstance(extra, ParamMarker):
                    marker = extra
            if marker is not None:
                # keep msgspec.Meta constraints: Annotated[int, Meta(ge=1), Query()] → int+Meta
                others = [e for e in extras if not isinstance(e, ParamMarker)]
                annotation = Annotated[(base, *others)] if others else base
        plan.extractors.append(
            (param.name, _extractor_for(func, param.name, annotation, default, marker,
                                        path_param_names, websocket))
        )
    if not plan.extractors:
        plan.kind = "none"
    elif len(plan.extractors) == 1 and plan.extractors[0][1] is _take_request:
        plan.kind = "request"
    else:
        plan.kind = "full"
    return plan


def _take_request(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    return connection


def _extractor_for(
    func: Callable[..., Any], name: str, annotation: Any, default: Any,
    marker: ParamMarker | None, path_param_names: set[str], websocket: bool,
) -> Extractor:
    from joey.websockets import WebSocket

    connection_type = WebSocket if websocket else Request
    if isinstance(annotation, type) and issubclass(annotation, HTTPConnection):
        if not issubclass(connection_type, annotation):
            raise TypeError(
                f"{describe(func)}: parameter {name!r} asks for a {annotation.__name__}, but "
                f"this is a{' WebSocket' if websocket else 'n HTTP'} route"
            )
        return _take_request
    if annotation is Any and marker is None and name == (
        "websocket" if websocket else "request"
    ):
        return _take_request  # an unannotated `request`/`websocket` parameter
    if marker is None and name in path_param_names:
        converts = annotation is not Any

        def from_path(request: Request, issues: list[ValidationIssue]) -> Any:
            value = request.path_params[name]
            if not converts:
                return value
            try:
                return msgspec.convert(value, annotation, strict=False)
            except msgspec.ValidationError as exc:
                issues.append(ValidationIssue("path", name, _readable(exc)))
                return None

        return from_path
    location = marker.location if marker is not None else "query"
    is_list = _is_list_type(annotation)
    if location == "header":
        key = (marker.alias if marker and marker.alias else name.replace("_", "-")).lower()

        def lookup(request: Request) -> Any:
            if is_list:
                return request.headers.getlist(key)
            return request.headers.get(key, _MISSING)

    elif location == "cookie":
        key = marker.alias if marker and marker.alias else name

        def lookup(request: Request) -> Any:
            return request.cookies.get(key, _MISSING)

    else:
        key = marker.alias if marker and marker.alias else name

        def lookup(request: Request) -> Any:
            if is_list:
                return request.query.getlist(key)
            return request.query.get(key, _MISSING)

    return _scalar_extractor(location, key, annotation, default, lookup, is_list)


def make_caller(plan: HandlerPlan) -> Callable[[Any], Awaitable[Any]]:
    """A coroutine function that extracts the arguments and calls the handler.

    Sync handlers run in a worker thread so they never block the event loop.
    """
    func = plan.func
    extractors = plan.extractors
    if plan.is_async:
        if plan.kind == "none":
            async def call_none(request: Request) -> Any:
                return await func()
            return call_none
        if plan.kind == "request":
            return func  # perf: the handler itself is the caller, no extra frame

    async def call(request: Request) -> Any:
        issues: list[ValidationIssue] = []
        kwargs = {name: extract(request, issues) for name, extract in extractors}
        if issues:
            raise validation_error(issues)
        if plan.is_async:
            return await func(**kwargs)
        return await asyncio.to_thread(functools.partial(func, **kwargs))

    return call
