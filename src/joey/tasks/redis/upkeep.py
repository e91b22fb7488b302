"""The upkeep of a consuming worker besides its runs: heartbeats (keep our entries, notice the
ones taken over, record the starts of first deliveries still running), dead consumers reaped,
delayed tasks promoted, periodic ticks claimed, and the counters `joey tasks metrics` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from typing import cast

import redis.asyncio as aioredis

from ..base import periodic_tasks
from ..definition import TaskDef
from ..errors import error_text
from ..periodic import run_schedules
from .common import GROUP, OUTAGE, RedisTasksBase
from .records import NO_OPTIONS, encode
from .run import Action, RunEvent

logger = logging.getLogger("joey.tasks")
_PROMOTE_BATCH = 500  # delayed tasks moved per script call


class RedisUpkeep(RedisTasksBase):
    """The background loops `RedisConsumer` runs beside its read loop."""

    def _count(self, name: str, kind: str) -> None:
        self._stats[f"{name}|{kind}"] += 1
        if self._metrics is not None:  # "succeeded", "failed" or "dead"
            getattr(self._metrics, kind).labels(name).inc()

    def _add_seconds(self, name: str, seconds: float) -> None:
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds
        if self._metrics is not None:
            self._metrics.duration.labels(name).observe(seconds)

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
        client = self._client
        # Another process may add a task due sooner than the next one known here, so the sleep
        # is capped at `poll_interval`; tasks scheduled by this process wake it at once.
        while not self._closing:
            wake.clear()
            # The first tasks of the set, then the due ones moved by a script that declares
            # each task's key (cluster-correct: a script touches only the keys it is given).
            # One round trip while nothing is due.
            async with asyncio.timeout(self.redis_timeout):
                first = cast(list[tuple[bytes, float]], await client.zrange(
                    self._delayed, 0, _PROMOTE_BATCH - 1, withscores=True))
                now = time.time()
                due = [task_id for task_id, score in first if score <= now]
                next_due: float | str | None = next(
                    (score for _, score in first if score > now), None)
                if due:
                    _, next_due = await self._scripts["promote"](
                        keys=[self._delayed, self._stream,
                              *(self._task_prefix + task_id.decode() for task_id in due)],
                        args=due,
                    )  # fmt: skip
            if len(due) >= _PROMOTE_BATCH:
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
                        starts = [run for run in self._inflight.values() if not run.started]
                        keys = [self._stream, *(self._task_prefix + r.task_id for r in starts)]
                        args: list[object] = [GROUP, self.consumer, len(self._inflight)]
                        args += self._inflight
                        for run in starts:
                            args += (run.entry_id, run.began, run.attempts)
                        lost, started = await self._scripts["heartbeat"](keys=keys, args=args)
                        # Only those: a start is not recorded for an entry taken over.
                        done = set(started)
                        for run in starts:
                            if run.entry_id in done:
                                run.started = True  # (a run is no longer here when it ended)
                        self._taken_over(lost)
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

    def _taken_over(self, entries: list[bytes]) -> None:
        """Warn about runs whose entries another worker took over (this one missed heartbeats
        for `visibility_timeout`): they run on here, but only the new owner records a result."""
        for entry_id in entries:
            run = self._inflight.get(entry_id)
            if run is None or entry_id in self._lost:
                continue
            self._lost.add(entry_id)  # one warning per run
            if run.handle(RunEvent.TAKEN_OVER) is Action.WARN:
                logger.warning(
                    "task %s %s was taken over by another worker (no heartbeat reached Redis "
                    "for visibility_timeout=%gs): its result here will not be recorded",
                    run.name or "?", run.task_id, self.visibility_timeout,
                )  # fmt: skip


__all__ = [
    "RedisUpkeep",
]
