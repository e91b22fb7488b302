"""The Redis task backend: one durable queue shared by web processes and worker processes.

Built directly on Redis Streams with a consumer group (see docs/background-tasks.md for why not
saq, arq or taskiq). Keys, all under `prefix` (default ``joey:tasks``)::

    {prefix}:stream      stream of ready tasks, one entry ``id=<task id>`` per delivery
    {prefix}:delayed     sorted set: task id -> Unix time it is due (delays and retry backoffs)
    {prefix}:dead        list of dead task ids, newest first, trimmed to `keep_dead`
    {prefix}:task:<id>   hash: name, encoded arguments, per-call options, state, attempts, ...

A consuming process reads with XREADGROUP (a blocking read: new tasks wake it at once), runs the
task, then acknowledges and deletes the entry in the same MULTI as the state change. While a task
runs, its worker re-claims the entry every `visibility_timeout / 3` (a heartbeat), so only a
worker that is gone - killed, frozen, cut off - lets an entry sit idle past `visibility_timeout`;
any other worker then takes it over with XAUTOCLAIM. Delivery is therefore at least once: a task
whose worker died mid-run runs again (its attempt counts toward `retries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .base import (
    Backoff,
    EnqueueOptions,
    QueueFull,
    TaskBackend,
    TaskDef,
    TasksNotRunning,
    WhenFull,
    cancel_and_wait,
    error_text,
    logger,
    resolve_timeout,
)
from .state import FINAL_STATES, TaskInfo, TaskState

__all__ = ["RedisTasks"]

_GROUP = "workers"
# redis-py's own default, made explicit so that blocking reads can stay below it: a reply
# slower than the socket timeout is a TimeoutError, and XREADGROUP BLOCK waits on purpose.
_SOCKET_TIMEOUT = 5.0
_RESTART_DELAY = 1.0  # seconds before a loop that hit a Redis error runs again
_Read = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None  # an XREADGROUP reply

# Adds a task: refuses (returns 0) when the queue already holds `max_queue` tasks, so the check
# and the add cannot race with other enqueuers.
_ENQUEUE = """
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= limit then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
else
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
end
return 1
"""

# Marks a delivered task RUNNING and returns what the worker needs, in one round trip.
# A task already final (a late duplicate delivery) or expired is reported so it is only acked.
_START = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st == 'succeeded' or st == 'dead' or st == 'cancelled' then return {'skip'} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[1], 'worker', ARGV[2],
           'run_at', '')
local f = redis.call('HMGET', KEYS[1], 'name', 'payload', 'options')
return {'run', f[1], f[2], f[3], attempts}
"""

# Moves due tasks from the delayed set to the stream. Returns how many moved and the score of
# the next one not yet due ('' if none), so the caller knows how long it may sleep.
_PROMOTE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  if redis.call('EXISTS', key) == 1 then
    redis.call('XADD', KEYS[2], '*', 'id', id)
    redis.call('HSET', key, 'state', 'queued', 'run_at', '')
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#ids, nxt[2] or ''}
"""

# Returns an entry this worker holds to the stream for another worker (used by stop()).
_HAND_BACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local st = redis.call('HGET', KEYS[2], 'state')
if st == 'running' or st == 'queued' then
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[3])
  redis.call('HSET', KEYS[2], 'state', 'queued', 'worker', '')
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[2], 'attempts', -1) end
  return 1
end
return 0
"""

_REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'finished_at', '')
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
return 1
"""


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
    * `shutdown_timeout`: how long `stop()` lets running tasks finish; the rest are cancelled and
      handed back to the queue for another worker.
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
        shutdown_timeout: float = 10.0,
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
        self.url = url
        self.prefix = prefix
        self.consume = consume
        self.max_queue = max_queue
        self.when_full: WhenFull = when_full
        self.visibility_timeout = visibility_timeout
        self.result_ttl = result_ttl
        self.dead_ttl = dead_ttl
        self.keep_dead = keep_dead
        self.poll_interval = poll_interval
        self._stream = f"{prefix}:stream"
        self._delayed = f"{prefix}:delayed"
        self._dead = f"{prefix}:dead"
        self._task_prefix = f"{prefix}:task:"
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: dict[bytes, tuple[str, asyncio.Task[None]]] = {}  # entry id -> task
        self._names: dict[bytes, str] = {}  # entry id -> task name, for the shutdown report
        self._cancelled: set[bytes] = set()  # entries whose attempt stop() cancelled
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
        # Options in the URL (``?socket_timeout=``) win over the keyword.
        client = aioredis.Redis.from_url(self.url, protocol=2, socket_timeout=_SOCKET_TIMEOUT)
        self._client = client
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        self._max_block_ms = int(socket_timeout * 500) if socket_timeout else None
        self._scripts = {
            name: client.register_script(src)
            for name, src in (
                ("enqueue", _ENQUEUE),
                ("start", _START),
                ("promote", _PROMOTE),
                ("hand_back", _HAND_BACK),
                ("requeue", _REQUEUE),
            )
        }
        try:
            # Id "0": entries added before any worker created the group are delivered too.
            await client.xgroup_create(self._stream, _GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                await client.aclose()
                raise
        self._closing = False
        self._running = True
        self._stopped = asyncio.Event()
        self._consuming = self.consume if consume is None else consume
        if self._consuming:
            self._open_executor()
            self._slot_free = asyncio.Event()
            self._slot_free.set()
            self._wake_promoter = asyncio.Event()
            self._loops = [
                asyncio.create_task(self._keep_running(loop), name=f"joey-tasks-{name}")
                for name, loop in (
                    ("consume", self._consume_loop),
                    ("promote", self._promote_loop),
                    ("heartbeat", self._heartbeat_loop),
                )
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
            waiting = await client.xlen(self._stream) + await client.zcard(self._delayed)
            if waiting:
                logger.info("task backend stopped: %d task(s) wait in Redis for a worker", waiting)
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

        # Everything still pending for this consumer goes back to the stream: attempts we
        # cancelled, and entries a cancelled XREADGROUP received but never handed to us.
        pending = await client.xpending_range(
            self._stream, _GROUP, min="-", max="+", count=10_000, consumername=self.consumer
        )
        handed: list[str] = []
        for item in pending:
            entry_id = cast(bytes, item["message_id"])
            task_id = await self._task_id_of(client, entry_id)
            cancelled = entry_id in self._cancelled
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
        try:
            payload = _encode((args, kwargs))
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(
                f"task {name}: RedisTasks sends arguments through Redis encoded with msgspec, "
                f"and these cannot be encoded: {exc}"
            ) from exc
        delay = None
        options = _NO_OPTIONS
        when_full = self.when_full
        retries = defn.retries if defn is not None else None
        if opts is not None:
            delay = opts.delay
            options = _encode(_Options(opts.timeout, opts.retries, opts.backoff))
            when_full = opts.when_full or when_full
            retries = opts.retries if opts.retries is not None else retries
        now = time.time()
        task_id = uuid.uuid4().hex
        run_at = f"{now + delay!r}" if delay else ""
        argv: list[Any] = [
            task_id,
            self.max_queue,
            run_at,
            "name", name,
            "payload", payload,
            "options", options,
            "state", "queued",
            "attempts", 0,
            "max_attempts", 0 if retries is None else retries + 1,
            "enqueued_at", repr(now),
            "run_at", run_at,
        ]  # fmt: skip
        keys = [self._task_prefix + task_id, self._stream, self._delayed]
        pause = 0.01
        while not await self._scripts["enqueue"](keys=keys, args=argv):
            if when_full == "raise":
                raise QueueFull(f"the task queue in Redis is full ({self.max_queue} tasks)")
            # The place frees up in whichever process finishes a task: poll, backing off.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            if self._closing:
                raise TasksNotRunning("the task backend is stopping: no new tasks")
        if delay and self._wake_promoter is not None:
            self._wake_promoter.set()
        return task_id

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
                logger.error(
                    "task backend: %s failed, restarting it in %gs: %s",
                    loop.__name__, _RESTART_DELAY, error_text(exc), exc_info=exc,
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
                _, claimed, _ = await client.xautoclaim(
                    self._stream,
                    _GROUP,
                    self.consumer,
                    min_idle_time=int(self.visibility_timeout * 1000),
                    start_id="0-0",
                    count=self._free(),
                )
                for entry_id, fields in claimed:
                    self._spawn(entry_id, fields)
                if not self._free():
                    continue
            block = max(1, int((next_reclaim - time.monotonic()) * 1000))
            if self._max_block_ms is not None:  # half the socket timeout
                block = min(block, self._max_block_ms)
            reply: _Read = await client.xreadgroup(  # type: ignore[assignment]
                _GROUP, self.consumer, {self._stream: ">"}, count=self._free(), block=block
            )
            if self._closing:
                return  # what this read got stays pending here: stop() hands it back
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    self._spawn(entry_id, fields)

    def _free(self) -> int:
        return self.max_concurrency - len(self._inflight)

    def _spawn(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        raw = (fields or {}).get(b"id")
        if raw is None:  # pragma: no cover - an entry not written by this module
            return
        task_id = raw.decode()
        run = asyncio.create_task(self._run(entry_id, task_id))
        self._inflight[entry_id] = (task_id, run)
        run.add_done_callback(lambda _: self._release(entry_id))
        if not self._free():
            assert self._slot_free is not None
            self._slot_free.clear()

    def _release(self, entry_id: bytes) -> None:
        self._inflight.pop(entry_id, None)
        if self._slot_free is not None:
            self._slot_free.set()

    async def _run(self, entry_id: bytes, task_id: str) -> None:
        assert self._client is not None
        client = self._client
        key = self._task_prefix + task_id
        started = await self._scripts["start"](keys=[key], args=[repr(time.time()), self.consumer])
        if not started or started[0] == b"skip":
            await self._ack(client, entry_id)
            return
        _, raw_name, payload, raw_options, attempts = started
        name = raw_name.decode()
        self._names[entry_id] = name
        defn = self._by_name.get(name)
        if defn is None:
            await self._finish_dead(
                client, entry_id, task_id, name, attempts, 0,
                f"TaskNotRegistered: no task named {name!r} in worker {self.consumer}",
            )  # fmt: skip
            return
        options = _decode_options(raw_options) if raw_options else _Options()
        retries = options.retries if options.retries is not None else defn.retries
        max_attempts = retries + 1
        if attempts > max_attempts:
            # The previous attempt's worker vanished (a crash, SIGKILL) and it was the last.
            await self._finish_dead(
                client, entry_id, task_id, name, attempts - 1, max_attempts,
                "WorkerLost: the worker running the last attempt stopped responding",
            )  # fmt: skip
            return
        try:
            args, kwargs = _decode_payload(payload)
            timeout = resolve_timeout(
                options.timeout if options.timeout is not None else defn.timeout
            )
            result = await self._call(defn, args, kwargs, timeout)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._cancelled.add(entry_id)  # stop() hands it back
                raise
            await self._failed(
                client, entry_id, task_id, defn, options, attempts, max_attempts, exc
            )
        except Exception as exc:
            await self._failed(
                client, entry_id, task_id, defn, options, attempts, max_attempts, exc
            )
        else:
            try:
                encoded = _encode(result)
            except (TypeError, msgspec.EncodeError):
                logger.debug("task %s %s: result not kept, msgspec cannot encode it", name, task_id)
                encoded = b""
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "state": "succeeded",
                        "result": encoded,
                        "error": "",
                        "max_attempts": max_attempts,
                        "finished_at": repr(time.time()),
                    },
                )
                pipe.expire(key, self.result_ttl)
                pipe.xack(self._stream, _GROUP, entry_id)
                pipe.xdel(self._stream, entry_id)
                await pipe.execute()
        self._names.pop(entry_id, None)

    async def _failed(
        self,
        client: aioredis.Redis,
        entry_id: bytes,
        task_id: str,
        defn: TaskDef,
        options: _Options,
        attempts: int,
        max_attempts: int,
        exc: BaseException,
    ) -> None:
        error = error_text(exc)
        if attempts >= max_attempts:
            logger.error(
                "task %s %s is dead after %d attempt(s): %s",
                defn.name, task_id, attempts, error, exc_info=exc,
            )  # fmt: skip
            await self._finish_dead(
                client, entry_id, task_id, defn.name, attempts, max_attempts, error
            )
            return
        backoff = options.backoff or defn.backoff
        delay = backoff.delay(attempts)
        run_at = time.time() + delay
        logger.warning(
            "task %s %s failed (attempt %d of %d), retrying in %.2fs: %s",
            defn.name, task_id, attempts, max_attempts, delay, error,
        )  # fmt: skip
        key = self._task_prefix + task_id
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "state": "failed",
                    "error": error,
                    "max_attempts": max_attempts,
                    "run_at": repr(run_at),
                },
            )
            pipe.zadd(self._delayed, {task_id: run_at})
            pipe.xack(self._stream, _GROUP, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()
        if self._wake_promoter is not None:
            self._wake_promoter.set()

    async def _finish_dead(
        self,
        client: aioredis.Redis,
        entry_id: bytes,
        task_id: str,
        name: str,
        attempts: int,
        max_attempts: int,
        error: str,
    ) -> None:
        key = self._task_prefix + task_id
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "state": "dead",
                    "error": error,
                    "attempts": attempts,
                    "max_attempts": max_attempts,
                    "finished_at": repr(time.time()),
                },
            )
            pipe.expire(key, self.dead_ttl)
            pipe.lpush(self._dead, task_id)
            pipe.ltrim(self._dead, 0, self.keep_dead - 1)
            pipe.xack(self._stream, _GROUP, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()
        self._names.pop(entry_id, None)

    async def _ack(self, client: aioredis.Redis, entry_id: bytes) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, _GROUP, entry_id)
            pipe.xdel(self._stream, entry_id)
            await pipe.execute()

    async def _promote_loop(self) -> None:
        assert self._wake_promoter is not None
        wake = self._wake_promoter
        # Another process may add a task due sooner than the next one known here, so the sleep
        # is capped at `poll_interval`; tasks scheduled by this process wake it at once.
        while not self._closing:
            wake.clear()
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

    async def _heartbeat_loop(self) -> None:
        assert self._client is not None
        client = self._client
        while not self._closing:
            await asyncio.sleep(self.visibility_timeout / 3)
            if self._inflight:
                # Re-claiming our own entries resets their idle time (JUSTID: without counting
                # a delivery), so XAUTOCLAIM elsewhere leaves them alone while we live.
                await client.xclaim(
                    self._stream, _GROUP, self.consumer, 0, list(self._inflight), justid=True
                )

    # -- reading state ------------------------------------------------------------------------

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise TasksNotRunning("RedisTasks is not running: call start() first")
        return self._client

    async def status(self, task_id: str) -> TaskInfo | None:
        raw = await self._require_client().hgetall(self._task_prefix + task_id)
        return _info(task_id, cast(dict[bytes, bytes], raw)) if raw else None

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
        raw_ids = cast(list[bytes], await client.lrange(self._dead, 0, limit - 1))
        ids = [raw.decode() for raw in raw_ids]
        async with client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self._task_prefix + task_id)
            raws = await pipe.execute()
        return [_info(task_id, raw) for task_id, raw in zip(ids, raws, strict=True) if raw]

    async def requeue(self, task_id: str) -> bool:
        self._require_client()
        moved = await self._scripts["requeue"](
            keys=[self._dead, self._task_prefix + task_id, self._stream], args=[task_id]
        )
        return bool(moved)


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


def _info(task_id: str, raw: dict[bytes, bytes]) -> TaskInfo:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    payload = raw.get(b"payload")
    if payload:
        decoded_args, kwargs = _decode_payload(payload)
        args = tuple(decoded_args)
    result = raw.get(b"result")
    return TaskInfo(
        id=task_id,
        name=raw.get(b"name", b"").decode(),
        state=TaskState(raw.get(b"state", b"queued").decode()),
        attempts=int(raw.get(b"attempts", 0)),
        max_attempts=int(raw.get(b"max_attempts", 0)) or 1,
        error=raw.get(b"error", b"").decode() or None,
        result=_decode_any(result) if result else None,
        args=args,
        kwargs=kwargs,
        enqueued_at=_float(raw.get(b"enqueued_at")) or 0.0,
        started_at=_float(raw.get(b"started_at")),
        finished_at=_float(raw.get(b"finished_at")),
        run_at=_float(raw.get(b"run_at")),
    )
