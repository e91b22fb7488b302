"""The route tree: finds the endpoint (or mounted app) for a path.

The tree has one node per segment. At each node a lookup tries, in order: the static child
with exactly this text, the typed parameters (most specific converter first), the catch-all,
then a mounted app. If a branch fails deeper down, the next option is tried, so a more
specific route never hides a less specific one. Cost grows with the number of segments in the
path, not with the number of routes; fully static paths skip the tree through one dict lookup,
and the walk recurses only where a segment has more than one way on (:func:`walk`).
Built once at startup from the app's flattened routes; conflicts are refused then, naming both
handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from joey.describe import describe
from joey.paths import Converter, IntConverter, Segment, parse_template, quote_segment
from joey.pipelines import Pipeline
from joey.routing import HTTP_METHODS, Mount, Route, RouteConflict
from joey.websockets import WebSocket

#: a compiled WebSocket route: the declaration and the coroutine that runs its plan
WebSocketHandler = tuple[Route, Callable[[WebSocket], Awaitable[Any]]]


class Endpoint:
    """What a path resolves to.

    While the tree is built, ``routes`` and ``websocket_route`` register the declared routes
    (to find conflicts). The compiler then fills in what runs: a pipeline per method in
    ``handlers``, the ``fallback`` for other methods (405, or 404 on a WebSocket-only path),
    and the WebSocket handler.
    """

    __slots__ = ("allow_header", "fallback", "handlers", "routes", "template", "websocket",
                 "websocket_route")

    def __init__(self, template: str) -> None:
        self.template = template
        self.routes: dict[str, Route] = {}
        self.websocket_route: Route | None = None
        self.handlers: dict[str, Pipeline] = {}
        self.fallback: Pipeline | None = None
        self.websocket: WebSocketHandler | None = None
        self.allow_header = ""

    def finish(self) -> None:
        methods = set(self.routes)
        if "GET" in methods:
            methods.add("HEAD")
        methods.add("OPTIONS")
        order = {m: i for i, m in enumerate(HTTP_METHODS)}
        self.allow_header = ", ".join(sorted(methods, key=order.__getitem__))


class _Node:
    __slots__ = ("catch_all", "endpoint", "forks", "mount", "only", "params", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        # (converter, parameter name, child): tried in converter priority order
        self.params: list[tuple[Converter, str, _Node]] = []
        self.catch_all: tuple[str, Endpoint] | None = None
        self.endpoint: Endpoint | None = None
        self.mount: Mount | None = None
        # perf: what the walk reads, kept up to date by refresh(). A node "forks" when a
        # segment has another way on than its static child (a parameter, a catch-all, a
        # mount): only then is a failure deeper down something to come back from. ``only`` is
        # the one way on once the static child (if any) failed: a single parameter (its
        # converter's bound ``convert``, whether that is the int converter, its name, the
        # child).
        self.forks = False
        self.only: tuple[Callable[[str], Any], bool, str, _Node] | None = None

    def refresh(self) -> None:
        self.forks = bool(self.params) or self.catch_all is not None or self.mount is not None
        self.only = None
        if len(self.params) == 1 and self.catch_all is None and self.mount is None:
            converter, name, child = self.params[0]
            self.only = (converter.convert, type(converter) is IntConverter, name, child)


class Match:
    """The result of a lookup: an endpoint and its converted path parameters, or a mount."""

    __slots__ = ("endpoint", "mount", "params")

    def __init__(
        self, endpoint: Endpoint | None, params: dict[str, Any], mount: Mount | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.params = params
        self.mount = mount


class RouteTree:
    """The segment tree, built once at startup from the flattened routes."""

    __slots__ = ("_names", "endpoints", "root", "static_routes")

    def __init__(self) -> None:
        #: where :func:`walk` starts
        self.root = _Node()
        # perf: exact paths without parameters skip the tree walk: one dict lookup.
        self.static_routes: dict[str, Endpoint] = {}
        self._names: dict[str, list[tuple[Route, tuple[Segment, ...]]]] = {}
        self.endpoints: list[Endpoint] = []

    def add(self, route: Route) -> Endpoint:
        """Insert ``route``; raise :class:`RouteConflict` if it clashes with another."""
        segments = route.segments
        node = self.root
        shape: list[str] = []
        for segment in segments:
            if segment.converter is None:
                node = node.static.setdefault(segment.text, _Node())
                shape.append(segment.text)
                continue
            assert segment.name is not None
            if segment.is_catch_all:
                if node.catch_all is None:
                    endpoint = Endpoint(route.path)
                    node.catch_all = (segment.name, endpoint)
                    node.refresh()
                    self.endpoints.append(endpoint)
                else:
                    other_name, endpoint = node.catch_all
                    if other_name != segment.name:
                        self._conflict(route, endpoint, "catch-all parameters named "
                                       f"{other_name!r} and {segment.name!r} at the same place")
                self._register(endpoint, route)
                self._names.setdefault(route.name, []).append((route, segments))
                return endpoint
            for converter, name, child in node.params:
                if name != segment.name:
                    other = _first_endpoint(child)
                    self._conflict(
                        route, other, f"parameters named {name!r} and {segment.name!r} at "
                        f"position {len(shape) + 1} of the path",
                    )
                if converter is segment.converter:
                    node = child
                    break
            else:
                child = _Node()
                node.params.append((segment.converter, segment.name, child))
                node.params.sort(key=lambda item: item[0].priority)
                node.refresh()
                node = child
            shape.append(segment.text)
        if node.endpoint is None:
            node.endpoint = Endpoint(route.path)
            self.endpoints.append(node.endpoint)
            if not any(s.is_param for s in segments):
                self.static_routes[route.path] = node.endpoint
        self._register(node.endpoint, route)
        self._names.setdefault(route.name, []).append((route, segments))
        return node.endpoint

    def add_mount(self, mount: Mount) -> None:
        node = self.root
        for segment in parse_template(mount.path or "/"):
            node = node.static.setdefault(segment.text, _Node())
        if node.mount is not None:
            raise RouteConflict(
                f"Two apps are mounted at {mount.path or '/'!r}: {describe(node.mount.app)} "
                f"and {describe(mount.app)}"
            )
        node.mount = mount
        node.refresh()

    def _register(self, endpoint: Endpoint, route: Route) -> None:
        if route.websocket:
            if endpoint.websocket_route is not None:
                self._conflict(route, endpoint, "two websocket handlers", ws=True)
            endpoint.websocket_route = route
            return
        for method in route.methods:
            existing = endpoint.routes.get(method)
            if existing is not None:
                raise RouteConflict(
                    f"{method} {route.path} is registered twice: by "
                    f"{describe(existing.endpoint)} (path {existing.path!r}) and by "
                    f"{describe(route.endpoint)}. Remove one, or give them different paths."
                )
            endpoint.routes[method] = route
        endpoint.finish()

    def _conflict(
        self, route: Route, endpoint: Endpoint | None, why: str, ws: bool = False
    ) -> None:
        other: Route | None = None
        if endpoint is not None:
            other = endpoint.websocket_route if ws else next(iter(endpoint.routes.values()),
                                                                None)
            if other is None:
                other = endpoint.websocket_route
        where = (
            f"{describe(other.endpoint)} (path {other.path!r})" if other is not None
            else "another route"
        )
        raise RouteConflict(
            f"Route {route.path!r} of {describe(route.endpoint)} conflicts with {where}: {why}. "
            "Use the same parameter name at the same position, or a different static prefix."
        )

    # -- lookup: the per-request part -------------------------------------------------------

    def lookup(self, path: str, segments: list[str] | None = None) -> Match | None:
        """Find the endpoint (or mount) for a decoded routing path.

        ``segments`` may be given when the path had to be decoded segment by segment (an
        encoded ``/`` inside a segment); otherwise they are split from ``path``.
        """
        if segments is None:
            endpoint = self.static_routes.get(path)
            if endpoint is not None:
                return Match(endpoint, {})
            segments = split_path(path)
        params: dict[str, Any] = {}
        found = walk(self.root, segments, 0, params)
        if found is None:
            return None
        if isinstance(found, Endpoint):
            return Match(found, params)
        return Match(None, {}, found)

    def url_path_for(self, name: str, params: dict[str, Any]) -> str:
        candidates = self._names.get(name)
        if not candidates:
            raise LookupError(f"No route named {name!r}")
        wanted = set(params)
        for _route, segments in candidates:
            names = {s.name for s in segments if s.name}
            if names != wanted:
                continue
            parts = []
            for segment in segments:
                if segment.converter is None:
                    parts.append(segment.text)
                    continue
                assert segment.name is not None
                text = segment.converter.to_string(params[segment.name])
                safe = "/" if segment.is_catch_all else ""
                parts.append(quote_segment(text, safe))
            return "/" + "/".join(parts)
        expected = " or ".join(
            "{" + ", ".join(s.name for s in segs if s.name) + "}" for _, segs in candidates
        )
        raise LookupError(
            f"Route {name!r} takes parameters {expected}, got {{{', '.join(sorted(wanted))}}}"
        )


def _first_endpoint(node: _Node) -> Endpoint | None:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.endpoint is not None:
            return current.endpoint
        if current.catch_all is not None:
            return current.catch_all[1]
        stack.extend(current.static.values())
        stack.extend(child for _, _, child in current.params)
    return None


def split_path(path: str) -> list[str]:
    """A routing path's segments, as the tree looks them up (``/`` has none)."""
    return path[1:].split("/") if path != "/" else []


def walk(
    node: _Node, segments: list[str], index: int, params: dict[str, Any],
) -> Endpoint | Mount | None:
    """The tree walk: the endpoint (or mount) for ``segments[index:]`` below ``node``.

    The converted path parameters go into ``params``; a branch that fails takes its own back
    out (the newest keys: ``popitem``), except on the way to a ``None``, where the caller
    throws ``params`` away. The walk loops wherever a segment has one way on and recurses only
    where there is something to come back to (a static child at a node that forks, several
    typed parameters).
    """
    count = len(segments)
    while index < count:
        segment = segments[index]
        child = node.static.get(segment)
        if child is not None:
            if not node.forks:
                # perf: nothing else to try here: descend in the loop, no recursion
                node = child
                index += 1
                continue
            mark = len(params)
            found = walk(child, segments, index + 1, params)
            if found is not None:
                return found
            while len(params) > mark:
                params.popitem()
        only = node.only
        if only is not None:
            # perf: one typed parameter and nothing after it to fall back to: convert and
            # descend in the loop. Plain digits are IntConverter.convert's answer, inline.
            convert, is_int, name, child = only
            if is_int and segment.isdigit() and segment.isascii() and len(segment) <= 40:
                params[name] = int(segment)
            else:
                try:
                    params[name] = convert(segment)
                except ValueError:
                    return None
            node = child
            index += 1
            continue
        mark = len(params)
        for converter, name, child in node.params:
            try:
                params[name] = converter.convert(segment)
            except ValueError:
                continue
            found = walk(child, segments, index + 1, params)
            if found is not None:
                return found
            while len(params) > mark:
                params.popitem()
        if node.catch_all is not None:
            name, endpoint = node.catch_all
            rest = "/".join(segments[index:])
            if rest:
                params[name] = rest
                return endpoint
        return node.mount
    if node.endpoint is not None:
        return node.endpoint
    return node.mount
