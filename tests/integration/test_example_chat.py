"""The example chat room under churn over a real server: joins and leaves during broadcasts
lose nothing. The room's rules, deterministically, in tests/test_example_chat.py."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import ClientConnection, connect

from tests.integration.servers import Server
from tests.integration.test_websockets import _wait_for_open


async def receive_all(ws: ClientConnection, count: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    got: list[str] = []
    while len(got) < count:
        got.append(str(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))))
    return got


async def test_joins_and_leaves_during_broadcasts_lose_nothing(example_server: Server) -> None:
    url = f"{example_server.ws_url}/ws/chat/churn"
    speaker, listener = await connect(url), await connect(url)
    await _wait_for_open(example_server, 2)
    stop = asyncio.Event()

    async def churn() -> None:
        for _ in range(200):  # bounded: members come and go while the speaker talks
            if stop.is_set():
                return
            guest = await connect(url)
            await guest.close()

    churning = [asyncio.ensure_future(churn()) for _ in range(4)]
    try:
        messages = [f"message {i} " + "x" * 200 for i in range(500)]
        for text in messages:
            await speaker.send(text)
            await asyncio.sleep(0)
        assert await receive_all(listener, len(messages), 30) == messages
        assert await receive_all(speaker, len(messages), 30) == messages  # still open
    finally:
        stop.set()
        await asyncio.gather(*churning, return_exceptions=True)
        await speaker.close()
        await listener.close()
    await _wait_for_open(example_server, 0)
