"""The consuming side of the Redis backend: read entries and run them (a first delivery at once,
with no start sent), reclaim the tasks of dead workers (started before they run), and hand
work back at shutdown. Each run read is a `Run` moved by the table of `run.py`;
running and recording one is in `runner`, the loops beside the reading (heartbeats, delayed
tasks, periodic ticks, counters) in `upkeep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ..attempt import cancel_and_wait
from ..errors import error_text
from .common import GROUP, OUTAGE
from .records import describe_entry, foreign_reason
from .run import Action, Run, RunEvent
from .runner import RedisRunner

logger = logging.getLogger("joey.tasks")

_RESTART_DELAY = 1.0  # seconds before a loop that hit a Redis error runs again
# an XREADGROUP reply: pairs (RESP2) or a map (RESP3)
_Read = (
    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]
    | dict[bytes, list[tuple[bytes, dict[bytes, bytes]]]]
    | None
)


class RedisConsumer(RedisRunner):
    """The worker loops of `RedisTasks`; `start()` runs them when this process consumes."""

    async def _stop_consuming(self, client: aioredis.Redis) -> None:
        # Take no more work; the heartbeat keeps running so tasks finishing within
        # shutdown_timeout are not taken over by another worker meanwhile.
        # The loops also end on their own at their next turn, since `_closing` is set.
        heartbeat = self._loops.pop()
        await cancel_and_wait(self._loops)
        runs = [run.task for run in self._inflight.values() if run.task is not None]
        if runs:
            _, late = await asyncio.wait(runs, timeout=self.shutdown_timeout)
            await cancel_and_wait(late, every=1.0)  # gentler: task code may clean up
        if self._finishing:  # the finishes of the runs that ended, or were cancelled meanwhile
            _, late = await asyncio.wait(self._finishing, timeout=self.redis_timeout)
            await cancel_and_wait(late)
        for finish in self._to_finish:  # not sent: their entries are handed back below
            finish.settle(None)
        self._to_finish = []
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
            cancelled = entry_id in self._handed_back
            gave_up = self._gave_up.get(entry_id)
            how = "1" if cancelled else "0" if gave_up is None else "3" if gave_up else "2"
            async with asyncio.timeout(self.redis_timeout):
                task_id = await self._task_id_of(client, entry_id)
                if task_id is None:
                    continue
                back = await self._scripts["hand_back"](
                    keys=[self._stream, self._task_prefix + task_id],
                    args=[GROUP, entry_id, task_id, how],
                )
            if back and cancelled:
                handed.append(self._handed_back[entry_id])
        if handed:
            counts = Counter(handed)
            logger.warning(
                "task backend stopped: %d running task(s) cancelled after shutdown_timeout=%gs "
                "and handed back to the queue: %s",
                len(handed),
                self.shutdown_timeout,
                ", ".join(f"{name} x{n}" for name, n in counts.most_common()),
            )
        self._handed_back.clear()
        self._gave_up.clear()
        with contextlib.suppress(ResponseError):
            async with asyncio.timeout(self.redis_timeout):
                await client.xgroup_delconsumer(self._stream, GROUP, self.consumer)

    async def _task_id_of(self, client: aioredis.Redis, entry_id: bytes) -> str | None:
        """The task of an entry pending here, to hand back; None once the entry is settled:
        acked if it was deleted meanwhile, dead-lettered if Joey did not write it."""
        known = self._inflight.get(entry_id)
        if known is not None:
            return known.task_id
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

    async def _group_lost(self) -> None:
        """The consumer group is gone: Redis lost its data (a primary killed before its replica
        had the queue, a restart without persistence). Create it again, from the start of
        whatever the stream holds now, so the workers go on with the tasks enqueued since;
        what was lost is said once, loudly."""
        assert self._client is not None
        logger.error(
            "task backend: the queue's consumer group in Redis is gone (%s lost its data: a "
            "failover before the replica had it, or a restart without persistence); created "
            "again: the tasks it held are lost", self._stream,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self.redis_timeout):
                await self._client.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another worker created it meanwhile: fine
                raise

    async def _keep_running(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a background loop until stop(); a Redis error (a restart, a network cut) is
        logged and the loop restarted, so a worker never silently stops consuming."""
        while not self._closing:
            try:
                await loop()
            except Exception as exc:
                if self._closing:
                    return
                if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
                    try:
                        await self._group_lost()
                        continue
                    except Exception as again:  # Redis down again: said below, retried
                        exc = again
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
            # RESP3 (a client passed in, redis-py 8's default) answers a map, RESP2 pairs
            for _, entries in reply.items() if isinstance(reply, dict) else reply or ():
                if entries:
                    await self._start_runs(entries)

    def _free(self) -> int:
        return self.max_concurrency - len(self._inflight)

    async def _start_runs(
        self, entries: list[tuple[bytes, dict[bytes, bytes]]], reclaimed: bool = False
    ) -> None:
        """Make a `Run` of every entry of one read, and run them (rule 1 of `run.py`).

        First deliveries that carry their task, attempt and failures run at once, and send no
        start (their finish records it). Reclaimed entries, and entries an older version wrote
        (the name, payload and options of those with the id only come back from the script),
        wait for the start script first: the `max_deliveries` check precedes the run.

        If that awaited script fails (Redis went away), those entries stay pending here
        unstarted and are taken over once idle past `visibility_timeout`, by this worker or
        another. Entries Joey did not write are dead-lettered last, so that a failure there
        costs the runs nothing (they come back the same way).
        """
        waiting: list[tuple[Run, int]] = []
        foreign: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, fields in entries:
            if entry_id is None:  # XAUTOCLAIM on Redis 6.2: deleted while pending, no id left
                continue
            reason = foreign_reason(fields)
            if reason is not None:
                foreign.append((entry_id, fields, reason))
                continue
            ours = self._inflight.get(entry_id)
            if ours is not None:
                # Our own entry, reclaimed by our own XAUTOCLAIM after missed heartbeats: its
                # run goes on here; another worker may have held it and recorded a start
                # meanwhile, which its finish reads then.
                if ours.handle(RunEvent.TAKEN_BACK) is Action.READ_AT_FINISH:
                    ours.taken_back = True
                continue
            self._gave_up.pop(entry_id, None)  # its reclaim counts that run (see START)
            run = Run(entry_id, fields)
            event = RunEvent.DELIVERED if run.carries and not reclaimed else RunEvent.RECLAIMED
            if run.handle(event) is Action.RUN_AT_ONCE:
                self._spawn(run)
            else:  # START_FIRST
                mode = (1 if reclaimed else 0) + (0 if b"name" in fields else 2)
                waiting.append((run, mode + (4 if run.carries else 0)))
        if waiting:
            try:
                async with asyncio.timeout(self.redis_timeout):
                    answers = await self._start_script(waiting)
            except Exception:
                for run, _ in waiting:
                    run.handle(RunEvent.START_FAILED)
                raise
            for (run, _), answer in zip(waiting, answers, strict=True):
                action = run.answer(answer)
                if action is Action.RUN:
                    self._spawn(run)
                elif action is Action.REPORT_DEAD:
                    self._count(run.name or "?", "dead")
                    logger.error(
                        "task %s %s is dead: delivered %d times, each time its worker stopped "
                        "responding (max_deliveries)",
                        run.name or "?", run.task_id, self.max_deliveries,
                    )  # fmt: skip
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

    def _spawn(self, run: Run) -> None:
        run.task = asyncio.create_task(self._run(run))  # which releases its entry as it ends
        self._inflight[run.entry_id] = run
        # (and should it be cancelled before it began, this does)
        run.task.add_done_callback(lambda _: self._release(run))
        if not self._free():
            assert self._slot_free is not None
            self._slot_free.clear()


__all__ = [
    "RedisConsumer",
]
