"""The ASGI lifespan protocol: startup and shutdown messages in, the app's steps run.

What runs, and in what order, is the app's (``App.startup``/``App.shutdown``, run by
:mod:`joey._engine.lifecycle` in the order :mod:`joey.lifespan` describes); this module only
speaks the protocol to the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from joey.types import Receive, Send

logger = logging.getLogger("joey")


async def serve_lifespan(
    startup: Callable[[dict[str, Any] | None], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
    state: dict[str, Any] | None, receive: Receive, send: Send,
) -> None:
    """Answer ``lifespan.startup`` with ``startup(state)`` and ``lifespan.shutdown`` with
    ``shutdown()``; a failure is reported to the server (which then stops) with its message."""
    message = await receive()
    if message["type"] != "lifespan.startup":
        raise RuntimeError(f"Expected lifespan.startup, got {message['type']!r}")
    try:
        await startup(state)
    except Exception as exc:
        logger.error("Startup failed: %s", exc, exc_info=exc)
        await send({"type": "lifespan.startup.failed", "message": str(exc)})
        return
    await send({"type": "lifespan.startup.complete"})
    await receive()  # lifespan.shutdown
    try:
        await shutdown()
    except Exception as exc:
        await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})
