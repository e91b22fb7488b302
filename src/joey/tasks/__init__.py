"""Background tasks: `InMemoryTasks` (default, in-process) and `RedisTasks` (durable, shared).

See docs/background-tasks.md. The Redis backend is imported lazily so that `redis` stays an
optional dependency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attempt import TaskRun, current_task
from .base import EnqueueOptions, TaskBackend
from .definition import Backoff, TaskDef
from .errors import (
    QueueFull,
    TaskNotRegistered,
    TaskNotReplicated,
    TasksNotRunning,
    TasksUnavailable,
    TaskTimeout,
)
from .memory import InMemoryTasks
from .state import TaskInfo, TaskState

if TYPE_CHECKING:
    from .redis import RedisTasks

__all__ = [
    "Backoff",
    "EnqueueOptions",
    "InMemoryTasks",
    "QueueFull",
    "RedisTasks",
    "TaskBackend",
    "TaskDef",
    "TaskInfo",
    "TaskNotRegistered",
    "TaskNotReplicated",
    "TaskRun",
    "TaskState",
    "TaskTimeout",
    "TasksNotRunning",
    "TasksUnavailable",
    "current_task",
]


def __getattr__(name: str) -> Any:
    if name == "RedisTasks":
        from .redis import RedisTasks

        return RedisTasks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
