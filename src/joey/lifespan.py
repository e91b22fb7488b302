"""Startup and shutdown: hooks, the lifespan context manager, long-running tasks, mounted apps.

Order at startup:

1. mounted ASGI apps get their own ``lifespan.startup`` (in the order they were mounted);
2. the startup hooks of the app and of every included router, in registration order;
3. app-scoped dependencies (``Depends(fn, scope="app")``) are created;
4. the ``lifespan=`` context manager is entered (what it yields becomes ``app.state``);
5. the background task queue starts.

Shutdown runs the same steps in reverse, after closing open WebSockets (1001) and cancelling
the tasks started with :meth:`LifespanManager.spawn`. A failing shutdown step is logged and
the others still run.

A server that does not speak the lifespan protocol still gets a working app: routes are built
on the first request, but no startup or shutdown hook runs. Call ``await app.startup()`` and
``await app.shutdown()`` yourself in that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from joey.describe import describe
from joey.types import ASGIApp, Message, Scope

logger = logging.getLogger("joey")


class LifespanFailed(RuntimeError):
    """A startup or shutdown step failed; the message names the step and the error."""


class LifespanDriver:
    """Drives the ASGI lifespan protocol against another app, as a server would.

    Used for apps mounted inside a Joey app, and by the test client.
    """

    def __init__(self, app: ASGIApp, state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.state: dict[str, Any] = state if state is not None else {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def startup(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                        "state": self.state}
        self._task = asyncio.ensure_future(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._next_message()
        if message is None:  # the app does not do lifespan (it raised or returned): fine
            self.supported = False
            return
        if message["type"] == "lifespan.startup.failed":
            raise LifespanFailed(message.get("message") or "startup failed")

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._next_message()
        await asyncio.gather(self._task, return_exceptions=True)
        if message is not None and message["type"] == "lifespan.shutdown.failed":
            raise LifespanFailed(message.get("message") or "shutdown failed")

    async def _next_message(self) -> Message | None:
        assert self._task is not None
        message = await next_message(self._from_app, self._task)
        if message is not None:
            return message
        if not self._task.cancelled() and self._task.exception() is not None:
            logger.debug("Mounted app %s does not support lifespan: %r", describe(self.app),
                         self._task.exception())
        return None


async def next_message(
    messages: asyncio.Queue[Message], app_task: asyncio.Task[None]
) -> Message | None:
    """The app's next message, or None if the app's task ended without sending one."""
    getter = asyncio.ensure_future(messages.get())
    await asyncio.wait({getter, app_task}, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    return None


async def call_hook(hook: Callable[[], Any]) -> None:
    """Call a sync or async hook."""
    result = hook()
    if inspect.isawaitable(result):
        await result


class LifespanManager:
    """Runs an app's startup and shutdown steps and owns the tasks they start."""

    def __init__(self) -> None:
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._undo: list[tuple[str, Callable[[], Any]]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.started = False

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Start a long-running task (a ``while True`` loop, a poller) that lives until
        shutdown, where it is cancelled and awaited: no leaked or "destroyed but pending"
        tasks.

        Example::

            async def poll_prices_forever() -> None:
                while True:
                    await asyncio.sleep(60)

            @app.on_startup
            async def start_poller() -> None:
                app.spawn(poll_prices_forever())
        """
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
        task.add_done_callback(_log_task_failure)
        return task

    async def run_step(
        self, label: str, start: Callable[[], Any], undo: Callable[[], Any] | None
    ) -> None:
        """Run one startup step; remember how to undo it at shutdown."""
        try:
            await call_hook(start)
        except Exception as exc:
            raise LifespanFailed(f"Startup step {label} failed: {exc!r}") from exc
        if undo is not None:
            self._undo.append((label, undo))

    def add_undo(self, label: str, undo: Callable[[], Any]) -> None:
        """Remember ``undo`` (sync or async) to run at shutdown, in reverse order of adding."""
        self._undo.append((label, undo))

    async def enter_context(
        self, label: str, context: contextlib.AbstractAsyncContextManager[Any]
    ) -> Any:
        if self._exit_stack is None:
            self._exit_stack = contextlib.AsyncExitStack()
        try:
            value = await self._exit_stack.enter_async_context(context)
        except Exception as exc:
            raise LifespanFailed(f"Startup step {label} failed: {exc!r}") from exc
        stack = self._exit_stack
        self._exit_stack = None
        self._undo.append((label, stack.aclose))
        return value

    async def shutdown(self) -> list[str]:
        """Cancel spawned tasks, then undo every startup step in reverse order.

        Returns the failures (each was logged); an empty list means a clean shutdown.
        """
        failures: list[str] = []
        spawned = list(self._spawned)
        for task in spawned:
            task.cancel()
        if spawned:
            await asyncio.gather(*spawned, return_exceptions=True)
        while self._undo:
            label, undo = self._undo.pop()
            try:
                await call_hook(undo)
            except Exception as exc:
                logger.error("Shutdown step %s failed", label, exc_info=exc)
                failures.append(f"{label}: {exc!r}")
        self.started = False
        return failures


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Long-running task %s failed", task.get_name(), exc_info=task.exception())


__all__ = [
    "LifespanDriver",
    "LifespanFailed",
    "LifespanManager",
    "call_hook",
    "next_message",
]
