"""``app.dependency_overrides``: swap a dependency for another, for tests mostly.

Overrides are the one part of an app's declarations that is not frozen when the app starts
(see :mod:`joey.declarations`): tests set and unset them around requests. The plans a route
runs are compiled with the overrides in place (an override has its own parameters, its own
security phase), so a change makes the app that owns this mapping compile its engine again,
from the same frozen declarations, before its next request. Nothing is looked up per
request, and nothing but the owning app is told: no router or other app holds a reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Self


class DependencyOverrides(MutableMapping[Callable[..., Any], Callable[..., Any]]):
    """``app.dependency_overrides``: ``{real: fake}``, a complete mapping.

    Every change (``[k] = v``, ``del``, ``update``, ``pop``, ``popitem``, ``setdefault``,
    ``clear``, ``|=``), before or after startup, makes the app compile its plans again before
    its next request.

    Example::

        def get_db() -> str:
            return "postgresql://prod"

        def fake_db() -> str:
            return "sqlite://"

        app.dependency_overrides[get_db] = fake_db
        ...                                   # requests see fake_db
        del app.dependency_overrides[get_db]  # and get_db again
    """

    __slots__ = ("_items", "_on_change")

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._items: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._on_change = on_change

    def __getitem__(self, key: Callable[..., Any]) -> Callable[..., Any]:
        return self._items[key]

    def __setitem__(self, key: Callable[..., Any], value: Callable[..., Any]) -> None:
        self._items[key] = value
        self._on_change()

    def __delitem__(self, key: Callable[..., Any]) -> None:
        del self._items[key]
        self._on_change()

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __ior__(self, other: Mapping[Callable[..., Any], Callable[..., Any]]) -> Self:
        self.update(other)
        return self

    def clear(self) -> None:  # one recompile, not one per key
        if self._items:
            self._items.clear()
            self._on_change()

    def replace(self, items: Mapping[Callable[..., Any], Callable[..., Any]]) -> None:
        """Make the contents ``items`` (``app.dependency_overrides = {...}`` does this)."""
        if items is not self:
            self._items = dict(items)
            self._on_change()

    def __repr__(self) -> str:
        return f"DependencyOverrides({self._items!r})"


__all__ = [
    "DependencyOverrides",
]
