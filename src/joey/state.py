"""``State``: an attribute bag for what the app and each request carry (``app.state.db``).

Backed by a plain dict, so that the app's state can become the ASGI lifespan ``state`` the
server copies into every request. Its attribute tricks (``__getattr__``, ``__setattr__``
writing through ``object.__setattr__``) are plain Python: this module stays interpreted in the
compiled build (it is off the hot path: ``request.state`` is built on use).
"""

from __future__ import annotations

from typing import Any


class State:
    """An attribute bag: ``app.state.db = pool``; ``request.state.user``.

    Backed by a plain dict so it can share the ASGI lifespan ``state`` mapping.
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", data if data is not None else {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"State has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def __repr__(self) -> str:
        return f"State({self._data!r})"


def state_mapping(state: State) -> dict[str, Any]:
    """The dict behind ``state`` (its attributes are its items)."""
    data: dict[str, Any] = state._data
    return data


def bind_state(state: State, mapping: dict[str, Any]) -> None:
    """Make ``state`` live in ``mapping`` from now on, keeping what it held: the app's state
    becomes the ASGI lifespan ``state``, which the server copies into every request."""
    mapping.update(state._data)
    object.__setattr__(state, "_data", mapping)


__all__ = [
    "State",
    "bind_state",
    "state_mapping",
]
