"""One trace across two processes: a request in this process enqueues a task on a real
redis-server, a separate `joey worker` process runs it; the worker writes its spans and JSON log
lines to files, and the test assembles both sides (issue #27)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from joey import App
from joey.observability.tracing import Tracing
from joey.tasks import RedisTasks, TaskState
from joey.testing import AsyncTestClient
from tests.tasks.conftest import HERE, WorkerFactory, stop_gracefully

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


@pytest.fixture
async def web(redis_url: str, prefix: str,
              exporter: InMemorySpanExporter) -> AsyncIterator[tuple[App, AsyncTestClient]]:
    """The web process's side: a traced app that enqueues on Redis and never consumes."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(tasks=RedisTasks(redis_url, prefix=prefix, consume=False),
              tracing=Tracing(tracer_provider=provider))

    @app.post("/reports/{day}")
    async def order_report(day: str) -> dict[str, str]:
        return {"task": await app.tasks.enqueue("traced.report", day)}

    async with AsyncTestClient(app) as client:
        yield app, client
    provider.shutdown()


def read_lines(path: Path, wanted: str, deadline: float) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` once one holds ``wanted`` (a span written at its end may
    trail the task's recorded success by a moment); bounded by ``deadline``."""
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if (
            path.exists()) else []
        if any(wanted in json.dumps(line) for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_a_request_and_the_task_it_enqueued_are_one_trace_across_processes(
    web: tuple[App, AsyncTestClient], start_worker: WorkerFactory,
    exporter: InMemorySpanExporter, tmp_path: Path,
) -> None:
    spans_file, logs_file = tmp_path / "spans.jsonl", tmp_path / "logs.jsonl"
    worker = start_worker(target="traced_app:app", app_dir=HERE, extra_env={
        "JOEY_TEST_SPANS": str(spans_file), "JOEY_TEST_LOGS": str(logs_file)})
    app, client = web
    response = await client.post(
        "/reports/2026-05-01", headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"})
    task_id = response.json()["task"]
    async with asyncio.timeout(30):
        info = await app.tasks.wait(task_id)
    assert info.state is TaskState.SUCCEEDED, info.error
    stop_gracefully(worker)

    # This process: the server span continues the caller's trace; the enqueue is its child.
    web_spans = {span.name: span for span in exporter.get_finished_spans()}
    server, enqueue = web_spans["POST /reports/{day}"], web_spans["enqueue traced.report"]
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert enqueue.parent is not None and enqueue.parent.span_id == server.context.span_id
    # The worker process: its run is a child of that enqueue, in the same trace.
    worker_spans = read_lines(spans_file, "run traced.report", time.monotonic() + 20)
    [run] = [span for span in worker_spans if span["name"] == "run traced.report"]
    assert run["kind"] == "CONSUMER"
    assert run["trace_id"] == TRACE_ID
    assert run["parent_span_id"] == format(enqueue.context.span_id, "016x")
    assert run["attributes"]["messaging.message.id"] == task_id
    assert run["attributes"]["joey.task.attempt"] == 1
    assert run["status"] == "UNSET"
    # And the task's log line, JSON from the standard logging module, says where it ran.
    [line] = read_lines(logs_file, "building the report", time.monotonic() + 20)
    assert line["message"] == "building the report of 2026-05-01"
    assert line["process"] == "worker"
    assert (line["task_id"], line["task_name"], line["task_attempt"]) == (
        task_id, "traced.report", 1)
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, run["span_id"])


async def test_each_attempt_of_a_retried_task_is_a_child_of_the_one_enqueue(
    web: tuple[App, AsyncTestClient], start_worker: WorkerFactory,
    exporter: InMemorySpanExporter, tmp_path: Path,
) -> None:
    spans_file, logs_file = tmp_path / "spans.jsonl", tmp_path / "logs.jsonl"
    worker = start_worker(target="traced_app:app", app_dir=HERE, extra_env={
        "JOEY_TEST_SPANS": str(spans_file), "JOEY_TEST_LOGS": str(logs_file)})
    app, _ = web
    # enqueued inside a span of this process, as a handler's code would be
    with TracerProvider().get_tracer("test").start_as_current_span("handler"):
        task_id = await app.tasks.enqueue("traced.flaky", "flaky-1")
    async with asyncio.timeout(30):
        info = await app.tasks.wait(task_id)
    assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 2), info.error
    stop_gracefully(worker)
    [enqueue] = [s for s in exporter.get_finished_spans() if s.name == "enqueue traced.flaky"]
    runs = [span for span in read_lines(spans_file, '"joey.task.attempt": 2',
                                        time.monotonic() + 20)
            if span["name"] == "run traced.flaky"]
    assert [run["attributes"]["joey.task.attempt"] for run in runs] == [1, 2]
    assert [run["status"] for run in runs] == ["ERROR", "UNSET"]
    for run in runs:
        assert run["parent_span_id"] == format(enqueue.context.span_id, "016x")
    lines = read_lines(logs_file, "flaky attempt", time.monotonic() + 20)
    assert [(line["task_attempt"], line["span_id"]) for line in lines] == [
        (1, runs[0]["span_id"]), (2, runs[1]["span_id"])]


async def test_a_record_written_without_trace_context_still_runs(
    redis_url: str, prefix: str, start_worker: WorkerFactory, tmp_path: Path,
) -> None:
    """An enqueue from an untraced app (or an older version): the worker's run starts a trace
    of its own."""
    spans_file, logs_file = tmp_path / "spans.jsonl", tmp_path / "logs.jsonl"
    worker = start_worker(target="traced_app:app", app_dir=HERE, extra_env={
        "JOEY_TEST_SPANS": str(spans_file), "JOEY_TEST_LOGS": str(logs_file)})
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as tasks:
        task_id = await tasks.enqueue("traced.report", "2026-05-02")
        async with asyncio.timeout(30):
            info = await tasks.wait(task_id)
    assert info.state is TaskState.SUCCEEDED, info.error
    stop_gracefully(worker)
    [run] = [span for span in read_lines(spans_file, "run traced.report",
                                         time.monotonic() + 20)
             if span["name"] == "run traced.report"]
    assert run["parent_span_id"] is None
