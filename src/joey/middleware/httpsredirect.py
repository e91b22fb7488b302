"""Send plain-HTTP requests to HTTPS with a permanent, method-keeping redirect (308)."""

from __future__ import annotations

import re
from urllib.parse import quote

from joey.exceptions import BadRequest
from joey.middleware._common import send_plain
from joey.requests import host_header
from joey.types import ASGIApp, Receive, Scope, Send

# A host (name, IPv4 or bracketed IPv6) with an optional port: nothing that could smuggle a
# path, credentials or another host into the Location header.
_HOST = re.compile(rb"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")
_SECURE = {"http": "https", "ws": "wss"}


class HTTPSRedirectMiddleware:
    """Redirect ``http://`` to ``https://`` (and ``ws://`` to ``wss://``) with status 308.

    308 keeps the method and body, so a POST stays a POST. Path and query are kept. The port
    in ``Host`` is dropped when it is 80; set ``https_port`` to send clients to a specific
    port (443 is left out of the URL). Behind a TLS-terminating proxy, make sure the server
    sets the scheme from ``X-Forwarded-Proto`` (uvicorn ``--proxy-headers``), or every request
    will look like plain HTTP. Put :class:`TrustedHostMiddleware` outside this one so only your
    host names appear in ``Location``.

    A websocket handshake is redirected when the server supports the ASGI
    ``websocket.http.response`` extension, and closed (1008) otherwise.

    Example::

        asgi_app = HTTPSRedirectMiddleware(app)
    """

    __slots__ = ("_app", "_https_port")

    def __init__(self, app: ASGIApp, *, https_port: int | None = None) -> None:
        self._app = app
        self._https_port = https_port

    def location(self, scope: Scope) -> bytes | None:
        """The secure URL for this request, or None when ``Host`` is unusable (not a
        ``host[:port]``, or more than one)."""
        try:
            host = host_header(scope["headers"])
        except BadRequest:
            return None  # more than one Host: the client's own is not known
        if host is None:
            server = scope.get("server")
            if not server:
                return None
            host = f"{server[0]}:{server[1]}".encode("latin-1")
        if not _HOST.match(host):
            return None
        if host.startswith(b"["):
            end = host.index(b"]") + 1
            name, port = host[:end], host[end + 1 :]
        else:
            name, _, port = host.partition(b":")
        if self._https_port is not None:
            port = b"" if self._https_port == 443 else str(self._https_port).encode()
        elif port == b"80":
            port = b""
        netloc = name + b":" + port if port else name
        # Servers differ on whether path/raw_path already start with root_path (the mount
        # prefix a proxy stripped); the client-visible path must have it exactly once.
        root = scope.get("root_path", "").encode("latin-1")
        path: bytes | None = scope.get("raw_path")
        if path is None:
            path = quote(scope.get("path", "/")).encode("latin-1")
        if not path.startswith(root):
            path = root + path
        query: bytes = scope.get("query_string", b"")
        scheme = _SECURE[scope["scheme"]].encode()
        return scheme + b"://" + netloc + path + (b"?" + query if query else b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] not in ("http", "websocket") or scope.get("scheme") not in _SECURE
                or not scope.get("path", "").startswith("/")):
            # A target that is not a path ("@evil.com", "evil.com/x") is never put after our
            # host in a Location: the app refuses it with its own 400.
            await self._app(scope, receive, send)
            return
        location = self.location(scope)
        websocket = scope["type"] == "websocket"
        if websocket and (
            location is None or "websocket.http.response" not in scope.get("extensions", {})
        ):
            await send({"type": "websocket.close", "code": 1008, "reason": "Use wss://"})
            return
        if location is None:
            await send_plain(send, 400, b"Invalid host header")
            return
        prefix = "websocket." if websocket else ""
        await send({
            "type": prefix + "http.response.start",
            "status": 308,
            "headers": [(b"location", location), (b"content-length", b"0")],
        })
        await send({"type": prefix + "http.response.body", "body": b""})


__all__ = [
    "HTTPSRedirectMiddleware",
]
