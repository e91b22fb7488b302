"""Questions about annotations that decide where a parameter's value comes from.

Pure functions of a type, used when plans are built (never per request).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

import msgspec

#: "no default": the parameter is required
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


def strip_optional(annotation: Any) -> Any:
    """``T`` from ``T | None`` (and ``Optional[T]``); anything else unchanged."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def accepts_none(annotation: Any) -> bool:
    """Whether ``None`` is one of the union's members (``A | B | None`` too)."""
    return get_origin(annotation) in (typing.Union, types.UnionType) and any(
        a is type(None) for a in get_args(annotation))


def strip_none(tp: Any) -> Any:
    """``T`` from ``T | None`` also under ``Annotated`` (constraints kept): a query, header,
    cookie, path or form value is either sent or absent, never ``null``. What such a value is
    converted into, and what the API document says it is."""
    if get_origin(tp) is Annotated:
        inner, *extras = get_args(tp)
        return Annotated[(strip_none(inner), *extras)]
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(args) < len(get_args(tp)):
            return args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
    return tp


def base_type(annotation: Any) -> Any:
    """The type under ``Optional`` and ``Annotated``: ``Annotated[int, Meta()] | None`` → int."""
    annotation = strip_optional(annotation)
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return strip_optional(annotation)


def is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


def is_structured_class(tp: Any) -> bool:
    """A msgspec Struct, dataclass, TypedDict or pydantic model class."""
    return isinstance(tp, type) and (
        issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp)
        or typing.is_typeddict(tp) or is_pydantic_model(tp)
    )


def is_structured(annotation: Any) -> bool:
    """Struct, dataclass, TypedDict, pydantic model, or dict (or a union of them, such as
    tagged Structs ``Cat | Dog``): a body, not a query value."""
    base = base_type(annotation)
    origin = get_origin(base) or base
    if origin is dict or origin is typing.Mapping:
        return True
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(base) if a is not type(None)]
        return bool(members) and all(is_structured(member) for member in members)
    return is_structured_class(base)


def is_sequence(annotation: Any) -> bool:
    return get_origin(base_type(annotation)) in (list, set, frozenset, tuple)


def is_body_type(annotation: Any) -> bool:
    """What a parameter without a marker reads from the body: bytes, a structured type, or a
    sequence of structured values."""
    base = base_type(annotation)
    if base is bytes or is_structured(base):
        return True
    if is_sequence(base):
        args = get_args(base)
        return bool(args) and is_structured(args[0])
    return False


def is_upload_file(tp: Any) -> bool:
    # by name, so that plans never import joey.uploads for apps without it
    return isinstance(tp, type) and tp.__name__ == "UploadFile" and tp.__module__ == "joey.uploads"


def is_channels(tp: Any) -> bool:
    # by name, so that plans never import joey.channels for apps without it
    return isinstance(tp, type) and any(
        c.__name__ == "Channels" and c.__module__ == "joey.channels.hub" for c in tp.__mro__)


def is_route_info(tp: Any) -> bool:
    # by name: joey.routeinfo is made from plans, so plans cannot import it
    return isinstance(tp, type) and tp.__name__ == "RouteInfo" and tp.__module__ == (
        "joey.routeinfo")


def has_custom_type(info: Any) -> bool:
    """Whether a msgspec type description holds a type msgspec cannot convert text into."""
    if isinstance(info, msgspec.inspect.CustomType):
        return True
    for attribute in ("item_type", "key_type", "value_type"):
        inner = getattr(info, attribute, None)
        if inner is not None and has_custom_type(inner):
            return True
    return any(has_custom_type(inner) for inner in (
        *getattr(info, "types", ()), *getattr(info, "item_types", ())))


def holds(tp: Any, test: Callable[[Any], bool]) -> bool:
    """Whether ``test`` is true of ``tp`` or any type inside it (containers, unions)."""
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if test(tp):
        return True
    return any(holds(arg, test) for arg in get_args(tp) if arg is not Ellipsis)


def constraints(annotation: Any) -> tuple[msgspec.Meta, ...]:
    """The ``msgspec.Meta`` objects of an ``Annotated`` type (bounds, patterns, docs...)."""
    found: list[msgspec.Meta] = []
    annotation = strip_optional(annotation)
    while get_origin(annotation) is Annotated:
        annotation, *extras = get_args(annotation)
        found.extend(extra for extra in extras if isinstance(extra, msgspec.Meta))
        annotation = strip_optional(annotation)
    return tuple(found)


__all__ = [
    "MISSING",
    "accepts_none",
    "base_type",
    "constraints",
    "has_custom_type",
    "holds",
    "is_body_type",
    "is_channels",
    "is_pydantic_model",
    "is_route_info",
    "is_sequence",
    "is_structured",
    "is_structured_class",
    "is_upload_file",
    "strip_none",
    "strip_optional",
]
