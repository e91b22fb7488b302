"""The WebSocket path: find the route, run its handler, close the socket whatever happens.

A handler that raises before accepting refuses the handshake (1008, the server answers 403);
after accepting, the socket is closed with 1011 and the error logged with the handler's name.
An ``HTTPError`` before accepting (invalid parameters, a missing credential) is the client's:
the handshake is refused with the error's problem response, as HTTP would answer, where the
server supports ``websocket.http.response`` (elsewhere a plain 403), and nothing is logged.
A handler that returns without closing closes with 1000.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from joey._engine.connections import OpenConnections, quietly
from joey._engine.errors import record_unhandled
from joey._engine.mount import handle_mount
from joey._engine.tree import RouteTree
from joey.describe import describe
from joey.exceptions import HTTPError, WebSocketDisconnect
from joey.paths import BadPath, routing_path
from joey.responses import ProblemResponse
from joey.routing import Route
from joey.types import Receive, Scope, Send
from joey.websockets import WebSocket, WebSocketState

logger = logging.getLogger("joey")


async def serve_websocket(app: Any, tree: RouteTree, connections: OpenConnections,
                          scope: Scope, receive: Receive, send: Send) -> None:
    try:
        path, segments = routing_path(scope)
        match = tree.lookup(path, segments)
    except BadPath:
        match = None
    if match is not None and match.endpoint is None and match.mount is not None:
        await handle_mount(match.mount, scope, receive, send)
        return
    compiled = match.endpoint.websocket if match is not None and match.endpoint else None
    websocket = WebSocket(scope, receive, send, app, match.params if match else {})
    if compiled is None:
        # No route: refuse before accepting (the server answers the handshake with 403).
        await websocket.close(1008)
        return
    route, handler = compiled
    connections.add_websocket(websocket)
    try:
        await run_handler(route, handler, websocket, path)
    except BaseException:
        await finish(websocket, connections)
        raise
    await finish(websocket, connections)


async def run_handler(route: Route, handler: Callable[[WebSocket], Awaitable[Any]],
                      websocket: WebSocket, path: str) -> None:
    """Run the handler; close the socket as the module docstring says, whatever happens."""
    try:
        await handler(websocket)
    except WebSocketDisconnect:
        pass
    except OSError:
        logger.debug("WebSocket %s: the peer went away while we were sending", path)
    except HTTPError as exc:
        if websocket.connection_state is not WebSocketState.CONNECTING:
            await failed(route, websocket, exc)
            return
        # Before the handshake, an HTTPError (a parameter that fails validation, a query that
        # is not UTF-8, a missing credential) is the client's doing: refused with the answer
        # HTTP would give, not logged as the handler's failure.
        logger.debug("WebSocket %s refused before accepting: %s", path, exc.detail)
        await quietly(websocket.deny(ProblemResponse.from_error(exc)))
    except Exception as exc:
        await failed(route, websocket, exc)
    else:
        if websocket.connection_state is not WebSocketState.CLOSED:
            await quietly(websocket.close(1000))


async def failed(route: Route, websocket: WebSocket, exc: Exception) -> None:
    """The handler failed: log it, refuse the handshake (1008) or close with 1011."""
    record_unhandled(websocket.scope, exc)  # before the close a test client waits for
    where = describe(route.endpoint)
    if websocket.connection_state is WebSocketState.CONNECTING:
        logger.error("WebSocket handler %s failed before accepting; refusing the "
                     "connection", where, exc_info=exc)
        await quietly(websocket.close(1008))
    else:
        logger.error("WebSocket handler %s failed; closing with 1011", where, exc_info=exc)
        await quietly(websocket.close(1011))


async def finish(websocket: WebSocket, connections: OpenConnections) -> None:
    """After the handler, even a failed one. (Not a ``finally:`` with an ``await``, which the
    compiled build mishandles: see "Compiled build" in docs/deployment.md.)"""
    if websocket.cleanups is not None:
        await websocket.run_cleanups()
    connections.remove_websocket(websocket)
