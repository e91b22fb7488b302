"""What the in-process backend remembers: one record per task, moved by the rules of `state.py`,
the finished and dead ones kept within bounds, and the callers waiting for a task to end.

`InMemoryTasks` decides when a task runs; a `RecordBook` holds what happened to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .definition import Backoff, TaskDef
from .state import FINAL_STATES, TaskInfo, TaskState, can_move

__all__ = ["RecordBook", "TaskRecord"]


class TaskRecord:
    """One task: what to run and what happened so far."""

    __slots__ = (
        "args",
        "attempts",
        "backoff",
        "counted",
        "defn",
        "enqueued_at",
        "error",
        "finished_at",
        "id",
        "kwargs",
        "max_attempts",
        "result",
        "run_at",
        "started_at",
        "state",
        "timeout",
        "timer",
        "trace",
        "unique",
    )

    def __init__(
        self,
        task_id: str,
        defn: TaskDef,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        max_attempts: int,
        backoff: Backoff,
    ) -> None:
        self.id = task_id
        self.defn = defn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.state = TaskState.QUEUED
        self.attempts = 0
        self.error: str | None = None
        self.result: Any = None
        self.enqueued_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.run_at: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        # True while the task holds one of the `max_queue` places (until its first start).
        self.counted = True
        self.unique: str | None = None
        # the enqueue's trace context (with tracing on), for every attempt's run span
        self.trace: dict[str, str] | None = None

    def move(self, new: TaskState) -> None:
        if not can_move(self.state, new):  # pragma: no cover - a bug in the backend
            raise RuntimeError(f"task {self.id}: illegal move {self.state} -> {new}")
        self.state = new

    def info(self) -> TaskInfo:
        return TaskInfo(
            id=self.id,
            name=self.defn.name,
            state=self.state,
            attempts=self.attempts,
            max_attempts=self.max_attempts,
            error=self.error,
            result=self.result,
            args=self.args,
            kwargs=self.kwargs,
            enqueued_at=self.enqueued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            run_at=self.run_at,
        )


class RecordBook:
    """The records of one backend by id, the finished and dead ones bounded, and the futures of
    `wait()` callers, woken when their task ends."""

    __slots__ = ("_dead_ids", "_done_ids", "_records", "_waiters")

    def __init__(self) -> None:
        self._records: dict[str, TaskRecord] = {}
        self._done_ids: deque[str] = deque()  # succeeded and cancelled, oldest first
        self._dead_ids: deque[str] = deque()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def add(self, rec: TaskRecord) -> None:
        self._records[rec.id] = rec

    def get(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    def end(self, rec: TaskRecord, state: TaskState, error: str | None, keep: int) -> None:
        """Move `rec` to a final state, keep at most `keep` records of its kind (dead, or
        finished otherwise) and wake its waiters."""
        rec.move(state)
        rec.error = error
        rec.finished_at = time.time()
        rec.run_at = None
        kept = self._dead_ids if state is TaskState.DEAD else self._done_ids
        kept.append(rec.id)
        while len(kept) > keep:
            self._records.pop(kept.popleft(), None)
        waiters = self._waiters.pop(rec.id, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, task_id: str) -> TaskInfo:
        """`TaskBackend.wait`: until the task is final."""
        rec = self._records.get(task_id)
        if rec is None:
            raise LookupError(f"unknown task id {task_id!r}")
        if rec.state not in FINAL_STATES:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(task_id, []).append(fut)
            try:
                await fut
            finally:
                waiters = self._waiters.get(task_id)
                if waiters and fut in waiters:
                    waiters.remove(fut)
        return rec.info()

    def unfinished(self) -> list[TaskRecord]:
        """The tasks not in a final state yet: queued, running, or failed and waiting to
        retry."""
        return [rec for rec in self._records.values() if rec.state not in FINAL_STATES]

    def dead_letters(self, limit: int) -> list[TaskInfo]:
        """The most recent dead tasks, newest first."""
        infos: list[TaskInfo] = []
        for task_id in reversed(self._dead_ids):
            if len(infos) >= limit:
                break
            rec = self._records.get(task_id)
            if rec is not None:
                infos.append(rec.info())
        return infos

    def dead(self, task_id: str) -> TaskRecord | None:
        """The record of `task_id` if the task is dead (and still remembered)."""
        rec = self._records.get(task_id)
        return rec if rec is not None and rec.state is TaskState.DEAD else None

    def revive(self, rec: TaskRecord) -> None:
        """Take a dead task off the dead-letter list and queue it with a fresh set of attempts."""
        self._dead_ids.remove(rec.id)
        rec.move(TaskState.QUEUED)
        rec.attempts = 0
        rec.finished_at = None
