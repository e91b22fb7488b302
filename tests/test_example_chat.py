"""The example chat room's rules, in memory (issue #12 item 5): members joining and leaving
during a broadcast break nothing, and a member that stops reading is dropped, never the
room. Each member is a scripted ASGI peer of ``examples.app:app``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from examples.app import app


class Peer:
    """One WebSocket client: ``say`` queues a text for the app; what the app sends lands in
    ``texts``/``closed``. ``yields``: each send lets other tasks run (a real socket does,
    sometimes); ``stuck``: after the handshake, sends never complete (a client that stopped
    reading, its buffers full)."""

    def __init__(self, room: str, *, yields: bool = False, stuck: bool = False) -> None:
        self.room = room
        self.yields = yields
        self.stuck = stuck
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.texts: list[str] = []
        self.closed: int | None = None
        self.accepted = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted.set()
            return
        if self.stuck:
            await asyncio.Event().wait()
        if self.yields:
            await asyncio.sleep(0)
        if message["type"] == "websocket.send":
            self.texts.append(message["text"])
        elif message["type"] == "websocket.close":
            self.closed = message.get("code", 1000)

    async def join(self) -> Peer:
        path = f"/ws/chat/{self.room}"
        scope = {"type": "websocket", "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": b"", "headers": [], "subprotocols": []}
        self.task = asyncio.ensure_future(app(scope, self.receive, self.send))
        await asyncio.wait_for(self.accepted.wait(), 2)
        return self

    def say(self, text: str) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": text})

    async def leave(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        assert self.task is not None
        await asyncio.wait_for(self.task, 2)


@asynccontextmanager
async def running() -> AsyncIterator[None]:
    await app.startup()
    try:
        yield
    finally:
        await app.shutdown()


async def until(condition: Any, within: float = 5) -> None:
    for _ in range(int(within / 0.01)):  # bounded
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_joins_and_leaves_during_a_broadcast() -> None:
    async with running():
        speaker = await Peer("churn", yields=True).join()
        listener = await Peer("churn", yields=True).join()
        messages = [f"m{i}" for i in range(50)]
        for text in messages:
            speaker.say(text)
            guest = await Peer("churn", yields=True).join()  # joins mid-broadcast
            await guest.leave()
        await until(lambda: len(listener.texts) == len(messages))
        assert listener.texts == speaker.texts == messages
        assert speaker.closed is None and not speaker.task.done()  # type: ignore[union-attr]
        await speaker.leave()
        await listener.leave()


async def test_a_member_that_stops_reading_is_dropped_not_the_room() -> None:
    async with running():
        stuck = await Peer("slow", stuck=True).join()
        speaker = await Peer("slow").join()
        listener = await Peer("slow").join()
        messages = [f"m{i}" for i in range(3000)]  # more than a member's outbox holds
        for index, text in enumerate(messages):
            speaker.say(text)
            if index % 100 == 0:
                await asyncio.sleep(0)
        await until(lambda: len(listener.texts) == len(messages))
        assert listener.texts == speaker.texts == messages  # the room never stalled
        assert app.channels.subscribers("room:slow") == 2  # the stuck member was dropped
        assert stuck.task is not None
        stuck.task.cancel()  # its close never gets through either: a real server times out
        await asyncio.gather(stuck.task, return_exceptions=True)
        await speaker.leave()
        await listener.leave()
