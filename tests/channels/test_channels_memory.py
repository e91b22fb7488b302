"""Channels in one process: the hub, subscriptions and their policies, the in-memory backend,
and the app integration (injection, lifespan, WebSocket relay, SSE with resume)."""

from __future__ import annotations

import asyncio
import time

import pytest

from joey import App, Request, WebSocket, WebSocketDisconnect
from joey.channels import (
    Channels,
    ChannelsUnavailable,
    InMemoryBackend,
    Message,
    SubscriberTooSlow,
)
from joey.sse import EventSourceResponse
from joey.testing import AsyncTestClient


async def test_publish_reaches_every_subscriber_in_order() -> None:
    async with Channels() as channels:
        async with channels.subscribe("a") as one, channels.subscribe("a", "b") as two:
            for i in range(5):
                await channels.publish("a", f"m{i}")
            await channels.publish("b", {"k": 1})
            await channels.publish("c", b"nobody")
            got_one = [one.get_nowait() for _ in range(5)]
            got_two = [await anext(two) for _ in range(6)]
        assert [m.text for m in got_one] == [f"m{i}" for i in range(5)]  # type: ignore[union-attr]
        assert [m.channel for m in got_two] == ["a"] * 5 + ["b"]
        assert got_two[5].json() == {"k": 1}
        assert one.get_nowait() is None and one.closed
        assert channels.subscribers("a") == 0


async def test_data_is_bytes_on_the_wire() -> None:
    async with Channels() as channels, channels.subscribe("x") as sub:
        await channels.publish("x", b"\x00\xff")
        await channels.publish("x", "é")
        await channels.publish("x", [1, "two"])
        assert [m.data for m in (await anext(sub), await anext(sub), await anext(sub))] == [
            b"\x00\xff", "é".encode(), b'[1,"two"]']


async def test_bad_arguments_are_clear_errors() -> None:
    channels = Channels()
    with pytest.raises(ValueError, match="at least one channel"):
        channels.subscribe()
    with pytest.raises(ValueError, match="max_queue"):
        channels.subscribe("a", max_queue=0)
    with pytest.raises(ValueError, match="overflow"):
        channels.subscribe("a", overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an event id"):
        channels.subscribe("a", since="0-0\r\nevil")
    with pytest.raises(ValueError, match="2 ids for 3 channels"):
        channels.subscribe("a", "b", "c", since="1-0,2-0")
    with pytest.raises(ValueError, match="not subscribed"):
        channels.subscribe("a", since={"b": "1-0"})
    with pytest.raises(RuntimeError, match="Open the subscription first"):
        await anext(channels.subscribe("a"))
    with pytest.raises(ValueError):
        Channels(max_queue=0)
    with pytest.raises(ValueError):
        InMemoryBackend(history=-1)


async def test_drop_oldest_keeps_the_newest() -> None:
    async with Channels(max_queue=3) as channels, channels.subscribe("t") as sub:
        for i in range(10):
            await channels.publish("t", str(i))
        assert [(await anext(sub)).text for _ in range(3)] == ["7", "8", "9"]
        assert sub.dropped == 7


async def test_drop_newest_keeps_a_prefix() -> None:
    channels = Channels()
    async with channels, channels.subscribe("t", max_queue=3, overflow="drop_newest") as sub:
        for i in range(10):
            await channels.publish("t", str(i))
        assert [(await anext(sub)).text for _ in range(3)] == ["0", "1", "2"]
        assert sub.dropped == 7 and sub.qsize() == 0


async def test_disconnect_ends_only_the_slow_subscriber() -> None:
    channels = Channels()
    async with channels, channels.subscribe("t", max_queue=5, overflow="disconnect") as slow, \
            channels.subscribe("t", max_queue=1000) as fast:
        for i in range(100):
            await channels.publish("t", str(i))
        with pytest.raises(SubscriberTooSlow) as info:
            await anext(slow)
        assert info.value.code == 1008 and "more than 5 messages" in info.value.reason
        assert slow.closed
        await asyncio.sleep(0)  # the slow one leaves the channel after the fan-out
        assert channels.subscribers("t") == 1
        assert [(await anext(fast)).text for _ in range(100)] == [str(i) for i in range(100)]


async def test_publishing_never_waits_for_a_subscriber() -> None:
    async with Channels(max_queue=100) as channels, channels.subscribe("t"):
        started = time.perf_counter()
        for _ in range(20_000):
            await channels.publish("t", b"x")  # nobody reads: the queue stays bounded
        assert time.perf_counter() - started < 5


async def test_history_replay_then_live_without_gap_or_duplicate() -> None:
    async with Channels(InMemoryBackend(history=100)) as channels:
        ids = [await channels.publish("r", str(i)) for i in range(10)]
        assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        async with channels.subscribe("r", since=ids[3]) as sub:
            await channels.publish("r", "live")
            texts = [(await anext(sub)).text for _ in range(7)]
        assert texts == ["4", "5", "6", "7", "8", "9", "live"]


async def test_history_is_bounded_and_position_resumes_several_channels() -> None:
    async with Channels(InMemoryBackend(history=3)) as channels:
        async with channels.subscribe("a", "b") as sub:
            await channels.publish("a", "a1")
            await channels.publish("b", "b1")
            assert [(await anext(sub)).text for _ in range(2)] == ["a1", "b1"]
            position = sub.position
        assert position is not None and len(position.split(",")) == 2
        for text in ("a2", "b2", "a3"):
            await channels.publish(text[0], text)
        async with channels.subscribe("a", "b", since=position) as again:
            assert [(await anext(again)).text for _ in range(3)] == ["a2", "b2", "a3"]
        for i in range(10):
            await channels.publish("a", f"x{i}")
        async with channels.subscribe("a", since="0-0") as old:
            assert [m.text for m in [await anext(old) for _ in range(3)]] == ["x7", "x8", "x9"]


async def test_stop_ends_subscriptions_and_refuses_publishing() -> None:
    channels = Channels()
    await channels.start()
    sub = await channels.subscribe("s").open()
    reader = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)
    await channels.stop()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 1)
    with pytest.raises(ChannelsUnavailable) as info:
        await channels.publish("s", "late")
    assert info.value.status_code == 503 and info.value.headers["retry-after"] == "1"
    async with channels.subscribe("s") as after:
        assert [m async for m in after] == []


async def test_message_value_semantics() -> None:
    assert Message("a", b"1", "1-0") == Message("a", b"1", "1-0")
    assert Message("a", b"1") != Message("a", b"2")
    assert "Message('a', b'1'" in repr(Message("a", b"1"))


# --- the app: injection, lifespan, WebSocket relay, SSE ---------------------------------------


def make_app(channels: Channels | None = None) -> App:
    app = App(channels=channels or Channels(InMemoryBackend(history=50)))

    @app.post("/rooms/{room}")
    async def post(room: str, request: Request, channels: Channels) -> dict[str, str | None]:
        return {"id": await channels.publish(room, await request.body())}

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str, channels: Channels) -> None:
        if websocket.query_params.get("token") != "ok":  # the handler stays in control: auth
            await websocket.close(1008)
            return
        await websocket.accept()
        async with channels.subscribe(room, max_queue=int(websocket.query_params.get("q", "100")),
                                      overflow="disconnect") as subscription:
            async for text in channels.relay(
                websocket, subscription,
                transform=lambda m: None if m.text.startswith("secret") else m.text.upper(),
            ):
                if isinstance(text, str) and text != "drop":  # filtering what goes in
                    await channels.publish(room, text)

    @app.get("/rooms/{room}/events")
    async def events(room: str, request: Request, channels: Channels) -> EventSourceResponse:
        return await channels.event_source(request, room, event="say", ping_interval=None)

    return app


async def test_handlers_get_the_apps_channels_and_the_lifespan_runs_them() -> None:
    channels = Channels()
    app = make_app(channels)
    async with AsyncTestClient(app) as client:
        assert app.channels is channels
        async with channels.subscribe("lobby") as sub:
            response = await client.post("/rooms/lobby", content=b"hi")
            assert response.status_code == 200
            assert (await anext(sub)).text == "hi"
            waiting = asyncio.ensure_future(anext(sub))
    # shutdown ended the subscription
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)


async def test_default_channels_are_in_memory_and_stopped_at_shutdown() -> None:
    app = App()

    @app.get("/pub")
    async def pub(channels: Channels) -> str:
        await channels.publish("x", "1")
        return "ok"

    async with AsyncTestClient(app) as client:
        assert (await client.get("/pub")).text == "ok"
        sub = await app.channels.subscribe("x").open()
    assert sub.closed


async def test_websocket_relay_both_ways_with_transform_and_filter() -> None:
    app = make_app()
    async with AsyncTestClient(app) as client:
        async with client.websocket_connect("/ws/r1?token=ok") as one, \
                client.websocket_connect("/ws/r1?token=ok") as two:
            await one.send_text("hello")
            assert await one.receive_text() == "HELLO"
            assert await two.receive_text() == "HELLO"
            await two.send_text("drop")
            await client.post("/rooms/r1", content=b"secret plan")
            await client.post("/rooms/r1", content=b"from http")
            assert await one.receive_text() == "FROM HTTP"
            assert await two.receive_text() == "FROM HTTP"
        assert app.channels.subscribers("r1") == 0


async def test_websocket_relay_refused_without_auth() -> None:
    from joey.testing import WebSocketDenied

    async with AsyncTestClient(make_app()) as client:
        with pytest.raises(WebSocketDenied):
            async with client.websocket_connect("/ws/r1"):
                pass


async def test_websocket_relay_closes_a_slow_member_with_1008() -> None:
    app = make_app()
    async with AsyncTestClient(app) as client, \
            client.websocket_connect("/ws/r2?token=ok&q=3") as slow, \
            client.websocket_connect("/ws/r2?token=ok&q=1000") as fast:
        # The test session buffers without limit, so fill the queue from inside: a burst
        # published in one step, before the relay's sender can run.
        for i in range(50):
            await app.channels.publish("r2", str(i))
        received = []
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                received.append(await slow.receive_text())
        assert info.value.code == 1008
        assert "Too slow" in info.value.reason
        assert [await fast.receive_text() for _ in range(50)] == [str(i) for i in range(50)]


async def test_websocket_relay_closes_with_1001_at_shutdown() -> None:
    app = make_app()
    client = AsyncTestClient(app)
    await client.__aenter__()
    async with client.websocket_connect("/ws/r3?token=ok") as ws:
        await ws.send_text("x")
        assert await ws.receive_text() == "X"
        await app.channels.stop()
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_text()
        assert info.value.code == 1001
    await client.__aexit__(None, None, None)


async def read_events(response: object, count: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    buffer = ""
    async for chunk in response.aiter_text():  # type: ignore[attr-defined]
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if "data" in fields:
                events.append(fields)
            if len(events) == count:
                return events
    return events


async def test_sse_events_have_ids_and_last_event_id_resumes_without_duplicates() -> None:
    app = make_app()
    async with AsyncTestClient(app) as client:
        for i in range(3):
            await client.post("/rooms/s1", content=f"old{i}".encode())
        async with client.stream("GET", "/rooms/s1/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await client.post("/rooms/s1", content=b"a")
            await client.post("/rooms/s1", content=b"b")
            first = await read_events(response, 2)
        assert [e["data"] for e in first] == ["a", "b"]
        assert all(e["event"] == "say" and e["id"] for e in first)
        for text in ("c", "d"):  # missed while disconnected
            await client.post("/rooms/s1", content=text.encode())
        async with client.stream("GET", "/rooms/s1/events",
                                 headers={"last-event-id": first[0]["id"]}) as response:
            await client.post("/rooms/s1", content=b"e")
            again = await read_events(response, 4)
        assert [e["data"] for e in again] == ["b", "c", "d", "e"]
        ids = [e["id"] for e in again]
        assert len(set(ids)) == 4 and ids[0] == first[1]["id"]


async def test_sse_bad_last_event_id_is_a_400() -> None:
    async with AsyncTestClient(make_app()) as client:
        response = await client.get("/rooms/s1/events", headers={"last-event-id": "nope"})
        assert response.status_code == 400
        assert "Last-Event-ID" in response.json()["detail"]


async def test_channels_start_again_after_a_stop() -> None:
    app = make_app()
    for _ in range(2):  # an app's lifespan may run twice (tests do)
        async with AsyncTestClient(app) as client, app.channels.subscribe("again") as sub:
            await client.post("/rooms/again", content=b"once more")
            assert (await anext(sub)).text == "once more"
