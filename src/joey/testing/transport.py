"""The in-process transport: httpx requests become ASGI calls, and a portal runs async apps
for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import httpx

from joey.types import ASGIApp, Message, Scope

T = TypeVar("T")
_DONE = object()


def http_scope(request: httpx.Request, root_path: str, state: dict[str, Any] | None) -> Scope:
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
        #: the app calls whose response is complete but that still run: teardowns,
        #: BackgroundTasks, ``call_on_close`` (what :meth:`wait_after_responses` waits for)
        self.after_response: set[asyncio.Task[None]] = set()

    async def wait_after_responses(self) -> None:
        """Wait until every app call whose response is complete has returned."""
        while self.after_response:
            await asyncio.wait(set(self.after_response))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = http_scope(request, self.root_path, self.lifespan_state)
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
                    if not task.done():
                        self.after_response.add(task)
                        task.add_done_callback(self.after_response.discard)
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
            await finish_app(task, disconnect)
            raise errors.pop(0)
        start = started.result()
        return httpx.Response(
            status_code=start["status"],
            headers=[(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
            stream=_ResponseStream(chunks, task, disconnect, errors),
            request=request,
        )


async def finish_app(task: asyncio.Task[None], disconnect: asyncio.Event) -> None:
    """Wait for the app's task to end (10 s at most, then cancel it)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=10)
    except TimeoutError:
        disconnect.set()
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Portal:
    """An event loop in a background thread, so sync tests can drive async apps."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="joey-test-loop",
                                        daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if threading.current_thread() is self.thread:  # pragma: no cover - GC on the loop
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
        self.thread.join()
        self.loop.close()


__all__ = [
    "ASGITransport",
    "Portal",
    "finish_app",
    "http_scope",
]
