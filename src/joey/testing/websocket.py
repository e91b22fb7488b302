"""WebSocket sessions of the test clients: connect, send, receive with a timeout, close."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx

from joey.exceptions import WebSocketDisconnect
from joey.testing.transport import Portal, finish_app
from joey.types import ASGIApp, Message, Scope

_DEFAULT: Any = object()  # a receive's timeout: the session's

#: how long a WebSocket receive waits for the app by default, in seconds
WEBSOCKET_TIMEOUT = 10.0


class WebSocketDenied(Exception):
    """The app refused the WebSocket handshake: ``status_code`` (403 when it simply closed),
    ``headers`` and ``body`` of the denial response."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code = status_code
        self.headers = httpx.Headers(headers)
        self.body = body
        super().__init__(f"WebSocket refused with HTTP {status_code}")


def websocket_scope(
    url: httpx.URL, headers: httpx.Headers, subprotocols: list[str] | None, root_path: str,
    state: dict[str, Any] | None, raise_server_exceptions: bool,
) -> Scope:
    path_bytes, _, query = url.raw_path.partition(b"?")
    scheme = "wss" if url.scheme in ("https", "wss") else "ws"
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "path": root_path + unquote_to_bytes(path_bytes).decode("utf-8", "replace"),
        "raw_path": root_path.encode() + path_bytes,
        "root_path": root_path,
        "query_string": query,
        "headers": [(k.lower(), v) for k, v in headers.raw],
        "client": ("testclient", 50000),
        "server": (url.host, url.port or (443 if scheme == "wss" else 80)),
        "subprotocols": subprotocols or [],
        "extensions": {"websocket.http.response": {}},
    }
    if raise_server_exceptions:
        scope["extensions"]["joey.errors"] = []
    if state is not None:
        scope["state"] = dict(state)
    return scope


class AsyncWebSocketSession:
    """One WebSocket conversation with the app, from the client's side.

    A receive waits at most ``timeout`` seconds (``None``: forever) for the app's next
    message, then raises ``TimeoutError``; each ``receive*`` call can pass its own.
    """

    def __init__(self, app: ASGIApp, scope: Scope,
                 timeout: float | None = WEBSOCKET_TIMEOUT) -> None:
        self._app = app
        self._scope = scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: the handler errors the app logged (only with ``raise_server_exceptions``)
        self._errors: list[BaseException] | None = scope["extensions"].get("joey.errors")
        self.timeout = timeout
        self.subprotocol: str | None = None
        self.accept_headers = httpx.Headers()

    async def connect(self) -> None:
        self._task = asyncio.ensure_future(self._app(self._scope, self._to_app.get,
                                                     self._from_app_send))
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next(_DEFAULT)
        kind = message["type"]
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.accept_headers = httpx.Headers(message.get("headers", []))
            return
        if kind == "websocket.close":
            self.raise_handler_error()  # the handler failed before accepting
            raise WebSocketDenied(403, [], b"")
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next(_DEFAULT)
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            raise WebSocketDenied(message["status"], message.get("headers", []), body)
        raise RuntimeError(f"Unexpected message during the handshake: {message!r}")

    async def _from_app_send(self, message: Message) -> None:
        await self._from_app.put(message)
        if message["type"] == "websocket.close":
            # As a server does once the client answers the close frame: the app's next
            # receive() reports the disconnect with the app's own close code.
            await self._to_app.put({"type": "websocket.disconnect",
                                    "code": message.get("code", 1000)})

    def raise_handler_error(self) -> None:
        """Raise the first error the app logged for this socket and not yet raised, if any."""
        if self._errors:
            raise self._errors.pop(0)

    async def _next(self, timeout: float | None) -> Message:  # noqa: ASYNC109
        assert self._task is not None
        wait = self.timeout if timeout is _DEFAULT else timeout
        getter = asyncio.ensure_future(self._from_app.get())
        try:
            await asyncio.wait({getter, self._task}, timeout=wait,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
                await asyncio.gather(getter, return_exceptions=True)
        if getter.done() and not getter.cancelled():
            return getter.result()
        if not self._task.done():
            raise TimeoutError(f"The app sent nothing on the WebSocket {self._scope['path']} "
                               f"within {wait} s")
        error = self._task.exception() if not self._task.cancelled() else None
        if error is not None:
            raise error
        raise WebSocketDisconnect(1006, "The app ended without closing the socket")

    async def send_text(self, data: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        await self.send_text(json.dumps(data))

    async def receive(self, timeout: float | None = _DEFAULT) -> Message:  # noqa: ASYNC109
        """The next message from the app; a close raises :class:`WebSocketDisconnect` (or
        the handler's exception, when it closed because the handler failed). Waits at most
        ``timeout`` seconds (default: the session's) and then raises ``TimeoutError``."""
        message = await self._next(timeout)
        if message["type"] == "websocket.close":
            self.raise_handler_error()
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        return message

    async def receive_text(self, timeout: float | None = _DEFAULT) -> str:  # noqa: ASYNC109
        text: str = (await self.receive(timeout))["text"]
        return text

    async def receive_bytes(self, timeout: float | None = _DEFAULT) -> bytes:  # noqa: ASYNC109
        data: bytes = (await self.receive(timeout))["bytes"]
        return data

    async def receive_json(self, timeout: float | None = _DEFAULT) -> Any:  # noqa: ASYNC109
        message = await self.receive(timeout)
        return json.loads(message["text"] if message.get("text") is not None
                          else message["bytes"])

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Disconnect and wait for the app's handler to finish."""
        if self._task is None:
            return
        await self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        await finish_app(self._task, asyncio.Event())


class WebSocketSession:
    """The synchronous face of :class:`AsyncWebSocketSession`, for ``TestClient``."""

    def __init__(self, portal: Portal, session: AsyncWebSocketSession) -> None:
        self._portal = portal
        self._session = session

    @property
    def subprotocol(self) -> str | None:
        return self._session.subprotocol

    @property
    def accept_headers(self) -> httpx.Headers:
        return self._session.accept_headers

    def send_text(self, data: str) -> None:
        self._portal.call(self._session.send_text(data))

    def send_bytes(self, data: bytes) -> None:
        self._portal.call(self._session.send_bytes(data))

    def send_json(self, data: Any) -> None:
        self._portal.call(self._session.send_json(data))

    @property
    def timeout(self) -> float | None:
        """Seconds a receive waits for the app by default (``None``: forever)."""
        return self._session.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._session.timeout = value

    def receive(self, timeout: float | None = _DEFAULT) -> Message:
        return self._portal.call(self._session.receive(timeout))

    def receive_text(self, timeout: float | None = _DEFAULT) -> str:
        return self._portal.call(self._session.receive_text(timeout))

    def receive_bytes(self, timeout: float | None = _DEFAULT) -> bytes:
        return self._portal.call(self._session.receive_bytes(timeout))

    def receive_json(self, timeout: float | None = _DEFAULT) -> Any:
        return self._portal.call(self._session.receive_json(timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._portal.call(self._session.close(code, reason))


__all__ = [
    "WEBSOCKET_TIMEOUT",
    "AsyncWebSocketSession",
    "WebSocketDenied",
    "WebSocketSession",
    "websocket_scope",
]
