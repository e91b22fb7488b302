"""One service, two frameworks: examples/fastapi_port/fastapi_app (FastAPI) and its port,
examples/fastapi_port/joey_app (Joey), run through the same tests: the same requests, the
same status codes and bodies. Where the two answer differently on purpose, a test asserts
each answer and says why (docs/migrating-from-fastapi.md lists these differences).

Each framework is tested with its own test client (``fastapi.testclient.TestClient``,
``joey.testing.TestClient``); both are ``httpx.Client`` s.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest

pytestmark = [
    # fastapi.testclient imports starlette's, which warns that it will move to httpx2
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated"),
    # FastAPI supports pydantic 2.6 (the lowest Joey supports), which warns where FastAPI
    # meets it: it has no Field(deprecated=), so FastAPI passes its `deprecated` as an extra
    # keyword; and FastAPI's isinstance(x, pydantic.v1.BaseModel) reads `__fields__`
    pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field` is deprecated"),
    pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated"),
    # starlette < 0.51 (what FastAPI 0.125 allows) imports anyio.abc.BlockingPortal, an alias
    # that anyio >= 4.16 warns about
    pytest.mark.filterwarnings("ignore:The anyio.abc.BlockingPortal alias is deprecated"),
]

FRAMEWORKS = ("fastapi", "joey")


@dataclass
class Port:
    """One of the two apps, running: its client and what a test may change."""

    framework: str
    client: httpx.Client
    app: Any
    config: ModuleType
    #: waits for the work done after the responses (BackgroundTasks): see test_background_work
    settle: Callable[[], None]

    def override_settings(self, **changes: Any) -> None:
        settings = replace(self.config.get_settings(), **changes)
        self.app.dependency_overrides[self.config.get_settings] = lambda: settings

    def validation_errors(self, response: httpx.Response) -> list[list[Any]]:
        """Where each problem of a 422 is. Same locations, different documents: FastAPI
        lists them under ``detail`` (``loc``); Joey answers an RFC 9457 problem document
        whose ``errors`` have ``location`` (and ``loc``, ``name``, ``message``, ``type``)."""
        assert response.status_code == 422, response.text
        body = response.json()
        if self.framework == "fastapi":
            assert response.headers["content-type"] == "application/json"
            return [error["loc"] for error in body["detail"]]
        assert response.headers["content-type"] == "application/problem+json"
        assert body["status"] == 422
        return [error["location"] for error in body["errors"]]


@pytest.fixture(params=FRAMEWORKS)
def port(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Port]:
    framework: str = request.param
    monkeypatch.setenv("TODO_DATABASE", str(tmp_path / "todo.db"))
    package = f"examples.fastapi_port.{framework}_app"
    config = importlib.import_module(f"{package}.config")
    main = importlib.import_module(f"{package}.main")
    config.get_settings.cache_clear()  # read the environment set above
    client: httpx.Client
    if framework == "fastapi":
        from fastapi.testclient import TestClient as FastAPITestClient

        client = FastAPITestClient(main.app)
        settle: Callable[[], None] = lambda: None  # noqa: E731 - its client already waited
    else:
        from joey.testing import TestClient

        client = joey_client = TestClient(main.app)
        settle = joey_client.wait_for_tasks
    try:
        with client:
            yield Port(framework, client, main.app, config, settle)
    finally:
        main.app.dependency_overrides.clear()
        config.get_settings.cache_clear()


def sign_up(port: Port, username: str, password: str = "correct horse") -> dict[str, str]:
    """A new user's ``Authorization`` header."""
    created = port.client.post("/users", json={"username": username, "password": password})
    assert created.status_code == 201, created.text
    token = port.client.post("/token", data={"username": username, "password": password})
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    return {"authorization": f"Bearer {token.json()['access_token']}"}


# --- users and tokens -------------------------------------------------------------------------


def test_sign_up_log_in_and_who_am_i(port: Port) -> None:
    created = port.client.post("/users", json={"username": "ann", "password": "correct horse"})
    assert created.status_code == 201
    assert created.json() == {"id": 1, "username": "ann"}
    auth = sign_up(port, "bob")
    assert port.client.get("/users/me", headers=auth).json() == {"id": 2, "username": "bob"}


def test_a_taken_username_is_a_409(port: Port) -> None:
    sign_up(port, "ann")
    taken = port.client.post("/users", json={"username": "ann", "password": "another one"})
    assert taken.status_code == 409
    # Both bodies have "detail"; Joey's is a problem document (application/problem+json,
    # with type, title and status besides).
    assert taken.json()["detail"] == "The username 'ann' is taken"


def test_an_invalid_sign_up_is_a_422_listing_every_problem(port: Port) -> None:
    refused = port.client.post("/users", json={"username": "A", "password": "short"})
    assert port.validation_errors(refused) == [["body", "username"], ["body", "password"]]


def test_a_wrong_password_is_a_400(port: Port) -> None:
    sign_up(port, "ann")
    wrong = port.client.post("/token", data={"username": "ann", "password": "wrong"})
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == "Incorrect username or password"
    unknown = port.client.post("/token", data={"username": "nobody", "password": "x"})
    assert unknown.status_code == 400


def test_a_login_form_without_its_password_is_a_422(port: Port) -> None:
    refused = port.client.post("/token", data={"username": "ann"})
    # On purpose: Joey says where it looked, the form; FastAPI says "body" for any body.
    where = "body" if port.framework == "fastapi" else "form"
    assert port.validation_errors(refused) == [[where, "password"]]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        "Basic YW5uOnB3",
    ],
)
def test_without_a_valid_token_it_is_a_401_with_a_bearer_challenge(
    port: Port,
    authorization: str | None,
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    refused = port.client.get("/users/me", headers=headers)
    assert refused.status_code == 401
    # FastAPI sends the bare challenge; Joey adds RFC 6750's error="invalid_token" (and its
    # description) when a token was sent but is not valid.
    assert refused.headers["www-authenticate"].startswith("Bearer")


def test_an_expired_token_or_another_key_is_a_401(port: Port) -> None:
    sign_up(port, "ann")
    key = port.config.get_settings().secret_key
    expired = jwt.encode({"sub": "ann", "exp": int(time.time()) - 60}, key, algorithm="HS256")
    forged = jwt.encode(
        {"sub": "ann", "exp": 4_000_000_000}, "another key, just as long as ours", algorithm="HS256"
    )
    without_subject = jwt.encode({"exp": 4_000_000_000}, key, algorithm="HS256")
    for token in (expired, forged, without_subject):
        refused = port.client.get("/users/me", headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        # On purpose: Joey's JWTBearer says why (RFC 6750's error_description too); the
        # FastAPI app says the same thing whatever was wrong.
        detail = refused.json()["detail"]
        if port.framework == "fastapi":
            assert detail == "Could not validate credentials"
        else:
            assert detail.startswith(("The token has expired", "The token is not valid"))


def test_a_token_of_a_user_who_is_gone_is_a_401(port: Port) -> None:
    key = port.config.get_settings().secret_key
    token = jwt.encode({"sub": "nobody", "exp": 4_000_000_000}, key, algorithm="HS256")
    refused = port.client.get("/users/me", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Could not validate credentials"


def test_the_key_comes_from_the_settings_a_test_overrides(port: Port) -> None:
    auth = sign_up(port, "ann")
    port.override_settings(secret_key="a rotated key, just as long as the first")
    assert port.client.get("/users/me", headers=auth).status_code == 401  # the old key's
    token = port.client.post("/token", data={"username": "ann", "password": "correct horse"})
    renewed = {"authorization": f"Bearer {token.json()['access_token']}"}
    assert port.client.get("/users/me", headers=renewed).json()["username"] == "ann"


def test_tokens_last_as_the_settings_say(port: Port) -> None:
    sign_up(port, "ann")
    port.override_settings(access_token_minutes=5)
    before = int(time.time())
    token = port.client.post("/token", data={"username": "ann", "password": "correct horse"})
    claims = jwt.decode(token.json()["access_token"], options={"verify_signature": False})
    assert before + 5 * 60 <= claims["exp"] <= int(time.time()) + 5 * 60


def test_an_anonymous_client_gets_a_401_whatever_body_it_sent(port: Port) -> None:
    # Both check the token before reporting the body's problems.
    assert port.client.post("/items", json={"title": 5}).status_code == 401


# --- items ------------------------------------------------------------------------------------


def test_create_read_change_delete(port: Port) -> None:
    auth = sign_up(port, "ann")
    created = port.client.post("/items", json={"title": "milk"}, headers=auth)
    assert created.status_code == 201
    item = created.json()
    assert item == {"id": 1, "title": "milk", "description": None, "done": False}
    assert port.client.get("/items/1", headers=auth).json() == item
    changed = port.client.patch("/items/1", json={"done": True}, headers=auth)
    assert changed.json() == {**item, "done": True}  # only the fields sent change
    deleted = port.client.delete("/items/1", headers=auth)
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = port.client.get("/items/1", headers=auth)
    assert gone.status_code == 404
    assert gone.json()["detail"] == "No item 1"


def test_another_users_item_is_a_404(port: Port) -> None:
    ann, bob = sign_up(port, "ann"), sign_up(port, "bob")
    port.client.post("/items", json={"title": "ann's"}, headers=ann)
    assert port.client.get("/items/1", headers=bob).status_code == 404
    assert port.client.patch("/items/1", json={"done": True}, headers=bob).status_code == 404
    assert port.client.delete("/items/1", headers=bob).status_code == 404


def test_invalid_items_are_422s(port: Port) -> None:
    auth = sign_up(port, "ann")
    empty = port.client.post("/items", json={"title": ""}, headers=auth)
    assert port.validation_errors(empty) == [["body", "title"]]
    not_an_id = port.client.get("/items/abc", headers=auth)
    assert port.validation_errors(not_an_id) == [["path", "item_id"]]


def test_pages_of_items(port: Port) -> None:
    auth = sign_up(port, "ann")
    for n in range(5):
        port.client.post("/items", json={"title": f"item {n}"}, headers=auth)
    page = port.client.get("/items", params={"offset": 2, "limit": 2}, headers=auth).json()
    assert [item["title"] for item in page["items"]] == ["item 2", "item 3"]
    assert (page["total"], page["offset"], page["limit"]) == (5, 2, 2)
    assert len(port.client.get("/items", headers=auth).json()["items"]) == 5  # limit=10
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        refused = port.client.get("/items", params=bad, headers=auth)
        assert port.validation_errors(refused) == [["query", *bad]]


def test_background_work_runs_after_the_response(port: Port) -> None:
    auth = sign_up(port, "ann")
    port.client.post("/items", json={"title": "milk"}, headers=auth)
    port.client.delete("/items/1", headers=auth)
    # On purpose: FastAPI's test client returns once the app's call has ended, background
    # tasks included. Joey's returns when the response is complete, as a real client does
    # (the background work may still run): wait_for_tasks() waits for it.
    port.settle()
    events = port.client.get("/events", headers=auth).json()
    assert events == [{"item_id": 1, "action": "created"}, {"item_id": 1, "action": "deleted"}]


def test_a_body_that_is_not_json_by_its_content_type(port: Port) -> None:
    auth = sign_up(port, "ann")
    sent = port.client.post(
        "/items", content=b'{"title": "milk"}', headers={**auth, "content-type": "text/plain"}
    )
    # On purpose: Joey refuses a JSON body sent as text/plain with a 415 (a cross-site form
    # can send text/plain without a CORS preflight); FastAPI answers 422 ("Input should be a
    # valid dictionary").
    assert sent.status_code == (422 if port.framework == "fastapi" else 415)


def test_both_publish_the_same_paths_and_the_password_flow(port: Port) -> None:
    document = port.client.get("/openapi.json").json()
    assert sorted(document["paths"]) == [
        "/events",
        "/items",
        "/items/{item_id}",
        "/token",
        "/users",
        "/users/me",
    ]
    [scheme] = document["components"]["securitySchemes"].values()
    assert scheme["type"] == "oauth2"
    # FastAPI writes tokenUrl as given ("token", relative to the document); Joey's is "/token"
    assert scheme["flows"]["password"]["tokenUrl"].lstrip("/") == "token"
    assert port.client.get("/docs").status_code == 200
    # the items router declares its 404 once, for each of its routes, those without a path
    # parameter too (FastAPI: APIRouter(responses=...); Joey: Router(raises=[NotFound]))
    for path, method in [("/items", "get"), ("/items", "post"), ("/items/{item_id}", "get")]:
        assert "404" in document["paths"][path][method]["responses"], (path, method)
    assert "404" not in document["paths"]["/events"]["get"]["responses"]


# --- the migration guide quotes these files ---------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "migrating-from-fastapi.md"
QUOTED = re.compile(
    r"<!-- docs-test: fragment: from (examples/fastapi_port/[\w/]+\.py) [^>]*-->\n"
    r"```python\n(.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def quoted_fragments() -> list[tuple[str, str]]:
    return QUOTED.findall(GUIDE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("path", "code"), quoted_fragments())
def test_the_guide_quotes_the_files_code(path: str, code: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert code in source, (
        f"docs/migrating-from-fastapi.md quotes {path}, but the file has changed: "
        "copy the current code into the page"
    )


def test_every_fragment_of_the_guide_is_a_quote() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert len(quoted_fragments()) >= 4
    assert text.count("docs-test: fragment") == len(quoted_fragments())
