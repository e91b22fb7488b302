"""Server-sent events: the wire format, pings, and stopping on disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from joey.sse import EventSourceResponse, ServerSentEvent
from joey.types import Message


def test_event_fields_in_order() -> None:
    event = ServerSentEvent("hi", event="greeting", id="7", retry=2500, comment="note")
    assert event.encode() == (
        b": note\nevent: greeting\ndata: hi\nid: 7\nretry: 2500\n\n"
    )


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        ("a\nb", b"data: a\ndata: b\n\n"),
        ("a\r\nb\rc", b"data: a\ndata: b\ndata: c\n\n"),
        ("ends\n", b"data: ends\ndata: \n\n"),
        ("", b"data: \n\n"),
        (" leading space", b"data:  leading space\n\n"),
        ("a\u2028b\x0bc", "data: a\u2028b\x0bc\n\n".encode()),  # not SSE line breaks
        ({"x": [1, 2]}, b'data: {"x":[1,2]}\n\n'),
        (42, b"data: 42\n\n"),
    ],
)
def test_data_is_multi_line_safe(data: Any, wire: bytes) -> None:
    assert ServerSentEvent(data).encode() == wire


def test_multi_line_comment_and_empty_event() -> None:
    assert ServerSentEvent(comment="one\ntwo").encode() == b": one\n: two\n\n"
    assert ServerSentEvent().encode() == b"\n"


@pytest.mark.parametrize(
    "kwargs",
    [{"event": "a\nb"}, {"event": "a\rb"}, {"id": "1\n2"}, {"id": "1\x002"}, {"retry": -1}],
)
def test_fields_that_would_inject_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent("x", **kwargs)


def test_repr() -> None:
    assert repr(ServerSentEvent("x", id="1")) == "ServerSentEvent(data='x', id='1')"


class Client:
    """Records what a response sends; disconnects when told to."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.gone = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


SCOPE = {"type": "http", "method": "GET", "path": "/events", "headers": []}


async def test_headers_and_items_of_every_kind() -> None:
    async def events() -> AsyncIterator[Any]:
        yield ServerSentEvent("one", event="first")
        yield {"data": "two", "id": "2"}
        yield "three\nlines"
        yield b"data: raw\n\n"

    client = Client()
    await EventSourceResponse(events())(SCOPE, client.receive, client.send)
    start = client.messages[0]
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    assert b"connection" not in headers and b"content-length" not in headers
    assert client.body == (b"event: first\ndata: one\n\ndata: two\nid: 2\n\n"
                           b"data: three\ndata: lines\n\ndata: raw\n\n")


async def test_user_headers_win() -> None:
    async def nothing() -> AsyncIterator[str]:
        return
        yield  # pragma: no cover

    response = EventSourceResponse(nothing(), headers={"cache-control": "no-store"})
    client = Client()
    await response(SCOPE, client.receive, client.send)
    assert dict(client.messages[0]["headers"])[b"cache-control"] == b"no-store"


async def test_pings_while_the_producer_is_idle() -> None:
    async def slow() -> AsyncIterator[str]:
        await asyncio.sleep(0.23)
        yield "late"

    client = Client()
    await EventSourceResponse(slow(), ping_interval=0.05)(SCOPE, client.receive, client.send)
    body = client.body
    assert body.endswith(b"data: late\n\n")
    assert 3 <= body.count(b": ping\n\n") <= 5


async def test_no_pings_when_disabled() -> None:
    async def slow() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        yield "x"

    client = Client()
    await EventSourceResponse(slow(), ping_interval=None)(SCOPE, client.receive, client.send)
    assert client.body == b"data: x\n\n"


async def test_disconnect_cancels_an_idle_producer() -> None:
    log: list[str] = []

    async def forever() -> AsyncIterator[str]:
        try:
            yield "hello"
            await asyncio.sleep(3600)
            yield "never"  # pragma: no cover
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    client = Client()
    task = asyncio.ensure_future(
        EventSourceResponse(forever(), ping_interval=0.01)(SCOPE, client.receive, client.send)
    )
    await asyncio.sleep(0.05)
    client.gone.set()
    await asyncio.wait_for(task, 2)
    assert log == ["cancelled", "finally"]
    assert client.body.startswith(b"data: hello\n\n: ping\n\n")


async def test_disconnect_closes_a_busy_producer() -> None:
    log: list[str] = []

    async def busy() -> AsyncIterator[str]:
        try:
            i = 0
            while True:
                i += 1
                yield str(i)
                await asyncio.sleep(0)
        finally:
            log.append("closed")

    client = Client()
    task = asyncio.ensure_future(EventSourceResponse(busy())(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.02)
    client.gone.set()
    await asyncio.wait_for(task, 2)
    assert log == ["closed"]


async def test_producer_errors_propagate() -> None:
    async def broken() -> AsyncIterator[str]:
        yield "ok"
        raise RuntimeError("producer failed")

    client = Client()
    with pytest.raises(RuntimeError, match="producer failed"):
        await EventSourceResponse(broken())(SCOPE, client.receive, client.send)


async def test_head_sends_no_events() -> None:
    async def events() -> AsyncIterator[str]:
        yield "x"  # pragma: no cover

    client = Client()
    await EventSourceResponse(events())({**SCOPE, "method": "HEAD"}, client.receive, client.send)
    assert client.body == b""


async def test_works_with_a_plain_async_iterator() -> None:
    class Countdown:
        def __init__(self) -> None:
            self.n = 3

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> str:
            if self.n == 0:
                raise StopAsyncIteration
            self.n -= 1
            return str(self.n)

    client = Client()
    await EventSourceResponse(Countdown())(SCOPE, client.receive, client.send)
    assert client.body == b"data: 2\n\ndata: 1\n\ndata: 0\n\n"


async def test_through_httpx() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def events() -> AsyncIterator[ServerSentEvent]:
            for i in range(3):
                yield ServerSentEvent(f"n{i}", id=str(i))

        await EventSourceResponse(events())(scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.text.count("data: n") == 3
