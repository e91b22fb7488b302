"""WebSocket connections.

The connection is a small state machine, written here as data. The app side moves:

    CONNECTING --accept()--------------------> CONNECTED
    CONNECTING --close() / deny()------------> CLOSED      (refused: 403 or a real response)
    CONNECTED  --close() / peer disconnects--> CLOSED

Receiving and sending are allowed in CONNECTED (anything else is a clear ``RuntimeError``),
except that a receive once the socket is closed, by either side, raises
:class:`WebSocketDisconnect` with the close code.

Example::

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"[{room}] {text}")
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from joey._json import JSONTooDeep, decode_json
from joey.datastructures import encode_header
from joey.exceptions import WebSocketDisconnect
from joey.requests import HTTPConnection
from joey.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from joey.responses import Response


class WebSocketState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


# (state, action) -> next state. Anything not listed is refused with a RuntimeError.
_TRANSITIONS: dict[tuple[WebSocketState, str], WebSocketState] = {
    (WebSocketState.CONNECTING, "accept"): WebSocketState.CONNECTED,
    (WebSocketState.CONNECTING, "close"): WebSocketState.CLOSED,
    (WebSocketState.CONNECTING, "deny"): WebSocketState.CLOSED,
    (WebSocketState.CONNECTED, "send"): WebSocketState.CONNECTED,
    (WebSocketState.CONNECTED, "receive"): WebSocketState.CONNECTED,
    (WebSocketState.CONNECTED, "close"): WebSocketState.CLOSED,
    (WebSocketState.CONNECTED, "disconnected"): WebSocketState.CLOSED,
}


class WebSocket(HTTPConnection):
    """A WebSocket connection: ``headers``, ``query``, ``cookies``, ``path_params``,
    ``client``, ``state`` and ``app`` as on a request, plus sending and receiving."""

    __slots__ = ("_connect_received", "_receive", "_send", "close_code", "state_")

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: Any = None,
        path_params: dict[str, Any] | None = None,
    ) -> None:
        HTTPConnection.__init__(self, scope, app, path_params)
        self._receive = receive
        self._send = send
        self._connect_received = False
        self.state_ = WebSocketState.CONNECTING
        #: the close code once closed (by either side)
        self.close_code: int | None = None

    @property
    def connection_state(self) -> WebSocketState:
        """Where the connection is: CONNECTING, CONNECTED or CLOSED."""
        return self.state_

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", ()))

    def _move(self, action: str) -> None:
        following = _TRANSITIONS.get((self.state_, action))
        if following is None:
            raise RuntimeError(
                f"Cannot {action} a WebSocket that is {self.state_.value}"
                + (" (call accept() first)" if self.state_ is WebSocketState.CONNECTING else "")
            )
        self.state_ = following

    async def _await_connect(self) -> None:
        if not self._connect_received:
            message = await self._receive()
            self._connect_received = True
            if message["type"] == "websocket.disconnect":
                self.state_ = WebSocketState.CLOSED
                self.close_code = message.get("code", 1006)
                raise WebSocketDisconnect(self.close_code or 1006)

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] | None = None
    ) -> None:
        """Complete the handshake, optionally choosing one of the offered subprotocols."""
        await self._await_connect()
        self._move("accept")
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [encode_header(k, v) for k, v in headers]
        await self._send(message)

    async def deny(self, response: Response) -> None:
        """Refuse the connection with a real HTTP response, where the server allows it.

        Uses the ASGI ``websocket.http.response`` extension; on a server without it the
        client gets a plain 403.
        """
        await self._await_connect()
        self._move("deny")
        if "websocket.http.response" not in self.scope.get("extensions", {}):
            await self._send({"type": "websocket.close", "code": 1008})
            return
        body = response.body
        await self._send({
            "type": "websocket.http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers(len(body)),
        })
        await self._send({"type": "websocket.http.response.body", "body": body})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (before ``accept``: refuse it with 403). Closing twice is a
        no-op."""
        if self.state_ is WebSocketState.CLOSED:
            return
        if self.state_ is WebSocketState.CONNECTING:
            await self._await_connect()
        self._move("close")
        self.close_code = code
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    # -- receiving -------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next raw ASGI message (``websocket.receive`` or ``websocket.disconnect``).

        Once the socket is closed, by either side, it is ``websocket.disconnect`` with the close
        code: a handler whose loop asks for more after the app closed the socket (shutdown's
        1001 may land while the handler is still sending) ends like one whose peer left.
        """
        if self.state_ is WebSocketState.CLOSED:
            return {"type": "websocket.disconnect", "code": self.close_code or 1000}
        if self.state_ is not WebSocketState.CONNECTED:
            self._move("receive")
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self.state_ = WebSocketState.CLOSED
            self.close_code = message.get("code", 1000)
        return message

    async def _receive_data(self) -> Message:
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        return message

    async def receive_text(self) -> str:
        """The next text message. A binary message closes the socket with 1003."""
        if self.state_ is WebSocketState.CONNECTED:
            # perf: the per-message path of a chat or echo loop, without two helper frames
            message = await self._receive()
            text = message.get("text")
            if text is not None:
                return text  # type: ignore[no-any-return]
            if message["type"] == "websocket.disconnect":
                self.state_ = WebSocketState.CLOSED
                self.close_code = message.get("code", 1000)
                raise WebSocketDisconnect(self.close_code or 1000, message.get("reason") or "")
        else:
            message = await self._receive_data()
        text = message.get("text")
        if text is None:
            await self.close(1003, "Expected a text message")
            raise WebSocketDisconnect(1003, "Expected a text message")
        return text  # type: ignore[no-any-return]

    async def receive_bytes(self) -> bytes:
        """The next binary message. A text message closes the socket with 1003."""
        message = await self._receive_data()
        data = message.get("bytes")
        if data is None:
            await self.close(1003, "Expected a binary message")
            raise WebSocketDisconnect(1003, "Expected a binary message")
        return data  # type: ignore[no-any-return]

    async def receive_json(self) -> Any:
        """The next message (text or binary) parsed as JSON. Invalid JSON (or JSON nested too
        deeply to decode) closes the socket with 1007."""
        message = await self._receive_data()
        payload = message.get("text")
        if payload is None:
            payload = message.get("bytes", b"")
        try:
            return decode_json(payload)
        except msgspec.DecodeError as exc:
            reason = "JSON nested too deeply" if isinstance(exc, JSONTooDeep) else "Invalid JSON"
            await self.close(1007, reason)
            raise WebSocketDisconnect(1007, reason) from None

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the peer disconnects (then the loop just ends)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the peer disconnects."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the peer disconnects."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            return

    # -- sending ---------------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        if self.state_ is not WebSocketState.CONNECTED:
            self._move("send")  # raises the clear error
        await self._send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        if self.state_ is not WebSocketState.CONNECTED:
            self._move("send")
        await self._send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, *, binary: bool = False) -> None:
        """Send ``data`` encoded as JSON (msgspec), as a text frame unless ``binary``."""
        from joey.responses import json_encode

        encoded = json_encode(data)
        self._move("send")
        if binary:
            await self._send({"type": "websocket.send", "bytes": encoded})
        else:
            await self._send({"type": "websocket.send", "text": encoded.decode("utf-8")})

    def __repr__(self) -> str:
        return f"<WebSocket {self.scope.get('path')} {self.state_.value}>"


__all__ = [
    "WebSocket",
    "WebSocketState",
]
