"""The engine and its HTTP path. Read :meth:`Engine.handle_http` top to bottom to follow a
request after ``App.__call__``:

1. find the route: most paths need no percent-decoding and no ``root_path`` stripping, and
   many are fully static (one dict lookup); others walk the route tree;
2. pick the pipeline for the method (handler middleware around the handler's compiled plan),
   or the 404, 405 or 400 pipeline, or hand the request to a mounted app;
3. run it; an exception becomes a response through the app's exception policy;
4. send the response, then run what waits for it to be gone (dependency teardown,
   background tasks, ``call_on_close``).

The :class:`Engine` is compiled from the app's declarations (:mod:`joey._engine.compiler`)
and replaced whole when they change.
"""

from __future__ import annotations

import logging
from typing import Any

from joey._engine.connections import OpenConnections
from joey._engine.errors import ExceptionPolicy, record_unhandled
from joey._engine.mount import handle_mount
from joey._engine.tree import Endpoint, RouteTree, split_path, walk
from joey._engine.websocket import serve_websocket
from joey.exceptions import BadRequest, NotFound
from joey.params.plan import DependencyNode
from joey.paths import BadPath, routing_path
from joey.pipelines import Pipeline
from joey.requests import ClientDisconnect, Request
from joey.responses import (
    NO_BODY_STATUSES,
    EncodedProblemResponse,
    RedirectResponse,
    Response,
    json_encode,
)
from joey.routeinfo import RouteInfo
from joey.routing import Mount, Router
from joey.types import Receive, Scope, Send

logger = logging.getLogger("joey")

#: The problem document of the engine's own 404 up to its ``detail`` (``{..."detail":``):
#: the same bytes as ``ProblemResponse.from_error(NotFound(detail))`` once the detail and
#: ``}`` follow
NOT_FOUND_HEAD = json_encode(NotFound().to_problem())[:-1] + b',"detail":'


class Engine:
    """What serves an app's HTTP and WebSocket scopes, compiled from its declarations."""

    def __init__(self, app: Any, tree: RouteTree, policy: ExceptionPolicy,
                 connections: OpenConnections, *, max_body_size: int | None,
                 redirect_slashes: bool) -> None:
        #: the App itself: handed to every Request and WebSocket
        self.app = app
        self.tree = tree
        self.static_routes = tree.static_routes
        self.root = tree.root
        self.policy = policy
        #: whether an exception handler decides what a 404 looks like (then it is raised)
        self.custom_not_found = policy.lookup(NotFound) is not None
        self.connections = connections
        self.max_body_size = max_body_size
        self.redirect_slashes = redirect_slashes
        # perf: "/x" can only redirect to "/x/" if some route ends with "/" (404s skip a walk)
        self.slash_templates = any(
            e.template.endswith("/") and e.template != "/" for e in tree.endpoints)
        # Filled in by the compiler:
        self.not_found: Pipeline = self.answer_not_found
        self.bad_target: Pipeline = self.answer_bad_target
        self.routes: list[RouteInfo] = []
        self.app_scoped: list[DependencyNode] = []
        self.mounts: list[Mount] = []
        self.routers: list[Router] = []

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HTTP and WebSocket scopes (the app answers lifespan scopes itself)."""
        kind = scope["type"]
        if kind == "http":
            await self.handle_http(scope, receive, send)
        elif kind == "websocket":
            await serve_websocket(self.app, self.tree, self.connections, scope, receive, send)
        else:
            raise RuntimeError(f"Unknown ASGI scope type {kind!r}")

    # -- the HTTP path ---------------------------------------------------------------------

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # 1. Find the route. Most requests need no percent-decoding and no root_path
        #    stripping, and many hit a fully static path: one dict lookup.
        path: str = scope["path"]
        raw_path: bytes | None = scope.get("raw_path")
        bad_target = False
        found: Endpoint | Mount | None
        params: dict[str, Any] = {}
        if path[:1] == "/" and not scope.get("root_path") and (
            raw_path is None or b"%" not in raw_path
        ):
            found = self.static_routes.get(path)
            if found is None:
                found = walk(self.root, path[1:].split("/") if path != "/" else [], 0, params)
        else:
            found = None
            try:
                routed, segments = routing_path(scope)
            except BadPath:
                bad_target = True  # not a path, or not UTF-8: a 400, below
            else:
                found = self.static_routes.get(routed) if segments is None else None
                if found is None:
                    found = walk(self.root, segments if segments is not None
                                 else split_path(routed), 0, params)
        endpoint: Endpoint | None
        if found is None:
            endpoint, params = None, {}  # (without what a failed branch left in it)
        elif isinstance(found, Endpoint):
            endpoint = found
        else:
            await handle_mount(found, scope, receive, send)
            return
        # 2. Pick the pipeline for the method: handler middleware around the handler's plan.
        if endpoint is None:
            pipeline = self.bad_target if bad_target else self.not_found
        else:
            pipeline = endpoint.handlers.get(scope["method"]) or endpoint.fallback or (
                self.not_found)
        # 3. Run it; an exception becomes a response through the exception handlers.
        request = Request(scope, receive, self.app, params, self.max_body_size)
        try:
            response = await pipeline(request)
        except Exception as exc:
            request.error = exc  # generator dependencies see it at teardown
            if isinstance(exc, ClientDisconnect):
                await request.run_cleanups()
                return
            response = await self.policy.respond(request, exc, pipeline)
        # 4. Send it; a failure before it started is answered through the policy. Then, even
        #    after a failure, run what waits for the response to be gone. (Spelled without
        #    `await` in a `finally:`, which the compiled build mishandles: see "Compiled build"
        #    in docs/deployment.md.)
        try:
            if response._sends_whole:
                # perf: a complete body cannot fail half-way, so no need to track the start
                # message; and Response.__call__'s two messages are sent from here, with no
                # coroutine of their own
                body = response.body
                status = response.status_code
                try:
                    await send({"type": "http.response.start", "status": status,
                                "headers": response.raw_headers(len(body))})
                    if scope["method"] == "HEAD" or status in NO_BODY_STATUSES:
                        body = b""
                    await send({"type": "http.response.body", "body": body})
                    if response.background is not None:
                        await response.background()
                except OSError:
                    logger.debug("Client went away before the response was sent")
            else:
                await self.send_tracking_start(response, request, scope, receive, send)
        except BaseException:
            if request.cleanups is not None:
                await request.run_cleanups()
            raise
        if request.cleanups is not None:
            await request.run_cleanups()

    async def send_tracking_start(
        self, response: Response, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Send a response that may fail after it started (a stream, a file)."""
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await response(scope, receive, tracking_send)  # type: ignore[arg-type]
        except Exception as exc:
            if started:
                # Too late for an error status: log it and leave the response unfinished so
                # the server aborts the connection and the client sees a truncated body
                # rather than a short one that looks complete.
                logger.error(
                    "Error while sending the response to %s %s after it had started",
                    scope.get("method"), scope.get("path"), exc_info=exc,
                )
                record_unhandled(scope, exc)
            else:
                error_response = await self.policy.respond(request, exc, None)
                await error_response(scope, receive, send)

    # -- 404 and 400 ------------------------------------------------------------------------

    async def answer_not_found(self, request: Request) -> Response:
        scope = request.scope
        if self.redirect_slashes and scope["method"] in ("GET", "HEAD") and (
            self.slash_templates or scope["path"].endswith("/")
        ):
            location = self.slash_redirect(request)
            if location is not None:
                return RedirectResponse(location, status_code=308)
        detail = f"Nothing at {scope['path']}."
        if self.custom_not_found:
            raise NotFound(detail)  # the user's handler decides what a 404 looks like
        # perf: nobody customises 404s: no NotFound raised, or built, or its problem document
        # encoded as a dict; the document's fixed part is encoded once (NOT_FOUND_HEAD)
        return EncodedProblemResponse(NOT_FOUND_HEAD + json_encode(detail) + b"}", 404)

    async def answer_bad_target(self, request: Request) -> Response:
        # The route lookup refused this target; ask again for the reason. Raised, so the
        # app's exception handlers decide what the 400 looks like (rare: no fast path).
        try:
            routing_path(request.scope)
        except BadPath as exc:
            raise BadRequest(str(exc)) from None
        raise BadRequest("The request target cannot be routed.")

    def slash_redirect(self, request: Request) -> str | None:
        """The other trailing-slash form of the path, if that one is routed."""
        path, segments = routing_path(request.scope)
        if segments is None:
            segments = path[1:].split("/") if path != "/" else []
        if not segments:
            return None
        # Segment-wise, so an encoded "%2F" at the end is not taken for a trailing slash.
        trailing = segments[-1] == ""
        others = segments[:-1] if trailing else [*segments, ""]
        other = "/" + "/".join(others)
        if other.startswith("//"):  # "//host" would be read as another site: never send it
            return None
        match = self.tree.lookup(other, others)
        if match is None or match.endpoint is None:
            return None
        # From raw_path (root_path included, as servers send it), so "%3F" stays encoded.
        raw: bytes | None = request.scope.get("raw_path")
        if raw and raw.isascii():
            target = raw.split(b"?", 1)[0].decode("ascii")
            target = target[:-1] if trailing else target + "/"
        else:
            root_path: str = request.scope.get("root_path", "")
            target = root_path + other
        query = request.scope.get("query_string", b"").decode("latin-1")
        # Relative (no scheme, no host): never downgrades https behind a proxy.
        return target + (f"?{query}" if query else "")

