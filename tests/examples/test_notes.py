"""The notes service's API, page and notifications, in-process: auth (every 401), sign-up,
notes and their validation, keyset pagination, uploads and downloads, the HTML page, and a
notification over a WebSocket."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from examples.notes.database import get_session
from examples.notes.models import Note
from examples.notes.settings import Settings, SettingsError
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from joey import App, Conflict, Depends
from joey.channels import ChannelsUnavailable
from joey.testing import TestClient, WebSocketDenied, rendered

from .conftest import signup


def new_note(client: TestClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post("/notes", json={"title": "a note", **fields}, headers=auth)
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    return note


# --- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "NOTES_DATABASE_URL": "sqlite+aiosqlite:///x.db", "NOTES_MAX_UPLOAD_SIZE": "1024",
        "NOTES_DEBUG": "true", "NOTES_UPLOAD_DIR": str(tmp_path), "OTHER": "ignored",
    })
    assert settings.database_url == "sqlite+aiosqlite:///x.db"
    assert settings.max_upload_size == 1024 and settings.debug is True
    assert settings.upload_dir == tmp_path
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(("environ", "message"), [
    ({"NOTES_MAX_UPLOAD_SIZE": "ten"}, "NOTES_MAX_UPLOAD_SIZE: Expected `int`, got `str`"),
    ({"NOTES_MAX_UPLOAD_SIZE": "0"}, "NOTES_MAX_UPLOAD_SIZE: Expected `int` >= 1"),
    ({"NOTES_DEBUG": "maybe"}, "NOTES_DEBUG: Expected `bool`"),
    ({"NOTES_DATABASE_TIMEOUT": "-1"}, "NOTES_DATABASE_TIMEOUT: Expected `float` > 0.0"),
])
def test_a_bad_setting_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)
    assert str(raised.value).startswith(message)


# --- users and authentication -----------------------------------------------------------------


def test_signup_gives_a_token_that_authenticates(client: TestClient) -> None:
    response = client.post("/users", json={"name": "ann"})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "ann" and len(body["token"]) >= 40
    me = client.get("/me", headers={"authorization": f"Bearer {body['token']}"})
    assert me.json() == {"id": body["id"], "name": "ann"}
    # the scheme is case-insensitive (RFC 7235)
    assert client.get("/me", headers={"authorization": f"bearer {body['token']}"}).status_code \
        == 200


def test_a_taken_name_is_a_409_and_the_first_user_keeps_working(client: TestClient) -> None:
    auth = signup(client, "ann")
    again = client.post("/users", json={"name": "ann"})
    assert again.status_code == 409
    assert again.json()["detail"] == "The name 'ann' is taken."
    assert client.get("/me", headers=auth).json()["name"] == "ann"


@pytest.mark.parametrize("body", [
    {"name": "Ann"}, {"name": ""}, {"name": "a" * 41}, {"name": "ann smith"}, {},
    {"name": "ann", "admin": True},
])
def test_a_bad_name_is_a_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/users", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "body"


def test_no_token_is_a_401_that_says_how_to_authenticate(client: TestClient) -> None:
    # authentication runs before the body is read: no 422 about a body for an anonymous
    # client, whatever it sent
    for method, path in [("GET", "/me"), ("GET", "/notes"), ("POST", "/notes"),
                         ("DELETE", "/notes/1"),
                         ("PATCH", "/notes/1"), ("POST", "/notes/1/attachments")]:
        response = client.request(method, path, content=b"{not json",
                                  headers={"content-type": "application/json"})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == 'Bearer realm="notes"'
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("header", "challenge", "detail"), [
    ("Bearer not-a-token", ', error="invalid_token", error_description="The token is not '
     'valid."', "The token is not valid."),
    ("Bearer a b", ', error="invalid_token", error_description="The token is malformed."',
     "The token is malformed."),
    ("Bearer", ', error="invalid_request", error_description="The Authorization header has '
     'no token."', "The Authorization header has no token."),
    ("Basic YW5uOnNlY3JldA==", "", "Send an Authorization: Bearer <token> header."),
    ("token", "", "Send an Authorization: Bearer <token> header."),
])
def test_a_bad_token_is_a_401_that_says_why(
    client: TestClient, header: str, challenge: str, detail: str
) -> None:
    signup(client, "ann")
    response = client.get("/me", headers={"authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="notes"' + challenge
    assert response.json()["detail"] == detail


def test_another_users_note_is_a_404(client: TestClient) -> None:
    ann, bob = signup(client, "ann"), signup(client, "bob")
    note = new_note(client, ann)
    path = f"/notes/{note['id']}"
    assert client.get(path, headers=bob).status_code == 404
    assert client.patch(path, json={"title": "mine"}, headers=bob).status_code == 404
    assert client.delete(path, headers=bob).status_code == 404
    upload = client.post(f"{path}/attachments", files={"file": ("a.txt", b"x")}, headers=bob)
    assert upload.status_code == 404
    assert client.get(path, headers=ann).json()["title"] == "a note"  # untouched


def test_a_public_note_is_read_by_anyone_a_private_one_by_its_owner_only(
    client: TestClient,
) -> None:
    """``GET /notes/{id}`` takes an optional token: none reads public notes, a bad one is
    still a 401 (never taken for anonymous), and the document says the token is optional."""
    ann, bob = signup(client, "ann"), signup(client, "bob")
    public, private = new_note(client, ann, public=True), new_note(client, ann)
    for headers in ({}, bob, ann):
        assert client.get(f"/notes/{public['id']}", headers=headers).json() == public
    assert client.get(f"/notes/{private['id']}", headers=ann).json() == private
    for headers in ({}, bob):
        response = client.get(f"/notes/{private['id']}", headers=headers)
        assert response.status_code == 404  # as if it did not exist, for anyone else
    bad = client.get(f"/notes/{public['id']}", headers={"authorization": "Bearer nobodys"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith('Bearer realm="notes", error=')
    # the other routes of a public note are still its owner's
    assert client.patch(f"/notes/{public['id']}", json={"title": "x"}).status_code == 401
    assert client.patch(f"/notes/{public['id']}", json={"title": "x"},
                        headers=bob).status_code == 404
    document = client.get("/openapi.json").json()
    assert document["paths"]["/notes/{note_id}"]["get"]["security"] == [
        {}, {"bearerAuth": []}]
    assert document["paths"]["/notes/{note_id}"]["patch"]["security"] == [{"bearerAuth": []}]


# --- notes ------------------------------------------------------------------------------------


def test_create_read_update_delete(client: TestClient) -> None:
    auth = signup(client, "ann")
    created = client.post("/notes", json={"title": "Groceries", "body": "milk"}, headers=auth)
    assert created.status_code == 201
    note = created.json()
    assert created.headers["location"] == f"/notes/{note['id']}"
    assert (note["title"], note["body"], note["public"], note["attachments"]) == (
        "Groceries", "milk", False, [])
    assert note["created_at"].endswith("Z")  # UTC, with its zone

    assert client.get(f"/notes/{note['id']}", headers=auth).json() == note

    changed = client.patch(f"/notes/{note['id']}", json={"body": "milk, eggs"}, headers=auth)
    assert changed.status_code == 200
    assert changed.json()["title"] == "Groceries"  # only what was sent changes
    assert changed.json()["body"] == "milk, eggs"
    assert changed.json()["updated_at"] >= note["updated_at"]

    deleted = client.delete(f"/notes/{note['id']}", headers=auth)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.get(f"/notes/{note['id']}", headers=auth).status_code == 404
    assert client.delete(f"/notes/{note['id']}", headers=auth).status_code == 404


@pytest.mark.parametrize(("body", "name"), [
    ({}, "$.title"),
    ({"title": ""}, "$.title"),
    ({"title": "x" * 201}, "$.title"),
    ({"title": "t", "public": "yes"}, "$.public"),
    ({"title": "t", "body": "x" * 20_001}, "$.body"),
    ({"title": "t", "owner_id": 2}, "$.owner_id"),
])
def test_a_bad_note_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], name: str
) -> None:
    auth = signup(client, "ann")
    response = client.post("/notes", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["name"] == name
    assert client.get("/notes", headers=auth).json()["items"] == []


def test_a_note_body_must_be_json(client: TestClient) -> None:
    auth = signup(client, "ann")
    assert client.post("/notes", content=b"title=x", headers={
        **auth, "content-type": "application/x-www-form-urlencoded"}).status_code == 415
    broken = client.post("/notes", content=b"{", headers={
        **auth, "content-type": "application/json"})
    assert broken.status_code == 400
    assert client.patch("/notes/abc", json={}, headers=auth).status_code == 404


# --- pagination -------------------------------------------------------------------------------


def test_pages_walk_every_note_once_newest_first(client: TestClient) -> None:
    auth = signup(client, "ann")
    ids = [new_note(client, auth, title=f"note {i}")["id"] for i in range(25)]
    seen: list[int] = []
    url: str | None = "/notes?limit=10"
    pages = 0
    while url is not None and pages < 10:  # bounded
        page = client.get(url, headers=auth).json()
        seen += [item["id"] for item in page["items"]]
        url = page["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(ids, reverse=True)


def test_a_note_added_meanwhile_does_not_shift_the_next_page(client: TestClient) -> None:
    auth = signup(client, "ann")
    for i in range(4):
        new_note(client, auth, title=f"note {i}")
    first = client.get("/notes?limit=2", headers=auth).json()
    assert [n["title"] for n in first["items"]] == ["note 3", "note 2"]
    new_note(client, auth, title="newer")
    second = client.get(first["next"], headers=auth).json()
    assert [n["title"] for n in second["items"]] == ["note 1", "note 0"]
    assert second["next"] is None


def test_the_default_page_and_another_users_notes(client: TestClient) -> None:
    ann, bob = signup(client, "ann"), signup(client, "bob")
    for _ in range(21):
        new_note(client, ann)
    page = client.get("/notes", headers=ann).json()
    assert len(page["items"]) == 20 and page["next"].startswith("/notes?limit=20&cursor=")
    assert client.get("/notes", headers=bob).json() == {"items": [], "next": None}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "cursor=0",
                                   "cursor=abc", "cursor=null", f"cursor={2**63}"])
def test_a_bad_page_request_is_a_422(client: TestClient, query: str) -> None:
    auth = signup(client, "ann")
    response = client.get(f"/notes?{query}", headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "query"


# --- uploads ----------------------------------------------------------------------------------


def test_upload_then_download(client: TestClient, settings: Settings) -> None:
    auth = signup(client, "ann")
    note = new_note(client, auth)
    content = bytes(range(256)) * 40
    response = client.post(f"/notes/{note['id']}/attachments", headers=auth,
                           files={"file": ("../../etc/report.pdf", content, "application/pdf")})
    assert response.status_code == 201
    attachment = response.json()
    assert attachment["filename"] == "report.pdf"  # the client's path is dropped
    assert (attachment["size"], attachment["content_type"]) == (len(content),
                                                                "application/pdf")
    stored = list(settings.upload_dir.iterdir())
    assert len(stored) == 1 and stored[0].name != "report.pdf"

    download = client.get(attachment["url"], headers=auth)
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "report.pdf" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    listed = client.get(f"/notes/{note['id']}", headers=auth).json()["attachments"]
    assert listed == [attachment]
    assert client.get(f"/notes/{note['id']}/attachments/999", headers=auth).status_code == 404
    assert client.get(attachment["url"]).status_code == 401


def test_an_html_upload_is_served_as_a_download(client: TestClient) -> None:
    auth = signup(client, "ann")
    note = new_note(client, auth)
    page = b"<script>alert(1)</script>"
    attachment = client.post(f"/notes/{note['id']}/attachments", headers=auth,
                             files={"file": ("x.html", page, "text/html")}).json()
    download = client.get(attachment["url"], headers=auth)
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    odd = client.post(f"/notes/{note['id']}/attachments", headers=auth,
                      files={"file": ("y.bin", b"1", "not a type; x=<b>")}).json()
    assert odd["content_type"] == "application/octet-stream"


def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(
    client: TestClient, settings: Settings
) -> None:
    auth = signup(client, "ann")
    note = new_note(client, auth)
    too_big = b"x" * (settings.max_upload_size + 1)
    response = client.post(f"/notes/{note['id']}/attachments", headers=auth,
                           files={"file": ("big.bin", too_big)})
    assert response.status_code == 413
    assert list(settings.upload_dir.iterdir()) == []
    assert client.get(f"/notes/{note['id']}", headers=auth).json()["attachments"] == []
    just_fits = b"x" * settings.max_upload_size
    assert client.post(f"/notes/{note['id']}/attachments", headers=auth,
                       files={"file": ("ok.bin", just_fits)}).status_code == 201


def test_a_bad_upload_is_a_4xx(client: TestClient) -> None:
    auth = signup(client, "ann")
    path = f"/notes/{new_note(client, auth)['id']}/attachments"
    missing = client.post(path, headers=auth, files={"other": ("a.txt", b"x")})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "Send the file as the multipart field 'file'."
    not_a_file = client.post(path, headers=auth, data={"file": "just text"})
    assert not_a_file.status_code == 422
    nameless = client.post(path, headers=auth, files={"file": ("", b"x")})
    assert nameless.status_code == 422
    assert client.post(path, headers=auth, json={"file": "x"}).status_code == 415
    two = client.post(path, headers=auth, files=[("file", ("a", b"1")), ("file", ("b", b"2"))])
    assert two.status_code == 413
    # one field, `file`, as documented: another one is refused, not ignored
    extra = client.post(path, headers=auth, files={"file": ("a.txt", b"x")},
                        data={"note": "hi"})
    assert extra.status_code == 422
    assert extra.json()["detail"] == "Send only the field 'file', not ['note']."
    created = client.post(path, headers=auth, files={"file": ("a.txt", b"x")})
    assert created.status_code == 201
    assert created.headers["location"] == created.json()["url"]


def test_deleting_a_note_removes_its_files(client: TestClient, settings: Settings) -> None:
    auth = signup(client, "ann")
    note = new_note(client, auth)
    for name in ("a.txt", "b.txt"):
        client.post(f"/notes/{note['id']}/attachments", headers=auth,
                    files={"file": (name, b"data")})
    assert len(list(settings.upload_dir.iterdir())) == 2
    assert client.delete(f"/notes/{note['id']}", headers=auth).status_code == 204
    assert list(settings.upload_dir.iterdir()) == []


# --- the HTML page ----------------------------------------------------------------------------


def test_the_page_shows_public_notes_escaped(client: TestClient) -> None:
    auth = signup(client, "ann")
    new_note(client, auth, title="<script>alert('x')</script>", body="a & b", public=True)
    new_note(client, auth, title="my secret", public=False)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert "a &amp; b" in page.text and "by ann" in page.text
    assert "my secret" not in page.text
    assert "Older notes" not in page.text
    template = rendered(page)  # what the page was rendered from
    assert template.name == "home.html"
    assert [note["title"] for note in template.context["notes"]] == [
        "<script>alert('x')</script>"]
    assert template.context["older"] is None


def test_the_page_is_paginated(client: TestClient) -> None:
    auth = signup(client, "ann")
    for i in range(22):
        new_note(client, auth, title=f"public {i}", public=True)
    first = client.get("/")
    assert "public 21" in first.text and "public 2<" in first.text
    assert "public 1<" not in first.text
    assert 'rel="next" href="/?cursor=' in first.text
    cursor = first.text.split('href="/?cursor=')[1].split('"')[0]
    second = client.get(f"/?cursor={cursor}")
    assert "public 1<" in second.text and "public 0<" in second.text
    assert "Older notes" not in second.text
    assert client.get("/?cursor=abc").status_code == 422


def test_an_id_the_database_cannot_hold_is_a_422(client: TestClient) -> None:
    """SQLite's integers are 64 bits: a larger id or cursor is refused before the database
    (it was an OverflowError in the driver, a 500, found by Schemathesis)."""
    auth = signup(client, "ann")
    note = new_note(client, auth)
    huge = 2**63
    for method, path in [("GET", f"/notes/{huge}"), ("PATCH", f"/notes/{huge}"),
                         ("DELETE", f"/notes/{huge}"),
                         ("GET", f"/notes/{note['id']}/attachments/{huge}"),
                         ("GET", f"/notes?cursor={huge}")]:
        response = client.request(method, path, json={"title": "t"}, headers=auth)
        assert response.status_code == 422, (method, path, response.text)
    for query in (f"cursor={huge}", "cursor=null", "cursor=0"):
        assert client.get(f"/?{query}").status_code == 422
    largest = 2**63 - 1
    assert client.get(f"/notes/{largest}", headers=auth).status_code == 404
    assert client.get(f"/?cursor={largest}").status_code == 200


def test_the_document_says_what_the_service_answers(client: TestClient) -> None:
    """What Schemathesis found undocumented: the 204 of a delete, the 409 of a taken name,
    the upload's multipart body (one field, ``file``) and its 4xx, ``Location`` of what a
    POST created."""
    paths = client.get("/openapi.json").json()["paths"]
    assert "204" in paths["/notes/{note_id}"]["delete"]["responses"]
    assert "409" in paths["/users"]["post"]["responses"]
    attach = paths["/notes/{note_id}/attachments"]["post"]
    body = attach["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert (body["required"], body["additionalProperties"]) == (["file"], False)
    assert {"201", "400", "401", "404", "413", "415", "422"} <= set(attach["responses"])
    for path in ("/notes", "/notes/{note_id}/attachments"):
        created = paths[path]["post"]["responses"]["201"]
        assert created["headers"]["Location"]["required"] is True
        assert created["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/")


def test_an_empty_page(client: TestClient) -> None:
    assert "No public notes yet." in client.get("/").text


# --- notifications ----------------------------------------------------------------------------


def test_the_owner_is_notified_over_a_websocket(client: TestClient) -> None:
    ann, bob = signup(client, "ann"), signup(client, "bob")
    with client.websocket_connect("/notes/live", headers=ann) as ann_ws, \
            client.websocket_connect("/notes/live", headers=bob) as bob_ws:
        note = new_note(client, ann, title="for ann")
        assert ann_ws.receive_json() == {"event": "note.created", "note_id": note["id"],
                                         "title": "for ann"}
        client.patch(f"/notes/{note['id']}", json={"title": "renamed"}, headers=ann)
        assert ann_ws.receive_json()["event"] == "note.updated"
        client.post(f"/notes/{note['id']}/attachments", headers=ann,
                    files={"file": ("a.txt", b"x")})
        assert ann_ws.receive_json()["event"] == "attachment.added"
        client.delete(f"/notes/{note['id']}", headers=ann)
        assert ann_ws.receive_json() == {"event": "note.deleted", "note_id": note["id"],
                                         "title": None}
        bob_note = new_note(client, bob, title="for bob")
        # bob's first notification is his own: none of ann's reached him
        assert bob_ws.receive_json()["note_id"] == bob_note["id"]


def test_a_failed_write_announces_nothing(client: TestClient) -> None:
    auth = signup(client, "ann")
    with client.websocket_connect("/notes/live", headers=auth) as ws:
        assert client.post("/notes", json={"title": ""}, headers=auth).status_code == 422
        note = new_note(client, auth, title="after")
        assert ws.receive_json()["note_id"] == note["id"]  # the first one it got


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}])
def test_a_websocket_without_a_valid_token_is_refused_with_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    signup(client, "ann")
    with pytest.raises(WebSocketDenied) as denied, \
            client.websocket_connect("/notes/live", headers=headers):
        pass
    assert denied.value.status_code == 401
    assert denied.value.headers["www-authenticate"] == 'Bearer realm="notes"'
    assert denied.value.body == b"A valid bearer token is required."


def test_a_notification_that_cannot_be_sent_does_not_fail_the_write(
    app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = signup(client, "ann")

    async def down(channel: str, data: Any) -> None:
        raise ChannelsUnavailable("redis is down")

    monkeypatch.setattr(app.channels, "publish", down)
    with caplog.at_level(logging.WARNING, logger="notes"):
        note = new_note(client, auth, title="kept")
    assert client.get(f"/notes/{note['id']}", headers=auth).json()["title"] == "kept"
    assert "Notification note.created for note" in caplog.text


# --- sessions: when to commit, outages --------------------------------------------------------


async def count_notes(session: AsyncSession) -> int:
    return (await session.scalar(select(func.count(Note.id)))) or 0


def test_an_error_rolls_the_request_back(app: App) -> None:
    # the test's routes are declared before the app starts (then its routes are frozen)
    @app.post("/test/fails-after-writing")
    async def fails(session: Annotated[AsyncSession, Depends(get_session)]) -> None:
        session.add(Note(owner_id=1, title="half-done"))
        await session.flush()  # sent to the database, not committed
        raise Conflict("changed my mind")

    @app.get("/test/count")
    async def count(session: Annotated[AsyncSession, Depends(get_session)]) -> int:
        return await count_notes(session)

    with TestClient(app) as client:
        signup(client, "ann")
        assert client.post("/test/fails-after-writing").status_code == 409
        assert client.get("/test/count").json() == 0


def test_a_forgotten_commit_is_discarded_and_logged(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.post("/test/forgets-to-commit")
    async def forgets(session: Annotated[AsyncSession, Depends(get_session)]) -> str:
        session.add(Note(owner_id=1, title="lost"))
        return "ok"

    @app.get("/test/count")
    async def count(session: Annotated[AsyncSession, Depends(get_session)]) -> int:
        return await count_notes(session)

    with TestClient(app) as client:
        signup(client, "ann")
        with caplog.at_level(logging.WARNING, logger="notes"):
            assert client.post("/test/forgets-to-commit").text == "ok"
        assert client.get("/test/count").json() == 0
    assert "Uncommitted changes discarded" in caplog.text


def test_a_locked_database_is_a_503_with_retry_after(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    auth = signup(client, "ann")
    path = settings.database_url.removeprefix("sqlite+aiosqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with caplog.at_level(logging.WARNING, logger="notes"):
            response = client.post("/notes", json={"title": "waits"}, headers=auth)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "The database is unavailable; try again shortly."
        assert "Database unavailable for POST /notes" in caplog.text
        with pytest.raises(WebSocketDenied) as denied, \
                client.websocket_connect("/notes/live", headers=auth):
            pass
        assert denied.value.status_code == 503
        assert denied.value.headers["retry-after"] == "1"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.post("/notes", json={"title": "now"}, headers=auth).status_code == 201


def test_the_database_and_the_uploads_live_where_the_settings_say(
    client: TestClient, settings: Settings
) -> None:
    assert settings.upload_dir.is_dir()
    path = Path(settings.database_url.removeprefix("sqlite+aiosqlite:///"))
    assert path.is_file()
    # (sqlite3's own context manager commits but does not close: Python 3.13 warns.)
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"users", "notes", "attachments"} <= tables


def test_two_apps_are_independent(tmp_path: Path) -> None:
    from examples.notes.app import create_app

    first = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
                                upload_dir=tmp_path / "a"))
    second = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
                                 upload_dir=tmp_path / "b"))
    with TestClient(first) as one, TestClient(second) as two:
        signup(one, "ann")
        assert two.post("/users", json={"name": "ann"}).status_code == 201


def test_an_upload_whose_commit_fails_leaves_no_file(
    app: App, client: TestClient, settings: Settings
) -> None:
    auth = signup(client, "ann")
    note = new_note(client, auth)
    database = app.state.database

    async def session_that_cannot_commit() -> AsyncIterator[AsyncSession]:
        async with database.sessions() as session:
            async def commit() -> None:
                raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

            session.commit = commit  # type: ignore[method-assign]
            yield session

    app.dependency_overrides[get_session] = session_that_cannot_commit
    try:
        response = client.post(f"/notes/{note['id']}/attachments", headers=auth,
                                files={"file": ("a.txt", b"data")})
    finally:
        app.dependency_overrides.clear()
    assert response.status_code == 503
    assert list(settings.upload_dir.iterdir()) == []
    assert client.get(f"/notes/{note['id']}", headers=auth).json()["attachments"] == []
