"""JSON Schemas for the types a document names, with their shared parts in ``components``.

The document builder asks for a type's schema while it walks the routes and gets a
placeholder (an empty dict) back at once; :meth:`SchemaRegistry.finish` then makes every
schema in two calls, one to msgspec for everything msgspec knows (Structs, dataclasses,
TypedDicts, NamedTuples, enums, Literal, constraints and docs from ``msgspec.Meta``) and one
to pydantic for pydantic models, and fills the placeholders in. Asking for all types at once
is what lets each library name components so that they never collide (two ``Item`` classes
from different modules become ``a.Item`` and ``b.Item``); a name both libraries chose is
renamed on the pydantic side, with every ``$ref`` to it.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, get_args, get_origin

import msgspec

from joey.params.typeinfo import has_custom_type, holds, is_pydantic_model, is_upload_file

REF_PREFIX = "#/components/schemas/"

#: how a file in a multipart form is described (OpenAPI 3.1 with the 3.0 spelling too, which
#: Swagger UI still reads to offer a file picker)
BINARY: dict[str, Any] = {"type": "string", "format": "binary",
                          "contentMediaType": "application/octet-stream"}


class SchemaRegistry:
    """Collects types, then makes their schemas and the shared ``components/schemas``."""

    def __init__(self) -> None:
        self._msgspec: list[tuple[Any, dict[str, Any]]] = []
        self._pydantic: list[tuple[Any, str, dict[str, Any]]] = []
        self.components: dict[str, Any] = {}
        # perf: a type repeats on many routes; ask msgspec about each one once
        self._knows: dict[Any, bool] = {}

    def schema(self, tp: Any, *, mode: str = "validation") -> dict[str, Any]:
        """A placeholder for ``tp``'s schema, filled in by :meth:`finish`. ``mode``
        (``"validation"`` or ``"serialization"``) matters to pydantic models only."""
        placeholder: dict[str, Any] = {}
        try:
            hash(tp)
        except TypeError:
            return placeholder  # not a type any library describes: anything
        if tp is Any or tp is None:
            return placeholder  # anything
        if holds(tp, is_pydantic_model):
            self._pydantic.append((tp, mode, placeholder))
        elif holds(tp, is_upload_file):
            placeholder.update(_upload_schema(tp))
        elif self._msgspec_knows(tp):
            self._msgspec.append((tp, placeholder))
        return placeholder

    def finish(self) -> None:
        """Make every schema asked for and the components they share."""
        if self._msgspec:
            unique = list(dict.fromkeys(tp for tp, _ in self._msgspec))
            schemas, components = msgspec.json.schema_components(
                unique, ref_template=REF_PREFIX + "{name}")
            _type_enums([schemas, components])
            by_type = dict(zip(unique, schemas, strict=True))
            for tp, placeholder in self._msgspec:
                placeholder.update(by_type[tp])
            self.components.update(components)
        if self._pydantic:
            self._finish_pydantic()

    def _finish_pydantic(self) -> None:
        from pydantic import TypeAdapter

        inputs = [(index, mode, TypeAdapter(tp))
                  for index, (tp, mode, _) in enumerate(self._pydantic)]
        schemas, definitions = TypeAdapter.json_schemas(
            inputs, ref_template=REF_PREFIX + "{model}")  # type: ignore[arg-type]
        defs: dict[str, Any] = definitions.get("$defs", {})
        # msgspec's components were named first; a pydantic name already taken gets a suffix
        renames: dict[str, str] = {}
        for name in defs:
            if name in self.components:
                n = 2
                while f"{name}{n}" in self.components or f"{name}{n}" in defs:
                    n += 1
                renames[REF_PREFIX + name] = f"{REF_PREFIX}{name}{n}"
        for name, schema in defs.items():
            new = renames.get(REF_PREFIX + name, REF_PREFIX + name).removeprefix(REF_PREFIX)
            self.components[new] = _rename_refs(schema, renames)
        for index, (_, mode, placeholder) in enumerate(self._pydantic):
            placeholder.update(_rename_refs(schemas[(index, mode)], renames))  # type: ignore[index]

    def _msgspec_knows(self, tp: Any) -> bool:
        try:
            return self._knows[tp]
        except KeyError:
            pass
        try:
            known = not has_custom_type(msgspec.inspect.type_info(tp))
        except (TypeError, ValueError):
            known = False
        self._knows[tp] = known
        return known


#: the JSON Schema type of each JSON value an ``enum`` can list
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
    (type(None), "null"))


def _type_enums(value: Any) -> None:
    """Give every ``enum`` schema without a ``type`` (msgspec's, for ``Enum`` and ``Literal``)
    the type of its values: without one, Swagger UI shows "any" and offers no choice list."""
    if isinstance(value, dict):
        values = value.get("enum")
        if isinstance(values, list) and values and "type" not in value:
            found = list(dict.fromkeys(
                next((name for tp, name in _JSON_TYPES if isinstance(v, tp)), "")
                for v in values))
            if "integer" in found and "number" in found:
                found.remove("integer")
            if found and "" not in found:
                value["type"] = found[0] if len(found) == 1 else found
        for item in value.values():
            _type_enums(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _type_enums(item)


def _upload_schema(tp: Any) -> dict[str, Any]:
    """``UploadFile``, ``list[UploadFile]``, ``UploadFile | None``: files in a form."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(arg for arg in get_args(tp) if arg is not type(None))
    if get_origin(tp) in (list, tuple, set, frozenset):
        return {"type": "array", "items": dict(BINARY)}
    return dict(BINARY)


def _rename_refs(value: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return value
    if isinstance(value, dict):
        return {key: (renames.get(item, item) if key == "$ref" else _rename_refs(item, renames))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_rename_refs(item, renames) for item in value]
    return value


__all__ = [
    "BINARY",
    "REF_PREFIX",
    "SchemaRegistry",
]
