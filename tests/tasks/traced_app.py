"""The traced app a `joey worker` subprocess imports in tests/tasks/test_tasks_tracing.py.

Its spans go to the JSON-lines file named by ``JOEY_TEST_SPANS`` (one object per finished span)
and its ``traced`` logger's lines, formatted by ``JSONFormatter``, to ``JOEY_TEST_LOGS``: the
test reads both to assemble the trace across processes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from joey import App
from joey._redis import from_url
from joey.observability.logs import JSONFormatter
from joey.observability.tracing import Tracing
from joey.tasks import Backoff, RedisTasks


class JSONLinesExporter(SpanExporter):
    """Each finished span as one JSON line, appended and flushed at once."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed at shutdown

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(json.dumps({
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": format(span.context.trace_id, "032x"),
                "span_id": format(span.context.span_id, "016x"),
                "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
                "links": [format(link.context.span_id, "016x") for link in span.links],
            }) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(JSONLinesExporter(os.environ["JOEY_TEST_SPANS"])))

handler = logging.FileHandler(os.environ["JOEY_TEST_LOGS"], encoding="utf-8")
handler.setFormatter(JSONFormatter(static={"process": "worker"}))
log = logging.getLogger("traced")
log.addHandler(handler)
log.setLevel(logging.INFO)

app = App(
    tasks=RedisTasks(os.environ["JOEY_TEST_REDIS_URL"], prefix=os.environ["JOEY_TEST_PREFIX"],
                     consume=True),
    tracing=Tracing(tracer_provider=provider),
)


@app.task(name="traced.report")
async def report(day: str) -> str:
    log.info("building the report of %s", day)
    return f"report of {day}"


@app.task(name="traced.flaky", retries=1, backoff=Backoff(base=0.01))
async def flaky(key: str) -> int:
    """Fails its first attempt, then succeeds. Each attempt logs first, before any await: in
    a first delivery Redis has not yet said which attempt it is (the entry's hint has)."""
    log.info("flaky attempt")
    client = from_url(os.environ["JOEY_TEST_REDIS_URL"])
    try:
        runs = await client.incr(f"{os.environ['JOEY_TEST_PREFIX']}:{key}")
    finally:
        await client.aclose()
    if runs == 1:
        raise RuntimeError("first attempt fails")
    return runs
