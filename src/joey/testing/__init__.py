"""Test clients: call an ASGI app in-process through httpx, no server, no sockets.

``TestClient`` is for plain (sync) tests; ``AsyncTestClient`` for ``async def`` tests. Both
stream response bodies (a ``StreamingResponse`` arrives chunk by chunk), and used as a context
manager they run the app's lifespan: startup on enter, shutdown on exit.

An exception a handler raises is raised in the test (``raise_server_exceptions=True``, the
default), after the app logged it and answered its 500 as it would in production: the
exception policy hands it over through the ``"joey.errors"`` scope extension. Pass
``raise_server_exceptions=False`` to get the 500 response (or the WebSocket's 1011 close)
instead. WebSocket receives wait at most ``timeout`` seconds (default 10) and then raise
``TimeoutError``, so a test never hangs on a message that does not come.

Example::

    from joey.testing import TestClient

    def test_hello() -> None:
        with TestClient(app) as client:
            response = client.get("/hello/joey")
            assert response.status_code == 200
            assert response.json() == {"hello": "joey"}
"""

from joey.lifespan import LifespanFailed as LifespanError
from joey.testing.client import AsyncTestClient, RenderedTemplate, TestClient, rendered
from joey.testing.transport import ASGITransport
from joey.testing.websocket import (
    WEBSOCKET_TIMEOUT,
    AsyncWebSocketSession,
    WebSocketDenied,
    WebSocketSession,
)

__all__ = [
    "WEBSOCKET_TIMEOUT", "ASGITransport", "AsyncTestClient", "AsyncWebSocketSession",
    "LifespanError", "RenderedTemplate", "TestClient", "WebSocketDenied", "WebSocketSession",
    "rendered",
]
