"""Route caching in process (joey.caching with a MemoryCache): declared headers, ETags and
conditional requests, validators before the handler, the stored answers, stampede
protection, invalidation, and the refusals at startup. Redis: test_caching_redis.py; real
servers and worker processes: tests/integration/test_caching_workers.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest

from joey import App, Depends, Header, NotFound, Request, Response, Router, Unauthorized
from joey.caching import Caching, MemoryCache, Validators
from joey.caching.store import canonical_path
from joey.declarations import LateDeclaration
from joey.middleware import CompressionMiddleware
from joey.security import Security
from joey.stack import Middleware
from joey.streaming import StreamingResponse
from joey.testing import AsyncTestClient, TestClient

PUBLIC = "public, max-age=60"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self) -> int:
        self.runs += 1
        return self.runs


# --- declared headers ---------------------------------------------------------------------------

def test_cache_control_and_vary_go_on_the_answers_the_handler_returns() -> None:
    app = App()
    caching = Caching(cache_control=PUBLIC, vary=["Accept-Language"])

    @app.get("/ok", caching=caching)
    async def ok() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/gone", caching=caching)
    async def gone() -> Response:
        return Response(b"", 410)

    @app.get("/teapot", caching=caching)
    async def teapot() -> Response:
        return Response(b"no", 418, headers={"vary": "Origin"})

    @app.get("/raised", caching=caching)
    async def raised() -> None:
        raise NotFound("nothing")

    @app.get("/own", caching=caching)
    async def own() -> Response:
        return Response(b"x", headers={"cache-control": "no-store", "vary": "accept-language"})

    with TestClient(app) as client:
        answer = client.get("/ok")
        assert answer.headers["cache-control"] == PUBLIC
        assert answer.headers["vary"] == "Accept-Language"
        assert client.get("/gone").headers["cache-control"] == PUBLIC
        teapot_answer = client.get("/teapot")
        assert "cache-control" not in teapot_answer.headers  # a 4xx it cannot store
        assert teapot_answer.headers["vary"] == "Origin, Accept-Language"
        # an error raised is rendered after the route: no cache headers
        assert "cache-control" not in client.get("/raised").headers
        own_answer = client.get("/own")
        assert own_answer.headers["cache-control"] == "no-store"
        assert own_answer.headers.get_list("vary") == ["accept-language"]


def test_a_route_fills_in_what_its_router_leaves_unset() -> None:
    app = App()
    api = Router(prefix="/api", caching=Caching(cache_control="no-cache", vary=["Accept"]))
    inner = Router(prefix="/inner", caching=Caching(etag=True))

    @api.get("/plain")
    async def plain() -> str:
        return "plain"

    @inner.get("/own", caching=Caching(cache_control=PUBLIC))
    async def own() -> str:
        return "own"

    api.include_router(inner)
    app.include_router(api)
    with TestClient(app) as client:
        plain_answer = client.get("/api/plain")
        assert plain_answer.headers["cache-control"] == "no-cache"
        assert "etag" not in plain_answer.headers
        own_answer = client.get("/api/inner/own")
        assert own_answer.headers["cache-control"] == PUBLIC
        assert own_answer.headers["vary"] == "Accept"
        assert own_answer.headers["etag"].startswith('"')
    by_path = {route.path: route for route in app.routes}
    caching = by_path["/api/inner/own"].caching
    assert caching is not None and caching.etag and caching.vary == ("Accept",)


# --- ETags and conditional requests ------------------------------------------------------------

def test_etag_hashes_the_body_and_answers_304_when_sent_back() -> None:
    app = App()
    version = {"n": 1}

    @app.get("/doc", caching=Caching(etag=True, cache_control="no-cache"))
    async def doc() -> dict[str, int]:
        return {"version": version["n"]}

    with TestClient(app) as client:
        first = client.get("/doc")
        etag = first.headers["etag"]
        assert first.status_code == 200 and first.json() == {"version": 1}
        again = client.get("/doc", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "no-cache"
        assert "content-type" not in again.headers and "content-length" not in again.headers
        weak = client.get("/doc", headers={"if-none-match": f'"x", W/{etag}'})
        assert weak.status_code == 304
        head = client.head("/doc", headers={"if-none-match": etag})
        assert head.status_code == 304
        version["n"] = 2
        changed = client.get("/doc", headers={"if-none-match": etag})
        assert changed.status_code == 200 and changed.json() == {"version": 2}
        assert changed.headers["etag"] != etag
        # If-Match on a GET is answered too (a safe method: the check may come after)
        assert client.get("/doc", headers={"if-match": etag}).status_code == 412


def test_the_handler_s_own_validators_are_kept_and_used() -> None:
    app = App()

    @app.get("/mine", caching=Caching(etag=True))
    async def mine() -> Response:
        return Response(b"body", headers={"etag": '"mine"',
                                          "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT"})

    @app.get("/dated", caching=Caching(cache_control="no-cache"))
    async def dated() -> Response:
        return Response(b"body", headers={"last-modified": "Tue, 14 Nov 2023 22:13:20 GMT"})

    with TestClient(app) as client:
        assert client.get("/mine").headers["etag"] == '"mine"'
        assert client.get("/mine", headers={"if-none-match": '"mine"'}).status_code == 304
        since = {"if-modified-since": "Tue, 14 Nov 2023 22:13:20 GMT"}
        assert client.get("/dated", headers=since).status_code == 304
        before = {"if-modified-since": "Tue, 14 Nov 2023 22:13:19 GMT"}
        assert client.get("/dated", headers=before).status_code == 200


def test_only_200_answers_to_get_and_head_get_an_etag() -> None:
    app = App()

    @app.post("/things", status_code=201, caching=Caching(etag=True))
    async def create() -> dict[str, int]:
        return {"id": 1}

    @app.get("/created", status_code=201, caching=Caching(etag=True))
    async def created() -> dict[str, int]:
        return {"id": 1}

    @app.get("/stream", caching=Caching(etag=True))
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"

        return StreamingResponse(chunks())

    with TestClient(app) as client:
        assert "etag" not in client.post("/things").headers
        assert "etag" not in client.get("/created").headers
        assert "etag" not in client.get("/stream").headers


def test_a_compressed_answer_gets_a_weak_etag_that_still_revalidates() -> None:
    app = App(asgi_middleware=[Middleware(CompressionMiddleware, minimum_size=10)])

    @app.get("/big", caching=Caching(etag=True))
    async def big() -> str:
        return "word " * 500

    with TestClient(app) as client:
        gzipped = client.get("/big", headers={"accept-encoding": "gzip"})
        assert gzipped.headers["content-encoding"] == "gzip"
        etag = gzipped.headers["etag"]
        assert etag.startswith("W/")
        again = client.get("/big", headers={"accept-encoding": "gzip", "if-none-match": etag})
        assert again.status_code == 304


# --- validators: decided before the handler runs ------------------------------------------------

class Books:
    def __init__(self) -> None:
        self.books: dict[int, dict[str, Any]] = {1: {"title": "Dune", "version": 1}}
        self.handler_runs = 0

    async def current(self, id: int) -> Validators | None:
        book = self.books.get(id)
        if book is None:
            return None
        return Validators(etag=f"v{book['version']}", last_modified=1_700_000_000)


def books_app(books: Books) -> App:
    app = App()
    caching = Caching(validators=books.current, cache_control="no-cache")

    @app.get("/books/{id:int}", caching=caching)
    async def get_book(id: int) -> dict[str, Any]:
        books.handler_runs += 1
        if id not in books.books:
            raise NotFound("no such book")
        return books.books[id]

    @app.put("/books/{id:int}", caching=caching)
    async def put_book(id: int, book: dict[str, Any]) -> dict[str, Any]:
        books.handler_runs += 1
        old = books.books.get(id, {"version": 0})
        books.books[id] = {**book, "version": old["version"] + 1}
        return books.books[id]

    return app


def test_validators_answer_304_without_running_the_handler() -> None:
    books = Books()
    with TestClient(books_app(books)) as client:
        first = client.get("/books/1")
        assert first.headers["etag"] == '"v1"'
        assert first.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert books.handler_runs == 1
        again = client.get("/books/1", headers={"if-none-match": '"v1"'})
        assert again.status_code == 304 and books.handler_runs == 1
        assert again.headers["etag"] == '"v1"'
        assert again.headers["cache-control"] == "no-cache"
        dated = client.get("/books/1",
                           headers={"if-modified-since": "Tue, 14 Nov 2023 22:13:20 GMT"})
        assert dated.status_code == 304 and books.handler_runs == 1


def test_a_failed_if_match_is_412_before_anything_changes() -> None:
    books = Books()
    with TestClient(books_app(books), raise_server_exceptions=False) as client:
        stale = client.put("/books/1", json={"title": "Dune II"},
                           headers={"if-match": '"v0"'})
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["status"] == 412
        assert books.handler_runs == 0 and books.books[1]["title"] == "Dune"
        fresh = client.put("/books/1", json={"title": "Dune II"},
                           headers={"if-match": '"v1"'})
        assert fresh.status_code == 200 and fresh.json()["version"] == 2
        # the old tag is stale now: the lost update is refused
        lost = client.put("/books/1", json={"title": "Dune III"},
                          headers={"if-match": '"v1"'})
        assert lost.status_code == 412 and books.books[1]["title"] == "Dune II"
        old_date = client.put("/books/1", json={"title": "x"},
                              headers={"if-unmodified-since": "Tue, 14 Nov 2023 22:13:19 GMT"})
        assert old_date.status_code == 412


def test_if_none_match_star_creates_only_what_does_not_exist() -> None:
    books = Books()
    with TestClient(books_app(books)) as client:
        created = client.put("/books/2", json={"title": "Emma"}, headers={"if-none-match": "*"})
        assert created.status_code == 200 and books.books[2]["title"] == "Emma"
        again = client.put("/books/2", json={"title": "Other"}, headers={"if-none-match": "*"})
        assert again.status_code == 412 and books.books[2]["title"] == "Emma"
        missing = client.put("/books/9", json={"title": "x"}, headers={"if-match": "*"})
        assert missing.status_code == 412 and 9 not in books.books


def test_validators_must_return_validators() -> None:
    app = App()

    async def wrong() -> str:
        return "v1"

    @app.get("/x", caching=Caching(validators=wrong))
    async def x() -> str:
        return "x"

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/x").status_code == 500


# --- the server-side store ----------------------------------------------------------------------

def stored_app(store: MemoryCache, counter: Counter, **options: Any) -> App:
    app = App()

    @app.get("/items/{id:int}", caching=Caching(
        cache_control=PUBLIC, etag=True, store=store, tags=["items", "item:{id}"],
        **options))
    async def item(id: int, request: Request) -> dict[str, Any]:
        return {"id": id, "run": counter(), "q": request.query_params.get("q")}

    return app


def test_a_stored_answer_skips_the_handler_and_says_so() -> None:
    store, counter = MemoryCache(clock=Clock()), Counter()  # a clock that stands still
    with TestClient(stored_app(store, counter)) as client:
        first = client.get("/items/1")
        assert first.json()["run"] == 1
        assert first.headers["cache-status"] == "joey; fwd=uri-miss; stored"
        second = client.get("/items/1")
        assert second.json()["run"] == 1 and counter.runs == 1
        assert second.headers["cache-status"] == "joey; hit; ttl=60"
        assert second.headers["age"] == "0"
        assert second.headers["etag"] == first.headers["etag"]
        assert second.headers["content-type"] == "application/json"
        assert second.headers["cache-control"] == PUBLIC
        assert client.get("/items/1", headers={"if-none-match": first.headers["etag"]},
                          ).status_code == 304
        head = client.head("/items/1")
        assert head.status_code == 200 and head.content == b"" and counter.runs == 1
        assert head.headers["content-length"] == first.headers["content-length"]


def test_entries_expire_after_their_ttl_and_report_their_age() -> None:
    clock = Clock()
    store, counter = MemoryCache(clock=clock), Counter()
    with TestClient(stored_app(store, counter, ttl=10)) as client:
        client.get("/items/1")
        clock.now += 4
        answer = client.get("/items/1")
        assert answer.headers["age"] == "4" and answer.headers["cache-status"].endswith("ttl=6")
        clock.now += 6
        assert client.get("/items/1").json()["run"] == 2


def test_the_key_is_path_query_vary_headers_and_key_function() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    @app.get("/p/{name}", caching=Caching(store=store, ttl=60, vary=["Accept-Language"],
                                          key=lambda request: request.headers.get("x-tenant")))
    async def page(name: str) -> dict[str, int]:
        return {"run": counter()}

    with TestClient(app) as client:
        def run(path: str, **headers: str) -> int:
            value: int = client.get(path, headers=headers).json()["run"]
            return value

        assert run("/p/a") == 1
        assert run("/p/a") == 1
        assert run("/p/b") == 2
        assert run("/p/a?x=1") == 3
        assert run("/p/a?x=1") == 3
        assert run("/p/a", **{"accept-language": "de"}) == 4
        assert run("/p/a", **{"accept-language": "de"}) == 4
        assert run("/p/a", **{"x-tenant": "t1"}) == 5
        assert run("/p/a", **{"x-tenant": "t2"}) == 6
        assert run("/p/%61") == 1  # the same path, encoded otherwise
        assert run("/p/a%2Fb") == 7
        assert run("/p/a%2fb") == 7


def test_an_async_or_dependency_key_works_and_the_dependency_runs_each_time() -> None:
    store = MemoryCache()
    seen: list[str] = []
    app = App()

    async def user(x_user: Annotated[str, Header()]) -> str:
        seen.append(x_user)
        return x_user

    @app.get("/me", caching=Caching(store=store, ttl=60, key=Depends(user)))
    async def me(who: Annotated[str, Depends(user)]) -> dict[str, str]:
        return {"me": who}

    async def tenant(request: Request) -> str:
        return request.headers.get("x-tenant", "-")

    @app.get("/t", caching=Caching(store=store, ttl=60, key=tenant))
    async def t(request: Request) -> str:
        return request.headers.get("x-tenant", "-")

    with TestClient(app) as client:
        assert client.get("/me", headers={"x-user": "ann"}).json() == {"me": "ann"}
        assert client.get("/me", headers={"x-user": "bob"}).json() == {"me": "bob"}
        hit = client.get("/me", headers={"x-user": "ann"})
        assert hit.json() == {"me": "ann"} and hit.headers["cache-status"].startswith("joey; hit")
        assert seen == ["ann", "bob", "ann"]
        assert client.get("/me").status_code == 422  # the key's own parameter is validated
        assert client.get("/t", headers={"x-tenant": "a"}).text == "a"
        assert client.get("/t", headers={"x-tenant": "b"}).text == "b"


def test_a_stored_answer_is_never_served_to_a_request_that_fails_validation() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    @app.get("/keyed", caching=Caching(store=store, ttl=60, vary=["X-Version"]))
    async def keyed(x_version: Annotated[int, Header()], page: int = 1) -> dict[str, int]:
        return {"run": counter(), "page": page}

    @app.get("/unkeyed", caching=Caching(store=store, ttl=60))
    async def unkeyed(x_token: Annotated[str, Header()]) -> dict[str, int]:
        return {"run": counter()}

    with TestClient(app) as client:
        # what the parameters read is all in the key: the store is asked before they are
        assert client.get("/keyed", headers={"x-version": "1"}).json()["run"] == 1
        assert client.get("/keyed", headers={"x-version": "1"}).json()["run"] == 1
        assert client.get("/keyed", headers={"x-version": "x"}).status_code == 422
        assert client.get("/keyed?page=x", headers={"x-version": "1"}).status_code == 422
        assert client.get("/keyed").status_code == 422
        # a header outside the key: the parameters are validated before the store is asked
        assert client.get("/unkeyed", headers={"x-token": "t"}).json()["run"] == 2
        assert client.get("/unkeyed", headers={"x-token": "u"}).json()["run"] == 2
        assert client.get("/unkeyed").status_code == 422
    early, planned = app.routes
    assert early.dependencies == ()  # asked by the route itself: no dependency
    assert [d.function.__qualname__ for d in planned.dependencies] == [
        "Caching (the route's validators and stored answers)"]


def test_security_runs_on_every_request_even_for_stored_answers() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    async def guard(x_key: Annotated[str | None, Header()] = None) -> None:
        if x_key != "secret":
            raise Unauthorized("no key")

    @app.get("/guarded", caching=Caching(store=store, ttl=60),
             dependencies=[Security(guard)])
    async def guarded() -> dict[str, int]:
        return {"run": counter()}

    with TestClient(app) as client:
        assert client.get("/guarded", headers={"x-key": "secret"}).json() == {"run": 1}
        assert client.get("/guarded", headers={"x-key": "secret"}).json() == {"run": 1}
        assert client.get("/guarded").status_code == 401


def test_a_request_with_credentials_is_not_shared_unless_the_route_says_so() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    @app.get("/private", caching=Caching(store=store, ttl=60))
    async def private() -> dict[str, int]:
        return {"run": counter()}

    @app.get("/public", caching=Caching(store=store, cache_control="public, max-age=60"))
    async def public() -> dict[str, int]:
        return {"run": counter()}

    with TestClient(app) as client:
        auth = {"authorization": "Bearer a"}
        assert client.get("/private", headers=auth).json() == {"run": 1}
        bypassed = client.get("/private", headers=auth)
        assert bypassed.json() == {"run": 2}
        assert bypassed.headers["cache-status"] == "joey; fwd=bypass; detail=authorization"
        assert client.get("/private").json() == {"run": 3}
        assert client.get("/private").json() == {"run": 3}
        assert client.get("/public", headers=auth).json() == {"run": 4}
        assert client.get("/public", headers={"authorization": "Bearer b"}).json() == {"run": 4}


def test_what_is_never_stored() -> None:
    store = MemoryCache(max_body_size=100)
    counter = Counter()
    app = App()
    caching = Caching(store=store, ttl=60, vary=["Accept"])

    @app.get("/cookie", caching=caching)
    async def cookie() -> Response:
        response = Response(str(counter()))
        response.set_cookie("session", "abc")
        return response

    @app.get("/private", caching=caching)
    async def private() -> Response:
        return Response(str(counter()), headers={"cache-control": "private, max-age=60"})

    @app.get("/no-store", caching=caching)
    async def no_store() -> Response:
        return Response(str(counter()), headers={"cache-control": "no-store"})

    @app.get("/error", caching=caching)
    async def error() -> Response:
        return Response(str(counter()), 500)

    @app.get("/created", caching=caching)
    async def created() -> Response:
        return Response(str(counter()), 201)

    @app.get("/big", caching=caching)
    async def big() -> Response:
        return Response(str(counter()) + "x" * 200)

    @app.get("/other-vary", caching=caching)
    async def other_vary() -> Response:
        return Response(str(counter()), headers={"vary": "Cookie"})

    @app.get("/stream", caching=caching)
    async def stream() -> StreamingResponse:
        run = counter()

        async def chunks() -> AsyncIterator[bytes]:
            yield str(run).encode()

        return StreamingResponse(chunks())

    @app.get("/missing", caching=caching)
    async def missing() -> Response:
        return Response(str(counter()), 404)

    with TestClient(app) as client:
        for path in ("/cookie", "/private", "/no-store", "/error", "/created", "/big",
                     "/other-vary", "/stream"):
            first = client.get(path)
            second = client.get(path)
            assert first.text != second.text, path
            assert first.headers["cache-status"] == "joey; fwd=uri-miss", path
        assert "set-cookie" in client.get("/cookie").headers
        # a 404 the handler returns is stored (RFC 9111: heuristically cacheable)
        assert client.get("/missing").text == client.get("/missing").text


def test_cookies_and_private_answers_are_stored_when_asked() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    @app.get("/cookie", caching=Caching(store=store, ttl=60, store_cookies=True))
    async def cookie() -> Response:
        response = Response(str(counter()))
        response.set_cookie("seen", "1")
        return response

    @app.get("/mine", caching=Caching(store=store, cache_control="private, max-age=60",
                                      store_private=True, key=lambda r: r.headers.get("x-u")))
    async def mine() -> str:
        return str(counter())

    with TestClient(app) as client:
        first, second = client.get("/cookie"), client.get("/cookie")
        assert first.text == second.text == "1"
        assert second.headers["set-cookie"].startswith("seen=1")
        assert client.get("/mine", headers={"x-u": "a"}).text == "2"
        assert client.get("/mine", headers={"x-u": "a"}).text == "2"


def test_invalidation_by_path_and_by_tag() -> None:
    store, counter = MemoryCache(), Counter()
    with TestClient(stored_app(store, counter)) as client:
        def run(path: str) -> int:
            value: int = client.get(path).json()["run"]
            return value

        assert (run("/items/1"), run("/items/1?q=a"), run("/items/2")) == (1, 2, 3)
        asyncio.run(store.invalidate("/items/1"))
        assert (run("/items/1"), run("/items/1?q=a"), run("/items/2")) == (4, 2, 3)
        asyncio.run(store.invalidate("/items/1?q=a"))
        assert run("/items/1?q=a") == 5
        asyncio.run(store.invalidate_tag("item:2"))
        assert (run("/items/1"), run("/items/2")) == (4, 6)
        asyncio.run(store.invalidate_tag("items"))
        assert (run("/items/1"), run("/items/1?q=a"), run("/items/2")) == (7, 8, 9)
        asyncio.run(store.clear())
        assert run("/items/2") == 10 and len(store) == 1


def test_invalidation_finds_a_path_however_it_is_spelled() -> None:
    store, counter = MemoryCache(), Counter()
    app = App()

    @app.get("/books/{title}", caching=Caching(store=store, ttl=60))
    async def book(title: str) -> dict[str, int]:
        return {"run": counter()}

    with TestClient(app) as client:
        assert client.get("/books/Gr%C3%BC%C3%9Fe").json() == {"run": 1}
        assert client.get("/books/a%2Fb").json() == {"run": 2}
        asyncio.run(store.invalidate("/books/Grüße"))
        asyncio.run(store.invalidate("/books/a%2Fb"))
        assert client.get("/books/Gr%C3%BC%C3%9Fe").json() == {"run": 3}
        assert client.get("/books/a%2Fb").json() == {"run": 4}


def test_the_store_keeps_at_most_max_entries() -> None:
    store, counter = MemoryCache(max_entries=2), Counter()
    with TestClient(stored_app(store, counter)) as client:
        for item in (1, 2, 1, 3):  # 1 used again: 2 is the least recently used
            client.get(f"/items/{item}")
        assert len(store) == 2
        assert client.get("/items/1").json()["run"] == 1
        assert client.get("/items/2").json()["run"] == 4


def test_canonical_path() -> None:
    assert canonical_path("/books/Grüße") == canonical_path("/books/Gr%C3%BC%C3%9Fe")
    assert canonical_path("/a%2Fb") != canonical_path("/a/b")
    assert canonical_path("/a?b") == "/a%3Fb"


# --- stampede protection in one process ---------------------------------------------------------

async def test_a_hundred_concurrent_misses_run_the_handler_once() -> None:
    store = MemoryCache()
    app = App()
    release = asyncio.Event()
    runs = 0

    @app.get("/slow", caching=Caching(store=store, ttl=60))
    async def slow() -> dict[str, int]:
        nonlocal runs
        runs += 1
        await release.wait()
        return {"runs": runs}

    async with AsyncTestClient(app) as client:
        requests = [asyncio.ensure_future(client.get("/slow")) for _ in range(100)]
        for _ in range(2000):  # no I/O in process: every request gets to wait by then
            await asyncio.sleep(0)
        assert runs == 1 and not any(r.done() for r in requests)
        release.set()
        answers = await asyncio.gather(*requests)
    assert runs == 1
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["runs"] for a in answers} == {1}
    statuses = sorted(a.headers["cache-status"] for a in answers)
    assert statuses.count("joey; fwd=uri-miss; stored") == 1
    assert statuses.count("joey; fwd=uri-miss; collapsed") == 99


async def test_waiters_answer_themselves_when_the_computation_keeps_nothing() -> None:
    store = MemoryCache(wait_timeout=100)  # they must not wait that long
    app = App()
    release = asyncio.Event()
    runs = 0

    @app.get("/flaky", caching=Caching(store=store, ttl=60))
    async def flaky() -> Response:
        nonlocal runs
        runs += 1
        if runs == 1:
            await release.wait()
            raise RuntimeError("the first computation fails")
        return Response(b"ok")

    async with AsyncTestClient(app, raise_server_exceptions=False) as client:
        requests = [asyncio.ensure_future(client.get("/flaky")) for _ in range(5)]
        for _ in range(1000):
            await asyncio.sleep(0)
            if runs:
                break
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(*requests), 50)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 500]
    assert runs == 5  # nothing kept: each waiter ran the handler itself, at once


async def test_an_invalidation_during_a_computation_keeps_its_answer_out() -> None:
    store = MemoryCache()
    app = App()
    started, release = asyncio.Event(), asyncio.Event()
    version = 1

    @app.get("/v", caching=Caching(store=store, ttl=60))
    async def v() -> dict[str, int]:
        read = version  # read before the change...
        started.set()
        await release.wait()
        return {"version": read}

    async with AsyncTestClient(app) as client:
        stale = asyncio.ensure_future(client.get("/v"))
        await asyncio.wait_for(started.wait(), 10)
        version = 2  # ... which lands, and is invalidated, while the answer is computed
        await store.invalidate("/v")
        release.set()
        assert (await stale).json() == {"version": 1}
        started.clear()
        fresh = await client.get("/v")
        assert fresh.json() == {"version": 2}
        assert fresh.headers["cache-status"] == "joey; fwd=uri-miss; stored"


# --- the route model, the API document, and startup ------------------------------------------

def test_the_route_model_and_the_api_document_show_the_caching() -> None:
    from joey.openapi import OpenAPI

    store = MemoryCache()
    app = App(openapi=OpenAPI(title="t"))
    books = Books()
    caching = Caching(cache_control=PUBLIC, vary=["Accept-Language"], store=store)

    @app.get("/cached", caching=caching)
    async def cached() -> dict[str, int]:
        return {}

    @app.put("/books/{id:int}", caching=Caching(validators=books.current))
    async def put_book(id: int) -> None:
        return None

    model = {route.path: route for route in app.routes}
    assert model["/cached"].caching is not None
    assert model["/cached"].caching.store is store
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    get = document["paths"]["/cached"]["get"]["responses"]
    headers = get["200"]["headers"]
    assert headers["Cache-Control"]["schema"]["examples"] == [PUBLIC]
    assert set(headers) == {"Cache-Control", "Vary", "Age", "Cache-Status"}
    put = document["paths"]["/books/{id}"]["put"]["responses"]
    assert "412" in put


def test_an_app_without_caching_compiles_nothing_of_it() -> None:
    script = textwrap.dedent("""
        import sys
        from joey import App, Router
        app = App()
        app.include_router(Router())
        @app.get("/")
        async def hello() -> str:
            return "hi"
        app.freeze()
        assert app.routes[0].dependencies == (), app.routes[0].dependencies
        assert app.routes[0].caching is None
        loaded = sorted(m for m in sys.modules if m.startswith("joey.caching.")
                        and m not in ("joey.caching.policy",))
        assert loaded == [], loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("caching", "message"), [
    (Caching(store=MemoryCache()), "needs a lifetime"),
    (Caching(store=MemoryCache(), cache_control="no-store, max-age=5"), "forbids storing"),
    (Caching(store=MemoryCache(), cache_control="private, max-age=5"), "store_private=True"),
    (Caching(store=MemoryCache(), ttl=5, vary=["*"]), "cannot be stored"),
    (Caching(store=MemoryCache(), ttl=5, tags=["item:{nope}"]), "not a path parameter"),
    (Caching(ttl=5), "give store="),
    (Caching(cache_control="max-age=soon"), "number of seconds"),
])
def test_a_caching_that_cannot_work_is_refused_at_startup(caching: Caching,
                                                          message: str) -> None:
    app = App()

    @app.get("/items/{id:int}", caching=caching)
    async def item_handler(id: int) -> int:
        return id

    with pytest.raises(ValueError, match=message) as refused:
        app.freeze()
    assert "item_handler" in str(refused.value)


def test_a_router_store_with_a_route_that_forbids_storing_is_refused_naming_it() -> None:
    app = App()
    api = Router(caching=Caching(store=MemoryCache(), ttl=5))

    @api.get("/secret", caching=Caching(cache_control="no-store"))
    async def secret() -> str:
        return "s"

    app.include_router(api)
    with pytest.raises(ValueError, match=r"secret.*forbids storing"):
        app.freeze()


@pytest.mark.parametrize(("options", "error"), [
    ({"cache_control": "max-age=60; public"}, "not a Cache-Control value"),
    ({"cache_control": "public\r\nx: y"}, "not a Cache-Control value"),
    ({"vary": "Accept"}, r"vary=\['Accept'\]"),
    ({"tags": "books"}, r"tags=\['books'\]"),
    ({"vary": ["Accept Language"]}, "not a header name"),
    ({"ttl": 0}, "more than 0"),
    ({"validators": "v1"}, "must be a dependency"),
])
def test_a_malformed_declaration_is_refused_where_it_is_written(options: dict[str, Any],
                                                                 error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        Caching(**options)


def test_a_router_s_caching_leaves_its_websocket_routes_alone() -> None:
    from joey import WebSocket

    app = App()
    api = Router(caching=Caching(cache_control=PUBLIC, store=MemoryCache()))

    @api.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app.include_router(api)
    assert app.routes[0].caching is None
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hi"


def test_a_router_s_caching_is_frozen_with_it() -> None:
    app = App()
    api = Router()
    app.include_router(api)
    app.freeze()
    with pytest.raises(LateDeclaration):
        api.caching = Caching(etag=True)
