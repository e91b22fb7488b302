"""One operation of the document per route and method: its id, docs and tags, parameters,
request body, security requirements and responses (:mod:`joey.openapi.responses`), all read
from the route model (``RouteInfo``): the parameters and bodies from the plans that validate
requests, the security requirements from the schemes the route runs.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.openapi.responses import Responses, merge
from joey.openapi.schemas import SchemaRegistry
from joey.params.extract import META_CHECKS
from joey.params.info import ParamInfo
from joey.params.typeinfo import base_type, holds, is_sequence, is_upload_file, strip_none
from joey.paths import parse_template
from joey.routeinfo import RouteInfo

_TEXT_SOURCES = ("query", "header", "cookie")
_PATH_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "minLength": 1},
    "path": {"type": "string", "minLength": 1},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
#: every field of ``msgspec.Meta``: the checks, and what only documents a value
_META_FIELDS = (*META_CHECKS, "title", "description", "examples", "extra_json_schema", "extra")


class Operations:
    """Makes the operation objects, with unique ids, and collects the security schemes they
    use (for ``components/securitySchemes``)."""

    def __init__(self, registry: SchemaRegistry, responses: Responses) -> None:
        self.registry = registry
        self.responses = responses
        self.operation_ids: set[str] = set()
        self.security_schemes: dict[str, Any] = {}

    def operation(self, route: RouteInfo, method: str, several: bool) -> dict[str, Any]:
        """The operation of ``route`` for ``method`` (``several``: the route has others)."""
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
                      if param.source in ("path", *_TEXT_SOURCES) and not param.custom
                      and not _hidden(param)]
        parameters.extend(self.untyped_path_parameters(route, params))
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(params)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = self.responses.of(route)
        security = self.security(route)
        if security is not None:
            operation["security"] = security
        if route.deprecated:
            operation["deprecated"] = True
        if route.openapi_extra:
            merge(operation, copy.deepcopy(dict(route.openapi_extra)))
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
            schema = {} if body.custom else self.registry.schema(_undescribed(body.annotation))
            media_types = body.media_types or ("application/json",)
            if base_type(body.annotation) is bytes:
                schema = {"type": "string", "contentMediaType": "application/octet-stream"}
            elif base_type(body.annotation) is str:
                schema = {"type": "string"}
            content = {media: {"schema": schema} for media in media_types}
            return _described({"content": content, "required": body.required}, body)
        if not fields:
            return None
        whole = next((p for p in fields if not p.key), None)
        described = whole
        if whole is not None:
            schema = self.registry.schema(_undescribed(whole.annotation))
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
        files = any(holds(p.annotation, is_upload_file) for p in fields)
        media_types = ("multipart/form-data",) if files else (
            "application/x-www-form-urlencoded", "multipart/form-data")
        return _described({"content": {media: {"schema": schema} for media in media_types},
                           "required": required}, described)

    # -- security (issue #15: schemes in the route model) ------------------------------------

    def security(self, route: RouteInfo) -> list[dict[str, list[str]]] | None:
        """The route's security requirements: every scheme of ``RouteInfo.security`` (each a
        scheme object with ``scheme_name`` and ``openapi()``, and the scopes required of it),
        its scheme objects going to ``components/securitySchemes``.

        The required schemes are one requirement, all of them together; ``AnyOf(a, b)``
        (``alternatives``) makes one requirement per scheme, any one of which is enough.
        Optional ones (``Credentials | None``: an anonymous request is served) make more
        alternatives: the required schemes alone (``{}`` when there are none), then with each
        optional scheme, so ``[{}, {"Token": []}]`` says "a Token, or nothing"."""
        combinations: list[dict[str, list[str]]] = [{}]
        optional: list[dict[str, list[str]]] = []
        for needed in route.security:
            choices = [{self.scheme_name(route, scheme): list(needed.scopes)}
                       for scheme in needed.alternatives or (needed.scheme,)]
            if needed.optional:
                optional.extend(choices)
            else:
                combinations = [_joined(have, choice) for have in combinations
                                for choice in choices]
        if not route.security:
            return None
        requirements = [*combinations, *(_joined(have, choice) for have in combinations
                                         for choice in optional
                                         if not choice.keys() <= have.keys())]
        unique: list[dict[str, list[str]]] = []
        for requirement in requirements:
            if requirement not in unique:
                unique.append(requirement)
        return unique

    def scheme_name(self, route: RouteInfo, scheme: Any) -> str:
        """The scheme's name, its object registered for ``components/securitySchemes``."""
        name = str(scheme.scheme_name)
        described = scheme.openapi()
        known = self.security_schemes.setdefault(name, described)
        if known != described:
            raise ValueError(f"Two different security schemes are named {name!r} "
                             f"({route.location}): give one another name=")
        return name


def _joined(first: dict[str, list[str]], second: dict[str, list[str]],
            ) -> dict[str, list[str]]:
    """One requirement with the schemes of both (the scopes of a scheme in both, merged)."""
    joined = {name: list(scopes) for name, scopes in first.items()}
    for name, scopes in second.items():
        have = joined.setdefault(name, [])
        have.extend(scope for scope in scopes if scope not in have)
    return joined


def _described(request_body: dict[str, Any], param: ParamInfo | None) -> dict[str, Any]:
    """The request body object, with the ``description`` of the body parameter's
    ``msgspec.Meta`` (``Annotated[Note, Meta(description=...)]``), as a parameter's goes on
    the parameter object (and not into the body type's schema)."""
    for meta in param.constraints if param is not None else ():
        if meta.description:
            request_body = {"description": meta.description, **request_body}
    return request_body


def _path_converters(template: str) -> dict[str, str]:
    return {s.name: s.converter.name for s in parse_template(template)
            if s.name is not None and s.converter is not None}


def _undescribed_meta(meta: msgspec.Meta) -> msgspec.Meta:
    """``meta`` without its description (a parameter's goes on the parameter object)."""
    return msgspec.Meta(**{field: getattr(meta, field) for field in _META_FIELDS
                           if field != "description" and getattr(meta, field) is not None})


def _hidden(param: ParamInfo) -> bool:
    """``include_in_schema=False`` on the parameter's marker (kept in its ``Meta``)."""
    return any(meta.extra and meta.extra.get("include_in_schema") is False
               for meta in param.constraints)


def _undescribed(annotation: Any) -> Any:
    """``annotation`` with its ``Meta`` descriptions left out, the rest kept."""
    if get_origin(annotation) is not Annotated:
        return annotation
    inner, *extras = get_args(annotation)
    return Annotated[(inner, *(_undescribed_meta(extra) if isinstance(extra, msgspec.Meta)
                               else extra for extra in extras))]


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError):
        return False
    return True


__all__ = [
    "Operations",
]
