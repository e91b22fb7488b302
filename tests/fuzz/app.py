"""The app the fuzzer attacks: one route (or middleware) for every way Joey reads a request.

Importable as ``tests.fuzz.app:app`` for a real server. Three markers let the property tell
who answered (see :mod:`tests.fuzz.properties`):

* ``x-fuzz-handled``: the app's exception handler for ``HTTPError`` rendered the answer;
* ``x-fuzz-engine``: the answer came out of Joey's engine (the innermost ASGI middleware saw
  it), not from a middleware that refused the request on its own;
* ``x-fuzz-mount``: a mounted ASGI app answered (static files, the HTTPS redirect), which has
  no exception handlers of its own.

The handlers are correct user code: whatever they raise is Joey's doing.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import jwt
import msgspec
import pydantic
from msgspec import Meta

from joey import (
    App,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    EventSourceResponse,
    Form,
    Header,
    HTTPError,
    Middleware,
    ProblemResponse,
    Query,
    Request,
    Response,
    Router,
    StaticFiles,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from joey.middleware import (
    CompressionMiddleware,
    CORSMiddleware,
    HTTPSRedirectMiddleware,
    SessionMiddleware,
)
from joey.middleware.csrf import CSRFMiddleware, csrf_token
from joey.ratelimit import RateLimit
from joey.security import (
    APIKeyCookie,
    APIKeyCredentials,
    APIKeyHeader,
    APIKeyQuery,
    BasicCredentials,
    BearerCredentials,
    HTTPBasic,
    HTTPBearer,
    Security,
)
from joey.security.jwt import JWTBearer, JWTCredentials
from joey.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).resolve().parent / "static"
JWT_SECRET = "fuzz-secret-long-enough-for-hs256-xxxxxxxx"
CSRF_SECRET = "fuzz-csrf-secret"
#: Every prefix but /csrf/ is exempt from CSRF, so that fuzzed POSTs reach the parsers; the
#: /csrf/ routes are where the token is checked.
CSRF_EXEMPT = ["/p/", "/q", "/h", "/c", "/b/", "/f/", "/s/", "/r/", "/sse", "/ws",
               "/static/", "/redirect/", "/sub/", "/limited"]


# -- the types a request is read into ------------------------------------------------------

class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []
    extra: Any = None


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class User(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0)


class Login(msgspec.Struct):
    email: str
    password: Annotated[str, Meta(min_length=1)]


class Profile(msgspec.Struct):
    name: str
    age: int = 0
    tags: list[str] = []


# -- markers: who answered -------------------------------------------------------------------

def tag(name: bytes, value: bytes, inner: ASGIApp) -> ASGIApp:
    """``inner``, whose HTTP answers carry the header ``name: value``."""

    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return

        async def marking(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (name, value)]}
            await send(message)

        await inner(scope, receive, marking)

    return tagged


class EngineMarker:
    """The innermost ASGI middleware: answers that pass it came out of Joey's engine. It also
    notes, in the ``fuzz.body`` extension (a list the driver gives), every body message the
    app was handed, so the driver can tell whether a body was passed on as complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.marked = tag(b"x-fuzz-engine", b"1", app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = (scope.get("extensions") or {}).get("fuzz.body")
        if seen is None:
            await self.marked(scope, receive, send)
            return

        async def noting() -> Message:
            message = await receive()
            seen.append(message)
            return message

        await self.marked(scope, noting, send)


# -- the app ----------------------------------------------------------------------------------

async def api_user(x_user: Annotated[str, Header()] = "anonymous") -> str:
    return x_user


per_user = RateLimit(1_000_000, 60, key=Security(api_user), name="fuzz-user")
per_client = RateLimit(1_000_000, 60, name="fuzz-client", policy="token_bucket")

bearer = HTTPBearer()
basic = HTTPBasic(realm="fuzz")
header_key = APIKeyHeader("x-api-key")
query_key = APIKeyQuery("api_key")
cookie_key = APIKeyCookie("key")
jwt_auth = JWTBearer(JWT_SECRET, algorithms=["HS256"], audience="fuzz", leeway=5)

app = App(
    dependencies=[Security(per_client)],  # the default body limit: 1 MiB
    asgi_middleware=[
        Middleware(CORSMiddleware, allow_origins=["https://app.example"],
                   allow_origin_regex=r"https://[a-z]+\.example", allow_credentials=True,
                   allow_headers=["x-api-key", "authorization"], expose_headers=["x-fuzz"]),
        Middleware(CompressionMiddleware, minimum_size=16),
        Middleware(CSRFMiddleware, secret=CSRF_SECRET, exempt=CSRF_EXEMPT),
        Middleware(SessionMiddleware, secret_key="fuzz-session-secret"),
        Middleware(EngineMarker),
    ],
)


@app.exception_handler(HTTPError)
async def handled(request: Request, exc: HTTPError) -> Response:
    """Renders every HTTPError as Joey would, and says that it did."""
    response = ProblemResponse.from_error(exc)
    response.headers["x-fuzz-handled"] = type(exc).__name__
    return response


@app.middleware
async def handler_middleware(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers["x-fuzz"] = "1"
    return response


# Path converters, and a str segment an annotation converts
@app.get("/p/int/{v:int}")
async def path_int(v: int) -> int:
    return v


@app.get("/p/float/{v:float}")
async def path_float(v: float) -> float:
    return v


@app.get("/p/uuid/{v:uuid}")
async def path_uuid(v: uuid.UUID) -> str:
    return str(v)


@app.get("/p/path/{v:path}")
async def path_path(v: str) -> str:
    return v


@app.get("/p/str/{v}/tail")
async def path_str(v: int, request: Request) -> dict[str, Any]:
    return {"v": v, "url": request.url_path_for("path_str", v=v)}


# Query values of every supported type
@app.get("/q")
async def query(
    q: str,
    limit: Annotated[int, Meta(ge=1, le=100)] = 10,
    ratio: float = 0.5,
    exact: bool = False,
    lang: str | None = None,
    tags: list[str] = [],  # noqa: B006 - never mutated
    ids: list[int] = [],  # noqa: B006
    color: Color = Color.RED,
    order: Literal["asc", "desc"] = "asc",
    key: uuid.UUID | None = None,
    day: datetime.date | None = None,
    at: datetime.datetime | None = None,
    page_size: Annotated[int, Query("page-size")] = 20,
) -> dict[str, Any]:
    return {"q": q, "limit": limit, "tags": tags, "ids": ids, "color": color.value}


@app.get("/q/raw")
async def query_raw(request: Request) -> dict[str, Any]:
    return {"query": request.query_params.to_dict(), "same": request.query_params.multi_items()}


# Headers and cookies
@app.get("/h")
async def headers(
    request: Request,
    token: Annotated[str, Header("x-token")],
    user_agent: Annotated[str | None, Header()] = None,
    forwarded: Annotated[list[str], Header("x-forwarded-for")] = [],  # noqa: B006
    count: Annotated[int, Header("x-count")] = 0,
    flag: Annotated[bool, Header("x-flag")] = False,
    day: Annotated[datetime.date | None, Header("x-day")] = None,
) -> dict[str, Any]:
    return {"token": token, "all": list(request.headers.items()),
            "hosts": request.headers.getlist("host")}


@app.get("/c")
async def cookies(
    request: Request,
    session_id: Annotated[str | None, Cookie("sid")] = None,
    visits: Annotated[int, Cookie("n")] = 0,
    key: Annotated[uuid.UUID | None, Cookie("k")] = None,
) -> dict[str, Any]:
    return {"cookies": request.cookies, "visits": visits}


# Typed JSON bodies, whole and embedded
@app.post("/b/struct")
async def body_struct(item: Item) -> Item:
    return item


@app.post("/b/dataclass")
async def body_dataclass(point: Point) -> Point:
    return point


@app.post("/b/typeddict")
async def body_typeddict(movie: Movie) -> Movie:
    return movie


@app.post("/b/pydantic")
async def body_pydantic(user: User) -> User:
    return user


@app.post("/b/union")
async def body_union(value: Annotated[Item | list[Item], Body()]) -> int:
    return 1 if isinstance(value, Item) else len(value)


@app.post("/b/list")
async def body_list(items: list[Item]) -> int:
    return len(items)


@app.post("/b/points")
async def body_points(points: list[Point]) -> int:
    return len(points)


@app.post("/b/dict")
async def body_dict(body: dict[str, Any]) -> int:
    return len(body)


@app.post("/b/ints")
async def body_ints(values: Annotated[list[int], Body()]) -> int:
    return sum(values)


@app.post("/b/optional")
async def body_optional(item: Item | None = None) -> bool:
    return item is not None


@app.post("/b/embedded")
async def body_embedded(
    user: Annotated[Login, Body(embed=True)],
    movie: Annotated[Movie | None, Body(embed=True)] = None,
    remember: Annotated[bool, Body(embed=True)] = False,
) -> str:
    return user.email


@app.post("/b/embedded-pydantic")
async def body_embedded_pydantic(user: Annotated[User, Body(embed=True)]) -> str:
    return user.name


@app.post("/b/text")
async def body_text(text: Annotated[str, Body()]) -> str:
    return text


@app.post("/b/bytes", max_body_size=1024)
async def body_bytes(data: bytes) -> int:
    return len(data)


@app.post("/b/decoder")
async def body_decoder(value: Annotated[int, Body(decoder=lambda raw: int(raw))]) -> int:
    return value


@app.post("/b/json")
async def body_json(request: Request) -> str:
    return type(await request.json()).__name__


@app.post("/b/stream", max_body_size=None)
async def body_stream(request: Request) -> int:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return size


# Forms and multipart
@app.post("/f/fields")
async def form_fields(
    name: Annotated[str, Form()],
    age: Annotated[int, Form()] = 0,
    tags: Annotated[list[str], Form()] = [],  # noqa: B006
) -> dict[str, Any]:
    return {"name": name, "age": age, "tags": tags}


@app.post("/f/whole")
async def form_whole(profile: Annotated[Profile, Form()]) -> Profile:
    return profile


@app.post("/f/file")
async def form_file(upload: UploadFile, note: Annotated[str, Form()] = "") -> dict[str, Any]:
    head = await upload.read(16)
    return {"name": upload.filename, "size": upload.size, "head": head.hex()}


@app.post("/f/raw")
async def form_raw(request: Request) -> list[list[str]]:
    form = await request.form()
    return [[k, v if isinstance(v, str) else f"file:{v.filename}"]
            for k, v in form.multi_items()]


# Security schemes, optional credentials, rate limits keyed by a dependency
@app.get("/s/bearer")
async def sec_bearer(c: Annotated[BearerCredentials, Security(bearer)]) -> str:
    return c.token


@app.get("/s/basic")
async def sec_basic(c: Annotated[BasicCredentials, Security(basic)]) -> list[str]:
    return [c.username, c.password]


@app.get("/s/keys")
async def sec_keys(
    h: Annotated[APIKeyCredentials | None, Security(header_key)],
    q: Annotated[APIKeyCredentials | None, Security(query_key)],
    c: Annotated[APIKeyCredentials | None, Security(cookie_key)],
) -> list[str | None]:
    return [k.key if k else None for k in (h, q, c)]


@app.get("/s/optional")
async def sec_optional(c: Annotated[BearerCredentials | None, Security(bearer)]) -> str:
    return "anonymous" if c is None else "signed in"


@app.post("/s/jwt")
async def sec_jwt(item: Item,
                  c: Annotated[JWTCredentials, Security(jwt_auth, scopes=["write"])]) -> str:
    return c.subject or ""


@app.get("/limited", dependencies=[Security(per_user)])
async def limited() -> str:
    return "ok"


def issue_jwt(**claims: Any) -> str:
    """A token ``jwt_auth`` accepts (the strategies send some, so the route is reached)."""
    return jwt.encode({"sub": "ann", "aud": "fuzz", "exp": int(time.time()) + 3600,
                       "scope": "write", **claims}, JWT_SECRET, algorithm="HS256")


def csrf_tokens() -> list[str]:
    """Tokens the CSRF middleware accepts (the strategies send them, so the check passes and
    the body is read)."""
    signer = CSRFMiddleware(app, secret=CSRF_SECRET)
    return [signer.new_token() for _ in range(2)]


# Sessions, CSRF, the URL, dependencies, background work, SSE
@app.get("/r/session")
async def read_session(request: Request) -> dict[str, Any]:
    visits = request.session.get("visits", 0)
    request.session["visits"] = visits + 1 if isinstance(visits, int) else 1
    return dict(request.session)


@app.get("/r/url")
async def read_url(request: Request) -> Response:
    url = request.url
    return Response(str(url), headers={"x-fuzz-url": f"{url.scheme}://{url.netloc}"})


def db() -> Iterator[str]:
    yield "db"


async def counter(request: Request, db: Annotated[str, Depends(db)]) -> AsyncIterator[int]:
    yield len(request.headers)


@app.get("/r/deps")
async def deps(n: Annotated[int, Depends(counter)], tasks: BackgroundTasks,
               request: Request) -> dict[str, Any]:
    tasks.add_task(lambda: None)
    return {"n": n, "client": str(request.client), "text": await request.text()}


@app.get("/csrf/form")
async def csrf_form(request: Request) -> dict[str, str]:
    return {"token": csrf_token(request)}


@app.post("/csrf/form")
async def csrf_post(name: Annotated[str, Form()] = "") -> str:
    return name


@app.post("/csrf/json")
async def csrf_json(item: Item) -> str:
    return item.name


@app.get("/sse")
async def sse(request: Request, n: Annotated[int, Meta(ge=0, le=5)] = 2) -> EventSourceResponse:
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isascii() and last.isdigit() and len(last) < 10 else 0

    async def events() -> AsyncIterator[dict[str, Any]]:
        for seq in range(start, start + n):
            yield {"data": {"seq": seq, "q": request.query_params.get("q")}, "id": str(seq)}

    return EventSourceResponse(events(), ping_interval=None)


@app.websocket("/ws/{room:int}")
async def ws(websocket: WebSocket, room: int, nick: str = "anon",
             token: Annotated[str | None, Header("x-token")] = None,
             sid: Annotated[str | None, Cookie()] = None) -> None:
    await websocket.accept(subprotocol="chat" if "chat" in websocket.subprotocols else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None and message["text"].startswith("{"):
                # receive_json would take the next message: decode this one the same way
                await websocket.send_json({"room": room, "nick": nick})
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"][:64])
            else:
                await websocket.send_text(str(message.get("text"))[:64])
    except WebSocketDisconnect:
        return


@app.websocket("/ws/json")
async def ws_json(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        async for value in websocket.iter_json():
            await websocket.send_json({"type": type(value).__name__})
    except WebSocketDisconnect:
        return


# A router, and mounted apps (they answer on their own: tagged as mounts)
sub = Router(prefix="/sub", tags=["sub"])


@sub.put("/{name}/items/{id:int}")
async def sub_put(name: str, id: int, item: Item, x_request_id: Annotated[
        str | None, Header()] = None) -> dict[str, Any]:
    return {"name": name, "id": id}


app.include_router(sub)

redirected = App()


@redirected.get("/{rest:path}")
async def redirected_page(rest: str) -> str:
    return rest


app.mount("/static", tag(b"x-fuzz-mount", b"static", StaticFiles(STATIC, html=True)))
app.mount("/redirect", tag(b"x-fuzz-mount", b"redirect", HTTPSRedirectMiddleware(redirected)))
