"""The session mapping a handler sees (``request.session``), and the one of a failed load.

Kept apart from the middleware (:mod:`joey.middleware.sessions`) and the stores
(:mod:`joey.middleware.session_stores`), so that neither needs itsdangerous to be imported.
"""

from __future__ import annotations

import copy
from typing import Any


class Session(dict[str, Any]):
    """The session mapping handlers see: a dict that knows whether it was changed.

    Changes through dict methods are noticed at once. A value changed in place
    (``session["cart"].append(item)``) is noticed too, by comparing lists and dicts with a copy
    taken when the session was loaded.

    ``regenerate_id()`` asks for a fresh session id (with a store), which is what to do after
    a login so that an id planted before it (session fixation) is worthless.
    """

    __slots__ = ("_modified", "_regenerate", "_snapshot")

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self._modified = False
        self._regenerate = False
        # Only mutable values can change behind our back; copy just those.
        self._snapshot = {
            key: copy.deepcopy(value)
            for key, value in self.items()
            if isinstance(value, list | dict)
        }

    @property
    def modified(self) -> bool:
        """True when the session differs from what the request brought."""
        if self._modified or self._regenerate:
            return True
        return any(self.get(key) != value for key, value in self._snapshot.items())

    def regenerate_id(self) -> None:
        """Use a new session id from this response on (the data is kept)."""
        self._regenerate = True

    @property
    def regenerating(self) -> bool:
        """True once :meth:`regenerate_id` was called for this response."""
        return self._regenerate

    def __setitem__(self, key: str, value: Any) -> None:
        self._modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        self._modified = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self._modified = self._modified or key in self
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._modified = True
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._modified = True
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self._modified = True
        super().update(other)
        return self


class UnavailableSession(Session):
    """The session of a request whose store failed to load it: any use raises the failure.

    So the error surfaces in the handler that needs the session, where the app's exception
    handlers turn it into a response, and a request that never touches it is served as usual.
    """

    __slots__ = ("_error",)

    def __init__(self, error: Exception) -> None:
        dict.__init__(self)  # not Session.__init__: it would read the (failing) items
        self._error = error
        self._modified = self._regenerate = False
        self._snapshot: dict[str, Any] = {}

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error.with_traceback(None)  # a fresh traceback at each use

    def __repr__(self) -> str:
        return f"<Session unavailable: {self._error!r}>"

    modified = property(_fail)


for _name in (
    "__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__len__",
    "__reversed__", "__eq__", "__ne__", "__or__", "__ror__", "__ior__", "get", "keys", "values",
    "items", "pop", "popitem", "setdefault", "update", "clear", "copy", "regenerate_id",
    "regenerating",
):
    setattr(UnavailableSession, _name, UnavailableSession._fail)


__all__ = [
    "Session",
    "UnavailableSession",
]
