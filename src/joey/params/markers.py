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

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import msgspec

if TYPE_CHECKING:
    # FastAPI's spelling puts a marker where the value goes, `limit: int = Query(10)` and
    # `db: Session = Depends(get_db)`: to a type checker a marker is compatible with any
    # type (FastAPI's marker functions return Any for the same reason).
    _AnyValue: Any = object
else:
    _AnyValue = object

#: "not given": a marker argument the user did not pass
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()

#: the constraint keywords of every marker, each a ``msgspec.Meta`` field of the same name
CHECKS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern")


class MarkerOptions(TypedDict, total=False):
    """The keyword arguments every marker takes (see :class:`ParamMarker`)."""

    default: Any
    alias: str | None
    gt: float | None
    ge: float | None
    lt: float | None
    le: float | None
    multiple_of: float | None
    min_length: int | None
    max_length: int | None
    pattern: str | None
    title: str | None
    description: str | None
    examples: Sequence[Any] | None
    deprecated: bool
    include_in_schema: bool


class ParamMarker(_AnyValue):  # type: ignore[misc]
    """Base of the ``Annotated`` markers that say where a value comes from.

    The first argument means what each spelling has always meant:

    * in ``Annotated[T, Query("q")]`` (Joey's spelling) it is the *name on the wire*, the
      ``alias``. A default belongs after ``=``: ``Annotated[int, Query()] = 10``;
      ``Annotated[int, Query(10)]`` is refused at startup (as FastAPI refuses it);
    * as a default, ``limit: int = Query(10)`` (FastAPI's spelling), it is the *default*
      (``...``: required; ``Header(None)``: optional, ``None`` when absent); the name on the
      wire is then ``alias=``.

    The keyword arguments are FastAPI's: ``gt``, ``ge``, ``lt``, ``le``, ``multiple_of``,
    ``min_length``, ``max_length``, ``pattern`` check the value (a failure is a 422 naming the
    parameter); ``title``, ``description``, ``examples``, ``deprecated`` and
    ``include_in_schema=False`` describe it in the API document. They become a
    ``msgspec.Meta`` on the parameter's type, so validation and the document read the same.

    Example::

        @app.get("/books")
        async def books(
            limit: int = Query(10, ge=1, le=100),                         # FastAPI's spelling
            offset: Annotated[int, Query(ge=0, description="skip")] = 0,  # Joey's
            token: str | None = Header(None, alias="x-token"),
        ) -> dict[str, int]:
            return {"limit": limit, "offset": offset}
    """

    __slots__ = ("alias", "default", "deprecated", "include_in_schema", "meta", "positional")
    location = "query"

    def __init__(
        self,
        positional: Any = UNSET,
        /,
        *,
        default: Any = UNSET,
        alias: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        multiple_of: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        title: str | None = None,
        description: str | None = None,
        examples: Sequence[Any] | None = None,
        deprecated: bool = False,
        include_in_schema: bool = True,
    ) -> None:
        if positional is not UNSET and default is not UNSET:
            raise TypeError(f"{type(self).__name__}({positional!r}, default={default!r}): "
                            "give the default once")
        #: the first argument as written: the alias in ``Annotated``, else the default
        self.positional = positional
        #: ``alias=``: the name on the wire (the key, header, cookie, field)
        self.alias = alias
        #: ``default=``
        self.default = default
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        options: dict[str, Any] = {
            "gt": gt, "ge": ge, "lt": lt, "le": le, "multiple_of": multiple_of,
            "min_length": min_length, "max_length": max_length, "pattern": pattern,
            "title": title, "description": description,
            "examples": list(examples) if examples is not None else None,
        }
        extra: dict[str, Any] = {}
        if deprecated:
            extra["deprecated"] = True
        if not include_in_schema:
            extra["include_in_schema"] = False
        given = {key: value for key, value in options.items() if value is not None}
        #: the constraints and docs, as msgspec reads them; ``None`` when none was given
        self.meta: msgspec.Meta | None = msgspec.Meta(
            **given, extra=extra or None) if given or extra else None

    def __repr__(self) -> str:
        parts = [] if self.positional is UNSET else [repr(self.positional)]
        if self.default is not UNSET:
            parts.append(f"default={self.default!r}")
        if self.alias is not None:
            parts.append(f"alias={self.alias!r}")
        if self.meta is not None:
            parts.append(repr(self.meta))
        return f"{type(self).__name__}({', '.join(parts)})"


class Query(ParamMarker):
    """Take the value from the query string (``alias``: the key; default: the name).

    ``extractor=fn`` hands ``fn`` the whole parsed query (a :class:`joey.QueryParams`) and
    passes in what it returns; an exception it raises is a 422.
    """

    __slots__ = ("extractor",)
    location = "query"

    def __init__(self, positional: Any = UNSET, /, *,
                 extractor: Callable[[Any], Any] | None = None,
                 **options: Unpack[MarkerOptions]) -> None:
        super().__init__(positional, **options)
        self.extractor = extractor


class Header(ParamMarker):
    """Take the value from a request header (default name: ``x_token`` → ``x-token``)."""

    __slots__ = ()
    location = "header"


class Cookie(ParamMarker):
    """Take the value from a cookie (``alias``: the cookie name; default: the name)."""

    __slots__ = ()
    location = "cookie"


class Path(ParamMarker):
    """A path parameter, with constraints or docs: ``item_id: int = Path(ge=1)``.

    A parameter named like a ``{name}`` of the route's path is that path parameter without
    a marker; ``Path`` adds checks (a failure is a 422) and descriptions. A path parameter
    is always required: a default other than ``...`` is refused at startup.

    Example::

        @app.get("/items/{item_id}")
        async def item(item_id: int = Path(ge=1, description="the item")) -> int:
            return item_id
    """

    __slots__ = ()
    location = "path"


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

    def __init__(self, positional: Any = UNSET, /, *, embed: bool = False,
                 decoder: Callable[[bytes], Any] | None = None,
                 **options: Unpack[MarkerOptions]) -> None:
        if decoder is not None and embed:
            raise ValueError("Body(embed=True) reads a key of a JSON body; a decoder reads "
                             "the raw body: choose one")
        if options.get("alias") is not None and not embed:
            raise ValueError("Body(alias=...) names a key of the body: use it with embed=True")
        super().__init__(positional, **options)
        self.embed = embed
        self.decoder = decoder


class Form(ParamMarker):
    """The form body (urlencoded or multipart) validated into this type (a Struct,
    dataclass, TypedDict or dict), or, with ``alias``/by name on a scalar or ``UploadFile``
    parameter, one field of it."""

    __slots__ = ()
    location = "form"


class Depends(_AnyValue):  # type: ignore[misc]
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

    ``Depends()`` without a function (FastAPI's ``page: Annotated[Page, Depends()]``) depends
    on the parameter's class, as ``Depends(Page)`` does; a parameter whose annotation is not
    a class that can be called (a union, a Protocol, none) is refused at startup.
    """

    __slots__ = ("dependency", "raises", "scope")

    def __init__(
        self, dependency: Callable[..., Any] | None = None, *,
        scope: Literal["request", "function", "app"] = "request",
        raises: Sequence[type[BaseException]] = (),
    ) -> None:
        if scope not in ("request", "function", "app"):
            raise ValueError("Depends scope must be 'request', 'function' or 'app'")
        #: what is called for the value; ``None``: the class its parameter is annotated with
        self.dependency = dependency
        self.scope = scope
        self.raises = tuple(raises)

    def calling(self, dependency: Callable[..., Any]) -> Depends:
        """This marker with ``dependency`` named: what ``Depends()`` means on a parameter
        annotated with the class ``dependency``. The marker itself is left as it is (an
        ``Annotated`` alias shares it between parameters)."""
        named = copy.copy(self)
        named.dependency = dependency
        return named

    def named_dependency(self, where: str) -> Callable[..., Any]:
        """The function this marker names, for a place without a parameter's annotation to
        take it from (a route's ``dependencies=``, a key given as a dependency)."""
        if self.dependency is None:
            raise TypeError(
                f"{where}: {self!r} names no function; only on a parameter may it be left out "
                "(the parameter's class is then the dependency): write "
                f"{type(self).__name__}(fn)")
        return self.dependency

    def __repr__(self) -> str:
        if self.dependency is None:
            return "Depends()"
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

    def __init__(self, dependency: Callable[..., Any] | None = None, *,
                 scopes: Sequence[str] = (),
                 raises: Sequence[type[BaseException]] = ()) -> None:
        super().__init__(dependency, raises=raises)
        self.scopes = tuple(scopes)

    def __repr__(self) -> str:
        if self.dependency is None:
            return f"Security(scopes={list(self.scopes)!r})"
        name = getattr(self.dependency, "__qualname__", self.dependency)
        return f"Security({name}, scopes={list(self.scopes)!r})"


__all__ = [
    "Body",
    "Cookie",
    "Depends",
    "Form",
    "Header",
    "MarkerOptions",
    "ParamMarker",
    "Path",
    "Query",
    "Security",
]
