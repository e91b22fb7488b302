"""Running one delivered task in a Redis worker and recording how it went: decode what its entry
carried, call the function, and commit the outcome with the finish script (a failure first makes
sure of its start). Each step is a transition of the run's table (`run.py`); every script is
retried through Redis outages, up to `commit_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from ..attempt import TaskRun, call_task
from ..definition import TaskDef, resolve_timeout
from ..errors import error_text
from .common import GROUP, OUTAGE
from .records import BAD_PAYLOAD, Options, decode_options, decode_payload, encode
from .run import Action, Run, RunEvent, RunState
from .upkeep import RedisUpkeep

logger = logging.getLogger("joey.tasks")


class RedisRunner(RedisUpkeep):
    """How `RedisConsumer` runs what it read, and records it."""

    def _start_script(self, runs: list[tuple[Run, int]]) -> Awaitable[list[list[Any]]]:
        """The start script for these runs, each with its mode (see `scripts.START`)."""
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
            # A bug in the worker (an event the run's table refuses, say): said at once, and the
            # entry stays pending, so the task runs again once taken over.
            logger.exception(
                "task %s %s: the worker failed running it (a bug in Joey); it runs again once "
                "another worker takes it over, after visibility_timeout",
                run.name, run.task_id,
            )  # fmt: skip

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
        # The attempt: from the start's answer once it came; until then, the number the entry
        # was written with (a hint, corrected by the answer; an entry handed back has none).
        hint = fields.get(b"attempt", b"")
        attempt = run.attempts or (int(hint) if hint.isdigit() else None)
        task_run = run.task_run = TaskRun(run.task_id, name, attempt)
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
        # perf: no wait for the start sent beside the run; the finish records it if needed
        # (and is a no-op if the start found the task final or the entry taken over).
        run.handle(RunEvent.SUCCEEDED)  # FINISH, in every state that takes the event
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
        if not await self._confirmed(run, f"task {run.name} {run.task_id} (failed)"):
            return
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
        if await self._confirmed(run, f"task {run.name} {run.task_id} (dead)"):
            logger.error("task %s %s is dead: %s", run.name, run.task_id, error)
            await self._record_dead(run, 0, error)

    async def _record_dead(self, run: Run, failures: int, error: str) -> None:
        self._count(run.name, "dead")
        await self._finish(run, "dead", self.dead_ttl, error, b"", "", failures)

    async def _confirmed(self, run: Run, what: str) -> bool:
        """Take the failure of `run`; True once its start is recorded, so that the failure may be
        committed (rule 3 of `run.py`): the start sent beside the run is waited for, and sent
        again here if it did not reach Redis (it is idempotent per delivery)."""
        if run.handle(RunEvent.FAILED) is Action.CONFIRM_START:
            if run.starting is not None:
                await asyncio.wait((run.starting,))  # never cancels the start: others share it
            if run.state is RunState.CONFIRMING:  # that start did not reach Redis
                answers = await self._commit(
                    f"{what}: its start", lambda: self._start_script([(run, 0)])
                )
                if answers is None:
                    run.handle(RunEvent.GAVE_UP)
                else:
                    run.answer(answers[0])
        return run.state is RunState.COMMITTING

    async def _finish(
        self, run: Run, outcome: str, ttl: int, error: str, result: bytes, run_at: str,
        failures: int,
    ) -> bool:  # fmt: skip
        """Send the finish script (retried through outages); True if it was applied."""
        what = f"task {run.name} {run.task_id} ({outcome})"
        task_key = self._task_prefix + run.task_id
        unique_key = run.fields.get(b"unique") or task_key  # declared: the script may free it
        keys = [task_key, self._stream, self._delayed, self._dead, unique_key]
        args = [
            GROUP, run.entry_id, run.task_id, outcome, self.consumer, repr(time.time()), ttl,
            self.keep_dead, error, result, run_at, failures, run.max_attempts, run.began,
        ]  # fmt: skip
        reply = await self._commit(what, lambda: self._scripts["finish"](keys=keys, args=args))
        if reply is None:
            run.handle(RunEvent.GAVE_UP)
        else:
            run.handle(RunEvent.RECORDED if reply else RunEvent.REFUSED)
        return bool(reply)

    async def _commit(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run a commit script (a finish, or a start a failure makes sure of), retrying through
        a Redis outage with backoff until it is back or `commit_timeout` has passed. Both
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


__all__ = [
    "RedisRunner",
]
