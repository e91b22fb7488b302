"""Tracing against the real OpenTelemetry SDK (in-memory exporter): the server span of each
request and WebSocket, its name, attributes and status; incoming trace context; and that an app
without tracing runs none of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from joey import App, HTTPError, Request, Response, WebSocket
from joey.middleware.requestid import RequestIDMiddleware
from joey.observability.tracing import Tracing
from joey.stack import Middleware
from joey.testing import TestClient

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def make_app(provider: TracerProvider, **options: object) -> App:
    app = App(tracing=Tracing(tracer_provider=provider), **options)  # type: ignore[arg-type]

    @app.get("/items/{id:int}")
    async def item(id: int, limit: int = 10) -> dict[str, int]:
        return {"id": id, "limit": limit}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise HTTPError(503, "down for a minute")

    @app.get("/baggage")
    async def read_baggage() -> dict[str, object]:
        return {"user": baggage.get_baggage("user")}

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.send_text(room)
        if room == "fail":
            raise RuntimeError("room failed")
        await websocket.close()

    return app


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = server_spans(exporter)
    return span


def test_200_is_named_by_route_template_with_http_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client:
        response = client.get("/items/42?secret=x", headers={"user-agent": "probe/1.0"})
    assert response.status_code == 200
    span = only_span(exporter)
    assert span.name == "GET /items/{id}"
    attributes = dict(span.attributes or {})
    assert attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/42",
        "network.protocol.version": "1.1",
        "server.address": "testserver",
        "client.address": "testclient",
        "client.port": 50000,
        "user_agent.original": "probe/1.0",
        "http.route": "/items/{id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None  # no traceparent: a trace of its own


def test_404_is_named_by_method_only(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client:
        assert client.get("/nothing/here/123").status_code == 404
    span = only_span(exporter)
    assert span.name == "GET"  # never the raw path
    assert "http.route" not in (span.attributes or {})
    assert span.attributes["http.response.status_code"] == 404  # type: ignore[index]
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's


def test_422_leaves_status_unset_and_records_no_exception(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client:
        assert client.get("/items/1?limit=many").status_code == 422
    span = only_span(exporter)
    assert span.name == "GET /items/{id}"
    assert span.attributes["http.response.status_code"] == 422  # type: ignore[index]
    assert span.status.status_code is StatusCode.UNSET
    assert not span.events


def test_500_is_an_error_with_the_exception_recorded(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    span = only_span(exporter)
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"  # type: ignore[index]
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"  # type: ignore[index]
    assert event.attributes["exception.message"] == "kaboom"  # type: ignore[index]


def test_a_5xx_http_error_is_an_error_too(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client:
        assert client.get("/unavailable").status_code == 503
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert not span.events  # an answer, not a crash


def test_405_and_unknown_methods(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with TestClient(make_app(provider)) as client:
        assert client.post("/items/1").status_code == 405
        assert client.request("FROB", "/items/1").status_code == 405
    post, frob = server_spans(exporter)
    assert post.name == "POST /items/{id}"
    assert frob.name == "HTTP /items/{id}"  # the conventions' name for an unknown method
    assert frob.attributes["http.request.method"] == "_OTHER"  # type: ignore[index]
    assert frob.attributes["http.request.method_original"] == "FROB"  # type: ignore[index]


def test_incoming_traceparent_tracestate_and_baggage_are_honoured(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    headers = {
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        "tracestate": "vendor=opaque",
        "baggage": "user=alice",
    }
    with TestClient(make_app(provider)) as client:
        response = client.get("/baggage", headers=headers)
    assert response.json() == {"user": "alice"}
    span = only_span(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "opaque"


def test_a_malformed_traceparent_starts_a_new_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client:
        assert client.get("/items/1", headers={"traceparent": "00-zz-yy-01"}).status_code == 200
    span = only_span(exporter)
    assert span.parent is None


def test_websocket_connection_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with TestClient(make_app(provider)) as client, client.websocket_connect(
        "/rooms/blue"
    ) as websocket:
        assert websocket.receive_text() == "blue"
    span = only_span(exporter)
    assert span.name == "GET /rooms/{room}"
    assert span.attributes["url.scheme"] == "ws"  # type: ignore[index]
    assert span.attributes["http.route"] == "/rooms/{room}"  # type: ignore[index]
    assert span.attributes["http.response.status_code"] == 101  # type: ignore[index]
    assert span.status.status_code is StatusCode.UNSET


def test_a_failing_websocket_handler_marks_its_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = TestClient(make_app(provider), raise_server_exceptions=False)
    with client, client.websocket_connect("/rooms/fail") as websocket:
        assert websocket.receive_text() == "fail"
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
    assert [e.name for e in span.events] == ["exception"]


def test_an_unrouted_websocket_is_refused_and_named_by_method(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from joey.testing import WebSocketDenied

    with TestClient(make_app(provider)) as client, pytest.raises(WebSocketDenied), (
        client.websocket_connect("/nowhere")
    ):
        pass
    span = only_span(exporter)
    assert span.name == "GET"
    assert span.attributes["http.response.status_code"] == 403  # type: ignore[index]


def test_the_span_covers_asgi_middleware(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app(provider, asgi_middleware=[Middleware(RequestIDMiddleware)])
    seen: list[str] = []

    @app.get("/whoami")
    async def whoami(request: Request) -> Response:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return Response(b"ok")

    with TestClient(app) as client:
        assert client.get("/whoami").status_code == 200
    span = only_span(exporter)
    assert span.name == "GET /whoami"
    assert seen == [format(span.context.trace_id, "032x")]


def test_excluded_paths_get_no_span(provider: TracerProvider, exporter: InMemorySpanExporter,
                                    ) -> None:
    app = App(tracing=Tracing(tracer_provider=provider, exclude_paths={"/healthz"}))

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
    assert exporter.get_finished_spans() == ()


def test_without_tracing_the_engine_serves_http_directly() -> None:
    app = App()

    @app.get("/")
    async def index() -> str:
        return "hi"

    app.freeze()
    # perf: no wrapper of any kind between the server and the engine
    assert app._serve_http == app._engine.handle_http  # type: ignore[union-attr]
    [endpoint] = app._engine.tree.endpoints  # type: ignore[union-attr]
    assert endpoint.handlers["GET"].__name__ != "traced"


class _Broken:
    """ASGI middleware that fails before the app answers."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            raise LookupError("middleware broke")
        await self.app(scope, receive, send)  # type: ignore[operator]


def test_an_exception_that_leaves_the_app_is_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app(provider, asgi_middleware=[Middleware(_Broken)])
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/items/1").status_code == 500  # the server's answer
    span = only_span(exporter)
    assert span.name == "GET"  # it failed before any route was found
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "LookupError"  # type: ignore[index]
    assert "http.response.status_code" not in (span.attributes or {})  # the app sent none
    assert [e.name for e in span.events] == ["exception"]
