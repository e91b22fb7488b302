from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis.asyncio import Redis

from joey.middleware import MemoryStore, RedisStore, Session, SessionMiddleware, SessionStore
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
async def redis_client(redis_port: int) -> AsyncIterator[Redis]:
    redis = Redis(host="127.0.0.1", port=redis_port)
    await redis.flushdb()
    yield redis
    await redis.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_port: int) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis = Redis(host="127.0.0.1", port=redis_port)
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
    assert await store.load("junk") is None
    assert await store.load("list") is None
    await store.delete("abc")
    assert await redis_client.exists("t:abc") == 0


async def test_memory_store_expires_and_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    now = [1000.0]
    monkeypatch.setattr("joey.middleware.sessions.time.monotonic", lambda: now[0])
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


async def test_store_failure_on_load_means_logged_out(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStore):
        async def load(self, session_id: str) -> dict[str, Any] | None:
            raise ConnectionError("store down")

    store = Broken()
    async with client(mw(store=MemoryStore())) as c:
        cookie = (await c.get("/?a=1")).headers["set-cookie"].split(";")[0]
    with caplog.at_level(logging.ERROR, "joey.sessions"):
        async with client(mw(store=store)) as c:
            r = await c.get("/", headers={"cookie": cookie})
    assert r.status_code == 200 and r.text == "[]"
    assert "failed to load" in caplog.text
