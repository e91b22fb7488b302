"""Server-sent events: a long-lived ``text/event-stream`` response (the HTML EventSource API).

The wire format (WHATWG HTML, "Server-sent events"): an event is a block of ``field: value``
lines ended by a blank line. Lines may end in CRLF, LF or CR, so a value that contains any of
them must be split: each line of ``data`` becomes its own ``data:`` line (the client joins
them back with ``\\n``), each line of a comment its own ``:`` line. ``event`` and ``id`` cannot
be split that way, so a line break in them is refused (it would inject fields).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from joey.responses import json_encode
from joey.streaming import StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PING = b": ping\n\n"


class ServerSentEvent:
    """One event of a stream.

    ``data`` is sent as text; anything else than a ``str`` is encoded as JSON first.
    ``event`` names the event (``addEventListener(name, ...)`` on the client), ``id`` sets the
    client's last event ID (sent back as ``Last-Event-ID`` when it reconnects), ``retry`` the
    reconnection delay in milliseconds, and ``comment`` adds lines the client ignores.

    Example::

        event = ServerSentEvent({"price": 42}, event="tick", id="17")
        assert event.encode() == b'event: tick\\ndata: {"price":42}\\nid: 17\\n\\n'
    """

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        if event is not None and _LINE_BREAK.search(event):
            raise ValueError("An SSE event name cannot contain a line break.")
        if id is not None and (_LINE_BREAK.search(id) or "\x00" in id):
            raise ValueError("An SSE id cannot contain a line break or NUL (clients ignore it).")
        if retry is not None and (not isinstance(retry, int) or retry < 0):
            raise ValueError("An SSE retry must be a non-negative number of milliseconds.")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def encode(self) -> bytes:
        """The event in wire format, blank line included."""
        lines: list[str] = []
        if self.comment is not None:
            lines.extend(f": {line}" for line in _LINE_BREAK.split(self.comment))
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.data is not None:
            data = self.data
            if not isinstance(data, str):
                data = json_encode(data).decode("utf-8")
            lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        lines.append("\n")
        return "\n".join(lines).encode("utf-8")

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in ("data", "event", "id", "retry",
                                                          "comment")
            if getattr(self, name) is not None
        )
        return f"ServerSentEvent({fields})"


EventItem = ServerSentEvent | Mapping[str, Any] | str | bytes


def _encode_item(item: EventItem) -> bytes:
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(item).encode()
    if isinstance(item, bytes):
        return item  # already in wire format: sent as is
    return ServerSentEvent(**item).encode()


class EventSourceResponse(StreamingResponse):
    """A stream of server-sent events from an async iterator.

    Each item may be a :class:`ServerSentEvent`, a ``dict`` of its fields
    (``{"data": ..., "event": ...}``), a ``str`` (the data of an unnamed event) or ``bytes``
    already in wire format. While the producer is idle for ``ping_interval`` seconds, a
    ``: ping`` comment goes out so proxies and clients keep the connection open (None: no
    pings). When the client disconnects, the producer is cancelled at its current ``await``
    and closed, so its ``finally`` blocks run.

    When the server shuts down (under ``joey.serve``, or wherever ``App.close_streams`` runs)
    the producer is cancelled and closed the same way, then ``shutdown_event`` (if any) and a
    ``retry: shutdown_retry`` field go out and the response ends cleanly: the browser's
    ``EventSource`` reconnects after ``shutdown_retry`` milliseconds (None: its own default,
    a few seconds), sending ``Last-Event-ID`` if events had ids.

    Headers: ``text/event-stream; charset=utf-8``, ``Cache-Control: no-cache`` and
    ``X-Accel-Buffering: no`` (so nginx passes events on at once). ``Connection`` is left to
    the server (it is forbidden in HTTP/2).

    Example::

        @app.get("/clock")
        async def clock() -> EventSourceResponse:
            async def ticks() -> AsyncIterator[ServerSentEvent]:
                while True:
                    yield ServerSentEvent(time.strftime("%X"), event="tick")
                    await asyncio.sleep(1)
            return EventSourceResponse(ticks())
    """

    __slots__ = ("ping_interval", "producer", "shutdown_event", "shutdown_retry")

    def __init__(
        self,
        content: AsyncIterable[EventItem],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        ping_interval: float | None = 15.0,
        background: Callable[[], Awaitable[None]] | None = None,
        *,
        shutdown_event: EventItem | None = None,
        shutdown_retry: int | None = 1000,
    ) -> None:
        if shutdown_retry is not None and (not isinstance(shutdown_retry, int)
                                           or shutdown_retry < 0):
            raise ValueError("shutdown_retry must be a non-negative number of milliseconds.")
        self.producer = content
        self.ping_interval = ping_interval
        self.shutdown_event = shutdown_event
        self.shutdown_retry = shutdown_retry
        super().__init__(self._frames(), status_code, headers, "text/event-stream", background)
        self.headers.setdefault("cache-control", "no-cache")
        self.headers.setdefault("x-accel-buffering", "no")

    def last_chunk(self) -> bytes:
        """``shutdown_event`` and the ``retry:`` hint, sent when the stream ends at shutdown."""
        last = b"" if self.shutdown_event is None else _encode_item(self.shutdown_event)
        if self.shutdown_retry is not None:
            last += ServerSentEvent(retry=self.shutdown_retry).encode()
        return last

    async def _frames(self) -> AsyncIterator[bytes]:
        iterator = aiter(self.producer)
        interval = self.ping_interval if self.ping_interval and self.ping_interval > 0 else None
        # The next item is awaited in a task of its own so a ping can go out meanwhile without
        # cancelling the producer mid-step (which would end it).
        pending: asyncio.Future[EventItem] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({pending}, timeout=interval)
                if not done:
                    yield _PING
                    continue
                finished, pending = pending, None
                try:
                    item = finished.result()
                except StopAsyncIteration:
                    return
                yield _encode_item(item)
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
