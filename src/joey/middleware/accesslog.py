"""One structured log line per HTTP request, on the ``joey.access`` logger.

The line is written when the response is over: after the last body byte, when the app raised
(logged as 500 unless a status was already sent) or when the client went away first (499, as
nginx does, unless a status was already sent). Each record carries the fields as attributes,
for JSON log formatters, and a readable message for plain ones:

```text
127.0.0.1:52341 "GET /items?page=2 HTTP/1.1" 200 1532B 3.1ms id=4bf92f35...
```
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from joey.middleware.requestid import SCOPE_KEY
from joey.types import ASGIApp, Message, Receive, Scope, Send

#: Status logged when the client disconnected before any response started.
CLIENT_CLOSED_REQUEST = 499


class AccessLogMiddleware:
    """Log method, path, status, response bytes, duration, request id and client per request.

    Records go to ``logger`` (default ``logging.getLogger("joey.access")``) at ``level``, with
    these ``extra`` attributes: ``method``, ``path``, ``query``, ``status_code``,
    ``response_bytes``, ``duration_ms``, ``request_id`` (from :class:`RequestIDMiddleware`,
    else None), ``client`` (``"host:port"`` or None), ``http_version``, ``disconnected`` and
    ``error`` (the exception's class name, or None). Paths in ``skip_paths`` (health checks)
    are not logged.

    Example::

        asgi_app = AccessLogMiddleware(app, skip_paths={"/healthz"})
        logging.getLogger("joey.access").setLevel(logging.INFO)
    """

    __slots__ = ("_app", "_level", "_logger", "_skip")

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        skip_paths: Collection[str] = (),
    ) -> None:
        self._app = app
        self._logger = logger if logger is not None else logging.getLogger("joey.access")
        self._level = level
        self._skip = frozenset(skip_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self._skip
            or not self._logger.isEnabledFor(self._level)
        ):
            await self._app(scope, receive, send)
            return
        record = _Exchange(time.perf_counter(), receive, send)
        error: BaseException | None = None
        try:
            await self._app(scope, record.receive, record.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._log(scope, record, error)

    def _log(self, scope: Scope, exchange: _Exchange, error: BaseException | None) -> None:
        ended = exchange.ended if exchange.ended is not None else time.perf_counter()
        duration_ms = round((ended - exchange.started) * 1000, 3)
        status = exchange.status
        if status is None:
            # Nothing was sent: the client left first, or the server answers 500 for us.
            status = CLIENT_CLOSED_REQUEST if exchange.disconnected else 500
        client = scope.get("client")
        client_text = f"{client[0]}:{client[1]}" if client else None
        request_id = scope.get(SCOPE_KEY)
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        version = scope.get("http_version", "1.1")
        target = f"{path}?{query}" if query else path
        message = (
            f'{client_text or "-"} "{method} {target} HTTP/{version}" {status} '
            f"{exchange.bytes_sent}B {duration_ms}ms"
        )
        if request_id:
            message += f" id={request_id}"
        if exchange.disconnected:
            message += " (client disconnected)"
        if error is not None:
            message += f" ({type(error).__name__})"
        self._logger.log(
            self._level,
            "%s",
            message,
            extra={
                "method": method,
                "path": path,
                "query": query,
                "status_code": status,
                "response_bytes": exchange.bytes_sent,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "client": client_text,
                "http_version": version,
                "disconnected": exchange.disconnected,
                "error": type(error).__name__ if error is not None else None,
            },
        )


class _Exchange:
    """What the middleware learns from the messages going by."""

    __slots__ = ("_receive", "_send", "bytes_sent", "disconnected", "ended", "started", "status")

    def __init__(self, started: float, receive: Receive, send: Send) -> None:
        self.started = started
        self.ended: float | None = None
        self.status: int | None = None
        self.bytes_sent = 0
        self.disconnected = False
        self._receive = receive
        self._send = send

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" and self.ended is None:
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
        elif kind == "http.response.body":
            self.bytes_sent += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = time.perf_counter()
        try:
            await self._send(message)
        except OSError:
            # Servers raise on send once the client is gone (uvicorn: ClientDisconnected).
            self.disconnected = True
            raise


__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "AccessLogMiddleware",
]
