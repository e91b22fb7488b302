"""The fan-out hub: one :class:`Channels` per app (per process).

It owns a backend, which moves messages between processes, and the local subscribers of each
channel. The backend listens to a channel once per process, whatever the number of local
subscribers, and hands every message to ``Channels._deliver``, which offers it to each
subscriber's queue without awaiting anything: publishing never waits for a subscriber
(:mod:`joey.channels.subscription` says what a full queue does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from joey.channels.backend import (
    OVERFLOWS,
    Backend,
    ChannelsUnavailable,
    Message,
    Overflow,
    encode_data,
    id_key,
    logger,
)
from joey.channels.subscription import Subscription
from joey.channels.web import event_source, relay

if TYPE_CHECKING:
    from joey.metrics.families import ChannelMetrics
    from joey.observability.tracing import Tracing
    from joey.requests import Request
    from joey.sse import EventSourceResponse
    from joey.websockets import WebSocket


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
        #: where publishes and deliveries are reported (``App(metrics=...)`` sets it)
        self.metrics: ChannelMetrics | None = None
        #: the app's tracing (``App(tracing=...)`` sets it): publishes carry the trace,
        #: :func:`relay` and :func:`event_source` send each message in a span linked to it
        self.tracing: Tracing | None = None

    def report_to(self, metrics: ChannelMetrics) -> None:
        """Report subscribers, publishes, deliveries and drops to ``metrics`` (an app with
        ``metrics=`` calls this for its channels)."""
        self.metrics = metrics

    def trace_with(self, tracing: Tracing | None) -> None:
        """Carry the publisher's trace context with each message (backends with
        :attr:`~joey.channels.Backend.carries_trace`), and link deliveries to it."""
        self.tracing = tracing

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
            if self.metrics is not None:
                self.metrics.subscribers.dec(len(subscribers))
            for subscription in subscribers:
                subscription.finish()
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
        tracing = self.tracing
        if tracing is not None and self.backend.carries_trace:
            message_id = await self.backend.publish(  # type: ignore[call-arg]
                channel, encode_data(data), trace=tracing.publish_context())
        else:
            message_id = await self.backend.publish(channel, encode_data(data))
        if self.metrics is not None:
            self.metrics.published.inc()
        return message_id

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

    async def join(self, subscription: Subscription) -> dict[str, str | None] | None:
        """Register ``subscription`` for the live messages of its channels (what
        :meth:`Subscription.open` calls). Returns each channel's live position, read in the
        same step as the registration, or ``None`` when the channels have stopped."""
        if self._state != "running":
            if self._state == "stopped":
                return None
            await self.start()
        backend = self.backend
        positions: dict[str, str | None] = {}
        for name in subscription.channels:
            subscribers = self._subscribers.get(name)
            if subscribers is None:
                async with self._lock:
                    subscribers = self._subscribers.get(name)
                    if subscribers is None:
                        await backend.listen(name)
                        subscribers = self._subscribers[name] = set()
            # No await between joining and reading the position: messages after it are live.
            if self.metrics is not None and subscription not in subscribers:
                self.metrics.subscribers.inc()
            subscribers.add(subscription)
            positions[name] = backend.position(name)
        return positions

    async def history(self, since: Mapping[str, str],
                      until: Mapping[str, str | None]) -> list[Message]:
        """The messages after ``since`` up to ``until`` (live positions), oldest first, from
        a backend that keeps history (none otherwise)."""
        backend = self.backend
        if not backend.history:
            logger.debug("since= ignored: %s keeps no history", type(backend).__name__)
            return []
        replayed: list[Message] = []
        for name, after in since.items():
            last = until.get(name)
            if last is not None and id_key(after) < id_key(last):
                replayed.extend(await backend.replay(name, after, last))
        if len(since) > 1:
            replayed.sort(key=lambda m: id_key(m.id or "0-0"))
        return replayed

    def leave(self, subscription: Subscription) -> None:
        """Unregister ``subscription`` (what :meth:`Subscription.close` calls)."""
        for name in subscription.channels:
            subscribers = self._subscribers.get(name)
            if subscribers is None:
                continue
            if self.metrics is not None and subscription in subscribers:
                self.metrics.subscribers.dec()
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[name]
                self.backend.unlisten(name)

    def _deliver(self, message: Message) -> None:
        subscribers = self._subscribers.get(message.channel)
        if subscribers:
            metrics = self.metrics
            if metrics is None:
                for subscription in subscribers:
                    subscription.offer(message)
            else:
                metrics.delivered.inc(sum(s.offer(message) for s in subscribers))

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


__all__ = [
    "Channels",
]
