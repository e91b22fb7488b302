"""JSON log lines (joey.observability.logs): parsed back, with the request id, the trace and span
ids of the request's server span, the access log's fields, errors, and task runs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from joey import App
from joey.middleware.accesslog import AccessLogMiddleware
from joey.middleware.requestid import RequestIDMiddleware
from joey.observability.logs import JSONFormatter
from joey.observability.tracing import Tracing
from joey.stack import Middleware
from joey.tasks import InMemoryTasks
from joey.testing import AsyncTestClient, TestClient


class Lines:
    """What a JSONFormatter handler wrote, parsed."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def __call__(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def lines() -> Iterator[Lines]:
    out = Lines()
    handler = logging.StreamHandler(out.stream)
    handler.setFormatter(JSONFormatter(static={"service": "shop"}))
    loggers = [logging.getLogger(name) for name in ("joey", "shop")]
    saved = [(log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    yield out
    for log, (level, propagate) in zip(loggers, saved, strict=True):
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(tracer_provider=provider)
    provider.shutdown()


def make_app(tracing: Tracing | None) -> App:
    app = App(tracing=tracing, asgi_middleware=[Middleware(RequestIDMiddleware),
                                                Middleware(AccessLogMiddleware)])

    @app.get("/items/{id:int}")
    async def item(id: int) -> dict[str, int]:
        logging.getLogger("shop").info("looking up %d", id, extra={"item": id})
        return {"id": id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    return app


def test_access_and_handler_lines_carry_request_and_trace_ids(
    lines: Lines, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(tracing)) as client:
        response = client.get("/items/7?page=2", headers={"x-request-id": "req-1"})
    assert response.status_code == 200
    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    trace_id, span_id = format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")
    handler_line, access = lines()
    assert handler_line["logger"] == "shop" and handler_line["level"] == "INFO"
    assert handler_line["message"] == "looking up 7"
    assert handler_line["item"] == 7  # an `extra=` field
    assert handler_line["service"] == "shop"
    assert handler_line["time"].endswith("Z")
    assert access["logger"] == "joey.access"
    for line in (handler_line, access):
        assert (line["request_id"], line["trace_id"], line["span_id"]) == (
            "req-1", trace_id, span_id)
    # the access log's fields, as fields
    assert access["method"] == "GET" and access["path"] == "/items/7"
    assert access["query"] == "page=2" and access["status_code"] == 200
    assert isinstance(access["duration_ms"], float) and access["response_bytes"] > 0


def test_an_error_line_has_the_exception_and_the_ids(
    lines: Lines, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(tracing), raise_server_exceptions=False) as client:
        assert client.get("/boom", headers={"x-request-id": "req-2"}).status_code == 500
    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    error, access = lines()
    assert error["level"] == "ERROR" and error["logger"] == "joey"
    assert error["error_type"] == "RuntimeError"
    assert "kaboom" in error["exception"] and "Traceback" in error["exception"]
    assert error["request_id"] == "req-2"
    assert error["trace_id"] == format(span.context.trace_id, "032x")
    assert access["status_code"] == 500


def test_without_tracing_lines_have_no_trace_ids(lines: Lines) -> None:
    with TestClient(make_app(None)) as client:
        assert client.get("/items/1", headers={"x-request-id": "req-3"}).status_code == 200
    for line in lines():
        assert line["request_id"] == "req-3"
        assert "trace_id" not in line and "span_id" not in line


async def test_a_task_runs_lines_name_the_task_and_its_trace(
    lines: Lines, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    app = App(tracing=tracing, tasks=InMemoryTasks())

    @app.task(name="shop.ship", retries=1)
    async def ship(order: int) -> None:
        logging.getLogger("shop").info("shipping %d", order)

    @app.post("/orders/{order:int}")
    async def place(order: int) -> dict[str, str]:
        return {"task": await app.tasks.enqueue(ship, order)}

    async with AsyncTestClient(app) as client:
        task_id = (await client.post("/orders/9")).json()["task"]
        async with asyncio.timeout(20):
            await app.tasks.wait(task_id)
    [run] = [s for s in exporter.get_finished_spans() if s.name == "run shop.ship"]
    [line] = [line for line in lines() if line["message"] == "shipping 9"]
    assert (line["task_id"], line["task_name"], line["task_attempt"]) == (
        task_id, "shop.ship", 1)
    assert line["trace_id"] == format(run.context.trace_id, "032x")
    assert line["span_id"] == format(run.context.span_id, "016x")
    assert "request_id" not in line  # the task runs outside the request


def test_values_json_cannot_hold_are_written_as_repr(lines: Lines) -> None:
    logging.getLogger("shop").info("odd", extra={"thing": {1, 2}.__class__, "when": 1.5})
    [line] = lines()
    assert line["thing"] == "<class 'set'>" and line["when"] == 1.5
    assert "task_id" not in line and "request_id" not in line


async def test_in_memory_task_runs_never_carry_a_requests_id(lines: Lines) -> None:
    """The runner of an in-memory task was made by the request that enqueued first, and went
    on to run later tasks in that request's context: their lines carried its id. A run is
    outside every request, as in a Redis worker."""
    app = App(tasks=InMemoryTasks(max_concurrency=1),
              asgi_middleware=[Middleware(RequestIDMiddleware)])
    release = asyncio.Event()

    @app.task(name="shop.slow")
    async def slow(order: int) -> None:
        await release.wait()
        logging.getLogger("shop").info("done %d", order)

    @app.post("/orders/{order:int}")
    async def place(order: int) -> dict[str, str]:
        return {"task": await app.tasks.enqueue(slow, order)}

    async with AsyncTestClient(app) as client:
        first = (await client.post("/orders/1", headers={"x-request-id": "req-a"})).json()
        second = (await client.post("/orders/2", headers={"x-request-id": "req-b"})).json()
        release.set()
        async with asyncio.timeout(20):
            await app.tasks.wait(first["task"])
            await app.tasks.wait(second["task"])
    done = {line["message"]: line for line in lines() if line["message"].startswith("done")}
    assert set(done) == {"done 1", "done 2"}
    assert all("request_id" not in line for line in done.values())
