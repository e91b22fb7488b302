from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis.asyncio import Redis

from joey import App, HTTPError, JSONResponse, Middleware, Request, ServiceUnavailable, WebSocket
from joey._redis import from_url
from joey.middleware import MemoryStore, RedisStore, Session, SessionMiddleware, SessionStore
from joey.testing import AsyncTestClient
from joey.types import Receive, Scope, Send

from .helpers import client, drive, http_scope

SECRET = "test-secret-0123456789"
Handler = Callable[[Session], Awaitable[None] | None]


def session_app(handler: Handler | None = None) -> Callable[[Scope, Receive, Send], Any]:
    """Runs ``handler(session)`` (reading actions from the query), answers with the session."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        session: Session = scope["session"]
        query = scope["query_string"].decode()
        for action in filter(None, query.split("&")):
            key, _, value = action.partition("=")
            if key == "clear":
                session.clear()
            elif key == "append":
                session.setdefault("items", []).append(value)
            elif key == "nested":
                session["items"].append(value)
            elif key == "regen":
                session.regenerate_id()
            else:
                session[key] = value
        if handler is not None:
            result = handler(session)
            if result is not None:
                await result
        body = repr(sorted(session.items())).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def mw(**options: Any) -> SessionMiddleware:
    options.setdefault("secret_key", SECRET)
    return SessionMiddleware(session_app(options.pop("handler", None)), **options)


async def test_changed_session_sets_safe_cookie_and_comes_back() -> None:
    async with client(mw()) as c:
        first = await c.get("/?user=ada")
        cookie = first.headers["set-cookie"]
        second = await c.get("/")
    assert cookie.startswith("session=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=1209600"):
        assert attribute in cookie
    assert "Secure" not in cookie
    assert second.text == "[('user', 'ada')]"
    assert "set-cookie" not in second.headers  # unchanged: no cookie written


async def test_no_cookie_and_no_change_sends_nothing() -> None:
    async with client(mw()) as c:
        r = await c.get("/")
    assert r.text == "[]" and "set-cookie" not in r.headers


async def test_in_place_change_of_a_list_is_noticed() -> None:
    async with client(mw()) as c:
        await c.get("/?append=a")
        r = await c.get("/?nested=b")
        assert "set-cookie" in r.headers
        final = await c.get("/")
    assert final.text == "[('items', ['a', 'b'])]"


async def test_clearing_deletes_the_cookie() -> None:
    async with client(mw()) as c:
        await c.get("/?user=ada")
        r = await c.get("/?clear")
        assert "Max-Age=0" in r.headers["set-cookie"]
        after = await c.get("/")
    assert after.text == "[]"


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "", "a.b.c", "eyJ1c2VyIjoiZXZlIn0.ZZZZZZ.tampered-signature", "x" * 5000],
)
async def test_bad_cookie_gives_empty_session_and_is_deleted(cookie: str) -> None:
    async with client(mw()) as c:
        r = await c.get("/", headers={"cookie": f"session={cookie}"})
    assert r.status_code == 200 and r.text == "[]"
    assert "Max-Age=0" in r.headers.get("set-cookie", "Max-Age=0")


# Cookie bytes arrive as latin-1 text: any of them can be non-ASCII (the signatures are
# compared as bytes by itsdangerous: no TypeError from a str compare_digest).
NON_ASCII = [b"abc.\xc3\xa9", b"\xc3\xa9.\xc3\xa9.\xc3\xa9", b"\xe9" * 100,
             URLSafeTimedSerializer(SECRET, salt="joey.session").dumps({"a": 1}).encode()
             + b"\xe9"]


@pytest.mark.parametrize("cookie", NON_ASCII)
async def test_non_ascii_cookie_gives_empty_session(cookie: bytes) -> None:
    async with client(mw()) as c:
        r = await c.get("/", headers={"cookie": b"session=" + cookie})
    assert r.status_code == 200 and r.text == "[]"


@pytest.mark.parametrize("cookie", [
    *NON_ASCII,
    TimestampSigner(SECRET, salt="joey.session.id").sign("\u00e9").decode().encode("utf-8"),
])
async def test_non_ascii_session_id_cookie_gives_empty_session(cookie: bytes) -> None:
    async with client(mw(store=MemoryStore())) as c:
        r = await c.get("/", headers={"cookie": b"session=" + cookie})
    assert r.status_code == 200 and r.text == "[]"


async def test_signed_with_another_key_is_rejected() -> None:
    forged = URLSafeTimedSerializer("other-key", salt="joey.session").dumps({"admin": True})
    async with client(mw()) as c:
        r = await c.get("/", headers={"cookie": f"session={forged}"})
    assert r.text == "[]"


async def test_non_dict_payload_is_ignored() -> None:
    odd = URLSafeTimedSerializer(SECRET, salt="joey.session").dumps([1, 2])
    async with client(mw()) as c:
        r = await c.get("/", headers={"cookie": f"session={odd}"})
    assert r.text == "[]"


async def test_expired_cookie_gives_empty_session(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 7200)
        old = URLSafeTimedSerializer(SECRET, salt="joey.session").dumps({"user": "ada"})
    async with client(mw(max_age=3600)) as c:
        r = await c.get("/", headers={"cookie": f"session={old}"})
    assert r.text == "[]"


async def test_cookie_options() -> None:
    app = mw(cookie_name="sid", secure=True, samesite="strict", domain="example.com",
             path="/app", max_age=None)
    async with client(app) as c:
        r = await c.get("/?a=1")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("sid=")
    for attribute in ("Secure", "SameSite=Strict", "Domain=example.com", "Path=/app"):
        assert attribute in cookie
    assert "Max-Age" not in cookie


async def test_key_rotation_old_cookies_still_verify() -> None:
    async with client(mw(secret_key="old-key-old-key")) as c:
        cookie = (await c.get("/?user=ada")).headers["set-cookie"].split(";")[0]
    async with client(mw(secret_key=["old-key-old-key", "new-key-new-key"])) as c:
        r = await c.get("/?seen=1", headers={"cookie": cookie})
        renewed = r.headers["set-cookie"].split(";")[0].partition("=")[2]
    assert "ada" in r.text
    assert URLSafeTimedSerializer("new-key-new-key", salt="joey.session").loads(renewed)


def test_secret_key_is_required() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        SessionMiddleware(session_app(), secret_key="")
    with pytest.raises(ValueError, match="secret_key"):
        SessionMiddleware(session_app(), secret_key=[])


async def test_oversized_cookie_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "joey.sessions"):
        async with client(mw()) as c:
            await c.get("/?blob=" + secrets.token_hex(3000))
    assert "4 KB" in caplog.text


async def test_websocket_gets_a_read_only_session() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope["session"]) if "session" in scope else scope["type"])

    async with client(mw()) as c:
        cookie = (await c.get("/?user=ada")).headers["set-cookie"].split(";")[0]
    middleware = SessionMiddleware(app, secret_key=SECRET)
    await drive(middleware, http_scope(kind="websocket", headers=[(b"cookie", cookie.encode())]))
    await drive(middleware, {"type": "lifespan"})
    assert seen == [{"user": "ada"}, "lifespan"]


def test_session_tracks_every_dict_mutator() -> None:
    def fresh() -> Session:
        return Session({"a": 1, "nested": {"x": 1}})

    assert not fresh().modified
    mutations: list[Callable[[Session], object]] = [
        lambda s: s.__setitem__("b", 2),
        lambda s: s.__delitem__("a"),
        lambda s: s.pop("a"),
        lambda s: s.popitem(),
        lambda s: s.setdefault("b", 2),
        lambda s: s.update(b=2),
        lambda s: s.__ior__({"b": 2}),
        lambda s: s["nested"].__setitem__("x", 2),
        lambda s: s.regenerate_id(),
    ]
    for mutate in mutations:
        session = fresh()
        mutate(session)
        assert session.modified
    unchanged = fresh()
    unchanged.pop("missing", None)
    unchanged.setdefault("a", 5)
    assert not unchanged.modified


# -- server-side stores ------------------------------------------------------------------------


async def test_stores_satisfy_the_protocol(redis_client: Redis) -> None:
    assert isinstance(MemoryStore(), SessionStore)
    assert isinstance(RedisStore(redis_client), SessionStore)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    redis: Redis = from_url(redis_url)
    await redis.flushdb()
    yield redis
    await redis.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis: Redis = from_url(redis_url)
    await redis.flushdb()
    yield RedisStore(redis)
    await redis.aclose()


async def test_store_cookie_holds_only_a_signed_id(store: SessionStore) -> None:
    async with client(mw(store=store)) as c:
        first = await c.get("/?secret_data=hunter2")
        cookie = first.headers["set-cookie"].split(";")[0].partition("=")[2]
        second = await c.get("/")
    assert "hunter2" not in cookie
    session_id = TimestampSigner(SECRET, salt="joey.session.id").unsign(cookie).decode()
    assert await store.load(session_id) == {"secret_data": "hunter2"}
    assert second.text == "[('secret_data', 'hunter2')]"
    assert "set-cookie" not in second.headers


async def test_store_clear_deletes_server_side_data(store: SessionStore) -> None:
    async with client(mw(store=store)) as c:
        cookie = (await c.get("/?a=1")).headers["set-cookie"].split(";")[0].partition("=")[2]
        r = await c.get("/?clear")
    assert "Max-Age=0" in r.headers["set-cookie"]
    session_id = TimestampSigner(SECRET, salt="joey.session.id").unsign(cookie).decode()
    assert await store.load(session_id) is None


async def test_unknown_session_id_is_never_adopted(store: SessionStore) -> None:
    planted = TimestampSigner(SECRET, salt="joey.session.id").sign("attacker-chosen").decode()
    async with client(mw(store=store)) as c:
        r = await c.get("/?user=victim", headers={"cookie": f"session={planted}"})
    new_cookie = r.headers["set-cookie"].split(";")[0].partition("=")[2]
    new_id = TimestampSigner(SECRET, salt="joey.session.id").unsign(new_cookie).decode()
    assert new_id != "attacker-chosen"
    assert await store.load("attacker-chosen") is None


async def test_regenerate_id_moves_the_data(store: SessionStore) -> None:
    signer = TimestampSigner(SECRET, salt="joey.session.id")
    async with client(mw(store=store)) as c:
        old = (await c.get("/?user=ada")).headers["set-cookie"].split(";")[0].partition("=")[2]
        new = (await c.get("/?regen")).headers["set-cookie"].split(";")[0].partition("=")[2]
        final = await c.get("/")
    assert await store.load(signer.unsign(old).decode()) is None
    assert await store.load(signer.unsign(new).decode()) == {"user": "ada"}
    assert final.text == "[('user', 'ada')]"


async def test_redis_store_sets_expiry_and_survives_garbage(redis_client: Redis) -> None:
    store = RedisStore(redis_client, prefix="t:")
    await store.save("abc", {"n": 1}, 60)
    assert 0 < await redis_client.ttl("t:abc") <= 60
    assert await store.load("abc") == {"n": 1}
    await redis_client.set("t:junk", b"\xff not json")
    await redis_client.set("t:list", b"[1]")
    await redis_client.set("t:deep", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert await store.load("junk") is None
    assert await store.load("list") is None
    assert await store.load("deep") is None  # nested too deeply to decode: not a session
    await store.delete("abc")
    assert await redis_client.exists("t:abc") == 0


async def test_memory_store_expires_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    now = [1000.0]
    monkeypatch.setattr("joey.middleware.session_stores.time.monotonic", lambda: now[0])
    await store.save("a", {"x": 1}, 10)
    await store.save("forever", {"x": 2}, None)
    loaded = await store.load("a")
    assert loaded == {"x": 1}
    loaded["x"] = 99  # the store keeps its own copy
    assert await store.load("a") == {"x": 1}
    now[0] += 11
    assert await store.load("a") is None
    for i in range(997):  # with the 2 saves above: 999 writes
        await store.save(f"old{i}", {}, 1)
    now[0] += 2
    await store.save("trigger", {}, 1)  # the 1000th write sweeps out expired entries
    assert len(store) == 2
    assert await store.load("forever") == {"x": 2}


# -- store failures: a 503 through the app's handlers, the cookie left alone ---------------------


class FlakyStore(MemoryStore):
    """A MemoryStore whose load/save/delete raise ``error`` (or hang) while ``down``."""

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.down: set[str] = set()
        self.error = error if error is not None else ConnectionError("store down")
        self.hang = False

    async def _maybe_fail(self, action: str) -> None:
        if action in self.down:
            if self.hang:
                await asyncio.sleep(3600)
            raise self.error

    async def load(self, session_id: str) -> dict[str, Any] | None:
        await self._maybe_fail("load")
        return await super().load(session_id)

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        await self._maybe_fail("save")
        await super().save(session_id, data, max_age)

    async def delete(self, session_id: str) -> None:
        await self._maybe_fail("delete")
        await super().delete(session_id)


def joey_app(store: SessionStore, *, custom_handler: bool = False, **options: Any) -> App:
    app = App(asgi_middleware=[
        Middleware(SessionMiddleware, secret_key=SECRET, store=store, **options),
    ])

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        request.session["user"] = "ada"
        return {"user": "ada"}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.get("user")}

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        request.session.clear()
        return {"out": True}

    @app.post("/regen")
    async def regen(request: Request) -> dict[str, bool]:
        request.session.regenerate_id()
        return {"regen": True}

    @app.get("/public")
    async def public() -> str:
        return "no session needed"

    if custom_handler:
        @app.exception_handler(HTTPError)  # a parent class of ServiceUnavailable
        async def mine(request: Request, exc: HTTPError) -> JSONResponse:
            return JSONResponse({"mine": exc.status_code}, status_code=exc.status_code,
                                headers=exc.headers)

    return app


async def _login(app: App) -> str:
    async with AsyncTestClient(app) as c:
        r = await c.post("/login")
    assert r.status_code == 200
    return r.headers["set-cookie"].split(";")[0]


def _assert_503(r: httpx.Response, retry_after: str = "5") -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == retry_after
    assert "set-cookie" not in r.headers  # the client keeps its cookie: still logged in


async def test_store_failure_on_load_is_a_503_and_keeps_the_cookie(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    app = joey_app(store)
    cookie = await _login(app)
    store.down.add("load")
    with caplog.at_level(logging.ERROR, "joey.sessions"):
        async with AsyncTestClient(app) as c:
            r = await c.get("/me", headers={"cookie": cookie})
            public = await c.get("/public", headers={"cookie": cookie})
            logout = await c.post("/logout", headers={"cookie": cookie})
    _assert_503(r)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 503 and "try again" in r.json()["detail"]
    assert "could not load a session: ConnectionError('store down')" in caplog.text
    # A page that never touches the session is served, and nothing is said about the cookie.
    assert public.status_code == 200 and "set-cookie" not in public.headers
    _assert_503(logout)  # cannot log out either: the server-side data is unreachable
    store.down.clear()
    async with AsyncTestClient(app) as c:
        assert (await c.get("/me", headers={"cookie": cookie})).json() == {"user": "ada"}


@pytest.mark.parametrize("path", ["/login", "/logout", "/regen"])
async def test_store_failure_on_save_or_delete_uses_the_apps_handler(path: str) -> None:
    store = FlakyStore()
    app = joey_app(store, custom_handler=True, retry_after=30)
    cookie = await _login(app)
    store.down |= {"save", "delete"}
    async with AsyncTestClient(app) as c:
        r = await c.post(path, headers={"cookie": cookie})
        _assert_503(r, "30")
        assert r.json() == {"mine": 503}  # the app's own handler rendered it
        assert r.headers["content-type"] == "application/json"
        # The handler's own response never went out, and the store is untouched.
        assert len(store) == 1
        store.down.clear()
        assert (await c.get("/me", headers={"cookie": cookie})).json() == {"user": "ada"}


async def test_a_hung_store_times_out_with_a_503() -> None:
    store = FlakyStore()
    app = joey_app(store, store_timeout=0.2)
    cookie = await _login(app)
    store.down |= {"load", "save"}
    store.hang = True
    async with AsyncTestClient(app) as c:
        started = time.monotonic()
        _assert_503(await c.get("/me", headers={"cookie": cookie}))
        _assert_503(await c.post("/login"))  # no cookie yet: only the save hangs
        assert time.monotonic() - started < 2


def test_store_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="store_timeout"):
        SessionMiddleware(session_app(), secret_key=SECRET, store=MemoryStore(), store_timeout=0)


async def test_a_store_bug_is_a_500_not_a_503(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(error=ValueError("bug in the store"))
    app = joey_app(store)
    cookie = await _login(app)
    store.down |= {"load", "save"}
    with caplog.at_level(logging.ERROR):
        async with AsyncTestClient(app, raise_server_exceptions=False) as c:
            loaded = await c.get("/me", headers={"cookie": cookie})
            saved = await c.post("/login")
    for r in (loaded, saved):
        assert r.status_code == 500 and "set-cookie" not in r.headers
        assert r.headers["content-type"] == "application/problem+json"
    assert "bug in the store" in caplog.text


async def test_the_unavailable_session_raises_on_any_use() -> None:
    store = FlakyStore()
    seen: list[str] = []

    def handler(session: Session) -> None:
        seen.append(repr(session))
        for use in (lambda: len(session), lambda: "a" in session, lambda: list(session),
                    lambda: dict(session), lambda: session.get("a"), session.regenerate_id,
                    lambda: session.modified, lambda: session == {}):
            with pytest.raises(ServiceUnavailable):
                use()

    async with client(mw(store=store)) as c:
        cookie = (await c.get("/?a=1")).headers["set-cookie"]
    store.down.add("load")
    async with client(mw(store=store, handler=handler)) as c:
        with pytest.raises(ServiceUnavailable):  # a plain ASGI app: the error reaches it
            await c.get("/", headers={"cookie": cookie.split(";")[0]})
    assert len(seen) == 1 and seen[0].startswith("<Session unavailable: ServiceUnavailable(")


async def test_save_failure_under_a_plain_asgi_app_is_a_problem_503() -> None:
    store = FlakyStore()
    store.down.add("save")
    async with client(mw(store=store)) as c:
        r = await c.get("/?a=1")
    _assert_503(r)
    assert r.headers["content-type"] == "application/problem+json"


async def test_websocket_with_a_failed_load_gets_the_error_in_the_handler() -> None:
    store = FlakyStore()
    app = joey_app(store)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            user = websocket.session.get("user")
        except ServiceUnavailable:
            user = "unavailable"
        await websocket.send_text(str(user))
        await websocket.close()

    cookie = await _login(app)
    store.down.add("load")
    async with AsyncTestClient(app) as c, c.websocket_connect(
        "/ws", headers={"cookie": cookie}
    ) as socket:
        assert await socket.receive_text() == "unavailable"
