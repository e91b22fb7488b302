"""One route per security scheme, for the scheme tests under a real uvicorn."""

from __future__ import annotations

from typing import Annotated

import msgspec

from joey import App, RouteInfo
from joey.params.markers import Security
from joey.security import (
    AnyOf,
    APIKeyCookie,
    APIKeyCredentials,
    APIKeyHeader,
    APIKeyQuery,
    BasicCredentials,
    BearerCredentials,
    HTTPBasic,
    HTTPBearer,
    OAuth2PasswordBearer,
    OpenIDConnect,
    constant_time_compare,
    require_scopes,
)
from joey.security.jwt import JWTBearer, JWTCredentials

SECRET = "a-test-secret-that-is-long-enough-for-hs256"

bearer = HTTPBearer(realm="api")
token_prefix = HTTPBearer(prefix="Token", name="tokenAuth")
basic = HTTPBasic(realm="admin")
header_key = APIKeyHeader("X-API-Key")
query_key = APIKeyQuery("api_key")
cookie_key = APIKeyCookie("key")
oauth2 = OAuth2PasswordBearer("/token", scopes={"notes:write": "Write notes"})
oidc = OpenIDConnect("https://id.example.com/.well-known/openid-configuration")
jwt_auth = JWTBearer(SECRET, algorithms=["HS256"], audience="joey-tests",
                     issuer="https://id.example.com/", leeway=5)


class Note(msgspec.Struct):
    title: str


app = App()


@app.get("/bearer")
async def with_bearer(c: Annotated[BearerCredentials, Security(bearer)]) -> dict[str, str]:
    return {"scheme": c.scheme, "token": c.token}


@app.get("/token")
async def with_token(c: Annotated[BearerCredentials, Security(token_prefix)]) -> str:
    return c.token


@app.get("/basic")
async def with_basic(c: Annotated[BasicCredentials, Security(basic)]) -> list[str]:
    return [c.username, c.password]


@app.get("/keys")
async def with_keys(
    h: Annotated[APIKeyCredentials | None, Security(header_key)],
    q: Annotated[APIKeyCredentials | None, Security(query_key)],
    c: Annotated[APIKeyCredentials | None, Security(cookie_key)],
) -> list[str | None]:
    return [k.key if k else None for k in (h, q, c)]


@app.get("/header-key")
async def with_header_key(k: Annotated[APIKeyCredentials, Security(header_key)]) -> str:
    return k.key


async def writer(token: Annotated[BearerCredentials, Security(oauth2)], route: RouteInfo) -> str:
    granted = {"w": ["notes:write"], "r": []}.get(token.token)
    if granted is None:
        raise oauth2.invalid("Unknown token.")
    require_scopes(granted, route, oauth2)
    return token.token


@app.post("/notes", status_code=201)
async def add_note(note: Note,
                   who: Annotated[str, Security(writer, scopes=["notes:write"])]) -> list[str]:
    return [who, note.title]


@app.get("/oidc")
async def with_oidc(c: Annotated[BearerCredentials, Security(oidc)]) -> str:
    return c.token


@app.post("/jwt", status_code=201)
async def with_jwt(
    note: Note, c: Annotated[JWTCredentials, Security(jwt_auth, scopes=["notes:write"])],
) -> dict[str, object]:
    return {"sub": c.subject, "title": note.title, "scopes": sorted(c.scopes)}


# Checking credentials as the docs say: with constant_time_compare, whatever text a client sends.
ADMIN_PASSWORD = "s\u00e9same"
API_KEY = "k\u00e9y-1"


@app.get("/checked/basic")
async def checked_basic(c: Annotated[BasicCredentials, Security(basic)]) -> str:
    if not (constant_time_compare(c.username, "admin")
            and constant_time_compare(c.password, ADMIN_PASSWORD)):
        raise basic.invalid("Wrong user name or password.")
    return c.username


@app.get("/checked/keys")
async def checked_keys(
    h: Annotated[APIKeyCredentials | None, Security(header_key)],
    q: Annotated[APIKeyCredentials | None, Security(query_key)],
    c: Annotated[APIKeyCredentials | None, Security(cookie_key)],
) -> list[str]:
    given = [k for k in (h, q, c) if k is not None]
    if not given or not all(constant_time_compare(k.key, API_KEY) for k in given):
        raise header_key.invalid("Unknown API key.")
    return [k.location for k in given]


# Several prefixes for one scheme, and either of two schemes (issue 26).
either_word = HTTPBearer(prefix=("Bearer", "Token"), realm="api", name="eitherWord")
either = AnyOf(either_word, header_key)
either_jwt = AnyOf(jwt_auth, query_key)


@app.get("/either-word")
async def with_either_word(c: Annotated[BearerCredentials, Security(either_word)]) -> list[str]:
    return [c.scheme, c.token]


@app.get("/either")
async def with_either(
    c: Annotated[BearerCredentials | APIKeyCredentials, Security(either)],
) -> list[str]:
    if isinstance(c, BearerCredentials):
        return ["bearer", c.token]
    return ["key", c.key]


@app.get("/either/optional")
async def with_either_optional(
    c: Annotated[BearerCredentials | APIKeyCredentials | None, Security(either)],
) -> str:
    return "anonymous" if c is None else type(c).__name__


@app.get("/either/jwt")
async def with_either_jwt(
    c: Annotated[JWTCredentials | APIKeyCredentials, Security(either_jwt, scopes=["notes:read"])],
) -> str:
    return c.subject or "" if isinstance(c, JWTCredentials) else c.key


@app.get("/optional-bearer")
async def optional_bearer(c: Annotated[BearerCredentials | None, Security(bearer)]) -> str:
    return "anonymous" if c is None else c.token
