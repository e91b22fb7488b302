"""SIGTERM with open streams, under a real uvicorn: ``joey.serve`` ends them within the app's
``shutdown_timeout`` (SSE: last event and retry hint), runs their ``finally`` blocks and the
shutdown hooks; plain uvicorn does the same given ``--timeout-graceful-shutdown``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.servers import Server, run_server, uvicorn_argv

HTTP = ["httptools", "h11"]


def serve_argv(target: str, **options: object) -> list[str]:
    """``joey.serve(target, port=<port>, **options)`` in a fresh interpreter; ``target`` is
    Python source (an import string literal, or ``apps.<name>`` for the App object)."""
    extra = "".join(f", {name}={value!r}" for name, value in options.items())
    code = ("import sys, joey\n"
            "from tests.integration import apps\n"
            f"joey.serve({target}, port=int(sys.argv[1]), log_level='info'{extra})\n")
    return [sys.executable, "-c", code, "{port}"]


def events(log: Path) -> list[str]:
    """What the server processes recorded, without the pids."""
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


async def open_streams(server: Server) -> tuple[asyncio.Task[bytes], asyncio.Task[bytes]]:
    """An SSE stream and an endless download, both started and left open."""
    async def read(path: str, started: asyncio.Event) -> bytes:
        received = b""
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client, \
                client.stream("GET", path) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                received += chunk
                started.set()
        return received

    sse_started, endless_started = asyncio.Event(), asyncio.Event()
    sse = asyncio.ensure_future(read("/sse", sse_started))
    endless = asyncio.ensure_future(read("/endless", endless_started))
    await asyncio.wait_for(asyncio.gather(sse_started.wait(), endless_started.wait()), 10)
    return sse, endless


async def stopped_within(server: Server, seconds: float) -> float:
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(server.process.wait, seconds)  # TimeoutExpired fails the test
    return time.monotonic() - began


@pytest.mark.parametrize("http", HTTP)
async def test_joey_serve_ends_open_streams_on_sigterm(tmp_path: Path, http: str) -> None:
    log = tmp_path / "events.log"
    argv = serve_argv("'tests.integration.apps:streams'", http=http)
    with run_server(argv, tmp_path, env={"JOEY_TEST_LOG": str(log)}) as server:
        sse, endless = await open_streams(server)
        # the app's shutdown_timeout is 5 s; ending the streams takes no waiting at all
        assert await stopped_within(server, 8) < 4
        # both bodies ended cleanly (an unfinished chunked body would raise here)
        sse_body = await asyncio.wait_for(sse, 5)
        assert sse_body == (b"data: hello\nid: 1\n\n"
                            b"event: shutdown\ndata: bye\n\n"
                            b"retry: 3000\n\n")
        assert (await asyncio.wait_for(endless, 5)).startswith(b"x" * 1024)
        output = server.output
    assert sorted(events(log)) == ["endless finally", "shutdown hook", "sse finally"]
    assert events(log)[-1] == "shutdown hook"  # after the streams' finally blocks
    assert "Traceback" not in output and "Application shutdown complete" in output


@pytest.mark.parametrize("http", HTTP)
async def test_plain_uvicorn_with_a_graceful_shutdown_timeout(tmp_path: Path, http: str) -> None:
    log = tmp_path / "events.log"
    argv = uvicorn_argv("tests.integration.apps:streams", "--http", http,
                        "--timeout-graceful-shutdown", "1")
    with run_server(argv, tmp_path, env={"JOEY_TEST_LOG": str(log)}) as server:
        sse, endless = await open_streams(server)
        elapsed = await stopped_within(server, 8)
        assert 0.9 < elapsed < 5  # uvicorn waited its 1 s, then cancelled the requests
        await asyncio.gather(sse, endless, return_exceptions=True)  # cut off: no clean end
        output = server.output
    assert sorted(events(log)) == ["endless finally", "shutdown hook", "sse finally"]
    assert events(log)[-1] == "shutdown hook"
    assert "timeout graceful shutdown exceeded" in output
