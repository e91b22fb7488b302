"""What both sides of the Redis backend share: the options, the key names, the client, and how an
outage is told apart and reported (`TasksUnavailable`) to the public API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._redis import RedisClient, slot_prefix
from ..base import TaskBackend, WhenFull
from ..errors import TasksNotRunning, TasksUnavailable, error_text
from .run import Run

GROUP = "workers"  # the consumer group every worker reads the stream through
# What an unreachable, restarting or frozen Redis raises (BusyLoadingError, while it reloads
# its AOF, is a ConnectionError; TimeoutError is our own `asyncio.timeout` running out).
OUTAGE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)
_T = TypeVar("_T")
logger = logging.getLogger("joey.tasks")


class RedisTasksBase(TaskBackend):
    """The configuration and connection of `RedisTasks` (see its docstring for the options)."""

    def __init__(
        self,
        url: str | RedisClient = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "joey:tasks",
        consume: bool = True,
        max_concurrency: int = 10,
        max_queue: int = 100_000,
        when_full: WhenFull = "wait",
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        shutdown_timeout: float = 10.0,
        enqueue_timeout: float = 2.0,
        retry_after: int = 5,
        redis_timeout: float = 5.0,
        commit_timeout: float = 300.0,
        result_ttl: int = 86_400,
        dead_ttl: int = 7 * 86_400,
        keep_dead: int = 1_000,
        poll_interval: float = 1.0,
        confirm_replicas: int = 0,
        confirm_timeout: float = 1.0,
    ) -> None:
        super().__init__(max_concurrency=max_concurrency, shutdown_timeout=shutdown_timeout)
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be > 0, got {visibility_timeout}")
        if when_full not in ("wait", "raise"):
            raise ValueError(f'when_full must be "wait" or "raise", got {when_full!r}')
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be >= 1, got {max_deliveries}")
        if confirm_replicas < 0:
            raise ValueError(f"confirm_replicas must be >= 0, got {confirm_replicas}")
        for option, value in (
            ("confirm_timeout", confirm_timeout),
            ("enqueue_timeout", enqueue_timeout),
            ("redis_timeout", redis_timeout),
            ("commit_timeout", commit_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{option} must be > 0 seconds, got {value}")
        # A URL: our client, created at start() and closed at stop(). A client: the caller's,
        # used as it is and never closed here.
        self.url = url if isinstance(url, str) else ""
        self._given: RedisClient | None = None if isinstance(url, str) else url
        self.prefix = prefix
        self.consume = consume
        self.max_queue = max_queue
        self.when_full: WhenFull = when_full
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries
        self.enqueue_timeout = enqueue_timeout
        self.retry_after = retry_after
        self.redis_timeout = redis_timeout
        self.commit_timeout = commit_timeout
        self.result_ttl = result_ttl
        self.dead_ttl = dead_ttl
        self.keep_dead = keep_dead
        self.poll_interval = poll_interval
        self.confirm_replicas = confirm_replicas
        self.confirm_timeout = confirm_timeout
        # Every key of a queue shares its slot on a cluster (`{prefix}:...`), so each script
        # runs on one shard; on a single Redis the names are the ones earlier versions used.
        keys = slot_prefix(prefix, url)  # a cluster client, or a cluster's URL
        self._stream = f"{keys}:stream"
        self._delayed = f"{keys}:delayed"
        self._dead = f"{keys}:dead"
        self._periodic = f"{keys}:periodic"
        self._stats_key = f"{keys}:stats"
        self._task_prefix = f"{keys}:task:"
        self._unique_prefix = f"{keys}:unique:"
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client: aioredis.Redis | None = None  # (or a RedisCluster: the same commands)
        self._scripts: dict[str, Any] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: dict[bytes, Run] = {}  # entry id -> its run, while its task lives
        self._handed_back: dict[bytes, str] = {}  # entries of runs stop() cancelled -> name
        self._finishing: set[asyncio.Task[None]] = set()  # the task sending finishes, if any
        self._to_finish: list[PendingFinish] = []  # finishes ready, not sent yet
        self._lost: set[bytes] = set()  # running entries another worker took over (warned once)
        # entries whose finish gave up -> whether the run failed (counted if stop() hands back)
        self._gave_up: dict[bytes, bool] = {}
        self._stats: Counter[str] = Counter()  # "name|kind" -> count, flushed by the heartbeat
        self._seconds: dict[str, float] = {}  # task name -> run seconds, flushed likewise
        self._slot_free: asyncio.Event | None = None
        self._wake_promoter: asyncio.Event | None = None
        self._running = False
        self._closing = False
        self._consuming = False
        self._stopped: asyncio.Event | None = None
        self._max_block_ms: int | None = None

    def _unavailable(self, exc: BaseException) -> TasksUnavailable:
        reason = (
            f"no reply within {self.enqueue_timeout:g}s"
            if isinstance(exc, TimeoutError)
            else error_text(exc)
        )
        return TasksUnavailable(
            f"The task queue is unavailable (Redis: {reason}).", retry_after=self.retry_after
        )

    async def _guarded(self, call: Awaitable[_T]) -> _T:
        """Await a Redis call for the public API: bounded by `enqueue_timeout`, and an outage
        raised as `TasksUnavailable`."""
        try:
            async with asyncio.timeout(self.enqueue_timeout):
                return await call
        except OUTAGE as exc:
            raise self._unavailable(exc) from exc

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise TasksNotRunning("RedisTasks is not running: call start() first")
        return self._client


class PendingFinish:
    """One run's finish, waiting for the script that carries it."""

    __slots__ = ("args", "commit_timeout", "done", "give_up", "run", "tries", "what")

    def __init__(self, run: Run, outcome: str, args: list[Any], commit_timeout: float) -> None:
        self.run = run
        self.args = args
        self.what = f"task {run.name} {run.task_id} ({outcome})"
        self.done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self.give_up = time.monotonic() + commit_timeout
        self.commit_timeout = commit_timeout
        self.tries = 0

    def keeps_trying(self, pause: float, exc: BaseException) -> bool:
        """After a try that did not reach Redis: whether to try again (else given up)."""
        if time.monotonic() + pause > self.give_up:
            logger.error(
                "%s: not recorded, Redis unreachable for commit_timeout=%gs (%s); the task runs "
                "again once another worker takes it over",
                self.what, self.commit_timeout, error_text(exc),
            )  # fmt: skip
            self.settle(None)
            return False
        if self.tries == 1:
            logger.warning(
                "%s: Redis unreachable (%s), retrying until it is back",
                self.what, error_text(exc) if not isinstance(exc, TimeoutError) else "timeout",
            )  # fmt: skip
        return True

    def settle(self, reply: bool | BaseException | None) -> None:
        """Hand the run its answer (unless it was cancelled meanwhile)."""
        if self.done.done():
            return
        if isinstance(reply, BaseException):
            self.done.set_exception(reply)
        else:
            self.done.set_result(reply)


__all__ = [
    "GROUP",
    "OUTAGE",
    "PendingFinish",
    "RedisTasksBase",
]
