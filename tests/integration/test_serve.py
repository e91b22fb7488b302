"""``joey.serve`` in every mode, over real processes: one process, ``workers=N`` and
``reload=True``; each keeps the 1001 WebSocket close and runs the shutdown hooks, and
Ctrl+C ends quietly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.servers import Server, run_server
from tests.integration.test_shutdown import serve_argv


async def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(100):  # bounded: the server only echoes what it is sent
            await asyncio.wait_for(ws.recv(), 15)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def pids_seen(server: Server, wanted: int, within: float = 15) -> set[int]:
    """Distinct worker pids answering ``/``, polled until ``wanted`` of them answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + within
    while len(seen) < wanted and time.monotonic() < deadline:
        with httpx.Client(base_url=server.base_url) as client:  # a new connection each time
            seen.add(client.get("/").json()["pid"])
    return seen


def test_ctrl_c_ends_quietly(tmp_path: Path) -> None:
    with run_server(serve_argv("apps.streams"), tmp_path) as server:
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(15) == 0
        output = server.output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "Application shutdown complete" in output


async def test_workers_run_that_many_processes(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    # an App object, not a string: serve finds its module for the workers to import
    argv = serve_argv("apps.streams", workers=2)
    with run_server(argv, tmp_path, env={"JOEY_TEST_LOG": str(log)}) as server:
        pids = await asyncio.to_thread(pids_seen, server, 2)
        assert len(pids) == 2 and server.process.pid not in pids
        sockets = [await connect(f"{server.ws_url}/ws") for _ in range(6)]
        on = {int(await ws.recv()) for ws in sockets}
        server.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
        assert codes == [1001] * 6, f"close codes from workers {on}: {codes}"
        assert await asyncio.to_thread(server.process.wait, 15) == 0
        output = server.output
    hooks = [line.split()[0] for line in log.read_text().splitlines()
             if line.endswith("shutdown hook")]
    assert sorted(int(pid) for pid in hooks) == sorted(pids)  # once in every worker
    assert "Traceback" not in output


def test_workers_replace_a_worker_that_died(tmp_path: Path) -> None:
    with run_server(serve_argv("apps.streams", workers=2), tmp_path) as server:
        first = pids_seen(server, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        now: set[int] = set()
        while time.monotonic() < deadline:
            now = pids_seen(server, 2, within=2)
            if len(now) == 2 and victim not in now:
                break
        assert len(now) == 2 and victim not in now
        assert f"Worker [{victim}] exited" in server.output


def test_workers_stop_when_the_app_cannot_start(tmp_path: Path) -> None:
    argv = serve_argv("'tests.integration.apps:failing'", workers=2)
    with run_server(argv, tmp_path, expect_ready=False) as server:
        assert server.process.wait(30) == 3
        assert "failed to start" in server.output


@pytest.mark.parametrize("target", ["app", "'unguarded:app'"])
def test_workers_without_the_main_guard_stop_and_say_why(tmp_path: Path, target: str) -> None:
    """Issue #23: each worker imports the script again and ran into joey.serve once more,
    died, and was replaced, twice a second, forever. A worker that dies before it serves
    is a failed startup; this one also says what to change."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import sys

        import joey
        from joey import App

        app = App()


        @app.get("/")
        async def index() -> str:
            return "hello"


        joey.serve({target}, port=int(sys.argv[1]), workers=2)
    """))
    with run_server([sys.executable, str(script), "{port}"], tmp_path,
                    expect_ready=False) as server:
        assert server.process.wait(30) == 3
        output = server.output
    assert f'joey.serve(...) call under `if __name__ == "__main__":` in {script}' in output, output
    assert "failed to start" in output and "starting another" not in output
    assert "Traceback" not in output


async def test_reload_restarts_on_a_change_and_keeps_1001(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    module = code / "reloaded_app.py"

    def write(version: str) -> None:
        module.write_text(textwrap.dedent(f"""
            from joey import App, WebSocket

            app = App()

            @app.get("/")
            async def index() -> dict[str, str]:
                return {{"version": "{version}"}}

            @app.websocket("/ws")
            async def ws(websocket: WebSocket) -> None:
                await websocket.accept()
                async for text in websocket.iter_text():
                    await websocket.send_text(text)
        """))

    write("one")
    argv = serve_argv("'reloaded_app:app'", reload=True, reload_dirs=[str(code)])
    path = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
    with run_server(argv, tmp_path, env={"PYTHONPATH": path}) as server:
        client = httpx.AsyncClient(base_url=server.base_url)
        assert (await client.get("/")).json() == {"version": "one"}
        ws = await connect(f"{server.ws_url}/ws")

        async def change() -> None:
            # again until noticed: the file watcher may still be starting (bounded, ~20 s)
            for _ in range(40):
                write("two")
                await asyncio.sleep(0.5)

        changing = asyncio.ensure_future(change())
        try:
            assert await close_code(ws) == 1001  # the old child shut down the Joey way
        finally:
            changing.cancel()
        deadline = time.monotonic() + 20
        while True:
            try:
                if (await client.get("/")).json() == {"version": "two"}:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, server.output
            await asyncio.sleep(0.1)
        await client.aclose()
        server.process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(server.process.wait, 15) == 0
        output = server.output
    assert "Reloading" in output and "Traceback" not in output
