"""``ParamInfo``: one handler or dependency parameter, as the plan reads it.

The plan builds every extractor from these records, and the public route model
(:class:`joey.RouteInfo`) hands the same records out, so a tool reading the routes (an
OpenAPI document, ``joey routes``) describes exactly what requests are validated against.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from joey.params.typeinfo import MISSING, constraints

#: Where a value comes from. ``request``/``websocket``/``background``/``channels``/``route``
#: are injected by type; the others are read from the request.
Source = Literal["path", "query", "header", "cookie", "body", "form", "request", "websocket",
                 "background", "channels", "route"]

JSON_MEDIA_TYPES = ("application/json",)
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class ParamInfo(msgspec.Struct, frozen=True):
    """One parameter of a handler or dependency.

    Attributes:
        name: the Python parameter name.
        source: where the value comes from (see :data:`Source`).
        key: the name on the wire: the query key, header name (lower case), cookie name,
            path parameter or form field; ``""`` for a whole body and injected values.
        annotation: the declared type, ``Annotated`` constraints kept, markers removed.
        default: the default value, or :data:`MISSING` when the parameter is required.
        media_types: for a body or form, the content types it accepts.
        custom: ``True`` when an extractor or decoder function makes the value (its type
            then says what that function returns, not what is on the wire).
    """

    name: str
    source: Source
    key: str
    annotation: Any
    default: Any = MISSING
    media_types: tuple[str, ...] = ()
    custom: bool = False

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def constraints(self) -> tuple[msgspec.Meta, ...]:
        """The ``msgspec.Meta`` of the annotation: bounds, patterns, title, description,
        examples."""
        return constraints(self.annotation)

    @property
    def from_request(self) -> bool:
        """Whether the client sends this value (not injected by type)."""
        return self.source in ("path", "query", "header", "cookie", "body", "form")


__all__ = [
    "FORM_MEDIA_TYPES",
    "JSON_MEDIA_TYPES",
    "ParamInfo",
    "Source",
]
