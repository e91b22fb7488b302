"""Serve an app under uvicorn, with Joey's graceful WebSocket shutdown.

Plain ``uvicorn module:app`` works too. The difference is at shutdown: uvicorn closes open
WebSockets itself with code 1012 ("service restart") *before* the app hears about the
shutdown. ``joey.serve`` first closes them with 1001 ("going away") and lets their handlers
finish (up to ``app.shutdown_timeout``), then lets uvicorn shut down as usual.

Example::

    if __name__ == "__main__":
        joey.serve(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joey.app import App


def serve(app: App | str, *, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Run ``app`` (an App or an ``"module:attribute"`` string) under uvicorn until stopped.

    Extra keyword arguments go to ``uvicorn.Config`` (``log_level``, ``workers``...).
    Needs the ``server`` extra (``pip install joey[server]``).
    """
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError("joey.serve needs uvicorn: pip install 'joey[server]'") from None

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            target = self.config.loaded_app
            while target is not None and not hasattr(target, "close_websockets"):
                target = getattr(target, "app", None)  # unwrap uvicorn's own wrappers
            if target is not None:
                await target.close_websockets(1001, getattr(target, "shutdown_timeout", 10.0))
            await super().shutdown(sockets)

    config = uvicorn.Config(app, host=host, port=port, **options)
    _Server(config).run()
