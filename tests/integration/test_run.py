"""``joey run`` over real processes, under uvicorn (httptools and h11) and Granian: ``--reload``
in a temporary copy of an app sees an edited handler on the next request, ``--workers 2`` is
two processes each with the app's lifespan, shutdown closes WebSockets with 1001 and ends
SSE streams with their last event, startup prints where the app listens and its docs page,
and a wrong target or a failing startup exits with a clear status."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.integration.servers import Server, run_server
from tests.integration.test_serve import close_code, pids_seen
from tests.integration.test_shutdown import events

SERVERS = [
    pytest.param(["--server", "uvicorn", "--http", "httptools"], id="uvicorn-httptools"),
    pytest.param(["--server", "uvicorn", "--http", "h11"], id="uvicorn-h11"),
    pytest.param(["--server", "granian"], id="granian"),
]


def run_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "joey", "run", *args, "--host", "127.0.0.1",
            "--port", "{port}"]


def write_app(directory: Path, version: str) -> None:
    """main.py: an app with a docs page (a route the way App(openapi=...) names it)."""
    (directory / "main.py").write_text(textwrap.dedent(f"""
        import os

        from joey import App, Router

        app = App()
        docs = Router(name="openapi")


        @app.get("/")
        async def index() -> dict[str, object]:
            return {{"version": "{version}", "pid": os.getpid()}}


        @docs.get("/api/docs", name="swagger_ui")
        async def page() -> str:
            return "docs"


        app.include_router(docs)
    """))


async def wait_for_version(server: Server, version: str, rewrite: Path | None = None) -> None:
    """Poll ``/`` until it answers ``version`` (20 s at most); rewrite the app meanwhile
    until the file watcher, which may still be starting, notices."""
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as client:
        while True:
            try:
                if (await client.get("/")).json()["version"] == version:
                    return
            except (httpx.TransportError, ValueError):
                pass
            assert time.monotonic() < deadline, server.output
            if rewrite is not None:
                write_app(rewrite, version)
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("server_args", SERVERS)
async def test_reload_serves_an_edited_handler(tmp_path: Path, server_args: list[str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_app(project, "one")
    # no target: the `app` of main.py in --app-dir
    argv = run_argv("--reload", "--app-dir", str(project), *server_args)
    with run_server(argv, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            first = (await client.get("/")).json()
        assert first["version"] == "one"
        await wait_for_version(server, "two", rewrite=project)
        output = server.output
    server_name = server_args[1]
    assert (f"Joey: serving main:app on {server.base_url} with {server_name} (reload)"
            in output)
    assert f"Joey: API docs at {server.base_url}/api/docs" in output


@pytest.mark.parametrize("server_args", SERVERS)
async def test_two_workers_are_two_processes_each_with_the_lifespan(
    tmp_path: Path, server_args: list[str],
) -> None:
    log = tmp_path / "events.log"
    argv = run_argv("tests.integration.apps:streams", "--workers", "2", *server_args)
    with run_server(argv, tmp_path, env={"JOEY_TEST_LOG": str(log)}) as server:
        pids = await asyncio.to_thread(pids_seen, server, 2)
        assert len(pids) == 2 and server.process.pid not in pids
        sockets = [await connect(f"{server.ws_url}/ws") for _ in range(6)]
        for ws in sockets:
            await asyncio.wait_for(ws.recv(), 10)  # the pid: the handler is running
        server.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
        assert codes == [1001] * 6
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        output = server.output
    assert f"Joey: serving tests.integration.apps:streams on {server.base_url}" in output
    assert "(2 workers)" in output and "API docs" not in output
    hooks = [int(line.split()[0]) for line in log.read_text().splitlines()
             if line.endswith("shutdown hook")]
    assert sorted(hooks) == sorted(pids)  # the lifespan ran in every worker
    assert "Traceback" not in output


@pytest.mark.parametrize("server_args", SERVERS)
async def test_shutdown_ends_sse_with_its_last_event_and_closes_websockets_1001(
    tmp_path: Path, server_args: list[str],
) -> None:
    log = tmp_path / "events.log"
    argv = run_argv("tests.integration.apps:streams", *server_args)
    with run_server(argv, tmp_path, env={"JOEY_TEST_LOG": str(log)}) as server:
        ws = await connect(f"{server.ws_url}/ws")
        await asyncio.wait_for(ws.recv(), 10)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client, \
                client.stream("GET", "/sse") as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == "data: hello"
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            rest = [line async for line in lines]
        assert "event: shutdown" in rest and "data: bye" in rest and "retry: 3000" in rest
        assert await close_code(ws) == 1001
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
        assert await asyncio.to_thread(server.process.wait, 30) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10  # not a timeout: the app ended them
    assert events(log) == ["sse finally", "shutdown hook"]


@pytest.mark.parametrize("server_args", SERVERS)
def test_an_app_that_cannot_start_stops_the_server(tmp_path: Path,
                                                   server_args: list[str]) -> None:
    argv = run_argv("tests.integration.apps:failing", "--workers", "2", *server_args)
    with run_server(argv, tmp_path, expect_ready=False) as server:
        status = server.process.wait(30)
        output = server.output
    assert status != 0, output
    assert "connect_to_database" in output and "refused the connection" in output


#: apps that cannot start: each fails when its routes are built, naming the handler's line
CANNOT_START = {
    "signature": ("""
        from joey import App

        app = App()


        @app.get("/items")
        async def items(*names: str) -> list[str]:
            return list(names)
    """, "main.items (", "has *args/**kwargs"),
    "conflict": ("""
        from joey import App

        app = App()


        @app.get("/items/{item_id}")
        async def item(item_id: str) -> str:
            return item_id


        @app.get("/items/{name}")
        async def named(name: str) -> str:
            return name
    """, "RouteConflict: Route '/items/{name}' of main.named (", "conflicts with main.item"),
}


@pytest.mark.parametrize("server_args", SERVERS)
@pytest.mark.parametrize("kind", sorted(CANNOT_START))
def test_an_app_that_cannot_be_built_exits_3_with_one_clear_line(
    tmp_path: Path, server_args: list[str], kind: str,
) -> None:
    """Issue #23: a bad signature or a route conflict used to come out as a traceback
    through joey run's own code (it reads the route model for the docs page), status 1."""
    source, where, what = CANNOT_START[kind]
    (tmp_path / "main.py").write_text(textwrap.dedent(source))
    argv = run_argv("--app-dir", str(tmp_path), "--workers", "2", *server_args)
    with run_server(argv, tmp_path, expect_ready=False) as server:
        assert server.process.wait(30) == 3
        output = server.output
    assert output.startswith("joey run: main:app cannot start: "), output
    assert where in output and f"{tmp_path / 'main.py'}:" in output and what in output
    assert "Traceback" not in output and "Joey: serving" not in output
    assert len(output.splitlines()) == 1, output


@pytest.mark.parametrize("server_args", SERVERS)
def test_workers_that_die_before_serving_stop_the_server(tmp_path: Path,
                                                         server_args: list[str]) -> None:
    """The app imports in joey run's own process, but not in the workers: each dies before
    it serves (status 1, not uvicorn's 3). That is a failed startup, not a crash to restart
    again and again (issue #23); Granian stops on its own."""
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import multiprocessing

        from joey import App

        if multiprocessing.parent_process() is not None:
            raise RuntimeError("settings missing in this worker")

        app = App()


        @app.get("/")
        async def index() -> str:
            return "hello"
    """))
    argv = run_argv("--app-dir", str(tmp_path), "--workers", "2", *server_args)
    with run_server(argv, tmp_path, expect_ready=False) as server:
        status = server.process.wait(30)
        output = server.output
    assert status == (3 if server_args[1] == "uvicorn" else 1), output
    assert "settings missing in this worker" in output
    assert "starting another" not in output


@pytest.mark.parametrize("target", ["tests.integration.apps:nothing", "tests.nowhere:app"])
def test_a_wrong_target_exits_2_before_serving(tmp_path: Path, target: str) -> None:
    with run_server(run_argv(target), tmp_path, expect_ready=False) as server:
        assert server.process.wait(30) == 2
        output = server.output
    assert output.startswith("joey run: ")
    assert "Uvicorn running" not in output


def test_ctrl_c_ends_quietly_under_granian(tmp_path: Path) -> None:
    argv = run_argv("tests.integration.apps:streams", "--server", "granian")
    with run_server(argv, tmp_path) as server:
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(15) == 0
        output = server.output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output


def test_routes_command_runs_as_a_script() -> None:
    done = subprocess.run([sys.executable, "-m", "joey", "routes",
                           "tests.integration.apps:streams"], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == 0, done.stderr
    assert {line.split()[1] for line in done.stdout.splitlines()[1:]} == {
        "/", "/sse", "/endless", "/ws"}
