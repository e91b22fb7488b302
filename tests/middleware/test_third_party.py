"""Third-party ASGI middleware from PyPI works on a Joey app unchanged."""

from __future__ import annotations

import logging
import uuid

import pytest
from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from joey import App, Middleware, WebSocket
from joey.testing import TestClient


def test_asgi_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.correlation")
    app = App(asgi_middleware=[Middleware(CorrelationIdMiddleware)])

    @app.get("/")
    async def index() -> str:
        logger.info("handling")
        return "ok"

    correlation_filter = CorrelationIdFilter()
    caplog.handler.addFilter(correlation_filter)
    try:
        with caplog.at_level(logging.INFO, logger="tests.correlation"), TestClient(app) as client:
            given = uuid.uuid4().hex
            echoed = client.get("/", headers={"x-request-id": given})
            generated = client.get("/")
    finally:
        caplog.handler.removeFilter(correlation_filter)
    assert echoed.headers["x-request-id"] == given
    assert uuid.UUID(generated.headers["x-request-id"])
    ids = [
        getattr(record, "correlation_id", None)
        for record in caplog.records
        if record.name == logger.name
    ]
    assert ids == [given, generated.headers["x-request-id"]]


def test_opentelemetry_asgi_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = App(asgi_middleware=[Middleware(OpenTelemetryMiddleware, tracer_provider=provider)])

    @app.get("/users/{user_id:int}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")

    with TestClient(app) as client:
        assert client.get("/users/7").json() == {"id": 7}
        assert client.get("/missing").status_code == 404
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "hi"
    spans = exporter.get_finished_spans()
    server_spans = [s for s in spans if s.kind.name == "SERVER"]
    statuses = sorted(s.attributes.get("http.status_code", s.attributes.get(
        "http.response.status_code")) for s in server_spans if s.attributes
        and s.attributes.get("http.method", s.attributes.get("http.request.method")) == "GET")
    assert statuses == [200, 404]
    assert any("/ws" in (s.attributes or {}).get("http.target", (s.attributes or {}).get(
        "url.path", "")) for s in server_spans)
