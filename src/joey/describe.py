"""``describe(func)``: how error messages name the user's code, with its file and line."""

from __future__ import annotations

import inspect
from typing import Any


def describe(func: Any) -> str:
    """``module.qualname (file:line)`` for error messages that point at the user's code."""
    target = inspect.unwrap(func) if callable(func) else func
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", "?")
    code = getattr(target, "__code__", None)
    if code is not None:
        # perf: the compiled code knows where it starts; inspect.getsourcelines would
        # tokenize the whole file for the same line (apps describe every handler at startup)
        return f"{module}.{name} ({code.co_filename}:{code.co_firstlineno})"
    try:
        file = inspect.getsourcefile(target) or "?"
        line = inspect.getsourcelines(target)[1]
        return f"{module}.{name} ({file}:{line})"
    except (TypeError, OSError):
        return f"{module}.{name}"


__all__ = [
    "describe",
]
