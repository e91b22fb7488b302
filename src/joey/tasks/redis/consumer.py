"""The consuming side of the Redis backend: read, start, run and record tasks; reclaim the tasks of
dead workers; heartbeats, delayed tasks, periodic ticks; hand work back at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ..base import TaskDef, cancel_and_wait, error_text, logger, periodic_tasks, resolve_timeout
from ..periodic import run_schedules
from .common import GROUP, OUTAGE, RedisTasksBase
from .records import (
    BAD_PAYLOAD,
    NO_OPTIONS,
    Options,
    decode_options,
    decode_payload,
    encode,
)

_RESTART_DELAY = 1.0  # seconds before a loop that hit a Redis error runs again
_Read = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None  # an XREADGROUP reply


class RedisConsumer(RedisTasksBase):
    """The worker loops of `RedisTasks`; `start()` runs them when this process consumes."""

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
                self._stream, GROUP, min="-", max="+", count=10_000, consumername=self.consumer
            )
        handed: list[str] = []
        for item in pending:
            entry_id = cast(bytes, item["message_id"])
            cancelled = entry_id in self._cancelled
            async with asyncio.timeout(self.redis_timeout):
                task_id = await self._task_id_of(client, entry_id)
                if task_id is None:
                    await client.xack(self._stream, GROUP, entry_id)
                    continue
                back = await self._scripts["hand_back"](
                    keys=[self._stream, self._task_prefix + task_id],
                    args=[GROUP, entry_id, task_id, "1" if cancelled else "0"],
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
                await client.xgroup_delconsumer(self._stream, GROUP, self.consumer)

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
                    exc_info=None if isinstance(exc, OUTAGE) else exc,
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
                        GROUP,
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
                    GROUP, self.consumer, {self._stream: ">"}, count=self._free(), block=block
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
            GROUP,
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
            options = decode_options(raw_options) if raw_options else Options()
            args, kwargs = decode_payload(fields.get(b"payload", b""))
        except BAD_PAYLOAD as exc:
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
                encoded = encode(result)
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
            except OUTAGE as exc:
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
        except OUTAGE:
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
                    defn.name, repr(tick), task_id, encode(([], {})), NO_OPTIONS,
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
                            self._stream, GROUP, self.consumer, 0, list(self._inflight),
                            justid=True,
                        )  # fmt: skip
                    if beats % 3 == 0:
                        # Consumers of killed workers, once their entries were taken over.
                        await self._scripts["reap"](
                            keys=[self._stream],
                            args=[GROUP, int(self.visibility_timeout * 3000), self.consumer],
                        )
            except OUTAGE as exc:
                # Beat again soon: a missed beat for longer than visibility_timeout would let
                # another worker take over tasks that are still running here.
                logger.debug("task backend: heartbeat failed: %s", error_text(exc))
                beat = min(0.1, self.visibility_timeout / 3)
                continue
            beat = self.visibility_timeout / 3
            await self._flush_stats(client)


class _Run:
    """One delivered run of a task, and the three ways its commit can go.

    Each commit is the finish script with this run's token (consumer, attempts), retried
    through outages by `RedisTasks._commit`.
    """

    __slots__ = ("attempts", "backend", "entry_id", "failures", "max_attempts", "name", "task_id")

    def __init__(
        self,
        backend: RedisConsumer,
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
                GROUP, self.entry_id, self.task_id, outcome, b.consumer, self.attempts,
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
        self, defn: TaskDef, options: Options, retries: int, exc: BaseException, seconds: float
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
        await self._finish("retry", 0, error, b"", repr(time.time() + delay), failures)
        if b._wake_promoter is not None:
            b._wake_promoter.set()
