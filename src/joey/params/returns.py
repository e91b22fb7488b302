"""Return values: when a handler's return annotation holds a structured type, what it
returns is converted into that type (validated, attributes read) before it is sent.

Built once per route at startup (:func:`return_converter`); ``None`` when the annotation does
not ask for anything, so most handlers pay nothing.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from itertools import repeat
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.describe import describe
from joey.params.typeinfo import holds, is_pydantic_model, is_structured_class


def return_converter(func: Callable[..., Any], annotation: Any) -> Callable[[Any], Any] | None:
    """When ``func``'s return annotation (read with its parameters: ``annotation``) holds a
    structured type (msgspec ``Struct``, dataclass, ``TypedDict``, pydantic model), anywhere
    inside lists, tuples, sets, dicts, unions or ``Optional``: a function that converts what
    the handler returns into it, validating it and reading objects' attributes (an ORM row
    becomes the declared type). ``None`` for any other annotation: the value itself decides
    how it is sent.

    A value that already is an instance of a declared class passes through untouched, so
    the common case costs one ``isinstance``. ``Response`` members of a union are left out:
    a response returned by the handler is sent as it is.
    """
    target = _without_responses(annotation)
    if target is None or not holds(target, is_structured_class):
        return None
    where = describe(func)
    if holds(target, is_pydantic_model):
        return _pydantic_converter(target, where)
    if holds(target, typing.is_typeddict):
        prepare: Callable[[Any], Any] = functools.partial(_typed_dicts_from_attributes,
                                                          tp=target)
    else:
        prepare = _identity
    try:
        msgspec.inspect.type_info(target)
    except TypeError:
        return None  # a type msgspec cannot check: the value decides, as before
    already = _already_checker(target)

    def convert(value: Any) -> Any:
        if already is not None and already(value):
            return value
        try:
            return msgspec.convert(prepare(value), target, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise _forgot_await(where, value) or TypeError(
                f"{where} returned a value that is not a valid {_type_name(target)}: {exc}"
            ) from exc

    return convert


def sent_as_json(annotation: Any) -> Callable[[Any], bool] | None:
    """A test, built once, of whether a value a handler returned already is what its return
    annotation declares, and is sent as JSON as it is: an instance of a declared Struct or
    dataclass, or a list, ``tuple[X, ...]`` or ``dict[str, X]`` of them. The route then
    makes its ``JSONResponse`` at once, with neither the conversion nor
    :func:`~joey.responses.to_response`'s look at the type. ``None`` where there is no such
    test, or where a declared value may be sent otherwise (``X | None``: a 204; a dataclass
    that also is a ``str``, ``bytes`` or a ``Response``)."""
    target = _without_responses(annotation)
    if target is None or not holds(target, is_structured_class) or holds(
            target, is_pydantic_model):
        return None
    if get_origin(target) in (list, tuple, dict) or (
            isinstance(target, type) and issubclass(target, msgspec.Struct)):
        return _already_checker(target)  # (a Struct's subclasses all are Structs)
    if _is_plain_class(target):
        from joey.responses import Response

        if issubclass(target, (str, bytes, Response)):
            return None  # a dataclass that is text, bytes or a response: sent as that
        cls = target
        # exactly the class: a subclass of a dataclass may be a response or a str too
        return lambda value: type(value) is cls
    return None


def _already_checker(tp: Any) -> Callable[[Any], bool] | None:
    """A test, built once, of whether a value already is what ``tp`` declares, so that it
    passes through without a second conversion: an instance of a declared class, and lists,
    tuples, sets and ``dict[str, ...]`` whose items all are (``-> list[World]`` returning
    Structs costs a type check per item, not a conversion). ``None`` where the annotation
    has no such shortcut (``TypedDict``, literals, constrained types): msgspec converts."""
    if _is_plain_class(tp):
        return lambda value: isinstance(value, tp)
    origin, args = get_origin(tp), get_args(tp)
    if (origin in (list, set, frozenset) and len(args) == 1) or (
            origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        container = origin
        if _is_plain_class(args[0]):
            cls = args[0]

            def all_instances(value: Any) -> bool:
                # perf: isinstance mapped over the items, no Python call per item
                return type(value) is container and all(map(isinstance, value, repeat(cls)))

            return all_instances
        each = _already_checker(args[0])
        if each is None:
            return None

        def all_items(value: Any) -> bool:
            return type(value) is container and all(map(each, value))

        return all_items
    if origin is dict and len(args) == 2 and args[0] is str:
        item = _already_checker(args[1])
        if item is None:
            return None

        def all_values(value: Any) -> bool:
            return (type(value) is dict and all(type(key) is str for key in value)
                    and all(map(item, value.values())))

        return all_values
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        if len(members) != 1:
            return None
        inner = _already_checker(members[0])
        if inner is None:
            return None
        return lambda value: value is None or inner(value)
    return None


def _is_plain_class(tp: Any) -> bool:
    """A declared class whose instances pass through as they are (a Struct, a dataclass; not a
    TypedDict, which a plain dict stands for)."""
    return isinstance(tp, type) and is_structured_class(tp) and not typing.is_typeddict(tp)


def _forgot_await(where: str, value: Any) -> TypeError | None:
    from joey.responses import forgotten_await

    forgot = forgotten_await(value)
    return None if forgot is None else TypeError(f"{where}: {forgot}")


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
            raise _forgot_await(where, value) or TypeError(
                f"{where} returned a value that is not a valid {_type_name(target)}: {exc}"
            ) from exc

    return convert


__all__ = [
    "return_converter",
    "sent_as_json",
]
