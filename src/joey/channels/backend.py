"""The backend contract of channels: messages, ids, errors, and what a backend implements.

A backend moves messages between processes (:class:`~joey.channels.memory.InMemoryBackend`
within one, the Redis backends across many) and hands each to the hub's ``deliver``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from joey._json import decode_json
from joey.exceptions import ServiceUnavailable

logger = logging.getLogger("joey.channels")

Overflow = Literal["drop_oldest", "drop_newest", "disconnect"]
OVERFLOWS = ("drop_oldest", "drop_newest", "disconnect")
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
    keeps history, its ``id`` (ordered within the channel; ``None`` with Redis pub/sub).

    ``trace``: the publisher's trace context (``traceparent``...), when the app traces and the
    backend carries it (:attr:`Backend.carries_trace`); not part of equality."""

    __slots__ = ("channel", "data", "id", "trace")

    def __init__(self, channel: str, data: bytes, id: str | None = None,
                 trace: dict[str, str] | None = None) -> None:
        self.channel = channel
        self.data = data
        self.id = id
        self.trace = trace

    @property
    def text(self) -> str:
        """The data decoded as UTF-8."""
        return self.data.decode("utf-8", "replace")

    def json(self) -> Any:
        """The data decoded as JSON: ``msgspec.DecodeError`` if it is not JSON, or is nested
        too deeply to decode (:class:`joey._json.JSONTooDeep`, never a ``RecursionError``)."""
        return decode_json(self.data)

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
    #: ``publish`` takes ``trace=`` (the publisher's trace context) and its messages carry it
    carries_trace = False

    async def start(self, deliver: Deliver) -> None:
        """Connect; from now on call ``deliver(message)`` for every message of a listened
        channel, in publish order per channel."""

    async def stop(self) -> None:
        """Stop delivering and close connections."""

    async def publish(self, channel: str, data: bytes) -> str | None:
        """Send ``data`` to every process listening to ``channel``; the new id, if any.
        Raises :class:`ChannelsUnavailable` when the message cannot be sent.

        A backend with :attr:`carries_trace` takes a keyword ``trace: dict[str, str] | None``
        too (passed only with tracing on) and delivers it as :attr:`Message.trace`."""
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


__all__ = [
    "OVERFLOWS",
    "Backend",
    "ChannelsUnavailable",
    "Deliver",
    "Message",
    "Overflow",
    "SubscriberTooSlow",
    "check_id",
    "encode_data",
    "id_key",
]
