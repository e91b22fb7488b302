"""How the document shows an error: as the app renders it.

A route's errors come from the route model (``RouteInfo.errors``, what the engine raises);
this module only says what each looks like on the wire: a problem document
(``application/problem+json``; a 422 lists every invalid value) unless one of the app's
exception handlers takes that exception, in which case its declared schema
(``exception_handler(..., schema=...)``) or, when it declared none, a response without a
described body. The headers an error carries are documented either way (a 401's
``WWW-Authenticate``, the ``Retry-After`` of a 429 or 503).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from joey._engine.errors import handled_as
from joey.exceptions import HTTPError, UnprocessableContent
from joey.openapi.schemas import SchemaRegistry
from joey.routeinfo import status_of

PROBLEM_MEDIA_TYPE = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}

VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "A 422 problem document: `errors` lists every value that failed "
                   "validation (a 422 that a handler raises itself may carry a `detail` "
                   "only).",
    "type": "object",
    "properties": {
        **PROBLEM_SCHEMA["properties"],
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "string", "description": "path, query, header, cookie, "
                            "body or form"},
                    "name": {"type": "string", "description": "the parameter, or a JSON path "
                             "into the body"},
                    "message": {"type": "string"},
                },
                "required": ["loc", "name", "message"],
            },
        },
    },
    # not `errors`: `raise UnprocessableContent("...")` in a handler sends none
    "required": ["type", "title", "status"],
}


def phrase(status: int) -> str:
    """The reason phrase Joey's problem documents use (RFC 9110's names)."""
    return HTTPError(status).title


class ErrorRendering:
    """How the app renders exceptions: which have a handler, and what its handler declared.

    ``handlers``: the app's exception handlers; ``schemas``: exception type → (schema type,
    media type) as ``App.exception_handler(..., schema=...)`` declared them.

    Example::

        rendering = ErrorRendering(app.exception_handlers, app.exception_schemas)
        assert rendering.handled_by(KeyError) is None  # no handler: a problem document
    """

    def __init__(self, handlers: Mapping[type[BaseException], Any],
                 schemas: Mapping[type[BaseException], tuple[Any, str]]) -> None:
        self.handlers = handlers
        self.schemas = schemas

    def handled_by(self, exc_type: type[BaseException]) -> type[BaseException] | None:
        """The registered class whose handler renders ``exc_type`` (matched along the MRO,
        as the app does), or ``None`` when Joey renders it as a problem document."""
        return handled_as(exc_type, self.handlers)


class ErrorResponses:
    """The response objects of errors, and the problem schemas they refer to."""

    def __init__(self, rendering: ErrorRendering, registry: SchemaRegistry) -> None:
        self.rendering = rendering
        self.registry = registry
        self._problem = False
        self._validation_problem = False

    def response(self, exc_type: type[BaseException]) -> dict[str, Any]:
        """The OpenAPI response object of ``exc_type``, as the app renders it."""
        code = status_of(exc_type)
        response: dict[str, Any] = {"description": phrase(code)}
        handled = self.rendering.handled_by(exc_type)
        if handled is not None:
            declared = self.rendering.schemas.get(handled)
            if declared is not None:
                schema_type, media_type = declared
                response["content"] = {media_type: {
                    "schema": self.registry.schema(schema_type, mode="serialization")}}
            # else: the app's own handler renders it, and did not say how: no body described
        elif issubclass(exc_type, UnprocessableContent):
            self._validation_problem = True
            response["content"] = {PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/ValidationProblem"}}}
        else:
            self._problem = True
            response["content"] = {PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"}}}
        if code in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0},
                                                   "description": "seconds to wait"}}
        if code == 401:  # the challenge; an app's own handler keeps the error's headers too
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        return response

    def components(self) -> dict[str, Any]:
        """The problem schemas the responses made so far refer to, by component name."""
        used: dict[str, Any] = {}
        if self._problem or self._validation_problem:
            used["Problem"] = PROBLEM_SCHEMA
        if self._validation_problem:
            used["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
        return used


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_SCHEMA",
    "VALIDATION_PROBLEM_SCHEMA",
    "ErrorRendering",
    "ErrorResponses",
    "phrase",
]
