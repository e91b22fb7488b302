"""CORS (cross-origin resource sharing) following the Fetch standard.

A browser sends ``Origin`` on cross-origin requests. For a *simple* request it sends the request
and then checks ``Access-Control-Allow-Origin`` (and ``-Credentials``) on the answer before
letting the page read it. For anything else it first sends a *preflight*: ``OPTIONS`` with
``Access-Control-Request-Method`` (and ``-Headers``), and only sends the real request if the
preflight answer allows that origin, method and those headers.

Rules this module keeps (Fetch standard, "CORS protocol"):

* With credentials, ``*`` is not a wildcard for the browser: the origin, method and headers are
  echoed instead.
* ``Authorization`` is never covered by a ``*`` in ``Access-Control-Allow-Headers``, so a
  ``*`` configuration echoes the requested headers rather than sending ``*``.
* Whenever the answer depends on ``Origin`` it carries ``Vary: Origin`` - also answers to
  requests *without* ``Origin`` - so a shared cache never hands one origin's answer to another.
* A preflight that is refused gets a 400 with no CORS headers and never reaches the app.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from joey.middleware._common import RawHeaders, merge_vary, raw_headers, send_plain
from joey.types import ASGIApp, Message, Receive, Scope, Send

# Fetch standard: the request headers a browser never asks permission for (content-type only
# with a form-like value, but a browser that asks for it must be allowed, hence always allowed).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

_ORIGIN_SHAPE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

_VARY_PREFLIGHT = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


class CORSMiddleware:
    """Answer CORS preflights and add CORS headers to cross-origin answers.

    ``allow_origins`` lists exact origins (``"https://app.example.com"``) or ``"*"`` for every
    origin; ``allow_origin_regex`` matches the whole origin. With ``allow_credentials`` (cookies,
    HTTP auth) the allowed origin is echoed, never ``*``; ``"null"`` origins (sandboxed frames,
    ``file:``) are then allowed only when listed literally. ``allow_origins=["*"]`` together
    with ``allow_credentials=True`` is refused (``ValueError``): it would hand every website
    your users' cookies.

    Example::

        asgi_app = CORSMiddleware(
            app,
            allow_origins=["https://app.example.com"],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-Requested-With"],
            allow_credentials=True,
            expose_headers=["X-Total-Count"],
            max_age=600,
        )
    """

    __slots__ = (
        "_allow_all_headers",
        "_allow_all_methods",
        "_allow_all_origins",
        "_allowed_headers",
        "_allowed_methods",
        "_app",
        "_origin_regex",
        "_origins",
        "_preflight_constant",
        "_simple_constant",
        "_varies",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Sequence[str] = (),
        allow_origin_regex: str | None = None,
        allow_methods: Sequence[str] = ("GET", "HEAD", "POST"),
        allow_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        expose_headers: Sequence[str] = (),
        max_age: int | None = 600,
    ) -> None:
        if isinstance(allow_origins, str):
            raise TypeError("allow_origins must be a list of origins, e.g. ['https://a.example']")
        if not allow_origins and allow_origin_regex is None:
            raise ValueError(
                "CORSMiddleware allows no origin, so it would only refuse preflights: pass "
                "allow_origins=['https://app.example.com'] (or ['*']), or allow_origin_regex=..."
            )
        if allow_credentials and "*" in allow_origins:
            raise ValueError(
                "CORSMiddleware: allow_origins=['*'] with allow_credentials=True would let "
                "every website make requests with your users' cookies and read the answers. "
                "List the origins that may do so, e.g. allow_origins=['https://app.example.com'] "
                "(or match them with allow_origin_regex), or drop allow_credentials."
            )
        self._app = app
        self._allow_all_origins = "*" in allow_origins
        self._origins = frozenset(
            _normalize_origin(origin) for origin in allow_origins if origin != "*"
        )
        self._origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None

        methods = [method.upper() for method in allow_methods]
        self._allow_all_methods = "*" in methods
        self._allowed_methods = frozenset(methods) - {"*"}
        headers = [name.lower() for name in allow_headers]
        for name in [*headers, *expose_headers]:
            if name != "*" and not _TOKEN.match(name):
                raise ValueError(f"CORS header name {name!r} is not a valid HTTP token")
        self._allow_all_headers = "*" in headers
        self._allowed_headers = (frozenset(headers) - {"*"}) | SAFELISTED_HEADERS
        if allow_credentials and "*" in expose_headers:
            raise ValueError(
                "expose_headers=['*'] means nothing to browsers on credentialed requests; "
                "list the header names to expose instead"
            )

        # The answer depends on the Origin unless every origin gets the same literal "*".
        self._varies = not (self._allow_all_origins and not allow_credentials)

        # Pre-encoded header lines that are the same on every answer.
        simple: RawHeaders = []
        if allow_credentials:
            simple.append((b"access-control-allow-credentials", b"true"))
        if expose_headers:
            simple.append((b"access-control-expose-headers", ", ".join(expose_headers).encode()))
        self._simple_constant = simple

        preflight: RawHeaders = []
        if allow_credentials:
            preflight.append((b"access-control-allow-credentials", b"true"))
        if not self._allow_all_methods:
            preflight.append((b"access-control-allow-methods", ", ".join(methods).encode()))
        if not self._allow_all_headers and allow_headers:
            preflight.append((b"access-control-allow-headers", ", ".join(headers).encode()))
        if max_age is not None:
            preflight.append((b"access-control-max-age", str(int(max_age)).encode()))
        self._preflight_constant = preflight

    def _is_allowed(self, origin: str) -> bool:
        if origin in self._origins:
            return True
        if self._allow_all_origins:  # never with credentials: refused in __init__
            return True
        return self._origin_regex is not None and self._origin_regex.fullmatch(origin) is not None

    def _allow_origin_value(self, origin: bytes) -> bytes:
        return b"*" if not self._varies else origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        origin_raw: bytes | None = None
        request_method: bytes | None = None
        request_headers: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin_raw = value
            elif name == b"access-control-request-method":
                request_method = value
            elif name == b"access-control-request-headers":
                request_headers = value

        if origin_raw is None:
            # Not a CORS request, but a cache must still know the answer depends on Origin.
            if self._varies:
                await self._app(scope, receive, _VaryOriginSend(send))
            else:
                await self._app(scope, receive, send)
            return

        if scope["method"] == "OPTIONS" and request_method is not None:
            await self._preflight(send, origin_raw, request_method, request_headers)
            return

        origin = origin_raw.decode("latin-1").lower()
        if self._is_allowed(origin):
            extra = [(b"access-control-allow-origin", self._allow_origin_value(origin_raw))]
            extra.extend(self._simple_constant)
        else:
            extra = []
        await self._app(scope, receive, _SimpleSend(send, extra, self._varies))

    async def _preflight(
        self, send: Send, origin_raw: bytes, method_raw: bytes, headers_raw: bytes | None
    ) -> None:
        origin = origin_raw.decode("latin-1").lower()
        vary = [(b"vary", _VARY_PREFLIGHT)]
        if not self._is_allowed(origin):
            await send_plain(send, 400, b"CORS preflight refused: origin not allowed", vary)
            return
        method = method_raw.decode("latin-1").strip()
        if not self._allow_all_methods and method.upper() not in self._allowed_methods:
            await send_plain(send, 400, b"CORS preflight refused: method not allowed", vary)
            return
        requested = [
            part.strip().lower()
            for part in (headers_raw or b"").decode("latin-1").split(",")
            if part.strip()
        ]
        if not self._allow_all_headers and any(
            name not in self._allowed_headers for name in requested
        ):
            await send_plain(send, 400, b"CORS preflight refused: header not allowed", vary)
            return

        allow_origin = self._allow_origin_value(origin_raw)
        headers: RawHeaders = [(b"access-control-allow-origin", allow_origin)]
        headers.extend(self._preflight_constant)
        if self._allow_all_methods:
            # Echo rather than "*": with credentials a "*" is taken literally by browsers.
            headers.append((b"access-control-allow-methods", method.encode("latin-1")))
        if self._allow_all_headers and requested:
            # Echo too: "*" never covers Authorization, even without credentials.
            headers.append((b"access-control-allow-headers", ", ".join(requested).encode()))
        headers.extend(vary)
        headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class _SimpleSend:
    """Adds the CORS headers (decided before the app ran) to the response start."""

    __slots__ = ("_extra", "_send", "_varies")

    def __init__(self, send: Send, extra: RawHeaders, varies: bool) -> None:
        self._send = send
        self._extra = extra
        self._varies = varies

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = raw_headers(message.get("headers", ()))
            if self._extra:
                # The middleware owns the CORS headers: drop any the app set itself.
                headers = [h for h in headers if not h[0].lower().startswith(b"access-control-")]
                headers.extend(self._extra)
            if self._varies:
                headers = merge_vary(headers, b"Origin")
            message["headers"] = headers
        await self._send(message)


class _VaryOriginSend:
    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = merge_vary(raw_headers(message.get("headers", ())), b"Origin")
        await self._send(message)


def _normalize_origin(origin: str) -> str:
    """``"HTTPS://Example.com/"`` -> ``"https://example.com"``; refuse anything with a path."""
    normalized = origin.strip().lower().rstrip("/")
    if normalized != "null" and not _ORIGIN_SHAPE.match(normalized):
        raise ValueError(
            f"CORS origin {origin!r} is not an origin: write scheme://host[:port] with no path, "
            "e.g. 'https://app.example.com' or 'http://localhost:3000'"
        )
    return normalized


__all__ = [
    "SAFELISTED_HEADERS",
    "CORSMiddleware",
]
