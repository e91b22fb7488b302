"""When generator dependencies are torn down: after the response (``scope="request"``, the
default) or when the handler has returned, before the response (``scope="function"``), so
that a commit failing in the teardown is the client's answer instead of a log line after a
201."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Literal

import pytest

from joey import App, CallNext, Conflict, Depends, Request, Response
from joey.testing import LifespanError, TestClient


def make_database(path: Path) -> None:
    """Notes belong to a list; the foreign key is checked at COMMIT (deferred), as a
    unique or foreign key check of a real database can be: the handler's INSERT passes, the
    commit in the teardown fails."""
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE lists (id INTEGER PRIMARY KEY);
            CREATE TABLE notes (id INTEGER PRIMARY KEY, list_id INTEGER NOT NULL
                REFERENCES lists(id) DEFERRABLE INITIALLY DEFERRED);
            INSERT INTO lists (id) VALUES (1);
        """)


def notes_app(path: Path, scope: Literal["request", "function"], *,
              handle_integrity: bool = True) -> App:
    """POST /notes?list_id=N inserts a note; the session dependency commits after ``yield``."""

    async def session() -> AsyncIterator[sqlite3.Connection]:
        db = sqlite3.connect(path)
        db.execute("PRAGMA foreign_keys = ON")
        try:
            yield db
            db.commit()  # a deferred foreign key fails here, after the handler returned
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    app = App()
    if handle_integrity:
        @app.exception_handler(sqlite3.IntegrityError)
        async def integrity(request: Request, exc: sqlite3.IntegrityError) -> Response:
            return Response(f"not saved: {exc}", status_code=409)

    @app.post("/notes", status_code=201)
    async def add_note(list_id: int,
                       db: Annotated[sqlite3.Connection, Depends(session, scope=scope)]
                       ) -> dict[str, int]:
        cursor = db.execute("INSERT INTO notes (list_id) VALUES (?)", (list_id,))
        assert cursor.lastrowid is not None
        return {"id": cursor.lastrowid}

    return app


def saved_notes(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [list_id for (list_id,) in db.execute("SELECT list_id FROM notes")]


def test_a_commit_failing_in_a_function_scoped_teardown_is_the_response(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    make_database(path)
    with TestClient(notes_app(path, "function")) as client:
        assert client.post("/notes?list_id=1").status_code == 201
        refused = client.post("/notes?list_id=2")  # no list 2: the commit fails
        assert refused.status_code == 409  # through the app's exception handler
        assert refused.text == "not saved: FOREIGN KEY constraint failed"
    assert saved_notes(path) == [1]


def test_an_unhandled_failure_in_a_function_scoped_teardown_is_a_500(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    make_database(path)
    app = notes_app(path, "function", handle_integrity=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        refused = client.post("/notes?list_id=2")
        assert refused.status_code == 500
        assert refused.json()["title"] == "Internal Server Error"
    with TestClient(app) as client, pytest.raises(sqlite3.IntegrityError):
        client.post("/notes?list_id=2")  # and a test sees the error itself


def test_by_default_the_client_was_told_201_and_the_failure_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "notes.db"
    make_database(path)
    with caplog.at_level(logging.ERROR, logger="joey"), \
            TestClient(notes_app(path, "request")) as client:
        told = client.post("/notes?list_id=2")
        client.wait_for_tasks()  # the teardown runs after the response
    assert told.status_code == 201  # what the default order means: the answer went first
    assert saved_notes(path) == []
    assert "Teardown of a dependency failed" in caplog.text
    assert "FOREIGN KEY constraint failed" in caplog.text


@pytest.mark.parametrize(("scope", "order"), [
    ("request", ["handler", "response", "teardown"]),
    ("function", ["handler", "teardown", "response"]),
])
def test_the_teardown_runs_before_or_after_the_response(scope: Literal["request", "function"],
                                                        order: list[str]) -> None:
    events: list[str] = []

    async def resource() -> AsyncIterator[str]:
        yield "r"
        events.append("teardown")

    async def watch(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        events.append("response")  # the response is ready to be sent
        return response

    app = App(middleware=[watch])

    @app.get("/")
    async def index(r: Annotated[str, Depends(resource, scope=scope)]) -> str:
        events.append("handler")
        return r

    with TestClient(app) as client:
        assert client.get("/").text == "r"
        client.wait_for_tasks()
    assert events == order


def test_a_function_scoped_generator_sees_the_handlers_error_and_cannot_hide_it() -> None:
    events: list[str] = []

    async def rolls_back() -> AsyncIterator[None]:
        try:
            yield
        except Conflict as exc:
            events.append(f"rollback ({exc.detail})")
            raise

    def swallows() -> Iterator[None]:  # a sync generator, run in a thread
        try:
            yield
        except Conflict:
            events.append("swallowed")

    app = App()

    @app.post("/")
    async def index(_a: Annotated[None, Depends(rolls_back, scope="function")],
                    _b: Annotated[None, Depends(swallows, scope="function")]) -> None:
        raise Conflict("taken")

    with TestClient(app) as client:
        answered = client.post("/")
        assert answered.status_code == 409 and answered.json()["detail"] == "taken"
    assert events == ["swallowed", "rollback (taken)"]  # newest first


def test_function_and_request_scoped_generators_each_end_at_their_time() -> None:
    events: list[str] = []

    async def connection() -> AsyncIterator[str]:
        yield "connection"
        events.append("connection closed")

    async def transaction(c: Annotated[str, Depends(connection)]) -> AsyncIterator[str]:
        yield f"transaction on {c}"
        events.append("committed")

    async def watch(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        events.append("response")
        return response

    app = App(middleware=[watch])

    @app.get("/")
    async def index(t: Annotated[str, Depends(transaction, scope="function")]) -> str:
        return t

    with TestClient(app) as client:
        assert client.get("/").text == "transaction on connection"
        client.wait_for_tasks()
    assert events == ["committed", "response", "connection closed"]


def test_one_dependency_declared_with_both_scopes_is_refused_at_startup() -> None:
    async def session() -> AsyncIterator[str]:
        yield "s"

    app = App()

    @app.get("/")
    async def index(a: Annotated[str, Depends(session, scope="function")],
                    b: Annotated[str, Depends(session)]) -> str:
        return a + b

    refused = r'session \(.*\) is declared both with scope="function" and scope="request"'
    with pytest.raises(LifespanError, match=refused), TestClient(app):
        pass


def test_a_later_teardown_depending_on_an_earlier_one_is_refused_at_startup() -> None:
    async def session() -> AsyncIterator[str]:
        yield "s"

    def repository(s: Annotated[str, Depends(session, scope="function")]) -> str:
        return f"repository on {s}"

    async def unit_of_work(r: Annotated[str, Depends(repository)]) -> AsyncIterator[str]:
        yield r  # its teardown would find the session closed

    app = App()

    @app.get("/")
    async def index(u: Annotated[str, Depends(unit_of_work)]) -> str:
        return u

    refused = (r"unit_of_work \(.*\) is torn down after the response, but depends on "
               r'.*session.*declare unit_of_work with scope="function" too')
    with pytest.raises(LifespanError, match=refused), TestClient(app):
        pass


def test_scope_function_on_a_plain_function_or_an_override_changes_nothing() -> None:
    async def session() -> AsyncIterator[str]:
        yield "real"

    app = App()

    @app.get("/")
    async def index(s: Annotated[str, Depends(session, scope="function")],
                    n: Annotated[int, Depends(lambda: 3, scope="function")]) -> str:
        return f"{s} {n}"

    with TestClient(app) as client:
        assert client.get("/").text == "real 3"
        app.dependency_overrides[session] = lambda: "fake"  # no generator: no teardown
        assert client.get("/").text == "fake 3"

