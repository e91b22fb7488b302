"""Validation issues: what a 422 tells the client, typed, so nobody parses English.

Each :class:`ValidationIssue` says where the bad value is (``location``, a list such as
``["body", "user", "email"]`` or ``["query", "limit"]``), a stable ``type`` (``missing``,
``type``, ``too_small``, ``too_large``, ``too_short``, ``too_long``, ``pattern``,
``multiple_of``, ``enum``, ``extra``, ``invalid``), the message, and the ``constraint``
that failed where one applies (``{"ge": 1}``). A missing field is located at the field
itself, not at the object that lacks it.

msgspec stops at the first problem in a JSON body. :func:`collect_issues` finds the others:
it runs only after a body has failed (a valid request never pays for it), walking the
declared type field by field and converting each value on its own.

The problem document keeps the members it always had (``loc``: where Joey looked; ``name``:
the key or JSON path; ``message``) and adds ``location``, ``type`` and ``constraint``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.exceptions import UnprocessableContent

Location = tuple[str | int, ...]


class ValidationIssue:
    """One failing value.

    Attributes:
        source: where Joey looked: ``path``, ``query``, ``header``, ``cookie``, ``body``,
            ``form`` (the problem document's ``loc``).
        name: the key on the wire, or for a body or whole form a JSON path (``$.user.email``).
        message: what is wrong, in English.
        type: a stable, machine-readable kind (see the module docstring).
        location: ``(source, key...)``: ``("body", "items", 0, "price")``.
        constraint: the failed bound or pattern (``{"ge": 1}``), or ``None``.
    """

    __slots__ = ("constraint", "location", "message", "name", "source", "type")

    def __init__(self, source: str, name: str, message: str, type: str | None = None,
                 constraint: dict[str, Any] | None = None) -> None:
        kind, found = classify(message)
        self.source = source
        self.name = name
        self.message = message
        self.type = type or kind
        self.constraint = constraint if constraint is not None else found
        self.location: Location = (source, *json_path_parts(name)) if name.startswith("$") else (
            (source, name) if name else (source,))

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"loc": self.source, "name": self.name, "message": self.message,
                                 "type": self.type, "location": list(self.location)}
        if self.constraint is not None:
            entry["constraint"] = self.constraint
        return entry

    def __repr__(self) -> str:
        return f"ValidationIssue({list(self.location)!r}, {self.type!r}, {self.message!r})"


class RequestValidationError(UnprocessableContent):
    """The 422 for a request whose values failed validation; ``issues`` lists each one.

    An exception handler that reshapes errors reads ``exc.issues`` (typed
    :class:`ValidationIssue` objects), never the messages::

        @app.exception_handler(RequestValidationError)
        async def by_field(request: Request, exc: RequestValidationError) -> Response:
            fields = {".".join(map(str, i.location[1:])): i.type for i in exc.issues}
            return JSONResponse({"errors": fields}, status_code=422)
    """

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        count = len(issues)
        super().__init__(
            f"{count} parameter{'s' if count != 1 else ''} failed validation.",
            extra={"errors": [issue.to_dict() for issue in issues]},
        )


def validation_error(issues: list[ValidationIssue]) -> RequestValidationError:
    """The 422 listing every issue."""
    return RequestValidationError(issues)


# --- reading msgspec's messages (failures only) ----------------------------------------------

_FIELD = re.compile(r"field `([^`]*)`")
_NUMBER = r"(-?[0-9][0-9.e+-]*)"
_RULES: tuple[tuple[re.Pattern[str], str, str | None], ...] = (
    (re.compile(r"^Object missing required field"), "missing", None),
    (re.compile(r"^(Field required|A JSON body is required)"), "missing", None),
    (re.compile(r"^Object contains unknown field"), "extra", None),
    (re.compile(r"of length >= " + _NUMBER), "too_short", "min_length"),
    (re.compile(r"of length <= " + _NUMBER), "too_long", "max_length"),
    (re.compile(r"` >= " + _NUMBER), "too_small", "ge"),
    (re.compile(r"` > " + _NUMBER), "too_small", "gt"),
    (re.compile(r"` <= " + _NUMBER), "too_large", "le"),
    (re.compile(r"` < " + _NUMBER), "too_large", "lt"),
    (re.compile(r"multiple of " + _NUMBER), "multiple_of", "multiple_of"),
    (re.compile(r"matching regex '(.*)'$"), "pattern", "pattern"),
    (re.compile(r"^Invalid enum value"), "enum", None),
    (re.compile(r"^Expected `[^`]*`, got"), "type", None),
    (re.compile(r"^Expected `[^`]*` of length"), "type", None),
)


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # pragma: no cover - msgspec prints numbers


def classify(message: str) -> tuple[str, dict[str, Any] | None]:
    """The issue type of a msgspec message, and the constraint it names."""
    for pattern, kind, constraint in _RULES:
        found = pattern.search(message)
        if found is not None:
            if constraint is None:
                return kind, None
            value = found.group(1)
            return kind, {constraint: value if constraint == "pattern" else _number(value)}
    return "invalid", None


_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def json_path_parts(path: str) -> list[str | int]:
    """``["items", 0, "price"]`` from ``$.items[0].price``."""
    parts: list[str | int] = []
    for key, index in _PART.findall(path[1:]):
        parts.append(key if key else (int(index) if index.isdigit() else index))
    return parts


def split_msgspec_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``("Expected `int`, got `str`", "$.items[0].price")`` from a msgspec error."""
    text = str(exc)
    message, sep, path = text.partition(" - at `")
    return message, path.rstrip("`") if sep else "$"


def from_msgspec(source: str, exc: msgspec.ValidationError, base: str = "$",
                 ) -> ValidationIssue:
    """The issue for a msgspec error (at ``base``, a JSON path, inside the value)."""
    message, relative = split_msgspec_error(exc)
    path = base + relative[1:]
    if message.startswith(("Object missing required field", "Object contains unknown field")):
        field = _FIELD.search(message)
        if field is not None:
            path = f"{path}.{field.group(1)}"  # at the field itself, not its parent
    return ValidationIssue(source, path, message)


# --- every issue of a JSON value -------------------------------------------------------------


def collect_issues(value: Any, annotation: Any, source: str, first: msgspec.ValidationError,
                   strict: bool = True) -> list[ValidationIssue]:
    """Every problem of ``value`` (decoded JSON) against ``annotation``, not only ``first``
    (the one msgspec stopped at). Runs only on the failure path."""
    issues: list[ValidationIssue] = []
    _walk(value, annotation, "$", source, issues, strict)
    if not issues:  # pragma: no cover - the walk reports at least what msgspec found
        issues.append(from_msgspec(source, first))
    return issues


def _walk(value: Any, annotation: Any, path: str, source: str,
          issues: list[ValidationIssue], strict: bool) -> None:
    try:
        msgspec.convert(value, annotation, strict=strict)
        return
    except msgspec.ValidationError as exc:
        error = exc
    except (TypeError, ValueError):  # pragma: no cover - the decoder was built from this type
        return
    found = len(issues)
    base = annotation
    while get_origin(base) is Annotated:
        base = get_args(base)[0]
    fields = _fields(base)
    origin = get_origin(base) or base
    if fields is not None and isinstance(value, dict):
        names, forbid = fields
        for wire, (field_type, required) in names.items():
            if wire in value:
                _walk(value[wire], field_type, f"{path}.{wire}", source, issues, strict)
            elif required:
                issues.append(ValidationIssue(source, f"{path}.{wire}",
                                              f"Object missing required field `{wire}`",
                                              "missing"))
        if forbid:
            for key in value:
                if key not in names:
                    issues.append(ValidationIssue(source, f"{path}.{key}",
                                                  f"Object contains unknown field `{key}`",
                                                  "extra"))
    elif origin in (list, set, frozenset) and isinstance(value, list) and get_args(base):
        (item_type,) = get_args(base)
        for index, item in enumerate(value):
            _walk(item, item_type, f"{path}[{index}]", source, issues, strict)
    elif origin is dict and isinstance(value, dict) and len(get_args(base)) == 2:
        value_type = get_args(base)[1]
        for key, item in value.items():
            _walk(item, value_type, f"{path}.{key}", source, issues, strict)
    if len(issues) == found:  # nothing inside failed (a bound on the whole value, a union,
        # a tagged type, __post_init__): what msgspec said, located inside this value
        issues.append(from_msgspec(source, error, path))


def _fields(tp: Any) -> tuple[dict[str, tuple[Any, bool]], bool] | None:
    """A structured class's fields on the wire: ``{wire name: (type, required)}`` and
    whether unknown fields are refused; ``None`` for anything else."""
    if not isinstance(tp, type):
        return None
    if issubclass(tp, msgspec.Struct):
        config = tp.__struct_config__
        return ({f.encode_name: (f.type, f.required) for f in msgspec.structs.fields(tp)},
                bool(config.forbid_unknown_fields))
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        return ({f.name: (hints.get(f.name, Any), f.default is dataclasses.MISSING
                          and f.default_factory is dataclasses.MISSING)
                 for f in dataclasses.fields(tp)}, False)
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        required = getattr(tp, "__required_keys__", frozenset(hints))
        return {name: (hint, name in required) for name, hint in hints.items()}, False
    return None


__all__ = [
    "Location",
    "RequestValidationError",
    "ValidationIssue",
    "classify",
    "collect_issues",
    "from_msgspec",
    "json_path_parts",
    "split_msgspec_error",
    "validation_error",
]
