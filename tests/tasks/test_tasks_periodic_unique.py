"""Periodic schedules (cron, intervals), unique jobs in both backends, and `joey tasks`."""

from __future__ import annotations

import asyncio
import calendar
import itertools
import logging
import math
import re
import sys
import time
import types
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from joey.__main__ import main
from joey.tasks import InMemoryTasks, RedisTasks, TaskBackend, TaskState
from joey.tasks.attempt import cancel_and_wait
from joey.tasks.periodic import Cron, Every, Periodic, make_schedule, run_schedules
from tests.redis_server import RedisServer


def ts(text: str) -> float:
    return float(calendar.timegm(datetime.fromisoformat(text).utctimetuple()))


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", "2026-01-01T10:03:59", "2026-01-01T10:05:00"),
        ("*/5 * * * *", "2026-01-01T10:05:00", "2026-01-01T10:10:00"),
        ("0 3 * * *", "2026-01-01T03:00:00", "2026-01-02T03:00:00"),
        ("30 9 * * 1-5", "2026-01-02T10:00:00", "2026-01-05T09:30:00"),  # Fri -> Mon
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 1 * 0", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),  # day OR Sunday
        ("@hourly", "2026-01-01T10:59:00", "2026-01-01T11:00:00"),
        ("15,45 * * * 7", "2026-01-04T00:20:00", "2026-01-04T00:45:00"),  # 7 is Sunday
    ],
)
def test_cron_next_tick(expression: str, after: str, expected: str) -> None:
    cron = Cron(expression)
    assert cron.next_after(ts(after)) == ts(expected)
    assert cron.last_at_or_before(ts(expected)) == ts(expected)
    assert cron.last_at_or_before(ts(expected) + 1) == ts(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "needs 5 fields"),
        ("61 * * * *", "minute field '61' is outside 0-59"),
        ("a * * * *", "bad minute field"),
        ("*/0 * * * *", "outside"),
        ("0 0 31 2 *", "'0 0 31 2 *' never matches: February has no day 31"),
        ("0 0 30,31 2 *", "never matches: February has no day 30 or 31"),
        ("0 12 31 4,6,9,11 *", "never matches: April, June, September and November have no "
                               "day 31"),
        ("0 0 30-31 2 *", "never matches: February has no day 30 or 31"),
    ],
)
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_bad_cron_expressions_are_refused_at_registration_naming_the_task(
    expression: str, message: str, backend: str
) -> None:
    # RedisTasks connects at start(), not here: registration needs no server.
    tasks = InMemoryTasks() if backend == "memory" else RedisTasks("redis://127.0.0.1:1")

    async def job() -> None: ...

    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        tasks.task(name="nightly", cron=expression)(job)
    assert re.match(r"task 'nightly', \S*job \(\S*test_tasks_periodic_unique\.py:\d+\): cron",
                    str(refused.value)), refused.value
    assert tasks.registered == {}
    with pytest.raises(ValueError, match=re.escape(message)):
        Cron(expression)


def test_rare_but_possible_cron_expressions_are_accepted() -> None:
    leap_day = Cron("0 0 29 2 *")  # every 4 years (2100 is not a leap year: 8)
    assert leap_day.next_after(ts("2096-03-01T00:00:00")) == ts("2104-02-29T00:00:00")
    assert leap_day.last_at_or_before(ts("2104-02-28T23:59:00")) == ts("2096-02-29T00:00:00")
    # Day and weekday both restricted: either matches (as in cron), so Mondays of February.
    monday = Cron("0 0 31 2 1")
    assert monday.next_after(ts("2026-02-01T00:00:00")) == ts("2026-02-02T00:00:00")
    assert Cron("0 0 31 1-2 *").next_after(ts("2026-02-01T00:00:00")) == ts(
        "2027-01-31T00:00:00")


# -- the searches against a brute-force reference ----------------------------------------------


def _field(low: int, high: int, numbers: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """A random cron field: lists of *, numbers, ranges and steps."""
    def span(pair: tuple[int, int]) -> str:
        return f"{min(pair)}-{max(pair)}"

    item = st.one_of(
        st.just("*"),
        numbers.map(str),
        st.tuples(numbers, numbers).map(span),
        st.tuples(st.sampled_from(["*", str(low)]), st.integers(1, high)).map(
            lambda p: f"{p[0]}/{p[1]}"),
        st.tuples(st.tuples(numbers, numbers).map(span), st.integers(1, 9)).map(
            lambda p: f"{p[0]}/{p[1]}"),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


CRON = st.tuples(
    _field(0, 59, st.integers(0, 59)),
    _field(0, 23, st.integers(0, 23)),
    # the end of the month, where months differ, more often
    _field(1, 31, st.one_of(st.integers(1, 31), st.integers(28, 31))),
    _field(1, 12, st.one_of(st.integers(1, 12), st.just(2))),
    _field(0, 7, st.integers(0, 7)),
).map(" ".join)
# Unix times from 1960 to 2200, whole minutes (ticks themselves) as often as any second.
MOMENTS = st.one_of(
    st.integers(-315_619_200 // 60, 7_258_118_400 // 60).map(lambda m: m * 60.0),
    st.floats(-315_619_200, 7_258_118_400),
)
_DAY = timedelta(days=1)


def _day_matches(cron: Cron, day: datetime) -> bool:
    """The cron rule for a date, written out: month, then day of month or of week."""
    if day.month not in cron.months:
        return False
    in_month = day.day in cron.days
    in_week = day.isoweekday() % 7 in cron.weekdays
    if cron.any_day:
        return in_week
    if cron.any_weekday:
        return in_month
    return in_month or in_week


def _brute_last(cron: Cron, t: float) -> float:
    """Minute by minute back from `t` (a date that does not match skips its 1440 minutes)."""
    moment = datetime(1970, 1, 1) + timedelta(minutes=t // 60)
    for _ in range(9 * 366 * 1440):  # 8 years apart at most (no February 29 in 2100)
        if not _day_matches(cron, moment):
            moment = moment.replace(hour=0, minute=0) - timedelta(minutes=1)
        elif moment.hour in cron.hours and moment.minute in cron.minutes:
            return (moment - datetime(1970, 1, 1)).total_seconds()
        else:
            moment -= timedelta(minutes=1)
    raise AssertionError("no tick in 9 years")


def _brute_next(cron: Cron, t: float) -> float:
    moment = datetime(1970, 1, 1) + timedelta(minutes=t // 60 + 1)
    for _ in range(9 * 366 * 1440):
        if not _day_matches(cron, moment):
            moment = moment.replace(hour=0, minute=0) + _DAY
        elif moment.hour in cron.hours and moment.minute in cron.minutes:
            return (moment - datetime(1970, 1, 1)).total_seconds()
        else:
            moment += timedelta(minutes=1)
    raise AssertionError("no tick in 9 years")


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(expression=CRON, t=MOMENTS)
# Ticks years apart (the latest tick is further back than a year), on and off a tick:
@example(expression="0 0 29 2 *", t=ts("2027-01-01T00:00:00"))
@example(expression="0 0 29 2 *", t=ts("2104-02-29T00:00:00"))
@example(expression="59 23 31 1,3 *", t=ts("1969-12-31T23:59:00"))
@example(expression="*/7 */5 29-31 2,4 6", t=ts("2031-02-28T12:34:56"))
# A moment so close below a tick that t / 60 rounds to it (it used to give a "last" tick after t):
@example(expression="* * * * *", t=-5e-324)
@example(expression="0 0 1 1 *", t=-5e-324)
def test_cron_searches_agree_with_a_brute_force_walk(expression: str, t: float) -> None:
    try:
        cron = Cron(expression)
    except ValueError as exc:  # refused: a day no month of the expression has
        assert "never matches" in str(exc)
        assume(False)
    last = cron.last_at_or_before(t)
    assert last == _brute_last(cron, t)
    assert cron.next_after(t) == _brute_next(cron, t)
    assert last <= t < cron.next_after(t)
    assert cron.next_after(last) == cron.next_after(t)  # nothing in between


def test_the_latest_tick_is_computed_not_walked_to() -> None:
    """The schedule loop asks for the latest tick whenever it wakes late (after an outage):
    each answer must cost microseconds, whatever the expression and however late."""
    expressions = ["*/5 * * * *", "* * * * *", "0 3 * * 1-5", "0 0 29 2 *", "15 */2 1,15 * 0"]
    started = time.process_time()
    for i in range(1000):
        cron = Cron(expressions[i % len(expressions)])
        t = 1_700_000_000 + i * 7_919.5  # spread over two years
        assert cron.last_at_or_before(t) <= t < cron.next_after(t)
    # A walk tick by tick from a year back took 0.6-1.2 s of CPU per call.
    assert time.process_time() - started < 2.0


@settings(max_examples=500, deadline=None, database=None)
@given(seconds=st.floats(0.001, 1e6), t=MOMENTS)
@example(seconds=60.0, t=-5e-324)  # t / 60 rounds to -0.0: the "last" tick was 0, after t
@example(seconds=0.1, t=0.3)  # 3 * 0.1 is 0.30000000000000004: the last tick is 0.2
@example(seconds=0.1, t=0.30000000000000004)
def test_an_interval_puts_every_moment_between_two_ticks(seconds: float, t: float) -> None:
    every = Every(seconds)
    last, nxt = every.last_at_or_before(t), every.next_after(t)
    assert last <= t < nxt
    assert every.next_after(last) == nxt  # nothing in between


def test_every_is_aligned_and_options_are_checked() -> None:
    every = Every(10)
    assert every.next_after(1005.0) == 1010.0 and every.next_after(1010.0) == 1020.0
    assert every.last_at_or_before(1019.9) == 1010.0
    with pytest.raises(ValueError, match="not both"):
        make_schedule("* * * * *", 5)
    with pytest.raises(ValueError, match="positive"):
        make_schedule(None, 0)
    # Unix time over so short an interval outgrows a float: ticks would stop advancing.
    for tiny in (1e-300, 1e-9):
        with pytest.raises(ValueError, match=r"at least 0\.001"):
            make_schedule(None, tiny)
    assert make_schedule(None, None) is None


async def test_in_memory_periodic_task_runs_each_tick() -> None:
    # Timed from the events, with no lower bound on the rate: a loaded machine may skip ticks
    # (they are not made up), but never runs one twice.
    tasks = InMemoryTasks()
    runs: list[float] = []

    @tasks.task(name="tick", every=0.05)
    async def tick() -> None:
        runs.append(time.time())

    began = time.time()
    async with tasks:
        async with asyncio.timeout(30):
            while len(runs) < 4:  # noqa: ASYNC110 - the ticks run on this loop
                await asyncio.sleep(0.01)
    ended = time.time()
    count = len(runs)
    assert count <= math.floor((ended - began) / 0.05) + 1  # at most one run per tick passed
    assert all(began <= at <= ended for at in runs)
    await asyncio.sleep(0.15)  # three ticks' worth at least (load only makes it longer)
    assert len(runs) == count  # stopped with the backend


# -- claims while the store is down -------------------------------------------------------------


async def test_failing_claims_back_off_and_the_outage_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = InMemoryTasks()

    @tasks.task(name="tick", every=0.05)
    async def tick() -> None: ...

    loop = asyncio.get_running_loop()
    tries: list[float] = []
    claimed: list[float] = []
    down = True

    async def claim(defn: Periodic, at: float) -> bool:  # the store's side of a claim
        tries.append(loop.time())
        if down:
            raise ConnectionError("the store is down")
        claimed.append(at)
        return True

    schedules = asyncio.create_task(run_schedules(
        [tasks.registered["tick"]], claim, retry_pause=0.05, max_retry_pause=0.2))
    try:
        with caplog.at_level(logging.DEBUG, logger="joey.tasks"):
            async with asyncio.timeout(20):
                while len(tries) < 7:  # noqa: ASYNC110 - the loop runs on this event loop
                    await asyncio.sleep(0.01)
                down = False
                while not claimed:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    finally:
        await cancel_and_wait([schedules])
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries[:7])]
    # Each pause at least doubles, up to max_retry_pause (a sleep never ends early; a loaded
    # machine only makes it longer).
    for gap, pause in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2, 0.2], strict=True):
        assert gap >= pause * 0.95, gaps
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in messages if "cannot claim ticks" in m]) == 1, messages
    assert "ConnectionError('the store is down')" in messages[0]
    assert len([m for m in messages if "claiming ticks again" in m]) == 1, messages
    assert claimed[0] == Every(0.05).last_at_or_before(claimed[0])  # the latest tick, once


async def test_a_redis_outage_slows_the_claims_and_is_logged_once(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = RedisTasks(own_redis.url, prefix=prefix, redis_timeout=0.3)
    runs: list[float] = []

    @tasks.task(name="tick", every=0.2)
    async def tick() -> None:
        runs.append(time.monotonic())

    async with tasks:
        async with asyncio.timeout(20):
            while not runs:  # noqa: ASYNC110 - the task runs on this loop
                await asyncio.sleep(0.02)
        with caplog.at_level(logging.DEBUG, logger="joey.tasks"):
            own_redis.freeze()  # every claim times out after redis_timeout
            try:
                await asyncio.sleep(3.0)
            finally:
                own_redis.thaw()
                thawed = time.monotonic()
            # A claim sent while Redis was frozen may still run when it thaws, while the loop
            # sleeps out its pause (up to 2 s): wait for the loop's own next claim, logged, and a
            # run after it.
            async with asyncio.timeout(20):
                while not any(  # noqa: ASYNC110
                    "claiming ticks again" in r.getMessage() for r in caplog.records
                ):
                    await asyncio.sleep(0.02)
                again = time.monotonic()
                while not [at for at in runs if at > again]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
    assert runs[-1] > thawed
    messages = [r.getMessage() for r in caplog.records if r.name == "joey.tasks"]
    began = [m for m in messages if "periodic tasks: cannot claim ticks" in m]
    tries = [m for m in messages if "periodic task tick: claim failed again" in m]
    assert len(began) == 1, messages
    # Pauses of 0.5, 1, 2 s after a 0.3 s timeout each: at most 4 tries in 3 s (every 0.8 s
    # without the backoff); the backoff leaves the other loops' log lines alone.
    assert 1 + len(tries) <= 4, messages
    assert len([m for m in messages if "periodic tasks: claiming ticks again" in m]) == 1


# -- unique jobs -------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, prefix: str
) -> AsyncIterator[TaskBackend]:
    memory = request.param == "memory"
    tasks: TaskBackend = InMemoryTasks() if memory else RedisTasks(redis_url, prefix=prefix)
    yield tasks
    await tasks.stop()


async def test_unique_jobs_keep_or_replace(backend: TaskBackend) -> None:
    release = asyncio.Event()
    ran: list[int] = []

    @backend.task(name="reindex")
    async def reindex(n: int) -> int:
        ran.append(n)
        await release.wait()
        return n

    await backend.start()
    unique = backend.options(unique="user:7")
    first = await unique.enqueue(reindex, 1)
    async with asyncio.timeout(10):
        while not ran:  # noqa: ASYNC110 - the task runs on this loop
            await asyncio.sleep(0.01)
        assert await unique.enqueue(reindex, 2) == first  # running: the same task
        later = await backend.options(delay=30, unique="user:8").enqueue(reindex, 3)
        replacing = await backend.options(unique="user:8", replace=True).enqueue(reindex, 4)
        assert replacing != later
        replaced = await backend.wait(later)
        assert replaced.state is TaskState.CANCELLED and replaced.error is not None
        assert replaced.error.startswith("Replaced")
        release.set()
        assert (await backend.wait(first)).result == 1
        assert (await backend.wait(replacing)).result == 4
        again = await unique.enqueue(reindex, 5)  # the key is free once the task is done
        assert again != first and (await backend.wait(again)).result == 5
    assert sorted(ran) == [1, 4, 5]
    with pytest.raises(ValueError, match="needs a unique key"):
        backend.options(replace=True)


# -- joey tasks ----------------------------------------------------------------------------------


async def test_joey_tasks_shows_requeues_drops_and_reports_metrics(
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    worker = RedisTasks(redis_url, prefix=prefix)

    @worker.task(name="broken")
    async def broken() -> None:
        raise ValueError("no")

    @worker.task(name="fine")
    async def fine() -> None: ...

    async with worker:
        dead = [await worker.enqueue(broken) for _ in range(2)]
        for task_id in dead:
            await worker.wait(task_id)
        await worker.wait(await worker.enqueue(fine))
    producer = RedisTasks(redis_url, prefix=prefix, consume=False)
    async with producer:
        await producer.enqueue("fine")
        await producer.options(delay=60).enqueue("fine")
    module = types.ModuleType("joey_test_ops_app")
    module.app = types.SimpleNamespace(  # type: ignore[attr-defined]
        tasks=RedisTasks(redis_url, prefix=prefix, consume=False)
    )
    monkeypatch.setitem(sys.modules, "joey_test_ops_app", module)

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(["tasks", "joey_test_ops_app:app", *argv])
        out, err = capsys.readouterr()
        return status, out, err

    status, out, _ = await asyncio.to_thread(run)
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["task", "queued", "running", "scheduled", "dead"]
    assert ["broken", "0", "0", "0", "2"] in lines and ["fine", "1", "0", "1", "0"] in lines

    status, out, _ = await asyncio.to_thread(run, "metrics")
    assert status == 0
    assert 'joey_tasks{task="broken",state="dead"} 2' in out
    assert 'joey_tasks_finished_total{task="broken",outcome="dead"} 2' in out
    assert 'joey_tasks_finished_total{task="fine",outcome="succeeded"} 1' in out
    assert 'joey_task_run_seconds_total{task="fine"}' in out

    assert (await asyncio.to_thread(run, "requeue"))[0] == 2  # ids or --all needed
    status, out, _ = await asyncio.to_thread(run, "requeue", dead[0])
    assert status == 0 and f"requeue: {dead[0]}" in out
    status, _, err = await asyncio.to_thread(run, "drop", dead[0])
    assert status == 1 and "is not a dead task" in err  # requeued: no longer dead
    status, out, _ = await asyncio.to_thread(run, "drop", "--all")
    assert status == 0 and f"drop: {dead[1]}" in out
    async with producer:
        assert await producer.dead_letters() == []
        assert await producer.status(dead[1]) is None
        info = await producer.status(dead[0])
        assert info is not None and info.state is TaskState.QUEUED
