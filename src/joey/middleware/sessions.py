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
import copy
import logging
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

try:
    from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "SessionMiddleware needs itsdangerous (Joey's 'sessions' extra): pip install itsdangerous"
    ) from exc

from joey.datastructures import parse_cookies
from joey.exceptions import ServiceUnavailable
from joey.middleware._common import raw_headers
from joey.responses import format_cookie
from joey.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from joey.responses import Response

logger = logging.getLogger("joey.sessions")

_COOKIE_SIZE_LIMIT = 4093  # the smallest per-cookie limit among current browsers


class Session(dict[str, Any]):
    """The session mapping handlers see: a dict that knows whether it was changed.

    Changes through dict methods are noticed at once. A value changed in place
    (``session["cart"].append(item)``) is noticed too, by comparing lists and dicts with a copy
    taken when the session was loaded.

    ``regenerate_id()`` asks for a fresh session id (with a store), which is what to do after
    a login so that an id planted before it (session fixation) is worthless.
    """

    __slots__ = ("_modified", "_regenerate", "_snapshot")

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self._modified = False
        self._regenerate = False
        # Only mutable values can change behind our back; copy just those.
        self._snapshot = {
            key: copy.deepcopy(value)
            for key, value in self.items()
            if isinstance(value, list | dict)
        }

    @property
    def modified(self) -> bool:
        """True when the session differs from what the request brought."""
        if self._modified or self._regenerate:
            return True
        return any(self.get(key) != value for key, value in self._snapshot.items())

    def regenerate_id(self) -> None:
        """Use a new session id from this response on (the data is kept)."""
        self._regenerate = True

    def __setitem__(self, key: str, value: Any) -> None:
        self._modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        self._modified = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self._modified = self._modified or key in self
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._modified = True
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._modified = True
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._modified = True
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self._modified = True
        super().update(other)
        return self


class _UnavailableSession(Session):
    """The session of a request whose store failed to load it: any use raises the failure.

    So the error surfaces in the handler that needs the session, where the app's exception
    handlers turn it into a response, and a request that never touches it is served as usual.
    """

    __slots__ = ("_error",)

    def __init__(self, error: Exception) -> None:
        dict.__init__(self)  # not Session.__init__: it would read the (failing) items
        self._error = error
        self._modified = self._regenerate = False
        self._snapshot: dict[str, Any] = {}

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error.with_traceback(None)  # a fresh traceback at each use

    def __repr__(self) -> str:
        return f"<Session unavailable: {self._error!r}>"

    modified = property(_fail)


for _name in (
    "__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__len__",
    "__reversed__", "__eq__", "__ne__", "__or__", "__ror__", "__ior__", "get", "keys", "values",
    "items", "pop", "popitem", "setdefault", "update", "clear", "copy", "regenerate_id",
):
    setattr(_UnavailableSession, _name, _UnavailableSession._fail)


class SessionStoreError(Exception):
    """A session store could not do its job (its backend is down, full, refusing...).

    Raise it from a custom :class:`SessionStore` for a backend failure; the middleware answers
    503 with ``Retry-After`` and leaves the client's cookie alone. ``OSError`` (which includes
    ``ConnectionError`` and ``TimeoutError``) counts as such a failure too. Any other exception
    from a store is a bug and is answered 500 by the app's exception handlers.
    """


@runtime_checkable
class SessionStore(Protocol):
    """Where server-side sessions live, keyed by session id.

    ``max_age`` is the lifetime in seconds the store should keep the data (None: no expiry).
    ``load`` returns None for an unknown or expired id. Implement these three coroutines to use
    any database; data is a JSON-compatible dict. Raise :class:`SessionStoreError` when the
    backend fails.
    """

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None: ...

    async def delete(self, session_id: str) -> None: ...


class MemoryStore:
    """Sessions in this process's memory: for tests, development and single-process apps.

    Data is stored encoded, so a handler changing a dict it loaded never changes the store.

    Example::

        asgi_app = SessionMiddleware(app, secret_key=os.environ["SESSION_SECRET"],
                                     store=MemoryStore())
    """

    __slots__ = ("_data", "_writes")

    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, bytes]] = {}
        self._writes = 0

    async def load(self, session_id: str) -> dict[str, Any] | None:
        entry = self._data.get(session_id)
        if entry is None:
            return None
        expires, payload = entry
        if expires is not None and expires <= time.monotonic():
            del self._data[session_id]
            return None
        data: dict[str, Any] = msgspec.json.decode(payload)
        return data

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        expires = None if max_age is None else time.monotonic() + max_age
        self._data[session_id] = (expires, msgspec.json.encode(data))
        self._writes += 1
        if self._writes % 1000 == 0:
            self._sweep()

    async def delete(self, session_id: str) -> None:
        self._data.pop(session_id, None)

    def _sweep(self) -> None:
        # Expired sessions nobody asks for again would otherwise stay forever.
        now = time.monotonic()
        for key in [k for k, (exp, _) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)


class RedisStore:
    """Sessions in Redis (``redis.asyncio``), shared by every process and machine of the app.

    Keys are ``prefix + session_id`` with a Redis expiry of the session's ``max_age``. The
    client is yours: create it at startup and close it at shutdown. A Redis error is raised as
    :class:`SessionStoreError` (the request gets a 503, the user stays logged in).

    Example::

        from redis.asyncio import Redis

        redis = Redis.from_url("redis://localhost:6379/0")  # connects on first use
        asgi_app = SessionMiddleware(app, secret_key=os.environ["SESSION_SECRET"],
                                     store=RedisStore(redis))
    """

    __slots__ = ("_client", "_errors", "_prefix")

    def __init__(self, client: Redis, *, prefix: str = "joey:session:") -> None:
        from redis.exceptions import RedisError

        self._client = client
        self._prefix = prefix
        self._errors = RedisError

    async def load(self, session_id: str) -> dict[str, Any] | None:
        try:
            payload = await self._client.get(self._prefix + session_id)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to load a session: {exc}") from exc
        if payload is None:
            return None
        try:
            data = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return None  # not ours, or corrupted: treat as no session
        return data if isinstance(data, dict) else None

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        payload = msgspec.json.encode(data)  # outside the try: unencodable data is a bug, a 500
        try:
            await self._client.set(self._prefix + session_id, payload, ex=max_age)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to save a session: {exc}") from exc

    async def delete(self, session_id: str) -> None:
        try:
            await self._client.delete(self._prefix + session_id)
        except self._errors as exc:
            raise SessionStoreError(f"Redis failed to delete a session: {exc}") from exc


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
                scope["session"] = _UnavailableSession(self._store_failure("load", exc))
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
            if new_id is None or session._regenerate:
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

    def _store_failure(self, action: str, exc: Exception) -> Exception:
        """Log a store failure; the exception to answer it with (503 for an outage)."""
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
                error = middleware._store_failure("save", exc)
                response = await middleware._error_response(self._scope, self._receive, error)
                await response(self._scope, self._receive, self._send)
                return
            if header is not None:
                headers = raw_headers(message.get("headers", ()))
                headers.append(header)
                message["headers"] = headers
        await self._send(message)
