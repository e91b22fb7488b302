"""Compile once, then freeze, under uvicorn (httptools and h11): the lifespan startup, or the
first request when the lifespan is off, freezes the app; a late route is refused, never served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.servers import run_server, uvicorn_argv


@pytest.mark.parametrize("lifespan", ["on", "off"])
@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_started_app_refuses_a_late_route(tmp_path: Path, http: str, lifespan: str) -> None:
    argv = uvicorn_argv("tests.integration.freeze_app:app", "--http", http,
                        "--lifespan", lifespan)
    with run_server(argv, tmp_path, ready_path="/declare") as server:
        refused = httpx.get(server.base_url + "/declare", timeout=10).json()["refused"]
        assert "Declare routes before the app starts" in refused, server.output
        assert httpx.get(server.base_url + "/more", timeout=10).status_code == 404
