"""Markers: where a handler parameter's value comes from, said in ``Annotated[...]``.

``Query()``, ``Header()``, ``Cookie()``, ``Body()`` and ``Form()`` name a part of the request;
``Depends(fn)`` names a function whose result is passed in. Markers only declare: the plan
(:mod:`joey.params.plan`) reads them once at startup.

Example::

    def get_titles() -> list[str]:
        return ["Dune", "Emma"]

    async def search(
        q: str,                                             # the query string, by name
        token: Annotated[str, Header("x-token")],           # a header
        titles: Annotated[list[str], Depends(get_titles)],  # a dependency
    ) -> list[str]:
        return [title for title in titles if q in title]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal


class ParamMarker:
    """Base of the ``Annotated`` markers that say where a value comes from."""

    __slots__ = ("alias",)
    location = "query"

    def __init__(self, alias: str | None = None) -> None:
        self.alias = alias

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.alias!r})" if self.alias else f"{name}()"


class Query(ParamMarker):
    """Take the value from the query string (``alias``: the key; default: the name).

    ``extractor=fn`` hands ``fn`` the whole parsed query (a :class:`joey.QueryParams`) and
    passes in what it returns; an exception it raises is a 422.
    """

    __slots__ = ("extractor",)
    location = "query"

    def __init__(
        self, alias: str | None = None, *, extractor: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(alias)
        self.extractor = extractor


class Header(ParamMarker):
    """Take the value from a request header (default name: ``x_token`` → ``x-token``)."""

    __slots__ = ()
    location = "header"


class Cookie(ParamMarker):
    """Take the value from a cookie (``alias``: the cookie name; default: the name)."""

    __slots__ = ()
    location = "cookie"


class Body(ParamMarker):
    """This parameter is the request body, decoded from JSON into its type.

    ``embed=True`` reads it from one key of a JSON object body instead (the parameter's
    name, or ``alias``): ``user: Annotated[User, Body(embed=True)]`` takes
    ``{"user": {...}}`` without a wrapper class, and several embedded parameters share one
    body. ``decoder=fn`` hands ``fn`` the raw body bytes instead (no Content-Type check) and
    passes in what it returns; an exception it raises is a 422.
    """

    __slots__ = ("decoder", "embed")
    location = "body"

    def __init__(self, alias: str | None = None, *, embed: bool = False,
                 decoder: Callable[[bytes], Any] | None = None) -> None:
        if decoder is not None and embed:
            raise ValueError("Body(embed=True) reads a key of a JSON body; a decoder reads "
                             "the raw body: choose one")
        if alias is not None and not embed:
            raise ValueError("Body(alias=...) names a key of the body: use it with embed=True")
        super().__init__(alias)
        self.embed = embed
        self.decoder = decoder


class Form(ParamMarker):
    """The form body (urlencoded or multipart) validated into this type (a Struct,
    dataclass, TypedDict or dict), or, with ``alias``/by name on a scalar or ``UploadFile``
    parameter, one field of it."""

    __slots__ = ()
    location = "form"


class Depends:
    """A value computed by ``dependency`` (sync or async, a function or a generator).

    ``scope="request"`` (default): called at most once per request, torn down (the code
    after ``yield``) once the response has been sent. ``scope="function"``: the same, but
    torn down when the handler has returned, before the response is sent, so an exception
    in the teardown (a commit that fails) becomes the response (FastAPI's spelling).
    ``scope="app"``: called once at startup, torn down at shutdown; it may only depend on
    other app-scoped dependencies.

    Example::

        class Session:
            async def users(self) -> list[str]:
                return ["ann"]

            async def close(self) -> None: ...

        async def get_db() -> AsyncIterator[Session]:
            session = Session()
            try:
                yield session
            finally:
                await session.close()

        @app.get("/users")
        async def users(db: Annotated[Session, Depends(get_db)]) -> list[str]:
            return await db.users()


    ``raises``: exception classes the dependency raises (``Depends(get_book,
    raises=[NotFound])``), documented in the API document of every route that uses it, as
    the route's own ``raises`` are.
    """

    __slots__ = ("dependency", "raises", "scope")

    def __init__(
        self, dependency: Callable[..., Any], *,
        scope: Literal["request", "function", "app"] = "request",
        raises: Sequence[type[BaseException]] = (),
    ) -> None:
        if scope not in ("request", "function", "app"):
            raise ValueError("Depends scope must be 'request', 'function' or 'app'")
        self.dependency = dependency
        self.scope = scope
        self.raises = tuple(raises)

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__qualname__', self.dependency)})"


class Security(Depends):
    """A dependency that authenticates or authorizes: it runs before the request's other
    parameters are read, so an anonymous client gets its 401 before any 422 about the body.

    ``dependency`` is a security scheme (:mod:`joey.security`) or a function (a guard, or
    one that turns credentials into a user); ``scopes`` are the scopes this route requires,
    which schemes and guards see in ``RouteInfo.scopes``. A security dependency may read the
    path, query, headers and cookies, never the body. Annotating its parameter ``T | None``
    makes it optional: a request without credentials passes ``None``.

    Example::

        import msgspec

        from joey.security import BearerCredentials, HTTPBearer

        class Article(msgspec.Struct):
            title: str

        bearer = HTTPBearer()

        @app.post("/articles")
        async def create(
            article: Article,
            token: Annotated[BearerCredentials, Security(bearer, scopes=["articles:write"])],
        ) -> Article:
            return article
    """

    __slots__ = ("scopes",)

    def __init__(self, dependency: Callable[..., Any], *, scopes: Sequence[str] = (),
                 raises: Sequence[type[BaseException]] = ()) -> None:
        super().__init__(dependency, raises=raises)
        self.scopes = tuple(scopes)

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", self.dependency)
        return f"Security({name}, scopes={list(self.scopes)!r})"


__all__ = [
    "Body",
    "Cookie",
    "Depends",
    "Form",
    "Header",
    "ParamMarker",
    "Query",
    "Security",
]
