"""Open streams at shutdown: ``App.close_streams`` (and ``App.shutdown``) end every streaming
response, close its iterator and let it finish the body cleanly. Over a real server in
tests/integration/test_shutdown.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

from joey import App, StreamingResponse
from joey.sse import EventSourceResponse, ServerSentEvent
from joey.types import Message
from tests.asgi import Recorder, body_messages, http_scope


def _streaming_app(log: list[str]) -> App:
    app = App(shutdown_timeout=2)

    @app.get("/endless")
    async def endless() -> StreamingResponse:
        async def forever() -> AsyncIterator[str]:
            try:
                i = 0
                while True:
                    yield f"{i}\n"
                    i += 1
                    await asyncio.sleep(0.01)
            finally:
                log.append("endless finally")

        return StreamingResponse(forever(), media_type="text/plain")

    @app.get("/idle")
    async def idle() -> EventSourceResponse:
        async def quiet() -> AsyncIterator[ServerSentEvent]:
            try:
                yield ServerSentEvent("hello", id="1")
                await asyncio.sleep(3600)
            finally:
                log.append("idle finally")

        return EventSourceResponse(quiet(), ping_interval=None,
                                   shutdown_event=ServerSentEvent("bye", event="shutdown"),
                                   shutdown_retry=2500)

    @app.on_shutdown
    def hook() -> None:
        log.append("shutdown hook")

    return app


async def _open(app: App, path: str) -> tuple[Recorder, asyncio.Task[None]]:
    recorder = Recorder(body_messages(), then_disconnect=False)  # the client stays
    task = asyncio.ensure_future(app(http_scope(path), recorder.receive, recorder.send))
    for _ in range(200):  # bounded: ~2 s for the first chunk
        if recorder.body:
            break
        await asyncio.sleep(0.01)
    assert recorder.body, "the stream never started"
    return recorder, task


def _ended_cleanly(recorder: Recorder) -> bool:
    last = recorder.sent[-1]
    return last["type"] == "http.response.body" and not last.get("more_body", False)


async def test_close_streams_ends_an_endless_stream_and_runs_its_finally() -> None:
    log: list[str] = []
    app = _streaming_app(log)
    recorder, task = await _open(app, "/endless")
    began = time.monotonic()
    await app.close_streams(timeout=5)
    assert task.done() and time.monotonic() - began < 1
    assert log == ["endless finally"]
    assert recorder.status == 200 and _ended_cleanly(recorder)
    assert recorder.body.startswith(b"0\n")


async def test_sse_sends_its_last_event_and_the_retry_hint() -> None:
    log: list[str] = []
    app = _streaming_app(log)
    recorder, task = await _open(app, "/idle")
    await app.close_streams(timeout=5)
    assert task.done()
    assert log == ["idle finally"]
    assert recorder.body == (b"data: hello\nid: 1\n\n"
                             b"event: shutdown\ndata: bye\n\n"
                             b"retry: 2500\n\n")
    assert _ended_cleanly(recorder)


async def test_app_shutdown_ends_streams_then_runs_hooks() -> None:
    log: list[str] = []
    app = _streaming_app(log)
    await app.startup()
    _, first = await _open(app, "/endless")
    _, second = await _open(app, "/idle")
    await asyncio.wait_for(app.shutdown(), 5)
    assert first.done() and second.done()
    assert sorted(log[:2]) == ["endless finally", "idle finally"]
    assert log[2:] == ["shutdown hook"]


async def test_default_retry_hint_and_none() -> None:
    async def one() -> AsyncIterator[str]:
        yield "x"

    assert EventSourceResponse(one()).last_chunk() == b"retry: 1000\n\n"
    assert EventSourceResponse(one(), shutdown_retry=None).last_chunk() == b""
    assert EventSourceResponse(one(), shutdown_event={"data": "bye"},
                               shutdown_retry=None).last_chunk() == b"data: bye\n\n"


def test_shutdown_retry_is_validated() -> None:
    async def one() -> AsyncIterator[str]:
        yield "x"  # pragma: no cover

    for bad in (-1, 1.5, "1000"):
        try:
            EventSourceResponse(one(), shutdown_retry=bad)  # type: ignore[arg-type]
        except ValueError as exc:
            assert "shutdown_retry" in str(exc)
        else:  # pragma: no cover
            raise AssertionError(f"{bad!r} was accepted")


async def test_a_stream_opened_after_shutdown_began_ends_at_once() -> None:
    log: list[str] = []
    app = _streaming_app(log)
    await app.close_streams(timeout=1)
    recorder = Recorder(body_messages(), then_disconnect=False)
    await asyncio.wait_for(app(http_scope("/idle"), recorder.receive, recorder.send), 2)
    assert recorder.body.endswith(b"retry: 2500\n\n") and _ended_cleanly(recorder)


async def test_streams_run_again_after_a_restart() -> None:
    log: list[str] = []
    app = _streaming_app(log)
    await app.startup()
    await app.shutdown()
    await app.startup()
    recorder, task = await _open(app, "/endless")
    await asyncio.sleep(0.05)
    assert not task.done()  # not ended by the earlier shutdown
    await app.shutdown()
    assert task.done() and _ended_cleanly(recorder)


async def test_a_sync_iterator_is_closed_at_shutdown() -> None:
    app = App()
    closed = threading.Event()

    def numbers() -> Iterator[bytes]:
        try:
            i = 0
            while True:
                yield b"%d\n" % i
                i += 1
                time.sleep(0.005)
        finally:
            closed.set()

    @app.get("/sync")
    async def sync_stream() -> StreamingResponse:
        return StreamingResponse(numbers())

    recorder, task = await _open(app, "/sync")
    await app.close_streams(timeout=5)
    assert task.done() and _ended_cleanly(recorder)
    for _ in range(100):  # bounded: the iterator may be mid-`next` in its thread
        if closed.is_set():
            break
        await asyncio.sleep(0.01)
    assert closed.is_set()


async def test_a_cancelled_stream_still_closes_its_iterator() -> None:
    # What a server's graceful-shutdown timeout does (plain uvicorn): cancel the request,
    # here while the iterator waits at a `yield` for a client that stopped reading.
    log: list[str] = []
    app = _streaming_app(log)
    recorder = Recorder(body_messages(), then_disconnect=False)
    stalled = asyncio.Event()

    async def send(message: Message) -> None:
        recorder.sent.append(message)
        if message.get("body"):
            stalled.set()
            await asyncio.Event().wait()  # the socket buffer is full, forever

    task = asyncio.ensure_future(app(http_scope("/endless"), recorder.receive, send))
    await asyncio.wait_for(stalled.wait(), 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert log == ["endless finally"]


async def test_close_streams_gives_up_after_the_timeout(caplog: object) -> None:
    app = App()
    release = asyncio.Event()

    async def stubborn() -> AsyncIterator[str]:
        try:
            yield "x"
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # a `finally` that takes its time

    @app.get("/stubborn")
    async def route() -> StreamingResponse:
        return StreamingResponse(stubborn())

    _, task = await _open(app, "/stubborn")
    began = time.monotonic()
    await app.close_streams(timeout=0.2)
    assert 0.15 < time.monotonic() - began < 2
    assert not task.done()
    assert "1 stream(s) still open after 0.2s" in caplog.text  # type: ignore[attr-defined]
    release.set()
    await asyncio.wait_for(task, 2)
