"""The notes service as it is deployed: ``uvicorn examples.notes.main:app`` in a process of its
own, configured only by ``NOTES_*`` environment variables, over real HTTP and a real
WebSocket, with both of uvicorn's HTTP parsers. Also: a bad setting stops the server at
startup with the variable's name."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.channels.conftest import RedisServer
from tests.integration.servers import ROOT, run_server, uvicorn_argv


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_the_service_under_uvicorn(http: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
           "NOTES_UPLOAD_DIR": str(tmp_path / "files"), "NOTES_MAX_UPLOAD_SIZE": "100000"}
    argv = uvicorn_argv("examples.notes.main:app", "--http", http, "--ws", "websockets")
    with run_server(argv, tmp_path, env=env) as server, \
            httpx.Client(base_url=server.base_url, timeout=10) as client:
        token = client.post("/users", json={"name": "ann"}).json()["token"]
        auth = {"authorization": f"Bearer {token}"}

        async def notified() -> dict[str, object]:
            async with connect(f"{server.ws_url}/notes/live",
                               additional_headers=auth, open_timeout=5) as ws:
                # written while the socket is open, through another connection
                created = await asyncio.to_thread(
                    client.post, "/notes", json={"title": "over the wire"}, headers=auth)
                assert created.status_code == 201
                message: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 5))
                return message

        message = asyncio.run(notified())
        assert message["event"] == "note.created" and message["title"] == "over the wire"
        note_id = message["note_id"]

        upload = client.post(f"/notes/{note_id}/attachments", headers=auth,
                             files={"file": ("data.bin", b"\x00\xff" * 30_000)})
        assert upload.status_code == 201
        download = client.get(upload.json()["url"], headers=auth)
        assert download.content == b"\x00\xff" * 30_000
        too_big = client.post(f"/notes/{note_id}/attachments", headers=auth,
                              files={"file": ("big.bin", b"x" * 200_000)})
        assert too_big.status_code == 413
        assert len(list((tmp_path / "files").iterdir())) == 1

        page = client.get("/notes?limit=1", headers=auth).json()
        assert page["items"][0]["id"] == note_id and page["next"] is None
        assert client.get("/").headers["content-type"] == "text/html; charset=utf-8"

        async def refused() -> int:
            with pytest.raises(InvalidStatus) as raised:
                async with connect(f"{server.ws_url}/notes/live", open_timeout=5):
                    pass
            return raised.value.response.status_code

        assert asyncio.run(refused()) == 401  # uvicorn sends the denial response as it is
    assert (tmp_path / "notes.db").is_file()


def test_a_bad_setting_stops_the_server_naming_the_variable(tmp_path: Path) -> None:
    argv = uvicorn_argv("examples.notes.main:app").copy()
    argv[argv.index("{port}")] = "0"
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "NOTES_MAX_UPLOAD_SIZE": "lots",
                                 "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    assert "NOTES_MAX_UPLOAD_SIZE: Expected `int`, got `str`" in result.stderr


def test_notifications_cross_processes_through_redis(tmp_path: Path) -> None:
    """Two server processes on one database and one Redis (NOTES_REDIS_URL): a note written
    through one reaches a socket held by the other."""
    redis = RedisServer()
    redis.start()
    env = {"NOTES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}",
           "NOTES_UPLOAD_DIR": str(tmp_path / "files"), "NOTES_REDIS_URL": redis.url}
    argv = uvicorn_argv("examples.notes.main:app", "--ws", "websockets")
    try:
        with run_server(argv, tmp_path, env=env) as first, \
                run_server(argv, tmp_path, env=env) as second:
            token = httpx.post(f"{first.base_url}/users", json={"name": "ann"},
                               timeout=10).json()["token"]
            auth = {"authorization": f"Bearer {token}"}

            async def notified() -> list[dict[str, object]]:
                async with connect(f"{first.ws_url}/notes/live", additional_headers=auth,
                                   open_timeout=5) as ws:
                    for i in range(3):
                        response = await asyncio.to_thread(
                            httpx.post, f"{second.base_url}/notes", json={"title": f"n{i}"},
                            headers=auth, timeout=10)
                        assert response.status_code == 201
                    return [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]

            messages = asyncio.run(notified())
            assert [m["title"] for m in messages] == ["n0", "n1", "n2"]
    finally:
        redis.close()
