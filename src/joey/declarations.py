"""Declarations that freeze: what an app and its routers collect until the app starts.

An app compiles its declarations once, when it starts (its lifespan startup, its first request,
or :meth:`joey.App.freeze`). From then on its routes, included routers, mounts, middleware,
lifespan hooks and exception handlers are frozen, and so are those of every router it
includes: a late change would never reach the compiled app, so it is refused with
:class:`LateDeclaration`, which says what to do instead. ``app.dependency_overrides`` is not a
declaration: it may change at any time (see :class:`joey.overrides.DependencyOverrides`).

The lists and dicts below are plain ones until frozen; nothing on the request path uses them.

Example::

    app = App()
    app.freeze()                      # what the lifespan startup does

    try:
        @app.get("/late")             # declare routes before the app starts
        async def late() -> str:
            return "never served"
    except LateDeclaration as refused:
        print(refused)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self, SupportsIndex, TypeVar

from joey.describe import describe

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class LateDeclaration(RuntimeError):
    """A declaration (a route, router, mount, middleware, hook, exception handler, option)
    made or changed after the app it belongs to started and compiled its declarations."""


def refusal(subject: str, advice: str) -> str:
    """The message of a :class:`LateDeclaration`: what was refused, and what to do instead."""
    return (f"Cannot change {subject}: the app has started, and an app compiles its "
            "declarations once, when it starts (lifespan startup, first request or "
            f"app.freeze()). {advice} before the app starts; in tests, build a new App (and "
            "Routers) instead of changing a started one. Only app.dependency_overrides may "
            "change after startup.")


class DeclaredList(list[T]):
    """A list of declarations (routes, middleware, hooks...) that refuses changes once frozen."""

    __slots__ = ("_refusal",)

    def __init__(self, items: Iterable[T] = ()) -> None:
        super().__init__(items)
        self._refusal: str | None = None

    @classmethod
    def frozen(cls, items: Iterable[T], message: str) -> DeclaredList[T]:
        """``items`` frozen: itself if it is a :class:`DeclaredList`, else a frozen copy."""
        declared = items if isinstance(items, DeclaredList) else cls(items)
        declared._refusal = message
        return declared

    def __reduce__(self) -> tuple[Any, ...]:  # a copy (or an unpickled one) is open again
        return (DeclaredList, (list(self),))

    def _check(self, *items: Any) -> None:
        if self._refusal is not None:
            added = ", ".join(describe(item) if callable(item) else repr(item)
                              for item in items)
            raise LateDeclaration(f"{added} refused. {self._refusal}" if added else
                                  self._refusal)

    def append(self, item: T) -> None:
        self._check(item)
        super().append(item)

    def extend(self, items: Iterable[T]) -> None:
        items = list(items)
        self._check(*items)
        super().extend(items)

    def insert(self, index: SupportsIndex, item: T) -> None:
        self._check(item)
        super().insert(index, item)

    def __iadd__(self, items: Iterable[T]) -> Self:  # type: ignore[override,misc]
        self.extend(items)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check(value)
        super().__setitem__(index, value)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        self._check()
        super().__delitem__(index)

    def __imul__(self, times: SupportsIndex) -> Self:
        self._check()
        return super().__imul__(times)

    def remove(self, item: T) -> None:
        self._check()
        super().remove(item)

    def pop(self, index: SupportsIndex = -1) -> T:
        self._check()
        return super().pop(index)

    def clear(self) -> None:
        self._check()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._check()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._check()
        super().reverse()


class DeclaredDict(dict[K, V]):
    """A dict of declarations (exception handlers) that refuses changes once frozen."""

    __slots__ = ("_refusal",)

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self._refusal: str | None = None

    @classmethod
    def frozen(cls, items: Any, message: str) -> DeclaredDict[K, V]:
        """``items`` frozen: itself if it is a :class:`DeclaredDict`, else a frozen copy."""
        declared = items if isinstance(items, DeclaredDict) else cls(items)
        declared._refusal = message
        return declared

    def __reduce__(self) -> tuple[Any, ...]:  # a copy (or an unpickled one) is open again
        return (DeclaredDict, (dict(self),))

    def _check(self) -> None:
        if self._refusal is not None:
            raise LateDeclaration(self._refusal)

    def __setitem__(self, key: K, value: V) -> None:
        self._check()
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self._check()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self._check()
        return super().__ior__(other)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._check()
        super().update(*args, **kwargs)

    def setdefault(self, *args: Any) -> Any:
        self._check()
        return super().setdefault(*args)

    def pop(self, *args: Any) -> Any:
        self._check()
        return super().pop(*args)

    def popitem(self) -> tuple[K, V]:
        self._check()
        return super().popitem()

    def clear(self) -> None:
        self._check()
        super().clear()


class Frozen:
    """An object of declarations (an app, a router) that freezes: once
    :meth:`freeze_declarations` ran, its lists and dicts named in ``declared_attributes``
    refuse changes, and none of those attributes can be assigned again."""

    declared_attributes: ClassVar[frozenset[str]] = frozenset()
    _owner: str | None = None  # set when frozen: how refusals name this object

    @property
    def frozen(self) -> bool:
        """Whether the declarations are frozen (an app that holds them has started)."""
        return self._owner is not None

    def freeze_declarations(self, owner: str) -> None:
        """Freeze (once); ``owner`` names this object in refusals (``"the app"``). Declared
        attributes that are themselves :class:`Frozen` (an app's router) freeze too."""
        if self._owner is not None:
            return
        object.__setattr__(self, "_owner", owner)
        for name in sorted(self.declared_attributes):
            value = getattr(self, name)
            what = _WORDS.get(name, name.replace("_", " "))
            message = refusal(f"the {what} of {owner}", f"Declare {what}")
            if isinstance(value, list):
                object.__setattr__(self, name, DeclaredList.frozen(value, message))
            elif isinstance(value, dict):
                object.__setattr__(self, name, DeclaredDict.frozen(value, message))
            elif isinstance(value, Frozen):
                value.freeze_declarations(owner)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._owner is not None and name in self.declared_attributes:
            raise LateDeclaration(refusal(f"{name!r} of {self._owner}", f"Set {name}"))
        object.__setattr__(self, name, value)


_WORDS = {"children": "included routers", "asgi_middleware": "ASGI middleware"}


__all__ = [
    "DeclaredDict",
    "DeclaredList",
    "Frozen",
    "LateDeclaration",
    "refusal",
]
