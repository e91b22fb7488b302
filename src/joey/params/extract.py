"""Extraction and validation: phase one of a request's plan, where no user code runs.

An extractor takes the connection and a list to report problems into, and returns the value
for one parameter. Every failing field is reported (nothing is raised for a bad value), so the
client gets one 422 that lists them all. Extractors are built once, at startup, from a
:class:`~joey.params.info.ParamInfo`.

Each extractor declares, where it is built, the errors it can answer instead of the handler
(:func:`raising`): a 422 when the value it reads can be refused, a 400/415 for a body it
parses... The route model reads them from the plan (``RouteInfo.errors``), and the API
document from the route model: no other code decides which errors a parameter can cause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import UnionType
from typing import Annotated, Any, TypeVar, get_args, get_origin

import msgspec

from joey._json import INVALID_UTF8, JSONTooDeep, decode_json
from joey.background import BackgroundTasks
from joey.exceptions import (
    BadRequest,
    ContentTooLarge,
    HTTPError,
    UnprocessableContent,
    UnsupportedMediaType,
)
from joey.params.info import ParamInfo
from joey.params.issues import (
    ValidationIssue,
    collect_issues,
    from_msgspec,
    split_msgspec_error,
)
from joey.params.markers import Body, Query
from joey.params.typeinfo import (
    MISSING,
    base_type,
    is_pydantic_model,
    is_sequence,
    is_upload_file,
    strip_none,
    strip_optional,
)
from joey.requests import JSON_TOO_DEEP, HTTPConnection, Request


def convert_or_report(value: Any, annotation: Any, location: str, key: str,
                      issues: list[ValidationIssue]) -> Any:
    """``value`` converted to ``annotation``; on failure the problem is reported under
    ``location``/``key`` and ``None`` stands in."""
    try:
        return msgspec.convert(value, annotation, strict=False)
    except msgspec.ValidationError as exc:
        issues.append(ValidationIssue(location, key, split_msgspec_error(exc)[0]))
        return None


# An extractor takes the connection and the list to report problems into, returns the value.
Extractor = Callable[[Any, list[ValidationIssue]], Any]
AsyncExtractor = Callable[[Any, list[ValidationIssue]], Awaitable[Any]]
AnyExtractor = TypeVar("AnyExtractor", bound=Callable[..., Any])

#: The attribute that holds what a callable run for a request (an extractor, a dependency
#: such as a rate limit) declares it can answer instead of the handler.
RAISES = "__joey_raises__"


def raising(extractor: AnyExtractor, *errors: type[HTTPError] | None) -> AnyExtractor:
    """``extractor``, declaring the errors it can answer instead of the handler (``None``s
    left out: ``raising(extract, UnprocessableContent if checked else None)``). Written
    next to the code that raises them; read back with :func:`raised_by`."""
    setattr(extractor, RAISES, tuple(error for error in errors if error is not None))
    return extractor


def raised_by(obj: Any) -> tuple[type[BaseException], ...]:
    """The errors ``obj`` (an extractor, or a dependency with ``__joey_raises__``) declares
    it can answer instead of the handler; ``()`` when it declares none."""
    return tuple(getattr(obj, RAISES, ()))


#: the ``msgspec.Meta`` fields that check a value (the others only document it)
META_CHECKS = ("gt", "ge", "lt", "le", "multiple_of", "pattern", "min_length", "max_length",
               "tz")


def checked_type(annotation: Any) -> Any:
    """The type a value is really checked against: ``T`` for ``T | None``, without the
    ``msgspec.Meta`` that check nothing (``Annotated[str, Meta(description=...)]`` is
    ``str``: no value is refused for it)."""
    annotation = strip_optional(annotation)
    if get_origin(annotation) is not Annotated:
        return annotation
    inner, *extras = get_args(annotation)
    inner = checked_type(inner)
    kept = [extra for extra in extras if not isinstance(extra, msgspec.Meta)
            or any(getattr(extra, check) is not None for check in META_CHECKS)]
    return Annotated[(inner, *kept)] if kept else inner


def _takes_any_text(annotation: Any) -> bool:
    """Whether every text value (or list of them) converts to ``annotation``: ``str``,
    ``Any``, a list or set of ``str``, each maybe optional and only described."""
    checked = checked_type(annotation)
    if checked is str or checked is Any:
        return True
    return get_origin(checked) in (list, set, frozenset) and len(get_args(checked)) == 1 and (
        _takes_any_text(get_args(checked)[0]))


# --- injected by type -----------------------------------------------------------------------


def take_connection(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    return connection


def take_background(request: Request, issues: list[ValidationIssue]) -> BackgroundTasks:
    tasks = BackgroundTasks()
    request.call_on_close(tasks)
    return tasks


def take_channels(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    return connection.app.channels


def take_route(connection: HTTPConnection, issues: list[ValidationIssue]) -> Any:
    """Stands for the route's ``RouteInfo``: :func:`~joey.params.run.compile_caller` puts the
    route's own model in its place, once per route."""
    raise RuntimeError("take_route is replaced when the route is compiled")  # pragma: no cover


# --- text values: query, header, cookie -------------------------------------------------------


def _text_extractor(info: ParamInfo, lookup: Callable[[Any], Any], many: bool) -> Extractor:
    # Text is sent or absent, never null: `?n=null` for `n: int | None` is a 422, as the API
    # document says (msgspec's lax conversion alone would turn "null" into None).
    annotation, default, location, key = (strip_none(info.annotation), info.default,
                                          info.source, info.key)
    plain = annotation is str or annotation is Any or (many and get_args(annotation) == (str,))
    plain_int = annotation is int

    def extract(connection: Any, issues: list[ValidationIssue]) -> Any:
        raw = lookup(connection)
        if raw is MISSING or (many and not raw):
            if default is not MISSING:
                return default
            issues.append(ValidationIssue(location, key, "Field required"))
            return None
        if plain:
            return raw
        if plain_int and raw.isascii() and raw.isdigit() and len(raw) < 19:
            return int(raw)  # perf: what msgspec would do for plain digits, without its call
        return convert_or_report(raw, annotation, location, key, issues)

    refusable = default is MISSING or not _takes_any_text(annotation)
    return raising(extract, UnprocessableContent if refusable else None)


def query_extractor(info: ParamInfo, marker: Query | None) -> Extractor:
    if marker is not None and marker.extractor is not None:
        custom, name = marker.extractor, info.name

        def extract_custom(connection: Any, issues: list[ValidationIssue]) -> Any:
            try:
                return custom(connection.query_params)
            except HTTPError:
                raise
            except Exception as exc:
                issues.append(ValidationIssue("query", name, str(exc) or type(exc).__name__))
                return None

        return raising(extract_custom, UnprocessableContent)
    key = info.key
    if is_sequence(info.annotation):
        return _text_extractor(info, lambda c: c.query_params.getlist(key), True)
    return _text_extractor(info, lambda c: c.query_params.get(key, MISSING), False)


def header_extractor(info: ParamInfo) -> Extractor:
    key = info.key
    if is_sequence(info.annotation):
        return _text_extractor(info, lambda c: c.headers.getlist(key), True)
    return _text_extractor(info, lambda c: c.headers.get(key, MISSING), False)


def cookie_extractor(info: ParamInfo) -> Extractor:
    key = info.key
    return _text_extractor(info, lambda c: c.cookies.get(key, MISSING), False)


# --- path parameters --------------------------------------------------------------------------


class PathValue:
    """An extractor that hands a path parameter over exactly as the router made it (the
    compiler recognises it: such handlers may get ``path_params`` as keyword arguments)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, connection: Any, issues: list[ValidationIssue]) -> Any:
        return connection.path_params[self.name]


def path_extractor(info: ParamInfo, produced: type) -> Extractor:
    annotation, name = strip_none(info.annotation), info.key  # never null (see above)
    # perf: the route's converter already made an int/float/UUID; convert only on mismatch
    if annotation is Any or annotation is produced:
        return PathValue(name)

    def extract(connection: Any, issues: list[ValidationIssue]) -> Any:
        return convert_or_report(connection.path_params[name], annotation, "path", name, issues)

    # a Meta that only describes refuses nothing (404 is the router's: a segment its
    # converter refuses matches no route)
    checked = checked_type(annotation)
    refusable = checked is not Any and checked is not produced
    return raising(extract, UnprocessableContent if refusable else None)


# --- the body -----------------------------------------------------------------------------------


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def body_extractor(info: ParamInfo, marker: Body | None, where: str) -> AsyncExtractor:
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

        return raising(extract_custom, UnprocessableContent)

    annotation, default = info.annotation, info.default
    base = base_type(annotation)
    if (base is bytes or base is str) and not info.key:
        async def extract_raw(request: Request, issues: list[ValidationIssue]) -> Any:
            if base is bytes:
                return await request.body()
            return await request.text()  # 400 for an unknown charset or invalid text

        # bytes are never parsed, never invalid (the route's body limit is the route's: 413)
        return raising(extract_raw, BadRequest if base is str else None)

    pydantic_model = base if is_pydantic_model(base) else None
    target = Any if pydantic_model is not None else annotation
    embedded = info.key
    if embedded:
        # Body(embed=True): the body is an object and this parameter is one of its keys;
        # a one-field Struct made here decodes it (and locates errors at "$.key...").
        field: Any = (("value", target) if default is MISSING
                      else ("value", target, default))
        target = msgspec.defstruct(f"Body_{info.name}", [field], rename={"value": embedded})
    try:
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(target)
    except TypeError as exc:
        raise TypeError(f"{where}: body parameter {info.name!r} has a type msgspec cannot "
                        f"decode ({annotation!r}): {exc}") from exc
    if embedded:
        annotation = target

    async def extract_json(request: Request, issues: list[ValidationIssue]) -> Any:
        body = await request.body()
        if not body:
            if default is not MISSING:
                return default
            issues.append(ValidationIssue("body", "$", "A JSON body is required"))
            return None
        content_type = request.headers.get("content-type", "")
        if content_type != "application/json" and not is_json_media_type(content_type):
            # Never parse a text/plain or form body as JSON: browsers send those
            # cross-origin without a preflight, which would turn this into a CSRF hole.
            raise UnsupportedMediaType(
                f"Send the body as application/json (got {content_type or 'no Content-Type'})."
            )
        try:
            value = decoder.decode(body)
        except msgspec.ValidationError as exc:
            value = revalidate(body, annotation, exc, pydantic_model is None, issues)
            if value is MISSING:
                return None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Invalid JSON body: {exc}.") from None
        except UnicodeError:  # msgspec 0.18's word for a string that is not UTF-8 (joey._json)
            raise BadRequest(f"Invalid JSON body: {INVALID_UTF8}.") from None
        except RecursionError:  # too deep (see joey._json); perf: caught here, no call per body
            issues.append(ValidationIssue("body", "$", JSON_TOO_DEEP))
            return None
        if embedded:
            value = value.value
        if pydantic_model is None:
            return value
        return validate_pydantic(pydantic_model, value, issues, "body")

    return raising(extract_json, BadRequest, UnsupportedMediaType, UnprocessableContent)


def revalidate(body: bytes, annotation: Any, first: msgspec.ValidationError,
               integral_floats: bool, issues: list[ValidationIssue]) -> Any:
    """After the typed decode of ``body`` failed at ``first``: the value after all if only
    integral floats were wrong (and ``integral_floats`` allows them), else ``MISSING`` with
    every problem reported, not only the one msgspec stopped at. Failed requests only.

    The body is decoded again untyped and walked in Python: a body nested deeper than that
    can go (the typed decode may have stopped at its first element) is reported by
    ``first`` alone, never a ``RecursionError``.
    """
    try:
        decoded = decode_json(body)
        fixed = integral_floats_as_ints(decoded)
        reported = first
        if fixed is not decoded and integral_floats:
            try:
                return msgspec.convert(fixed, annotation)
            except msgspec.ValidationError as again:
                decoded, reported = fixed, again
        found = collect_issues(decoded, annotation, "body", reported)
    except (JSONTooDeep, RecursionError):
        found = [from_msgspec("body", first)]
    except msgspec.DecodeError as bad:  # invalid JSON after the first problem
        raise BadRequest(f"Invalid JSON body: {bad}.") from None
    issues.extend(found)
    return MISSING


def integral_floats_as_ints(value: Any) -> Any:
    """``value`` (JSON decoded untyped) with every integral float an int; ``value`` itself
    when it holds none. JSON Schema, and so the API document, counts ``1.0`` as the integer
    1; msgspec refuses it for ``int``. Only bodies that failed validation come here."""
    if type(value) is float:
        return int(value) if value.is_integer() else value
    if type(value) is list:
        items = [integral_floats_as_ints(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if type(value) is dict:
        fixed = {key: integral_floats_as_ints(item) for key, item in value.items()}
        return fixed if any(fixed[k] is not v for k, v in value.items()) else value
    return value


def validate_pydantic(model: Any, value: Any, issues: list[ValidationIssue],
                      location: str) -> Any:
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
            kind = _PYDANTIC_TYPES.get(error["type"], "invalid")
            context = error.get("ctx") if kind in _BOUNDS else None
            issues.append(ValidationIssue(location, path, error["msg"], kind, {
                key: value for key, value in context.items()
                if isinstance(value, int | float | str)} if context else None))
        return None


_BOUNDS = frozenset(("too_small", "too_large", "too_short", "too_long", "pattern", "multiple_of"))
_PYDANTIC_TYPES = {
    "missing": "missing", "extra_forbidden": "extra", "greater_than": "too_small",
    "greater_than_equal": "too_small", "less_than": "too_large", "less_than_equal": "too_large",
    "string_too_short": "too_short", "too_short": "too_short", "string_too_long": "too_long",
    "too_long": "too_long", "string_pattern_mismatch": "pattern", "multiple_of": "multiple_of",
    "enum": "enum", "literal_error": "enum", "int_type": "type", "int_parsing": "type",
    "float_type": "type", "float_parsing": "type", "string_type": "type", "bool_type": "type",
    "bool_parsing": "type", "dict_type": "type", "list_type": "type", "model_type": "type",
}


# --- forms ------------------------------------------------------------------------------------


def _form_value_kinds(annotation: Any) -> tuple[bool, bool]:
    """Whether a form parameter takes uploaded files, and whether it takes text fields."""
    base = base_type(annotation)
    if is_sequence(annotation):
        args = get_args(base)
        base = base_type(args[0]) if args else Any
    if base is Any:
        return True, True
    options = get_args(base) if isinstance(base, UnionType) else (base,)
    return (any(is_upload_file(o) for o in options),
            any(not is_upload_file(o) for o in options))


def form_extractor(info: ParamInfo, whole: bool) -> AsyncExtractor:
    """One field of the form (``whole=False``) or the whole form as a structured type."""
    annotation, default, key = info.annotation, info.default, info.key
    base = base_type(annotation)
    field_annotation = strip_none(annotation)  # one field is text: never null (see above)
    takes_files, takes_text = _form_value_kinds(annotation)
    # any text is valid: no conversion, no constraint (`Form(min_length=2)` is one)
    unchecked = (base is Any or base is str) and checked_type(field_annotation) in (Any, str)

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
            if is_pydantic_model(base):
                return validate_pydantic(base, data, issues, "body")
            try:
                return msgspec.convert(data, annotation, strict=False)
            except msgspec.ValidationError as exc:
                issues.extend(collect_issues(data, annotation, "form", exc, strict=False))
                return None
        values = form.getlist(key)
        if not values:
            if default is not MISSING:
                return default
            issues.append(ValidationIssue("form", key, "Field required"))
            return None
        # A part sent with a filename is a file, whatever the parameter asked for: a file
        # where text is wanted (or text where a file is) is the client's mistake, a 422.
        if any((not takes_text) if isinstance(v, str) else (not takes_files) for v in values):
            issues.append(ValidationIssue("form", key, "Expected a text field, got a file"
                                          if takes_text else "Expected a file, got a text field"))
            return None
        raw: Any = values if is_sequence(annotation) else values[-1]
        if unchecked or takes_files or not isinstance(raw, str | list):
            return raw
        return convert_or_report(raw, field_annotation, "form", key, issues)

    # the form parser answers 400 for a malformed body, 413 past its FormLimits (whatever the
    # route's body limit)
    refusable = whole or default is MISSING or not unchecked
    return raising(extract_form, UnsupportedMediaType, BadRequest, ContentTooLarge,
                   UnprocessableContent if refusable else None)


__all__ = [
    "META_CHECKS",
    "RAISES",
    "AsyncExtractor",
    "Extractor",
    "PathValue",
    "body_extractor",
    "checked_type",
    "convert_or_report",
    "cookie_extractor",
    "form_extractor",
    "header_extractor",
    "integral_floats_as_ints",
    "is_json_media_type",
    "path_extractor",
    "query_extractor",
    "raised_by",
    "raising",
    "revalidate",
    "take_background",
    "take_channels",
    "take_connection",
    "take_route",
    "validate_pydantic",
]
