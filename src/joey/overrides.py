"""``app.dependency_overrides``: swap a dependency for another, for tests mostly."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Self


class DependencyOverrides(MutableMapping[Callable[..., Any], Callable[..., Any]]):
    """``app.dependency_overrides``: ``{real: fake}``, a complete mapping.

    Every change (``[k] = v``, ``del``, ``update``, ``pop``, ``popitem``, ``setdefault``,
    ``clear``, ``|=``) makes the app rebuild its plans before the next request.
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

    def clear(self) -> None:  # one rebuild, not one per key
        if self._items:
            self._items.clear()
            self._on_change()

    def __repr__(self) -> str:
        return f"DependencyOverrides({self._items!r})"
