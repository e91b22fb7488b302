"""`RedisTasks`: the public API of the Redis backend (start and stop, enqueue, status, dead letters,
operations), on top of the consuming side (`consumer.py`) and the shared setup (`common.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ..._redis import Script, client_kwargs, from_url
from ..base import EnqueueOptions, periodic_tasks
from ..errors import QueueFull, TaskNotReplicated, TasksNotRunning, error_text
from ..state import FINAL_STATES, TaskInfo, TaskState
from . import scripts
from .common import GROUP, OUTAGE
from .consumer import RedisConsumer
from .operations import count_tasks, prometheus_text
from .records import NO_OPTIONS, Options, encode, encode_payload, task_info

__all__ = ["RedisTasks"]

logger = logging.getLogger("joey.tasks")


class RedisTasks(RedisConsumer):
    """Tasks in Redis, shared by every process that points at the same `url` and `prefix`.

    * `url`: a Redis URL (this backend creates its client at `start()` and closes it at
      `stop()`), or a ready ``redis.asyncio`` client: ``Redis``, ``RedisCluster``, or a
      Sentinel master (``Sentinel(...).master_for(...)``), used as it is and never closed here.
      On a cluster every key of the queue carries the hash tag ``{prefix}`` (one shard per
      queue; different prefixes spread over the shards).
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
    * `confirm_replicas`: with ``n > 0``, `enqueue` returns only once `n` replicas have the
      task (Redis ``WAIT``), so a failover of the primary cannot lose an acknowledged
      enqueue; fewer within `confirm_timeout` seconds raises `TaskNotReplicated` (a 503).
      The default, 0, acknowledges the primary's write: Redis replicates asynchronously,
      and the last writes before a failover can be lost. See docs/redis-in-production.md.

    Task arguments and results cross process boundaries encoded with msgspec (MessagePack):
    use msgspec-encodable values (str, int, float, bool, None, lists, dicts, datetimes,
    msgspec Structs, dataclasses...); they arrive as the plain decoded types.

    Example::

        app = App(tasks=RedisTasks("redis://127.0.0.1:6379/0", consume=False))

        @app.task(name="emails.welcome", retries=3)
        async def send_welcome(user_id: int) -> None: ...
    """

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, consume: bool | None = None) -> None:
        """Connect, and with `consume` (default: the constructor's) start running tasks."""
        if self._running:
            return
        if self._given is not None:
            client: aioredis.Redis = self._given  # type: ignore[assignment]
        else:
            # No socket timeout unless the URL sets one (``?socket_timeout=``): with one,
            # redis-py sends every command through `asyncio.wait_for` (a new task each on
            # 3.11). Waits are bounded by our own `asyncio.timeout` per read or commit instead;
            # keepalive notices a peer that vanished from the network. Said explicitly, never
            # left to redis-py's default (None in redis-py 5, 5 s in 8: an idle worker's
            # blocking read outlasted it, failed, and the read loop restarted every few
            # seconds); the URL's options win.
            # (a cluster's URL, ``redis+cluster://``, gives a RedisCluster)
            client = from_url(  # type: ignore[assignment]
                self.url,
                protocol=2,
                socket_timeout=None,
                socket_keepalive=True,
                socket_connect_timeout=self.redis_timeout,
            )
        # The one timeout every read on these connections gets: a blocking read stays below it
        # (a client passed in may have one).
        socket_timeout = client_kwargs(client).get("socket_timeout")
        self._max_block_ms = int(socket_timeout * 500) if socket_timeout else None
        self._scripts = {
            name: Script(client, getattr(scripts, name.upper()))
            for name in (
                "enqueue", "start", "finish", "foreign", "promote", "hand_back", "requeue",
                "drop", "reap", "tick", "heartbeat", "status",
            )
        }  # fmt: skip
        try:
            async with asyncio.timeout(self.redis_timeout):
                # Id "0": entries added before any worker created the group are delivered too.
                await client.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                await self._close_client(client)
                raise
        except BaseException:
            await self._close_client(client)
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

    async def _close_client(self, client: aioredis.Redis) -> None:
        """Close the client if it is ours (made from the URL); one passed in is left open."""
        if self._given is None:
            await client.aclose()

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
        except (*OUTAGE, ResponseError) as exc:
            # (a ResponseError: e.g. NOGROUP from a node that was the primary a moment ago
            # and is being resynced as a replica, during a Sentinel failover)
            logger.error(
                "task backend stopped without reaching Redis: %s; tasks this worker held "
                "are taken over by others after visibility_timeout",
                error_text(exc),
            )
        finally:
            self._close_executor()
            await self._close_client(client)
            self._client = None
            self._running = False
            self._stopped.set()

    # -- enqueueing ---------------------------------------------------------------------------

    async def _submit(
        self,
        task: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: EnqueueOptions | None,
        trace: dict[str, str] | None,
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
        payload = encode_payload(name, args, kwargs)
        delay = None
        options = NO_OPTIONS
        when_full = self.when_full
        retries = defn.retries if defn is not None else None
        unique = ""
        unique_key = self._task_prefix  # a placeholder key when there is no unique key
        if trace is not None:
            options = encode(Options(trace=trace))
        if opts is not None:
            delay = opts.delay
            options = encode(Options(opts.timeout, opts.retries, opts.backoff, trace))
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
            "",  # the id the unique key holds, read below
            repr(now),
            0 if retries is None else retries + 1,
            self.result_ttl,
            GROUP,
        ]
        task_key = self._task_prefix + task_id
        keys = [task_key, self._stream, self._delayed, unique_key, task_key]
        pause = 0.01
        replicas = self.confirm_replicas
        confirmed = 0
        while True:
            try:
                # (with confirm_replicas, the replicas' wait comes on top of Redis's reply)
                async with asyncio.timeout(
                    self.enqueue_timeout + (self.confirm_timeout if replicas else 0)
                ):
                    if unique:  # the task it names is a key of the script: read it first
                        held = await client.get(unique_key)
                        argv[7] = cast(bytes, held).decode() if held else ""
                        keys[4] = self._task_prefix + argv[7] if held else task_key
                    if replicas:
                        added, confirmed = await self._scripts["enqueue"].confirmed(
                            keys, argv, replicas, self.confirm_timeout
                        )
                    else:
                        added = await self._scripts["enqueue"](keys=keys, args=argv)
            except OUTAGE as exc:
                raise self._unavailable(exc) from exc
            if added[0] == 3:
                continue  # the unique key changed between the read and the script
            if added[0]:
                break
            if when_full == "raise":
                raise QueueFull(f"the task queue in Redis is full ({self.max_queue} tasks)")
            # The place frees up in whichever process finishes a task: poll, backing off.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
            if self._closing:
                raise TasksNotRunning("the task backend is stopping: no new tasks")
        queued = cast(bytes, added[1]).decode()
        if confirmed < replicas:
            raise TaskNotReplicated(
                f"task {queued} is on the Redis primary, but {confirmed} of the "
                f"{replicas} replica(s) asked for confirmed it within "
                f"{self.confirm_timeout:g}s: it may run, or be lost if the primary fails now",
                task_id=queued,
                confirmed=confirmed,
                retry_after=self.retry_after,
            )
        if delay and self._wake_promoter is not None:
            self._wake_promoter.set()
        if self._metrics is not None and queued == task_id:  # not a unique task's first one
            self._metrics.enqueued.labels(name).inc()
        return queued

    # -- reading state ------------------------------------------------------------------------

    async def status(self, task_id: str) -> TaskInfo | None:
        self._require_client()
        # The record, and whether a worker holds its entry: a first delivery runs before any
        # start is recorded (its finish records it), while the task's record still says QUEUED.
        flat, idle = await self._guarded(
            self._scripts["status"](keys=[self._task_prefix + task_id, self._stream], args=[GROUP])
        )
        if not flat:
            return None
        info = task_info(task_id, dict(zip(flat[::2], flat[1::2], strict=True)))
        if idle < 0:
            return info
        return msgspec.structs.replace(
            info, state=TaskState.RUNNING, attempts=info.attempts + 1,
            started_at=time.time() - idle / 1000,
        )  # fmt: skip

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
        return [task_info(task_id, raw) for task_id, raw in zip(ids, raws, strict=True) if raw]

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
        return await self._guarded(
            count_tasks(client, self._stream, self._delayed, self._dead, self._task_prefix, limit)
        )

    async def metrics(self) -> str:
        """The queue in the Prometheus text format, for a scrape (no client library needed).

        Gauges per task name: ``joey_tasks`` by `state` (queued, running, scheduled, dead);
        counters summed over every worker: ``joey_tasks_finished_total`` by `outcome`
        (succeeded, failed, dead) and ``joey_task_run_seconds_total``. Workers add their
        counts to Redis once per heartbeat.

        Example::

            tasks = RedisTasks("redis://127.0.0.1:6379/0", consume=False)
            app = App(tasks=tasks)

            @app.get("/metrics")
            async def metrics() -> Response:
                return Response(await tasks.metrics(), media_type="text/plain")
        """
        client = self._require_client()
        overview = await self.overview()
        raw = cast(dict[bytes, bytes], await self._guarded(client.hgetall(self._stats_key)))
        return prometheus_text(overview, raw)
