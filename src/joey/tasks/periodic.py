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
import bisect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = ["Cron", "Every", "Periodic", "Schedule", "make_schedule", "run_schedules"]

logger = logging.getLogger("joey.tasks")


class Every:
    """A tick every `seconds`, at the multiples of `seconds` since the Unix epoch."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        # The tick arithmetic divides Unix time by the interval: far below a millisecond the
        # quotient outgrows a float's precision (ticks stop advancing), then its range.
        if not seconds >= 0.001 or math.isinf(seconds):
            raise ValueError(
                f"every must be a positive number of seconds, at least 0.001, got {seconds}"
            )
        self.seconds = seconds

    def next_after(self, t: float) -> float:
        return (self._last(t) + 1) * self.seconds

    def last_at_or_before(self, t: float) -> float:
        return self._last(t) * self.seconds

    def _last(self, t: float) -> float:
        """The number of the last tick at or before `t`. Not ``floor(t / seconds)``: the
        quotient is rounded first (a tiny negative `t` gives -0.0, a tick after `t`); `//`
        works from the exact remainder, and the tick's own rounding is checked."""
        n = t // self.seconds
        if n * self.seconds > t:
            return n - 1
        if (n + 1) * self.seconds <= t:
            return n + 1
        return n

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
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: in leap years
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
# A guard, never reached by an expression the constructor accepts: the farthest tick of one is
# 8 years away (February 29 around 2100), a few hundred steps of the searches below.
_MAX_STEPS = 10_000


class Cron:
    """A five-field cron expression (minute hour day month weekday), evaluated in UTC.

    Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` or ``a-b/n`` and lists
    ``a,b``; weekday 0 and 7 are Sunday. As in cron, when both day and weekday are
    restricted, a time matches if either does. ``@hourly``, ``@daily``, ``@weekly``,
    ``@monthly`` and ``@yearly`` are accepted. An expression that can never match (such as
    ``"0 0 31 2 *"``, February 31) is refused.

    Example::

        from datetime import UTC, datetime

        cron = Cron("30 9 * * 1-5")  # 09:30 UTC, Monday to Friday
        friday = datetime(2026, 1, 2, 10, 0, tzinfo=UTC).timestamp()
        assert cron.next_after(friday) == datetime(2026, 1, 5, 9, 30, tzinfo=UTC).timestamp()
    """

    __slots__ = ("_hours", "_minutes", "any_day", "any_weekday", "days", "expression", "hours",
                 "minutes", "months", "weekdays")  # fmt: skip

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
        # Sorted, for the searches to jump to the next (or previous) allowed hour and minute.
        self._hours = sorted(self.hours)
        self._minutes = sorted(self.minutes)
        # Only the day field can rule out every time: with the weekday restricted too, a
        # time matches on either, and every month has every weekday.
        if self.any_weekday and not any(
            min(self.days) <= _LONGEST_MONTH[month - 1] for month in self.months
        ):
            months = [_MONTHS[month - 1] for month in sorted(self.months)]
            days = sorted(self.days)
            raise ValueError(
                f"cron expression {expression!r} never matches: "
                f"{_words(months)} {'has' if len(months) == 1 else 'have'} no day "
                f"{_words([str(day) for day in days], 'or')}"
            )

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.weekday() + 1) % 7 in self.weekdays  # cron: Sunday is 0
        if self.any_day:
            return weekday_ok
        if self.any_weekday:
            return day_ok
        return day_ok or weekday_ok

    def next_after(self, t: float) -> float:
        """The first tick after `t` (Unix seconds)."""
        moment = _utc(t // 60 * 60 + 60)  # `//`, not floor(t / 60): see `Every._last`
        for _ in range(_MAX_STEPS):
            if moment.month not in self.months:  # the first minute of the next month
                year, month = divmod(moment.year * 12 + moment.month, 12)
                moment = datetime(year, month + 1, 1, tzinfo=UTC)
            elif (not self._day_matches(moment)
                  or (hour := _at_or_after(self._hours, moment.hour)) is None):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)  # the next day
            elif hour != moment.hour:
                moment = moment.replace(hour=hour, minute=self._minutes[0])
            elif (minute := _at_or_after(self._minutes, moment.minute)) is None:
                moment = moment.replace(minute=0) + timedelta(hours=1)
            else:
                return _timestamp(moment.replace(minute=minute))
        raise RuntimeError(f"{self!r}: no tick found after {t}")  # pragma: no cover - a bug

    def last_at_or_before(self, t: float) -> float:
        """The latest tick at or before `t` (Unix seconds)."""
        moment = _utc(t // 60 * 60)
        for _ in range(_MAX_STEPS):
            if moment.month not in self.months:  # the last minute of the month before
                moment = moment.replace(day=1, hour=0, minute=0) - _MINUTE
            elif (not self._day_matches(moment)
                  or (hour := _at_or_before(self._hours, moment.hour)) is None):
                moment = moment.replace(hour=0, minute=0) - _MINUTE  # the day before's last
            elif hour != moment.hour:
                moment = moment.replace(hour=hour, minute=self._minutes[-1])
            elif (minute := _at_or_before(self._minutes, moment.minute)) is None:
                moment = moment.replace(minute=0) - _MINUTE
            else:
                return _timestamp(moment.replace(minute=minute))
        raise RuntimeError(f"{self!r}: no tick found before {t}")  # pragma: no cover - a bug

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"


Schedule = Every | Cron


def _utc(seconds: float) -> datetime:
    # Not datetime.fromtimestamp: it refuses times before 1970 on some platforms.
    return _EPOCH + timedelta(seconds=seconds)


def _timestamp(moment: datetime) -> float:
    return (moment - _EPOCH).total_seconds()


def _at_or_after(values: list[int], value: int) -> int | None:
    """The first of the sorted `values` that is >= `value`, or None."""
    index = bisect.bisect_left(values, value)
    return values[index] if index < len(values) else None


def _at_or_before(values: list[int], value: int) -> int | None:
    """The last of the sorted `values` that is <= `value`, or None."""
    index = bisect.bisect_right(values, value)
    return values[index - 1] if index else None


def _words(items: list[str], joiner: str = "and") -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


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
    max_retry_pause: float = 10.0,
) -> None:
    """Claim every periodic task's ticks as they come, until cancelled.

    The first tick of each task is the first one after the loop starts. When the loop wakes,
    each task whose next tick has passed gets one claim for the latest tick that passed.

    A claim that fails (Redis is down) keeps the tick due; the loop tries again after
    `retry_pause` seconds, doubling the pause at each failure in a row up to `max_retry_pause`.
    An outage is logged twice: when it begins and when claims succeed again.
    """
    if not tasks:
        return
    now = clock()
    due: dict[str, float] = {}
    for defn in tasks:
        assert defn.schedule is not None
        due[defn.name] = defn.schedule.next_after(now)
    failures = 0  # claims failed in a row: the current outage
    outage_began = 0.0
    while True:
        await asyncio.sleep(max(0.0, min(due.values()) - clock()))
        now = clock()
        for defn in _due(tasks, due, now):
            assert defn.schedule is not None
            tick = defn.schedule.last_at_or_before(now)
            try:
                won = await claim(defn, tick)
            except Exception as exc:
                # Keep the tick due and try again later (a tick is claimed at most once, so
                # trying again is safe); the other due tasks wait too: they need the same store.
                failures += 1
                pause = min(max_retry_pause, retry_pause * 2.0 ** min(failures - 1, 30))
                if failures == 1:
                    outage_began = clock()
                    logger.warning(
                        "periodic tasks: cannot claim ticks (%s: %r); trying again, "
                        "less and less often (up to every %gs), until it works",
                        defn.name, exc, max_retry_pause,
                    )  # fmt: skip
                else:
                    logger.debug("periodic task %s: claim failed again: %r", defn.name, exc)
                await asyncio.sleep(pause)
                break
            if failures:
                logger.warning(
                    "periodic tasks: claiming ticks again, after %.1fs and %d failed claim(s)",
                    clock() - outage_began, failures,
                )  # fmt: skip
                failures = 0
            if won:
                logger.debug("periodic task %s: tick %s enqueued here", defn.name, tick)
            due[defn.name] = defn.schedule.next_after(now)


def _due(tasks: Iterable[Periodic], due: dict[str, float], now: float) -> list[Periodic]:
    return [defn for defn in tasks if due[defn.name] <= now]
