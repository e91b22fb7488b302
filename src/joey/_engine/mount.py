"""Mounted apps: a request or WebSocket under a mount's path goes to another ASGI app."""

from __future__ import annotations

from joey.routing import Mount
from joey.types import Receive, Scope, Send


async def handle_mount(mount: Mount, scope: Scope, receive: Receive, send: Send) -> None:
    """Hand the scope to a mounted app, ``root_path`` extended by the mount's path (the
    mounted app sees the full ``path``, as the ASGI spec says)."""
    child = dict(scope)
    child["root_path"] = scope.get("root_path", "") + mount.path
    await mount.app(child, receive, send)
