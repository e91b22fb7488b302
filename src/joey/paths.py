"""Paths: route templates with their converters, and the path a request is routed on.

A template is ``/``-separated segments; a segment is static text or a parameter: ``{name}``
(one non-empty segment, a ``str``), ``{name:int}``, ``{name:float}``, ``{name:uuid}``, or a
final ``{name:path}`` that takes the rest of the path. :func:`parse_template` reads one once,
when a route is declared; :func:`routing_path` turns a request's scope into what the route
tree looks up. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

from joey.types import Scope

# --- converters -------------------------------------------------------------------------


class Converter:
    """Turns one path segment into a value, or refuses it (``ValueError`` → no match)."""

    name = "str"
    #: the Python type of converted values
    type: type = str
    #: lower tries first among parameters at the same position
    priority = 50

    def convert(self, segment: str) -> Any:
        if not segment:
            raise ValueError("empty segment")
        return segment

    def to_string(self, value: Any) -> str:
        text = str(value)
        if not text:
            raise ValueError(f"{value!r} is not a valid {self.name} path segment")
        return text  # a "/" inside is sent as %2F, which the router reads back as one segment


class IntConverter(Converter):
    name = "int"
    type = int
    priority = 10

    def convert(self, segment: str) -> int:
        # int() alone would accept " 7", "+7" and "1_000"; a URL segment should be plain digits.
        # (The route tree's walk has this first test inline: keep the two in step.)
        if segment.isdigit() and segment.isascii() and len(segment) <= 40:
            return int(segment)  # perf: the common case first
        body = segment[1:] if segment.startswith("-") else segment
        if not body.isascii() or not body.isdigit() or len(body) > 40:
            raise ValueError(segment)
        return int(segment)

    def to_string(self, value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not an int")
        return str(value)


class FloatConverter(Converter):
    name = "float"
    type = float
    priority = 30

    def convert(self, segment: str) -> float:
        if not segment.isascii() or "_" in segment or segment.strip() != segment:
            raise ValueError(segment)
        value = float(segment)
        if not math.isfinite(value):  # "nan", "inf" parse, but are not numbers a URL means
            raise ValueError(segment)
        return value

    def to_string(self, value: Any) -> str:
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite float")
        return repr(float(value))


class UUIDConverter(Converter):
    name = "uuid"
    type = uuid.UUID
    priority = 20

    def convert(self, segment: str) -> uuid.UUID:
        if len(segment) not in (32, 36):
            raise ValueError(segment)
        return uuid.UUID(segment)

    def to_string(self, value: Any) -> str:
        return str(uuid.UUID(str(value)))


class PathConverter(Converter):
    name = "path"
    priority = 90

    def to_string(self, value: Any) -> str:
        return str(value)


CONVERTERS: dict[str, Converter] = {
    c.name: c for c in (Converter(), IntConverter(), FloatConverter(), UUIDConverter(),
                        PathConverter())
}


# --- templates ---------------------------------------------------------------------------


class Segment:
    __slots__ = ("converter", "name", "text")

    def __init__(self, text: str, name: str | None = None, converter: Converter | None = None):
        self.text = text
        self.name = name
        self.converter = converter

    @property
    def is_param(self) -> bool:
        return self.converter is not None

    @property
    def is_catch_all(self) -> bool:
        return isinstance(self.converter, PathConverter)


_TEMPLATE_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def plain_template(template: str) -> str:
    """``/books/{id:int}`` → ``/books/{id}``: a route template as the API document and traces
    show it (the converters are Joey's, not the client's)."""
    return _TEMPLATE_PARAM.sub(lambda m: "{" + m.group(1) + "}", template)


def parse_template(path: str) -> list[Segment]:
    """Split a route template into segments, validating parameter syntax."""
    if not path.startswith("/"):
        raise ValueError(f"Route path {path!r} must start with '/'")
    if path == "/":
        return []
    segments: list[Segment] = []
    names: set[str] = set()
    parts = path[1:].split("/")
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name, _, kind = part[1:-1].partition(":")
            kind = kind or "str"
            if not name.isidentifier():
                raise ValueError(f"Route path {path!r}: {name!r} is not a valid parameter name")
            if name in names:
                raise ValueError(f"Route path {path!r}: parameter {name!r} appears twice")
            converter = CONVERTERS.get(kind)
            if converter is None:
                raise ValueError(
                    f"Route path {path!r}: unknown converter {kind!r} "
                    f"(known: {', '.join(CONVERTERS)})"
                )
            if isinstance(converter, PathConverter) and index != len(parts) - 1:
                raise ValueError(f"Route path {path!r}: {{{name}:path}} must be the last segment")
            names.add(name)
            segments.append(Segment(part, name, converter))
        elif "{" in part or "}" in part:
            raise ValueError(
                f"Route path {path!r}: a parameter must fill a whole segment, got {part!r}"
            )
        else:
            segments.append(Segment(part))
    return segments


def quote_segment(text: str, safe: str) -> str:
    return quote(text, safe=safe + "-._~!$&'()*+,;=:@")


# --- request paths ----------------------------------------------------------------------------


class BadPath(ValueError):
    """The request path cannot be routed: it does not start with ``/`` (``@admin``,
    ``evil.com/x``, absolute-form ``http://evil.com/x``), or it is not valid UTF-8 once
    percent-decoded. The app answers 400."""


def relative_path(scope: Scope, *, strict: bool = False) -> str:
    """The request path below the mount point.

    Two ASGI conventions exist for a mounted app: ``path`` already stripped of ``root_path``,
    or ``path`` still starting with it. When ``path`` starts with ``root_path`` the raw path
    (what the client sent) tells them apart, so ``/static/static/x`` under a ``/static``
    mount still means ``static/x``. A path that starts with the root's text without being
    below it (``/staticfoo`` under ``/static``) is returned whole, or, ``strict``, refused
    with :class:`BadPath`.
    """
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    rest = path[len(root):]
    if rest and not rest.startswith("/") and not root.endswith("/"):
        if strict:
            raise BadPath("The request path is not below the app's root path.")
        return path  # "/staticfoo" is not below "/static"
    raw = scope.get("raw_path")
    if raw is not None and unquote(raw.decode("latin-1")) == root + path:
        return path  # already stripped: the client really asked for root + path
    return rest


def routing_path(scope: Scope) -> tuple[str, list[str] | None]:
    """The path to route on, relative to ``root_path``, and its segments when they had to be
    decoded one by one.

    Servers percent-decode ``path`` for us, but that loses the difference between ``/`` and an
    encoded ``%2F`` inside a segment, and turns invalid UTF-8 into replacement characters. When
    ``raw_path`` has any ``%`` escape, segments are decoded from it instead, strictly.
    """
    root_path: str = scope.get("root_path", "")
    path = relative_path(scope, strict=True)
    if not path and root_path:
        path = "/"  # the mount point itself
    if path[:1] != "/":
        # Only origin-form targets are routed: "@admin" or "evil.com/x" would otherwise lose
        # their first character and land on /admin, and could smuggle a host into URLs.
        raise BadPath("The request target must be a path starting with '/'.")
    raw_path: bytes | None = scope.get("raw_path")
    if not raw_path or b"%" not in raw_path:
        return path, None
    raw_segments = raw_path.split(b"?", 1)[0].split(b"/")[1:]
    if root_path:
        raw_segments = raw_segments[root_path.count("/"):]
    try:
        segments = [unquote_to_bytes(s).decode("utf-8") for s in raw_segments]
    except UnicodeDecodeError:
        raise BadPath("The request path is not valid UTF-8 once percent-decoded.") from None
    if segments == [""]:
        segments = []
    return path, segments


__all__ = [
    "CONVERTERS",
    "BadPath",
    "Converter",
    "FloatConverter",
    "IntConverter",
    "PathConverter",
    "Segment",
    "UUIDConverter",
    "parse_template",
    "plain_template",
    "quote_segment",
    "relative_path",
    "routing_path",
]
