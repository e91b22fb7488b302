"""Sessions kept in a signed cookie, or in a server-side store keyed by a signed cookie.

Without a store the whole session (JSON) travels in the cookie, signed with itsdangerous so the
client can read but not change it; keep it small (browsers drop cookies over about 4 KB). With a
:class:`SessionStore` the cookie holds only a random session id, signed, and the data lives on
the server: in memory (:class:`MemoryStore`, one process) or in Redis (:class:`RedisStore`,
shared by every process and machine).

The session is a dict at ``scope["session"]`` (``request.session`` in a handler). A cookie that
is missing, tampered with, expired or garbage gives an empty session, never an error.
``Set-Cookie`` is sent only when the session changed; emptying it deletes the cookie.

A store that fails (down, frozen past ``store_timeout``, or raising :class:`SessionStoreError`)
never logs anyone out: the client's cookie is neither deleted nor rewritten, and the request is
answered with a 503 problem document (with ``Retry-After``) rendered by the app's exception
handlers. A failed load is raised where the session is first used, inside the handler; a failed
save happens when the response starts, and replaces that response with the 503. Requests that
never touch the session are served as usual during the outage.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

try:
    from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "SessionMiddleware needs itsdangerous (Joey's 'sessions' extra): pip install itsdangerous"
    ) from exc

from joey.datastructures import parse_cookies
from joey.exceptions import ServiceUnavailable
from joey.middleware._common import raw_headers
from joey.middleware.session_data import Session, UnavailableSession
from joey.middleware.session_stores import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SessionStoreError,
)
from joey.responses import format_cookie
from joey.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from joey.responses import Response

logger = logging.getLogger("joey.sessions")

_COOKIE_SIZE_LIMIT = 4093  # the smallest per-cookie limit among current browsers

# The mapping and the stores live in their own modules; importable from here as before.
__all__ = [
    "MemoryStore",
    "RedisStore",
    "Session",
    "SessionMiddleware",
    "SessionStore",
    "SessionStoreError",
]


class SessionMiddleware:
    """Give each request a session at ``scope["session"]``, kept in a signed cookie.

    ``secret_key`` signs the cookie (give a list to rotate keys: the last one signs, all of them
    verify). ``max_age`` (seconds, default 14 days) bounds both the cookie and the signature's
    age; None makes a browser-session cookie with no signature expiry. The cookie is HttpOnly
    and SameSite=Lax by default; set ``secure=True`` in production over HTTPS.

    With a ``store``, each request's store calls together may take ``store_timeout`` seconds
    (None: no bound); past it, or when the store fails, the request is answered 503 with
    ``Retry-After: retry_after`` through the app's exception handlers, and the cookie is kept.

    Example::

        asgi_app = SessionMiddleware(app, secret_key=os.environ["SESSION_SECRET"], secure=True)

        @app.post("/logout")
        async def logout(request: Request) -> None:
            user_id = request.session.get("user_id")  # as set at login
            request.session.clear()  # the cookie is deleted
    """

    __slots__ = (
        "_app",
        "_cookie_name",
        "_cookie_options",
        "_delete_cookie",
        "_max_age",
        "_retry_after",
        "_serializer",
        "_signer",
        "_store",
        "_store_timeout",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret_key: str | bytes | Sequence[str | bytes],
        cookie_name: str = "session",
        max_age: int | None = 14 * 24 * 3600,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: Literal["lax", "strict", "none"] = "lax",
        store: SessionStore | None = None,
        salt: str = "joey.session",
        store_timeout: float | None = 5.0,
        retry_after: int = 5,
    ) -> None:
        given = [secret_key] if isinstance(secret_key, str | bytes) else list(secret_key)
        keys = [key.encode("utf-8") if isinstance(key, str) else key for key in given]
        if not keys or not all(keys):
            raise ValueError(
                "SessionMiddleware needs a non-empty secret_key: load a long random value from "
                "the environment, e.g. secrets.token_urlsafe(32), and keep it out of the code"
            )
        self._app = app
        self._cookie_name = cookie_name
        self._max_age = max_age
        self._store = store
        if store_timeout is not None and store_timeout <= 0:
            raise ValueError("store_timeout must be a positive number of seconds, or None")
        self._store_timeout = store_timeout
        self._retry_after = retry_after
        self._serializer = URLSafeTimedSerializer(keys, salt=salt)
        self._signer = TimestampSigner(keys, salt=salt + ".id")
        self._cookie_options: dict[str, Any] = {
            "max_age": max_age, "path": path, "domain": domain, "secure": secure,
            "httponly": httponly, "samesite": samesite,
        }
        # Validate the options now, and build the deletion header once.
        format_cookie(cookie_name, "x", **self._cookie_options)
        delete_options = {**self._cookie_options, "max_age": 0}
        self._delete_cookie = (
            b"set-cookie",
            format_cookie(cookie_name, "", expires=0, **delete_options).encode("latin-1"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self._app(scope, receive, send)
            return
        cookie = self._read_cookie(scope)
        session_id: str | None = None
        data: dict[str, Any] | None = None
        if cookie is not None:
            try:
                session_id, data = await self._load(cookie)
            except Exception as exc:
                # Raised where the session is used; the response never touches the cookie.
                scope["session"] = UnavailableSession(self._store_failure(scope, "load", exc))
                await self._app(scope, receive, send)
                return
        session = Session(data)
        scope["session"] = session
        if kind == "websocket":
            # A websocket handshake cannot set cookies: the session is read-only there.
            await self._app(scope, receive, send)
            return
        await self._app(
            scope, receive, _SessionSend(self, session, session_id, cookie, scope, receive, send)
        )

    def _read_cookie(self, scope: Scope) -> str | None:
        lines = [value for name, value in scope["headers"] if name == b"cookie"]
        if not lines:
            return None
        # HTTP/2 may split cookies over several header lines.
        return parse_cookies(b"; ".join(lines).decode("latin-1")).get(self._cookie_name)

    async def _load(self, cookie: str) -> tuple[str | None, dict[str, Any] | None]:
        """Returns (session id, data); bad or expired cookies give no data, a store failure
        raises."""
        if not cookie.isascii():
            # Never one of ours (itsdangerous would drop the non-ASCII characters of a
            # signature and accept what remains)
            return None, None
        try:
            if self._store is None:
                data = self._serializer.loads(cookie, max_age=self._max_age)
                return None, data if isinstance(data, dict) else None
            session_id = self._signer.unsign(cookie, max_age=self._max_age).decode("ascii")
        except (BadData, UnicodeDecodeError):
            return None, None
        async with asyncio.timeout(self._store_timeout):
            data = await self._store.load(session_id)
        if data is None:
            # Unknown or expired id: forget it, so a new one is made (no session fixation).
            return None, None
        return session_id, data

    async def _outgoing_cookie(
        self, session: Session, session_id: str | None, had_cookie: bool
    ) -> tuple[bytes, bytes] | None:
        """The Set-Cookie header this response needs, if any (and the store write).

        A store failure raises, before any header is decided: the cookie stays as it was."""
        store = self._store
        if not session:
            if store is not None and session_id is not None:
                async with asyncio.timeout(self._store_timeout):
                    await store.delete(session_id)
            # Delete the cookie when the session was emptied, or when it was unusable.
            return self._delete_cookie if had_cookie else None
        if not session.modified:
            return None
        if store is None:
            value = self._serializer.dumps(dict(session))
        else:
            new_id = session_id
            if new_id is None or session.regenerating:
                # Never reuse an id the client offered that the store did not know.
                new_id = secrets.token_urlsafe(32)
            async with asyncio.timeout(self._store_timeout):
                if session_id is not None and new_id != session_id:
                    await store.delete(session_id)
                await store.save(new_id, dict(session), self._max_age)
            value = self._signer.sign(new_id).decode("ascii")
        header = format_cookie(self._cookie_name, value, **self._cookie_options)
        if len(header) > _COOKIE_SIZE_LIMIT:
            logger.warning(
                "Session cookie %r is %d bytes; browsers drop cookies over ~4 KB. Store less in "
                "the session, or use a server-side store (MemoryStore, RedisStore).",
                self._cookie_name, len(header),
            )
        return (b"set-cookie", header.encode("latin-1"))

    def _store_failure(self, scope: Scope, action: str, exc: Exception) -> Exception:
        """Log a store failure (and count it, when the app has metrics); the exception to
        answer it with (503 for an outage)."""
        metrics = getattr(scope.get("app"), "metrics", None)
        if metrics is not None:
            metrics.session_store_errors.labels(action).inc()
        if isinstance(exc, SessionStoreError | OSError):
            reason = "timed out" if isinstance(exc, TimeoutError) else repr(exc)
            logger.error("Session store could not %s a session: %s", action, reason)
            error = ServiceUnavailable(
                "Sessions are unavailable for a moment; please try again.",
                retry_after=self._retry_after,
            )
            error.__cause__ = exc
            return error
        logger.error("Session store raised on %s", action, exc_info=exc)
        return exc

    async def _error_response(self, scope: Scope, receive: Receive, exc: Exception) -> Response:
        """``exc`` answered by the app's exception handlers (a Joey app), or as a problem."""
        app = scope.get("app")
        render = getattr(app, "render_exception", None)
        if render is not None:
            response: Response = await render(scope, receive, exc)
            return response
        from joey.responses import ProblemResponse

        if isinstance(exc, ServiceUnavailable):
            return ProblemResponse.from_error(exc)
        raise exc  # not a Joey app: its server answers 500


class _SessionSend:
    __slots__ = (
        "_cookie", "_middleware", "_receive", "_replaced", "_scope", "_send", "_session",
        "_session_id",
    )

    def __init__(
        self,
        middleware: SessionMiddleware,
        session: Session,
        session_id: str | None,
        cookie: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self._middleware = middleware
        self._session = session
        self._session_id = session_id
        self._cookie = cookie
        self._scope = scope
        self._receive = receive
        self._send = send
        self._replaced = False

    async def __call__(self, message: Message) -> None:
        if self._replaced:
            return  # the rest of a response we answered with an error instead
        if message["type"] == "http.response.start":
            middleware = self._middleware
            try:
                header = await middleware._outgoing_cookie(
                    self._session, self._session_id, self._cookie is not None
                )
            except Exception as exc:
                # Nothing was sent yet: answer the failure instead, leaving the cookie alone.
                self._replaced = True
                error = middleware._store_failure(self._scope, "save", exc)
                response = await middleware._error_response(self._scope, self._receive, error)
                await response(self._scope, self._receive, self._send)
                return
            if header is not None:
                headers = raw_headers(message.get("headers", ()))
                headers.append(header)
                message["headers"] = headers
        await self._send(message)
