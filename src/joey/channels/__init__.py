"""Channels: publish/subscribe for WebSockets and server-sent events, across processes.

    channels.publish("room:1", {"text": "hi"})       # from any handler, task or process
    async with channels.subscribe("room:1") as subscription:
        async for message in subscription: ...        # Message(channel, data, id)

Layout:

* :mod:`joey.channels.backend`: :class:`Message`, ids, errors, and the :class:`Backend`
  contract;
* :mod:`joey.channels.subscription`: :class:`Subscription` (a bounded queue with a
  slow-subscriber policy, and resuming from history);
* :mod:`joey.channels.hub`: :class:`Channels`, the per-process hub that fans messages out;
* :mod:`joey.channels.web`: :func:`relay` (WebSocket) and :func:`event_source` (SSE with
  ``Last-Event-ID`` resume);
* :mod:`joey.channels.memory`: :class:`InMemoryBackend` (one process; the default);
* :mod:`joey.channels.redis`: :class:`RedisPubSubBackend` and :class:`RedisStreamsBackend`
  (needs the ``redis`` extra, imported only when used).

``App(channels=Channels(...))`` starts and stops them with the lifespan, and a handler gets them
by taking a parameter annotated ``Channels``. See docs/channels.md.
"""

from typing import TYPE_CHECKING

from joey.channels.backend import (
    Backend,
    ChannelsUnavailable,
    Message,
    Overflow,
    SubscriberTooSlow,
)
from joey.channels.hub import Channels
from joey.channels.memory import InMemoryBackend
from joey.channels.subscription import Subscription
from joey.channels.web import event_source, relay
from joey.lazy import lazy_attributes

if TYPE_CHECKING:
    from joey.channels.redis import RedisPubSubBackend, RedisStreamsBackend

_LAZY = {
    "RedisPubSubBackend": "joey.channels.redis",
    "RedisStreamsBackend": "joey.channels.redis",
}


__getattr__ = lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "Backend",
    "Channels",
    "ChannelsUnavailable",
    "InMemoryBackend",
    "Message",
    "Overflow",
    "RedisPubSubBackend",
    "RedisStreamsBackend",
    "SubscriberTooSlow",
    "Subscription",
    "event_source",
    "relay",
]
