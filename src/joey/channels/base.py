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
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from joey.exceptions import ServiceUnavailable

if TYPE_CHECKING:
    from joey.requests import Request
    from joey.sse import EventSourceResponse
    from joey.websockets import WebSocket

logger = logging.getLogger("joey.channels")

Overflow = Literal["drop_oldest", "drop_newest", "disconnect"]
_OVERFLOWS = ("drop_oldest", "drop_newest", "disconnect")
_ID = re.compile(r"\d{1,20}-\d{1,20}")


class ChannelsUnavailable(ServiceUnavailable):
    """The channels backend cannot be reached (Redis down, frozen or restarting).

    Raised by :meth:`Channels.publish` and by opening a subscription. It is a
    :class:`joey.ServiceUnavailable`, so unhandled in a handler it becomes a 503 with
    ``Retry-After``.
    """


class SubscriberTooSlow(Exception):
    """A subscription with ``overflow="disconnect"`` fell ``max_queue`` messages behind.

    ``code`` and ``reason`` are what :meth:`Channels.relay` closes the WebSocket with.
    """

    code = 1008  # policy violation: the client broke the "keep up" contract

    def __init__(self, channel: str, max_queue: int) -> None:
        self.channel = channel
        self.reason = f"Too slow: more than {max_queue} messages behind"
        super().__init__(f"Subscriber of {channel!r} fell behind: {self.reason}")


class Message:
    """One published message: its ``channel``, its ``data`` (bytes) and, with a backend that
    keeps history, its ``id`` (ordered within the channel; ``None`` with Redis pub/sub)."""

    __slots__ = ("channel", "data", "id")

    def __init__(self, channel: str, data: bytes, id: str | None = None) -> None:
        self.channel = channel
        self.data = data
        self.id = id

    @property
    def text(self) -> str:
        """The data decoded as UTF-8."""
        return self.data.decode("utf-8", "replace")

    def json(self) -> Any:
        """The data decoded as JSON."""
        return msgspec.json.decode(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.channel, self.data, self.id) == (
            other.channel, other.data, other.id)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Message({self.channel!r}, {self.data!r}, id={self.id!r})"


def encode_data(data: Any) -> bytes:
    """What goes on the wire: bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return msgspec.json.encode(data)


def id_key(event_id: str) -> tuple[int, int]:
    """An event id (``"<milliseconds>-<sequence>"``) as a sortable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def check_id(event_id: str) -> str:
    if not _ID.fullmatch(event_id):
        raise ValueError(f"{event_id!r} is not an event id (expected <milliseconds>-<sequence>)")
    return event_id


Deliver = Callable[[Message], None]


class Backend:
    """How messages travel between processes. Subclasses implement the methods below;
    ``Channels`` calls them, never user code.

    ``history``: whether messages get ids and can be replayed (``since=``).
    """

    history = False

    async def start(self, deliver: Deliver) -> None:
        """Connect; from now on call ``deliver(message)`` for every message of a listened
        channel, in publish order per channel."""

    async def stop(self) -> None:
        """Stop delivering and close connections."""

    async def publish(self, channel: str, data: bytes) -> str | None:
        """Send ``data`` to every process listening to ``channel``; the new id, if any.
        Raises :class:`ChannelsUnavailable` when the message cannot be sent."""
        raise NotImplementedError

    async def listen(self, channel: str) -> None:
        """Start delivering ``channel`` (called for the first local subscriber). Returns once
        every message published afterwards will be delivered."""

    def unlisten(self, channel: str) -> None:
        """Stop delivering ``channel`` (its last local subscriber left)."""

    def position(self, channel: str) -> str | None:
        """The id of the last message delivered (or to be skipped) on a listened channel."""
        return None

    async def replay(self, channel: str, after: str, until: str) -> list[Message]:
        """The messages with ``after < id <= until``, oldest first."""
        return []


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
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {_OVERFLOWS}, not {overflow!r}")
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
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {_OVERFLOWS}, not {overflow!r}")
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
        ``None`` to skip one). See :func:`joey.channels.web.relay`.
        """
        from joey.channels.web import relay

        return relay(websocket, subscription, transform=transform)

    async def event_source(self, request: Request, *channels: str,
                           **options: Any) -> EventSourceResponse:
        """An :class:`~joey.sse.EventSourceResponse` of ``channels``, resumable with
        ``Last-Event-ID``. See :func:`joey.channels.web.event_source`."""
        from joey.channels.web import event_source

        return await event_source(self, request, *channels, **options)

    def __repr__(self) -> str:
        return f"<Channels {type(self.backend).__name__} {self._state}>"
