"""Idle for longer than every timeout involved, then at work at once, with nothing logged.

Every Redis here is a redis-server whose ``timeout`` is 1 s: it closes a client connection
idle for longer (unless subscribed or blocked). Other timeouts are shortened the same way:
the client's socket timeout and health checks (``?socket_timeout=2&health_check_interval=1``),
redis-py's own default socket timeout (5 s in redis-py 8), uvicorn's keep-alive (1 s) and
WebSocket pings (every 0.5 s, 1 s to answer), Granian's header read timeout (1 s).

- the channels backends (pub/sub, Streams), idle with nobody listening, then with one
  subscriber: the next message arrives within milliseconds, no reconnection;
- a real ``joey worker`` process, idle, then a task enqueued: it starts within milliseconds;
- a server (uvicorn with each parser, Granian) idle before anyone connects, then a
  WebSocket and an SSE stream open through it, idle: a message published over HTTP reaches
  both, a task enqueued over HTTP runs, and the keep-alive connection the client kept works
  on.

tests/tasks/test_tasks_redis.py and tests/channels/test_channels_redis.py hold the in-process
cases without the server's timeout (an idle worker and subscriber past the client's socket
timeout).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from joey.channels import Backend, Channels, RedisPubSubBackend, RedisStreamsBackend
from joey.tasks import RedisTasks, TaskInfo, TaskState
from tests.integration.servers import ROOT, run_server, uvicorn_argv
from tests.redis_server import RedisServer
from tests.soak.load import complaints, wait_until

#: redis-server's own idle timeout, in seconds (CONFIG SET timeout)
SERVER_TIMEOUT = 1
#: a client with a short socket timeout and health checks, from its URL. Not shorter: a
#: worker's blocking read waits half the socket timeout, so a loaded machine must answer
#: within the other half (0.3 s left it 150 ms, and a slow reply was logged at ERROR)
SHORT_TIMEOUTS = "?socket_timeout=2&health_check_interval=1"
#: longer than every timeout here
IDLE = 3.0
#: how soon an idle consumer must act, from the event: about 1 ms on loopback; the bound
#: leaves room for a loaded machine and stays far below a reconnection or a restarted read
AT_ONCE = 0.25


@pytest.fixture(scope="module")
def idle_redis(redis_server: RedisServer) -> RedisServer:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.config_set("timeout", SERVER_TIMEOUT)
    finally:
        client.close()
    return redis_server


# -- the channels backends ---------------------------------------------------------------------

Make = Callable[[str, str], Backend]
BACKENDS = [pytest.param(lambda url, prefix: RedisPubSubBackend(url, prefix=prefix), id="pubsub"),
            pytest.param(lambda url, prefix: RedisStreamsBackend(url, prefix=prefix),
                         id="streams")]


@pytest.mark.parametrize("make", BACKENDS)
async def test_idle_channels_outlast_the_servers_timeout_and_deliver_at_once(
    make: Make, idle_redis: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    # Nobody listening, the listening connection used to wait without a command: redis-server
    # closed it after its timeout, and each time the backend logged the loss and the
    # reconnection at WARNING (pub/sub: every timeout, for as long as nobody listened).
    backend = make(idle_redis.url + SHORT_TIMEOUTS, "idle")
    with caplog.at_level(logging.WARNING, logger="joey.channels"):
        async with Channels(backend) as channels:
            await asyncio.sleep(IDLE)  # nobody listens
            async with channels.subscribe("quiet") as subscription:
                for text in ("first", "after a pause"):
                    published = time.monotonic()
                    await channels.publish("quiet", text)
                    message = await asyncio.wait_for(anext(subscription), 10)
                    assert message.text == text
                    assert time.monotonic() - published < AT_ONCE
                    await asyncio.sleep(IDLE)  # one subscriber, idle
    assert [record.getMessage() for record in caplog.records] == []
    assert backend.reconnects == 0  # type: ignore[attr-defined]


# -- a worker process --------------------------------------------------------------------------


@pytest.fixture
def start_worker(idle_redis: RedisServer,
                 soak_env: dict[str, str]) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start ``joey worker tests.soak.app:app`` on ``url``; returns once it consumes."""
    workers: list[subprocess.Popen[bytes]] = []

    def start(url: str) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "joey", "worker", "tests.soak.app:app",
             "--log-level", "info"],
            cwd=ROOT, env={**os.environ, **soak_env, "SOAK_REDIS_URL": url},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        workers.append(worker)
        assert worker.stderr is not None
        while b"] started" not in (line := worker.stderr.readline()):
            assert line, f"the worker exited before starting (status {worker.wait(10)})"
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.communicate(timeout=10)


async def run_a_task(url: str, prefix: str) -> tuple[float, TaskInfo]:
    """Enqueue ``record`` as a web process would (no consuming, the app's prefix and task
    name) and wait for it; when it was enqueued, and how it ended."""
    async with RedisTasks(url, prefix=f"{prefix}:tasks", consume=False) as tasks:
        enqueued = time.time()
        async with asyncio.timeout(20):
            return enqueued, await tasks.wait(await tasks.enqueue("record", 1))


@pytest.mark.parametrize(("query", "idle"), [
    # redis-py's default socket timeout (5 s) is shorter than the worker's blocking read
    # (visibility_timeout=30: 7.5 s); before f316c2d the read failed, logged at ERROR
    ("", 6.5),
    (SHORT_TIMEOUTS, IDLE),
], ids=["redis-py-default", "url-timeout-and-health-checks"])
def test_an_idle_worker_process_starts_a_task_at_once_having_logged_nothing(
    query: str, idle: float, idle_redis: RedisServer, soak_env: dict[str, str],
    start_worker: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    url = idle_redis.url + query
    worker = start_worker(url)
    time.sleep(idle)
    enqueued, info = asyncio.run(run_a_task(url, soak_env["SOAK_PREFIX"]))
    assert info.state is TaskState.SUCCEEDED
    # one machine, one clock; two processes: room for their scheduling, still far below
    # the 1 s a failed read waits before it restarts
    assert info.result["began"] - enqueued < 2 * AT_ONCE

    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err.decode()
    assert complaints(err.decode()) == [], err.decode()


# -- connections through a real server ---------------------------------------------------------

SERVERS = [
    pytest.param(uvicorn_argv("tests.soak.app:app", "--http", http, "--no-access-log",
                              "--timeout-keep-alive", "1", "--ws-ping-interval", "0.5",
                              "--ws-ping-timeout", "1"), id=f"uvicorn-{http}")
    for http in ("httptools", "h11")
] + [pytest.param([sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                   "--port", "{port}", "--http1-header-read-timeout", "1000",
                   "tests.soak.app:app"], id="granian")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("channels", ["pubsub", "streams"])
@pytest.mark.parametrize("argv", SERVERS)
async def test_a_websocket_and_an_sse_stream_outlast_every_timeout_and_still_deliver(
    argv: list[str], channels: str, idle_redis: RedisServer, soak_env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**soak_env, "SOAK_REDIS_URL": idle_redis.url + SHORT_TIMEOUTS,
           "SOAK_CHANNELS": channels}
    with run_server(argv, tmp_path, env=env, ready_path="/plain") as server:
        await asyncio.sleep(SERVER_TIMEOUT * 2)  # a server nobody uses yet: nobody listens
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client, \
                connect(f"{server.ws_url}/rooms/idle/ws", open_timeout=20) as ws, \
                client.stream("GET", "/rooms/idle/events") as stream:

            async def subscribed() -> bool:
                return bool((await client.get("/rooms/idle/subscribers")).json() == 2)

            await wait_until(subscribed, "two subscribers")
            lines = stream.aiter_lines()

            async def next_data() -> str:
                async for line in lines:
                    if line.startswith("data: "):
                        return line.removeprefix("data: ")
                raise AssertionError("the event stream ended")

            # Idle past keep-alive, pings, the header timeout and every Redis timeout; the
            # keep-alive connection of `client` is closed by the server meanwhile.
            await asyncio.sleep(IDLE)
            assert (await client.post("/rooms/idle?text=still+here")).status_code == 200
            assert await asyncio.wait_for(ws.recv(), 10) == "still here"
            assert await asyncio.wait_for(next_data(), 10) == "still here"
            await ws.send("and back")
            assert await asyncio.wait_for(next_data(), 10) == "and back"

            task_id = (await client.post("/tasks?n=1")).text

            async def done() -> bool:
                return bool((await client.get(f"/tasks/{task_id}")).json()["state"]
                            == "succeeded")

            await wait_until(done, "the task to run")
        log = server.output
    assert complaints(log) == [], log[-3000:]
