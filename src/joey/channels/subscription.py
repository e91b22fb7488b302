"""A subscriber of channels: a bounded queue with a slow-subscriber policy, and resuming.

Each subscriber's queue is bounded (``max_queue``); when it is full the subscriber's policy
decides (``overflow``):

    "drop_oldest"  the oldest queued message is discarded to make room (a live view: a ticker)
    "drop_newest"  the new message is discarded (the subscriber keeps a consistent prefix)
    "disconnect"   the subscription ends with :class:`SubscriberTooSlow` (WebSockets are closed
                   with 1008; an SSE client reconnects and resumes from history)

A subscription opened with ``since`` (an event id) first replays the channel's history after
that id, then live messages, with neither gap nor duplicate: the hub registers it for live
messages and reads the backend's live position *in the same step* (no ``await`` in between),
then the subscription asks for the history between ``since`` and that position.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from joey.channels.backend import (
    OVERFLOWS,
    Message,
    Overflow,
    SubscriberTooSlow,
    check_id,
)

if TYPE_CHECKING:
    from joey.metrics.families import ChannelMetrics
    from joey.observability.tracing import Tracing

class Hub(Protocol):
    """What a subscription needs of its hub (:class:`~joey.channels.Channels`)."""

    @property
    def tracing(self) -> Tracing | None: ...

    async def join(self, subscription: Subscription) -> dict[str, str | None] | None: ...

    @property
    def metrics(self) -> ChannelMetrics | None: ...

    def leave(self, subscription: Subscription) -> None: ...

    async def history(self, since: Mapping[str, str],
                      until: Mapping[str, str | None]) -> list[Message]: ...


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
        self, hub: Hub, channels: tuple[str, ...], since: str | Mapping[str, str] | None,
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

    @property
    def tracing(self) -> Tracing | None:
        """The tracing of the channels it came from (``None``: not traced)."""
        return self._hub.tracing

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> Subscription:
        """Subscribe (idempotent). Raises :class:`ChannelsUnavailable` if the backend is down."""
        if self._closed is None:
            self._closed = False
            try:
                await self._join()
            except BaseException:
                self._hub.leave(self)
                self.finish()
                raise
        return self

    async def _join(self) -> None:
        positions = await self._hub.join(self)
        if positions is None:  # the channels have stopped
            self.finish()
            return
        # The live position of each channel, read as it was joined: history ends there.
        self._positions.update(positions)
        if self._since is not None:
            self._history.extend(await self._hub.history(self._since, positions))
            self._wake()

    async def close(self) -> None:
        """Unsubscribe and end iteration (idempotent)."""
        if self._closed is False:
            self._hub.leave(self)
        self.finish()

    def on_overflow(self, callback: Callable[[SubscriberTooSlow], None] | None) -> None:
        """Have ``callback`` called (once) when the ``"disconnect"`` policy ends this
        subscription; ``None`` removes it. :func:`relay` uses it to stop a stuck sender."""
        self._on_overflow = callback

    def finish(self) -> None:
        """End iteration without leaving the hub (the hub calls it as it stops)."""
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

    def offer(self, message: Message) -> bool:
        """Queue a live message, never waiting: a full queue applies the overflow policy.
        Returns whether ``message`` was queued."""
        queue = self._queue
        if len(queue) >= self._max:
            if self._closed:
                return False  # disconnected for being slow; leaves after this fan-out
            if self._overflow == "drop_oldest":
                queue.popleft()
                self._lost()
            elif self._overflow == "drop_newest":
                self._lost()
                return False
            else:
                self._too_slow(message.channel)
                return False
        queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def _lost(self) -> None:
        self.dropped += 1
        metrics = self._hub.metrics
        if metrics is not None:
            metrics.dropped.labels(self._overflow).inc()

    def _too_slow(self, channel: str) -> None:
        if self._error is not None or self._closed:
            return
        metrics = self._hub.metrics
        if metrics is not None:  # the message that did not fit
            metrics.dropped.labels("disconnect").inc()
        self._error = SubscriberTooSlow(channel, self._max)
        self._history.clear()  # the queue stays full, so later puts stop at the check above
        # Removed from the hub after the current fan-out loop, never during it.
        asyncio.get_running_loop().call_soon(self._hub.leave, self)
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


__all__ = [
    "Hub",
    "Subscription",
]
