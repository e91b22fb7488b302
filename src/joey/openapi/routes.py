"""``OpenAPI``: what the document says about the API as a whole, and the routes that serve it
(the document as JSON and the three docs pages).

The document is built on first use, from ``app.routes``, and kept until the app's routes
change (the app then compiles a new engine, and the route model is new objects), so serving
it costs a dict lookup, and no other route ever pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from joey.openapi.document import build_document
from joey.openapi.errors import ErrorRendering
from joey.openapi.pages import Assets, redoc_page, scalar_page, swagger_ui_page
from joey.requests import Request
from joey.responses import HTMLResponse, Response
from joey.routeinfo import RouteInfo
from joey.routing import Router


class AppLike(Protocol):
    """What the document needs from an app (:class:`joey.App` is one)."""

    @property
    def routes(self) -> list[RouteInfo]: ...
    @property
    def exception_handlers(self) -> Mapping[type[BaseException], Any]: ...
    @property
    def exception_schemas(self) -> Mapping[type[BaseException], tuple[Any, str]]: ...
    def include_router(self, router: Router, *, prefix: str = "") -> None: ...


class OpenAPI:
    """The API document's description of the API, and where it and its docs pages are served.

    Give it to the app: ``App(openapi=OpenAPI(title="Books", version="1.0"))`` serves the
    document at ``openapi_url`` and Swagger UI, ReDoc and Scalar at ``docs_url``,
    ``redoc_url`` and ``scalar_url``; set any of them to ``None`` to leave it out. ``assets``
    says where the pages load their viewers from (a CDN by default; :meth:`Assets.local`).
    ``servers`` and ``tags`` are lists of OpenAPI server and tag objects; without
    ``servers``, a request with a ``root_path`` gets ``[{"url": root_path}]``.

    Example::

        from joey import App
        from joey.openapi import OpenAPI

        app = App(openapi=OpenAPI(title="Books", version="1.0.0"))
    """

    def __init__(
        self,
        *,
        title: str = "API",
        version: str = "0.1.0",
        summary: str | None = None,
        description: str | None = None,
        terms_of_service: str | None = None,
        contact: Mapping[str, str] | None = None,
        license: Mapping[str, str] | None = None,
        servers: Sequence[Mapping[str, Any]] | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        scalar_url: str | None = "/scalar",
        assets: Assets | None = None,
    ) -> None:
        info: dict[str, Any] = {"title": title, "version": version}
        for key, value in (("summary", summary), ("description", description),
                           ("termsOfService", terms_of_service), ("contact", contact),
                           ("license", license)):
            if value is not None:
                info[key] = dict(value) if isinstance(value, Mapping) else value
        self.info = info
        self.title = title
        self.servers = [dict(server) for server in servers] if servers else None
        self.tags = [dict(tag) for tag in tags] if tags else None
        if (docs_url or redoc_url or scalar_url) and not openapi_url:
            raise ValueError("The docs pages need the document: set openapi_url too")
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.scalar_url = scalar_url
        self.assets = assets or Assets()
        # The document of the routes last seen, and its JSON per root_path.
        self._routes: list[RouteInfo] = []
        self._document: dict[str, Any] | None = None
        self._encoded: dict[str, bytes] = {}

    # -- the document ------------------------------------------------------------------------

    def document(self, app: AppLike, root_path: str = "") -> dict[str, Any]:
        """The OpenAPI 3.1 document of ``app`` (built once, again after its routes change).

        Do not change what it returns: it is shared by every later call."""
        routes = app.routes
        if self._document is None or len(routes) != len(self._routes) or any(
                new is not old for new, old in zip(routes, self._routes, strict=True)):
            self._routes = routes
            self._encoded = {}
            self._document = build_document(
                routes, info=self.info, tags=self.tags,
                errors=ErrorRendering(app.exception_handlers, app.exception_schemas))
        servers = self.servers or ([{"url": root_path}] if root_path else None)
        if not servers:
            return self._document
        document = dict(self._document)
        document["servers"] = servers
        return {key: document[key] for key in ("openapi", "info", "servers", *self._document)
                if key in document}

    def json(self, app: AppLike, root_path: str = "") -> bytes:
        """The document as JSON bytes (cached like the document)."""
        self.document(app, root_path)  # rebuilds (and empties the cache) when routes changed
        encoded = self._encoded.get(root_path)
        if encoded is None:
            encoded = self._encoded[root_path] = msgspec.json.encode(
                self.document(app, root_path))
        return encoded

    # -- serving ---------------------------------------------------------------------------

    def attach(self, app: AppLike) -> None:
        """Add the document's and the pages' routes to ``app`` (``App(openapi=...)`` does)."""
        router = Router(name="openapi")
        if self.openapi_url:
            async def openapi_document(request: Request) -> Response:
                return Response(self.json(app, request.scope.get("root_path", "")),
                                media_type="application/json")

            router.get(self.openapi_url, name="document", include_in_schema=False)(openapi_document)
        pages: list[tuple[str | None, str, Callable[[str, str, Assets], str]]] = [
            (self.docs_url, "swagger_ui", swagger_ui_page),
            (self.redoc_url, "redoc", redoc_page),
            (self.scalar_url, "scalar", scalar_page),
        ]
        for url, name, render in pages:
            if url:
                router.get(url, name=name, include_in_schema=False)(self._page(render))
        app.include_router(router)

    def _page(self, render: Callable[[str, str, Assets], str]) -> Callable[..., Any]:
        cache: dict[str, bytes] = {}

        async def page(request: Request) -> Response:
            root_path: str = request.scope.get("root_path", "")
            body = cache.get(root_path)
            if body is None:
                body = cache[root_path] = render(
                    self.title, f"{root_path}{self.openapi_url}", self.assets).encode()
            return HTMLResponse(body)

        return page


__all__ = [
    "AppLike",
    "OpenAPI",
]
