"""Periodic tasks: when a task's next tick is (`Cron`, `Every`), and the loop that claims ticks.

Ticks are computed from the schedule alone (an interval is aligned to the Unix epoch, a cron
expression to UTC minutes), so every process agrees on each tick's timestamp, whatever its
start time. A backend turns a tick into one run with its `claim` callback: `RedisTasks` claims
the tick atomically in Redis (one worker wins), `InMemoryTasks` just enqueues.

Missed ticks are not made up: ticks that passed while no process was consuming are skipped,
and a loop that wakes late (an outage, a stalled event loop) runs only the latest tick that
passed, once.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = ["Cron", "Every", "Schedule", "make_schedule", "run_schedules"]

logger = logging.getLogger("joey.tasks")


class Every:
    """A tick every `seconds`, at the multiples of `seconds` since the Unix epoch."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if not seconds > 0 or math.isinf(seconds):
            raise ValueError(f"every must be a positive number of seconds, got {seconds}")
        self.seconds = seconds

    def next_after(self, t: float) -> float:
        return (math.floor(t / self.seconds) + 1) * self.seconds

    def last_at_or_before(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    def __repr__(self) -> str:
        return f"Every({self.seconds:g})"


_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


class Cron:
    """A five-field cron expression (minute hour day month weekday), evaluated in UTC.

    Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` or ``a-b/n`` and lists
    ``a,b``; weekday 0 and 7 are Sunday. As in cron, when both day and weekday are
    restricted, a time matches if either does. ``@hourly``, ``@daily``, ``@weekly``,
    ``@monthly`` and ``@yearly`` are accepted.
    """

    __slots__ = ("any_day", "any_weekday", "days", "expression", "hours", "minutes", "months",
                 "weekdays")  # fmt: skip

    def __init__(self, expression: str) -> None:
        self.expression = expression
        parts = _ALIASES.get(expression.strip(), expression).split()
        if len(parts) != 5:
            raise ValueError(
                f"cron expression {expression!r} needs 5 fields "
                "(minute hour day month weekday), e.g. '*/5 * * * *'"
            )
        sets = [
            _parse_field(part, name, low, high, expression)
            for part, (name, low, high) in zip(parts, _FIELDS, strict=True)
        ]
        self.minutes, self.hours, self.days, self.months, weekdays = sets
        self.weekdays = frozenset(d % 7 for d in weekdays)  # 7 is Sunday, like 0
        self.any_day = parts[2] == "*"
        self.any_weekday = parts[4] == "*"

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.weekday() + 1) % 7 in self.weekdays  # cron: Sunday is 0
        if self.any_day:
            return weekday_ok
        if self.any_weekday:
            return day_ok
        return day_ok or weekday_ok

    def next_after(self, t: float) -> float:
        moment = datetime.fromtimestamp(math.floor(t / 60) * 60 + 60, UTC)
        for _ in range(200_000):  # enough for any valid expression within several years
            if moment.month not in self.months:
                year, month = (moment.year + 1, 1) if moment.month == 12 else (
                    moment.year, moment.month + 1)  # fmt: skip
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return float(calendar.timegm(moment.utctimetuple()))
        raise ValueError(f"cron expression {self.expression!r} never matches")

    def last_at_or_before(self, t: float) -> float:
        """The latest tick at or before `t` (searching back at most one period of a year)."""
        probe = math.floor(t / 60) * 60
        tick = self.next_after(probe - 60)
        if tick <= t:
            return tick
        low = probe - 366 * 86_400
        found = self.next_after(low)
        if found > t:
            return -math.inf
        while True:
            nxt = self.next_after(found)
            if nxt > t:
                return found
            found = nxt

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"


Schedule = Every | Cron


def _parse_field(part: str, name: str, low: int, high: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, stop = low, high
            elif "-" in base:
                first, _, last = base.partition("-")
                start, stop = int(first), int(last)
            else:
                start = int(base)
                stop = high if step_text else start
        except ValueError:
            raise ValueError(
                f"cron expression {expression!r}: bad {name} field {part!r}"
            ) from None
        if step < 1 or not low <= start <= stop <= high:
            raise ValueError(
                f"cron expression {expression!r}: {name} field {part!r} is outside {low}-{high}"
            )
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def make_schedule(cron: str | None, every: float | timedelta | None) -> Schedule | None:
    """The schedule `@task(cron=..., every=...)` asks for (at most one of the two)."""
    if cron is not None and every is not None:
        raise ValueError("a periodic task takes cron= or every=, not both")
    if cron is not None:
        return Cron(cron)
    if every is not None:
        seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
        return Every(seconds)
    return None


class Periodic(Protocol):
    """What the schedule loop needs of a task definition."""

    @property
    def name(self) -> str: ...
    @property
    def schedule(self) -> Schedule | None: ...


Claim = Callable[[Any, float], Awaitable[bool]]


async def run_schedules(
    tasks: Sequence[Periodic],
    claim: Claim,
    *,
    clock: Callable[[], float] = time.time,
    retry_pause: float = 0.5,
) -> None:
    """Claim every periodic task's ticks as they come, until cancelled.

    The first tick of each task is the first one after the loop starts. When the loop wakes,
    each task whose next tick has passed gets one claim for the latest tick that passed.
    """
    if not tasks:
        return
    now = clock()
    due: dict[str, float] = {}
    for defn in tasks:
        assert defn.schedule is not None
        due[defn.name] = defn.schedule.next_after(now)
    while True:
        await asyncio.sleep(max(0.0, min(due.values()) - clock()))
        now = clock()
        for defn in _due(tasks, due, now):
            assert defn.schedule is not None
            tick = defn.schedule.last_at_or_before(now)
            try:
                won = await claim(defn, tick)
            except Exception as exc:
                # Redis unreachable: keep the tick due and try again shortly (a tick is
                # claimed at most once, so trying again is safe).
                logger.warning(
                    "periodic task %s: tick %.0f not claimed yet: %r", defn.name, tick, exc
                )
                await asyncio.sleep(retry_pause)
                continue
            if won:
                logger.debug("periodic task %s: tick %s enqueued here", defn.name, tick)
            due[defn.name] = defn.schedule.next_after(now)


def _due(tasks: Iterable[Periodic], due: dict[str, float], now: float) -> list[Periodic]:
    return [defn for defn in tasks if due[defn.name] <= now]
