"""A tiny in-process ASGI server: lifespan, HTTP requests and WebSocket sessions, no sockets.

The timing loops live here too, so that every framework pays exactly the same harness cost: a fresh
scope (frameworks cache parsed values in it, so reusing one would flatter them), a fresh receive
callable and a send that drops messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scenarios import WS_MESSAGE, Scenario

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_DISCONNECT: Message = {"type": "http.disconnect"}
_WS_DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000}
_COMMON_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"joey-bench/1"),
    (b"accept", b"*/*"),
]


class Lifespan:
    """Drive an app's lifespan protocol: ``await start()`` before requests, ``await stop()`` after.

    An app that does not speak lifespan (it raises or returns at once) is accepted, as uvicorn's
    ``lifespan="auto"`` does; ``startup_error`` then says what happened.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.startup_error: str | None = None
        self._sent: asyncio.Queue[Message] = asyncio.Queue()
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._received = 0

    async def _receive(self) -> Message:
        self._received += 1
        if self._received == 1:
            return {"type": "lifespan.startup"}
        await self._shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        await self._sent.put(message)

    async def start(self, limit_s: float = 30.0) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        self._task = asyncio.ensure_future(self.app(scope, self._receive, self._send))
        getter = asyncio.create_task(self._sent.get())
        done, _ = await asyncio.wait(
            {self._task, getter}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED
        )
        if getter in done:
            message = getter.result()
            if message["type"] != "lifespan.startup.complete":
                self.startup_error = str(message.get("message") or message["type"])
            return
        getter.cancel()
        if self._task in done:
            exc = self._task.exception()
            self.startup_error = f"lifespan unsupported ({exc!r})" if exc else "lifespan returned"
        else:
            raise TimeoutError("lifespan startup did not complete")

    async def stop(self, limit_s: float = 10.0) -> None:
        if self._task is None or self._task.done():
            return
        self._shutdown.set()
        # A failing shutdown must not hide the measurements.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, limit_s)


class _Receive:
    """Hands out the request body once, then reports a disconnect, like a server would."""

    __slots__ = ("_message",)

    def __init__(self, message: Message) -> None:
        self._message: Message | None = message

    async def __call__(self) -> Message:
        message = self._message
        if message is None:
            return _DISCONNECT
        self._message = None
        return message


class _WSClient:
    """A ping-pong WebSocket client: connects, sends ``count`` text frames, then disconnects.

    Frames are handed out as fast as the app asks for them, but the disconnect only once every
    frame has been echoed, as a real echo client would (Falcon reads ahead in a task and would
    otherwise see the disconnect before it has echoed anything). ``wait=False`` never waits: for
    measuring the harness with an app that echoes nothing.
    """

    __slots__ = ("_all_echoed", "_calls", "_count", "_echoed", "_text", "_wait", "sent")

    def __init__(self, count: int, text: str, wait: bool = True) -> None:
        self._calls = 0
        self._count = count
        self._text = text
        self._wait = wait
        self._echoed = 0
        self._all_echoed: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        self._calls += 1
        if self._calls == 1:
            return {"type": "websocket.connect"}
        if self._calls <= self._count + 1:
            return {"type": "websocket.receive", "text": self._text}
        if self._wait and self._echoed < self._count:
            self._all_echoed = asyncio.get_running_loop().create_future()
            await self._all_echoed
        return _WS_DISCONNECT

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self._echoed += 1
            if self._echoed == self._count and self._all_echoed is not None:
                self._all_echoed.set_result(None)


async def _drop(message: Message) -> None:
    return None


def http_scope(scenario: Scenario) -> Scope:
    headers = list(_COMMON_HEADERS)
    if scenario.body or scenario.method == "POST":
        headers.append((b"content-length", str(len(scenario.body)).encode()))
    if scenario.content_type:
        headers.append((b"content-type", scenario.content_type.encode()))
    headers.extend(scenario.headers)
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "1.1",
        "method": scenario.method,
        "scheme": "http",
        "path": scenario.path,
        "raw_path": scenario.path.encode(),
        "query_string": scenario.query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def ws_scope(scenario: Scenario) -> Scope:
    scope = http_scope(scenario)
    del scope["method"]
    scope.update(
        type="websocket",
        scheme="ws",
        subprotocols=[],
        headers=[
            *_COMMON_HEADERS,
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    return scope


def _fresh(scope: Scope, state: dict[str, Any]) -> Scope:
    fresh = dict(scope)
    fresh["state"] = state.copy()  # what uvicorn does per request for lifespan state
    return fresh


async def call_http(app: ASGIApp, scenario: Scenario, state: dict[str, Any]) -> tuple[int, bytes]:
    """Send one request and collect the response (status, body)."""
    messages: list[Message] = []

    async def collect(message: Message) -> None:
        messages.append(message)

    request = {"type": "http.request", "body": scenario.body, "more_body": False}
    await asyncio.wait_for(app(_fresh(http_scope(scenario), state), _Receive(request), collect), 10)
    status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 0)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, body


async def call_ws(
    app: ASGIApp, scenario: Scenario, state: dict[str, Any], count: int
) -> str | None:
    """Run one echo session of ``count`` messages; return why it is wrong, or None."""
    messages: list[Message] = []
    client = _WSClient(count, WS_MESSAGE)

    async def collect(message: Message) -> None:
        messages.append(message)
        await client.send(message)

    await asyncio.wait_for(app(_fresh(ws_scope(scenario), state), client.receive, collect), 10)
    kinds = [m["type"] for m in messages]
    if not kinds or kinds[0] != "websocket.accept":
        return f"not accepted: {messages[:2]!r}"
    echoed = [m.get("text") for m in messages if m["type"] == "websocket.send"]
    if echoed != [WS_MESSAGE] * count:
        return f"echoed {echoed[:3]!r} for {count} messages"
    return None


def http_loop(
    app: ASGIApp, scenario: Scenario, state: dict[str, Any]
) -> Callable[[int], Awaitable[float]]:
    """Return ``run(n)``: the seconds ``n`` sequential requests take."""
    scope = http_scope(scenario)
    body = scenario.body

    async def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            request = {"type": "http.request", "body": body, "more_body": False}
            await app(_fresh(scope, state), _Receive(request), _drop)
        return time.perf_counter() - start

    return run


def ws_loop(
    app: ASGIApp, scenario: Scenario, state: dict[str, Any], per_session: int, wait: bool = True
) -> Callable[[int], Awaitable[float]]:
    """Return ``run(n)``: the seconds ``n`` echoed messages take, ``per_session`` per connection."""
    scope = ws_scope(scenario)
    text = WS_MESSAGE

    async def run(n: int) -> float:
        sessions = max(1, n // per_session)
        start = time.perf_counter()
        for _ in range(sessions):
            client = _WSClient(per_session, text, wait)
            await app(_fresh(scope, state), client.receive, client.send)
        return (time.perf_counter() - start) * n / (sessions * per_session)

    return run


async def null_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The empty app: its cost is the harness's own, subtracted from every HTTP figure."""


async def drain_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Receives every WebSocket message and answers none: the harness's own per-message cost."""
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def measure(
    run: Callable[[int], Awaitable[float]], target_s: float, repeats: int, max_n: int = 500_000
) -> tuple[float, float, int]:
    """Time ``run`` fairly: calibrate ``n`` to ``target_s`` per repeat, then take several repeats.

    Returns (best, median) seconds per operation and the ``n`` used. The best repeat is the one
    least disturbed by the noisy machine (the same reasoning as ``timeit``).
    """
    n = 1
    while True:  # bounded: n doubles up to max_n
        elapsed = await run(n)
        if elapsed >= target_s / 4 or n >= max_n:
            break
        n *= 2
    n = max(1, min(max_n, int(n * target_s / max(elapsed, 1e-9))))
    per_op: list[float] = []
    for _ in range(repeats):
        gc.collect()
        per_op.append(await run(n) / n)
    per_op.sort()
    return per_op[0], per_op[len(per_op) // 2], n
