"""The errors of the task API, and the one line a failed attempt is recorded as."""

from __future__ import annotations

from ..exceptions import ServiceUnavailable

__all__ = [
    "QueueFull",
    "TaskNotRegistered",
    "TaskNotReplicated",
    "TaskTimeout",
    "TasksNotRunning",
    "TasksUnavailable",
    "error_text",
]


class QueueFull(Exception):
    """Raised by `enqueue` when the queue holds `max_queue` tasks and `when_full="raise"`."""


class TasksNotRunning(RuntimeError):
    """Raised by `enqueue` before `start()` or once `stop()` has begun."""


class TasksUnavailable(ServiceUnavailable):
    """Raised by `enqueue` when the queue's store (Redis) is down, frozen or unreachable.

    It is a `joey.ServiceUnavailable`: raised in a handler, the app answers 503 with
    ``Retry-After`` and the client may try again; nothing was queued. `RedisTasks` raises it
    within `enqueue_timeout` seconds (a frozen server never holds a request longer).
    """


class TaskNotReplicated(TasksUnavailable):
    """Raised by `enqueue` under ``RedisTasks(confirm_replicas=n)`` when fewer than `n` replicas
    confirmed the task within `confirm_timeout`.

    The primary has the task: it may run, or be lost if that primary fails before a replica
    copies it. Like any `TasksUnavailable`, it answers 503 with ``Retry-After`` in a handler. To
    try again without risking a second run, enqueue with ``unique=`` (the retry finds the task
    if it survived). `task_id` is the id the task was written under; `confirmed` how many
    replicas confirmed it.
    """

    def __init__(self, message: str, *, task_id: str, confirmed: int, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.task_id = task_id
        self.confirmed = confirmed


class TaskNotRegistered(LookupError):
    """Raised when enqueueing a function or name that no `@task` registered."""


class TaskTimeout(TimeoutError):
    """The error recorded when an attempt runs longer than its `timeout`."""


def error_text(exc: BaseException) -> str:
    """The one-line error recorded on a task: ``"ExceptionType: message"``, capped at 2000 chars."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."
