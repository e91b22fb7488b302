"""`RedisTasks(confirm_replicas=n)`: `enqueue` returns only once n replicas have the task
(Redis ``WAIT``). Here on a single Redis, which has no replica: every confirmed enqueue waits
`confirm_timeout` and is refused with a 503, the task left on the primary. With replicas (a
cluster, Sentinel) and through a failover: tests/test_redis_topologies.py and
tests/test_redis_failover.py."""

from __future__ import annotations

import time

import pytest

from joey import App
from joey.tasks import RedisTasks, TaskNotReplicated, TaskState, TasksUnavailable
from joey.testing import AsyncTestClient
from tests.redis_server import single_redis_only

pytest.importorskip("redis.asyncio")


@single_redis_only  # a cluster has replicas: tests/test_redis_topologies.py
async def test_with_no_replica_a_confirmed_enqueue_waits_then_answers_503(
    redis_url: str, prefix: str
) -> None:
    tasks = RedisTasks(redis_url, prefix=prefix, consume=False, confirm_replicas=1,
                       confirm_timeout=0.3, retry_after=4)
    app = App(tasks=tasks)

    @app.task(name="report")
    async def report(day: str) -> None: ...

    @app.post("/reports/{day}")
    async def make_report(day: str) -> dict[str, str]:
        return {"id": await tasks.enqueue(report, day)}

    async with AsyncTestClient(app) as client:
        began = time.monotonic()
        response = await client.post("/reports/monday")
        waited = time.monotonic() - began
        assert response.status_code == 503
        assert response.headers["retry-after"] == "4"
        assert "0 of the 1 replica(s)" in response.text
        assert waited >= 0.3  # Redis's WAIT ran its course (a lower bound: safe under load)

        with pytest.raises(TaskNotReplicated) as refused:
            await tasks.enqueue(report, "tuesday")
        assert isinstance(refused.value, TasksUnavailable)
        assert refused.value.confirmed == 0
        # the primary has it: it runs unless that primary fails before a replica copies it
        info = await tasks.status(refused.value.task_id)
        assert info is not None and info.state is TaskState.QUEUED and info.args == ("tuesday",)


@single_redis_only  # a cluster has replicas: tests/test_redis_topologies.py
async def test_a_unique_confirmed_enqueue_sent_again_finds_the_first(
    redis_url: str, prefix: str
) -> None:
    """The retry the error advises: with ``unique=``, a second try returns the task the
    first one wrote instead of queueing it twice."""
    async with RedisTasks(redis_url, prefix=prefix, consume=False, confirm_replicas=1,
                          confirm_timeout=0.05) as tasks:
        with pytest.raises(TaskNotReplicated) as first:
            await tasks.options(unique="report:monday").enqueue("report", "monday")
        with pytest.raises(TaskNotReplicated) as second:
            await tasks.options(unique="report:monday").enqueue("report", "monday")
        assert second.value.task_id == first.value.task_id
        assert (await tasks.overview())["report"]["queued"] == 1


async def test_without_confirm_replicas_enqueue_does_not_wait(
    redis_url: str, prefix: str
) -> None:
    async with RedisTasks(redis_url, prefix=prefix, consume=False) as tasks:
        task_id = await tasks.enqueue("report", "monday")
        info = await tasks.status(task_id)
        assert info is not None and info.state is TaskState.QUEUED


@pytest.mark.parametrize(
    ("options", "message"),
    [({"confirm_replicas": -1}, "confirm_replicas must be >= 0"),
     ({"confirm_timeout": 0}, "confirm_timeout must be > 0")],
)
def test_confirm_options_are_checked(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisTasks("redis://127.0.0.1:6379/0", **options)  # type: ignore[arg-type]
