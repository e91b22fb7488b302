"""The notes example service (examples/notes), tested in-process with the test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples.notes.app import create_app
from examples.notes.settings import Settings

from joey import App
from joey.testing import TestClient


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
                    upload_dir=tmp_path / "uploads", max_upload_size=64 * 1024,
                    database_timeout=0.2)


@pytest.fixture
def app(settings: Settings) -> App:
    return create_app(settings)


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def signup(client: TestClient, name: str) -> dict[str, str]:
    """A new user's authorization header."""
    response = client.post("/users", json={"name": name})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['token']}"}
