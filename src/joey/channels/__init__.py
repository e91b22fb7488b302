"""Channels: publish/subscribe for WebSockets and server-sent events, across processes.

    channels.publish("room:1", {"text": "hi"})       # from any handler, task or process
    async with channels.subscribe("room:1") as subscription:
        async for message in subscription: ...        # Message(channel, data, id)

Layout:

* :mod:`joey.channels.base`: :class:`Message`, :class:`Subscription` (a bounded queue with a
  slow-subscriber policy) and :class:`Channels`, the per-process hub that fans messages out;
* :mod:`joey.channels.memory`: :class:`InMemoryBackend` (one process; the default);
* :mod:`joey.channels.redis`: :class:`RedisPubSubBackend` and :class:`RedisStreamsBackend`
  (needs the ``redis`` extra, imported only when used);
* :mod:`joey.channels.web`: :func:`relay` (WebSocket) and :func:`event_source` (SSE with
  ``Last-Event-ID`` resume).

``App(channels=Channels(...))`` starts and stops them with the lifespan, and a handler gets them
by taking a parameter annotated ``Channels``. See docs/channels.md.
"""

from typing import TYPE_CHECKING, Any

from joey.channels.base import (
    Backend,
    Channels,
    ChannelsUnavailable,
    Message,
    Overflow,
    SubscriberTooSlow,
    Subscription,
)
from joey.channels.memory import InMemoryBackend

if TYPE_CHECKING:
    from joey.channels.redis import RedisPubSubBackend, RedisStreamsBackend
    from joey.channels.web import event_source, relay

_LAZY = {
    "RedisPubSubBackend": "joey.channels.redis",
    "RedisStreamsBackend": "joey.channels.redis",
    "event_source": "joey.channels.web",
    "relay": "joey.channels.web",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'joey.channels' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
