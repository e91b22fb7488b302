"""The OpenAPI 3.1 document, made from the route model and nothing else.

:func:`build_document` reads ``app.routes`` (:class:`~joey.RouteInfo`): the parameters,
bodies and return types come from the same plans that validate requests, so the document
cannot drift from what the app does. Each operation lists every response the route can
produce: its success response, and each error Joey itself raises on its way to the handler,
decided from what the plan reads:

=====  =====================================================================================
422    any value that is validated (a required value, a typed value, a body or form)
400    a JSON body or a form that cannot be parsed, a text body in an unknown charset
413    any body, when the route has a body limit
415    a JSON body (without ``Body(decoder=...)``) or a form, for another ``Content-Type``
404    a path parameter (the segment may not match the converter)
401/3  security schemes, optional ones too (from the route model's security requirements)
=====  =====================================================================================

plus the exceptions the route declares it ``raises``. Each error is documented as the app
renders it: a problem document (``application/problem+json``) unless an exception handler
takes that exception, in which case its declared schema (``exception_handler(...,
schema=...)``) or, when it declared none, a response without a described body.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey._engine.errors import handled_as
from joey.exceptions import (
    BadRequest,
    Forbidden,
    HTTPError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
)
from joey.openapi.schemas import SchemaRegistry
from joey.params.info import ParamInfo
from joey.params.typeinfo import base_type, is_sequence, is_upload_file, strip_none
from joey.paths import parse_template
from joey.routeinfo import RouteInfo

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

_TEXT_SOURCES = ("query", "header", "cookie")
_PATH_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "minLength": 1},
    "path": {"type": "string", "minLength": 1},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_METHOD_ORDER = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


class ErrorRendering:
    """How the app renders exceptions: which have a handler, and what its handler declared.

    ``handlers``: the app's exception handlers; ``schemas``: exception type → (schema type,
    media type) as ``App.exception_handler(..., schema=...)`` declared them.
    """

    def __init__(self, handlers: Mapping[type[BaseException], Any],
                 schemas: Mapping[type[BaseException], tuple[Any, str]]) -> None:
        self.handlers = handlers
        self.schemas = schemas

    def handled_by(self, exc_type: type[BaseException]) -> type[BaseException] | None:
        """The registered class whose handler renders ``exc_type`` (matched along the MRO,
        as the app does), or ``None`` when Joey renders it as a problem document."""
        return handled_as(exc_type, self.handlers)


class _Builder:
    def __init__(self, errors: ErrorRendering, registry: SchemaRegistry) -> None:
        self.errors = errors
        self.registry = registry
        self.operation_ids: set[str] = set()
        self.security_schemes: dict[str, Any] = {}
        self.uses_problem = False
        self.uses_validation_problem = False

    # -- operations -------------------------------------------------------------------------

    def operation(self, route: RouteInfo, method: str, several: bool) -> dict[str, Any]:
        operation: dict[str, Any] = {}
        if route.tags:
            operation["tags"] = list(route.tags)
        if route.summary:
            operation["summary"] = route.summary
        if route.description and route.description != route.summary:
            operation["description"] = route.description
        operation["operationId"] = self.operation_id(route, method, several)
        params = route.all_parameters()
        parameters = [self.parameter(route, param) for param in params
                      if param.source in ("path", *_TEXT_SOURCES) and not param.custom]
        parameters.extend(self.untyped_path_parameters(route, params))
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(params)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = self.responses(route, params)
        security = self.security(route)
        if security is not None:
            operation["security"] = security
        if route.deprecated:
            operation["deprecated"] = True
        if route.openapi_extra:
            _merge(operation, copy.deepcopy(dict(route.openapi_extra)))
        return operation

    def operation_id(self, route: RouteInfo, method: str, several: bool) -> str:
        """From the route name (``books.get_book``), with the method when one route answers
        several; made unique with a number when two routes share a name."""
        base = route.name + (f"_{method.lower()}" if several else "")
        candidate, n = base, 2
        while candidate in self.operation_ids:
            candidate, n = f"{base}_{n}", n + 1
        self.operation_ids.add(candidate)
        return candidate

    # -- parameters -------------------------------------------------------------------------

    def parameter(self, route: RouteInfo, param: ParamInfo) -> dict[str, Any]:
        where = param.source
        parameter: dict[str, Any] = {"name": param.key, "in": where}
        for meta in param.constraints:  # the docs of a parameter belong to the parameter too
            if meta.description:
                parameter["description"] = meta.description
            if meta.extra and meta.extra.get("deprecated"):
                parameter["deprecated"] = True
        if where == "path":
            parameter["required"] = True
            parameter["schema"] = self.path_schema(route, param)
        else:
            if param.required:
                parameter["required"] = True
            schema = self.registry.schema(_undescribed(strip_none(param.annotation)))
            if not param.required and param.default is not None and _encodable(param.default):
                schema["default"] = msgspec.to_builtins(param.default)
            parameter["schema"] = schema
            if is_sequence(param.annotation) and where == "query":
                parameter["style"], parameter["explode"] = "form", True
        return parameter

    def path_schema(self, route: RouteInfo, param: ParamInfo) -> dict[str, Any]:
        """The converter's schema (a ``str`` segment is never empty) with the constraints of
        the parameter's ``msgspec.Meta``; the type's own schema when the handler asks for
        another type than the converter makes (``{id}`` read as ``id: int``)."""
        converter = _path_converters(route.path).get(param.key, "str")
        produced = route.path_params.get(param.key, str)
        base = base_type(param.annotation)
        if base is not Any and base is not produced:
            return self.registry.schema(_undescribed(strip_none(param.annotation)))
        schema = dict(_PATH_TYPES[converter])
        metas = [_undescribed_meta(meta) for meta in param.constraints]
        if metas:  # the converter's type (no components), so asked of msgspec right here
            schema.update(msgspec.json.schema(Annotated[(produced, *metas)]))
            if "minLength" in _PATH_TYPES[converter]:
                schema["minLength"] = max(1, schema.get("minLength", 1))
        return schema

    def untyped_path_parameters(self, route: RouteInfo,
                                params: list[ParamInfo]) -> list[dict[str, Any]]:
        """Path parameters the handler does not take (it reads ``request.path_params``, or
        nothing): still part of the URL."""
        taken = {p.key for p in params if p.source == "path"}
        return [{"name": name, "in": "path", "required": True,
                 "schema": dict(_PATH_TYPES[converter])}
                for name, converter in _path_converters(route.path).items() if name not in taken]

    # -- the request body -------------------------------------------------------------------

    def request_body(self, params: list[ParamInfo]) -> dict[str, Any] | None:
        body = next((p for p in params if p.source == "body"), None)
        fields = [p for p in params if p.source == "form"]
        embedded = [p for p in params if p.source == "body" and p.key]
        if embedded:  # Body(embed=True): each parameter is one key of a JSON object
            schema = {"type": "object", "properties": {
                p.key: self.registry.schema(p.annotation) for p in embedded}}
            needed = [p.key for p in embedded if p.required]
            if needed:
                schema["required"] = needed
            return {"content": {"application/json": {"schema": schema}},
                    "required": bool(needed)}
        if body is not None:
            schema = {} if body.custom else self.registry.schema(body.annotation)
            media_types = body.media_types or ("application/json",)
            if base_type(body.annotation) is bytes:
                schema = {"type": "string", "contentMediaType": "application/octet-stream"}
            elif base_type(body.annotation) is str:
                schema = {"type": "string"}
            content = {media: {"schema": schema} for media in media_types}
            return {"content": content, "required": body.required}
        if not fields:
            return None
        whole = next((p for p in fields if not p.key), None)
        if whole is not None:
            schema = self.registry.schema(whole.annotation)
            required = whole.required
        else:
            properties = {}
            needed = []
            for field in fields:
                properties[field.key] = self.registry.schema(strip_none(field.annotation))
                if field.required:
                    needed.append(field.key)
            schema = {"type": "object", "properties": properties}
            if needed:
                schema["required"] = needed
            required = bool(needed)
        files = any(_holds_upload(p.annotation) for p in fields)
        media_types = ("multipart/form-data",) if files else (
            "application/x-www-form-urlencoded", "multipart/form-data")
        return {"content": {media: {"schema": schema} for media in media_types},
                "required": required}

    # -- responses --------------------------------------------------------------------------

    def responses(self, route: RouteInfo, params: list[ParamInfo]) -> dict[str, Any]:
        responses: dict[str, Any] = {}
        status, success = self.success(route)
        responses[str(status)] = success
        for code, declared in route.responses.items():
            made = self.declared_response(code, declared)
            if isinstance(declared, Mapping) and str(code) in responses:
                _merge(responses[str(code)], made)  # e.g. headers for the success response
            else:
                responses[str(code)] = made
        for exc_type in self.errors_of(route, params):
            key = str(getattr(exc_type, "status_code", 500))
            if key not in responses:
                responses[key] = self.error_response(exc_type)
        return dict(sorted(responses.items()))

    def success(self, route: RouteInfo) -> tuple[int, dict[str, Any]]:
        from joey.files import FileResponse
        from joey.responses import (
            HTMLResponse,
            JSONResponse,
            RedirectResponse,
            Response,
            TextResponse,
        )
        from joey.sse import EventSourceResponse

        declared, tp = route.status_code, route.return_type
        status = declared
        response: dict[str, Any] = {"description": _phrase(status)}
        kept = _without_responses(tp, Response)
        classes = [a for a in _union_args(tp) if isinstance(a, type) and issubclass(a, Response)]
        if tp is type(None):
            status = 204 if declared == 200 else declared
            return status, {"description": _phrase(status)}
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
            elif issubclass(cls, TextResponse):
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
        response["description"] = _phrase(status)
        return status, response

    def declared_response(self, code: int, declared: Any) -> dict[str, Any]:
        if isinstance(declared, Mapping):
            response = copy.deepcopy(dict(declared))
            response.setdefault("description", _phrase(code))
            return response
        if isinstance(declared, type) and issubclass(declared, BaseException):
            return self.error_response(declared)
        return {"description": _phrase(code), "content": {"application/json": {
            "schema": self.registry.schema(declared, mode="serialization")}}}

    def errors_of(self, route: RouteInfo, params: list[ParamInfo]) -> list[type[BaseException]]:
        found: list[type[BaseException]] = []
        if any(_validated(route, p) for p in params):
            found.append(UnprocessableContent)
        body = next((p for p in params if p.source == "body"), None)
        form = any(p.source == "form" for p in params)
        text_body = (body is not None and not body.custom and not body.key
                     and base_type(body.annotation) is str)
        json_body = body is not None and not body.custom and (
            bool(body.key) or base_type(body.annotation) not in (bytes, str))
        if json_body or form or text_body:
            found.append(BadRequest)
        if (body is not None or form) and route.max_body_size is not None:
            found.append(PayloadTooLarge)
        if json_body or form:
            found.append(UnsupportedMediaType)
        if route.path_params or _path_converters(route.path):
            found.append(NotFound)
        requirements = self.security(route)
        if requirements:  # optional credentials too: malformed ones are still a 401
            found.append(Unauthorized)
            if any(scopes for requirement in requirements for scopes in requirement.values()):
                found.append(Forbidden)
        found.extend(route.raises)
        return found

    def error_response(self, exc_type: type[BaseException]) -> dict[str, Any]:
        code = getattr(exc_type, "status_code", 500)
        response: dict[str, Any] = {"description": _phrase(code)}
        handled = self.errors.handled_by(exc_type)
        if handled is not None:
            declared = self.errors.schemas.get(handled)
            if declared is not None:
                schema_type, media_type = declared
                response["content"] = {media_type: {
                    "schema": self.registry.schema(schema_type, mode="serialization")}}
            # else: the app's own handler renders it, and did not say how: no body described
        elif issubclass(exc_type, UnprocessableContent):
            self.uses_validation_problem = True
            response["content"] = {PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/ValidationProblem"}}}
        else:
            self.uses_problem = True
            response["content"] = {PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"}}}
        if code in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0},
                                                   "description": "seconds to wait"}}
        if code == 401:  # the challenge; an app's own handler keeps the error's headers too
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        return response

    # -- security (issue #15: schemes in the route model) ------------------------------------

    def security(self, route: RouteInfo) -> list[dict[str, list[str]]] | None:
        """The route's security requirements: every scheme of ``RouteInfo.security`` (each a
        scheme object with ``scheme_name`` and ``openapi()``, and the scopes required of it),
        its scheme objects going to ``components/securitySchemes``.

        The required schemes are one requirement, all of them together. Optional ones
        (``Credentials | None``: an anonymous request is served) make alternatives: the
        required schemes alone (``{}`` when there are none), then with each optional
        scheme, so ``[{}, {"Token": []}]`` says "a Token, or nothing"."""
        required: dict[str, list[str]] = {}
        optional: dict[str, list[str]] = {}
        for needed in getattr(route, "security", ()):
            scheme = needed.scheme
            name = str(scheme.scheme_name)
            known = self.security_schemes.setdefault(name, scheme.openapi())
            if known != scheme.openapi():
                raise ValueError(f"Two different security schemes are named {name!r} "
                                 f"({route.location}): give one another name=")
            scopes = (optional if needed.optional else required
                      ).setdefault(name, [])
            scopes.extend(s for s in needed.scopes if s not in scopes)
        if not optional:
            return [required] if required else None
        return [required, *({**required, name: scopes} for name, scopes in optional.items()
                             if name not in required)]


def build_document(
    routes: Iterable[RouteInfo], *, info: Mapping[str, Any], errors: ErrorRendering,
    servers: list[dict[str, Any]] | None = None, tags: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of ``routes`` (see the module docstring)."""
    registry = SchemaRegistry()
    builder = _Builder(errors, registry)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.websocket or not route.include_in_schema:
            continue
        item = paths.setdefault(_openapi_path(route.path), {})
        methods = [m for m in route.methods if m not in ("HEAD", "OPTIONS") or
                   len(route.methods) == 1] or list(route.methods)
        for method in sorted(methods, key=_method_rank):
            item[method.lower()] = builder.operation(route, method, len(methods) > 1)
    registry.finish()
    document: dict[str, Any] = {"openapi": "3.1.0", "info": dict(info)}
    if servers:
        document["servers"] = servers
    document["paths"] = paths
    components: dict[str, Any] = {}
    schemas = dict(sorted(registry.components.items()))
    if builder.uses_problem or builder.uses_validation_problem:
        schemas["Problem"] = PROBLEM_SCHEMA
    if builder.uses_validation_problem:
        schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    if schemas:
        components["schemas"] = schemas
    if builder.security_schemes:
        components["securitySchemes"] = builder.security_schemes
    if components:
        document["components"] = components
    used_tags = dict.fromkeys(t for item in paths.values() for op in item.values()
                              for t in op.get("tags", ()))
    declared = {t["name"]: t for t in tags or ()}
    listed = [declared.get(name, {"name": name}) for name in (*declared, *used_tags)]
    if listed:
        document["tags"] = list({t["name"]: t for t in listed}.values())
    return document


# -- helpers ---------------------------------------------------------------------------------


def _phrase(status: int) -> str:
    """The reason phrase Joey's problem documents use (RFC 9110's names)."""
    return HTTPError(status).title


def _method_rank(method: str) -> int:
    return _METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER)


_PARAM = re.compile(r"\{([^}:]+)(?::([^}]*))?\}")


def _openapi_path(template: str) -> str:
    """``/books/{id:int}`` → ``/books/{id}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", template)


def _path_converters(template: str) -> dict[str, str]:
    return {s.name: s.converter.name for s in parse_template(template)
            if s.name is not None and s.converter is not None}


def _validated(route: RouteInfo, param: ParamInfo) -> bool:
    """Whether ``param`` can fail validation (a 422)."""
    if param.custom or param.source == "form":
        return True
    if param.source == "body":  # raw bytes and text are never invalid
        return base_type(param.annotation) not in (bytes, str)
    annotation = _checked(param.annotation)
    if param.source == "path":
        return annotation is not Any and annotation is not route.path_params.get(param.key)
    if param.required:
        return True
    if annotation is str or annotation is Any:
        return False
    return not (is_sequence(annotation) and get_args(annotation) == (str,))


#: the ``msgspec.Meta`` fields that check a value (the others only document it)
_CHECKS = ("gt", "ge", "lt", "le", "multiple_of", "pattern", "min_length", "max_length", "tz")
_META_FIELDS = (*_CHECKS, "title", "description", "examples", "extra_json_schema", "extra")


def _checked(annotation: Any) -> Any:
    """The type a value is validated against: ``T`` for ``T | None``, and without the
    ``msgspec.Meta`` that check nothing (``Annotated[str, Meta(description=...)]`` is
    ``str``: no value is refused for it)."""
    annotation = strip_none(annotation)
    if get_origin(annotation) is not Annotated:
        return annotation
    inner, *extras = get_args(annotation)
    kept = [extra for extra in extras if not isinstance(extra, msgspec.Meta)
            or any(getattr(extra, check) is not None for check in _CHECKS)]
    return Annotated[(inner, *kept)] if kept else inner


def _undescribed_meta(meta: msgspec.Meta) -> msgspec.Meta:
    """``meta`` without its description (a parameter's goes on the parameter object)."""
    return msgspec.Meta(**{field: getattr(meta, field) for field in _META_FIELDS
                           if field != "description" and getattr(meta, field) is not None})


def _undescribed(annotation: Any) -> Any:
    """``annotation`` with its ``Meta`` descriptions left out, the rest kept."""
    if get_origin(annotation) is not Annotated:
        return annotation
    inner, *extras = get_args(annotation)
    return Annotated[(inner, *(_undescribed_meta(extra) if isinstance(extra, msgspec.Meta)
                               else extra for extra in extras))]


def _holds_upload(tp: Any) -> bool:
    from joey.params.typeinfo import holds

    return holds(tp, is_upload_file)


def _union_args(tp: Any) -> tuple[Any, ...]:
    import types

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


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError):
        return False
    return True


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
