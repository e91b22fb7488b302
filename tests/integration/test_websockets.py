"""WebSockets and the lifespan under a real uvicorn, with the `websockets` client library."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.servers import Server, example_argv, run_server, uvicorn_argv


async def test_echo_text_bytes_and_json(example_server: Server) -> None:
    async with connect(f"{example_server.ws_url}/ws/echo") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
    async with connect(f"{example_server.ws_url}/ws/json") as ws:
        await ws.send(json.dumps({"n": [1, 2, 3]}))
        assert json.loads(await ws.recv()) == {"echo": {"n": [1, 2, 3]}}
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


async def test_unknown_websocket_path_is_refused(example_server: Server) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{example_server.ws_url}/ws/nowhere"):
            pass
    assert refused.value.response.status_code == 403


async def test_room_broadcast_to_50_clients_in_order(example_server: Server) -> None:
    url = f"{example_server.ws_url}/ws/chat/broadcast-test"
    clients = [await connect(url) for _ in range(50)]
    try:
        await _wait_for_open(example_server, 50)
        messages = [f"message {i}" for i in range(20)]
        for text in messages:
            await clients[0].send(text)

        async def collect(ws: object) -> list[str]:
            return [await ws.recv() for _ in messages]  # type: ignore[attr-defined]

        received = await asyncio.wait_for(asyncio.gather(*(collect(c) for c in clients)), 20)
        assert all(got == messages for got in received)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    await _wait_for_open(example_server, 0)


async def test_50_abrupt_disconnects_leak_nothing(example_server: Server) -> None:
    url = f"{example_server.ws_url}/ws/chat/drop-test"
    clients = [await connect(url) for _ in range(50)]
    await _wait_for_open(example_server, 50)
    await clients[0].send("before the drop")
    for ws in clients:
        assert await asyncio.wait_for(ws.recv(), 10) == "before the drop"
    for ws in clients:
        ws.transport.abort()  # no close frame: the TCP connection just dies
    await _wait_for_open(example_server, 0)


async def _wait_for_open(server: Server, expected: int, within: float = 15) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        while True:
            count = (await client.get("/stats")).json()["open_websockets"]
            if count == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"open websockets stayed at {count}, expected {expected}")
            await asyncio.sleep(0.05)


async def test_sigterm_closes_sockets_with_1001_and_runs_shutdown(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown-marker"
    env = {"JOEY_EXAMPLE_SHUTDOWN_MARKER": str(marker)}
    with run_server(example_argv(), tmp_path, env=env) as server:
        sockets = [await connect(f"{server.ws_url}/ws/chat/lobby") for _ in range(3)]
        await _wait_for_open(server, 3)
        server.process.terminate()
        codes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
            assert closed.value.rcvd is not None
            codes.append(closed.value.rcvd.code)
        assert codes == [1001, 1001, 1001]
        # uvicorn re-raises the captured SIGTERM once shut down, so "killed by SIGTERM" is a
        # clean exit here
        assert await asyncio.to_thread(server.process.wait, 15) in (0, -15)
        assert "Application shutdown complete" in server.output
    assert marker.read_text() == "shutdown complete"


def test_startup_hooks_run_before_the_first_request(tmp_path: Path) -> None:
    with run_server(uvicorn_argv("tests.integration.apps:ready"), tmp_path) as server:
        # run_server polled "/" until it answered; the very first answer already saw startup
        assert httpx.get(server.base_url).json() == {"started": ["yes"]}
        first_line = next(line for line in server.output.splitlines() if "GET /" in line)
        assert "200" in first_line


def test_failing_startup_makes_uvicorn_exit_non_zero(tmp_path: Path) -> None:
    with run_server(uvicorn_argv("tests.integration.apps:failing"), tmp_path,
                    expect_ready=False) as server:
        code = server.process.wait(20)
        output = server.output
    assert code != 0
    assert "connect_to_database" in output
    assert "database at 127.0.0.1:1 refused the connection" in output
