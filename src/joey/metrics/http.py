"""The HTTP metrics: duration, requests in flight, body sizes, labelled by route template.

When an app with metrics is compiled, every pipeline of its route tree is wrapped to put its
route template in the scope (``ROUTE_KEY``) and the app's HTTP path is wrapped to time the
request, count body bytes, and record all of it once the response is sent. The labels come
from what the app compiled, never from the request: the template (``""`` when no route
matched; a mount's prefix for a mounted app), the method (``_OTHER`` for one outside HTTP's
registered few) and the status code; so a client cannot make a new series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from joey.paths import BadPath, plain_template, routing_path

if TYPE_CHECKING:
    from joey._engine.http import Engine
    from joey.pipelines import Pipeline
    from joey.requests import Request
    from joey.responses import Response
    from joey.types import Message, Receive, Scope, Send

    ServeHTTP = Callable[[Scope, Receive, Send], Any]

#: the scope key the route pipelines set: the route template (None: not measured)
ROUTE_KEY = "joey.route_template"
#: the methods kept as they are (RFC 9110 and PATCH); any other is counted as ``_OTHER``
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                           "TRACE", "PATCH"})
#: the status recorded when the client went away before a response started (nginx's)
CLIENT_CLOSED = 499

_UNSET: Any = object()
LABELS = ("http_request_method", "http_route", "http_response_status_code")


class HTTPMetrics:
    """The HTTP metric families of one :class:`~joey.metrics.Metrics`."""

    def __init__(self, registry: CollectorRegistry, duration_buckets: Sequence[float],
                 size_buckets: Sequence[float]) -> None:
        self.duration = Histogram(
            "http_server_request_duration", "Duration of HTTP server requests", LABELS,
            unit="seconds", buckets=duration_buckets, registry=registry)
        self.request_size = Histogram(
            "http_server_request_body_size", "Size of HTTP request bodies", LABELS,
            unit="bytes", buckets=size_buckets, registry=registry)
        self.response_size = Histogram(
            "http_server_response_body_size", "Size of HTTP response bodies", LABELS,
            unit="bytes", buckets=size_buckets, registry=registry)
        self.active = Gauge(
            "http_server_active_requests", "HTTP requests in flight",
            ["http_request_method"], registry=registry, multiprocess_mode="livesum")
        # perf: a series' children looked up once (labels() validates and locks on each call);
        # as bounded as the series themselves
        self._observers: dict[tuple[str, str, int], tuple[Callable[[float], None], ...]] = {}
        self._in_flight: dict[str, Any] = {}

    def _observers_for(self, labels: tuple[str, str, int]) -> tuple[Callable[[float], None], ...]:
        values = (labels[0], labels[1], str(labels[2]))
        found = self._observers[labels] = tuple(
            family.labels(*values).observe
            for family in (self.duration, self.request_size, self.response_size))
        return found

    def _in_flight_child(self, method: str) -> Any:
        child = self._in_flight[method] = self.active.labels(method)
        return child

    def instrument(self, engine: Engine, serve: ServeHTTP, skip: str | None) -> ServeHTTP:
        """Label ``engine``'s pipelines with their templates (the one at ``skip`` with None:
        not measured) and return ``serve`` measured."""
        for endpoint in engine.tree.endpoints:
            template = None if endpoint.template == skip else route_label(endpoint.template)
            endpoint.handlers = {method: _labelled(pipeline, template)
                                 for method, pipeline in endpoint.handlers.items()}
            if endpoint.fallback is not None:
                endpoint.fallback = _labelled(endpoint.fallback, template)
        engine.not_found = _labelled(engine.not_found, "")
        engine.bad_target = _labelled(engine.bad_target, "")
        observers = self._observers
        in_flight_of = self._in_flight

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["path"] == skip:  # the scrape: not counted, not even while in flight
                await serve(scope, receive, send)
                return
            method: str = scope["method"]
            if method not in KNOWN_METHODS:
                method = "_OTHER"
            in_flight = in_flight_of.get(method) or self._in_flight_child(method)
            in_flight.inc()
            started = time.perf_counter()
            status = 0
            received = sent = 0

            async def counting_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                return message

            async def counting_send(message: Message) -> None:
                nonlocal status, sent
                kind = message["type"]
                if kind == "http.response.start":
                    status = message["status"]
                elif kind == "http.response.body":
                    sent += len(message.get("body", b""))
                await send(message)

            try:
                await serve(scope, counting_receive, counting_send)
            except BaseException:
                status = status or 500
                raise
            finally:
                in_flight.dec()
                route = scope.get(ROUTE_KEY, _UNSET)
                if route is _UNSET:  # a mounted app, or the app raised before routing
                    route = _mount_prefix(engine, scope)
                if route is not None:
                    labels = (method, route, status or CLIENT_CLOSED)
                    observe = observers.get(labels) or self._observers_for(labels)
                    observe[0](time.perf_counter() - started)
                    observe[1](received)
                    observe[2](sent)

        return measured


def route_label(template: str) -> str:
    """The ``http.route`` of a template, as the API document writes it: ``/items/{id}``
    for ``/items/{id:int}``."""
    return plain_template(template)


def _labelled(pipeline: Pipeline, template: str | None) -> Pipeline:
    async def labelled(request: Request) -> Response:
        request.scope[ROUTE_KEY] = template
        return await pipeline(request)

    route = getattr(pipeline, "__joey_route__", None)
    if route is not None:  # what error messages and the debug page name
        setattr(labelled, "__joey_route__", route)  # noqa: B010
    return labelled


def _mount_prefix(engine: Engine, scope: Scope) -> str:
    """The prefix of the mount that served ``scope`` (``""`` if none did)."""
    try:
        match = engine.tree.lookup(*routing_path(scope))
    except BadPath:
        return ""
    if match is None or match.mount is None:
        return ""
    return match.mount.path or "/"


__all__ = ["HTTPMetrics", "route_label"]
