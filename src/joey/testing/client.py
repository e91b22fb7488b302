"""``TestClient`` and ``AsyncTestClient``: httpx clients wired to an app in process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from joey.lifespan import LifespanDriver
from joey.testing.transport import ASGITransport, Portal
from joey.testing.websocket import (
    WEBSOCKET_TIMEOUT,
    AsyncWebSocketSession,
    WebSocketSession,
    websocket_scope,
)
from joey.types import ASGIApp

T = TypeVar("T")


class AsyncTestClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` wired to an ASGI app in-process.

    ``async with AsyncTestClient(app) as client:`` runs the lifespan around the block. A
    handler's exception is raised in the test unless ``raise_server_exceptions=False``.
    """

    def __init__(
        self, app: ASGIApp, base_url: str = "http://testserver", root_path: str = "",
        *, raise_server_exceptions: bool = True, **kwargs: Any,
    ) -> None:
        self.app = app
        self._transport_ = ASGITransport(app, root_path=root_path,
                                         raise_server_exceptions=raise_server_exceptions)
        self._lifespan = LifespanDriver(app)
        self._root_path = root_path
        super().__init__(transport=self._transport_, base_url=base_url, **kwargs)

    @property
    def raise_server_exceptions(self) -> bool:
        """Whether a handler's exception is raised in the test (else: its 500 or 1011)."""
        return self._transport_.raise_server_exceptions

    @raise_server_exceptions.setter
    def raise_server_exceptions(self, value: bool) -> None:
        self._transport_.raise_server_exceptions = value

    @contextlib.asynccontextmanager
    async def websocket_connect(
        self, path: str, *, subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = WEBSOCKET_TIMEOUT,  # noqa: ASYNC109 - the same as TestClient's
    ) -> AsyncIterator[AsyncWebSocketSession]:
        """Open a WebSocket to the app; raises :class:`WebSocketDenied` if it refuses.
        Receives wait at most ``timeout`` seconds (``None``: forever).

        Example::

            @app.websocket("/ws")
            async def echo(websocket: WebSocket) -> None:
                await websocket.accept()
                await websocket.send_text(await websocket.receive_text())

            async with AsyncTestClient(app) as client, client.websocket_connect("/ws") as ws:
                await ws.send_text("hi")
                assert await ws.receive_text() == "hi"
        """
        url = self.base_url.join(path)
        request_headers = httpx.Headers({"host": url.host, **(headers or {})})
        session = AsyncWebSocketSession(self.app, websocket_scope(
            url, request_headers, subprotocols, self._root_path, self._lifespan.state or None,
            self.raise_server_exceptions), timeout)
        await session.connect()
        try:
            yield session
        finally:
            await session.close()
        session.raise_handler_error()  # the handler failed after the last receive

    async def wait_for_tasks(
        self, timeout: float | None = 10.0,  # noqa: ASYNC109 - the same as TestClient's
    ) -> None:
        """Wait, at most ``timeout`` seconds, for the work the app does after its responses:
        see :meth:`TestClient.wait_for_tasks`."""
        await _settle(self._transport_, self.app, timeout)

    async def __aenter__(self) -> AsyncTestClient:
        await super().__aenter__()
        await self._lifespan.startup()
        self._transport_.lifespan_state = self._lifespan.state
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            await self._lifespan.shutdown()
        finally:
            await super().__aexit__(exc_type, exc, tb)


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, portal: Portal, stream: httpx.AsyncByteStream) -> None:
        self._portal = portal
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        iterator = self._stream.__aiter__()

        async def next_chunk() -> bytes | None:
            try:
                return await iterator.__anext__()
            except StopAsyncIteration:
                return None

        while True:
            chunk = self._portal.call(next_chunk())
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._portal.call(self._stream.aclose())


class _SyncTransport(httpx.BaseTransport):
    def __init__(self, portal: Portal, transport: ASGITransport) -> None:
        self._portal = portal
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        async_request = httpx.Request(
            request.method, request.url, headers=request.headers, content=body,
        )
        response = self._portal.call(self._transport.handle_async_request(async_request))
        request.extensions.update(async_request.extensions)  # what rendered() reads
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers.raw,
            stream=_SyncStream(self._portal, response.stream),
            request=request,
        )


async def _make_driver(app: ASGIApp) -> LifespanDriver:
    return LifespanDriver(app)  # its queues must be created on the portal's loop


class TestClient(httpx.Client):
    """An ``httpx.Client`` wired to an ASGI app in-process, for synchronous tests.

    The app runs on an event loop in a background thread. ``with TestClient(app) as client:``
    runs the lifespan startup on enter and shutdown on exit. A handler's exception is raised
    in the test unless ``raise_server_exceptions=False`` (then the app's 500 is returned).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, app: ASGIApp, base_url: str = "http://testserver", root_path: str = "",
        *, raise_server_exceptions: bool = True, **kwargs: Any,
    ) -> None:
        self.app = app
        self.portal = Portal()
        self._asgi = ASGITransport(app, root_path=root_path,
                                   raise_server_exceptions=raise_server_exceptions)
        self._lifespan = self.portal.call(_make_driver(app))
        self._root_path = root_path
        super().__init__(transport=_SyncTransport(self.portal, self._asgi), base_url=base_url,
                         **kwargs)

    @property
    def raise_server_exceptions(self) -> bool:
        """Whether a handler's exception is raised in the test (else: its 500 or 1011)."""
        return self._asgi.raise_server_exceptions

    @raise_server_exceptions.setter
    def raise_server_exceptions(self, value: bool) -> None:
        self._asgi.raise_server_exceptions = value

    @contextlib.contextmanager
    def websocket_connect(
        self, path: str, *, subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None, timeout: float | None = WEBSOCKET_TIMEOUT,
    ) -> Iterator[WebSocketSession]:
        """Open a WebSocket to the app; raises :class:`WebSocketDenied` if it refuses.
        Receives wait at most ``timeout`` seconds (``None``: forever).

        Example::

            @app.websocket("/ws/{room}")
            async def chat(websocket: WebSocket, room: str) -> None:
                await websocket.accept()
                await websocket.send_text(f"[{room}] {await websocket.receive_text()}")

            with TestClient(app) as client, client.websocket_connect("/ws/lobby") as ws:
                ws.send_text("hello")
                assert ws.receive_text() == "[lobby] hello"
        """
        url = self.base_url.join(path)
        request_headers = httpx.Headers({"host": url.host, **(headers or {})})
        scope = websocket_scope(url, request_headers, subprotocols, self._root_path,
                                 self._lifespan.state or None, self.raise_server_exceptions)

        async def open_session() -> AsyncWebSocketSession:
            session = AsyncWebSocketSession(self.app, scope, timeout)
            await session.connect()
            return session

        session = self.portal.call(open_session())
        try:
            yield WebSocketSession(self.portal, session)
        finally:
            self.portal.call(session.close())
        session.raise_handler_error()  # the handler failed after the last receive

    def wait_for_tasks(self, timeout: float | None = 10.0) -> None:
        """Wait, at most ``timeout`` seconds, for the work the app does after its responses:
        each request's generator dependency teardowns and ``BackgroundTasks`` (a request
        returns once its response is complete, before they run, as over a network), and
        the tasks of the app's in-memory queue (``app.tasks``, an ``InMemoryTasks``), with
        the tasks those enqueue. Raises ``TimeoutError`` naming what still runs.

        Example::

            done: list[str] = []

            async def send_welcome(email: str) -> None:
                await asyncio.sleep(0.01)
                done.append(email)

            @app.post("/signup")
            async def signup(email: str, background: BackgroundTasks) -> None:
                background.add_task(send_welcome, email)

            with TestClient(app) as client:
                client.post("/signup?email=ann@example.com")
                client.wait_for_tasks()
                assert done == ["ann@example.com"]
        """
        self.portal.call(_settle(self._asgi, self.app, timeout))

    def __enter__(self) -> TestClient:
        super().__enter__()
        try:
            self.portal.call(self._lifespan.startup())
        except BaseException:
            super().__exit__(None, None, None)
            self.portal.close()
            raise
        self._asgi.lifespan_state = self._lifespan.state
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            self.portal.call(self._lifespan.shutdown())
        finally:
            super().__exit__(exc_type, exc, tb)
            self.portal.close()

    def close(self) -> None:
        super().close()
        self.portal.close()

    def __del__(self) -> None:
        # A client that was never closed. Never block long in a finalizer: stop the loop,
        # and close it only when this is not the loop's own thread.
        portal = self.__dict__.get("portal")
        if portal is None or portal.loop.is_closed():
            return
        portal.loop.call_soon_threadsafe(portal.loop.stop)
        if threading.current_thread() is not portal.thread:
            portal.thread.join(timeout=1)
            if not portal.thread.is_alive():
                portal.loop.close()


async def _settle(
    transport: ASGITransport, app: ASGIApp,
    timeout: float | None,  # noqa: ASYNC109 - named in the TimeoutError's message
) -> None:
    """Wait for the calls still running after their response, then for the app's in-memory
    task queue, until neither has work left (a task may run after a background function
    enqueued it)."""
    from joey.tasks import InMemoryTasks

    tasks = getattr(app, "tasks", None)  # a Joey App's queue
    queue = tasks if isinstance(tasks, InMemoryTasks) else None
    try:
        async with asyncio.timeout(timeout):
            while True:
                await transport.wait_after_responses()
                if queue is not None:
                    await queue.join()
                if not transport.after_response:
                    return
    except TimeoutError:
        running = [f"{len(transport.after_response)} request(s) after their response "
                   "(dependency teardowns, BackgroundTasks)"] if transport.after_response else []
        if queue is not None and queue.unfinished():
            running.append(f"tasks {queue.unfinished()}")
        raise TimeoutError(f"wait_for_tasks(): still running after {timeout} s: "
                           f"{'; '.join(running) or 'nothing'}") from None


class RenderedTemplate:
    """What a template response was rendered from: see :func:`rendered`."""

    __slots__ = ("context", "name", "template")

    def __init__(self, template: Any, context: dict[str, Any]) -> None:
        #: the ``jinja2.Template``
        self.template = template
        #: its name, as given to ``Templates.render`` (``"items/show.html"``)
        self.name: str = template.name
        #: everything the template saw: ``request``, context processors' values, the context
        self.context = context

    def __repr__(self) -> str:
        return f"<RenderedTemplate {self.name!r}>"


def rendered(response: httpx.Response) -> RenderedTemplate:
    """The template and context a test client response was rendered from.

    Example::

        def test_item_page() -> None:
            with TestClient(app) as client:
                page = rendered(client.get("/items/1"))
                assert page.name == "item.html" and page.context["id"] == 1

    Raises ``AssertionError`` when the response did not come from
    ``joey.templating.Templates.render``.
    """
    info = response.request.extensions.get("joey.rendered")
    if not info:
        request = response.request
        raise AssertionError(f"{request.method} {request.url.path} answered "
                             f"{response.status_code} without rendering a template")
    return RenderedTemplate(info["template"], info["context"])


__all__ = [
    "AsyncTestClient",
    "RenderedTemplate",
    "TestClient",
    "rendered",
]
