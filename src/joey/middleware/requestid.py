"""A request id per request: taken from the client when sane, generated otherwise.

The id is echoed on the response, stored at ``scope["joey.request_id"]`` and in a context
variable, so :func:`get_request_id` and :class:`RequestIDLogFilter` see it anywhere in the
code that runs for the request (handlers, dependencies, background tasks started from it).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from joey.middleware._common import has_header, raw_headers
from joey.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "joey.request_id"

# Module-level by nature: a ContextVar holds one value *per context* (per request task), so
# two apps in one process never see each other's ids.
_request_id: ContextVar[str | None] = ContextVar("joey.request_id", default=None)


def get_request_id() -> str | None:
    """The id of the request being handled, or None outside :class:`RequestIDMiddleware`."""
    return _request_id.get()


def _uuid4_hex() -> str:
    return uuid.uuid4().hex


class RequestIDMiddleware:
    """Give every request an id, echo it in a response header, and expose it to logging.

    An incoming ``X-Request-ID`` (``header_name``) is reused when it is at most ``max_length``
    characters of letters, digits and ``-_.:+=/@``; anything else is replaced by a fresh
    ``generator()`` id (uuid4 hex by default), so a client cannot inject newlines or
    megabytes into your logs. ``trust_incoming=False`` always generates one. Websocket
    connections get an id too (no header can be sent back on them).

    Example::

        asgi_app = RequestIDMiddleware(app)

        handler = logging.StreamHandler()
        handler.addFilter(RequestIDLogFilter())
        handler.setFormatter(logging.Formatter("%(request_id)s %(levelname)s %(message)s"))
    """

    __slots__ = ("_app", "_generator", "_header", "_trust", "_valid")

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = "X-Request-ID",
        max_length: int = 128,
        trust_incoming: bool = True,
        generator: Callable[[], str] = _uuid4_hex,
    ) -> None:
        self._app = app
        self._header = header_name.lower().encode("latin-1")
        self._trust = trust_incoming
        self._generator = generator
        self._valid = re.compile(rb"[A-Za-z0-9\-_.:+=/@]{1,%d}" % max_length)

    def _incoming(self, scope: Scope) -> str | None:
        if not self._trust:
            return None
        for name, value in scope["headers"]:
            if name == self._header:
                return value.decode("ascii") if self._valid.fullmatch(value) else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self._app(scope, receive, send)
            return
        request_id = self._incoming(scope) or self._generator()
        scope[SCOPE_KEY] = request_id
        token = _request_id.set(request_id)
        try:
            if kind == "websocket":
                await self._app(scope, receive, send)
                return
            header = (self._header, request_id.encode("latin-1"))

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = raw_headers(message.get("headers", ()))
                    if not has_header(headers, header[0]):
                        headers.append(header)
                    message["headers"] = headers
                await send(message)

            await self._app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


class RequestIDLogFilter(logging.Filter):
    """Adds ``record.request_id`` (``default`` outside a request) to every log record.

    Attach it to a handler (so records from every logger get it) and use
    ``%(request_id)s`` in the format.

    Example::

        handler = logging.StreamHandler()
        handler.addFilter(RequestIDLogFilter())
        handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
        logging.getLogger().addHandler(handler)
    """

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = _request_id.get()
            record.request_id = request_id if request_id is not None else self.default
        return True


__all__ = [
    "SCOPE_KEY",
    "RequestIDLogFilter",
    "RequestIDMiddleware",
    "get_request_id",
]
