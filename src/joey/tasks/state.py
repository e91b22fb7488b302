"""Task states, the rules for moving between them, and the public snapshot of a task.

The life of a task, as data (both backends follow these rules):

```text
QUEUED    -> RUNNING     a worker slot picked it up (after its delay, if any)
QUEUED    -> CANCELLED   the in-memory backend stopped before it started (reported in the log)
RUNNING   -> SUCCEEDED   the function returned
RUNNING   -> FAILED      it raised or timed out, and a retry is scheduled after a backoff
RUNNING   -> DEAD        it failed its last attempt: moved to the dead-letter list
RUNNING   -> CANCELLED   the in-memory backend stopped and `shutdown_timeout` ran out
RUNNING   -> QUEUED      the Redis backend stopped: the task is handed back for another worker
RUNNING   -> RUNNING     Redis only: its worker vanished and another worker took it over
FAILED    -> QUEUED      the backoff elapsed
FAILED    -> CANCELLED   the in-memory backend stopped before the retry
DEAD      -> QUEUED      `requeue(id)` gave a dead task a fresh set of attempts
```

SUCCEEDED, DEAD and CANCELLED are final: `wait()` returns when a task reaches one of them.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = ["FINAL_STATES", "TRANSITIONS", "TaskInfo", "TaskState", "can_move"]


class TaskState(enum.StrEnum):
    """Where a task is in its life; the string values are what the Redis backend stores."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


_Q, _R, _S, _F, _D, _C = (
    TaskState.QUEUED,
    TaskState.RUNNING,
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.DEAD,
    TaskState.CANCELLED,
)

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _Q: frozenset({_R, _C}),
    _R: frozenset({_S, _F, _D, _C, _Q, _R}),
    _F: frozenset({_Q, _C}),
    _S: frozenset(),
    _D: frozenset({_Q}),
    _C: frozenset(),
}
"""For each state, the states a task may move to next (the table in this module's docstring)."""

FINAL_STATES = frozenset({_S, _D, _C})


def can_move(current: TaskState, new: TaskState) -> bool:
    """Whether the rules allow a task in `current` to move to `new`."""
    return new in TRANSITIONS[current]


class TaskInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one task, as returned by `status()`, `wait()` and `dead_letters()`.

    Times are Unix timestamps (seconds). `error` is ``"ExceptionType: message"`` of the last
    failed attempt; `result` is the return value once SUCCEEDED (the Redis backend keeps it only
    when msgspec can encode it). `run_at` is when a queued or failed task is due to (re)start.

    Example::

        async def report_if_dead(task_id: str) -> None:
            info = await app.tasks.status(task_id)
            if info is not None and info.state is TaskState.DEAD:
                print(info.name, info.attempts, info.error)
    """

    id: str
    name: str
    state: TaskState
    attempts: int = 0
    max_attempts: int = 1
    error: str | None = None
    result: Any = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    enqueued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    run_at: float | None = None

    @property
    def done(self) -> bool:
        """True once the task reached a final state (SUCCEEDED, DEAD or CANCELLED)."""
        return self.state in FINAL_STATES
