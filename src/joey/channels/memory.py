"""The in-memory channels backend: one process, no I/O (development, tests, single workers)."""

from __future__ import annotations

import time
from collections import deque

from joey.channels.backend import Backend, Deliver, Message, id_key


class InMemoryBackend(Backend):
    """Messages stay in this process: every subscriber of the app's :class:`Channels` gets
    them, other processes do not.

    ``history``: how many messages to keep per channel for replay (``since=``, SSE
    ``Last-Event-ID``); 0 keeps none. Ids look like Redis stream ids
    (``<milliseconds>-<sequence>``) so clients see the same format with either backend.
    """

    carries_trace = True

    def __init__(self, history: int = 0) -> None:
        if history < 0:
            raise ValueError("history must be 0 or more")
        self.history = history > 0
        self._keep = history
        self._deliver: Deliver | None = None
        self._last: dict[str, str] = {}
        self._kept: dict[str, deque[Message]] = {}
        self._clock = (0, 0)

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    def _next_id(self) -> str:
        ms, seq = int(time.time() * 1000), 0
        last_ms, last_seq = self._clock
        if ms <= last_ms:
            ms, seq = last_ms, last_seq + 1
        self._clock = (ms, seq)
        return f"{ms}-{seq}"

    async def publish(self, channel: str, data: bytes,
                      trace: dict[str, str] | None = None) -> str | None:
        message = Message(channel, data, self._next_id(), trace)
        self._last[channel] = message.id  # type: ignore[assignment]
        if self._keep:
            kept = self._kept.get(channel)
            if kept is None:
                kept = self._kept[channel] = deque(maxlen=self._keep)
            kept.append(message)
        if self._deliver is not None:
            self._deliver(message)
        return message.id

    def position(self, channel: str) -> str | None:
        return self._last.get(channel, "0-0")

    async def replay(self, channel: str, after: str, until: str) -> list[Message]:
        low, high = id_key(after), id_key(until)
        return [m for m in self._kept.get(channel, ())
                if low < id_key(m.id) <= high]  # type: ignore[arg-type]


__all__ = [
    "InMemoryBackend",
]
