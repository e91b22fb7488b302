from __future__ import annotations

import pytest

from joey.middleware import CORSMiddleware
from joey.types import Scope

from .helpers import client, drive, http_scope, text_app

A = "https://a.example"
B = "https://b.example"


def cors(calls: list[Scope] | None = None, **options: object) -> CORSMiddleware:
    app = text_app("ok", headers=[("content-type", "text/plain"), ("vary", "Accept-Encoding")],
                   calls=calls)
    return CORSMiddleware(app, **options)  # type: ignore[arg-type]


def preflight_headers(origin: str = A, method: str = "PUT", headers: str | None = None) -> dict[
        str, str]:
    result = {"origin": origin, "access-control-request-method": method}
    if headers is not None:
        result["access-control-request-headers"] = headers
    return result


async def test_request_without_origin_reaches_app_and_varies_on_origin() -> None:
    async with client(cors(allow_origins=[A])) as c:
        r = await c.get("/")
    assert r.text == "ok"
    assert "access-control-allow-origin" not in r.headers
    # One Vary line, the app's value kept.
    assert r.headers.get_list("vary") == ["Accept-Encoding, Origin"]


async def test_simple_request_from_allowed_origin_echoes_it() -> None:
    async with client(cors(allow_origins=[A], expose_headers=["X-Total"])) as c:
        r = await c.get("/", headers={"origin": A})
    assert r.headers["access-control-allow-origin"] == A
    assert r.headers["access-control-expose-headers"] == "X-Total"
    assert "access-control-allow-credentials" not in r.headers
    assert r.headers["vary"] == "Accept-Encoding, Origin"


async def test_simple_request_from_other_origin_gets_no_cors_headers() -> None:
    calls: list[Scope] = []
    async with client(cors(calls, allow_origins=[A])) as c:
        r = await c.get("/", headers={"origin": B})
    assert r.status_code == 200 and r.text == "ok"  # the browser, not the server, blocks it
    assert not [k for k in r.headers if k.startswith("access-control-")]
    assert r.headers["vary"] == "Accept-Encoding, Origin"
    assert len(calls) == 1


async def test_wildcard_without_credentials_sends_star_and_no_vary() -> None:
    async with client(CORSMiddleware(text_app("ok"), allow_origins=["*"])) as c:
        r = await c.get("/", headers={"origin": B})
        plain = await c.get("/")
    assert r.headers["access-control-allow-origin"] == "*"
    assert "vary" not in r.headers and "vary" not in plain.headers


def test_wildcard_with_credentials_is_refused_at_startup() -> None:
    # "*" with credentials would echo any origin with Allow-Credentials: every site could
    # read answers made with the user's cookies.
    with pytest.raises(ValueError, match=r"allow_origins=\['\*'\] with allow_credentials"):
        CORSMiddleware(text_app(), allow_origins=["*"], allow_credentials=True)
    with pytest.raises(ValueError, match="List the origins"):
        CORSMiddleware(text_app(), allow_origins=[A, "*"], allow_credentials=True)


async def test_regex_with_credentials_echoes_origin_never_star() -> None:
    async with client(cors(allow_origin_regex=r"https://[a-z]+\.example",
                           allow_credentials=True)) as c:
        r = await c.get("/", headers={"origin": B})
        null = await c.get("/", headers={"origin": "null"})
    assert r.headers["access-control-allow-origin"] == B
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in r.headers["vary"]
    assert "access-control-allow-origin" not in null.headers


async def test_null_origin_allowed_when_listed() -> None:
    async with client(cors(allow_origins=["null"], allow_credentials=True)) as c:
        r = await c.get("/", headers={"origin": "null"})
    assert r.headers["access-control-allow-origin"] == "null"


async def test_configured_origins_are_normalized() -> None:
    async with client(cors(allow_origins=["HTTPS://A.Example/"])) as c:
        r = await c.get("/", headers={"origin": A})
    assert r.headers["access-control-allow-origin"] == A


async def test_origin_regex_must_match_whole_origin() -> None:
    app = cors(allow_origin_regex=r"https://[a-z]+\.example\.org")
    async with client(app) as c:
        good = await c.get("/", headers={"origin": "https://api.example.org"})
        evil = await c.get("/", headers={"origin": "https://api.example.org.evil.com"})
    assert good.headers["access-control-allow-origin"] == "https://api.example.org"
    assert "access-control-allow-origin" not in evil.headers


async def test_middleware_owns_cors_headers_for_allowed_origins() -> None:
    app = CORSMiddleware(
        text_app("ok", headers=[("access-control-allow-origin", "*")]), allow_origins=[A]
    )
    async with client(app) as c:
        r = await c.get("/", headers={"origin": A})
    assert r.headers.get_list("access-control-allow-origin") == [A]


async def test_preflight_allowed_answers_without_calling_app() -> None:
    calls: list[Scope] = []
    app = cors(calls, allow_origins=[A], allow_methods=["GET", "PUT"],
               allow_headers=["X-Token"], allow_credentials=True, max_age=321)
    async with client(app) as c:
        r = await c.options("/", headers=preflight_headers(headers="x-token, content-type"))
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == A
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-allow-methods"] == "GET, PUT"
    assert r.headers["access-control-allow-headers"] == "x-token"
    assert r.headers["access-control-max-age"] == "321"
    assert "Access-Control-Request-Method" in r.headers["vary"]
    assert r.content == b""
    assert calls == []


async def test_preflight_star_methods_and_headers_echo_the_request() -> None:
    app = cors(allow_origins=[A], allow_methods=["*"], allow_headers=["*"],
               allow_credentials=True, max_age=None)
    async with client(app) as c:
        r = await c.options(
            "/", headers=preflight_headers(method="PATCH", headers="Authorization, X-Custom")
        )
    assert r.status_code == 204
    assert r.headers["access-control-allow-methods"] == "PATCH"
    # "*" would not cover Authorization in a browser: the names are echoed.
    assert r.headers["access-control-allow-headers"] == "authorization, x-custom"
    assert "access-control-max-age" not in r.headers


@pytest.mark.parametrize(
    ("options", "request_headers"),
    [
        ({"allow_origins": [A]}, preflight_headers(origin=B, method="GET")),
        ({"allow_origins": [A]}, preflight_headers(method="DELETE")),
        ({"allow_origins": [A], "allow_methods": ["PUT"]},
         preflight_headers(headers="x-not-allowed")),
        ({"allow_origins": [A, B], "allow_credentials": True},
         preflight_headers(origin="null", method="GET")),
    ],
    ids=["origin", "method", "header", "null-origin"],
)
async def test_refused_preflight_is_400_without_cors_headers_or_app(
    options: dict[str, object], request_headers: dict[str, str]
) -> None:
    calls: list[Scope] = []
    async with client(cors(calls, **options)) as c:
        r = await c.options("/", headers=request_headers)
    assert r.status_code == 400
    assert not [k for k in r.headers if k.startswith("access-control-")]
    assert calls == []


async def test_preflight_for_safelisted_request_header_needs_no_config() -> None:
    async with client(cors(allow_origins=[A], allow_methods=["POST"])) as c:
        r = await c.options(
            "/", headers=preflight_headers(method="POST", headers="Content-Type, Accept")
        )
    assert r.status_code == 204


async def test_options_without_request_method_is_an_actual_request() -> None:
    calls: list[Scope] = []
    async with client(cors(calls, allow_origins=[A])) as c:
        r = await c.options("/", headers={"origin": A})
    assert r.text == "ok" and len(calls) == 1
    assert r.headers["access-control-allow-origin"] == A


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
async def test_other_scopes_pass_through(kind: str) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.append(scope)

    await drive(CORSMiddleware(app, allow_origins=[A]),
                http_scope(kind=kind, headers=[(b"origin", B.encode())]))
    assert len(seen) == 1


def test_configuration_errors_teach() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        CORSMiddleware(text_app(), allow_origins=["https://a.example/path"])
    with pytest.raises(TypeError, match="list of origins"):
        CORSMiddleware(text_app(), allow_origins="https://a.example")
    with pytest.raises(ValueError, match="credentialed"):
        CORSMiddleware(text_app(), allow_origins=[A], allow_credentials=True,
                       expose_headers=["*"])
    with pytest.raises(ValueError, match="token"):
        CORSMiddleware(text_app(), allow_origins=[A], allow_headers=["bad header"])
