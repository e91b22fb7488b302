"""A trace followed past the request, in one process: into the tasks it enqueues (in memory) and
onto the channel messages it publishes, against the real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from joey import App, WebSocket
from joey.channels import Channels
from joey.observability.tracing import Tracing
from joey.tasks import InMemoryTasks, current_task
from joey.testing import AsyncTestClient, TestClient


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(tracer_provider=provider)
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_task_run_is_a_child_of_the_enqueue_in_the_request_trace(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    app = App(tracing=tracing, tasks=InMemoryTasks())
    seen: list[object] = []

    @app.task(name="send_mail", retries=1)
    async def send_mail(to: str) -> None:
        run = current_task()
        assert run is not None
        seen.append((run.name, run.attempt, baggage.get_baggage("tenant")))
        if run.attempt == 1:
            raise RuntimeError("smtp down")

    @app.post("/signup")
    async def signup() -> dict[str, str]:
        return {"task": await app.tasks.enqueue(send_mail, "a@example.com")}

    async with AsyncTestClient(app) as client:
        response = await client.post("/signup", headers={"baggage": "tenant=acme"})
        task_id = response.json()["task"]
        async with asyncio.timeout(20):
            info = await app.tasks.wait(task_id)
    assert info.attempts == 2
    assert seen == [("send_mail", 1, "acme"), ("send_mail", 2, "acme")]
    [server] = named(exporter, "POST /signup")
    [enqueue] = named(exporter, "enqueue send_mail")
    first, second = named(exporter, "run send_mail")
    assert enqueue.kind is SpanKind.PRODUCER and first.kind is SpanKind.CONSUMER
    assert enqueue.parent is not None and enqueue.parent.span_id == server.context.span_id
    for run in (first, second):  # every attempt: a child of the one enqueue, in one trace
        assert run.context.trace_id == server.context.trace_id
        assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
        assert run.attributes["messaging.message.id"] == task_id  # type: ignore[index]
    assert enqueue.attributes["messaging.message.id"] == task_id  # type: ignore[index]
    assert first.attributes["joey.task.attempt"] == 1  # type: ignore[index]
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert second.attributes["joey.task.attempt"] == 2  # type: ignore[index]
    assert second.status.status_code is StatusCode.UNSET


async def test_a_periodic_tick_starts_a_trace_of_its_own(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tasks = InMemoryTasks()
    tasks.trace_with(tracing)
    ticked = asyncio.Event()

    @tasks.task(name="tick", every=0.05)
    async def tick() -> None:
        ticked.set()

    async with tasks:
        async with asyncio.timeout(20):
            await ticked.wait()
    # stopped: the run that set the event has ended, and its span with it
    run = named(exporter, "run tick")[0]
    assert run.parent is None
    assert not named(exporter, "enqueue tick")


def test_a_delivery_to_a_websocket_is_linked_to_the_publish(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    app = App(tracing=tracing, channels=Channels())

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str, channels: Channels) -> None:
        await websocket.accept()
        async with channels.subscribe(room) as subscription:
            await websocket.send_text("ready")
            async for _ in channels.relay(websocket, subscription):
                pass

    @app.post("/rooms/{room}")
    async def say(room: str, channels: Channels) -> None:
        await channels.publish(room, "hello")

    with TestClient(app) as client, client.websocket_connect("/rooms/blue") as websocket:
        assert websocket.receive_text() == "ready"
        assert client.post("/rooms/blue").status_code == 204
        assert websocket.receive_text() == "hello"
    [publisher] = named(exporter, "POST /rooms/{room}")
    [connection] = named(exporter, "GET /rooms/{room}")
    [delivery] = named(exporter, "deliver blue")
    assert delivery.kind is SpanKind.CONSUMER
    # in the subscriber's connection trace, linked to the publisher's
    assert delivery.parent is not None and delivery.parent.span_id == connection.context.span_id
    [link] = delivery.links
    assert link.context.span_id == publisher.context.span_id
    assert link.context.trace_id == publisher.context.trace_id != connection.context.trace_id


def test_an_event_stream_delivery_is_linked_to_the_publish(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    from joey import Request
    from joey.sse import EventSourceResponse

    channels = Channels()
    app = App(tracing=tracing, channels=channels)

    @app.get("/events")
    async def events(request: Request) -> EventSourceResponse:
        return await channels.event_source(request, "news", retry=None, ping_interval=None)

    @app.post("/news")
    async def news() -> None:
        await channels.publish("news", "extra")

    with TestClient(app) as client, client.stream("GET", "/events") as stream:
        assert client.post("/news").status_code == 204
        for line in stream.iter_lines():
            if line.startswith("data:"):
                assert line == "data: extra"
                break
    [publisher] = named(exporter, "POST /news")
    [delivery] = named(exporter, "deliver news")
    [link] = delivery.links
    assert link.context.span_id == publisher.context.span_id


async def test_channels_without_tracing_carry_nothing() -> None:
    channels = Channels()
    async with channels, channels.subscribe("a") as subscription:
        await channels.publish("a", "x")
        message = await anext(subscription)
    assert message.trace is None
