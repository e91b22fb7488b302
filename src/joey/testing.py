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

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import httpx

from joey.exceptions import WebSocketDisconnect
from joey.lifespan import LifespanDriver
from joey.lifespan import LifespanFailed as LifespanError
from joey.types import ASGIApp, Message, Scope

__all__ = [
    "ASGITransport", "AsyncTestClient", "AsyncWebSocketSession", "LifespanError",
    "RenderedTemplate", "TestClient", "WebSocketDenied", "WebSocketSession", "rendered",
]

T = TypeVar("T")
_DONE = object()
_DEFAULT: Any = object()  # a receive's timeout: the session's

#: how long a WebSocket receive waits for the app by default, in seconds
WEBSOCKET_TIMEOUT = 10.0


def _http_scope(request: httpx.Request, root_path: str, state: dict[str, Any] | None) -> Scope:
    raw_path = request.url.raw_path
    path_bytes, _, query = raw_path.partition(b"?")
    scheme = request.url.scheme
    port = request.url.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}[scheme]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": scheme,
        "path": root_path + unquote_to_bytes(path_bytes).decode("utf-8", "replace"),
        "raw_path": root_path.encode() + path_bytes,
        "root_path": root_path,
        "query_string": query,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "client": ("testclient", 50000),
        "server": (request.url.host, port),
        "extensions": {"http.response.debug": {}},  # template responses say what they render
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(
        self, chunks: asyncio.Queue[Any], task: asyncio.Task[None], disconnect: asyncio.Event,
        errors: list[BaseException] | None,
    ) -> None:
        self._chunks = chunks
        self._task = task
        self._disconnect = disconnect
        self._errors = errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._chunks.get()
            if chunk is None:
                return
            if chunk is _DONE:
                error = self._task.exception() if not self._task.cancelled() else None
                if error is None and self._errors:
                    error = self._errors.pop(0)  # a streamed body failed after it started
                if error is not None:
                    raise error
                raise httpx.RemoteProtocolError(
                    "The app returned before finishing the response body."
                )
            yield chunk

    async def aclose(self) -> None:
        self._disconnect.set()
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)


class ASGITransport(httpx.AsyncBaseTransport):
    """An httpx transport that calls an ASGI app directly, with a streamed response body.

    With ``raise_server_exceptions`` (the default), an error the app logged as unhandled is
    raised from the request instead of returning its 500, and so is an exception that escapes
    the app. Without it, the request returns what a server would send: the app's 500, or a
    plain 500 when the app crashed before answering.
    """

    def __init__(self, app: ASGIApp, root_path: str = "", *,
                 raise_server_exceptions: bool = True) -> None:
        self.app = app
        self.root_path = root_path
        self.raise_server_exceptions = raise_server_exceptions
        self.lifespan_state: dict[str, Any] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = _http_scope(request, self.root_path, self.lifespan_state)
        errors: list[BaseException] | None = None
        if self.raise_server_exceptions:
            errors = scope["extensions"]["joey.errors"] = []
        body = request.stream
        request_chunks: AsyncIterator[bytes] | None = (
            body.__aiter__() if isinstance(body, httpx.AsyncByteStream) else None
        )
        sync_body = b"".join(body) if request_chunks is None else b""  # type: ignore[arg-type]
        request_done = False
        disconnect = asyncio.Event()
        started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[Any] = asyncio.Queue()

        async def receive() -> Message:
            nonlocal request_done
            if not request_done:
                if request_chunks is None:
                    request_done = True
                    return {"type": "http.request", "body": sync_body, "more_body": False}
                try:
                    chunk = await request_chunks.__anext__()
                    return {"type": "http.request", "body": bytes(chunk), "more_body": True}
                except StopAsyncIteration:
                    request_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if disconnect.is_set():
                raise OSError("The test client has closed the response")
            kind = message["type"]
            if kind == "http.response.start":
                if started.done():
                    raise RuntimeError("The app sent http.response.start twice")
                started.set_result(message)
            elif kind == "http.response.body":
                if not started.done():
                    raise RuntimeError("The app sent a body before http.response.start")
                body = message.get("body", b"")
                if body:
                    chunks.put_nowait(bytes(body))
                if not message.get("more_body", False):
                    chunks.put_nowait(None)
            elif kind == "http.response.debug":
                request.extensions["joey.rendered"] = message.get("info", {})  # see rendered()

        task = asyncio.ensure_future(self.app(scope, receive, send))
        task.add_done_callback(lambda _: chunks.put_nowait(_DONE))
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            started.cancel()
            error = task.exception()
            if error is None:
                raise RuntimeError("The app returned without sending a response")
            if self.raise_server_exceptions:
                raise error
            # What a server answers when the app crashes before starting a response.
            return httpx.Response(500, headers={"content-type": "text/plain; charset=utf-8"},
                                  content=b"Internal Server Error", request=request)
        if errors:
            # The app logged the error and started its 500; let it finish (cleanups,
            # background work refused), then raise what the handler raised.
            await _finish(task, disconnect)
            raise errors.pop(0)
        start = started.result()
        return httpx.Response(
            status_code=start["status"],
            headers=[(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
            stream=_ResponseStream(chunks, task, disconnect, errors),
            request=request,
        )


async def _finish(task: asyncio.Task[None], disconnect: asyncio.Event) -> None:
    """Wait for the app's task to end (10 s at most, then cancel it)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=10)
    except TimeoutError:
        disconnect.set()
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class WebSocketDenied(Exception):
    """The app refused the WebSocket handshake: ``status_code`` (403 when it simply closed),
    ``headers`` and ``body`` of the denial response."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code = status_code
        self.headers = httpx.Headers(headers)
        self.body = body
        super().__init__(f"WebSocket refused with HTTP {status_code}")


def _websocket_scope(
    url: httpx.URL, headers: httpx.Headers, subprotocols: list[str] | None, root_path: str,
    state: dict[str, Any] | None, raise_server_exceptions: bool,
) -> Scope:
    path_bytes, _, query = url.raw_path.partition(b"?")
    scheme = "wss" if url.scheme in ("https", "wss") else "ws"
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "path": root_path + unquote_to_bytes(path_bytes).decode("utf-8", "replace"),
        "raw_path": root_path.encode() + path_bytes,
        "root_path": root_path,
        "query_string": query,
        "headers": [(k.lower(), v) for k, v in headers.raw],
        "client": ("testclient", 50000),
        "server": (url.host, url.port or (443 if scheme == "wss" else 80)),
        "subprotocols": subprotocols or [],
        "extensions": {"websocket.http.response": {}},
    }
    if raise_server_exceptions:
        scope["extensions"]["joey.errors"] = []
    if state is not None:
        scope["state"] = dict(state)
    return scope


class AsyncWebSocketSession:
    """One WebSocket conversation with the app, from the client's side.

    A receive waits at most ``timeout`` seconds (``None``: forever) for the app's next
    message, then raises ``TimeoutError``; each ``receive*`` call can pass its own.
    """

    def __init__(self, app: ASGIApp, scope: Scope,
                 timeout: float | None = WEBSOCKET_TIMEOUT) -> None:
        self._app = app
        self._scope = scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: the handler errors the app logged (only with ``raise_server_exceptions``)
        self._errors: list[BaseException] | None = scope["extensions"].get("joey.errors")
        self.timeout = timeout
        self.subprotocol: str | None = None
        self.accept_headers = httpx.Headers()

    async def connect(self) -> None:
        self._task = asyncio.ensure_future(self._app(self._scope, self._to_app.get,
                                                     self._from_app_send))
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next(_DEFAULT)
        kind = message["type"]
        if kind == "websocket.accept":
            self.subprotocol = message.get("subprotocol")
            self.accept_headers = httpx.Headers(message.get("headers", []))
            return
        if kind == "websocket.close":
            self.raise_handler_error()  # the handler failed before accepting
            raise WebSocketDenied(403, [], b"")
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                part = await self._next(_DEFAULT)
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            raise WebSocketDenied(message["status"], message.get("headers", []), body)
        raise RuntimeError(f"Unexpected message during the handshake: {message!r}")

    async def _from_app_send(self, message: Message) -> None:
        await self._from_app.put(message)
        if message["type"] == "websocket.close":
            # As a server does once the client answers the close frame: the app's next
            # receive() reports the disconnect with the app's own close code.
            await self._to_app.put({"type": "websocket.disconnect",
                                    "code": message.get("code", 1000)})

    def raise_handler_error(self) -> None:
        """Raise the first error the app logged for this socket and not yet raised, if any."""
        if self._errors:
            raise self._errors.pop(0)

    async def _next(self, timeout: float | None) -> Message:  # noqa: ASYNC109
        assert self._task is not None
        wait = self.timeout if timeout is _DEFAULT else timeout
        getter = asyncio.ensure_future(self._from_app.get())
        try:
            await asyncio.wait({getter, self._task}, timeout=wait,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
                await asyncio.gather(getter, return_exceptions=True)
        if getter.done() and not getter.cancelled():
            return getter.result()
        if not self._task.done():
            raise TimeoutError(f"The app sent nothing on the WebSocket {self._scope['path']} "
                               f"within {wait} s")
        error = self._task.exception() if not self._task.cancelled() else None
        if error is not None:
            raise error
        raise WebSocketDisconnect(1006, "The app ended without closing the socket")

    async def send_text(self, data: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        await self.send_text(json.dumps(data))

    async def receive(self, timeout: float | None = _DEFAULT) -> Message:  # noqa: ASYNC109
        """The next message from the app; a close raises :class:`WebSocketDisconnect` (or
        the handler's exception, when it closed because the handler failed). Waits at most
        ``timeout`` seconds (default: the session's) and then raises ``TimeoutError``."""
        message = await self._next(timeout)
        if message["type"] == "websocket.close":
            self.raise_handler_error()
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        return message

    async def receive_text(self, timeout: float | None = _DEFAULT) -> str:  # noqa: ASYNC109
        text: str = (await self.receive(timeout))["text"]
        return text

    async def receive_bytes(self, timeout: float | None = _DEFAULT) -> bytes:  # noqa: ASYNC109
        data: bytes = (await self.receive(timeout))["bytes"]
        return data

    async def receive_json(self, timeout: float | None = _DEFAULT) -> Any:  # noqa: ASYNC109
        message = await self.receive(timeout)
        return json.loads(message["text"] if message.get("text") is not None
                          else message["bytes"])

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Disconnect and wait for the app's handler to finish."""
        if self._task is None:
            return
        await self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        await _finish(self._task, asyncio.Event())


class WebSocketSession:
    """The synchronous face of :class:`AsyncWebSocketSession`, for ``TestClient``."""

    def __init__(self, portal: _Portal, session: AsyncWebSocketSession) -> None:
        self._portal = portal
        self._session = session

    @property
    def subprotocol(self) -> str | None:
        return self._session.subprotocol

    @property
    def accept_headers(self) -> httpx.Headers:
        return self._session.accept_headers

    def send_text(self, data: str) -> None:
        self._portal.call(self._session.send_text(data))

    def send_bytes(self, data: bytes) -> None:
        self._portal.call(self._session.send_bytes(data))

    def send_json(self, data: Any) -> None:
        self._portal.call(self._session.send_json(data))

    @property
    def timeout(self) -> float | None:
        """Seconds a receive waits for the app by default (``None``: forever)."""
        return self._session.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._session.timeout = value

    def receive(self, timeout: float | None = _DEFAULT) -> Message:
        return self._portal.call(self._session.receive(timeout))

    def receive_text(self, timeout: float | None = _DEFAULT) -> str:
        return self._portal.call(self._session.receive_text(timeout))

    def receive_bytes(self, timeout: float | None = _DEFAULT) -> bytes:
        return self._portal.call(self._session.receive_bytes(timeout))

    def receive_json(self, timeout: float | None = _DEFAULT) -> Any:
        return self._portal.call(self._session.receive_json(timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._portal.call(self._session.close(code, reason))


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

            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("hi")
                assert await ws.receive_text() == "hi"
        """
        url = self.base_url.join(path)
        request_headers = httpx.Headers({"host": url.host, **(headers or {})})
        session = AsyncWebSocketSession(self.app, _websocket_scope(
            url, request_headers, subprotocols, self._root_path, self._lifespan.state or None,
            self.raise_server_exceptions), timeout)
        await session.connect()
        try:
            yield session
        finally:
            await session.close()
        session.raise_handler_error()  # the handler failed after the last receive

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


class _Portal:
    """An event loop in a background thread, so sync tests can drive async apps."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="joey-test-loop",
                                        daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if threading.current_thread() is self._thread:  # pragma: no cover - GC on the loop
            self.loop.call_soon(self.loop.stop)
            return

        async def _drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        self.call(_drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, portal: _Portal, stream: httpx.AsyncByteStream) -> None:
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
    def __init__(self, portal: _Portal, transport: ASGITransport) -> None:
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
        self.portal = _Portal()
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

            with client.websocket_connect("/ws/lobby") as ws:
                ws.send_text("hello")
                assert ws.receive_text() == "[lobby] hello"
        """
        url = self.base_url.join(path)
        request_headers = httpx.Headers({"host": url.host, **(headers or {})})
        scope = _websocket_scope(url, request_headers, subprotocols, self._root_path,
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
        if threading.current_thread() is not portal._thread:
            portal._thread.join(timeout=1)
            if not portal._thread.is_alive():
                portal.loop.close()


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
