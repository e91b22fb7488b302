"""CSRF protection for cookie-authenticated, browser-facing routes.

A browser sends cookies with a form another site posts to you; the request then looks
authenticated. :class:`CSRFMiddleware` refuses such requests (``403``) for every method that is
not safe (``GET``, ``HEAD``, ``OPTIONS``, ``TRACE`` by default), with two checks:

1. **Where the request comes from.** ``Sec-Fetch-Site: cross-site`` is refused, and so is an
   ``Origin`` that is not the request's own origin nor one of ``trusted_origins``. Browsers
   send these headers on every cross-origin form post.
2. **A double-submit token.** Every response to a client that has none sets a signed token
   cookie (``csrftoken``); an unsafe request must send the same token back in the
   ``X-CSRF-Token`` header (JavaScript) or in the ``csrf_token`` field of a form. A site that
   can set cookies for your domain (a sibling subdomain) cannot forge it: the token is signed
   with ``secret``.

Render the token into forms with :func:`csrf_token`::

    @app.get("/comments/new")
    async def new_comment(request: Request) -> HTMLResponse:
        token = csrf_token(request)
        return HTMLResponse(f'<input type="hidden" name="csrf_token" value="{token}">')

Routes for other machines (webhooks, token-authenticated APIs) are listed in ``exempt`` (a
path, or a prefix ending in ``/``): every other unsafe request needs the token. A refused
request is a ``403`` problem document; a form over ``max_form_size`` a ``413``; an ``Origin``
checked against a request with more than one ``Host`` header a ``400``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qs

from joey.datastructures import parse_cookies
from joey.exceptions import BadRequest, ContentTooLarge, Forbidden
from joey.middleware._common import get_header
from joey.requests import HTTPConnection, host_header
from joey.responses import ProblemResponse
from joey.security.schemes import constant_time_compare
from joey.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "joey.csrf_token"


def csrf_token(connection: HTTPConnection) -> str:
    """The token to put in this request's forms (the ``csrf_token`` field)."""
    token = connection.scope.get(SCOPE_KEY)
    if token is None:
        raise RuntimeError("csrf_token() needs CSRFMiddleware around the app")
    return str(token)


class CSRFMiddleware:
    """Refuse cross-site unsafe requests (see the module docstring).

    Example::

        asgi_app = CSRFMiddleware(app, secret=os.environ["CSRF_SECRET"], exempt=["/webhooks/"])
    """

    def __init__(
        self, app: ASGIApp, *, secret: str | bytes, cookie_name: str = "csrftoken",
        header_name: str = "x-csrf-token", field_name: str = "csrf_token",
        safe_methods: Iterable[str] = ("GET", "HEAD", "OPTIONS", "TRACE"),
        exempt: Sequence[str] = (), trusted_origins: Sequence[str] = (),
        cookie_secure: bool = False, cookie_samesite: str = "lax",
        max_form_size: int = 1024 * 1024,
    ) -> None:
        if not secret:
            raise ValueError("CSRFMiddleware needs a secret")
        self.app = app
        self._key = secret.encode() if isinstance(secret, str) else secret
        self.cookie_name = cookie_name
        self.header_name = header_name.lower().encode("latin-1")
        self.field_name = field_name
        self.safe_methods = frozenset(m.upper() for m in safe_methods)
        self.exempt = tuple(exempt)
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)
        self.cookie_attributes = f"; Path=/; SameSite={cookie_samesite.capitalize()}" + (
            "; Secure" if cookie_secure else "")
        self.max_form_size = max_form_size

    # -- tokens --------------------------------------------------------------------------------

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def _sign(self, nonce: str) -> str:
        data = nonce.encode("utf-8", "surrogatepass")  # what a client sent: never raises
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:32]

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` is one this middleware signed (any text: a forged, non-ASCII
        one is simply not valid)."""
        if not token or "." not in token:
            return False
        nonce, _, signature = token.rpartition(".")
        return constant_time_compare(signature, self._sign(nonce))

    # -- the middleware ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        cookie = get_header(headers, b"cookie")
        cookies = parse_cookies(cookie.decode("latin-1")) if cookie else {}
        token = cookies.get(self.cookie_name)
        issued = None if self.valid(token) else self.new_token()
        scope[SCOPE_KEY] = issued or token
        if scope["method"] not in self.safe_methods and not self._exempt(scope):
            try:
                problem, receive = await self._check(scope, receive, token)
            except (ContentTooLarge, BadRequest) as exc:  # a form too large, two Hosts
                await ProblemResponse.from_error(exc)(scope, receive, send)
                return
            if problem is not None:
                await ProblemResponse.from_error(Forbidden(problem))(scope, receive, send)
                return
        if issued is None:
            await self.app(scope, receive, send)
            return
        set_cookie = f"{self.cookie_name}={issued}{self.cookie_attributes}".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", set_cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _exempt(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return any(path.startswith(p) if p.endswith("/") else path == p for p in self.exempt)

    async def _check(self, scope: Scope, receive: Receive, token: str | None,
                     ) -> tuple[str | None, Receive]:
        """Why the request is refused (``None``: it is not), and the receive to go on with
        (the form body, when it was read here, is replayed)."""
        headers = scope["headers"]
        site = get_header(headers, b"sec-fetch-site")
        origin = get_header(headers, b"origin")
        if origin is not None and not self._trusted(scope, origin.decode("latin-1")):
            return "Cross-site request refused (Origin).", receive
        if site == b"cross-site" and origin is None:
            return "Cross-site request refused (Sec-Fetch-Site).", receive
        if not self.valid(token):
            return "CSRF token missing: load the page that has the form again.", receive
        sent = get_header(headers, self.header_name)
        if sent is not None:
            submitted: str | None = sent.decode("latin-1")
        else:
            submitted, receive = await self._form_token(scope, receive)
        assert token is not None
        if submitted is None or not constant_time_compare(submitted, token):
            return "CSRF token missing or wrong.", receive
        return None, receive

    def _trusted(self, scope: Scope, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.trusted_origins:
            return True
        host = host_header(scope["headers"])  # more than one: a 400
        if host is None or origin == "null":
            return False
        own = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}".lower()
        return origin == own

    async def _form_token(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        """The token from an urlencoded or multipart form body; the body is buffered and
        handed on unchanged: a client that went away before the end of its body is handed on
        as gone (what was read, then the disconnect), never as a complete, shorter body."""
        content_type = (get_header(scope["headers"], b"content-type") or b"").decode("latin-1")
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None, receive
        chunks: list[bytes] = []
        size = 0
        ended: Message | None = None  # what came instead of the end of the body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                ended = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_form_size:
                raise ContentTooLarge("The form is too large.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replay_queue: list[Message] = [
            {"type": "http.request", "body": body, "more_body": ended is not None}]
        if ended is not None:
            replay_queue.append(ended)

        async def replay() -> Message:
            if replay_queue:
                return replay_queue.pop(0)
            return await receive()

        if media_type == "multipart/form-data":
            return _multipart_field(body, content_type, self.field_name), replay
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(self.field_name)
        return (values[-1] if values else None), replay


def _multipart_field(body: bytes, content_type: str, name: str) -> str | None:
    """A small text field of a multipart body, found without parsing the files."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return None
    wanted = f'name="{name}"'.encode()
    for part in body.split(b"--" + boundary.encode()):
        head, _, content = part.partition(b"\r\n\r\n")
        if wanted in head and b"filename=" not in head:
            return content.rstrip(b"\r\n").decode("utf-8", "replace")
    return None


__all__ = [
    "SCOPE_KEY",
    "CSRFMiddleware",
    "csrf_token",
]
