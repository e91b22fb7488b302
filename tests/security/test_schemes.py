"""Every scheme's credentials, challenge and failure modes, under a real uvicorn (httptools
and h11) with a real HTTP client; the schemes in the route model."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from joey.security import AnyOf, constant_time_compare
from joey.testing import TestClient
from tests.integration.servers import Server, run_server, uvicorn_argv

from .schemes_app import SECRET, app, either, either_word, header_key, jwt_auth


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Server]:
    argv = uvicorn_argv("tests.security.schemes_app:app", "--http", request.param)
    with run_server(argv, tmp_path_factory.mktemp("schemes")) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http


def test_bearer(client: httpx.Client) -> None:
    ok = client.get("/bearer", headers={"authorization": "Bearer abc.DEF-123_~+/="})
    assert ok.json() == {"scheme": "Bearer", "token": "abc.DEF-123_~+/="}
    assert client.get("/bearer", headers={"authorization": "bearer x"}).json()["token"] == "x"
    missing = client.get("/bearer")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
    assert missing.headers["content-type"] == "application/problem+json"
    other = client.get("/bearer", headers={"authorization": "Basic eDp5"})
    assert other.headers["www-authenticate"] == 'Bearer realm="api"'
    empty = client.get("/bearer", headers={"authorization": "Bearer"})
    assert empty.status_code == 401
    assert 'error="invalid_request"' in empty.headers["www-authenticate"]
    bad = client.get("/bearer", headers={"authorization": "Bearer a,b"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="The token is malformed."')


def test_bearer_with_another_prefix(client: httpx.Client) -> None:
    assert client.get("/token", headers={"authorization": "Token t1"}).text == "t1"
    refused = client.get("/token", headers={"authorization": "Bearer t1"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Token"


def test_basic(client: httpx.Client) -> None:
    ok = client.get("/basic", auth=("ann", "pä:ss"))
    assert ok.json() == ["ann", "pä:ss"]
    missing = client.get("/basic")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="admin", charset="UTF-8"'
    for broken in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                   "Basic " + base64.b64encode(b"\xff:x").decode()):
        answer = client.get("/basic", headers={"authorization": broken})
        assert answer.status_code == 401, broken
        assert answer.headers["www-authenticate"] == 'Basic realm="admin", charset="UTF-8"'


def test_api_keys_in_header_query_and_cookie(client: httpx.Client) -> None:
    assert client.get("/keys").json() == [None, None, None]  # all optional here
    assert client.get("/keys?api_key=q1", headers={"x-api-key": "h1", "cookie": "key=c1"}
                      ).json() == ["h1", "q1", "c1"]
    missing = client.get("/header-key")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'APIKey name="X-API-Key", in="header"'
    assert client.get("/header-key", headers={"x-api-key": "k"}).text == "k"


# Header and cookie bytes arrive as latin-1 text, the query and Basic credentials as UTF-8:
# a client can make any of them non-ASCII.
NON_ASCII = ["\u00e9", "k\u00e9y-2", "s\u00e9same!", "\u00ff" * 64]


@pytest.mark.parametrize("bad", NON_ASCII)
def test_non_ascii_basic_credentials_are_a_401(client: httpx.Client, bad: str) -> None:
    assert client.get("/checked/basic", auth=("admin", "s\u00e9same")).text == "admin"
    for user, password in (("admin", bad), (bad, "s\u00e9same"), (bad, bad)):
        answer = client.get("/checked/basic", auth=(user, password))
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == 'Basic realm="admin", charset="UTF-8"'
    latin1 = base64.b64encode(b"admin:" + bad.encode("latin-1", "replace")).decode()
    answer = client.get("/checked/basic", headers={"authorization": f"Basic {latin1}"})
    assert answer.status_code == 401  # not UTF-8: malformed, or wrong


@pytest.mark.parametrize("raw", ["\u00e9".encode("latin-1"), "\u00e9".encode(),
                                 b"YWRtaW46eA\xff=="])
def test_basic_credentials_that_are_not_ascii_at_all_are_a_401(server: Server,
                                                               raw: bytes) -> None:
    # Found by tests/fuzz (atheris, target "credentials"): "Authorization: Basic \xe9" was a
    # 500, base64 refusing the text with a plain ValueError.
    head = (b"GET /basic HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic " + raw
            + b"\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert b"The Basic credentials are not Base64 of UTF-8 text." in answer
    assert b"Traceback" not in server.output.encode()


def test_basic_credentials_that_are_not_ascii_are_a_401_in_process() -> None:
    with TestClient(app) as http:
        for raw in (b"Basic \xe9", "Basic \u00e9".encode()):
            answer = http.get("/basic", headers={"authorization": raw})
            assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("bad", NON_ASCII)
def test_non_ascii_api_keys_are_a_401(client: httpx.Client, bad: str) -> None:
    key = "k\u00e9y-1"
    # headers and cookies are latin-1 on the wire (é is one byte), the query UTF-8
    assert client.get("/checked/keys", headers={"x-api-key": key.encode("latin-1")}
                      ).json() == ["header"]
    assert client.get("/checked/keys", headers={"cookie": b"key=" + key.encode("latin-1")}
                      ).json() == ["cookie"]
    assert client.get("/checked/keys", params={"api_key": key}).json() == ["query"]
    raw = bad.encode()  # UTF-8 bytes: non-ASCII once read as latin-1
    for answer in (client.get("/checked/keys", headers={"x-api-key": raw}),
                   client.get("/checked/keys", params={"api_key": bad}),
                   client.get("/checked/keys", headers={"cookie": b"key=" + raw})):
        assert answer.status_code == 401, answer.text
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]


@pytest.mark.parametrize("bad", NON_ASCII)
def test_non_ascii_bearer_tokens_are_a_401(client: httpx.Client, bad: str) -> None:
    authorization = {"authorization": b"Bearer " + bad.encode()}
    for answer in (client.get("/bearer", headers=authorization),
                   client.post("/jwt", json={"title": "t"}, headers=authorization)):
        assert answer.status_code == 401, answer.text
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_constant_time_compare_takes_any_text() -> None:
    assert constant_time_compare("s\u00e9same", "s\u00e9same")
    assert constant_time_compare(b"key", "key") and constant_time_compare("key", b"key")
    assert not constant_time_compare("s\u00e9same", "sesame")
    assert not constant_time_compare("\u00e9", b"\xe9")  # text is UTF-8, not latin-1
    assert constant_time_compare("x\udcff", "x\udcff")  # even a lone surrogate
    assert not constant_time_compare("x\udcff", "x\udcfe")
    assert not constant_time_compare("", "\u00e9")


def test_oauth2_scopes_and_order_of_evaluation(client: httpx.Client) -> None:
    bad_body = {"title": 3}
    anonymous = client.post("/notes", json=bad_body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/notes", json=bad_body, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    reader = client.post("/notes", json=bad_body, headers={"authorization": "Bearer r"})
    assert reader.status_code == 403
    assert reader.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="notes:write"')
    invalid = client.post("/notes", json=bad_body, headers={"authorization": "Bearer w"})
    assert invalid.status_code == 422
    assert [(e["location"], e["type"]) for e in invalid.json()["errors"]] == [
        (["body", "title"], "type")]
    ok = client.post("/notes", json={"title": "t"}, headers={"authorization": "Bearer w"})
    assert (ok.status_code, ok.json()) == (201, ["w", "t"])


def test_openid_connect(client: httpx.Client) -> None:
    assert client.get("/oidc", headers={"authorization": "Bearer id"}).text == "id"
    assert client.get("/oidc").status_code == 401


def token(**claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {"sub": "ann", "aud": "joey-tests",
                               "iss": "https://id.example.com/", "exp": now + 60,
                               "scope": "notes:write notes:read", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET,
                      algorithm="HS256")


def test_jwt(client: httpx.Client) -> None:
    def post(value: str, body: object = None) -> httpx.Response:
        return client.post("/jwt", json=body if body is not None else {"title": "t"},
                           headers={"authorization": f"Bearer {value}"})

    ok = post(token())
    assert ok.status_code == 201
    assert ok.json() == {"sub": "ann", "title": "t", "scopes": ["notes:read", "notes:write"]}
    assert post(token(scope=None, scp=["notes:write"])).status_code == 201
    assert post(token(exp=int(time.time()) - 3)).status_code == 201  # within the leeway
    expired = post(token(exp=int(time.time()) - 60), {"title": 3})
    assert expired.status_code == 401
    assert 'error_description="The token has expired."' in expired.headers["www-authenticate"]
    for bad in (token(aud="other"), token(iss="https://evil.example/"), token(exp=None),
                jwt.encode({"sub": "x"}, "another-secret-that-is-long-enough-32", "HS256"),
                jwt.encode({"sub": "x", "exp": time.time() + 60}, None, "none")):
        answer = post(bad, {"title": 3})
        assert answer.status_code == 401, bad
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    no_scope = post(token(scope="notes:read"), {"title": 3})
    assert no_scope.status_code == 403
    assert 'scope="notes:write"' in no_scope.headers["www-authenticate"]
    assert post(token(), {"title": 3}).status_code == 422
    assert client.post("/jwt", json={"title": 3}).status_code == 401


def deep_jwt(depth: int) -> str:
    """A token whose header is JSON nested ``depth`` deep: decoded before any signature check,
    so anyone can send it."""
    header = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).rstrip(b"=").decode()
    return f"Bearer {header}.e30.c2ln"


def test_jwt_with_a_deeply_nested_header_is_a_401(client: httpx.Client) -> None:
    # 1,000 levels: a 2.7 kB header every server accepts (larger ones: in memory, below)
    answer = client.post("/jwt", json={"title": "t"}, headers={"authorization": deep_jwt(1_000)})
    assert answer.status_code == 401, answer.text
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
def test_jwt_with_a_deeply_nested_header_is_a_401_at_any_depth(depth: int) -> None:
    with TestClient(app) as local:
        answer = local.post("/jwt", json={"title": "t"},
                            headers={"authorization": deep_jwt(depth)})
    assert answer.status_code == 401, answer.text
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_jwt_configuration_is_explicit() -> None:
    from joey.security.jwt import JWTBearer

    with pytest.raises(ValueError, match="needs the algorithms"):
        JWTBearer(SECRET, algorithms=[])
    with pytest.raises(ValueError, match="refuses the 'none' algorithm"):
        JWTBearer(SECRET, algorithms=["none"])


def test_schemes_in_the_route_model(tmp_path: Path) -> None:
    routes = {route.path: route for route in app.routes}
    (bearer,) = routes["/bearer"].security
    assert bearer.scheme.scheme_name == "bearerAuth"
    assert bearer.scheme.openapi() == {"type": "http", "scheme": "bearer"}
    assert bearer.scopes == ()
    (oauth,) = routes["/notes"].security
    assert oauth.scopes == ("notes:write",)
    assert routes["/notes"].scopes == ("notes:write",)
    assert oauth.scheme.openapi() == {"type": "oauth2", "flows": {"password": {
        "tokenUrl": "/token", "scopes": {"notes:write": "Write notes"}}}}
    assert [r.scheme.openapi() for r in routes["/keys"].security] == [
        {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        {"type": "apiKey", "in": "query", "name": "api_key"},
        {"type": "apiKey", "in": "cookie", "name": "key"}]
    assert routes["/token"].security[0].scheme.openapi() == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "Token <token>"}
    assert routes["/basic"].security[0].scheme.openapi() == {"type": "http",
                                                             "scheme": "basic"}
    assert routes["/oidc"].security[0].scheme.openapi() == {
        "type": "openIdConnect",
        "openIdConnectUrl": "https://id.example.com/.well-known/openid-configuration"}
    (jwt_requirement,) = routes["/jwt"].security
    assert jwt_requirement.scheme is jwt_auth
    assert jwt_requirement.scheme.openapi() == {"type": "http", "scheme": "bearer",
                                                "bearerFormat": "JWT"}
    assert repr(jwt_auth) == "<JWTBearer 'bearerAuth'>"


def test_one_bearer_scheme_with_several_prefixes(client: httpx.Client) -> None:
    assert client.get("/either-word", headers={"authorization": "Bearer b1"}).json() == [
        "Bearer", "b1"]
    assert client.get("/either-word", headers={"authorization": "token t1"}).json() == [
        "Token", "t1"]
    missing = client.get("/either-word", headers={"authorization": "Basic eDp5"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="api", Token realm="api"'
    malformed = client.get("/either-word", headers={"authorization": "Token a,b"})
    assert malformed.status_code == 401
    assert malformed.headers["www-authenticate"].startswith(
        'Token realm="api", error="invalid_token"')


def test_either_of_two_schemes(client: httpx.Client) -> None:
    assert client.get("/either", headers={"authorization": "Bearer b1"}).json() == [
        "bearer", "b1"]
    assert client.get("/either", headers={"x-api-key": "k1"}).json() == ["key", "k1"]
    # both sent: the first scheme of AnyOf wins
    assert client.get("/either", headers={"authorization": "Token t1", "x-api-key": "k1"}
                      ).json() == ["bearer", "t1"]
    neither = client.get("/either")
    assert neither.status_code == 401
    assert neither.headers["www-authenticate"] == (
        'Bearer realm="api", Token realm="api", APIKey name="X-API-Key", in="header"')
    assert "X-API-Key" in neither.json()["detail"]
    # credentials that are there but malformed are that scheme's 401, not "try the next"
    malformed = client.get("/either", headers={"authorization": "Bearer a,b", "x-api-key": "k"})
    assert malformed.status_code == 401
    assert 'error="invalid_token"' in malformed.headers["www-authenticate"]
    assert client.get("/either/optional").text == "anonymous"
    assert client.get("/either/optional", headers={"x-api-key": "k"}).text == (
        "APIKeyCredentials")
    assert client.get("/either/jwt", headers={"authorization": f"Bearer {token()}"}).text == (
        "ann")
    assert client.get("/either/jwt?api_key=q1").text == "q1"
    no_scope = client.get("/either/jwt", headers={"authorization": f"Bearer {token(scope='x')}"})
    assert no_scope.status_code == 403


def test_an_optional_route_treats_another_schemes_header_as_no_credentials(
        client: httpx.Client) -> None:
    # The decision (docs/security.md, "Optional authentication"): anonymous, as FastAPI's
    # auto_error=False and RFC 9110 §11.6.2 read it; malformed credentials of its own scheme
    # are still a 401.
    assert client.get("/optional-bearer", headers={"authorization": "Basic eDp5"}).text == (
        "anonymous")
    assert client.get("/optional-bearer", headers={"authorization": "Bearer t"}).text == "t"
    assert client.get("/optional-bearer", headers={"authorization": "Bearer a,b"}
                      ).status_code == 401


def test_either_in_the_route_model() -> None:
    routes = {route.path: route for route in app.routes}
    (requirement,) = routes["/either"].security
    assert requirement.scheme is either and requirement.alternatives == (either_word, header_key)
    assert not requirement.optional
    assert routes["/either/optional"].security[0].optional
    assert either.scheme_name == "eitherWord | apiKeyHeader"
    assert either_word.openapi() == {
        "type": "http", "scheme": "bearer",
        "description": "Also accepted: `Authorization: Token <token>`."}


def test_bearer_prefixes_must_be_words() -> None:
    from joey.security import HTTPBearer

    for bad in ((), ("Bearer", "Two words"), ("",)):
        with pytest.raises(ValueError, match="one or more prefixes"):
            HTTPBearer(prefix=bad)
    with pytest.raises(ValueError, match="two schemes or more"):
        AnyOf(HTTPBearer())


def test_describe_is_deprecated_for_openapi() -> None:
    from joey.security import HTTPBasic, SecurityScheme

    basic = HTTPBasic(description="Staff.")
    with pytest.warns(DeprecationWarning, match=r"describe\(\) is deprecated: call openapi"):
        assert basic.describe() == basic.openapi()

    class Legacy(SecurityScheme):  # a scheme written for the old hook keeps working
        def describe(self) -> dict[str, object]:
            return {"type": "apiKey", "in": "header", "name": "X-Legacy"}

    with pytest.warns(DeprecationWarning, match="override openapi"):
        assert Legacy(description="Old.").openapi() == {
            "type": "apiKey", "in": "header", "name": "X-Legacy", "description": "Old."}
