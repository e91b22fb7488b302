"""Refuse requests whose ``Host`` is not one of yours (HTTP Host header attacks).

An app that builds absolute URLs (password-reset links, redirects) from ``Host`` can be made to
point them at an attacker's site, and DNS rebinding lets a web page reach a local server under
a foreign name. Listing the names you serve closes both.
"""

from __future__ import annotations

from collections.abc import Sequence

from joey.middleware._common import send_plain
from joey.types import ASGIApp, Receive, Scope, Send


class TrustedHostMiddleware:
    """Answer 400 unless ``Host`` matches ``allowed_hosts``.

    Entries are exact names (``"example.com"``, ``"127.0.0.1"``, ``"[::1]"``) or wildcard
    subdomains: ``"*.example.com"`` matches ``api.example.com`` and ``a.b.example.com`` but not
    ``example.com`` itself (list both). ``"*"`` allows every host. Ports are ignored. A request
    with no ``Host`` or with several is refused too; a refused websocket is closed (code 1008)
    before it is accepted.

    Example::

        asgi_app = TrustedHostMiddleware(app, allowed_hosts=["example.com", "*.example.com"])
    """

    __slots__ = ("_allow_any", "_app", "_exact", "_suffixes")

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts must be a list, e.g. ['example.com', '*.example.com']")
        if not allowed_hosts:
            raise ValueError(
                "TrustedHostMiddleware needs at least one allowed host; use ['*'] to allow all"
            )
        self._app = app
        hosts = [host.strip().lower().rstrip(".") for host in allowed_hosts]
        for host in hosts:
            if "*" in host and host != "*" and (not host.startswith("*.") or "*" in host[2:]):
                raise ValueError(
                    f"Invalid allowed host {host!r}: a wildcard may only start the name, "
                    "as in '*.example.com'"
                )
        self._allow_any = "*" in hosts
        self._exact = frozenset(host for host in hosts if not host.startswith("*"))
        # "*.example.com" is kept as ".example.com": a suffix that requires a subdomain.
        self._suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))

    def is_allowed(self, host_header: bytes) -> bool:
        """Whether a raw ``Host`` value (maybe with a port) names an allowed host."""
        host = host_header.decode("latin-1").strip().lower()
        # "[::1]:8000" is an IPv6 literal with a port; "a.example:8000" a name with one.
        end = host.find("]") + 1 if host.startswith("[") else len(host.partition(":")[0])
        host = host[:end].rstrip(".")
        if not host:
            return False
        return host in self._exact or host.endswith(self._suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or self._allow_any:
            await self._app(scope, receive, send)
            return
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) == 1 and self.is_allowed(hosts[0]):
            await self._app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Invalid host"})
            return
        await send_plain(send, 400, b"Invalid host header")


__all__ = [
    "TrustedHostMiddleware",
]
