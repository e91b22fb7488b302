"""Channels on the web: relay a subscription to a WebSocket, or serve it as server-sent events.

Both keep the handler in control: it authenticates, picks the channels, and decides what the
client's messages become (relay hands them to the handler rather than publishing them);
``transform`` filters or rewrites what goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from joey.channels.backend import Message, Overflow, SubscriberTooSlow
from joey.exceptions import BadRequest, WebSocketDisconnect

if TYPE_CHECKING:
    from joey.channels.subscription import Subscription
    from joey.requests import Request
    from joey.sse import EventSourceResponse, ServerSentEvent
    from joey.websockets import WebSocket


class Subscribable(Protocol):
    """What :func:`event_source` needs of :class:`~joey.channels.Channels`."""

    def subscribe(self, *channels: str, since: str | None = None, max_queue: int | None = None,
                  overflow: Overflow | None = None) -> Subscription: ...


Transform = Callable[[Message], str | bytes | None]
GOING_AWAY = 1001


async def relay(websocket: WebSocket, subscription: Subscription, *,
                transform: Transform | None = None) -> AsyncIterator[str | bytes]:
    """Send every message of ``subscription`` to ``websocket`` (as text, or as bytes if
    ``transform`` returns bytes; ``None`` skips a message) and yield what the client sends.

    The loop ends when the client disconnects. When the subscription ends, the socket is
    closed and the loop ends too: with 1001 when the channels shut down, with 1008 and a
    reason when the subscriber fell too far behind (``overflow="disconnect"``).

    Example::

        from joey.channels import Channels

        @app.websocket("/rooms/{room}")
        async def room(websocket: WebSocket, room: str, channels: Channels) -> None:
            await websocket.accept()
            async with channels.subscribe(room) as subscription:
                async for text in channels.relay(websocket, subscription):
                    await channels.publish(room, text)
    """
    pump = asyncio.ensure_future(_pump(websocket, subscription, transform))
    too_slow: list[SubscriberTooSlow] = []

    def overflowed(exc: SubscriberTooSlow) -> None:
        # The sender may be stuck in a send to a client that stopped reading: stop it now.
        too_slow.append(exc)
        pump.cancel()

    subscription.on_overflow(overflowed)
    receiving: asyncio.Future[Any] | None = None
    try:
        while True:
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait((receiving, pump), return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                break  # the subscription ended (or the client is gone)
            message = receiving.result()
            receiving = None
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            yield text if text is not None else message.get("bytes", b"")
    finally:
        subscription.on_overflow(None)
        for task in (receiving, pump):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (receiving, pump) if t is not None),
                             return_exceptions=True)
    ended = None if pump.cancelled() else pump.result()
    if too_slow:
        ended = too_slow[0].code, too_slow[0].reason
    if ended is not None:
        await _close(websocket, *ended)


async def _pump(websocket: WebSocket, subscription: Subscription,
                transform: Transform | None) -> tuple[int, str] | None:
    """Send the subscription to the socket; how to close it when the subscription ends
    (``None``: the client is gone)."""
    tracing = subscription.tracing
    try:
        async for message in subscription:
            if tracing is None:
                await _send(websocket, message, transform)
            else:
                with tracing.delivering(message.channel, message.trace):
                    await _send(websocket, message, transform)
    except SubscriberTooSlow as exc:
        return exc.code, exc.reason
    except (OSError, WebSocketDisconnect, RuntimeError):
        return None  # the client is gone (or the socket closed): nothing to tell it
    return GOING_AWAY, "Server shutting down"


async def _send(websocket: WebSocket, message: Message, transform: Transform | None) -> None:
    out = message.text if transform is None else transform(message)
    if out is None:
        return
    if isinstance(out, bytes):
        await websocket.send_bytes(out)
    else:
        await websocket.send_text(out)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    from joey.websockets import WebSocketState

    if websocket.connection_state is WebSocketState.CONNECTED:
        with contextlib.suppress(OSError, RuntimeError):
            await websocket.close(code, reason)


async def event_source(
    channels: Subscribable,
    request: Request,
    *names: str,
    event: str | None = None,
    transform: Callable[[Message], Any] | None = None,
    retry: int | None = 2000,
    ping_interval: float | None = 15.0,
    max_queue: int | None = None,
) -> EventSourceResponse:
    """Serve ``names`` as server-sent events; each event's id is the subscriber's position,
    so a client that reconnects (``Last-Event-ID``, sent by ``EventSource`` on its own) to any
    process gets what it missed from the history first, then live events, none twice.

    Subscribes before returning, so a backend outage is a 503 (:class:`ChannelsUnavailable`)
    and a malformed ``Last-Event-ID`` a 400. ``transform(message)`` gives the event's data
    (default: the message's text); ``event`` names the events; ``retry`` (ms) is the
    reconnection delay sent first and at shutdown. A subscriber that falls ``max_queue``
    messages behind is disconnected (and resumes from history when it reconnects).

    Example::

        from joey.channels import Channels
        from joey.sse import EventSourceResponse

        @app.get("/rooms/{room}/events")
        async def room_events(room: str, request: Request,
                              channels: Channels) -> EventSourceResponse:
            return await channels.event_source(request, room)
    """
    from joey.sse import EventSourceResponse, ServerSentEvent

    last_id = request.headers.get("last-event-id") or None
    try:
        subscription = channels.subscribe(*names, since=last_id, max_queue=max_queue,
                                          overflow="disconnect")
    except ValueError as exc:
        raise BadRequest(f"Last-Event-ID: {exc}") from None
    await subscription.open()
    request.call_on_close(subscription.close)

    tracing = subscription.tracing

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            if retry is not None:
                yield ServerSentEvent(retry=retry)
            try:
                async for message in subscription:
                    data = message.text if transform is None else transform(message)
                    if data is None:
                        continue
                    out = ServerSentEvent(data, event=event, id=subscription.position)
                    if tracing is None:
                        yield out
                    else:
                        # the span ends once the event is sent (the generator resumes)
                        with tracing.delivering(message.channel, message.trace):
                            yield out
            except SubscriberTooSlow as exc:
                yield ServerSentEvent(comment=exc.reason, retry=retry)
                return
            yield ServerSentEvent(comment="Server shutting down", retry=retry)
        finally:
            await subscription.close()

    # At server shutdown the response itself ends the stream with a `retry:` hint.
    return EventSourceResponse(events(), ping_interval=ping_interval, shutdown_retry=retry)


__all__ = [
    "GOING_AWAY",
    "Subscribable",
    "Transform",
    "event_source",
    "relay",
]
