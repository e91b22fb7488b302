"""``joey routes``: every route of an app, its WebSocket routes and its mounts, as a table or
as JSON, read from the route model alone (``app.routes`` and ``app.mounts``): what it prints
is what the engine serves, and the errors it can answer instead (``RouteInfo.errors``, by
status).

Example:

```text
$ joey routes examples.app:app
METHODS  PATH          NAME       HANDLER              MIDDLEWARE  GUARDS  ERRORS   DEPENDENCIES
GET      /books/{id}   get_book   examples/app.py:61   -           -       404 422  get_db
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from joey.routeinfo import DependencyInfo, MountInfo, RouteInfo, status_of

COLUMNS = ("METHODS", "PATH", "NAME", "HANDLER", "MIDDLEWARE", "GUARDS", "ERRORS",
           "DEPENDENCIES")


def name_of(obj: Any) -> str:
    """How a handler, middleware or dependency is named in the listing: its qualified name
    (``<locals>`` left out), or for an object such as a security scheme, its
    ``scheme_name`` or its class."""
    scheme_name = getattr(obj, "scheme_name", None)
    if isinstance(scheme_name, str):
        return scheme_name
    name = getattr(obj, "__qualname__", None)
    if not isinstance(name, str):
        return type(obj).__name__
    return name.replace(".<locals>", "")


def _walk(dependencies: Iterable[DependencyInfo]) -> Iterator[DependencyInfo]:
    """Every dependency, what it depends on first, each once."""
    seen: set[int] = set()

    def visit(items: Iterable[DependencyInfo]) -> Iterator[DependencyInfo]:
        for item in items:
            if id(item) in seen:
                continue
            seen.add(id(item))
            yield from visit(item.dependencies)
            yield item

    yield from visit(dependencies)


def guards(route: RouteInfo) -> list[str]:
    """What runs in the route's security phase (schemes, credential checks, guards)."""
    return [name_of(d.function) for d in _walk(route.dependencies) if d.security]


def dependencies(route: RouteInfo) -> list[str]:
    """The route's other dependencies, inner ones first."""
    return [name_of(d.function) for d in _walk(route.dependencies) if not d.security]


def error_statuses(route: RouteInfo) -> list[int]:
    """The statuses of the errors the route can answer instead of its success, each once."""
    return list(dict.fromkeys(status_of(error) for error in route.errors))


def location(route: RouteInfo) -> str:
    """``file:line`` of the handler, relative to the current directory when under it."""
    where = route.location
    file, _, line = where.rpartition(":")
    if file and os.path.isabs(file):
        relative = os.path.relpath(file)
        if not relative.startswith(".."):
            return f"{relative}:{line}"
    return where


def route_record(route: RouteInfo) -> dict[str, Any]:
    """One route as the JSON output describes it."""
    return {
        "kind": "websocket" if route.websocket else "http",
        "methods": list(route.methods),
        "path": route.path,
        "name": route.name,
        "handler": f"{getattr(route.handler, '__module__', '?')}.{name_of(route.handler)}",
        "location": location(route),
        "path_params": {key: getattr(t, "__name__", str(t))
                        for key, t in route.path_params.items()},
        "middleware": [name_of(m) for m in route.middleware],
        "guards": guards(route),
        "scopes": list(route.scopes),
        "errors": error_statuses(route),
        "dependencies": dependencies(route),
        "tags": list(route.tags),
        "status_code": None if route.websocket else route.status_code,
    }


def mount_record(mount: MountInfo) -> dict[str, Any]:
    """One mount as the JSON output describes it."""
    return {"kind": "mount", "methods": [], "path": mount.path or "/", "name": mount.name,
            "handler": name_of(mount.app), "location": None}


def as_json(routes: list[RouteInfo], mounts: list[MountInfo]) -> str:
    return json.dumps([*(route_record(r) for r in routes), *(mount_record(m) for m in mounts)],
                      indent=2)


def as_table(routes: list[RouteInfo], mounts: list[MountInfo]) -> str:
    rows: list[tuple[str, ...]] = []
    for route in routes:
        scopes = f" [{' '.join(route.scopes)}]" if route.scopes else ""
        rows.append((
            "WS" if route.websocket else ",".join(route.methods), route.path, route.name,
            location(route),
            ", ".join(name_of(m) for m in route.middleware) or "-",
            (", ".join(guards(route)) + scopes) or "-",
            " ".join(map(str, error_statuses(route))) or "-",
            ", ".join(dependencies(route)) or "-",
        ))
    for mount in mounts:
        path = f"{mount.path}/*" if mount.path else "/*"
        rows.append(("MOUNT", path, mount.name or "-", name_of(mount.app), "-", "-", "-", "-"))
    if not rows:
        return "(no routes)"
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                         strict=True)).rstrip()
                     for row in [COLUMNS, *rows])


__all__ = [
    "COLUMNS",
    "as_json",
    "as_table",
    "dependencies",
    "error_statuses",
    "guards",
    "location",
    "mount_record",
    "name_of",
    "route_record",
]
