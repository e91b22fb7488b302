"""The errors of the task API, and the one line a failed attempt is recorded as."""

from __future__ import annotations

from ..exceptions import ServiceUnavailable

__all__ = [
    "QueueFull",
    "TaskNotRegistered",
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


class TaskNotRegistered(LookupError):
    """Raised when enqueueing a function or name that no `@task` registered."""


class TaskTimeout(TimeoutError):
    """The error recorded when an attempt runs longer than its `timeout`."""


def error_text(exc: BaseException) -> str:
    """The one-line error recorded on a task: ``"ExceptionType: message"``, capped at 2000 chars."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."
