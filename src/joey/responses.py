"""Responses: what a handler returns, and how it goes out over ASGI.

A handler may return a ``Response`` or a plain value (see :func:`to_response`). This module
holds the responses whose body is known up front, which the compiled build compiles (each class
allows Python subclasses: ``mypyc_attr``); a body produced chunk by chunk is a
:class:`~joey.streaming.StreamingResponse` (:mod:`joey.streaming`, interpreted: it runs an
async generator), also importable from here.

Example::

    from joey import JSONResponse, RedirectResponse

    @app.get("/old")
    async def old() -> RedirectResponse:
        return RedirectResponse("/new")

    @app.get("/me")
    async def me() -> JSONResponse:
        response = JSONResponse({"name": "joey"}, status_code=200)
        response.set_cookie("seen", "1", max_age=3600)
        return response
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from types import WrapperDescriptorType
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import msgspec

from joey.compiled import mypyc_attr
from joey.datastructures import URL, MutableHeaders, encode_header
from joey.exceptions import HTTPError
from joey.lazy import lazy_attributes
from joey.types import Receive, Scope, Send

# `from joey.responses import StreamingResponse` keeps working: imported on first use, since
# joey.streaming imports this module (its class is typed where it lives, and in `joey`).
# Old names, kept as aliases that warn when used (see docs/errors.md, "Deprecated names").
__getattr__ = lazy_attributes(__name__, globals(), {"StreamingResponse": "joey.streaming"},
                              deprecated={"TextResponse": "PlainTextResponse"})

BackgroundCallable = Callable[[], Awaitable[None]]
#: The statuses whose responses have no body (HEAD requests send none either).
NO_BODY_STATUSES = frozenset({204, 205, 304})


def _json_default(value: Any) -> Any:
    # msgspec handles Structs, dataclasses, dicts, lists, datetimes, UUIDs, enums natively;
    # this hook adds what it cannot know about: pydantic models and arbitrary iterables.
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, URL):  # what request.url and request.url_for(...) give
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_json_encoder = msgspec.json.Encoder(enc_hook=_json_default)
json_encode = _json_encoder.encode


def _content_type_bytes(media_type: str | None, charset: str) -> bytes | None:
    if media_type is None:
        return None
    if media_type.startswith("text/") and "charset=" not in media_type:
        return f"{media_type}; charset={charset}".encode("latin-1")
    return media_type.encode("latin-1")


@mypyc_attr(allow_interpreted_subclasses=True)
class Response:
    """A complete response with a body known up front.

    ``content`` may be ``bytes`` or ``str`` (encoded with ``charset``). ``Content-Length`` is
    always computed from the body; ``HEAD`` requests get the same headers and no body.

    Example::

        Response(b"raw bytes", status_code=201, media_type="application/octet-stream")
    """

    __slots__ = ("_headers", "background", "body", "media_type", "status_code")

    media_type_default: ClassVar[str | None] = None
    charset: ClassVar[str] = "utf-8"
    # perf: the Content-Type bytes of the class default, computed once per class
    _default_content_type: ClassVar[bytes | None] = None
    #: whether the class sends itself as Response does (its ``__call__`` is Response's): the
    #: engine then sends the two messages itself (see :func:`sends_whole`)
    _sends_whole: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._default_content_type = _content_type_bytes(cls.media_type_default, cls.charset)
        cls._sends_whole = sends_whole(cls)

    def __init__(
        self,
        content: Any = b"",
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundCallable | None = None,
    ) -> None:
        self.status_code = status_code
        self.media_type = media_type if media_type is not None else self.media_type_default
        self.body = self.render(content)
        self._headers = MutableHeaders(headers) if headers else None
        self.background = background

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into body bytes (subclasses override this)."""
        if type(content) is str:
            return content.encode(self.charset)
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode(self.charset)
        if isinstance(content, bytearray | memoryview):
            return bytes(content)
        raise TypeError(f"{type(self).__name__} content must be bytes or str, not "
                        f"{type(content).__name__}")

    @property
    def headers(self) -> MutableHeaders:
        """The response headers (created on first use)."""
        if self._headers is None:
            self._headers = MutableHeaders()
        return self._headers

    def content_type(self) -> bytes | None:
        """The ``Content-Type`` value to send, with a charset for text types."""
        if self.media_type is self.media_type_default:
            return self._default_content_type
        return _content_type_bytes(self.media_type, self.charset)

    def raw_headers(self, content_length: int | None) -> list[tuple[bytes, bytes]]:
        """The header list to send: the user's headers, then Content-Type and -Length."""
        status = self.status_code
        if self._headers is None:
            # perf: the common case, no user headers: two tuples, no scanning (and the class's
            # own content type without the content_type() call)
            content_type = (self._default_content_type if self.media_type is
                            self.media_type_default else self.content_type())
            raw = [(b"content-type", content_type)] if content_type is not None else []
            if content_length is not None and status >= 200 and status not in NO_BODY_STATUSES:
                raw.append((b"content-length", b"%d" % content_length))
            return raw
        user = self._headers.raw
        raw = []
        has_type = False
        for name, value in user:
            if name == b"content-length":
                continue  # always recomputed: a stale length would corrupt the connection
            if name == b"content-type":
                has_type = True
            raw.append((name, value))
        if not has_type:
            content_type = self.content_type()
            if content_type is not None:
                raw.append((b"content-type", content_type))
        if content_length is not None and status >= 200 and status not in NO_BODY_STATUSES:
            raw.append((b"content-length", b"%d" % content_length))
        return raw

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header. Defaults are the safe ones: HttpOnly, SameSite=Lax.

        ``samesite="none"`` forces ``Secure``, as browsers require. Values are not quoted:
        a value with spaces, quotes, commas, semicolons or backslashes is refused.
        """
        self.headers.append(
            "set-cookie",
            format_cookie(
                key, value, max_age=max_age, expires=expires, path=path, domain=domain,
                secure=secure, httponly=httponly, samesite=samesite, partitioned=partitioned,
            ),
        )

    def delete_cookie(
        self,
        key: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Tell the browser to drop a cookie (same ``path``/``domain`` as when it was set)."""
        self.set_cookie(
            key, "", max_age=0, expires=0, path=path, domain=domain, secure=secure,
            httponly=httponly, samesite=samesite,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (joey._engine.http sends a response whose class keeps this method the same way,
        # inline: keep the two in step)
        body = self.body
        await send({
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers(len(body)),
        })
        if scope.get("method") == "HEAD" or self.status_code in NO_BODY_STATUSES:
            body = b""
        await send({"type": "http.response.body", "body": body})
        if self.background is not None:
            await self.background()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}>"


Response._default_content_type = _content_type_bytes(Response.media_type_default, "utf-8")


def sends_whole(cls: type) -> bool:
    """Whether responses of ``cls`` are sent by ``Response.__call__``: no class between it and
    :class:`Response` defines a ``__call__`` of its own.

    Asked of the class, not by comparing ``cls.__call__`` with ``Response.__call__``: in the
    compiled build every compiled subclass shows a slot wrapper of its own for the
    ``__call__`` it inherits, so that comparison fails for ``PlainTextResponse`` and every other
    class but ``Response`` itself.

    Example::

        assert sends_whole(PlainTextResponse)
    """
    for klass in cls.__mro__:
        if klass is Response:
            return True
        own = klass.__dict__.get("__call__")
        if own is not None and not isinstance(own, WrapperDescriptorType):
            return False
    return False


@mypyc_attr(allow_interpreted_subclasses=True)
class PlainTextResponse(Response):
    """``text/plain; charset=utf-8`` (Starlette's name; ``TextResponse`` is a deprecated alias).

    Example::

        PlainTextResponse("pong")
    """

    __slots__ = ()
    media_type_default = "text/plain"


@mypyc_attr(allow_interpreted_subclasses=True)
class HTMLResponse(Response):
    """``text/html; charset=utf-8``."""

    __slots__ = ()
    media_type_default = "text/html"


@mypyc_attr(allow_interpreted_subclasses=True)
class JSONResponse(Response):
    """Content encoded as JSON with msgspec: dicts, lists, Structs, dataclasses, pydantic models.

    Example::

        JSONResponse({"id": 1}, status_code=201)
    """

    __slots__ = ()
    media_type_default = "application/json"

    def render(self, content: Any) -> bytes:
        return json_encode(content)


@mypyc_attr(allow_interpreted_subclasses=True)
class ProblemResponse(JSONResponse):
    """An RFC 9457 problem-details document (``application/problem+json``)."""

    __slots__ = ()
    media_type_default = "application/problem+json"

    @classmethod
    def from_error(cls, error: HTTPError) -> ProblemResponse:
        return cls(error.to_problem(), status_code=error.status_code, headers=error.headers)


@mypyc_attr(allow_interpreted_subclasses=True)
class EncodedProblemResponse(ProblemResponse):
    """A problem document whose JSON is already encoded: ``content`` is sent as it is.

    Example::

        response = EncodedProblemResponse(b'{"status":404}', status_code=404)
        assert response.body == b'{"status":404}'
    """

    __slots__ = ()

    def render(self, content: Any) -> bytes:
        if not isinstance(content, bytes):
            raise TypeError(f"EncodedProblemResponse content must be bytes, not "
                            f"{type(content).__name__}")
        return content


@mypyc_attr(allow_interpreted_subclasses=True)
class RedirectResponse(Response):
    """A redirect (``307`` by default, which keeps the method and body).

    The ``Location`` is percent-encoded where needed; relative URLs are allowed and keep the
    scheme the client used (useful behind a TLS-terminating proxy).
    """

    __slots__ = ()

    def __init__(
        self,
        url: str | URL,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundCallable | None = None,
    ) -> None:
        super().__init__(b"", status_code=status_code, headers=headers, background=background)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;~")


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected (reading, and dropping, anything else)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# perf: built once (a `dict | list` union in an isinstance test is built again at each call)
_JSON_FIRST = (dict, msgspec.Struct, list)
_JSON_OTHER = (tuple, int, float, bool)


def to_response(value: Any, status_code: int = 200) -> Response:
    """Turn a handler's plain return value into a response.

    ``Response`` as is; ``None`` → 204; ``str`` → text/plain; ``bytes`` →
    application/octet-stream; dict, list, msgspec Struct, dataclass, pydantic model, tuple,
    number or bool → JSON. Anything else raises ``TypeError``.
    """
    # perf: the commonest exact types first, one identity test each (no isinstance chain)
    kind = type(value)
    if kind is str:
        return PlainTextResponse(value, status_code)
    if kind is dict or kind is list:
        return JSONResponse(value, status_code)
    if isinstance(value, Response):
        return value
    if isinstance(value, _JSON_FIRST):
        return JSONResponse(value, status_code)
    if value is None:
        return Response(b"", status_code=204 if status_code == 200 else status_code)
    if isinstance(value, str):
        return PlainTextResponse(value, status_code)
    if isinstance(value, bytes):
        return Response(value, status_code, media_type="application/octet-stream")
    if (
        isinstance(value, _JSON_OTHER)
        or dataclasses.is_dataclass(value)
        or hasattr(value, "model_dump")
    ):
        return JSONResponse(value, status_code)
    forgot = forgotten_await(value)
    if forgot is not None:
        raise forgot
    raise TypeError(
        f"cannot turn a {type(value).__name__} into a response; return a Response, "
        "a str, bytes, None, or something JSON can encode"
    )


def forgotten_await(value: Any) -> TypeError | None:
    """The error for a handler that returned an awaitable instead of its result (a
    coroutine: ``return templates.render(...)`` without ``await``), or ``None``. Closes a
    coroutine, so Python does not warn about it again later. Failure paths only."""
    if not inspect.isawaitable(value):
        return None
    name = getattr(value, "__qualname__", type(value).__name__)
    if inspect.iscoroutine(value):
        value.close()
    return TypeError(f"the handler returned {name}(...), a {type(value).__name__}, instead of "
                     f"its result: did you forget `await`? Write `return await ...`")


_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_COOKIE_VALUE = re.compile(r"^[!#-+\--:<-\[\]-~]*$")


def format_cookie(
    key: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | int | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: Literal["lax", "strict", "none"] | None = "lax",
    partitioned: bool = False,
) -> str:
    """Build one ``Set-Cookie`` value (RFC 6265), validating name and value."""
    if not _COOKIE_NAME.match(key):
        raise ValueError(f"Invalid cookie name {key!r}")
    if not _COOKIE_VALUE.match(value):
        raise ValueError(
            f"Invalid cookie value for {key!r}: no spaces, quotes, commas, semicolons or "
            "backslashes (encode it first, e.g. with base64)"
        )
    parts = [f"{key}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if expires is not None:
        if isinstance(expires, int):
            moment = datetime.fromtimestamp(expires, tz=UTC) if expires else datetime(
                1970, 1, 1, tzinfo=UTC)
        else:
            moment = expires.astimezone(UTC)
        parts.append(f"Expires={format_datetime(moment, usegmt=True)}")
    if path is not None:
        encode_header("x", path)
        parts.append(f"Path={path}")
    if domain is not None:
        encode_header("x", domain)
        parts.append(f"Domain={domain}")
    if samesite is not None:
        if samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError("samesite must be 'lax', 'strict' or 'none'")
        parts.append(f"SameSite={samesite.capitalize()}")
        secure = secure or samesite.lower() == "none"
    if secure or partitioned:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)


__all__ = [
    "BackgroundCallable",
    "EncodedProblemResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "ProblemResponse",
    "RedirectResponse",
    "Response",
    "forgotten_await",
    "format_cookie",
    "json_encode",
    "sends_whole",
    "to_response",
    "wait_for_disconnect",
]
