"""An app with a route per kind of extractor and error source, and for each route the
requests that make it answer each of its errors (issue #24: one reading of every fact).

``CASES`` says, per route, a request it serves and, for every error status it can answer, a
request that gets it. ``BATTERY`` is the same hostile requests for every route (bad JSON,
wrong media types, bodies over the limit, a form over its field limit, an unknown charset,
a multipart body without a boundary, malformed credentials, junk query values, headers and
cookies, a rate limit backend that is down): whatever a route answers to them must be one
of its errors. Used by tests/test_routeinfo.py (the route model) and test_document.py (the
API document).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from joey import (
    App,
    BackgroundTasks,
    Body,
    Conflict,
    Cookie,
    Depends,
    Form,
    Header,
    Query,
    Request,
    RouteInfo,
    UploadFile,
)
from joey.channels import Channels
from joey.datastructures import QueryParams
from joey.ratelimit import Decision, InMemoryRateLimits, Policy, RateLimit
from joey.requests import HTTPConnection
from joey.security import BearerCredentials, HTTPBearer, Security, require_scopes
from joey.testing import TestClient

MiB = 1024 * 1024
JSON = {"content-type": "application/json"}
URLENCODED = {"content-type": "application/x-www-form-urlencoded"}

#: one request: (method, path, httpx options)
Probe = tuple[str, str, dict[str, Any]]


@dataclasses.dataclass
class Case:
    """A route (by its path template), a request it serves, and per error status the
    requests that get it (several when the status needs a history: a rate limit)."""

    template: str
    method: str
    path: str
    ok: dict[str, Any]
    triggers: dict[int, list[Probe]]


class Note(msgspec.Struct):
    title: str


class Signup(msgspec.Struct):
    email: str
    newsletter: bool = False


def ids(query: QueryParams) -> list[int]:
    return [int(part) for part in query.get("ids", "").split(",") if part]


def ascii_text(body: bytes) -> str:
    return body.decode("ascii")


def client_key(connection: HTTPConnection) -> str:
    return connection.headers.get("x-client", "anon")


class FlakyRateLimits:
    """Counts in memory, with one frozen clock (no window ever ends during a test), and is
    down for the client named ``down``, as Redis would be."""

    def __init__(self) -> None:
        self.counts = InMemoryRateLimits(clock=lambda: 1000.0)

    async def hit(self, key: str, limit: int, window: float, policy: Policy) -> Decision:
        if key.endswith(":down"):
            raise ConnectionError("the rate limit backend is down")
        return await self.counts.hit(key, limit, window, policy)


GRANTS = {"admin-token": ["read", "admin"], "reader-token": ["read"]}


def build() -> App:
    app = App()
    bearer = HTTPBearer(name="token")
    lenient = RateLimit(1, 60, backend=FlakyRateLimits(), key=client_key, name="lenient",
                        fail_open=True)
    strict = RateLimit(1, 60, backend=FlakyRateLimits(), key=client_key, name="strict",
                       fail_open=False)

    async def count_header(x_token: Annotated[int, Header()]) -> int:
        return x_token

    async def reader(token: Annotated[BearerCredentials, Security(bearer)],
                     route: RouteInfo) -> str:
        require_scopes(GRANTS.get(token.token, ()), route, bearer)
        return token.token

    async def staff_only(route: RouteInfo, x_staff: Annotated[str, Header()] = "") -> None:
        require_scopes(x_staff.split(), route)

    # -- query, header, cookie, injected values ---------------------------------------------

    @app.get("/plain")
    async def plain(q: str | None = None, tags: list[str] | None = None,
                    word: Annotated[str | None, Meta(description="any word")] = None) -> str:
        return q or ""

    @app.get("/typed")
    async def typed(n: int = 1) -> int:
        return n

    @app.get("/required")
    async def required(q: str) -> str:
        return q

    @app.get("/custom-query")
    async def custom_query(numbers: Annotated[list[int], Query(extractor=ids)]) -> int:
        return sum(numbers)

    @app.get("/headers")
    async def headers(x_name: Annotated[str | None, Header()] = None,
                      x_count: Annotated[int, Header()] = 0) -> int:
        return x_count

    @app.get("/cookies")
    async def cookies(session: Annotated[str | None, Cookie()] = None,
                      visits: Annotated[int, Cookie()] = 0) -> int:
        return visits

    @app.get("/dependency")
    async def dependency(count: Annotated[int, Depends(count_header)]) -> int:
        return count

    @app.get("/injected")
    async def injected(request: Request, tasks: BackgroundTasks, route: RouteInfo,
                       channels: Channels) -> str:
        return route.name

    # -- path parameters ---------------------------------------------------------------------

    @app.get("/items/{item_id:int}")
    async def item(item_id: int) -> int:
        return item_id

    @app.get("/slugs/{slug}")
    async def slug(slug: Annotated[str, Meta(min_length=3)]) -> str:
        return slug

    @app.get("/described/{slug}")
    async def described(slug: Annotated[str, Meta(description="the slug")]) -> str:
        return slug

    # -- bodies and forms --------------------------------------------------------------------

    @app.post("/json")
    async def json_body(note: Note) -> str:
        return note.title

    @app.post("/embedded")
    async def embedded(title: Annotated[str, Body(embed=True)]) -> str:
        return title

    @app.post("/decoded")
    async def decoded(text: Annotated[str, Body(decoder=ascii_text)]) -> str:
        return text

    @app.post("/bytes")
    async def raw(data: bytes) -> int:
        return len(data)

    @app.post("/bytes-unlimited", max_body_size=None)
    async def raw_unlimited(data: bytes) -> int:
        return len(data)

    @app.post("/text")
    async def text(text: Annotated[str, Body()]) -> str:
        return text

    @app.post("/form-optional")
    async def form_optional(note: Annotated[str, Form()] = "") -> str:
        return note

    @app.post("/form-whole")
    async def form_whole(signup: Annotated[Signup, Form()]) -> str:
        return signup.email

    @app.post("/form-unlimited", max_body_size=None)
    async def form_unlimited(count: Annotated[int, Form()]) -> int:
        return count

    @app.post("/upload")
    async def upload(file: UploadFile) -> str:
        return file.filename or ""

    # -- security, rate limits, declared errors ----------------------------------------------

    @app.get("/secure")
    async def secure(cred: Annotated[BearerCredentials, Security(bearer)]) -> str:
        return cred.token

    @app.get("/maybe")
    async def maybe(cred: Annotated[BearerCredentials | None, Security(bearer)]) -> str:
        return "anonymous" if cred is None else cred.token

    @app.get("/scoped")
    async def scoped(who: Annotated[str, Security(reader, scopes=["admin"])]) -> str:
        return who

    @app.get("/staff", dependencies=[Security(staff_only, scopes=["staff"])])
    async def staff() -> str:
        return "staff"

    @app.get("/limited", dependencies=[Security(lenient)])
    async def limited() -> str:
        return "counted"

    @app.get("/strict", dependencies=[Security(strict)])
    async def strict_limited() -> str:
        return "counted, or refused"

    @app.get("/conflict", raises=[Conflict])
    async def conflict(request: Request) -> str:
        if request.query_params.get("clash"):
            raise Conflict("It clashes.")
        return "fine"

    return app


def _get(path: str, **options: Any) -> list[Probe]:
    return [("GET", path, options)]


def _post(path: str, **options: Any) -> list[Probe]:
    return [("POST", path, options)]


def _bad_json(path: str) -> list[Probe]:
    return _post(path, content=b"{", headers=JSON)


def _wrong_media_type(path: str) -> list[Probe]:
    return _post(path, content=b'{"title": "t"}', headers={"content-type": "text/plain"})


def _too_large(path: str, headers: dict[str, str]) -> list[Probe]:
    return _post(path, content=b"x" * (MiB + 1), headers=headers)


def _too_many_fields(path: str) -> list[Probe]:
    # over FormLimits.max_fields (1000), whatever the route's body limit
    return _post(path, content="&".join(f"f{i}=1" for i in range(1001)).encode(),
                 headers=URLENCODED)


def _no_boundary(path: str) -> list[Probe]:
    return _post(path, content=b"a=1", headers={"content-type": "multipart/form-data"})


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


CASES = [
    Case("/plain", "GET", "/plain?q=a&tags=b&tags=c&word=d", {}, {}),
    Case("/typed", "GET", "/typed?n=2", {}, {422: _get("/typed?n=two")}),
    Case("/required", "GET", "/required?q=a", {}, {422: _get("/required")}),
    Case("/custom-query", "GET", "/custom-query?ids=1,2", {},
         {422: _get("/custom-query?ids=one")}),
    Case("/headers", "GET", "/headers", {"headers": {"x-name": "a", "x-count": "2"}},
         {422: _get("/headers", headers={"x-count": "many"})}),
    Case("/cookies", "GET", "/cookies", {"headers": {"cookie": "session=a; visits=2"}},
         {422: _get("/cookies", headers={"cookie": "visits=many"})}),
    Case("/dependency", "GET", "/dependency", {"headers": {"x-token": "1"}},
         {422: _get("/dependency")}),
    Case("/injected", "GET", "/injected", {}, {}),
    Case("/items/{item_id:int}", "GET", "/items/1", {}, {404: _get("/items/one")}),
    Case("/slugs/{slug}", "GET", "/slugs/abc", {},
         {404: _get("/slugs/"), 422: _get("/slugs/ab")}),
    Case("/described/{slug}", "GET", "/described/-", {}, {404: _get("/described/")}),
    Case("/json", "POST", "/json", {"json": {"title": "t"}},
         {400: _bad_json("/json"), 413: _too_large("/json", JSON),
          415: _wrong_media_type("/json"), 422: _post("/json", json={"title": 1})}),
    Case("/embedded", "POST", "/embedded", {"json": {"title": "t"}},
         {400: _bad_json("/embedded"), 413: _too_large("/embedded", JSON),
          415: _wrong_media_type("/embedded"), 422: _post("/embedded", json={})}),
    Case("/decoded", "POST", "/decoded", {"content": b"abc"},
         {413: _too_large("/decoded", JSON), 422: _post("/decoded", content=b"\xff")}),
    Case("/bytes", "POST", "/bytes", {"content": b"\xff"},
         {413: _too_large("/bytes", JSON)}),
    Case("/bytes-unlimited", "POST", "/bytes-unlimited", {"content": b"x" * (MiB + 1)}, {}),
    Case("/text", "POST", "/text", {"content": "é".encode()},
         {400: _post("/text", content=b"a", headers={"content-type": "text/plain; charset=no"}),
          413: _too_large("/text", {"content-type": "text/plain"})}),
    Case("/form-optional", "POST", "/form-optional", {"data": {"note": "n"}},
         {400: _no_boundary("/form-optional"), 413: _too_many_fields("/form-optional"),
          415: _wrong_media_type("/form-optional")}),
    Case("/form-whole", "POST", "/form-whole", {"data": {"email": "a@b"}},
         {400: _no_boundary("/form-whole"), 413: _too_large("/form-whole", URLENCODED),
          415: _wrong_media_type("/form-whole"), 422: _post("/form-whole", data={"x": "1"})}),
    Case("/form-unlimited", "POST", "/form-unlimited", {"data": {"count": "2"}},
         {400: _no_boundary("/form-unlimited"), 413: _too_many_fields("/form-unlimited"),
          415: _wrong_media_type("/form-unlimited"),
          422: _post("/form-unlimited", data={"count": "two"})}),
    Case("/upload", "POST", "/upload", {"files": {"file": ("a.txt", b"a")}},
         {400: _no_boundary("/upload"), 413: _too_many_fields("/upload"),
          415: _wrong_media_type("/upload"), 422: _post("/upload", data={"other": "1"})}),
    Case("/secure", "GET", "/secure", {"headers": _bearer("t")}, {401: _get("/secure")}),
    Case("/maybe", "GET", "/maybe", {}, {401: _get("/maybe", headers=_bearer("!"))}),
    Case("/scoped", "GET", "/scoped", {"headers": _bearer("admin-token")},
         {401: _get("/scoped"), 403: _get("/scoped", headers=_bearer("reader-token"))}),
    Case("/staff", "GET", "/staff", {"headers": {"x-staff": "staff"}}, {403: _get("/staff")}),
    Case("/limited", "GET", "/limited", {"headers": {"x-client": "ok"}},
         {429: _get("/limited", headers={"x-client": "twice"}) * 2}),
    Case("/strict", "GET", "/strict", {"headers": {"x-client": "ok"}},
         {429: _get("/strict", headers={"x-client": "twice"}) * 2,
          503: _get("/strict", headers={"x-client": "down"})}),
    Case("/conflict", "GET", "/conflict", {}, {409: _get("/conflict?clash=1")}),
]

#: the same hostile requests for every route, with the route's method and a path it serves
BATTERY: list[dict[str, Any]] = [
    {},
    {"content": b"{", "headers": JSON},
    {"content": b"{}", "headers": JSON},
    {"content": b'{"title": "t"}', "headers": {"content-type": "text/plain"}},
    {"content": b"x" * (MiB + 1), "headers": JSON},
    {"content": b"x" * (MiB + 1), "headers": URLENCODED},
    {"content": b"\xff", "headers": {"content-type": "text/plain; charset=no"}},
    {"content": b"\xff", "headers": {"content-type": "text/plain"}},
    {"content": b"a=1", "headers": {"content-type": "multipart/form-data"}},
    {"content": "&".join(f"f{i}=1" for i in range(1001)).encode(), "headers": URLENCODED},
    {"headers": _bearer("!")},
    {"headers": _bearer("reader-token")},
    {"headers": {"x-client": "down"}},
    {"params": {"n": "x", "ids": "a", "q": "", "clash": "1"},
     "headers": {"x-count": "many", "x-token": "no", "x-staff": "nobody",
                 "cookie": "visits=many"}},
]


def answered(client: TestClient, case: Case) -> set[int]:
    """Every error status ``case``'s route answers: to its triggers (each trigger's last
    request), and to the battery; the request it serves must be served."""
    statuses = set()
    for probes in case.triggers.values():
        for method, path, options in probes:
            status = client.request(method, path, **options).status_code
        statuses.add(status)
    served = client.request(case.method, case.path, **case.ok)
    assert served.status_code < 300, (case.template, served.status_code, served.text)
    for options in BATTERY:
        status = client.request(case.method, case.path, **options).status_code
        if status >= 400:
            statuses.add(status)
    return statuses
