"""An operation's responses: its success response, the responses the route declares, and
every error of the route model (``RouteInfo.errors``, what the engine can answer instead of
the handler), each as the app renders it (:mod:`joey.openapi.errors`).

The success response is read from the route's status code and return annotation: ``-> None``
is a 204 (unless the route says otherwise), a ``RedirectResponse`` a 307 with its
``Location``, an ``EventSourceResponse`` a ``text/event-stream``, a type its JSON schema.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from joey.openapi.errors import ErrorResponses, phrase
from joey.openapi.schemas import SchemaRegistry
from joey.params.typeinfo import base_type
from joey.routeinfo import RouteInfo, status_of


class Responses:
    """Makes the ``responses`` object of each operation."""

    def __init__(self, errors: ErrorResponses, registry: SchemaRegistry) -> None:
        self.errors = errors
        self.registry = registry

    def of(self, route: RouteInfo) -> dict[str, Any]:
        """Every response ``route`` can produce, by status: success, declared, errors."""
        responses: dict[str, Any] = {}
        status, success = self.success(route)
        responses[str(status)] = success
        for code, declared in route.responses.items():
            made = self.declared(code, declared)
            if isinstance(declared, Mapping) and str(code) in responses:
                merge(responses[str(code)], made)  # e.g. headers for the success response
            else:
                responses[str(code)] = made
        for error in route.errors:  # by status; the first of a status is the one documented
            key = str(status_of(error))
            if key not in responses:
                responses[key] = self.errors.response(error)
        return dict(sorted(responses.items()))

    def success(self, route: RouteInfo) -> tuple[int, dict[str, Any]]:
        """The success status and its response object."""
        from joey.files import FileResponse
        from joey.responses import (
            HTMLResponse,
            JSONResponse,
            PlainTextResponse,
            RedirectResponse,
            Response,
        )
        from joey.sse import EventSourceResponse

        declared, tp = route.status_code, route.return_type
        status = declared
        response: dict[str, Any] = {"description": phrase(status)}
        kept = _without_responses(tp, Response)
        classes = [a for a in _union_args(tp) if isinstance(a, type) and issubclass(a, Response)]
        if tp is type(None):
            status = 204 if declared == 200 else declared
            return status, {"description": phrase(status)}
        content: dict[str, Any] = {}
        for cls in classes:
            if issubclass(cls, EventSourceResponse):
                content["text/event-stream"] = {"schema": {"type": "string"}}
            elif issubclass(cls, RedirectResponse):
                if len(classes) == 1 and kept is None and declared == 200:
                    status = 307
                response["headers"] = {"Location": {"required": True,
                                                    "schema": {"type": "string"}}}
            elif issubclass(cls, FileResponse):
                content["*/*"] = {"schema": {"type": "string",
                                             "contentMediaType": "application/octet-stream"}}
            elif issubclass(cls, JSONResponse):
                content.setdefault("application/json", {"schema": {}})
            elif issubclass(cls, HTMLResponse):
                content["text/html"] = {"schema": {"type": "string"}}
            elif issubclass(cls, PlainTextResponse):
                content["text/plain"] = {"schema": {"type": "string"}}
            else:  # a stream or a plain Response: any media type
                content["*/*"] = {"schema": {}}
        if route.return_type is None:
            content["*/*"] = {"schema": {}}  # no annotation: it could be anything
        elif kept is not None:
            base = base_type(kept)
            if base is str:
                content["text/plain"] = {"schema": {"type": "string"}}
            elif base is bytes:
                content["application/octet-stream"] = {"schema": {
                    "type": "string", "contentMediaType": "application/octet-stream"}}
            else:
                content["application/json"] = {
                    "schema": self.registry.schema(kept, mode="serialization")}
        if content:
            response["content"] = content
        response["description"] = phrase(status)
        return status, response

    def declared(self, code: int, declared: Any) -> dict[str, Any]:
        """A response of the route's ``responses=``: an OpenAPI response object, an exception
        class (rendered as the app renders it) or a type (its JSON schema)."""
        if isinstance(declared, Mapping):
            response = copy.deepcopy(dict(declared))
            response.setdefault("description", phrase(code))
            return response
        if isinstance(declared, type) and issubclass(declared, BaseException):
            return self.errors.response(declared)
        return {"description": phrase(code), "content": {"application/json": {
            "schema": self.registry.schema(declared, mode="serialization")}}}


def merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``target``, mappings key by key, anything else replaced."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def _union_args(tp: Any) -> tuple[Any, ...]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return get_args(tp)
    return (tp,)


def _without_responses(tp: Any, response_type: type) -> Any:
    """The annotation without its ``Response`` members; ``None`` when nothing is left."""
    if tp is None or tp is type(None):
        return None
    kept = [a for a in _union_args(tp)
            if not (isinstance(a, type) and issubclass(a, response_type))]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return typing.Union[tuple(kept)]  # noqa: UP007


__all__ = [
    "Responses",
    "merge",
]
