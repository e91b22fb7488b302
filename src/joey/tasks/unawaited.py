"""A forgotten ``await`` on ``enqueue`` must not look like success.

``app.tasks.enqueue(fn)`` without ``await`` queues nothing. Python says so only with a
``RuntimeWarning`` when the coroutine is garbage-collected, which nobody reads, while the
request answers 200. So ``enqueue`` returns an :class:`Enqueueing`: an awaitable that starts
the real work (the backend's coroutine) only when awaited, and that reports itself when it is
dropped without ever being awaited.

Where it is reported: a route of an app with a task queue runs its handler inside
:func:`checking_enqueues`, which collects the reports of that request; one report, and the
request fails with a 500 whose logged message names the task and says "did you forget
`await`?". Anywhere else (a script, a spawned task), the report is logged as an error. Apps
without a task queue never pay for the check.

Example::

    @app.task
    async def send_welcome(user_id: int) -> None: ...

    async def signed_up(user_id: int) -> None:
        app.tasks.enqueue(send_welcome, user_id)  # forgotten await: reported, never silent
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Any

logger = logging.getLogger("joey.tasks")

#: the reports of the request being checked (``None`` outside one)
_DROPPED: ContextVar[list[str] | None] = ContextVar("joey_unawaited_enqueues", default=None)


class NotAwaited(RuntimeError):
    """A handler called ``enqueue`` without awaiting it: the task was never queued."""


class Enqueueing(Coroutine[Any, Any, str]):
    """What ``enqueue`` returns: ``await`` it for the task id (``asyncio.create_task`` and
    ``gather`` take it too). Nothing is queued until it is awaited."""

    __slots__ = ("_coroutine", "_make", "_what")

    def __init__(self, make: Callable[[], Coroutine[Any, Any, str]], what: str) -> None:
        self._make: Callable[[], Coroutine[Any, Any, str]] | None = make
        self._coroutine: Coroutine[Any, Any, str] | None = None
        self._what = what

    def _started(self) -> Coroutine[Any, Any, str]:
        if self._coroutine is None:
            make, self._make = self._make, None
            if make is None:
                raise RuntimeError(f"{self._what} was closed before it was awaited")
            self._coroutine = make()
        return self._coroutine

    def __await__(self) -> Generator[Any, None, str]:
        return self._started().__await__()

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        coroutine = self._started()
        if val is None and tb is None:  # throw(exc): the only spelling Python 3.12+ accepts
            return coroutine.throw(typ)  # without a DeprecationWarning
        return coroutine.throw(typ, val, tb)

    def close(self) -> None:
        self._make = None  # closed on purpose: not a forgotten await
        if self._coroutine is not None:
            self._coroutine.close()

    def __del__(self) -> None:
        if self._make is not None:  # never awaited, never closed
            report(f"{self._what} was never awaited, so the task was not queued. Did you "
                   f"forget `await`? Write `await {self._what}`")

    def __repr__(self) -> str:
        return f"<Enqueueing {self._what}>"


def report(message: str) -> None:
    """Report a dropped enqueue: to the request being checked, or to the log."""
    try:
        dropped = _DROPPED.get()
        if dropped is not None:
            dropped.append(message)
        else:
            logger.error(message)
    except Exception:  # pragma: no cover - at interpreter exit (called from __del__)
        pass


def checking_enqueues(run: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """``run`` (a route's handler call), failing the request when an ``enqueue`` was dropped
    without ``await`` while it ran."""

    async def run_checking_enqueues(connection: Any) -> Any:
        dropped: list[str] = []
        token = _DROPPED.set(dropped)
        try:
            result = await run(connection)
        finally:
            _DROPPED.reset(token)
        if dropped:
            raise NotAwaited("; ".join(dropped))
        return result

    return run_checking_enqueues


__all__ = [
    "Enqueueing",
    "NotAwaited",
    "checking_enqueues",
    "report",
]
