"""JWTBearer issues tokens, verifies tokens from anywhere (a browser WebSocket's query
string), takes its key from a value, a function or a dependency, and answers 401 (never a
500) for any token that fails, whatever its bytes."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from joey import App, Depends, Unauthorized, WebSocket
from joey.exceptions import Forbidden
from joey.security import Security
from joey.security.jwt import JWTBearer, JWTCredentials
from joey.testing import TestClient, WebSocketDenied

from ..asgi import close_test_clients  # noqa: F401 - autouse fixture

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
OTHER = "another-secret-that-is-long-enough-for-hs256"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
RSA_PRIVATE = RSA_KEY.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()


def app_with(auth: JWTBearer) -> App:
    app = App()

    @app.get("/me")
    async def me(token: Annotated[JWTCredentials, Security(auth)]) -> dict[str, Any]:
        return dict(token.claims)

    @app.get("/maybe")
    async def maybe(token: Annotated[JWTCredentials | None, Security(auth)]) -> str:
        return token.subject or "" if token else "anonymous"

    return app


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_issue_sets_exp_iat_issuer_audience_and_signs_with_the_first_algorithm() -> None:
    auth = JWTBearer(SECRET, algorithms=["HS256", "HS512"], audience="api",
                     issuer="https://id.example.com/")
    before = int(time.time())
    token = auth.issue({"sub": "ann", "scope": "a b"}, expires_in=datetime.timedelta(minutes=5))
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="api")
    assert claims["sub"] == "ann" and claims["aud"] == "api"
    assert claims["iss"] == "https://id.example.com/"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 300
    verified = auth.verify(token)
    assert verified.subject == "ann" and verified.scopes == {"a", "b"}
    # the caller's own aud/iss win over the scheme's defaults
    other = auth.issue({"aud": "elsewhere"}, expires_in=60)
    assert jwt.decode(other, SECRET, algorithms=["HS256"], audience="elsewhere")["aud"] == (
        "elsewhere")
    with pytest.raises(ValueError, match="expires_in > 0"):
        auth.issue({}, expires_in=0)
    with TestClient(app_with(auth)) as client:
        assert client.get("/me", headers=bearer(token)).json()["sub"] == "ann"


def test_an_asymmetric_scheme_issues_with_its_signing_key() -> None:
    auth = JWTBearer(RSA_PUBLIC, algorithms=["RS256"], signing_key=RSA_PRIVATE)
    token = auth.issue({"sub": "ann"}, expires_in=60)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert auth.verify(token).subject == "ann"


def test_verify_refuses_every_bad_token_with_a_401() -> None:
    auth = JWTBearer(SECRET, algorithms=["HS256"], audience="api")
    now = int(time.time())
    expired = jwt.encode({"sub": "a", "aud": "api", "exp": now - 60}, SECRET, "HS256")
    wrong_key = jwt.encode({"sub": "a", "aud": "api", "exp": now + 60}, OTHER, "HS256")
    wrong_alg = jwt.encode({"sub": "a", "aud": "api", "exp": now + 60}, RSA_KEY, "RS256")
    for token, said in ((expired, "expired"), (wrong_key, "Signature"),
                        (wrong_alg, "alg"), ("garbage", "not valid"), ("", "not valid"),
                        ("a.b.c", "not valid"), ("é.é.é", "not valid")):
        with pytest.raises(Unauthorized, match=said) as refused:
            auth.verify(token)
        assert refused.value.status_code == 401
        assert 'error="invalid_token"' in refused.value.headers["www-authenticate"]
    with pytest.raises(Forbidden):
        auth.verify(auth.issue({"scope": "read"}, expires_in=60), scopes=["write"])


def signed(header: bytes, payload: bytes, secret: str) -> str:
    """A token of these exact JSON bytes, HS256-signed with ``secret`` (PyJWT cannot encode
    JSON nested deeper than Python's recursion limit)."""
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(header) + b"." + b64(payload)
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_verify_refuses_json_nested_too_deeply_with_a_401(depth: int) -> None:
    # The header is decoded before the signature is checked (anyone can send it); the payload
    # after (only a key holder can): either, too deep for the json module, is a bad token.
    auth = JWTBearer(SECRET, algorithms=["HS256"])
    deep = b"[" * depth + b"]" * depth
    header = b'{"alg":"HS256","typ":"JWT"}'
    payload = b'{"exp":%d,"scope":%s}' % (int(time.time()) + 60, deep)
    for token in (signed(deep, b"{}", SECRET), signed(header, payload, SECRET)):
        with pytest.raises(Unauthorized, match="not valid") as refused:
            auth.verify(token)
        assert 'error="invalid_token"' in refused.value.headers["www-authenticate"]
    with TestClient(app_with(auth), raise_server_exceptions=False) as client:
        answer = client.get("/me", headers=bearer(signed(header, payload, SECRET)))
        assert answer.status_code == 401, answer.text


def test_a_token_whose_algorithm_does_not_fit_the_key_is_a_401_not_a_500() -> None:
    # The scheme accepts RS256 and ES256 with an RSA key, and HS256 with ... an RSA key (PyJWT
    # raises InvalidKeyError, not an InvalidTokenError): the token picks the algorithm.
    auth = JWTBearer(RSA_PUBLIC, algorithms=["RS256", "ES256", "HS256"])
    now = int(time.time())
    hs = jwt.encode({"exp": now + 60}, SECRET, "HS256")
    es = jwt.encode({"exp": now + 60}, ec.generate_private_key(ec.SECP256R1()), "ES256")
    with TestClient(app_with(auth), raise_server_exceptions=False) as client:
        for token in (hs, es):
            answer = client.get("/me", headers=bearer(token))
            assert answer.status_code == 401, answer.text
            assert "does not fit the key" in answer.headers["www-authenticate"]
            assert client.get("/maybe", headers=bearer(token)).status_code == 401


def test_a_key_that_fits_no_algorithm_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="the key fits none of the algorithms"):
        JWTBearer(RSA_PUBLIC, algorithms=["HS256"])
    with pytest.raises(ValueError, match="unknown algorithm 'HS257'"):
        JWTBearer(SECRET, algorithms=["HS257"])


def test_an_async_key_function_is_refused_with_the_fix() -> None:
    async def secret() -> str:  # pragma: no cover - refused before it is called
        return SECRET

    with pytest.raises(TypeError, match=r"use key=Depends\(fn\)"):
        JWTBearer(secret, algorithms=["HS256"])


def test_a_key_function_is_called_for_every_token() -> None:
    settings = {"jwt_secret": SECRET}
    auth = JWTBearer(lambda: settings["jwt_secret"], algorithms=["HS256"])
    old = auth.issue({"sub": "ann"}, expires_in=60)
    with TestClient(app_with(auth)) as client:
        assert client.get("/me", headers=bearer(old)).status_code == 200
        settings["jwt_secret"] = OTHER  # what a test's settings override does
        assert client.get("/me", headers=bearer(old)).status_code == 401
        new = auth.issue({"sub": "bob"}, expires_in=60)
        assert client.get("/me", headers=bearer(new)).json()["sub"] == "bob"


class Settings:
    jwt_secret = SECRET


def get_settings() -> Settings:
    return Settings()


def jwt_secret(settings: Annotated[Settings, Depends(get_settings)]) -> str:
    return settings.jwt_secret


def test_a_key_dependency_is_resolved_per_request_and_overrides_reach_it() -> None:
    auth = JWTBearer(Depends(jwt_secret), algorithms=["HS256"])
    app = app_with(auth)
    token = auth.issue({"sub": "ann"}, expires_in=60, key=SECRET)
    with TestClient(app) as client:
        assert client.get("/me", headers=bearer(token)).json()["sub"] == "ann"
        assert client.get("/maybe").text == "anonymous"

    class TestSettings(Settings):
        jwt_secret = OTHER

    app.dependency_overrides[get_settings] = TestSettings
    try:
        with TestClient(app) as client:
            assert client.get("/me", headers=bearer(token)).status_code == 401
            ours = auth.issue({"sub": "bob"}, expires_in=60, key=OTHER)
            assert client.get("/me", headers=bearer(ours)).json()["sub"] == "bob"
    finally:
        app.dependency_overrides.clear()
    # outside a request the dependency cannot be resolved: the error says what to pass
    with pytest.raises(TypeError, match="pass key="):
        auth.verify(token)
    with pytest.raises(TypeError, match="pass key="):
        auth.issue({}, expires_in=60)
    assert auth.verify(token, key=SECRET).subject == "ann"


def test_a_browser_websocket_authenticates_with_a_token_in_its_query_string() -> None:
    auth = JWTBearer(SECRET, algorithms=["HS256"])
    app = App()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, token: str) -> None:
        user = auth.verify(token)  # a 401 refuses the handshake
        await websocket.accept()
        await websocket.send_text(f"hello {user.subject}")
        await websocket.close()

    with TestClient(app) as client:
        good = auth.issue({"sub": "ann"}, expires_in=60)
        with client.websocket_connect(f"/ws?token={good}") as socket:
            assert socket.receive_text() == "hello ann"
        for bad in ("garbage", jwt.encode({"exp": int(time.time()) - 60}, SECRET, "HS256")):
            with pytest.raises(WebSocketDenied) as denied, \
                    client.websocket_connect(f"/ws?token={bad}"):
                pass  # pragma: no cover - refused
            assert denied.value.status_code == 401
