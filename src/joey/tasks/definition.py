"""A registered task: its function and default options (`TaskDef`), and the `Backoff` between
its retries. Built once, at registration; the run path only reads them.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from typing import Any

import msgspec

from .periodic import Schedule

__all__ = [
    "DEFAULT_BACKOFF",
    "Backoff",
    "TaskDef",
    "check_timeout",
    "resolve_timeout",
    "source_of",
]


class Backoff(msgspec.Struct, frozen=True, array_like=True):
    """How long to wait before retry number *n* (1 for the first retry).

    The wait is ``min(max_delay, base * factor ** (n - 1))``, then shortened by a random fraction
    of up to `jitter` (0 = exact, 1 = anywhere between 0 and the full wait) so that tasks that
    failed together do not all retry in the same instant.

    Example::

        @app.task(retries=5, backoff=Backoff(base=1.0, factor=3.0, max_delay=300.0))
        async def sync_account(account_id: int) -> None: ...
    """

    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.5

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (counting from 1)."""
        wait = min(self.max_delay, self.base * self.factor ** max(retry - 1, 0))
        return max(0.0, wait * (1.0 - self.jitter * rand()))


DEFAULT_BACKOFF = Backoff()


class TaskDef:
    """A registered task: the function and its default options, built once at registration."""

    __slots__ = ("backoff", "fn", "is_async", "name", "retries", "schedule", "source", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        timeout: float | None,
        retries: int,
        backoff: Backoff,
        schedule: Schedule | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # Decided once here rather than per run: the run path only branches on a bool.
        self.is_async = inspect.iscoroutinefunction(fn)
        self.source = source_of(fn)
        self.schedule = schedule


def check_timeout(timeout: float | None) -> None:
    """Refuse a `timeout` option that is not a positive number of seconds (or None)."""
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds (or None), got {timeout}")


def resolve_timeout(timeout: float | None) -> float | None:
    """`math.inf` means "no timeout"; the run path only sees a number or None."""
    return None if timeout is None or math.isinf(timeout) else timeout


def source_of(fn: Any) -> str:
    """``name (file:line)`` for error messages, or a repr when the source is unknown."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return name
    return f"{name} ({code.co_filename}:{code.co_firstlineno})"
