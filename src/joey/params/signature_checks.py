"""The startup checks of a signature the plan reads (:mod:`joey.params.plan`): a marker's alias
and default by how it was written, a type a text value can never be, a misspelt path
parameter, ``Depends()`` without a function, teardowns in an impossible order. Each refuses
with a ``TypeError`` naming the handler and the fix."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Protocol, get_args, get_origin

import msgspec

from joey.describe import describe
from joey.params.info import ParamInfo
from joey.params.markers import UNSET, Depends, ParamMarker
from joey.params.typeinfo import MISSING, base_type, has_custom_type, is_sequence, is_structured


class Planned(Protocol):
    """What these checks read of a :class:`~joey.params.plan.DependencyNode`."""

    @property
    def func(self) -> Callable[..., Any]: ...
    @property
    def scope(self) -> str: ...
    @property
    def call_style(self) -> str: ...
    @property
    def tears_down_first(self) -> bool: ...
    @property
    def params(self) -> list[ParamInfo]: ...
    @property
    def implicit_query(self) -> list[ParamInfo]: ...
    @property
    def dependencies(self) -> Sequence[tuple[str | None, Planned]]: ...


GENERATORS = ("generator", "async_generator")


def refuse_later_teardown(node: Planned, where: str) -> None:
    """A generator torn down after the response cannot use what one torn down before it
    (``scope="function"``) made: its teardown would find it closed. Its value may reach it
    through plain functions, so those are looked through."""
    stack = [inner for _, inner in node.dependencies]
    while stack:
        inner = stack.pop()
        if inner.tears_down_first and inner.call_style in GENERATORS:
            raise TypeError(
                f"{where}: {describe(node.func)} is torn down after the response, but depends "
                f"on {describe(inner.func)}, declared with scope=\"function\" and torn down "
                f"before the response: declare "
                f"{getattr(node.func, '__name__', 'it')} with scope=\"function\" too")
        if inner.scope == "request" and inner.call_style not in GENERATORS:
            stack.extend(dependency for _, dependency in inner.dependencies)


def marker_values(marker: ParamMarker, annotated: bool, default: Any, where: str,
                   name: str) -> tuple[str | None, Any]:
    """The alias and default a marker gives, by how it was written (see
    :class:`~joey.params.markers.ParamMarker`): its first argument is the alias in
    ``Annotated[T, Query("q")]``, the default in ``x: T = Query(10)``."""
    alias = marker.alias
    where = f"{where}: parameter {name!r}"
    if not annotated:  # FastAPI's spelling: `limit: int = Query(10, ge=1)`
        given = marker.positional if marker.positional is not UNSET else marker.default
        return alias, MISSING if given is UNSET or given is Ellipsis else given
    if marker.default is not UNSET:
        raise TypeError(f"{where}: {marker!r} in Annotated sets a default; write the default "
                        f"after `=`: `{name}: Annotated[T, {type(marker).__name__}()] = value`")
    first = marker.positional
    if first is UNSET:
        return alias, default
    if not isinstance(first, str):
        kind = type(marker).__name__
        raise TypeError(
            f"{where}: {marker!r} in Annotated: there, a marker's first argument is the name on "
            f"the wire (its alias), and {first!r} is not a name. Write the default after `=`: "
            f"`{name}: Annotated[T, {kind}()] = {first!r}`, or FastAPI's "
            f"`{name}: T = {kind}({first!r})`")
    if alias is not None:
        raise TypeError(f"{where}: {marker!r} names the alias twice; keep alias=")
    return first, default


def check_path_parameters(nodes: Sequence[Planned], path_params: dict[str, type],
                          where: str) -> None:
    """Refuse a route whose path has a ``{name}`` that no parameter of its plan takes while
    a parameter is read from the query string by default: most likely a misspelt path
    parameter (``taskid`` for ``{task_id}``), which would answer every request with a 422
    about a missing query parameter."""
    taken = {p.key for node in nodes for p in node.params if p.source == "path"}
    untaken = [name for name in path_params if name not in taken]
    implicit = [p.name for node in nodes for p in node.implicit_query]
    if not untaken or not implicit:
        return
    pairs = [(name, (difflib.get_close_matches(name, implicit, 1, 0) or implicit)[0])
             for name in untaken]
    path, parameter = min(pairs, key=lambda pair: -difflib.SequenceMatcher(
        None, *pair).ratio())
    raise TypeError(
        f"{where}: the route's path has {{{path}}}, which no parameter takes, and parameter "
        f"{parameter!r} is read from the query string because no path parameter has its name. "
        f"To take the path parameter, rename {parameter!r} to {path!r} (or write "
        f"`{parameter}: Annotated[T, Path({path!r})]`); if {parameter!r} really is a query "
        f"parameter, say so: `{parameter}: Annotated[T, Query()]`")


def is_pydantic_field(value: Any) -> bool:
    return type(value).__name__ == "FieldInfo" and type(value).__module__.startswith("pydantic")


def check_convertible(where: str, name: str, annotation: Any, source: str) -> None:
    """Refuse, at startup, a type that a text value (query, header, cookie) can never be."""
    if annotation is Any:
        return
    problem: str | None
    if is_structured(annotation) or (
        is_sequence(annotation) and any(is_structured(a) for a in get_args(
            base_type(annotation)))
    ):
        problem = "a structured type is a request body, not one text value"
    else:
        try:
            problem = "a type msgspec does not know" if has_custom_type(
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


def annotated_class(annotation: Any, marker: Depends, param: inspect.Parameter, where: str,
                     owner: str) -> type:
    """The class ``Depends()`` without a function calls: the parameter's annotation, when it
    is a class that can be called."""
    base = annotation
    while get_origin(base) is Annotated:
        base = get_args(base)[0]
    if param.annotation is param.empty:
        problem = "has no annotation"
    elif base is Any or not isinstance(base, type):  # (Any is a class since Python 3.11)
        problem = f"is annotated {base!r}, which is not a class"
    elif getattr(base, "_is_protocol", False):
        problem = f"is annotated {base.__qualname__}, a Protocol, which cannot be called"
    elif inspect.isabstract(base):
        problem = f"is annotated {base.__qualname__}, an abstract class, which cannot be called"
    else:
        return base
    spelled = type(marker).__name__
    raise TypeError(
        f"{where}: parameter {param.name!r} of {owner} takes {spelled}() without a function, "
        f"which calls the parameter's class, but it {problem}: name what makes the value, "
        f"`{param.name}: Annotated[T, {spelled}(get_value)]`")


__all__ = [
    "GENERATORS",
    "Planned",
    "annotated_class",
    "check_convertible",
    "check_path_parameters",
    "is_pydantic_field",
    "marker_values",
    "refuse_later_teardown",
]
