"""The OpenAPI 3.1 document, made from the route model and nothing else.

:func:`build_document` reads ``app.routes`` (:class:`~joey.RouteInfo`): the parameters,
bodies and return types come from the same plans that validate requests, so the document
cannot drift from what the app does. Each operation (:mod:`joey.openapi.operations`) lists
every response the route can produce (:mod:`joey.openapi.responses`): its success response,
and each error of ``RouteInfo.errors``, the errors the engine itself can answer on its way to
the handler, as each part of the plan declares them:

=====  =====================================================================================
422    any value that can be refused (a required value, a typed value, a body or form)
400    a JSON body or a form that cannot be parsed, a text body in an unknown charset
413    any body, when the route has a body limit; any form (its own limits)
415    a JSON body (without ``Body(decoder=...)``) or a form, for another ``Content-Type``
404    a path parameter (the segment may not match the converter)
401/3  security schemes, optional ones too; 403 when scopes are required
429    a ``RateLimit`` (and 503 when it fails closed)
=====  =====================================================================================

plus the exceptions the route declares it ``raises``. Each error is documented as the app
renders it (:mod:`joey.openapi.errors`): a problem document (``application/problem+json``)
unless an exception handler takes that exception, in which case its declared schema
(``exception_handler(..., schema=...)``) or, when it declared none, a response without a
described body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from joey.openapi.errors import ErrorRendering, ErrorResponses
from joey.openapi.operations import Operations
from joey.openapi.responses import Responses
from joey.openapi.schemas import SchemaRegistry
from joey.paths import plain_template
from joey.routeinfo import RouteInfo

__all__ = ["ErrorRendering", "build_document"]

_METHOD_ORDER = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


def build_document(
    routes: Iterable[RouteInfo], *, info: Mapping[str, Any], errors: ErrorRendering,
    servers: list[dict[str, Any]] | None = None, tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``routes`` (see the module docstring).

    Example::

        @app.get("/hello")
        async def hello() -> str:
            return "hi"

        document = build_document(app.routes, info={"title": "Hi", "version": "1"},
                                  errors=ErrorRendering(app.exception_handlers, {}))
        assert list(document["paths"]["/hello"]["get"]["responses"]) == ["200"]
    """
    registry = SchemaRegistry()
    error_responses = ErrorResponses(errors, registry)
    operations = Operations(registry, Responses(error_responses, registry))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.websocket or not route.include_in_schema:
            continue
        item = paths.setdefault(_openapi_path(route.path), {})
        methods = [m for m in route.methods if m not in ("HEAD", "OPTIONS") or
                   len(route.methods) == 1] or list(route.methods)
        for method in sorted(methods, key=_method_rank):
            item[method.lower()] = operations.operation(route, method, len(methods) > 1)
    registry.finish()
    document: dict[str, Any] = {"openapi": "3.1.0", "info": dict(info)}
    if servers:
        document["servers"] = servers
    document["paths"] = paths
    components: dict[str, Any] = {}
    schemas = {**dict(sorted(registry.components.items())), **error_responses.components()}
    if schemas:
        components["schemas"] = schemas
    if operations.security_schemes:
        components["securitySchemes"] = operations.security_schemes
    if components:
        document["components"] = components
    used_tags = dict.fromkeys(t for item in paths.values() for op in item.values()
                              for t in op.get("tags", ()))
    declared = {t["name"]: t for t in tags or ()}
    listed = [declared.get(name, {"name": name}) for name in (*declared, *used_tags)]
    if listed:
        document["tags"] = list({t["name"]: t for t in listed}.values())
    return document


def _method_rank(method: str) -> int:
    return _METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER)


def _openapi_path(template: str) -> str:
    """``/books/{id:int}`` → ``/books/{id}``."""
    return plain_template(template)
