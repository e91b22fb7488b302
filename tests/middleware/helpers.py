"""Tiny ASGI apps and drivers shared by the middleware tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from joey.types import ASGIApp, Message, Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client(app: ASGIApp, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def text_app(
    body: bytes | str = b"hello",
    *,
    status: int = 200,
    headers: Sequence[tuple[str, str]] = (("content-type", "text/plain; charset=utf-8"),),
    calls: list[Scope] | None = None,
) -> ASGIApp:
    """An app answering every request with one fixed body (and Content-Length)."""
    data = body.encode() if isinstance(body, str) else body
    raw = [(k.encode(), v.encode()) for k, v in headers]
    if not any(k == b"content-length" for k, _ in raw):
        raw.append((b"content-length", str(len(data)).encode()))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if calls is not None:
            calls.append(scope)
        await send({"type": "http.response.start", "status": status, "headers": list(raw)})
        await send({"type": "http.response.body", "body": data})

    return app


def stream_app(
    chunks: Sequence[bytes],
    *,
    delay: float = 0.0,
    headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"text/event-stream"),),
) -> ASGIApp:
    """An app streaming ``chunks`` one message each, sleeping ``delay`` between them."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        for index, chunk in enumerate(chunks):
            if index and delay:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def http_scope(
    method: str = "GET",
    path: str = "/",
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"testserver"),),
    *,
    scheme: str = "http",
    query_string: bytes = b"",
    kind: str = "http",
    **extra: Any,
) -> Scope:
    scope: Scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    if kind == "websocket":
        del scope["method"]
    scope.update(extra)
    return scope


async def drive(
    app: ASGIApp, scope: Scope, incoming: Sequence[Message] | None = None
) -> list[Message]:
    """Run ``app`` once with in-memory receive/send; returns every message it sent."""
    queue: list[Message] = list(incoming or [{"type": "http.request", "body": b""}])
    sent: list[Message] = []

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # nothing more to read: like a client that stays
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def header(message: Message, name: bytes) -> bytes | None:
    for key, value in message.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def headers_named(message: Message, name: bytes) -> list[bytes]:
    return [bytes(v) for k, v in message.get("headers", ()) if k.lower() == name]


@contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
