"""How the document shows an error: as the app renders it.

A route's errors come from the route model (``RouteInfo.errors``, what the engine raises);
this module only says what each looks like on the wire: a problem document
(``application/problem+json``; a 422 lists every invalid value) unless one of the app's
exception handlers takes that exception, in which case its declared schema
(``exception_handler(..., schema=...)``) or, when it declared none, a response without a
described body. The headers an error carries are documented either way (a 401's
``WWW-Authenticate``, the ``Retry-After`` of a 429 or 503, and those an exception class lists
in ``openapi_headers``: a rate limit's ``RateLimit`` and ``RateLimit-Policy``).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any, get_args, get_origin

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

    def body_of(self, handled: type[BaseException]) -> tuple[Any, str] | None:
        """What the handler registered for ``handled`` answers: the (schema type, media type)
        it was declared with, else read from its return annotation (a handler that returns a
        value, not a ``Response``, has it converted as a route's is: ``-> ErrorBody`` is
        JSON of ``ErrorBody``, ``-> str`` text); ``None`` when neither says."""
        declared = self.schemas.get(handled)
        if declared is not None:
            return declared
        return _returned_body(self.handlers.get(handled))


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
            declared = self.rendering.body_of(handled)
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
        more = getattr(exc_type, "openapi_headers", None)  # an error's own (a rate limit's)
        if isinstance(more, Mapping):
            response.setdefault("headers", {}).update(
                {name: dict(header) for name, header in more.items()})
        return response

    def components(self) -> dict[str, Any]:
        """The problem schemas the responses made so far refer to, by component name."""
        used: dict[str, Any] = {}
        if self._problem or self._validation_problem:
            used["Problem"] = PROBLEM_SCHEMA
        if self._validation_problem:
            used["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
        return used


def _returned_body(handler: Any) -> tuple[Any, str] | None:
    """(type, media type) of what ``handler`` is annotated to return, when that is a value
    Joey converts (not a ``Response``, ``None`` or ``Any``)."""
    from joey.responses import Response

    if handler is None:
        return None
    try:
        returned = typing.get_type_hints(inspect.unwrap(handler)).get("return")
    except Exception:  # an annotation that does not resolve: the handler did not say
        return None
    if returned is None or returned is type(None) or returned is Any:
        return None
    members = get_args(returned) if get_origin(returned) in (typing.Union,
                                                             types.UnionType) else (returned,)
    if any(isinstance(m, type) and issubclass(m, Response) for m in members):
        return None  # a Response, whose body the annotation does not tell
    if returned is str:
        return (str, "text/plain")
    if returned is bytes:
        return (bytes, "application/octet-stream")
    return (returned, "application/json")
__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_SCHEMA",
    "VALIDATION_PROBLEM_SCHEMA",
    "ErrorRendering",
    "ErrorResponses",
    "phrase",
]
