"""Fixtures for the task tests: a real redis-server on loopback, worker subprocesses, and the
`transitions` marker: a test marked ``@pytest.mark.transitions("starting:succeeded", ...)`` must
drive each of those transitions of a worker's run (joey/tasks/redis/run.py) in this process,
checked at teardown from the run's DEBUG log. tests/tasks/test_tasks_run.py checks that every
transition of the table has such a test."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from joey._redis import from_url
from joey.tasks import InMemoryTasks
from tests.redis_server import RedisServer, key_prefix, shared_redis

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "transitions(*rows): the run transitions ('state:event') the test drives"
    )


class _Taken(logging.Handler):
    """Collects the transitions runs take, from the lines `Run.handle` logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.taken: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 6:  # name, id, state, event, next, action
            self.taken.add(f"{args[2]}:{args[3]}")


@pytest.fixture(autouse=True)
def _drives_its_transitions(request: pytest.FixtureRequest) -> Iterator[None]:
    rows = {row for mark in request.node.iter_markers("transitions") for row in mark.args}
    if not rows:
        yield
        return
    log = logging.getLogger("joey.tasks.runs")
    handler, level, propagate = _Taken(), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # the tests' own caplog sees no more than it did
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate
    missing = sorted(rows - handler.taken)
    assert not missing, f"not driven: {missing}; the transitions taken: {sorted(handler.taken)}"


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh redis-server on 127.0.0.1 and a free port, for the whole session (the session's
    Redis Cluster with ``JOEY_TEST_REDIS=cluster``: tests/redis_server.py)."""
    with shared_redis(request) as server:
        yield server.url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test Redis, to look at (or tamper with) what the backend wrote.
    No socket timeout: a blocking read's own timeout bounds its wait."""
    redis: aioredis.Redis = from_url(redis_url, socket_timeout=None)
    yield redis
    await redis.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test: tests share one server, never keys."""
    return key_prefix()


@pytest.fixture
async def memory() -> AsyncIterator[InMemoryTasks]:
    tasks = InMemoryTasks(max_concurrency=4, shutdown_timeout=2)
    await tasks.start()
    yield tasks
    await tasks.stop()


WorkerFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(redis_url: str, prefix: str) -> Iterator[WorkerFactory]:
    """Start `python -m joey worker worker_app:app` processes (or another `target`, imported
    from `app_dir`); all are ended at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        concurrency: int = 4,
        visibility: float = 1.5,
        shutdown: float = 2.0,
        target: str = "worker_app:app",
        app_dir: Path = HERE,
        url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **(extra_env or {}),
            "JOEY_TEST_REDIS_URL": url or redis_url,
            "JOEY_TEST_PREFIX": prefix,
            "JOEY_TEST_VISIBILITY": str(visibility),
            "JOEY_TEST_SHUTDOWN": str(shutdown),
            "JOEY_TEST_CONCURRENCY": str(concurrency),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "joey", "worker", target, "--app-dir", str(app_dir),
             "--log-level", "info"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        # Return once the worker consumes, so every test starts from working workers.
        assert proc.stderr is not None
        while b"] started" not in (line := proc.stderr.readline()):
            if not line:
                pytest.fail(f"the worker exited before starting (status {proc.wait(10)})")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def stop_gracefully(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM a worker process, fail the test if it does not stop cleanly; its stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail("the worker did not stop on SIGTERM:\n" + err.decode()[-3000:])
    assert proc.returncode == 0, err.decode()
    return err.decode()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone (AOF off); stopped and removed at teardown."""
    server = RedisServer(prefix="joey-redis-own-")
    server.start()
    yield server
    server.close()


@pytest.fixture
def own_redis_aof() -> Iterator[RedisServer]:
    """The same with the append-only file on (fsync always), to survive restarts."""
    server = RedisServer(durable=True, prefix="joey-redis-own-")
    server.start()
    yield server
    server.close()
