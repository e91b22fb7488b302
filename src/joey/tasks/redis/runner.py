"""Running one delivered task in a Redis worker and recording how it went: decode what its entry
carried, call the function, and commit the outcome with the finish script, which carries every
finish ready at that moment (one in flight at a time). Each step is a transition of the run's
table (`run.py`); a finish is retried through Redis outages, up to `commit_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

import msgspec

from ..attempt import TaskRun, call_task
from ..definition import TaskDef, resolve_timeout
from ..errors import error_text
from .common import GROUP, OUTAGE, PendingFinish
from .records import BAD_PAYLOAD, Options, decode_options, decode_payload, encode
from .run import Action, Run, RunEvent
from .upkeep import RedisUpkeep

logger = logging.getLogger("joey.tasks")
# The finish script's answer per finish: 1 applied, 0 not; or [1 or 0, what Redis refused]
_FinishReply = int | list[Any]


class RedisRunner(RedisUpkeep):
    """How `RedisConsumer` runs what it read, and records it."""

    def _start_script(self, runs: list[tuple[Run, int]]) -> Awaitable[list[list[Any]]]:
        """The start script for these runs, each with its mode (see `run_scripts.START`)."""
        keys: list[str | bytes] = [self._stream, self._dead]
        args: list[Any] = [
            repr(time.time()), self.consumer, self.max_deliveries, GROUP, self.dead_ttl,
            self.keep_dead,
        ]  # fmt: skip
        for run, mode in runs:
            task_key = self._task_prefix + run.task_id
            keys += (task_key, run.fields.get(b"unique") or task_key)
            args += (run.entry_id, run.task_id, mode)
        return cast(Awaitable[list[list[Any]]], self._scripts["start"](keys=keys, args=args))

    async def _run(self, run: Run) -> None:
        """The asyncio task of one run, from its function's call to its commit."""
        try:
            await self._execute(run)
        except asyncio.CancelledError:
            if run.handle(RunEvent.CANCELLED) is Action.HAND_BACK:
                self._handed_back[run.entry_id] = run.name  # stop() hands its entry back
            raise
        except Exception:
            # A bug in the worker (an event the run's table refuses, say), or a finish Redis
            # refused: said at once, and the entry stays pending, so the task runs again once
            # taken over.
            logger.exception(
                "task %s %s: the worker failed running it (a bug in Joey); it runs again once "
                "another worker takes it over, after visibility_timeout",
                run.name, run.task_id,
            )  # fmt: skip
        finally:
            # At once (not in a done callback, a loop turn later): a run that is done is out of
            # the heartbeat's list and frees its slot before anything else runs (rule 6).
            self._release(run)

    def _release(self, run: Run) -> None:
        """Take a run that ended out of the books (idempotent)."""
        if self._inflight.get(run.entry_id) is run:
            del self._inflight[run.entry_id]
            self._lost.discard(run.entry_id)
        if self._slot_free is not None:
            self._slot_free.set()

    async def _execute(self, run: Run) -> None:
        name, fields = run.name, run.fields
        defn = self._by_name.get(name)
        if defn is None:
            await self._cannot_run(
                run, f"TaskNotRegistered: no task named {name!r} in worker {self.consumer}"
            )
            return
        try:
            raw_options = fields.get(b"options")
            options = decode_options(raw_options) if raw_options else Options()
            args, kwargs = decode_payload(fields.get(b"payload", b""))
        except BAD_PAYLOAD as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            await self._cannot_run(
                run, f"BadPayload: the task's arguments cannot be decoded: {reason}"
            )
            return
        retries = options.retries if options.retries is not None else defn.retries
        run.max_attempts = retries + 1
        timeout = resolve_timeout(options.timeout if options.timeout is not None else defn.timeout)
        if self._metrics is not None:
            self._metrics.started.labels(name).inc()
        began = time.monotonic()
        # The attempt: what the entry carries, or what its start answered.
        task_run = run.task_run = TaskRun(run.task_id, name, run.attempts or None)
        try:
            result = await call_task(defn, args, kwargs, timeout, self._executor, task_run,
                                     self._tracing, options.trace)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            await self._failed(run, defn, options, retries, exc, time.monotonic() - began)
        except Exception as exc:
            await self._failed(run, defn, options, retries, exc, time.monotonic() - began)
        else:
            seconds = time.monotonic() - began
            try:
                encoded = encode(result)
            except (TypeError, msgspec.EncodeError, RecursionError):
                logger.debug("task %s %s: result not kept, msgspec cannot encode it", name,
                             run.task_id)  # fmt: skip
                encoded = b""
            await self._succeeded(run, encoded, seconds)

    # -- the outcomes -------------------------------------------------------------------------

    async def _succeeded(self, run: Run, result: bytes, seconds: float) -> None:
        run.handle(RunEvent.SUCCEEDED)  # FINISH
        if await self._finish(run, "ok", self.result_ttl, "", result, "", run.failures):
            self._add_seconds(run.name, seconds)
            self._count(run.name, "succeeded")

    async def _failed(
        self,
        run: Run,
        defn: TaskDef,
        options: Options,
        retries: int,
        exc: BaseException,
        seconds: float,
    ) -> None:
        run.handle(RunEvent.FAILED)  # FINISH: the failures so far came with the entry or start
        self._add_seconds(run.name, seconds)
        self._count(run.name, "failed")
        failures = run.failures + 1
        error = error_text(exc)
        if failures > retries:
            logger.error(
                "task %s %s is dead after %d attempt(s): %s",
                run.name, run.task_id, failures, error, exc_info=exc,
            )  # fmt: skip
            await self._record_dead(run, failures, error)
            return
        delay = (options.backoff or defn.backoff).delay(failures)
        logger.warning(
            "task %s %s failed (attempt %d of %d), retrying in %.2fs: %s",
            run.name, run.task_id, failures, retries + 1, delay, error,
        )  # fmt: skip
        await self._finish(run, "retry", 0, error, b"", repr(time.time() + delay), failures)
        if self._wake_promoter is not None:
            self._wake_promoter.set()

    async def _cannot_run(self, run: Run, error: str) -> None:
        """Dead before running: not registered in this worker, or arguments that cannot be
        decoded. Retrying cannot help: the same bytes fail the same way."""
        run.handle(RunEvent.FAILED)  # FINISH
        logger.error("task %s %s is dead: %s", run.name, run.task_id, error)
        await self._record_dead(run, run.failures, error)

    async def _record_dead(self, run: Run, failures: int, error: str) -> None:
        self._count(run.name, "dead")
        await self._finish(run, "dead", self.dead_ttl, error, b"", "", failures)

    # -- finishing, in batches ----------------------------------------------------------------

    async def _finish(
        self, run: Run, outcome: str, ttl: int, error: str, result: bytes, run_at: str,
        failures: int,
    ) -> bool:  # fmt: skip
        """Record the outcome of `run` with the next finish script; True if it was applied.

        One finish script is in flight at a time: the finishes ready meanwhile go together in
        the next one (idle, a finish leaves at once). Each is retried through outages, up to
        `commit_timeout` from the moment it was ready."""
        args = [
            run.entry_id, run.task_id, outcome, ttl, error, result, run_at, failures,
            run.max_attempts, run.attempts,
        ]  # fmt: skip
        finish = PendingFinish(run, outcome, args, self.commit_timeout)
        self._to_finish.append(finish)
        if not self._finishing:
            sender = asyncio.create_task(self._send_finishes())
            self._finishing.add(sender)
        reply = await finish.done
        if reply is None:
            run.handle(RunEvent.GAVE_UP)
            # Should stop() hand its entry back, the run counts (see `scripts.HAND_BACK`).
            self._gave_up[run.entry_id] = outcome != "ok"
        else:
            run.handle(RunEvent.RECORDED if reply else RunEvent.REFUSED)
        return bool(reply)

    def _finish_script(self, batch: list[PendingFinish]) -> Awaitable[list[_FinishReply]]:
        """The finish script for these finishes (see `run_scripts.FINISH`)."""
        ids = sorted(tuple(map(int, f.run.entry_id.split(b"-"))) for f in batch)
        lowest, highest = (f"{ms}-{seq}" for ms, seq in (ids[0], ids[-1]))
        keys: list[str | bytes] = [self._stream, self._delayed, self._dead]
        args: list[Any] = [
            GROUP, self.consumer, repr(time.time()), self.keep_dead,
            lowest, highest, len(self._inflight) + len(batch) + 1000,
        ]  # fmt: skip
        for finish in batch:
            run = finish.run
            task_key = self._task_prefix + run.task_id
            keys += (task_key, run.fields.get(b"unique") or task_key)
            # Read as it is sent: a run whose entry came back meanwhile reads its record.
            args += finish.args
            args += (
                "" if run.started and not run.taken_back else run.began,
                "1" if run.taken_back or not run.carries else "0",
            )
        return cast(
            Awaitable[list[_FinishReply]], self._scripts["finish"](keys=keys, args=args)
        )

    async def _send_finishes(self) -> None:
        """Send the finishes queued, in batches, until none is left (rule 3 of `run.py`)."""
        pause = 0.05
        try:
            while self._to_finish:
                batch = self._to_finish[:_FINISH_BATCH]
                del self._to_finish[:_FINISH_BATCH]
                for finish in batch:
                    finish.tries += 1
                try:
                    async with asyncio.timeout(self.redis_timeout):
                        replies = await self._finish_script(batch)
                except OUTAGE as exc:
                    # Sent again, with those ready meanwhile; both are idempotent, so one that
                    # was applied before the connection dropped changes nothing.
                    self._to_finish[:0] = [f for f in batch if f.keeps_trying(pause, exc)]
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                except Exception as exc:  # refused by Redis: the runs log it as a bug
                    for finish in batch:
                        finish.settle(exc)
                    continue
                pause = 0.05
                for finish, reply in zip(batch, replies, strict=True):
                    if isinstance(reply, list):  # part of this finish failed, on its own
                        applied, error = reply
                        logger.error(
                            "%s: %s, but Redis refused part of it: %s", finish.what,
                            "recorded" if applied else "not recorded",
                            error.decode(errors="replace"),
                        )  # fmt: skip
                        reply = applied
                    elif finish.tries > 1:
                        logger.warning("%s: recorded after %d tries", finish.what, finish.tries)
                    finish.settle(bool(reply))
        finally:
            # Leave the set before returning, not one loop turn later in a done callback: a
            # finish queued in the same turn must see that no sender is left and start one.
            current = asyncio.current_task()
            if current is not None:
                self._finishing.discard(current)


_FINISH_BATCH = 500  # finishes per script call at most


__all__ = [
    "RedisRunner",
]
