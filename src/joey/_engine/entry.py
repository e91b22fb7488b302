"""Where a connection comes in: ``App.__call__``, the ASGI entry point.

:class:`joey.App` is the class users configure and subclass, so it stays interpreted in the
compiled build; its ``__call__`` is :func:`app_call`, assigned to the class, which the compiled
build compiles. A compiled function binds as a method like any function, and ``inspect`` sees a
coroutine function (what servers check to call an app as ASGI 3), so the request's path has no
interpreted frame before the handler. Read it, then the engine's HTTP path,
:meth:`joey._engine.http.Engine.handle_http`, top to bottom.
"""

from __future__ import annotations

from typing import Any

from joey.types import Receive, Scope, Send


async def app_call(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI connection of ``app`` (its HTTP requests, WebSockets and lifespan)."""
    scope["app"] = app
    serve_http = app._serve_http
    if serve_http is not None and scope["type"] == "http":
        await serve_http(scope, receive, send)  # the engine's HTTP path
        return
    stack = app._stack
    if stack is None:  # the first call: freeze the declarations, compile the engine
        try:
            app.freeze()
        except Exception:
            if scope["type"] != "lifespan":
                raise
            # raising would read as "no lifespan support": the lifespan's startup reports it
        stack = app._serve_http if scope["type"] == "http" and app._serve_http else (
            app._stack or app._dispatch)  # the metrics' wrapper measures even this one
    await stack(scope, receive, send)
