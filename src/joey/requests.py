"""The HTTP request: everything is read from the ASGI scope lazily, on first use.

Example::

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        data = await request.json()
        return {"you_sent": data, "agent": request.headers.get("user-agent")}
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from joey._json import JSONTooDeep, decode_json
from joey.compiled import mypyc_attr
from joey.datastructures import URL, Address, Headers, QueryParams, State, parse_cookies
from joey.describe import describe
from joey.exceptions import BadRequest, ContentTooLarge
from joey.types import Message, Receive, Scope

if TYPE_CHECKING:
    from joey.forms import FormData, FormLimits


logger = logging.getLogger("joey")

#: The message for JSON nested deeper than the decoder can follow (see :mod:`joey._json`).
JSON_TOO_DEEP = "Invalid JSON body: it is nested too deeply."


#: The 400 for a request with more than one ``Host`` header.
TWO_HOSTS = "The request has more than one Host header."


def host_header(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The value of the request's ``Host`` header (``None`` without one), from the raw ASGI
    header list. More than one raises :class:`~joey.exceptions.BadRequest` (RFC 9112 §3.2):
    a proxy, a cache and the app could each take a different one for the authority.

    Joey reads the ``Host`` through this, and only where it needs it (``request.url``, the
    CSRF origin check, the HTTPS redirect; ``TrustedHostMiddleware`` counts them itself): a
    request nobody asks the host of never pays for the scan, and one that is asked is refused
    before any host is used. ``request.headers`` stays the raw, multi-valued view.

    Example::

        host_header([(b"host", b"example.com")])  # b"example.com"
    """
    found: bytes | None = None
    for name, value in headers:
        # ASGI names are lowercase; a hand-built scope's may not be (4 bytes: cheap to check)
        if len(name) == 4 and name.lower() == b"host":
            if found is not None:
                raise BadRequest(TWO_HOSTS)
            found = value
    return found


@mypyc_attr(allow_interpreted_subclasses=True)
class ClientDisconnect(Exception):
    """The client went away while its request body was being read."""


@mypyc_attr(allow_interpreted_subclasses=True)
class HTTPConnection:
    """What HTTP requests and WebSockets share: the scope, read lazily.

    Attributes are computed on first access and cached: a handler that never looks at the
    cookies never pays for parsing them.
    """

    __slots__ = (
        "_cookies", "_headers", "_query", "app", "cleanups", "error", "path_params", "scope",
    )

    def __init__(
        self, scope: Scope, app: Any = None, path_params: dict[str, Any] | None = None
    ) -> None:
        self.scope = scope
        #: the App serving this connection (typed ``Any`` so that requests do not depend on
        #: the app module; ``cast(App, request.app)`` gives the full type)
        self.app: Any = app if app is not None else scope["app"]
        self.path_params: dict[str, Any] = path_params if path_params is not None else {}
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        #: what :meth:`call_on_close` registered and :meth:`run_cleanups` has not run yet
        self.cleanups: list[Callable[[], Any]] | None = None
        #: the exception that ended the handling of this connection, if any (generator
        #: dependencies receive it at their ``yield``)
        self.error: BaseException | None = None

    def call_on_close(self, func: Callable[[], Any]) -> None:
        """Run ``func`` (sync or async) once the response has been sent (or the WebSocket
        handler has finished), even after an error. Last registered runs first."""
        if self.cleanups is None:
            self.cleanups = []
        self.cleanups.append(func)

    async def run_cleanups(self) -> None:
        """Run what :meth:`call_on_close` registered, newest first, each once; a failing one
        is logged and does not stop the others. The app calls this after the response."""
        cleanups = self.cleanups or []
        self.cleanups = None
        cleanups.reverse()  # (not `reversed(...)`: mypyc 2.4 fails on it over callables)
        for cleanup in cleanups:
            try:
                result = cleanup()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("Cleanup %s failed after %r", describe(cleanup), self)

    @property
    def path(self) -> str:
        """The full decoded path, ``root_path`` included (as the client sent it)."""
        return self.scope["path"]  # type: ignore[no-any-return]

    @property
    def url(self) -> URL:
        """The URL the client asked for: the ``Host`` header's authority (the server's own
        address when it is missing or not a valid ``host[:port]``), the path and the query.
        More than one ``Host`` header is a 400 (see :func:`host_header`)."""
        host = host_header(self.scope["headers"])
        return URL.from_scope(self.scope, host.decode("latin-1") if host is not None else None)

    @property
    def headers(self) -> Headers:
        """Case-insensitive, multi-valued request headers."""
        if self._headers is None:
            self._headers = Headers(self.scope["headers"])
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        """The query string, parsed; repeated keys keep every value (``getlist``)."""
        if self._query is None:
            self._query = QueryParams.from_bytes(self.scope.get("query_string", b""))
        return self._query

    @property
    def query(self) -> QueryParams:
        """Deprecated alias of :attr:`query_params` (Starlette's name, which Joey keeps)."""
        warnings.warn(
            "request.query is deprecated: use request.query_params (see "
            "docs/errors.md#deprecated-names)", DeprecationWarning, stacklevel=2,
        )
        return self.query_params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = parse_cookies("; ".join(self.headers.getlist("cookie")))
        return self._cookies

    @property
    def client(self) -> Address | None:
        """The peer address the server saw (a proxy's, behind a proxy)."""
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def state(self) -> State:
        """Per-connection state; starts as a copy of what the lifespan put in its state."""
        return State(self.scope.setdefault("state", {}))

    @property
    def session(self) -> dict[str, Any]:
        """The session mapping set up by :class:`joey.middleware.SessionMiddleware`."""
        try:
            return self.scope["session"]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError(
                "request.session needs SessionMiddleware: add "
                "Middleware(SessionMiddleware, secret_key=...) to App(asgi_middleware=[...])"
            ) from None

    def url_for(self, name: str, /, **params: Any) -> URL:
        """The absolute URL of the route called ``name``, as Starlette's ``url_for`` gives it:
        this connection's scheme and host (see :attr:`url`), then :meth:`url_path_for`.
        ``str()`` it for a header; it compares equal to its text.

        Example::

            @app.get("/books/{id:int}", name="book")
            async def book(id: int, request: Request) -> dict[str, str]:
                return {"self": str(request.url_for("book", id=id))}  # "http://host/books/1"
        """
        here = self.url
        return URL(here.scheme, here.hostname, here.port, self.url_path_for(name, **params), "")

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called ``name`` as the client must request it: the app's
        ``root_path`` (a mount's or a proxy's prefix), then ``app.url_path_for(...)``.
        Relative, so right behind any proxy: the one to put in links and ``Location``."""
        path: str = self.app.url_path_for(name, **params)
        root_path: str = self.scope.get("root_path", "")
        return root_path + path


@mypyc_attr(allow_interpreted_subclasses=True)
class Request(HTTPConnection):
    """An incoming HTTP request (see :class:`HTTPConnection` for headers, query, cookies...)."""

    __slots__ = (
        "_body", "_disconnected", "_form", "_pending", "_receive", "_stream_started",
        "max_body_size",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        app: Any = None,
        path_params: dict[str, Any] | None = None,
        max_body_size: int | None = None,
    ) -> None:
        # perf: HTTPConnection.__init__'s fields, set here: a call fewer per request (a test
        # checks that every slot of HTTPConnection is set)
        self.scope = scope
        self.app = app if app is not None else scope["app"]
        self.path_params = path_params if path_params is not None else {}
        self._headers = None
        self._query = None
        self._cookies = None
        self.cleanups = None
        self.error = None
        self._receive = receive
        self.max_body_size = max_body_size
        self._body: bytes | None = None
        self._stream_started = False
        self._disconnected = False
        self._pending: list[Message] | None = None
        self._form: FormData | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]  # type: ignore[no-any-return]

    # -- body -----------------------------------------------------------------------------

    def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk, as it arrives; cut off with 413 past ``max_body_size``.

        The body can be streamed once. ``body()``, ``json()`` and ``form()`` keep what they
        read, so they may be called again; calling ``stream()`` after one of them yields the
        kept body.
        """
        return _BodyStream(self)

    def _check_declared_length(self, limit: int) -> None:
        declared = self.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):  # not "²"
                raise BadRequest("Content-Length must be a non-negative integer.")
            if int(declared) > limit:
                raise ContentTooLarge(
                    f"The body is {declared} bytes; this endpoint accepts at most {limit}."
                )

    async def body(self) -> bytes:
        """The whole body as bytes (read once, then kept)."""
        if self._body is None:
            if not self._stream_started and not self._pending:
                # perf: most bodies arrive in one message; read it without the async
                # generator of stream()
                limit = self.max_body_size
                if limit is not None:
                    self._check_declared_length(limit)
                message = await self._receive()
                if message["type"] == "http.request" and not message.get("more_body", False):
                    body: bytes = message.get("body", b"")
                    if limit is not None and len(body) > limit:
                        raise ContentTooLarge(
                            f"The body is larger than this endpoint accepts ({limit} bytes)."
                        )
                    self._stream_started = True
                    self._body = body
                    return body
                self._pending = [message]
            chunks = [chunk async for chunk in self.stream()]
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body

    async def text(self) -> str:
        """The body decoded with the charset of its ``Content-Type`` (UTF-8 by default)."""
        body = await self.body()
        charset = "utf-8"
        content_type = self.headers.get("content-type", "")
        for param in content_type.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            if "\x00" in charset:  # the compiled build decodes "utf\\x00-8" as UTF-8
                raise LookupError(charset)
            text: str = body.decode(charset)
            return text
        except UnicodeDecodeError:
            raise BadRequest(f"The body is not valid {charset}.") from None
        except (LookupError, ValueError):  # unknown; a NUL in the name; "undefined"
            raise BadRequest(f"Unknown charset {charset!r} in Content-Type.") from None

    async def json(self) -> Any:
        """The body parsed as JSON; a 400 says what is wrong if it is not valid JSON."""
        body = await self.body()
        try:
            return decode_json(body)
        except JSONTooDeep:
            raise BadRequest(JSON_TOO_DEEP) from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Invalid JSON body: {exc}.") from None

    async def form(self, limits: FormLimits | None = None) -> FormData:
        """The body parsed as a form (urlencoded or multipart), within ``limits``.

        Uploaded files are spooled to temporary files, removed when the request ends.
        Needs the ``forms`` extra (``pip install joey[forms]``).
        """
        if self._form is None:
            from joey.forms import DEFAULT_LIMITS, parse_form

            limits = limits or DEFAULT_LIMITS
            if limits.max_total_size is None:
                # One reading of the body limit: the route's (or the app's) decides, and the
                # parser is told the same number (no number: no limit).
                total = self.max_body_size if self.max_body_size is not None else sys.maxsize
                limits = dataclasses.replace(limits, max_total_size=total)
            elif not self._stream_started and self.max_body_size == self.app.max_body_size:
                # The route kept the app's body limit and the form limits name a total: it
                # decides (a route's own max_body_size still wins), so a large-upload route
                # needs only its FormLimits.
                self.max_body_size = limits.max_total_size
            content_type = self.headers.get("content-type", "")
            self._form = await parse_form(content_type, self.stream(), limits)
            self.call_on_close(self._form.close)
        return self._form

    async def is_disconnected(self) -> bool:
        """Whether the client has gone, checked without waiting and without losing body data."""
        if self._disconnected:
            return True
        receiving = asyncio.ensure_future(self._receive())
        await asyncio.sleep(0)
        if not receiving.done():
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            return False
        message = receiving.result()
        if message["type"] == "http.disconnect":
            self._disconnected = True
            return True
        if self._pending is None:
            self._pending = []
        self._pending.append(message)
        return False

    def __repr__(self) -> str:
        return f"<Request {self.scope.get('method')} {self.scope.get('path')}>"


class _BodyStream:
    """What :meth:`Request.stream` returns: the body's chunks, read from ``receive``.

    An async iterator class rather than an async generator, so that the compiled build can
    compile it with the request (mypyc compiles ``__anext__``, not async generators). Like a
    generator, it starts on the first ``__anext__`` and is finished after any error.
    """

    __slots__ = ("_done", "_limit", "_received", "_request", "_started")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._started = False
        self._done = False
        self._limit: int | None = None
        self._received = 0

    def __aiter__(self) -> _BodyStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        request = self._request
        if not self._started:
            self._started = True
            self._done = True  # and so it stays after the kept body, or if starting fails
            if request._body is not None:
                return request._body
            if request._stream_started:
                raise RuntimeError(
                    "The request body was already streamed; it can only be read once. "
                    "Use `await request.body()` if you need it more than once."
                )
            request._stream_started = True
            self._limit = request.max_body_size
            if self._limit is not None:
                request._check_declared_length(self._limit)
            self._done = False
        limit = self._limit
        while True:
            pending = request._pending
            message = pending.pop(0) if pending else await request._receive()
            kind = message["type"]
            if kind == "http.request":
                chunk: bytes = message.get("body", b"")
                self._done = not message.get("more_body", False)
                if chunk:
                    self._received += len(chunk)
                    if limit is not None and self._received > limit:
                        self._done = True
                        raise ContentTooLarge(
                            f"The body is larger than this endpoint accepts ({limit} bytes)."
                        )
                    return chunk
                if self._done:
                    raise StopAsyncIteration
            elif kind == "http.disconnect":
                request._disconnected = True
                self._done = True
                raise ClientDisconnect()


__all__ = [
    "JSON_TOO_DEEP",
    "TWO_HOSTS",
    "ClientDisconnect",
    "HTTPConnection",
    "Request",
    "host_header",
]
