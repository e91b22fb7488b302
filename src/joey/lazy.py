"""Lazy exports and deprecated names: a package's optional names load from their module on
first use, so importing the package stays small and each optional part needs only its own
extras; an old name still resolves, to the new object, with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str,
    namespace: dict[str, Any],
    table: Mapping[str, str],
    *,
    deprecated: Mapping[str, str] | None = None,
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: a name in ``table`` is imported from the
    module it maps to, kept in ``namespace`` (the package's globals), and returned.

    A name in ``deprecated`` (old name → current name) warns, then returns what the current
    name gives. It is never cached, so every use warns (Python's filters show it once per
    place in the caller's code).

    Example::

        __getattr__ = lazy_attributes(__name__, globals(), {"serve": "joey.server"},
                                      deprecated={"ContentTooLarge": "ContentTooLarge"})
    """
    renamed = dict(deprecated or {})

    def __getattr__(name: str) -> Any:
        current = renamed.get(name)
        if current is not None:
            warnings.warn(
                f"{package}.{name} is deprecated: use {package}.{current} (the old name is an "
                "alias that will be removed; see docs/errors.md#deprecated-names)",
                DeprecationWarning,
                stacklevel=2,
            )
            return namespace[current] if current in namespace else __getattr__(current)
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


__all__ = [
    "lazy_attributes",
]
