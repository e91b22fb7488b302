"""What is open right now: WebSocket handlers and streaming responses, ended at shutdown.

One registry per app, kept across rebuilds of the engine: a connection opened before a route
was added is still closed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from joey.websockets import WebSocket, WebSocketState

logger = logging.getLogger("joey")


class OpenConnections:
    """The app's open WebSockets and streams."""

    def __init__(self) -> None:
        self._websockets: dict[WebSocket, asyncio.Event] = {}
        self._streams: set[asyncio.Task[Any]] = set()
        self._end_streams: asyncio.Future[None] | None = None

    # -- WebSockets -------------------------------------------------------------------------

    @property
    def websockets(self) -> int:
        """How many WebSocket handlers are running right now."""
        return len(self._websockets)

    def add_websocket(self, websocket: WebSocket) -> asyncio.Event:
        """Count ``websocket`` as open; set the returned event when its handler is done."""
        done = asyncio.Event()
        self._websockets[websocket] = done
        return done

    def remove_websocket(self, websocket: WebSocket) -> None:
        self._websockets.pop(websocket).set()

    async def close_websockets(self, code: int, timeout: float) -> None:  # noqa: ASYNC109
        """Close every open WebSocket with ``code`` and wait up to ``timeout`` seconds for
        their handlers to finish."""
        waiters = []
        for websocket, done in list(self._websockets.items()):
            if websocket.connection_state is WebSocketState.CONNECTED:
                await quietly(websocket.close(code, "Server shutting down"))
            waiters.append(done.wait())
        if waiters:
            try:
                await asyncio.wait_for(asyncio.gather(*waiters), timeout)
            except TimeoutError:
                logger.warning("%d WebSocket handler(s) still running after %.1fs at shutdown",
                               len(self._websockets), timeout)

    # -- streams ------------------------------------------------------------------------------

    def watch_stream(self) -> asyncio.Future[None]:
        """Count the current task as an open stream until it ends; the returned future
        completes when streams must end (:meth:`close_streams`)."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        end = self._end_streams
        if end is None or end.get_loop() is not task.get_loop():
            end = self._end_streams = task.get_loop().create_future()
        return end

    async def close_streams(self, timeout: float) -> None:  # noqa: ASYNC109
        """Tell every open streaming response to end and wait up to ``timeout`` seconds for
        them to finish."""
        end = self._end_streams
        if end is None or end.get_loop() is not asyncio.get_running_loop():
            end = self._end_streams = asyncio.get_running_loop().create_future()
        if not end.done():
            end.set_result(None)
        if self._streams:
            _, running = await asyncio.wait(set(self._streams), timeout=timeout)
            if running:
                logger.warning("%d stream(s) still open after %.1fs at shutdown",
                               len(running), timeout)

    def reopen_streams(self) -> None:
        """After a restart of the app, streams may run again."""
        self._end_streams = None


async def quietly(closing: Awaitable[None]) -> None:
    """Await a close that may fail because the peer is already gone."""
    with contextlib.suppress(OSError, RuntimeError):
        await closing


class OpenConnectionsAPI:
    """The app's methods for its open WebSockets and streams (:class:`~joey.App` has them;
    the server's shutdown and streaming responses call them)."""

    @property
    def _connections(self) -> OpenConnections:
        return self._lifecycle.connections  # type: ignore[attr-defined,no-any-return]

    @property
    def open_websockets(self) -> int:
        """How many WebSocket handlers are running right now."""
        return self._connections.websockets

    async def close_websockets(self, code: int = 1001, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Close every open WebSocket with ``code`` (1001: going away) and wait up to
        ``timeout`` seconds for their handlers to finish. Used at shutdown."""
        await self._connections.close_websockets(code, timeout)

    def watch_stream(self) -> asyncio.Future[None]:
        """Count the current task as an open stream until it ends; the returned future
        completes when streams must end (:meth:`close_streams`). Streaming responses call this."""
        return self._connections.watch_stream()

    async def close_streams(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Tell every open streaming response to end (an SSE stream sends its last event)
        and wait up to ``timeout`` seconds for them to finish. Used at shutdown."""
        await self._connections.close_streams(timeout)
