"""The Redis task backend: one durable queue shared by web processes and worker processes.

Built directly on Redis Streams with a consumer group (see docs/background-tasks.md for why not
saq, arq or taskiq). Keys, all under `prefix` (default ``joey:tasks``)::

    {prefix}:stream      stream of ready tasks, one entry per delivery: id, name, payload, options
    {prefix}:delayed     sorted set: task id -> Unix time it is due (delays and retry backoffs)
    {prefix}:dead        list of dead task ids, newest first, trimmed to `keep_dead`
    {prefix}:task:<id>   hash: name, encoded arguments, per-call options, state, attempts, ...
    {prefix}:unique:<k>  the id of the queued or running task enqueued with unique key <k>
    {prefix}:periodic    hash: periodic task name -> the last tick claimed
    {prefix}:stats       hash: counters per task name (succeeded, failed, dead, run seconds)

A task's life in Redis, one Lua script per step (`_scripts.py`):

1. *enqueue* writes the hash and adds a stream entry carrying the payload (or a delayed entry);
2. a consuming process reads entries with XREADGROUP (a blocking read: new tasks wake it at
   once) and *starts* everything that read delivered in one script;
3. it runs the function and *finishes*: one script records the outcome and acks the entry.

While a task runs, its worker re-claims the entry every `visibility_timeout / 3` (a heartbeat),
so only a worker that is gone - killed, frozen, cut off - lets an entry sit idle past
`visibility_timeout`; any other worker then takes it over with XAUTOCLAIM and runs it again.
Delivery is at least once: a worker's death is not the task's failure, so the extra run does
not count toward `retries`, but a task is delivered at most `max_deliveries` times per attempt.

Every state change after a run is retried through Redis outages (bounded by `commit_timeout`)
and is idempotent, so a blip neither loses a result nor runs a completed task again. The
worker's client has no socket timeout (which would put every command through `wait_for`);
each blocking read and each commit is bounded by one `asyncio.timeout` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import _scripts
from .base import (
    Backoff,
    EnqueueOptions,
    QueueFull,
    TaskBackend,
    TaskDef,
    TasksNotRunning,
    TasksUnavailable,
    WhenFull,
    cancel_and_wait,
    error_text,
    logger,
    periodic_tasks,
    resolve_timeout,
)
from .periodic import run_schedules
from .state import FINAL_STATES, TaskInfo, TaskState

__all__ = ["RedisTasks"]

_GROUP = "workers"
_RESTART_DELAY = 1.0  # seconds before a loop that hit a Redis error runs again
_Read = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None  # an XREADGROUP reply
# What an unreachable, restarting or frozen Redis raises (BusyLoadingError, while it reloads
# its AOF, is a ConnectionError; TimeoutError is our own `asyncio.timeout` running out).
_OUTAGE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)
_T = TypeVar("_T")


class _Options(msgspec.Struct, array_like=True):
    """Per-call overrides stored with the task; None keeps the worker's registered default."""

    timeout: float | None = None
    retries: int | None = None
    backoff: Backoff | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode_payload = msgspec.msgpack.Decoder(tuple[list[Any], dict[str, Any]]).decode
_decode_options = msgspec.msgpack.Decoder(_Options).decode
_decode_any = msgspec.msgpack.Decoder().decode
_NO_OPTIONS = _encode(_Options())
# A payload too deep for msgspec raises RecursionError, not a DecodeError: both are bad input.
_BAD_PAYLOAD = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


class RedisTasks(TaskBackend):
    """Tasks in Redis, shared by every process that points at the same `url` and `prefix`.

    * `consume`: whether this process runs tasks too. True suits a single process or a small
      deployment; set False in web processes when dedicated workers (`joey worker app:app`)
      run the tasks. The worker command always consumes.
    * `max_concurrency`: tasks this process runs at once, exactly.
    * `max_queue`: tasks held in Redis not yet finished (ready, running, delayed); when it is
      reached `enqueue` waits (polling Redis, since the place frees up in another process) or
      raises `QueueFull`, per `when_full`.
    * `visibility_timeout`: how long a silent worker keeps its tasks before another worker takes
      them over. Heartbeats keep long tasks from being taken while their worker is alive.
    * `max_deliveries`: how many times one attempt is delivered when its workers keep dying
      (kill -9, crash, freeze) before the task is dead-lettered as `WorkerLost`.
    * `shutdown_timeout`: how long `stop()` lets running tasks finish; the rest are cancelled and
      handed back to the queue for another worker.
    * `enqueue_timeout`: the longest `enqueue` (and `status`, `dead_letters`...) waits for
      Redis; past it, or when Redis is down, they raise `TasksUnavailable` (a 503 with
      ``Retry-After: retry_after`` when raised in a handler).
    * `redis_timeout`: how long a worker waits for a Redis reply (beyond a blocking read's own
      wait) before it treats Redis as unreachable; `commit_timeout`: how long it keeps retrying
      to record a finished run while Redis is unreachable.
    * `result_ttl` / `dead_ttl`: seconds Redis keeps a finished / dead task's record.

    Task arguments and results cross process boundaries encoded with msgspec (MessagePack):
    use msgspec-encodable values (str, int, float, bool, None, lists, dicts, datetimes,
    msgspec Structs, dataclasses...); they arrive as the plain decoded types.

    Example::

        app = App(tasks=RedisTasks("redis://127.0.0.1:6379/0", consume=False))

        @app.task(name="emails.welcome", retries=3)
        async def send_welcome(user_id: int) -> None: ...
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
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
    ) -> None:
        super().__init__(max_concurrency=max_concurrency, shutdown_timeout=shutdown_timeout)
        if visibility_timeout <= 0:
            raise ValueError(f"visibility_timeout must be > 0, got {visibility_timeout}")
        if when_full not in ("wait", "raise"):
            raise ValueError(f'when_full must be "wait" or "raise", got {when_full!r}')
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be >= 1, got {max_deliveries}")
        for option, value in (
            ("enqueue_timeout", enqueue_timeout),
            ("redis_timeout", redis_timeout),
            ("commit_timeout", commit_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{option} must be > 0 seconds, got {value}")
        self.url = url
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
        self._stream = f"{prefix}:stream"
        self._delayed = f"{prefix}:delayed"
        self._dead = f"{prefix}:dead"
        self._periodic = f"{prefix}:periodic"
        self._stats_key = f"{prefix}:stats"
        self._task_prefix = f"{prefix}:task:"
        self._unique_prefix = f"{prefix}:unique:"
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: dict[bytes, tuple[str, asyncio.Task[None]]] = {}  # entry id -> task
        self._names: dict[bytes, str] = {}  # entry id -> task name, for the shutdown report
        self._cancelled: set[bytes] = set()  # entries whose attempt stop() cancelled
        self._stats: Counter[str] = Counter()  # "name|kind" -> count, flushed by the heartbeat
        self._seconds: dict[str, float] = {}  # task name -> run seconds, flushed likewise
        self._slot_free: asyncio.Event | None = None
        self._wake_promoter: asyncio.Event | None = None
        self._running = False
        self._closing = False
        self._consuming = False
        self._stopped: asyncio.Event | None = None
        self._max_block_ms: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, consume: bool | None = None) -> None:
        """Connect, and with `consume` (default: the constructor's) start running tasks."""
        if self._running:
            return
        # No socket timeout unless the URL sets one (``?socket_timeout=``): with one, redis-py
        # sends every command through `asyncio.wait_for` (a new task each on 3.11). Waits are
        # bounded by our own `asyncio.timeout` per read or commit instead; keepalive notices a
        # peer that vanished from the network.
        client = aioredis.Redis.from_url(
            self.url,
            protocol=2,
            socket_keepalive=True,
            socket_connect_timeout=self.redis_timeout,
        )
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        self._max_block_ms = int(socket_timeout * 500) if socket_timeout else None
        self._scripts = {
            name: client.register_script(getattr(_scripts, name.upper()))
            for name in (
                "enqueue", "start", "finish", "promote", "hand_back", "requeue", "drop",
                "reap", "tick",
            )
        }  # fmt: skip
        try:
            async with asyncio.timeout(self.redis_timeout):
                # Id "0": entries added before any worker created the group are delivered too.
                await client.xgroup_create(self._stream, _GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                await client.aclose()
                raise
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        self._closing = False
        self._running = True
        self._stopped = asyncio.Event()
        self._consuming = self.consume if consume is None else consume
        if self._consuming:
            self._open_executor()
            self._slot_free = asyncio.Event()
            self._slot_free.set()
            self._wake_promoter = asyncio.Event()
            loops = [("consume", self._consume_loop), ("promote", self._promote_loop)]
            if periodic_tasks(self):
                loops.append(("periodic", self._periodic_loop))
            loops.append(("heartbeat", self._heartbeat_loop))  # last: stop() pops it
            self._loops = [
                asyncio.create_task(self._keep_running(loop), name=f"joey-tasks-{name}")
                for name, loop in loops
            ]

    @property
    def consuming(self) -> bool:
        """Whether this process is running tasks now (started, and consuming)."""
        return self._running and self._consuming

    async def stop(self) -> None:
        if not self._running:
            return
        assert self._stopped is not None and self._client is not None
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        client = self._client
        try:
            if self._consuming:
                await self._stop_consuming(client)
            async with asyncio.timeout(self.redis_timeout):
                waiting = await client.xlen(self._stream) + await client.zcard(self._delayed)
            if waiting:
                logger.info("task backend stopped: %d task(s) wait in Redis for a worker", waiting)
        except _OUTAGE as exc:
            logger.error(
                "task backend stopped without reaching Redis: %s; tasks this worker held "
                "are taken over by others after visibility_timeout",
                error_text(exc),
            )
        finally:
            self._close_executor()
            await client.aclose()
            self._client = None
            self._running = False
            self._stopped.set()

    async def _stop_consuming(self, client: aioredis.Redis) -> None:
        # Take no more work; the heartbeat keeps running so tasks finishing within
        # shutdown_timeout are not taken over by another worker meanwhile.
        # The loops also end on their own at their next turn, since `_closing` is set.
        heartbeat = self._loops.pop()
        await cancel_and_wait(self._loops)
        runs = [run for _, run in self._inflight.values()]
        if runs:
            _, late = await asyncio.wait(runs, timeout=self.shutdown_timeout)
            await cancel_and_wait(late, every=1.0)  # gentler: task code may clean up
        await cancel_and_wait([heartbeat])
        self._loops = []
        await self._flush_stats(client)

        # Everything still pending for this consumer goes back to the stream: attempts we
        # cancelled, and entries a cancelled XREADGROUP received but never handed to us.
        async with asyncio.timeout(self.redis_timeout):
            pending = await client.xpending_range(
                self._stream, _GROUP, min="-", max="+", count=10_000, consumername=self.consumer
            )
        handed: list[str] = []
        for item in pending:
            entry_id = cast(bytes, item["message_id"])
            cancelled = entry_id in self._cancelled
            async with asyncio.timeout(self.redis_timeout):
                task_id = await self._task_id_of(client, entry_id)
                if task_id is None:
                    await client.xack(self._stream, _GROUP, entry_id)
                    continue
                back = await self._scripts["hand_back"](
                    keys=[self._stream, self._task_prefix + task_id],
                    args=[_GROUP, entry_id, task_id, "1" if cancelled else "0"],
                )
            if back and cancelled:
                handed.append(self._names.get(entry_id, "?"))
        if handed:
            counts = Counter(handed)
            logger.warning(
                "task backend stopped: %d running task(s) cancelled after shutdown_timeout=%gs "
                "and handed back to the queue: %s",
                len(handed),
                self.shutdown_timeout,
                ", ".join(f"{name} x{n}" for name, n in counts.most_common()),
            )
        self._cancelled.clear()
        self._names.clear()
        with contextlib.suppress(ResponseError):
            async with asyncio.timeout(self.redis_timeout):
                await client.xgroup_delconsumer(self._stream, _GROUP, self.consumer)

    async def _task_id_of(self, client: aioredis.Redis, entry_id: bytes) -> str | None:
        known = self._inflight.get(entry_id)
        if known is not None:
            return known[0]
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await client.xrange(self._stream, entry_id, entry_id),
        )
        if not entries:
            return None
        raw = entries[0][1].get(b"id")
        return raw.decode() if raw else None

    # -- enqueueing ---------------------------------------------------------------------------

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
        except _OUTAGE as exc:
            raise self._unavailable(exc) from exc

    async def _submit(
        self,
        task: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: EnqueueOptions | None,
    ) -> str:
        client = self._client
        if client is None or self._closing:
            raise TasksNotRunning(
                "RedisTasks is not running: the app starts it at startup, "
                "or use `async with tasks:`"
            )
        # A name that is not registered here is accepted: the web process need not import the
        # code that only workers run. The worker marks it DEAD if it does not know it either.
        defn = self._lookup(task)
        name = defn.name if defn is not None else str(task)
        payload = _encode_payload(name, args, kwargs)
        delay = None
        options = _NO_OPTIONS
        when_full = self.when_full
        retries = defn.retries if defn is not None else None
        unique = ""
        unique_key = self._task_prefix  # a placeholder key when there is no unique key
        if opts is not None:
            delay = opts.delay
            options = _encode(_Options(opts.timeout, opts.retries, opts.backoff))
            when_full = opts.when_full or when_full
            retries = opts.retries if opts.retries is not None else retries
            if opts.unique is not None:
                unique = "replace" if opts.replace else "keep"
                unique_key = self._unique_prefix + opts.unique
        now = time.time()
        task_id = uuid.uuid4().hex
        argv: list[Any] = [
            task_id,
            self.max_queue,
            f"{now + delay!r}" if delay else "",
            name,
            payload,
            options,
            unique,
            self._task_prefix,
            repr(now),
            0 if retries is None else retries + 1,
            self.result_ttl,
        ]
        keys = [self._task_prefix + task_id, self._stream, self._delayed, unique_key]
        pause = 0.01
        while True:
            try:
                async with asyncio.timeout(self.enqueue_timeout):
                    added = await self._scripts["enqueue"](keys=keys, args=argv)
            except _OUTAGE as exc:
                raise self._unavailable(exc) from exc
            if added[0]:
                break
            if when_full == "raise":
                raise QueueFull(f"the task queue in Redis is full ({self.max_queue} tasks)")
            # The place frees up in whichever process finishes a task: poll, backing off.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            if self._closing:
                raise TasksNotRunning("the task backend is stopping: no new tasks")
        if delay and self._wake_promoter is not None:
            self._wake_promoter.set()
        return cast(bytes, added[1]).decode()

    # -- consuming ----------------------------------------------------------------------------

    async def _keep_running(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a background loop until stop(); a Redis error (a restart, a network cut) is
        logged and the loop restarted, so a worker never silently stops consuming."""
        while not self._closing:
            try:
                await loop()
            except Exception as exc:
                if self._closing:
                    return
                if isinstance(exc, TimeoutError):
                    reason = f"Redis did not answer within redis_timeout={self.redis_timeout:g}s"
                else:
                    reason = error_text(exc)
                logger.error(
                    "task backend: %s failed, restarting it in %gs: %s",
                    loop.__name__, _RESTART_DELAY, reason,
                    exc_info=None if isinstance(exc, _OUTAGE) else exc,
                )  # fmt: skip
                await asyncio.sleep(_RESTART_DELAY)

    async def _consume_loop(self) -> None:
        assert self._client is not None and self._slot_free is not None
        client = self._client
        # XAUTOCLAIM runs in this same loop so that new and reclaimed work share one count of
        # free slots: max_concurrency stays exact.
        reclaim_every = max(self.visibility_timeout / 4, 0.05)
        next_reclaim = 0.0
        while not self._closing:
            await self._slot_free.wait()
            if time.monotonic() >= next_reclaim:
                next_reclaim = time.monotonic() + reclaim_every
                async with asyncio.timeout(self.redis_timeout):
                    _, claimed, _ = await client.xautoclaim(
                        self._stream,
                        _GROUP,
                        self.consumer,
                        min_idle_time=int(self.visibility_timeout * 1000),
                        start_id="0-0",
                        count=self._free(),
                    )
                if claimed:
                    await self._start_runs(client, claimed)
                if not self._free():
                    continue
            block = max(1, int((next_reclaim - time.monotonic()) * 1000))
            if self._max_block_ms is not None:  # half the URL's socket timeout
                block = min(block, self._max_block_ms)
            # perf: one timeout per read rather than redis-py's wait_for per command.
            async with asyncio.timeout(block / 1000 + self.redis_timeout):
                reply: _Read = await client.xreadgroup(  # type: ignore[assignment]
                    _GROUP, self.consumer, {self._stream: ">"}, count=self._free(), block=block
                )
            if self._closing:
                return  # what this read got stays pending here: stop() hands it back
            for _, entries in reply or ():
                if entries:
                    await self._start_runs(client, entries)

    def _free(self) -> int:
        return self.max_concurrency - len(self._inflight)

    async def _start_runs(
        self, client: aioredis.Redis, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> None:
        """Mark every task of one read RUNNING in one script, then run them.

        If the script fails (Redis went away), the entries stay pending here unstarted and
        are taken over once idle past `visibility_timeout`, by this worker or another.
        """
        keys = [self._stream, self._dead]
        args: list[Any] = [
            repr(time.time()),
            self.consumer,
            self.max_deliveries,
            _GROUP,
            self.dead_ttl,
            self.keep_dead,
        ]
        runnable: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"id")
            if raw is None:  # pragma: no cover - an entry not written by this module
                continue
            task_id = raw.decode()
            keys.append(self._task_prefix + task_id)
            args += (entry_id, task_id)
            runnable.append((entry_id, fields, task_id))
        if not runnable:
            return
        async with asyncio.timeout(self.redis_timeout):
            started = await self._scripts["start"](keys=keys, args=args)
        for (entry_id, fields, task_id), answer in zip(runnable, started, strict=True):
            if answer[0] == b"run":
                self._spawn(entry_id, task_id, fields, int(answer[1]), int(answer[2]))
            elif answer[0] == b"lost":
                name = fields.get(b"name", b"?").decode()
                self._count(name, "dead")
                logger.error(
                    "task %s %s is dead: delivered %d times, each time its worker stopped "
                    "responding (max_deliveries)",
                    name, task_id, self.max_deliveries,
                )  # fmt: skip

    def _spawn(
        self,
        entry_id: bytes,
        task_id: str,
        fields: dict[bytes, bytes],
        attempts: int,
        failures: int,
    ) -> None:
        run = asyncio.create_task(self._run(entry_id, task_id, fields, attempts, failures))
        self._inflight[entry_id] = (task_id, run)
        run.add_done_callback(lambda _: self._release(entry_id))
        if not self._free():
            assert self._slot_free is not None
            self._slot_free.clear()

    def _release(self, entry_id: bytes) -> None:
        self._inflight.pop(entry_id, None)
        if self._slot_free is not None:
            self._slot_free.set()

    async def _run(
        self,
        entry_id: bytes,
        task_id: str,
        fields: dict[bytes, bytes],
        attempts: int,
        failures: int,
    ) -> None:
        name = fields.get(b"name", b"").decode()
        self._names[entry_id] = name
        run = _Run(self, entry_id, task_id, name, attempts, failures)
        defn = self._by_name.get(name)
        if defn is None:
            await run.dead(
                0, f"TaskNotRegistered: no task named {name!r} in worker {self.consumer}"
            )
            return
        try:
            raw_options = fields.get(b"options")
            options = _decode_options(raw_options) if raw_options else _Options()
            args, kwargs = _decode_payload(fields.get(b"payload", b""))
        except _BAD_PAYLOAD as exc:
            # Retrying cannot help: the same bytes fail the same way.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            error = f"BadPayload: the task's arguments cannot be decoded: {reason}"
            logger.error("task %s %s is dead: %s", name, task_id, error)
            await run.dead(0, error)
            return
        retries = options.retries if options.retries is not None else defn.retries
        run.max_attempts = retries + 1
        timeout = resolve_timeout(options.timeout if options.timeout is not None else defn.timeout)
        began = time.monotonic()
        try:
            result = await self._call(defn, args, kwargs, timeout)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._cancelled.add(entry_id)  # stop() hands it back
                raise
            await run.failed(defn, options, retries, exc, time.monotonic() - began)
        except Exception as exc:
            await run.failed(defn, options, retries, exc, time.monotonic() - began)
        else:
            self._add_seconds(name, time.monotonic() - began)
            try:
                encoded = _encode(result)
            except (TypeError, msgspec.EncodeError, RecursionError):
                logger.debug("task %s %s: result not kept, msgspec cannot encode it", name, task_id)
                encoded = b""
            await run.succeeded(encoded)
        self._names.pop(entry_id, None)

    async def _commit(self, what: str, keys: list[Any], args: list[Any]) -> bool:
        """Run the finish script, retrying through a Redis outage with backoff until it is back
        or `commit_timeout` has passed. The script is idempotent, so a retry of a commit that
        was applied before the connection dropped changes nothing. True once recorded."""
        pause = 0.05
        give_up = time.monotonic() + self.commit_timeout
        tries = 0
        while True:
            tries += 1
            try:
                async with asyncio.timeout(self.redis_timeout):
                    await self._scripts["finish"](keys=keys, args=args)
            except _OUTAGE as exc:
                if time.monotonic() + pause > give_up:
                    logger.error(
                        "%s: not recorded, Redis unreachable for commit_timeout=%gs (%s); the "
                        "task runs again once another worker takes it over",
                        what, self.commit_timeout, error_text(exc),
                    )  # fmt: skip
                    return False
                if tries == 1:
                    logger.warning(
                        "%s: Redis unreachable (%s), retrying until it is back",
                        what, error_text(exc) if not isinstance(exc, TimeoutError) else "timeout",
                    )  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if tries > 1:
                logger.warning("%s: recorded after %d tries", what, tries)
            return True

    def _count(self, name: str, kind: str) -> None:
        self._stats[f"{name}|{kind}"] += 1

    def _add_seconds(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    async def _flush_stats(self, client: aioredis.Redis) -> None:
        """Add this process's counters to `{prefix}:stats` (one pipeline; kept on failure)."""
        if not self._stats and not self._seconds:
            return
        stats, seconds = self._stats, self._seconds
        self._stats, self._seconds = Counter(), {}
        try:
            async with asyncio.timeout(self.redis_timeout):
                async with client.pipeline(transaction=False) as pipe:
                    for field, n in stats.items():
                        pipe.hincrby(self._stats_key, field, n)
                    for name, total in seconds.items():
                        pipe.hincrbyfloat(self._stats_key, f"{name}|seconds", total)
                    await pipe.execute()
        except _OUTAGE:
            self._stats.update(stats)
            for name, total in seconds.items():
                self._add_seconds(name, total)

    async def _promote_loop(self) -> None:
        assert self._wake_promoter is not None and self._client is not None
        wake = self._wake_promoter
        # Another process may add a task due sooner than the next one known here, so the sleep
        # is capped at `poll_interval`; tasks scheduled by this process wake it at once.
        while not self._closing:
            wake.clear()
            async with asyncio.timeout(self.redis_timeout):
                moved, next_due = await self._scripts["promote"](
                    keys=[self._delayed, self._stream],
                    args=[repr(time.time()), self._task_prefix, 500],
                )
            if moved >= 500:
                continue
            pause = self.poll_interval
            if next_due:
                pause = min(pause, max(float(next_due) - time.time(), 0.0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await wake.wait()

    async def _periodic_loop(self) -> None:
        """Claim each periodic task's ticks as they come due (see `_claim_tick`)."""
        await run_schedules(periodic_tasks(self), self._claim_tick)

    async def _claim_tick(self, defn: TaskDef, tick: float) -> bool:
        """Enqueue the run of `defn` for `tick` unless another worker claimed it already."""
        assert self._client is not None
        task_id = uuid.uuid4().hex
        async with asyncio.timeout(self.redis_timeout):
            claimed = await self._scripts["tick"](
                keys=[self._periodic, self._task_prefix + task_id, self._stream],
                args=[
                    defn.name, repr(tick), task_id, _encode(([], {})), _NO_OPTIONS,
                    repr(time.time()), defn.retries + 1,
                ],
            )  # fmt: skip
        return bool(claimed)

    async def _heartbeat_loop(self) -> None:
        assert self._client is not None
        client = self._client
        beat = self.visibility_timeout / 3
        beats = 0
        while not self._closing:
            await asyncio.sleep(beat)
            beats += 1
            try:
                async with asyncio.timeout(self.redis_timeout):
                    if self._inflight:
                        # Re-claiming our own entries resets their idle time (JUSTID: without
                        # counting a delivery), so XAUTOCLAIM elsewhere leaves them alone.
                        await client.xclaim(
                            self._stream, _GROUP, self.consumer, 0, list(self._inflight),
                            justid=True,
                        )  # fmt: skip
                    if beats % 3 == 0:
                        # Consumers of killed workers, once their entries were taken over.
                        await self._scripts["reap"](
                            keys=[self._stream],
                            args=[_GROUP, int(self.visibility_timeout * 3000), self.consumer],
                        )
            except _OUTAGE as exc:
                # Beat again soon: a missed beat for longer than visibility_timeout would let
                # another worker take over tasks that are still running here.
                logger.debug("task backend: heartbeat failed: %s", error_text(exc))
                beat = min(0.1, self.visibility_timeout / 3)
                continue
            beat = self.visibility_timeout / 3
            await self._flush_stats(client)

    # -- reading state ------------------------------------------------------------------------

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise TasksNotRunning("RedisTasks is not running: call start() first")
        return self._client

    async def status(self, task_id: str) -> TaskInfo | None:
        client = self._require_client()
        raw = cast(
            dict[bytes, bytes], await self._guarded(client.hgetall(self._task_prefix + task_id))
        )
        return _info(task_id, raw) if raw else None

    async def wait(self, task_id: str) -> TaskInfo:
        """Wait until the task is final (polls Redis, backing off from 5 ms to 250 ms)."""
        pause = 0.005
        while True:
            info = await self.status(task_id)
            if info is None:
                raise LookupError(f"unknown task id {task_id!r}")
            if info.state in FINAL_STATES:
                return info
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def dead_letters(self, limit: int = 100) -> list[TaskInfo]:
        client = self._require_client()
        raw_ids = cast(list[bytes], await self._guarded(client.lrange(self._dead, 0, limit - 1)))
        ids = [raw.decode() for raw in raw_ids]
        raws = await self._guarded(self._hgetall_many(client, ids))
        return [_info(task_id, raw) for task_id, raw in zip(ids, raws, strict=True) if raw]

    async def _hgetall_many(self, client: aioredis.Redis, ids: list[str]) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self._task_prefix + task_id)
            return await pipe.execute()

    async def requeue(self, task_id: str) -> bool:
        self._require_client()
        moved = await self._guarded(
            self._scripts["requeue"](
                keys=[self._dead, self._task_prefix + task_id, self._stream], args=[task_id]
            )
        )
        return bool(moved)

    async def drop(self, task_id: str) -> bool:
        """Delete a dead task for good; False if it is not in the dead-letter list."""
        self._require_client()
        dropped = await self._guarded(
            self._scripts["drop"](keys=[self._dead, self._task_prefix + task_id], args=[task_id])
        )
        return bool(dropped)

    # -- operations: `joey tasks` and metrics --------------------------------------------------

    async def overview(self, limit: int = 100_000) -> dict[str, dict[str, int]]:
        """Tasks per name and place: ``{"emails.welcome": {"queued": 3, "running": 1,
        "scheduled": 0, "dead": 2}}``. Reads at most `limit` entries of each place; meant for
        operations (`joey tasks`, a metrics scrape), not for a request's hot path."""
        client = self._require_client()
        return await self._guarded(self._overview(client, limit))

    async def _overview(self, client: aioredis.Redis, limit: int) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}

        def add(name: str, place: str) -> None:
            row = counts.setdefault(name, dict.fromkeys(_PLACES, 0))
            row[place] += 1

        pending = {
            cast(bytes, item["message_id"])
            for item in await client.xpending_range(
                self._stream, _GROUP, min="-", max="+", count=limit
            )
        }
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await client.xrange(self._stream, "-", "+", count=limit),
        )
        for entry_id, fields in entries:
            add(fields.get(b"name", b"?").decode(), "running" if entry_id in pending else "queued")
        for place, ids in (
            ("scheduled", await client.zrange(self._delayed, 0, limit - 1)),
            ("dead", await client.lrange(self._dead, 0, limit - 1)),
        ):
            async with client.pipeline(transaction=False) as pipe:
                for raw in cast(list[bytes], ids):
                    pipe.hget(self._task_prefix + raw.decode(), "name")
                for name in await pipe.execute():
                    if name is not None:
                        add(name.decode(), place)
        return dict(sorted(counts.items()))

    async def metrics(self) -> str:
        """The queue in the Prometheus text format, for a scrape (no client library needed).

        Gauges per task name: ``joey_tasks`` by `state` (queued, running, scheduled, dead);
        counters summed over every worker: ``joey_tasks_finished_total`` by `outcome`
        (succeeded, failed, dead) and ``joey_task_run_seconds_total``. Workers add their
        counts to Redis once per heartbeat. Example::

            @app.get("/metrics")
            async def metrics(request: Request) -> Response:
                return Response(await app.tasks.metrics(), media_type="text/plain")
        """
        client = self._require_client()
        overview = await self.overview()
        raw = cast(dict[bytes, bytes], await self._guarded(client.hgetall(self._stats_key)))
        lines = [
            "# HELP joey_tasks Tasks in the queue by task name and state.",
            "# TYPE joey_tasks gauge",
        ]
        for name, row in overview.items():
            for place, n in row.items():
                lines.append(f'joey_tasks{{task="{_label(name)}",state="{place}"}} {n}')
        finished: list[str] = []
        seconds: list[str] = []
        for field, value in sorted(raw.items()):
            name, _, kind = field.decode().rpartition("|")
            if kind == "seconds":
                seconds.append(f'joey_task_run_seconds_total{{task="{_label(name)}"}} '
                               f"{float(value):.6f}")  # fmt: skip
            else:
                finished.append(
                    f'joey_tasks_finished_total{{task="{_label(name)}",outcome="{kind}"}} '
                    f"{int(value)}"
                )
        lines += [
            "# HELP joey_tasks_finished_total Runs that ended, by task name and outcome.",
            "# TYPE joey_tasks_finished_total counter",
            *finished,
            "# HELP joey_task_run_seconds_total Time spent running tasks, by task name.",
            "# TYPE joey_task_run_seconds_total counter",
            *seconds,
        ]
        return "\n".join(lines) + "\n"


class _Run:
    """One delivered run of a task, and the three ways its commit can go.

    Each commit is the finish script with this run's token (consumer, attempts), retried
    through outages by `RedisTasks._commit`.
    """

    __slots__ = ("attempts", "backend", "entry_id", "failures", "max_attempts", "name", "task_id")

    def __init__(
        self,
        backend: RedisTasks,
        entry_id: bytes,
        task_id: str,
        name: str,
        attempts: int,
        failures: int,
    ) -> None:
        self.backend = backend
        self.entry_id = entry_id
        self.task_id = task_id
        self.name = name
        self.attempts = attempts
        self.failures = failures
        self.max_attempts = 1  # set once the task's options are known

    async def _finish(
        self, outcome: str, ttl: int, error: str, result: bytes, run_at: str, failures: int
    ) -> None:
        b = self.backend
        await b._commit(
            f"task {self.name} {self.task_id} ({outcome})",
            [b._task_prefix + self.task_id, b._stream, b._delayed, b._dead],
            [
                _GROUP, self.entry_id, self.task_id, outcome, b.consumer, self.attempts,
                repr(time.time()), ttl, b.keep_dead, error, result, run_at, failures,
                self.max_attempts,
            ],
        )  # fmt: skip

    async def succeeded(self, result: bytes) -> None:
        self.backend._count(self.name, "succeeded")
        await self._finish("ok", self.backend.result_ttl, "", result, "", self.failures)

    async def dead(self, failures: int, error: str) -> None:
        self.backend._count(self.name, "dead")
        await self._finish("dead", self.backend.dead_ttl, error, b"", "", failures)

    async def failed(
        self, defn: TaskDef, options: _Options, retries: int, exc: BaseException, seconds: float
    ) -> None:
        b = self.backend
        b._add_seconds(self.name, seconds)
        b._count(self.name, "failed")
        failures = self.failures + 1
        error = error_text(exc)
        if failures > retries:
            logger.error(
                "task %s %s is dead after %d attempt(s): %s",
                self.name, self.task_id, failures, error, exc_info=exc,
            )  # fmt: skip
            await self.dead(failures, error)
            return
        delay = (options.backoff or defn.backoff).delay(failures)
        logger.warning(
            "task %s %s failed (attempt %d of %d), retrying in %.2fs: %s",
            self.name, self.task_id, failures, retries + 1, delay, error,
        )  # fmt: skip
        await self._finish(
            "retry", 0, error, b"", repr(time.time() + delay), failures
        )
        if b._wake_promoter is not None:
            b._wake_promoter.set()


def _encode_payload(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    try:
        return _encode((args, kwargs))
    except RecursionError:
        raise TypeError(
            f"task {name}: its arguments are nested too deeply to send through Redis "
            "(msgspec's limit is about 1,000 levels): pass a flatter structure, or an id "
            "the task can load the data by"
        ) from None
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(
            f"task {name}: RedisTasks sends arguments through Redis encoded with msgspec, "
            f"and these cannot be encoded: {exc}"
        ) from exc


_PLACES = ("queued", "running", "scheduled", "dead")


def _label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


def _info(task_id: str, raw: dict[bytes, bytes]) -> TaskInfo:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    payload = raw.get(b"payload")
    if payload:
        # A payload the worker could not decode either (too deep, corrupt) shows as no
        # arguments; the task's `error` says why. status() itself must not fail on it.
        with contextlib.suppress(*_BAD_PAYLOAD):
            decoded_args, kwargs = _decode_payload(payload)
            args = tuple(decoded_args)
    result: Any = None
    raw_result = raw.get(b"result")
    if raw_result:
        with contextlib.suppress(*_BAD_PAYLOAD):
            result = _decode_any(raw_result)
    return TaskInfo(
        id=task_id,
        name=raw.get(b"name", b"").decode(),
        state=TaskState(raw.get(b"state", b"queued").decode()),
        attempts=int(raw.get(b"attempts", 0)),
        max_attempts=int(raw.get(b"max_attempts", 0)) or 1,
        error=raw.get(b"error", b"").decode() or None,
        result=result,
        args=args,
        kwargs=kwargs,
        enqueued_at=_float(raw.get(b"enqueued_at")) or 0.0,
        started_at=_float(raw.get(b"started_at")),
        finished_at=_float(raw.get(b"finished_at")),
        run_at=_float(raw.get(b"run_at")),
    )
