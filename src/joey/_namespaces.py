"""What a handler's string annotations name where the route decorator was applied: with
``from __future__ import annotations``, a handler defined inside a function names that
function's locals, which ``typing.get_type_hints`` cannot see (read by :mod:`joey.routing`)."""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Callable, Sequence
from typing import Any

from joey.params.markers import Depends


def defining_namespace(func: Callable[..., Any], dependencies: Sequence[Any],
                        ) -> dict[str, Any] | None:
    """What the handler's string annotations name among the locals of the function that
    applied the route decorator, and what its dependencies' annotations name, if anything.

    With ``from __future__ import annotations``, a handler defined inside a function (a
    factory, a test) has string annotations naming that function's locals, which
    ``typing.get_type_hints`` cannot see. Only the names those annotations use are kept, so a
    route keeps neither the frame nor its other locals alive. (The locals are read only when
    an annotation names something that is not a builtin; CPython before 3.13 then keeps a
    snapshot of them until that function returns, as for ``locals()``.)
    """
    frame = sys._getframe(2)  # defining_namespace() <- decorator() <- the user's frame
    local: dict[str, Any] | None = None
    kept: dict[str, Any] = {}
    todo: list[Any] = [func, *(d.dependency for d in dependencies
                               if isinstance(d, Depends) and d.dependency is not None)]
    seen: set[int] = set()
    while todo:  # the handler, then every local function its annotations lead to
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        for name in _annotation_names(item, todo):
            if name in kept or name in _BUILTINS:
                continue
            if local is None:
                local = frame.f_locals
                if local is frame.f_globals:  # a module: annotations resolve there anyway
                    return None
            if name in local:
                kept[name] = local[name]
                todo.append(kept[name])
    return kept or None


_BUILTINS = frozenset(dir(builtins))


def _annotation_names(item: Any, dependencies: list[Any]) -> set[str]:
    """The names ``item``'s string annotations use (its ``__init__``'s or ``__call__``'s for
    a class or a callable instance); the dependencies named by ``Depends(...)`` defaults and
    evaluated annotations are added to ``dependencies``."""
    names: set[str] = set()
    method = getattr(item if isinstance(item, type) else type(item),
                     "__init__" if isinstance(item, type) else "__call__", None)
    for owner in (item, method):
        annotations = getattr(owner, "__annotations__", None)
        defaults = [*(getattr(owner, "__defaults__", None) or ()),
                    *(getattr(owner, "__kwdefaults__", None) or {}).values()]
        if not isinstance(annotations, dict):
            continue
        for annotation in annotations.values():
            if isinstance(annotation, str):
                names |= _names_in(annotation)
            else:
                defaults.extend(getattr(annotation, "__metadata__", ()))
        dependencies.extend(d.dependency for d in defaults
                            if isinstance(d, Depends) and d.dependency is not None)
    return names


def _names_in(source: str) -> set[str]:
    """The names a string annotation uses (``"Annotated[User, Depends(get_user)]"``)."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names |= _names_in(node.value)  # a nested forward reference: list["Item"]
    return names
