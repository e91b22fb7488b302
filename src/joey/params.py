"""Handler parameters: the signature is read once at startup into a plan; requests run it.

Where a parameter's value comes from, in order of precedence:

* its type: ``Request``, ``WebSocket``, ``BackgroundTasks`` and ``Channels`` are injected;
* a marker in ``Annotated[...]``: ``Query()``, ``Header()``, ``Cookie()``, ``Body()``,
  ``Form()``, ``Depends(fn)``;
* its name matching a path parameter of the route;
* its type: a structured type (msgspec ``Struct``, dataclass, ``TypedDict``, pydantic model,
  ``dict``, a list of structured values, ``bytes``) is the request body;
* otherwise, the query string (``q: str``, ``limit: int = 10``, ``tags: list[str]``).

A request runs the plan in two phases. First every value is extracted and validated, with no
user code running, and every failure is collected: the client gets one 422 that lists them
all. Then dependencies are called in order (each at most once per request) and the handler last.

Example::

    @app.get("/items/{item_id:int}")
    async def read_item(
        item_id: int,
        q: str | None = None,
        limit: Annotated[int, Meta(ge=1, le=100)] = 10,
        token: Annotated[str, Header("x-token")] = "",
        db: Annotated[Database, Depends(get_db)] = ...,
    ) -> Item: ...
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec

from joey.background import BackgroundTasks
from joey.exceptions import BadRequest, HTTPError, UnprocessableContent, UnsupportedMediaType
from joey.requests import JSON_TOO_DEEP, HTTPConnection, Request
from joey.routing import describe

_MISSING: Any = object()
logger = logging.getLogger("joey")


# --- markers ---------------------------------------------------------------------------------


class ParamMarker:
    """Base of the ``Annotated`` markers that say where a value comes from."""

    __slots__ = ("alias",)
    location = "query"

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.alias!r})" if self.alias else f"{name}()"


class Query(ParamMarker):
    """Take the value from the query string (``alias``: the key; default: the name).

    ``extractor=fn`` hands ``fn`` the whole parsed query (a :class:`joey.QueryParams`) and
    passes in what it returns; an exception it raises is a 422.
    """

    __slots__ = ("extractor",)
    location = "query"

    def __init__(
        self, alias: str | None = None, *, extractor: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(alias)
        self.extractor = extractor


class Header(ParamMarker):
    """Take the value from a request header (default name: ``x_token`` → ``x-token``)."""

    __slots__ = ()
    location = "header"


class Cookie(ParamMarker):
    """Take the value from a cookie (``alias``: the cookie name; default: the name)."""

    __slots__ = ()
    location = "cookie"


class Body(ParamMarker):
    """This parameter is the request body, decoded from JSON into its type.

    ``decoder=fn`` hands ``fn`` the raw body bytes instead (no Content-Type check) and passes
    in what it returns; an exception it raises is a 422.
    """

    __slots__ = ("decoder",)
    location = "body"

    def __init__(self, *, decoder: Callable[[bytes], Any] | None = None) -> None:
        super().__init__(None)
        self.decoder = decoder


class Form(ParamMarker):
    """The form body (urlencoded or multipart) validated into this type (a Struct,
    dataclass, TypedDict or dict), or, with ``alias``/by name on a scalar or ``UploadFile``
    parameter, one field of it."""

    __slots__ = ()
    location = "form"


class Depends:
    """A value computed by ``dependency`` (sync or async, a function or a generator).

    ``scope="request"`` (default): called at most once per request, torn down (the code
    after ``yield``) once the response has been sent. ``scope="app"``: called once at startup,
    torn down at shutdown; it may only depend on other app-scoped dependencies.

    Example::

        async def get_db() -> AsyncIterator[Session]:
            session = Session()
            try:
                yield session
            finally:
                await session.close()

        @app.get("/users")
        async def users(db: Annotated[Session, Depends(get_db)]) -> list[User]: ...
    """

    __slots__ = ("dependency", "scope")

    def __init__(
        self, dependency: Callable[..., Any], *, scope: Literal["request", "app"] = "request"
    ) -> None:
        if scope not in ("request", "app"):
            raise ValueError("Depends scope must be 'request' or 'app'")
        self.dependency = dependency
        self.scope = scope

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__qualname__', self.dependency)})"


# --- validation errors -----------------------------------------------------------------------


class ValidationIssue:
    """One failing field: where it was looked for, its name or JSON path, and what is wrong."""

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


def _split_msgspec_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``("Expected `int`, got `str`", "$.items[0].price")`` from a msgspec error."""
    text = str(exc)
    message, sep, path = text.partition(" - at `")
    return message, path.rstrip("`") if sep else "$"


# --- types ------------------------------------------------------------------------------------


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _base_type(annotation: Any) -> Any:
    annotation = _strip_optional(annotation)
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return _strip_optional(annotation)


def _is_structured(annotation: Any) -> bool:
    """Struct, dataclass, TypedDict, pydantic model, or dict: a body, not a query value."""
    base = _base_type(annotation)
    origin = get_origin(base) or base
    if origin is dict or origin is typing.Mapping:
        return True
    if not isinstance(base, type):
        return False
    return (
        issubclass(base, msgspec.Struct)
        or dataclasses.is_dataclass(base)
        or typing.is_typeddict(base)
        or _is_pydantic_model(base)
    )


def _is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


def _is_sequence(annotation: Any) -> bool:
    return get_origin(_base_type(annotation)) in (list, set, frozenset, tuple)


def _is_body_type(annotation: Any) -> bool:
    base = _base_type(annotation)
    if base is bytes or _is_structured(base):
        return True
    if _is_sequence(base):
        args = get_args(base)
        return bool(args) and _is_structured(args[0])
    return False


# --- extraction: phase one, no user code ---------------------------------------------------------

# An extractor takes the connection and the list to report problems into, returns the value.
Extractor = Callable[[Any, list[ValidationIssue]], Any]
AsyncExtractor = Callable[[Any, list[ValidationIssue]], Awaitable[Any]]


def _take_connection(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    return connection


def _take_background(request: Request, issues: list[ValidationIssue]) -> BackgroundTasks:
    tasks = BackgroundTasks()
    request.call_on_close(tasks)
    return tasks


def _converter(location: str, key: str, annotation: Any, default: Any,
               lookup: Callable[[Any], Any], many: bool) -> Extractor:
    plain = annotation is str or annotation is Any or (many and get_args(annotation) == (str,))
    plain_int = annotation is int

    def extract(connection: Any, issues: list[ValidationIssue]) -> Any:
        raw = lookup(connection)
        if raw is _MISSING or (many and not raw):
            if default is not _MISSING:
                return default
            issues.append(ValidationIssue(location, key, "Field required"))
            return None
        if plain:
            return raw
        if plain_int and raw.isascii() and raw.isdigit() and len(raw) < 19:
            return int(raw)  # perf: what msgspec would do for plain digits, 4x faster
        try:
            return msgspec.convert(raw, annotation, strict=False)
        except msgspec.ValidationError as exc:
            issues.append(ValidationIssue(location, key, _split_msgspec_error(exc)[0]))
            return None

    return extract


def _query_extractor(name: str, annotation: Any, default: Any, marker: Query | None) -> Extractor:
    if marker is not None and marker.extractor is not None:
        custom = marker.extractor

        def extract_custom(connection: Any, issues: list[ValidationIssue]) -> Any:
            try:
                return custom(connection.query)
            except HTTPError:
                raise
            except Exception as exc:
                issues.append(ValidationIssue("query", name, str(exc) or type(exc).__name__))
                return None

        return extract_custom
    key = marker.alias if marker is not None and marker.alias else name
    many = _is_sequence(annotation)
    if many:
        return _converter("query", key, annotation, default,
                          lambda c: c.query.getlist(key), True)
    return _converter("query", key, annotation, default, lambda c: c.query.get(key, _MISSING),
                      False)


def _header_extractor(name: str, annotation: Any, default: Any, marker: Header) -> Extractor:
    key = (marker.alias or name.replace("_", "-")).lower()
    if _is_sequence(annotation):
        return _converter("header", key, annotation, default,
                          lambda c: c.headers.getlist(key), True)
    return _converter("header", key, annotation, default,
                      lambda c: c.headers.get(key, _MISSING), False)


def _cookie_extractor(name: str, annotation: Any, default: Any, marker: Cookie) -> Extractor:
    key = marker.alias or name
    return _converter("cookie", key, annotation, default,
                      lambda c: c.cookies.get(key, _MISSING), False)


class _PathValue:
    """Marks an extractor that hands a path parameter over exactly as the router made it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, connection: Any, issues: list[ValidationIssue]) -> Any:
        return connection.path_params[self.name]


def takes_only_path_values(node: DependencyNode, route_params: set[str]) -> bool:
    """True when ``node``'s arguments are exactly the route's path parameters, as the router
    typed them: the request's ``path_params`` can then be passed as the keyword arguments."""
    return (
        not node.dependencies and not node.async_extractors and node.call_style == "async"
        and all(isinstance(extract, _PathValue) and extract.name == name
                for name, extract in node.sync_extractors)
        and {name for name, _ in node.sync_extractors} == route_params
    )


def _path_extractor(name: str, annotation: Any, produced: type) -> Extractor:
    # perf: the route's converter already made an int/float/UUID; convert only on mismatch
    converts = annotation is not Any and annotation is not produced
    if not converts:
        return _PathValue(name)

    def extract(connection: Any, issues: list[ValidationIssue]) -> Any:
        value = connection.path_params[name]
        if not converts:
            return value
        try:
            return msgspec.convert(value, annotation, strict=False)
        except msgspec.ValidationError as exc:
            issues.append(ValidationIssue("path", name, _split_msgspec_error(exc)[0]))
            return None

    return extract


def _is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _body_extractor(name: str, annotation: Any, default: Any, marker: Body | None,
                    where: str) -> AsyncExtractor:
    if marker is not None and marker.decoder is not None:
        decode_custom = marker.decoder

        async def extract_custom(request: Request, issues: list[ValidationIssue]) -> Any:
            body = await request.body()
            try:
                return decode_custom(body)
            except HTTPError:
                raise
            except Exception as exc:
                issues.append(ValidationIssue("body", "$", str(exc) or type(exc).__name__))
                return None

        return extract_custom

    base = _base_type(annotation)
    if base is bytes or base is str:
        async def extract_raw(request: Request, issues: list[ValidationIssue]) -> Any:
            if base is bytes:
                return await request.body()
            return await request.text()

        return extract_raw

    pydantic_model = base if _is_pydantic_model(base) else None
    try:
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            Any if pydantic_model is not None else annotation
        )
    except TypeError as exc:
        raise TypeError(f"{where}: body parameter {name!r} has a type msgspec cannot decode "
                        f"({annotation!r}): {exc}") from exc

    async def extract_json(request: Request, issues: list[ValidationIssue]) -> Any:
        body = await request.body()
        if not body:
            if default is not _MISSING:
                return default
            issues.append(ValidationIssue("body", "$", "A JSON body is required"))
            return None
        content_type = request.headers.get("content-type", "")
        if content_type != "application/json" and not _is_json_media_type(content_type):
            # Never parse a text/plain or form body as JSON: browsers send those
            # cross-origin without a preflight, which would turn this into a CSRF hole.
            raise UnsupportedMediaType(
                f"Send the body as application/json (got {content_type or 'no Content-Type'})."
            )
        try:
            value = decoder.decode(body)
        except msgspec.ValidationError as exc:
            message, path = _split_msgspec_error(exc)
            issues.append(ValidationIssue("body", path, message))
            return None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Invalid JSON body: {exc}.") from None
        except RecursionError:
            issues.append(ValidationIssue("body", "$", JSON_TOO_DEEP))
            return None
        if pydantic_model is None:
            return value
        return _validate_pydantic(pydantic_model, value, issues)

    return extract_json


def _validate_pydantic(model: Any, value: Any, issues: list[ValidationIssue]) -> Any:
    try:
        return model.model_validate(value)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        for error in errors():
            path = "$" + "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
            )
            issues.append(ValidationIssue("body", path, error["msg"]))
        return None


def _form_extractor(name: str, annotation: Any, default: Any, marker: Form,
                    whole: bool) -> AsyncExtractor:
    base = _base_type(annotation)
    key = marker.alias or name

    async def extract_form(request: Request, issues: list[ValidationIssue]) -> Any:
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise UnsupportedMediaType(
                "Send the body as application/x-www-form-urlencoded or multipart/form-data "
                f"(got {content_type or 'no Content-Type'})."
            )
        form = await request.form()
        if whole:
            data: dict[str, Any] = {}
            for field in form:
                values = form.getlist(field)
                data[field] = values if len(values) > 1 else values[0]
            try:
                if _is_pydantic_model(base):
                    return _validate_pydantic(base, data, issues)
                return msgspec.convert(data, annotation, strict=False)
            except msgspec.ValidationError as exc:
                message, path = _split_msgspec_error(exc)
                issues.append(ValidationIssue("form", path, message))
                return None
        values = form.getlist(key)
        if not values:
            if default is not _MISSING:
                return default
            issues.append(ValidationIssue("form", key, "Field required"))
            return None
        raw: Any = values if _is_sequence(annotation) else values[-1]
        if base is Any or base is str or not isinstance(raw, str | list):
            return raw
        try:
            return msgspec.convert(raw, annotation, strict=False)
        except msgspec.ValidationError as exc:
            issues.append(ValidationIssue("form", key, _split_msgspec_error(exc)[0]))
            return None

    return extract_form


# --- the plan -----------------------------------------------------------------------------------


class DependencyNode:
    """One callable in the graph (a dependency, or the handler itself) and how to call it."""

    __slots__ = (
        "async_extractors", "call_style", "dependencies", "func", "key", "scope",
        "sync_extractors",
    )

    def __init__(self, func: Callable[..., Any], key: Callable[..., Any], scope: str) -> None:
        self.func = func
        #: the function the user wrote in Depends(...) (overrides are keyed on it)
        self.key = key
        self.scope = scope
        self.sync_extractors: list[tuple[str, Extractor]] = []
        self.async_extractors: list[tuple[str, AsyncExtractor]] = []
        #: (parameter name or None for route-level dependencies, node)
        self.dependencies: list[tuple[str | None, DependencyNode]] = []
        self.call_style = _call_style(func)


def _call_style(func: Callable[..., Any]) -> str:
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
        self._nodes: dict[tuple[Callable[..., Any], str], DependencyNode] = {}

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
            shared.append((None, self._dependency(marker, path_params, [func], where)))
        node.dependencies[0:0] = shared  # app's, then the router's, then the route's
        return node

    def _dependency(self, marker: Depends, path_params: dict[str, type],
                    chain: list[Callable[..., Any]], where: str) -> DependencyNode:
        key = marker.dependency
        if key in chain:
            cycle = " → ".join(getattr(f, "__qualname__", repr(f)) for f in [*chain, key])
            raise TypeError(f"{where}: dependency cycle {cycle}")
        cached = self._nodes.get((key, marker.scope))
        if cached is not None:
            return cached
        func = self.overrides.get(key, key)
        node = self._node(func, key, marker.scope, path_params, [*chain, key], where)
        if marker.scope == "app":
            for _, inner in node.dependencies:
                if inner.scope != "app":
                    raise TypeError(f"{where}: app-scoped dependency {describe(func)} cannot "
                                    f"depend on request-scoped {describe(inner.func)}")
            if node.sync_extractors or node.async_extractors:
                raise TypeError(f"{where}: app-scoped dependency {describe(func)} cannot take "
                                "request parameters")
        self._nodes[(key, marker.scope)] = node
        return node

    def _node(self, func: Callable[..., Any], key: Callable[..., Any], scope: str,
              path_params: dict[str, type], chain: list[Callable[..., Any]], where: str
              ) -> DependencyNode:
        node = DependencyNode(func, key, scope)
        try:
            hints = typing.get_type_hints(func, localns=self._namespace, include_extras=True)
            signature = inspect.signature(func)
        except Exception as exc:
            raise TypeError(f"{where}: cannot read the signature of {describe(func)}: {exc}"
                            ) from exc
        body_params: list[str] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{where}: {describe(func)} has *args/**kwargs; handlers and "
                                "dependencies must name every parameter")
            annotation = hints.get(param.name, Any)
            default = _MISSING if param.default is param.empty else param.default
            marker: Any = None
            if get_origin(annotation) is Annotated:
                base, *extras = get_args(annotation)
                markers = [e for e in extras if isinstance(e, ParamMarker | Depends)]
                if len(markers) > 1:
                    raise TypeError(f"{where}: parameter {param.name!r} of {describe(func)} has "
                                    f"several sources {markers!r}; keep one")
                if markers:
                    marker = markers[0]
                    others = [e for e in extras if e is not marker]
                    # keep msgspec.Meta constraints: Annotated[int, Meta(ge=1), Query()]
                    annotation = Annotated[(base, *others)] if others else base
            if isinstance(default, Depends | ParamMarker) and marker is None:
                marker, default = default, _MISSING  # the `x: T = Depends(fn)` spelling
            name = param.name
            if isinstance(marker, Depends):
                node.dependencies.append((name, self._dependency(marker, path_params, chain,
                                                                 where)))
                continue
            extractor = self._extractor(func, name, annotation, default, marker, path_params,
                                        where)
            if inspect.iscoroutinefunction(extractor):
                node.async_extractors.append((name, extractor))
                if isinstance(marker, Body) or marker is None:
                    body_params.append(name)
            else:
                node.sync_extractors.append((name, extractor))
        if len(body_params) > 1:
            raise TypeError(f"{where}: {describe(func)} has several body parameters "
                            f"{body_params}; combine them into one Struct")
        return node

    def _extractor(self, func: Callable[..., Any], name: str, annotation: Any, default: Any,
                   marker: Any, path_params: dict[str, type], where: str) -> Any:
        from joey.websockets import WebSocket

        connection_type = WebSocket if self.websocket else Request
        base = _base_type(annotation)
        if isinstance(base, type) and issubclass(base, HTTPConnection):
            if not issubclass(connection_type, base):
                raise TypeError(f"{where}: parameter {name!r} asks for a {base.__name__}, but "
                                f"this is a{' WebSocket' if self.websocket else 'n HTTP'} route")
            return _take_connection
        if _is_channels(base):
            return _take_channels
        if base is BackgroundTasks:
            if self.websocket:
                raise TypeError(f"{where}: BackgroundTasks are for HTTP routes")
            return _take_background
        if annotation is Any and marker is None and name == (
            "websocket" if self.websocket else "request"
        ):
            return _take_connection  # an unannotated `request` / `websocket` parameter
        if _is_upload_file(base) and marker is None:
            marker = Form()
        if isinstance(marker, Header):
            _check_convertible(where, name, annotation, "a header")
            return _header_extractor(name, annotation, default, marker)
        if isinstance(marker, Cookie):
            _check_convertible(where, name, annotation, "a cookie")
            return _cookie_extractor(name, annotation, default, marker)
        if isinstance(marker, Form):
            self._refuse_on_websocket(where, name, "form")
            whole = marker.alias is None and _is_structured(annotation)
            return _form_extractor(name, annotation, default, marker, whole)
        if isinstance(marker, Body) or (marker is None and name not in path_params
                                        and _is_body_type(annotation)):
            self._refuse_on_websocket(where, name, "body")
            return _body_extractor(name, annotation, default,
                                   marker if isinstance(marker, Body) else None, where)
        if marker is None and name in path_params:
            return _path_extractor(name, annotation, path_params[name])
        if marker is not None and not isinstance(marker, Query):
            raise TypeError(f"{where}: unknown marker {marker!r} on parameter {name!r}")
        if marker is None or marker.extractor is None:  # an extractor may make anything
            _check_convertible(where, name, annotation, "a query string")
        return _query_extractor(name, annotation, default, marker)

    def _refuse_on_websocket(self, where: str, name: str, what: str) -> None:
        if self.websocket:
            raise TypeError(f"{where}: parameter {name!r} reads a {what}; WebSocket routes have "
                            "no request body")


def _is_channels(tp: Any) -> bool:
    # by name, so that plans never import joey.channels for apps without it
    return isinstance(tp, type) and any(
        c.__name__ == "Channels" and c.__module__ == "joey.channels.base" for c in tp.__mro__)


def _take_channels(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    return connection.app.channels


def _is_upload_file(tp: Any) -> bool:
    return isinstance(tp, type) and tp.__name__ == "UploadFile" and tp.__module__ == "joey.forms"


def _check_convertible(where: str, name: str, annotation: Any, source: str) -> None:
    """Refuse, at startup, a type that a text value (query, header, cookie) can never be."""
    if annotation is Any:
        return
    problem: str | None
    if _is_structured(annotation) or (
        _is_sequence(annotation) and any(_is_structured(a) for a in get_args(
            _base_type(annotation)))
    ):
        problem = "a structured type is a request body, not one text value"
    else:
        try:
            problem = "a type msgspec does not know" if _has_custom_type(
                msgspec.inspect.type_info(annotation)) else None
        except TypeError as exc:
            problem = str(exc)
    if problem is not None:
        raise TypeError(
            f"{where}: parameter {name!r} has type {annotation!r}, which Joey cannot read from "
            f"{source} ({problem}). Use a str, number, bool, enum, Literal, list of "
            "those; take a structure from the body (no marker, or Body()), from several "
            "parameters, or with Query(extractor=fn) or Depends(fn)."
        )


def _has_custom_type(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.CustomType):
        return True
    for attribute in ("item_type", "key_type", "value_type"):
        inner = getattr(info, attribute, None)
        if inner is not None and _has_custom_type(inner):
            return True
    return any(_has_custom_type(inner) for inner in (
        *getattr(info, "types", ()), *getattr(info, "item_types", ())))


def _order(root: DependencyNode) -> list[DependencyNode]:
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


def return_converter(
    func: Callable[..., Any], namespace: dict[str, Any] | None
) -> Callable[[Any], Any] | None:
    """When ``func``'s return annotation holds a structured type (msgspec ``Struct``,
    dataclass, ``TypedDict``, pydantic model), anywhere inside lists, tuples, sets, dicts,
    unions or ``Optional``: a function that converts what the handler returns into it,
    validating it and reading objects' attributes (an ORM row becomes the declared type).
    ``None`` for any other annotation: the value itself decides how it is sent.

    A value that already is an instance of a declared class passes through untouched, so
    the common case costs one ``isinstance``. ``Response`` members of a union are left out:
    a response returned by the handler is sent as it is.
    """
    try:
        hints = typing.get_type_hints(func, localns=namespace, include_extras=True)
    except Exception:
        return None
    target = _without_responses(hints.get("return"))
    if target is None or not _holds_structured(target):
        return None
    where = describe(func)
    if _holds(target, _is_pydantic_model):
        return _pydantic_converter(target, where)
    if _holds(target, typing.is_typeddict):
        prepare: Callable[[Any], Any] = functools.partial(_typed_dicts_from_attributes,
                                                          tp=target)
    else:
        prepare = _identity
    try:
        msgspec.inspect.type_info(target)
    except TypeError:
        return None  # a type msgspec cannot check: the value decides, as before
    exact = target if isinstance(target, type) and not typing.is_typeddict(target) else None

    def convert(value: Any) -> Any:
        if exact is not None and isinstance(value, exact):
            return value
        try:
            return msgspec.convert(prepare(value), target, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise TypeError(f"{where} returned a value that is not a valid "
                            f"{_type_name(target)}: {exc}") from exc

    return convert


def _identity(value: Any) -> Any:
    return value


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)


def _without_responses(tp: Any) -> Any:
    """The annotation without ``Response`` types (``Item | Response`` → ``Item``); ``None``
    when nothing is left to convert to."""
    from joey.responses import Response

    if tp is None or tp is Any:
        return None
    if isinstance(tp, type) and issubclass(tp, Response):
        return None
    if get_origin(tp) in (typing.Union, types.UnionType):
        kept = [a for a in get_args(tp) if not (isinstance(a, type) and issubclass(a, Response))]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else functools.reduce(lambda a, b: a | b, kept)
    return tp


def _is_structured_class(tp: Any) -> bool:
    return isinstance(tp, type) and (
        issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp)
        or typing.is_typeddict(tp) or _is_pydantic_model(tp)
    )


def _holds(tp: Any, test: Callable[[Any], bool]) -> bool:
    """Whether ``test`` is true of ``tp`` or any type inside it (containers, unions)."""
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if test(tp):
        return True
    return any(_holds(arg, test) for arg in get_args(tp) if arg is not Ellipsis)


def _holds_structured(tp: Any) -> bool:
    return _holds(tp, _is_structured_class)


def _typed_dicts_from_attributes(value: Any, tp: Any) -> Any:
    """msgspec reads attributes for Structs and dataclasses but not for ``TypedDict``: turn
    objects that stand where a TypedDict is declared into dicts of their attributes."""
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if typing.is_typeddict(tp):
        if isinstance(value, dict):
            return value
        hints = typing.get_type_hints(tp)
        return {key: _typed_dicts_from_attributes(getattr(value, key), hints[key])
                for key in hints if hasattr(value, key)}
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, set, frozenset) and args and isinstance(value, list | set | frozenset
                                                                | tuple):
        return [_typed_dicts_from_attributes(item, args[0]) for item in value]
    if origin is tuple and args and isinstance(value, list | tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return [_typed_dicts_from_attributes(item, args[0]) for item in value]
        return [_typed_dicts_from_attributes(item, arg) for item, arg in zip(value, args,
                                                                              strict=False)]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {key: _typed_dicts_from_attributes(item, args[1]) for key, item in value.items()}
    if origin in (typing.Union, types.UnionType) and value is not None:
        for arg in args:
            if typing.is_typeddict(arg) and not isinstance(value, dict):
                return _typed_dicts_from_attributes(value, arg)
    return value


def _pydantic_converter(target: Any, where: str) -> Callable[[Any], Any]:
    """pydantic types (anywhere in the annotation) are checked by pydantic itself."""
    from pydantic import TypeAdapter

    adapter: Any = TypeAdapter(target)
    exact = target if isinstance(target, type) else None

    def convert(value: Any) -> Any:
        if exact is not None and isinstance(value, exact):
            return value
        try:
            return adapter.validate_python(value, from_attributes=True)
        except Exception as exc:
            raise TypeError(f"{where} returned a value that is not a valid "
                            f"{_type_name(target)}: {exc}") from exc

    return convert


# --- running a plan: per request -----------------------------------------------------------------


class DependencyContext:
    """Per-request: dependency results and the teardowns to run after the response."""

    __slots__ = ("error", "generators")

    def __init__(self) -> None:
        self.generators: list[Any] = []
        self.error: BaseException | None = None

    async def close(self) -> None:
        """Finish every generator dependency, newest first; one failing does not stop the
        others (each failure is logged)."""
        while self.generators:
            generator = self.generators.pop()
            try:
                if inspect.isasyncgen(generator):
                    if self.error is not None:
                        await generator.athrow(self.error)
                    else:
                        await generator.__anext__()
                elif await asyncio.to_thread(_resume, generator, self.error):
                    continue  # finished, as it should
            except StopAsyncIteration:
                continue
            except BaseException as exc:
                if exc is self.error:
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


def compile_caller(root: DependencyNode, app_values: AppScopedValues) -> Caller:
    """The coroutine that runs ``root``'s plan for one connection and returns its result.

    Sync handlers run in a worker thread, so they never block the event loop.
    """
    func = root.func
    if not root.dependencies and not root.async_extractors:
        sync_extractors = root.sync_extractors
        if root.call_style == "async":
            if not sync_extractors:
                async def call_bare(connection: Any) -> Any:
                    return await func()
                return call_bare
            if len(sync_extractors) == 1 and sync_extractors[0][1] is _take_connection:
                return func  # perf: the handler itself is the caller, no extra frame

        is_async = root.call_style == "async"

        async def call_simple(connection: Any) -> Any:
            issues: list[ValidationIssue] = []
            kwargs = {name: extract(connection, issues) for name, extract in sync_extractors}
            if issues:
                raise validation_error(issues)
            if is_async:
                return await func(**kwargs)
            return await call_node(root, kwargs, None)

        return call_simple

    if not root.dependencies:
        sync_only = root.sync_extractors
        async_only = root.async_extractors

        async def call_extracting(connection: Any) -> Any:
            # perf: a body but no dependencies: no dependency context to set up (~1 µs)
            issues: list[ValidationIssue] = []
            kwargs = {name: extract(connection, issues) for name, extract in sync_only}
            for name, extract_async in async_only:
                kwargs[name] = await extract_async(connection, issues)
            if issues:
                raise validation_error(issues)
            return await call_node(root, kwargs, None)

        return call_extracting

    order = _order(root)

    async def call_full(connection: Any) -> Any:
        issues: list[ValidationIssue] = []
        arguments: dict[int, dict[str, Any]] = {}
        # Phase one: extract and validate everything; no user code runs.
        for node in order:
            if node.scope == "app":
                continue
            kwargs = {name: extract(connection, issues) for name, extract in node.sync_extractors}
            for name, extract_async in node.async_extractors:
                kwargs[name] = await extract_async(connection, issues)
            arguments[id(node)] = kwargs
        if issues:
            raise validation_error(issues)
        # Phase two: call each dependency once, in order, then the handler.
        context = DependencyContext()
        connection.call_on_close(context.close)
        connection._dependencies = context
        results: dict[int, Any] = {}
        for node in order:
            if node.scope == "app":
                results[id(node)] = await app_values.get(node)
                continue
            kwargs = arguments[id(node)]
            for dep_name, dependency in node.dependencies:
                if dep_name is not None:
                    kwargs[dep_name] = results[id(dependency)]
            results[id(node)] = await call_node(node, kwargs, context)
        return results[id(root)]

    return call_full
