"""The consuming side of the Redis backend: read, start, run and record tasks; reclaim the tasks of
dead workers; hand work back at shutdown. The loops beside the reading (heartbeats, delayed
tasks, periodic ticks, counters) are in `upkeep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ..base import TaskDef, cancel_and_wait, error_text, logger, resolve_timeout
from .common import GROUP, OUTAGE
from .records import (
    BAD_PAYLOAD,
    Options,
    decode_options,
    decode_payload,
    describe_entry,
    encode,
    foreign_reason,
)
from .upkeep import RedisUpkeep

_RESTART_DELAY = 1.0  # seconds before a loop that hit a Redis error runs again
_Read = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None  # an XREADGROUP reply


class RedisConsumer(RedisUpkeep):
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
        if self._starting:  # the starts of runs cancelled before they answered
            _, late_starts = await asyncio.wait(self._starting, timeout=self.redis_timeout)
            await cancel_and_wait(late_starts)
        self._to_start, self._next_start = [], None
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
        """The task of an entry pending here, to hand back; None once the entry is settled:
        acked if it was deleted meanwhile, dead-lettered if Joey did not write it."""
        known = self._inflight.get(entry_id)
        if known is not None:
            return known[0]
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await client.xrange(self._stream, entry_id, entry_id),
        )
        if not entries:
            await client.xack(self._stream, GROUP, entry_id)
            return None
        fields = entries[0][1]
        reason = foreign_reason(fields)
        if reason is not None:
            await self._dead_letter_foreign([(entry_id, fields, reason)])
            return None
        return fields[b"id"].decode()

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
                    await self._start_runs(claimed, reclaimed=True)
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
                    await self._start_runs(entries)

    def _free(self) -> int:
        return self.max_concurrency - len(self._inflight)

    async def _start_runs(
        self, entries: list[tuple[bytes, dict[bytes, bytes]]], reclaimed: bool = False
    ) -> None:
        """Start every task of one read with one start script, and run them.

        First deliveries begin at once: their runs are spawned before the script is sent,
        which the read loop does not wait for (it reads again). A success's finish records a
        start it finds missing; a failure makes sure of it first (`_Run.started`). Reclaimed
        entries, and entries
        written by an older version (the id only: name, payload and options come back from
        the script), wait for the script first: the `max_deliveries` check precedes the run.

        If the awaited script fails (Redis went away), those entries stay pending here
        unstarted and are taken over once idle past `visibility_timeout`, by this worker or
        another. Entries Joey did not write are dead-lettered last, so that a failure there
        costs the runs nothing (they come back the same way).
        """
        runs: list[tuple[_Run, int]] = []
        foreign: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, fields in entries:
            if entry_id is None:  # XAUTOCLAIM on Redis 6.2: deleted while pending, no id left
                continue
            reason = foreign_reason(fields)
            if reason is not None:
                foreign.append((entry_id, fields, reason))
                continue
            if entry_id in self._inflight:
                # Our own entry, reclaimed by our own XAUTOCLAIM after missed heartbeats: its
                # run goes on here, and its start stays the one it recorded.
                continue
            mode = (1 if reclaimed else 0) + (0 if b"name" in fields else 2)
            runs.append((_Run(self, entry_id, fields[b"id"].decode(), fields), mode))
        if any(mode for _, mode in runs):
            async with asyncio.timeout(self.redis_timeout):
                answers = await self._start_script(runs)
            for (run, _), answer in zip(runs, answers, strict=True):
                if run.accept(answer):
                    self._spawn(run)
        elif runs:
            for run, _ in runs:
                self._spawn(run)
            # One start script in flight at a time: the runs of reads that come meanwhile go
            # together in the next one (under load a start covers many reads; idle, it leaves
            # at once). Their runs have begun already, so the wait costs them nothing.
            self._queue_starts([run for run, _ in runs])
            if not self._starting:
                starter = asyncio.create_task(self._send_starts())
                self._starting.add(starter)
                starter.add_done_callback(self._starting.discard)
        if foreign:
            await self._dead_letter_foreign(foreign)

    async def _dead_letter_foreign(
        self, entries: list[tuple[bytes, dict[bytes, bytes], str]]
    ) -> None:
        """Dead-letter entries Joey did not write (see `records.foreign_reason`), each as a task
        of its own that `dead_letters()` and `joey tasks` show, and take them off the stream:
        never run, never delivered again."""
        keys = [self._stream, self._dead]
        args: list[Any] = [GROUP, self.consumer, repr(time.time()), self.dead_ttl, self.keep_dead]
        records: list[tuple[str, str, str]] = []
        for entry_id, fields, reason in entries:
            task_id = uuid.uuid4().hex
            name = (fields.get(b"name") or b"?").decode(errors="replace")
            error = (
                f"ForeignEntry: stream entry {entry_id.decode()} was not written by Joey "
                f"({reason}) and was not run; its fields: {describe_entry(fields)}"
            )
            keys.append(self._task_prefix + task_id)
            args += (entry_id, task_id, name, error)
            records.append((task_id, name, error))
        async with asyncio.timeout(self.redis_timeout):
            applied = await self._scripts["foreign"](keys=keys, args=args)
        for (task_id, name, error), done in zip(records, applied, strict=True):
            if done:
                self._count(name, "dead")
                logger.error("task %s %s is dead: %s", name, task_id, error)

    def _queue_starts(self, runs: list[_Run]) -> None:
        if not self._to_start:
            self._next_start = asyncio.get_running_loop().create_future()
        for run in runs:
            run.starting = self._next_start
            self._to_start.append(run)

    async def _send_starts(self) -> None:
        pause = 0.05
        try:
            while self._to_start:
                runs, self._to_start, done = self._to_start, [], self._next_start
                assert done is not None
                try:
                    # A run that succeeded meanwhile needs no start: its finish records it.
                    runs = [run for run in runs if not run.committing]
                    sent = await self._send_start(runs) if runs else True
                finally:
                    done.set_result(None)
                if sent:
                    pause = 0.05
                    continue
                # Redis is away: send them again once it is back, so that `status()` and the
                # delivery count are right while they still run (a failure does not wait for
                # this: it retries its own start before its result).
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                again = [run for run in runs if run.needs_start()]
                if again and not self._closing:
                    self._queue_starts(again)
        finally:
            # Leave the set before returning, not one loop turn later in a done callback: a
            # read answered in the same turn must see that no sender is left and start one.
            current = asyncio.current_task()
            if current is not None:
                self._starting.discard(current)

    async def _send_start(self, runs: list[_Run]) -> bool:
        """The start script of runs that began without it; a run whose start answers
        otherwise than 'run' (its task was final already: replaced while the worker read it,
        or expired) is cancelled. False if it did not reach Redis: the caller sends it again,
        and each run makes sure of its start before its result anyway."""
        try:
            async with asyncio.timeout(self.redis_timeout):
                answers = await self._start_script([(run, 0) for run in runs])
        except Exception as exc:
            outage = isinstance(exc, OUTAGE)
            logger.log(
                logging.WARNING if outage else logging.ERROR,
                "task backend: the start of %d task(s) is not recorded yet (%s); sent again "
                "shortly, and each records it before its result",
                len(runs), error_text(exc) if not isinstance(exc, TimeoutError) else "timeout",
                exc_info=None if outage else exc,
            )  # fmt: skip
            return False
        for run, answer in zip(runs, answers, strict=True):
            if not run.accept(answer) and run.task is not None and not run.committing:
                run.task.cancel()
        return True

    def _start_script(self, runs: list[tuple[_Run, int]]) -> Awaitable[list[list[Any]]]:
        """The start script for these runs, each with its mode (see `scripts.START`)."""
        keys = [self._stream, self._dead]
        args: list[Any] = [
            repr(time.time()), self.consumer, self.max_deliveries, GROUP, self.dead_ttl,
            self.keep_dead,
        ]  # fmt: skip
        for run, mode in runs:
            keys.append(self._task_prefix + run.task_id)
            args += (run.entry_id, run.task_id, mode)
        return cast(Awaitable[list[list[Any]]], self._scripts["start"](keys=keys, args=args))

    def _spawn(self, run: _Run) -> None:
        entry_id = run.entry_id
        self._names[entry_id] = run.name
        task = run.task = asyncio.create_task(self._run(run))
        self._inflight[entry_id] = (run.task_id, task)
        task.add_done_callback(lambda _: self._release(entry_id))
        if not self._free():
            assert self._slot_free is not None
            self._slot_free.clear()

    def _release(self, entry_id: bytes) -> None:
        self._inflight.pop(entry_id, None)
        self._lost.discard(entry_id)
        if self._slot_free is not None:
            self._slot_free.set()

    async def _run(self, run: _Run) -> None:
        try:
            await self._execute(run)
        except asyncio.CancelledError:
            if run.revoked:  # its start answered 'skip': nothing to record, nothing to hand back
                self._names.pop(run.entry_id, None)
            else:
                self._cancelled.add(run.entry_id)  # stop() hands it back
            raise
        self._names.pop(run.entry_id, None)

    async def _execute(self, run: _Run) -> None:
        name, task_id, fields = run.name, run.task_id, run.fields
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
            await run.dead(0, f"BadPayload: the task's arguments cannot be decoded: {reason}")
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
                raise
            await run.failed(defn, options, retries, exc, time.monotonic() - began)
        except Exception as exc:
            await run.failed(defn, options, retries, exc, time.monotonic() - began)
        else:
            seconds = time.monotonic() - began
            try:
                encoded = encode(result)
            except (TypeError, msgspec.EncodeError, RecursionError):
                logger.debug("task %s %s: result not kept, msgspec cannot encode it", name, task_id)
                encoded = b""
            await run.succeeded(encoded, seconds)

    async def _commit(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run a commit script (a finish, or a start a run makes sure of), retrying through a
        Redis outage with backoff until it is back or `commit_timeout` has passed. Both
        scripts are idempotent, so a retry of one that was applied before the connection
        dropped changes nothing. The script's reply, or None if it was not recorded."""
        pause = 0.05
        give_up = time.monotonic() + self.commit_timeout
        tries = 0
        while True:
            tries += 1
            try:
                async with asyncio.timeout(self.redis_timeout):
                    reply = await call()
            except OUTAGE as exc:
                if time.monotonic() + pause > give_up:
                    logger.error(
                        "%s: not recorded, Redis unreachable for commit_timeout=%gs (%s); the "
                        "task runs again once another worker takes it over",
                        what, self.commit_timeout, error_text(exc),
                    )  # fmt: skip
                    return None
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
            return reply


class _Run:
    """One delivered run of a task: its start (sent with or before the run), and the three
    ways its commit can go.

    The run token is the entry's ownership: the finish script applies only while the entry is
    pending for this consumer. A success is recorded at once, whether or not the start sent
    beside the run has answered (the finish records a start it finds missing); a failure
    first makes sure of the start (`started`), whose answer holds the failures so far. Both
    scripts are retried through outages by `RedisConsumer._commit`.
    """

    __slots__ = (
        "attempts", "backend", "began", "committing", "delivery", "entry_id", "failures",
        "fields", "max_attempts", "name", "revoked", "starting", "task", "task_id",
    )  # fmt: skip

    def __init__(
        self, backend: RedisConsumer, entry_id: bytes, task_id: str, fields: dict[bytes, bytes]
    ) -> None:
        self.backend = backend
        self.entry_id = entry_id
        self.task_id = task_id
        self.fields = fields
        self.name = fields.get(b"name", b"").decode()
        self.attempts = 0
        self.failures = 0
        self.max_attempts = 1  # set once the task's options are known
        self.delivery: bytes | None = None  # the delivery its start recorded, once 'run'
        self.revoked = False  # the start answered 'skip', 'lost' or 'gone': record nothing
        self.committing = False  # its success is being recorded: the finish decides
        self.began = repr(time.time())
        self.starting: asyncio.Future[None] | None = None  # done once its start answered
        self.task: asyncio.Task[None] | None = None

    def accept(self, answer: list[Any]) -> bool:
        """Take the start script's answer for this run; True if it may run and commit."""
        if answer[0] == b"run":
            self.attempts, self.failures, self.delivery = int(answer[1]), int(answer[2]), answer[3]
            if len(answer) > 4:  # an entry of an older version: the task's fields, from its hash
                self.fields = {b"name": answer[4], b"payload": answer[5], b"options": answer[6]}
                self.name = answer[4].decode()
            return True
        self.revoked = True
        if answer[0] == b"lost":
            self.backend._count(self.name or "?", "dead")
            logger.error(
                "task %s %s is dead: delivered %d times, each time its worker stopped "
                "responding (max_deliveries)",
                self.name or "?", self.task_id, self.backend.max_deliveries,
            )  # fmt: skip
        elif answer[0] == b"skip" and self.task is not None:
            logger.info(
                "task %s %s: cancelled, it was final already when its start was recorded",
                self.name, self.task_id,
            )  # fmt: skip
        return False

    def needs_start(self) -> bool:
        """Still running with no start recorded (and no success on its way, which records it)."""
        return (
            self.delivery is None and not self.revoked and not self.committing
            and self.task is not None and not self.task.done()
        )  # fmt: skip

    async def started(self, what: str) -> bool:
        """Make sure this run's start is recorded before its result: wait for the start sent
        beside the run, and if that did not reach Redis, send it again (it is idempotent per
        delivery). False if the task must not be recorded (see `accept`)."""
        if self.delivery is None and not self.revoked and self.starting is not None:
            await asyncio.wait((self.starting,))  # never cancels the start: others share it
        if self.delivery is None and not self.revoked:
            answers = await self.backend._commit(
                f"{what}: its start", lambda: self.backend._start_script([(self, 0)])
            )
            if answers is None:
                return False
            self.accept(answers[0])
        return not self.revoked

    async def _finish(
        self, outcome: str, ttl: int, error: str, result: bytes, run_at: str, failures: int
    ) -> bool:
        b = self.backend
        what = f"task {self.name} {self.task_id} ({outcome})"
        keys = [b._task_prefix + self.task_id, b._stream, b._delayed, b._dead]
        args = [
            GROUP, self.entry_id, self.task_id, outcome, b.consumer, repr(time.time()), ttl,
            b.keep_dead, error, result, run_at, failures, self.max_attempts, self.began,
        ]  # fmt: skip
        return bool(await b._commit(what, lambda: b._scripts["finish"](keys=keys, args=args)))

    async def succeeded(self, result: bytes, seconds: float) -> None:
        # perf: no wait for the start sent beside the run; the finish records it if needed
        # (and is a no-op if the start found the task final or the entry taken over).
        self.committing = True
        if await self._finish("ok", self.backend.result_ttl, "", result, "", self.failures):
            self.backend._add_seconds(self.name, seconds)
            self.backend._count(self.name, "succeeded")

    async def dead(self, failures: int, error: str) -> None:
        if not await self.started(f"task {self.name} {self.task_id} (dead)"):
            return
        if failures == 0:  # dead before running: not registered here, or a bad payload
            logger.error("task %s %s is dead: %s", self.name, self.task_id, error)
        self.backend._count(self.name, "dead")
        await self._finish("dead", self.backend.dead_ttl, error, b"", "", failures)

    async def failed(
        self, defn: TaskDef, options: Options, retries: int, exc: BaseException, seconds: float
    ) -> None:
        if not await self.started(f"task {self.name} {self.task_id} (failed)"):
            return
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
