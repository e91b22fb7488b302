"""Work that runs after the response has been sent.

Example::

    import msgspec

    from joey import BackgroundTasks

    class NewUser(msgspec.Struct):
        email: str

    def send_welcome_email(email: str) -> None: ...

    @app.post("/signup")
    async def signup(user: NewUser, tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(send_welcome_email, user.email)
        return {"status": "ok"}
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, ParamSpec

P = ParamSpec("P")
logger = logging.getLogger("joey")


class BackgroundTasks:
    """Functions run in order once the response's last byte has gone out.

    A sync function runs in a worker thread. A failure is logged on the ``joey`` logger and
    the next function still runs; the response already sent is never changed.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def add_task(self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Queue ``func(*args, **kwargs)`` to run after the response."""
        self._tasks.append((func, args, kwargs))

    def __len__(self) -> int:
        return len(self._tasks)

    async def __call__(self) -> None:
        for func, args, kwargs in self._tasks:
            try:
                if inspect.iscoroutinefunction(func):
                    await func(*args, **kwargs)
                else:
                    result = await asyncio.to_thread(functools.partial(func, *args, **kwargs))
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                logger.exception("Background task %s failed", getattr(func, "__qualname__", func))


__all__ = [
    "BackgroundTasks",
]
