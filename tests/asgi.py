"""Drive an ASGI app directly, recording every message, for tests that need exact messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from joey.testing import TestClient
from joey.types import ASGIApp, Message, Scope

RawHeaders = list[tuple[bytes, bytes]]


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    raw_path: bytes | None = None,
    query_string: bytes = b"",
    headers: RawHeaders | None = None,
    root_path: str = "",
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "root_path": root_path,
        "query_string": query_string,
        "headers": headers or [],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }


class Recorder:
    """A ``receive`` that plays ``incoming`` messages (then waits forever, or disconnects),
    and a ``send`` that records what the app sent."""

    def __init__(self, incoming: Sequence[Message] = (), *, then_disconnect: bool = True) -> None:
        self.incoming = list(incoming)
        self.then_disconnect = then_disconnect
        self.received = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.received += 1
        if self.incoming:
            return self.incoming.pop(0)
        if self.then_disconnect:
            return {"type": "http.disconnect"}
        import asyncio

        await asyncio.Event().wait()  # pragma: no cover - cancelled by the caller
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def start(self) -> Message:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.sent
        return starts[0]

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def headers(self) -> RawHeaders:
        headers: RawHeaders = self.start["headers"]
        return headers

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def body_messages(*chunks: bytes) -> list[Message]:
    """``http.request`` messages carrying ``chunks``, the last one without ``more_body``."""
    if not chunks:
        return [{"type": "http.request", "body": b"", "more_body": False}]
    return [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]


async def call(app: ASGIApp, scope: Scope, incoming: Sequence[Message] | None = None,
               **options: Any) -> Recorder:
    """Run ``app`` once with ``scope``; return the recorder holding what it sent."""
    recorder = Recorder(body_messages() if incoming is None else incoming, **options)
    await app(scope, recorder.receive, recorder.send)
    return recorder


@pytest.fixture(autouse=True)
def close_test_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every TestClient a test made, so no event loop outlives its test.

    Import it into a test module to use it there (it is autouse).
    """
    created: list[TestClient] = []
    original = TestClient.__init__

    def init(self: TestClient, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(TestClient, "__init__", init)
    yield
    for client in created:
        client.close()
