"""``joey routes``: the table and the JSON are the route model (``app.routes``, ``app.mounts``),
every route, WebSocket route and mount, with middleware, guards and dependencies."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from joey import App, MountInfo
from joey.__main__ import main
from joey.cli.routes import dependencies, guards, location, name_of
from joey.routeinfo import status_of

APP_SOURCE = textwrap.dedent('''
    from typing import Annotated

    from joey import App, Depends, Request, Response, Router, WebSocket
    from joey.pipelines import CallNext
    from joey.security import BearerCredentials, HTTPBearer, Security

    bearer = HTTPBearer()


    async def current_user(token: Annotated[BearerCredentials, Security(bearer)]) -> str:
        return token.token


    async def only_admins(user: Annotated[str, Security(current_user)]) -> None:
        if user != "admin":
            raise PermissionError


    def get_db() -> str:
        return "db"


    def get_repo(db: Annotated[str, Depends(get_db)]) -> str:
        return db


    async def timing(request: Request, call_next: CallNext) -> Response:
        return await call_next(request)


    async def audit(request: Request, call_next: CallNext) -> Response:
        return await call_next(request)


    app = App(middleware=[timing])
    admin = Router(prefix="/admin", name="admin", middleware=[audit],
                   dependencies=[Security(only_admins, scopes=["admin"])])


    @app.get("/notes/{id:int}")
    async def get_note(id: int, repo: Annotated[str, Depends(get_repo)]) -> dict[str, int]:
        return {"id": id}


    @app.route("/notes", methods=["GET", "POST"], name="notes")
    async def notes() -> list[int]:
        return []


    @admin.delete("/notes/{id:int}", status_code=204)
    async def delete_note(id: int) -> None:
        return None


    @app.websocket("/ws/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()


    async def static_files(scope, receive, send):
        pass


    app.include_router(admin)
    app.mount("/static", static_files, name="static")
    app.mount("/legacy", static_files)
    other = 42
''')


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A directory with an app module of a fresh name; sys.path and sys.modules restored."""
    name = f"routes_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path, name
    sys.modules.pop(name, None)


def _model(name: str) -> App:
    app = importlib.import_module(name).app
    assert isinstance(app, App)
    return app


def test_json_is_the_route_model(project: tuple[Path, str],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory, name = project
    assert main(["routes", f"{name}:app", "--json", "--app-dir", str(directory)]) == 0
    records = json.loads(capsys.readouterr().out)
    app = _model(name)
    assert len(records) == len(app.routes) + len(app.mounts) == 6
    for record, route in zip(records, app.routes, strict=False):
        assert record["path"] == route.path
        assert record["methods"] == list(route.methods)
        assert record["name"] == route.name
        assert record["kind"] == ("websocket" if route.websocket else "http")
        assert record["location"] == location(route)
        assert record["middleware"] == [name_of(m) for m in route.middleware]
        assert record["guards"] == guards(route)
        assert record["dependencies"] == dependencies(route)
        assert record["scopes"] == list(route.scopes)
        assert record["errors"] == sorted({status_of(error) for error in route.errors})
    by_path = {(r["path"], r["kind"]): r for r in records}
    note = by_path[("/notes/{id:int}", "http")]
    assert note["dependencies"] == ["get_db", "get_repo"]  # inner first
    assert note["middleware"] == ["timing"] and note["guards"] == []
    assert note["path_params"] == {"id": "int"}
    decorator = APP_SOURCE.splitlines().index('@app.get("/notes/{id:int}")')
    assert note["location"] == f"{name}.py:{decorator + 1}"  # where the definition starts
    assert note["handler"] == f"{name}.get_note"
    assert by_path[("/notes", "http")]["methods"] == ["GET", "POST"]
    delete = by_path[("/admin/notes/{id:int}", "http")]
    assert delete["name"] == "admin.delete_note" and delete["status_code"] == 204
    assert delete["middleware"] == ["timing", "audit"]
    assert delete["guards"] == ["bearerAuth", "current_user", "only_admins"]
    assert delete["scopes"] == ["admin"] and delete["dependencies"] == []
    assert delete["errors"] == [401, 403, 404]  # the scheme, the scopes, the path
    assert note["errors"] == [404] and by_path[("/notes", "http")]["errors"] == []
    feed = by_path[("/ws/feed", "websocket")]
    assert feed["methods"] == [] and feed["status_code"] is None
    assert [r for r in records if r["kind"] == "mount"] == [
        {"kind": "mount", "methods": [], "path": "/static", "name": "static",
         "handler": "static_files", "location": None},
        {"kind": "mount", "methods": [], "path": "/legacy", "name": None,
         "handler": "static_files", "location": None},
    ]


def test_table_has_a_row_per_route_and_mount(project: tuple[Path, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    directory, name = project
    assert main(["routes", f"{name}:app", "--app-dir", str(directory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["METHODS", "PATH", "NAME", "HANDLER", "MIDDLEWARE", "GUARDS",
                                "ERRORS", "DEPENDENCIES"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {"/notes/{id:int}", "/notes", "/admin/notes/{id:int}", "/ws/feed",
                         "/static/*", "/legacy/*"}
    assert rows["/ws/feed"].startswith("WS ")
    assert rows["/notes"].startswith("GET,POST ")
    assert rows["/static/*"].split()[:4] == ["MOUNT", "/static/*", "static", "static_files"]
    admin = rows["/admin/notes/{id:int}"]
    assert "timing, audit" in admin
    assert "bearerAuth, current_user, only_admins [admin]  401 403 404" in admin
    assert f"{name}.py:" in rows["/notes/{id:int}"]  # relative: the project is the cwd
    assert rows["/notes/{id:int}"].split()[-3:] == ["404", "get_db,", "get_repo"]
    assert rows["/notes"].split()[-2:] == ["-", "-"]  # no errors, no dependencies


def test_without_a_target_main_py_is_used(project: tuple[Path, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory, name = project
    (directory / "main.py").write_text(f"from {name} import app\n")
    try:
        assert main(["routes", "--json"]) == 0
    finally:
        sys.modules.pop("main", None)
    assert len(json.loads(capsys.readouterr().out)) == 6


def test_an_app_without_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    name = f"empty_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("from joey import App\napp = App()\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert main(["routes", name, "--app-dir", str(tmp_path)]) == 0
        assert capsys.readouterr().out.strip() == "(no routes)"
        assert main(["routes", name, "--app-dir", str(tmp_path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
    finally:
        sys.modules.pop(name, None)


def test_a_plain_asgi_app_has_no_route_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    name = f"plain_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("async def app(scope, receive, send):\n    pass\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert main(["routes", f"{name}:app", "--app-dir", str(tmp_path)]) == 2
    finally:
        sys.modules.pop(name, None)
    assert "is not a joey.App (no route model)" in capsys.readouterr().err


def test_wrong_target_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["routes", "no_such_module_here:app", "--app-dir", str(tmp_path)]) == 2
    assert "No module named 'no_such_module_here'" in capsys.readouterr().err


def test_mounts_are_in_the_model_with_their_full_prefix() -> None:
    async def static(scope: Any, receive: Any, send: Any) -> None:
        pass

    from joey import Router

    app = App()
    api = Router(prefix="/api")
    api.mount("/files", static, name="files")
    app.include_router(api)
    app.mount("/", static)
    assert app.mounts == [MountInfo("", static, None), MountInfo("/api/files", static, "files")]


def test_the_example_app_every_route(capsys: pytest.CaptureFixture[str]) -> None:
    """``joey routes examples.app:app``: one record per route of the example, as its model."""
    from examples.app import app

    assert main(["routes", "examples.app:app", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    expected = [(route.path, list(route.methods), route.name) for route in app.routes]
    assert [(r["path"], r["methods"], r["name"]) for r in records
            if r["kind"] != "mount"] == expected
    put = next(r for r in records if r["path"] == "/books/{book_id:int}"
               and r["methods"] == ["PUT"])
    assert put["guards"] == ["bearerAuth", "librarian"]
    assert {"/books", "/books/{book_id:int}", "/ws/chat/{room}", "/openapi.json"} <= {
        r["path"] for r in records}
