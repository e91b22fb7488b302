"""The core of channels: messages, subscriptions with bounded queues, and the fan-out hub.

One :class:`Channels` per app (per process). It owns a backend, which moves messages between
processes, and the local subscribers of each channel. The backend listens to a channel once per
process, whatever the number of local subscribers, and hands every message to
``Channels._deliver``, which puts it in each subscriber's queue without awaiting anything:
publishing never waits for a subscriber.

Each subscriber's queue is bounded (``max_queue``); when it is full the subscriber's policy
decides (``overflow``):

    "drop_oldest"  the oldest queued message is discarded to make room (a live view: a ticker)
    "drop_newest"  the new message is discarded (the subscriber keeps a consistent prefix)
    "disconnect"   the subscription ends with :class:`SubscriberTooSlow` (WebSockets are closed
                   with 1008; an SSE client reconnects and resumes from history)

A subscription opened with ``since`` (an event id) first replays the channel's history after
that id, then live messages, with neither gap nor duplicate: it registers for live messages and
reads the backend's live position *in the same step* (no ``await`` in between), then asks the
backend for the history between ``since`` and that position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from joey.channels.backend import (
    OVERFLOWS,
    Backend,
    ChannelsUnavailable,
    Message,
    Overflow,
    SubscriberTooSlow,
    check_id,
    encode_data,
    id_key,
    logger,
)
from joey.exceptions import BadRequest, WebSocketDisconnect

if TYPE_CHECKING:
    from joey.requests import Request
    from joey.sse import EventSourceResponse, ServerSentEvent
    from joey.websockets import WebSocket

class Subscription:
    """A subscriber: an async context manager and an async iterator of :class:`Message`.

    Made by :meth:`Channels.subscribe`. Entering it (or :meth:`open`) subscribes; leaving it
    (or :meth:`close`) unsubscribes. Iteration ends when the subscription is closed or the
    channels shut down; it raises :class:`SubscriberTooSlow` when the queue overflowed with the
    ``"disconnect"`` policy.
    """

    __slots__ = (
        "_closed", "_error", "_history", "_hub", "_max", "_on_overflow", "_overflow",
        "_positions", "_queue", "_since", "_waiter", "channels", "dropped",
    )

    def __init__(
        self, hub: Channels, channels: tuple[str, ...], since: str | Mapping[str, str] | None,
        max_queue: int, overflow: Overflow,
    ) -> None:
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {OVERFLOWS}, not {overflow!r}")
        self._hub = hub
        self.channels = channels
        self._since = _parse_since(channels, since)
        self._max = max_queue
        self._overflow = overflow
        self._queue: deque[Message] = deque()
        self._history: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed: bool | None = None  # None: not opened yet
        self._error: SubscriberTooSlow | None = None
        self._positions: dict[str, str | None] = {}
        self._on_overflow: Callable[[SubscriberTooSlow], None] | None = None
        #: messages discarded by a drop policy so far
        self.dropped = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> Subscription:
        """Subscribe (idempotent). Raises :class:`ChannelsUnavailable` if the backend is down."""
        if self._closed is None:
            self._closed = False
            try:
                await self._hub._add(self)
            except BaseException:
                self._hub._remove(self)
                self._end()
                raise
        return self

    async def close(self) -> None:
        """Unsubscribe and end iteration (idempotent)."""
        if self._closed is False:
            self._hub._remove(self)
        self._end()

    def _end(self) -> None:
        self._closed = True
        self._queue.clear()
        self._history.clear()
        self._wake()

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed is True

    @property
    def position(self) -> str | None:
        """Where this subscriber is: the id of the last message it received, per channel
        (joined by ``,`` for several channels). Pass it back as ``since`` to resume; ``None``
        without history."""
        positions = [self._positions.get(name) for name in self.channels]
        if None in positions:
            return None
        return ",".join(positions)  # type: ignore[arg-type]

    # -- receiving --------------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._error is not None:
                raise self._error
            if self._history:
                message = self._history.popleft()
                break
            if self._queue:
                message = self._queue.popleft()
                break
            if self._closed is not False:
                if self._closed is None:
                    raise RuntimeError("Open the subscription first: "
                                       "`async with channels.subscribe(...) as subscription:`")
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if message.id is not None:
            self._positions[message.channel] = message.id
        return message

    def get_nowait(self) -> Message | None:
        """The next queued message, or ``None`` if there is none right now."""
        if self._error is not None:
            raise self._error
        queue = self._history or self._queue
        if not queue:
            return None
        message = queue.popleft()
        if message.id is not None:
            self._positions[message.channel] = message.id
        return message

    def qsize(self) -> int:
        """Messages waiting to be read."""
        return len(self._queue) + len(self._history)

    # -- called by the hub ------------------------------------------------------------------

    def _put(self, message: Message) -> None:
        queue = self._queue
        if len(queue) >= self._max:
            if self._closed:
                return  # disconnected for being slow; leaves the channel after this fan-out
            if self._overflow == "drop_oldest":
                queue.popleft()
                self.dropped += 1
            elif self._overflow == "drop_newest":
                self.dropped += 1
                return
            else:
                self._too_slow(message.channel)
                return
        queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _too_slow(self, channel: str) -> None:
        if self._error is not None or self._closed:
            return
        self._error = SubscriberTooSlow(channel, self._max)
        self._history.clear()  # the queue stays full, so later puts stop at the check above
        # Removed from the hub after the current fan-out loop, never during it.
        asyncio.get_running_loop().call_soon(self._hub._remove, self)
        self._closed = True
        self._wake()
        if self._on_overflow is not None:
            self._on_overflow(self._error)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        state = {None: "new", False: "open", True: "closed"}[self._closed]
        return f"<Subscription {','.join(self.channels)} {state} queued={self.qsize()}>"


def _parse_since(channels: tuple[str, ...],
                 since: str | Mapping[str, str] | None) -> dict[str, str] | None:
    if since is None:
        return None
    if isinstance(since, str):
        parts = since.split(",")
        if len(parts) == 1:
            parts = parts * len(channels)
        if len(parts) != len(channels):
            raise ValueError(f"since={since!r} has {len(parts)} ids for {len(channels)} channels")
        return {name: check_id(part.strip()) for name, part in zip(channels, parts, strict=True)}
    unknown = set(since) - set(channels)
    if unknown:
        raise ValueError(f"since names channels not subscribed: {sorted(unknown)}")
    return {name: check_id(value) for name, value in since.items()}


class Channels:
    """Publish/subscribe across tasks, processes and machines.

    ``backend`` moves messages between processes (default: :class:`InMemoryBackend`, one
    process). ``max_queue`` and ``overflow`` are the default slow-subscriber policy (see the
    module docstring); each :meth:`subscribe` may choose its own.

    Give it to the app to have it started and stopped by the lifespan, and injected into
    handlers that take a ``Channels`` parameter: ``App(channels=Channels(backend))``.

    Example::

        channels = Channels()

        async with channels, channels.subscribe("news") as subscription:
            await channels.publish("news", {"title": "Hello"})
            message = await anext(subscription)
            message.json()   # {"title": "Hello"}
    """

    def __init__(self, backend: Backend | None = None, *, max_queue: int = 1000,
                 overflow: Overflow = "drop_oldest") -> None:
        if backend is None:
            from joey.channels.memory import InMemoryBackend

            backend = InMemoryBackend()
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be one of {OVERFLOWS}, not {overflow!r}")
        self.backend = backend
        self.max_queue = max_queue
        self.overflow: Overflow = overflow
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = asyncio.Lock()
        self._state: Literal["new", "starting", "running", "stopped"] = "new"
        self._starting: asyncio.Future[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the backend (idempotent; publish and subscribe also start it on first use,
        unless stopped). Channels stopped can be started again (an app's lifespan may run twice).
        """
        if self._state == "running":
            return
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_future()
            self._state = "starting"
            try:
                await self.backend.start(self._deliver)
            except BaseException as exc:
                self._state = "new"
                self._starting.set_exception(exc)
                self._starting.exception()  # retrieved: others may not be waiting
                self._starting = None
                raise
            self._state = "running"
            self._starting.set_result(None)
        else:
            await asyncio.shield(self._starting)

    async def stop(self) -> None:
        """End every subscription (their loops finish) and close the backend."""
        if self._state == "stopped":
            return
        was_started = self._state != "new"
        self._state = "stopped"
        self._starting = None
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription._end()
        self._subscribers.clear()
        if was_started:
            await self.backend.stop()

    async def __aenter__(self) -> Channels:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any) -> str | None:
        """Send ``data`` (bytes, str, or anything JSON-encodable) to every subscriber of
        ``channel``, in every process. Never waits for subscribers. Returns the message id
        with a history backend. Raises :class:`ChannelsUnavailable` if the backend is down.
        """
        if self._state != "running":
            if self._state == "stopped":
                raise ChannelsUnavailable("The server is shutting down.", retry_after=1)
            await self.start()
        return await self.backend.publish(channel, encode_data(data))

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(self, *channels: str, since: str | Mapping[str, str] | None = None,
                  max_queue: int | None = None, overflow: Overflow | None = None) -> Subscription:
        """A subscription to ``channels``: ``async with channels.subscribe("a", "b") as s:``.

        ``since``: an event id (or a :attr:`Subscription.position`) to resume after: the
        history after it is replayed first (backends with history only; ``ValueError`` if it
        is not an id). ``max_queue`` / ``overflow`` override the slow-subscriber policy.
        """
        return Subscription(self, channels, since,
                            self.max_queue if max_queue is None else max_queue,
                            self.overflow if overflow is None else overflow)

    def subscribers(self, channel: str) -> int:
        """How many subscribers this process has on ``channel``."""
        return len(self._subscribers.get(channel, ()))

    async def _add(self, subscription: Subscription) -> None:
        if self._state != "running":
            if self._state == "stopped":
                subscription._end()
                return
            await self.start()
        backend = self.backend
        for name in subscription.channels:
            subscribers = self._subscribers.get(name)
            if subscribers is None:
                async with self._lock:
                    subscribers = self._subscribers.get(name)
                    if subscribers is None:
                        await backend.listen(name)
                        subscribers = self._subscribers[name] = set()
            # No await between joining and reading the position: messages after it are live.
            subscribers.add(subscription)
            subscription._positions[name] = backend.position(name)
        since = subscription._since
        if since is None:
            return
        if not backend.history:
            logger.debug("since= ignored: %s keeps no history", type(backend).__name__)
            return
        replayed: list[Message] = []
        for name in subscription.channels:
            until = subscription._positions[name]
            if until is not None and id_key(since[name]) < id_key(until):
                replayed.extend(await backend.replay(name, since[name], until))
        if len(subscription.channels) > 1:
            replayed.sort(key=lambda m: id_key(m.id or "0-0"))
        subscription._history.extend(replayed)
        subscription._wake()

    def _remove(self, subscription: Subscription) -> None:
        for name in subscription.channels:
            subscribers = self._subscribers.get(name)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[name]
                self.backend.unlisten(name)

    def _deliver(self, message: Message) -> None:
        subscribers = self._subscribers.get(message.channel)
        if subscribers:
            for subscription in subscribers:
                subscription._put(message)

    # -- the web: WebSockets and server-sent events -----------------------------------------

    def relay(self, websocket: WebSocket, subscription: Subscription, *,
              transform: Callable[[Message], str | bytes | None] | None = None,
              ) -> AsyncIterator[str | bytes]:
        """Relay ``subscription`` to ``websocket`` while you read what the client sends.

        Returns an async iterator of the client's messages (text, or bytes). Meanwhile each
        message of the subscription goes to the socket, through ``transform`` if given (return
        ``None`` to skip one). See :func:`relay`.
        """
        return relay(websocket, subscription, transform=transform)

    async def event_source(self, request: Request, *channels: str,
                           **options: Any) -> EventSourceResponse:
        """An :class:`~joey.sse.EventSourceResponse` of ``channels``, resumable with
        ``Last-Event-ID``. See :func:`event_source`."""
        return await event_source(self, request, *channels, **options)

    def __repr__(self) -> str:
        return f"<Channels {type(self.backend).__name__} {self._state}>"


# --- on the web: relay a subscription to a WebSocket, or serve it as server-sent events ------
#
# Both keep the handler in control: it authenticates, picks the channels, and decides what the
# client's messages become (relay hands them to the handler rather than publishing them);
# ``transform`` filters or rewrites what goes out.


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

    subscription._on_overflow = overflowed
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
        subscription._on_overflow = None
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
    try:
        async for message in subscription:
            out = message.text if transform is None else transform(message)
            if out is None:
                continue
            if isinstance(out, bytes):
                await websocket.send_bytes(out)
            else:
                await websocket.send_text(out)
    except SubscriberTooSlow as exc:
        return exc.code, exc.reason
    except (OSError, WebSocketDisconnect, RuntimeError):
        return None  # the client is gone (or the socket closed): nothing to tell it
    return GOING_AWAY, "Server shutting down"


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    from joey.websockets import WebSocketState

    if websocket.connection_state is WebSocketState.CONNECTED:
        with contextlib.suppress(OSError, RuntimeError):
            await websocket.close(code, reason)


async def event_source(
    channels: Channels,
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

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            if retry is not None:
                yield ServerSentEvent(retry=retry)
            try:
                async for message in subscription:
                    data = message.text if transform is None else transform(message)
                    if data is None:
                        continue
                    yield ServerSentEvent(data, event=event, id=subscription.position)
            except SubscriberTooSlow as exc:
                yield ServerSentEvent(comment=exc.reason, retry=retry)
                return
            yield ServerSentEvent(comment="Server shutting down", retry=retry)
        finally:
            await subscription.close()

    # At server shutdown the response itself ends the stream with a `retry:` hint.
    return EventSourceResponse(events(), ping_interval=ping_interval, shutdown_retry=retry)
