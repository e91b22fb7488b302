"""A long-running handler notices, under a real uvicorn, that its client hung up."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.integration.servers import run_server, uvicorn_argv


def test_long_handler_sees_the_client_leave(tmp_path: Path) -> None:
    with run_server(uvicorn_argv("tests.integration.apps:watcher"), tmp_path,
                    ready_path="/log") as server:
        body = b"x" * 5000
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /long HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + body)
            time.sleep(0.3)  # the handler is now polling is_disconnected()
        deadline = time.monotonic() + 10
        while True:
            log = httpx.get(f"{server.base_url}/log").json()
            if log or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert log == ["client left after sending 5000 bytes"]
