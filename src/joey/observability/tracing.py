"""Tracing with OpenTelemetry: a server span per request and WebSocket, carried into tasks and
channel messages.

``App(tracing=Tracing())`` turns it on (the ``otel`` extra installs ``opentelemetry-api``; the
SDK and an exporter are yours to set up, as with any OpenTelemetry instrumentation). Without
it nothing of this module is imported and nothing runs per request. With it:

* every HTTP request and WebSocket connection gets a ``SERVER`` span, the child of an incoming
  ``traceparent`` (through the global propagator, which also reads ``tracestate`` and baggage),
  named ``METHOD /route/{template}`` once the route is known (``METHOD`` alone when no route
  matched: never the raw path), with the stable HTTP semantic conventions' attributes;
  a 5xx (or an exception that left the app) sets the status to ``ERROR``, a 4xx leaves it unset;
  an exception a handler raised is recorded on the span;
* ``enqueue`` runs inside a ``PRODUCER`` span and stores its context with the task; the worker's
  run of each attempt is a ``CONSUMER`` span, the *child* of that context (see
  :meth:`Tracing.running` for why a child and not a link), so a request and the tasks it
  enqueued read as one trace, across processes;
* ``channels.publish`` stores the publisher's context with the message where the backend can
  carry it; :func:`~joey.channels.relay` and :func:`~joey.channels.event_source` send each
  message inside a span *linked* to it.

Example::

    from joey import App
    from joey.observability.tracing import Tracing

    app = App(tracing=Tracing())

    @app.get("/items/{id:int}")
    async def item(id: int) -> dict[str, int]:
        return {"id": id}  # traced as "GET /items/{id}", http.route "/items/{id}"
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, Span, SpanKind, StatusCode
except ImportError as exc:
    raise ImportError(
        "joey.observability.tracing needs OpenTelemetry: pip install 'joey[otel]'"
    ) from exc

from joey.exceptions import HTTPError
from joey.paths import plain_template
from joey.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from joey.requests import Request
    from joey.responses import Response
    from joey.websockets import WebSocket

__all__ = ["Tracing"]

#: The methods of RFC 9110 and PATCH: any other is ``_OTHER`` (the conventions' rule, which
#: keeps a client from making span names and attribute values up)
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
#: Where the server span of a request is kept in its scope, for the route's step to name it
SPAN_KEY = "joey.server_span"

Pipeline = Callable[["Request"], Awaitable["Response"]]
WebSocketCall = Callable[["WebSocket"], Awaitable[Any]]


class Tracing:
    """OpenTelemetry tracing for an app: ``App(tracing=Tracing(...))``.

    Args:
        tracer_provider: where spans go; ``None`` (default): the global provider
            (``opentelemetry.trace.set_tracer_provider``), read when spans are made, so it
            may be set after the app is built.
        exclude_paths: request paths that get no span (health checks, ``/metrics``).

    The propagation format is the global propagator's (W3C ``traceparent``/``tracestate``
    and baggage unless ``OTEL_PROPAGATORS`` or ``propagate.set_global_textmap`` says
    otherwise). ``client.address`` is the ASGI ``client`` the server reports: the peer, or,
    where the server was told to trust a proxy (uvicorn ``--proxy-headers`` with
    ``--forwarded-allow-ips``), the client the proxy names; Joey never reads
    ``X-Forwarded-For`` itself. The query string is not recorded: it may carry secrets.

    Example::

        from opentelemetry.sdk.trace import TracerProvider

        app = App(tracing=Tracing(tracer_provider=TracerProvider(),
                                  exclude_paths={"/healthz"}))
    """

    __slots__ = ("_exclude", "_tracer")

    def __init__(self, *, tracer_provider: TracerProvider | None = None,
                 exclude_paths: Collection[str] = ()) -> None:
        self._tracer = trace.get_tracer("joey", _version(), tracer_provider=tracer_provider)
        self._exclude = frozenset(exclude_paths)

    # -- HTTP and WebSocket: the server span --------------------------------------------------

    def wrap_app(self, app: ASGIApp) -> ASGIApp:
        """``app`` inside a server span per HTTP request and WebSocket connection (the app
        puts this outermost, around its ASGI middleware, when it starts)."""
        return _ServerSpans(app, self._tracer, self._exclude)

    def wrap_route(self, pipeline: Pipeline, template: str, method: str | None) -> Pipeline:
        """A route's pipeline that names the server span after the route, and records an
        exception its handler (or middleware) raised. ``method=None``: the route's 405 and
        other fallbacks, named after the request's method."""
        route = plain_template(template)
        fixed_name = f"{_span_method(method)} {route}" if method is not None else None

        async def traced(request: Request) -> Response:
            span: Span | None = request.scope.get(SPAN_KEY)
            if span is None:  # a request the span wrapper skipped (an excluded path)
                return await pipeline(request)
            span.update_name(fixed_name or f"{_span_method(request.method)} {route}")
            span.set_attribute("http.route", route)
            try:
                return await pipeline(request)
            except HTTPError:
                raise  # an answer (404, 422...): the status it becomes says it all
            except Exception as exc:
                span.record_exception(exc)
                raise

        route_of = getattr(pipeline, "__joey_route__", None)
        if route_of is not None:  # the route, for error messages and the debug page
            setattr(traced, "__joey_route__", route_of)  # noqa: B010
        return traced

    def wrap_websocket(self, handler: WebSocketCall, template: str) -> WebSocketCall:
        """A WebSocket route's handler that names the connection's span after the route and
        marks it ``ERROR`` if the handler fails (its socket then closes with 1011)."""
        route = plain_template(template)
        name = f"GET {route}"  # the handshake is a GET; url.scheme says ws or wss

        async def traced(websocket: WebSocket) -> Any:
            span: Span | None = websocket.scope.get(SPAN_KEY)
            if span is None:
                return await handler(websocket)
            span.update_name(name)
            span.set_attribute("http.route", route)
            try:
                return await handler(websocket)
            except HTTPError:
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
                span.set_attribute("error.type", _qualname(exc))
                raise

        return traced

    # -- tasks: enqueue (PRODUCER) and each attempt's run (CONSUMER) --------------------------

    @contextlib.contextmanager
    def enqueueing(self, task_name: str) -> Iterator[tuple[Span, dict[str, str]]]:
        """A ``PRODUCER`` span around an enqueue, and the carrier (``traceparent``...) the
        task keeps: its runs become children of this span."""
        with self._tracer.start_as_current_span(
            f"enqueue {task_name}", kind=SpanKind.PRODUCER,
            attributes={"messaging.operation.type": "send",
                        "messaging.destination.name": task_name},
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield span, carrier

    @contextlib.contextmanager
    def running(self, task_name: str, task_id: str, attempt: int | None,
                carrier: Mapping[str, str] | None) -> Iterator[Span]:
        """A ``CONSUMER`` span around one attempt of a task, the child of the context its
        enqueue stored (``carrier``); a task enqueued outside any trace (a periodic tick, a
        script) starts a trace of its own.

        A child, not a link: one enqueue makes one task, whose runs exist only because of it
        (the conventions allow the parent for a single message), and a child is what puts the
        request and the work it caused in one trace, where an on-call engineer follows it.
        Each retry is another child of the same enqueue, with ``joey.task.attempt``.
        """
        # The stored context made current, baggage and all; without one an empty context,
        # not the current one: a run is never the child of whatever the worker loop ran in.
        token = otel_context.attach(propagate.extract(carrier or {}))
        try:
            with self._run_span(task_name, task_id, attempt) as span:
                yield span
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def _run_span(self, task_name: str, task_id: str, attempt: int | None) -> Iterator[Span]:
        attributes: dict[str, Any] = {"messaging.operation.type": "process",
                                      "messaging.destination.name": task_name,
                                      "messaging.message.id": task_id}
        if attempt is not None:
            attributes["joey.task.attempt"] = attempt
        with self._tracer.start_as_current_span(
            f"run {task_name}", kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
                span.set_attribute("error.type", _qualname(exc))
                raise

    # -- channels: publish, and a delivery linked to it ---------------------------------------

    def publish_context(self) -> dict[str, str] | None:
        """The current context as a carrier for a published message (``None`` outside any
        span: nothing to carry)."""
        if not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    @contextlib.contextmanager
    def delivering(self, channel: str, carrier: Mapping[str, str] | None,
                   ) -> Iterator[Span]:
        """A ``CONSUMER`` span around sending one channel message to a client, in the trace
        of the connection that sends it, *linked* to the publish (one publish fans out to
        every subscriber: each delivery belongs to its own connection's trace)."""
        links = None
        if carrier:
            published = trace.get_current_span(propagate.extract(carrier)).get_span_context()
            if published.is_valid:
                links = [Link(published)]
        # Never made current: around a `yield` of an event stream, a current span would leak
        # into the code that consumes the stream.
        span = self._tracer.start_span(
            f"deliver {channel}", kind=SpanKind.CONSUMER, links=links,
            attributes={"messaging.operation.type": "process",
                        "messaging.destination.name": channel})
        try:
            yield span
        finally:
            span.end()


class _ServerSpans:
    """The ASGI app in a server span per HTTP request and WebSocket connection."""

    __slots__ = ("_app", "_exclude", "_tracer")

    def __init__(self, app: ASGIApp, tracer: trace.Tracer, exclude: frozenset[str]) -> None:
        self._app = app
        self._tracer = tracer
        self._exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or scope["path"] in self._exclude:
            await self._app(scope, receive, send)
            return
        headers = _carrier(scope["headers"])
        method: str = scope.get("method", "GET")  # a WebSocket handshake is a GET
        known = method if method in KNOWN_METHODS else "_OTHER"
        attributes = _request_attributes(scope, kind, known, headers)
        if known == "_OTHER":
            attributes["http.request.method_original"] = method
        # The incoming context made current (not only the span's parent), so its baggage is
        # what the handler reads too.
        token = otel_context.attach(propagate.extract(headers))
        try:
            await self._serve(scope, receive, send, _span_method(method), attributes)
        finally:
            otel_context.detach(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, name: str,
                     attributes: dict[str, Any]) -> None:
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.SERVER, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            scope[SPAN_KEY] = span
            watch = _StatusWatch(span, send)
            try:
                await self._app(scope, receive, watch.send)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
                span.set_attribute("error.type", _qualname(exc))
                raise


class _StatusWatch:
    """Reads the response status off the messages going out, onto the span."""

    __slots__ = ("_accepted", "_send", "_span")

    def __init__(self, span: Span, send: Send) -> None:
        self._span = span
        self._send = send
        self._accepted = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" or kind == "websocket.http.response.start":
            self._status(message["status"])
        elif kind == "websocket.accept":
            self._accepted = True
            self._status(101)
        elif kind == "websocket.close" and not self._accepted:
            self._accepted = True  # refused: the server answers the handshake with 403
            self._status(403)
        await self._send(message)

    def _status(self, status: int) -> None:
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_status(StatusCode.ERROR)
            self._span.set_attribute("error.type", str(status))


def _carrier(raw: Any) -> dict[str, str]:
    """The request headers as the propagator reads them (repeated ones joined by commas)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def _request_attributes(scope: Scope, kind: str, method: str,
                        headers: Mapping[str, str]) -> dict[str, Any]:
    scheme: str = scope.get("scheme") or ("ws" if kind == "websocket" else "http")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scheme,
        "url.path": scope["path"],  # the full path: ASGI's includes root_path
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    host = headers.get("host")
    if host:
        address, port = _split_host(host)
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    elif scope.get("server"):
        address, port = scope["server"][0], scope["server"][1]
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
        if client[1] is not None:
            attributes["client.port"] = client[1]
    agent = headers.get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    return attributes


def _split_host(host: str) -> tuple[str, int | None]:
    """``example.com:8080`` → ``("example.com", 8080)``; IPv6 literals keep their brackets
    off; a port that is not a number is left out."""
    if host.startswith("["):
        end = host.find("]")
        address, rest = host[1:end], host[end + 1:]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port_text = host.partition(":")
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return address, port


def _span_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "HTTP"


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else (
        f"{cls.__module__}.{cls.__qualname__}")


def _version() -> str | None:
    """Joey's version, for the instrumentation scope (read from the installed package, not
    ``joey.__version__``: importing ``joey`` here would make an import cycle)."""
    try:
        return importlib.metadata.version("joey")
    except importlib.metadata.PackageNotFoundError:
        return None
