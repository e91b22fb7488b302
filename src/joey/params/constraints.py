"""Constraints in ``Annotated[...]``: every spelling made into the ``msgspec.Meta`` that
validation and the API document both read, or refused at startup.

Joey validates with msgspec, which reads ``msgspec.Meta`` and nothing else. A FastAPI or
pydantic user writes constraints other ways; each is translated here, once, when the plan is
built:

* a marker's keywords, ``Query(ge=1)`` (the marker made its ``Meta``: :func:`with_meta`);
* ``annotated_types``: ``Ge(1)``, ``Interval(ge=1, le=9)``, ``MinLen(2)``, ``Len(1, 5)``...
* ``pydantic.Field(ge=1, le=100, pattern=..., description=...)``.

What looks like a constraint but cannot be applied (``annotated_types.Predicate``, a pydantic
validator, ``Field(default_factory=...)``) is refused with the fix: a constraint is never
silently ignored. Nothing here runs per request.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.params.typeinfo import strip_optional

#: msgspec.Meta's fields that annotated_types and pydantic's metadata may set
_META_FIELDS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern",
                "title", "description", "examples")
#: pydantic ``Field`` arguments that map onto msgspec.Meta (``deprecated`` into its extra)
_FIELD_DOCS = ("title", "description", "examples")
_FIELD_CHECKS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern")
_CONTAINERS = (list, set, frozenset, tuple, dict, typing.Union, types.UnionType)

_FIX = ("Use Query/Header/Cookie/Path/Form(ge=..., le=..., min_length=..., max_length=..., "
        "pattern=..., multiple_of=...) or msgspec.Meta(...); check anything else in a "
        "dependency (Depends) or with Query(extractor=fn)")


def with_meta(annotation: Any, meta: msgspec.Meta | None) -> Any:
    """``annotation`` with ``meta`` on its value type (``Annotated[T, meta] | None`` for an
    optional ``T``: msgspec checks bounds on a number, not on ``int | None``)."""
    if meta is None:
        return annotation
    inner = strip_optional(annotation)
    if inner is not annotation:
        return Annotated[inner, meta] | None
    return Annotated[annotation, meta]


def normalize(annotation: Any, where: str, name: str) -> Any:
    """``annotation`` with every constraint in its ``Annotated`` metadata (at any depth: a
    ``list[Annotated[int, Ge(1)]]`` too) as a ``msgspec.Meta``; refuses, naming ``where``
    and the parameter ``name``, what cannot be applied."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extras = get_args(annotation)
        fixed_inner = normalize(inner, where, name)
        fixed = [_as_meta_or_self(extra, where, name) for extra in extras]
        value_type = strip_optional(fixed_inner)
        if value_type is not fixed_inner and any(isinstance(e, msgspec.Meta) for e in fixed):
            # `Annotated[int | None, Field(ge=1)]`: the bound is on the int (msgspec refuses
            # it on the union)
            return Annotated[(value_type, *fixed)] | None
        if fixed_inner is inner and all(a is b for a, b in zip(fixed, extras, strict=True)):
            return annotation
        return Annotated[(fixed_inner, *fixed)]
    if origin in _CONTAINERS:
        args = get_args(annotation)
        rebuilt = tuple(normalize(arg, where, name) if arg is not Ellipsis else arg
                        for arg in args)
        if all(a is b for a, b in zip(rebuilt, args, strict=True)):
            return annotation
        if origin in (typing.Union, types.UnionType):
            return functools.reduce(operator.or_, rebuilt)
        return origin[rebuilt]
    return annotation


def check_applies(annotation: Any, where: str, name: str) -> None:
    """Refuse, at startup, a constraint that does not fit the type (``min_length`` on an
    ``int``): msgspec would refuse it on every request."""
    try:
        msgspec.inspect.type_info(annotation)
    except TypeError as exc:
        if "Meta" not in str(exc) and "Can only set" not in str(exc):
            return  # not about constraints: the source's own checks say what is wrong
        raise TypeError(f"{where}: parameter {name!r}: a constraint does not fit its type "
                        f"({exc}). Remove the constraint, or change the type"
                        ) from None


def _merge(metas: list[msgspec.Meta]) -> msgspec.Meta:
    """One ``Meta`` holding what each of ``metas`` sets (a later one wins)."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for meta in metas:
        for field in (*_META_FIELDS, "tz", "extra_json_schema"):
            value = getattr(meta, field)
            if value is not None:
                fields[field] = value
        extra.update(meta.extra or {})
    return msgspec.Meta(**fields, extra=extra or None)


def _as_meta_or_self(extra: Any, where: str, name: str) -> Any:
    meta = _as_meta(extra, where, name)
    return extra if meta is None else meta


def _as_meta(extra: Any, where: str, name: str) -> msgspec.Meta | None:
    """``extra`` (one item of ``Annotated`` metadata) as a ``msgspec.Meta``; ``None`` for
    what is not a constraint (a marker, a doc string); refused when it is one Joey cannot
    apply."""
    if isinstance(extra, msgspec.Meta):
        return extra
    module = type(extra).__module__ or ""
    if module == "annotated_types":
        return _annotated_types_meta(extra, where, name)
    if module.startswith("pydantic"):
        return _pydantic_meta(extra, where, name)
    return None


def _refuse(where: str, name: str, what: Any, why: str) -> TypeError:
    return TypeError(f"{where}: parameter {name!r} has {what!r} in its Annotated metadata, "
                     f"which Joey cannot apply ({why}). {_FIX}.")


def _annotated_types_meta(extra: Any, where: str, name: str) -> msgspec.Meta | None:
    import annotated_types as at

    if isinstance(extra, at.DocInfo):
        return msgspec.Meta(description=extra.documentation)
    if isinstance(extra, at.Unit):
        return None  # documents a unit, checks nothing
    if isinstance(extra, at.Timezone):
        if extra.tz is None or extra.tz is Ellipsis:
            return msgspec.Meta(tz=extra.tz is Ellipsis)
        raise _refuse(where, name, extra, "msgspec checks whether a time has a time zone, "
                      "not which one")
    fields: dict[str, Any] = {}
    if isinstance(extra, at.GroupedMetadata) and not isinstance(extra, at.Len | at.Interval):
        raise _refuse(where, name, extra, "an unknown group of constraints")
    parts = list(extra) if isinstance(extra, at.GroupedMetadata) else [extra]
    for part in parts:
        if isinstance(part, at.Gt | at.Ge | at.Lt | at.Le | at.MultipleOf | at.MinLen
                      | at.MaxLen):
            (field,) = (f for f in _FIELD_CHECKS if hasattr(part, f))
            fields[field] = getattr(part, field)
        else:  # Predicate, Not, a subclass of BaseMetadata Joey does not know
            raise _refuse(where, name, part, "a check msgspec cannot run")
    return msgspec.Meta(**fields)


def _pydantic_meta(extra: Any, where: str, name: str) -> msgspec.Meta | None:
    from pydantic.fields import FieldInfo

    if isinstance(extra, FieldInfo):
        return _field_meta(extra, where, name)
    given = getattr(extra, "__dict__", {})
    if type(extra).__name__ == "_PydanticGeneralMetadata" and set(given) <= {"pattern"}:
        return msgspec.Meta(**given)
    raise _refuse(where, name, extra, "a pydantic validator or setting; Joey validates "
                  "parameters with msgspec")


def _field_meta(field: Any, where: str, name: str) -> msgspec.Meta:
    """The ``msgspec.Meta`` of a ``pydantic.Field(...)`` used as ``Annotated`` metadata."""
    given = set(getattr(field, "_attributes_set", {})) - {"metadata"}
    allowed = {*_FIELD_DOCS, *_FIELD_CHECKS, "deprecated"}
    unknown = sorted(given - allowed)
    if unknown:
        fix = (" (a default goes after `=`: `limit: Annotated[int, Field(ge=1)] = 10`)"
               if "default" in unknown else " (name the key with Query/Header/Cookie(alias=...))"
               if "alias" in unknown else "")
        raise _refuse(where, name, field, f"Field({', '.join(unknown)}=...) is not a "
                      f"constraint Joey reads{fix}")
    metas = [m for m in (_as_meta(item, where, name) for item in field.metadata)
             if m is not None]
    docs: dict[str, Any] = {key: getattr(field, key) for key in _FIELD_DOCS
                            if getattr(field, key, None) is not None}
    if getattr(field, "deprecated", None):  # pydantic < 2.7 has no Field(deprecated=)
        docs["extra"] = {"deprecated": True}
    if docs:
        metas.append(msgspec.Meta(**docs))
    return _merge(metas) if metas else msgspec.Meta()


__all__ = [
    "check_applies",
    "normalize",
    "with_meta",
]
