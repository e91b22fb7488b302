"""Seeing the queue: tasks per name and place, and the Prometheus text of `RedisTasks.metrics`."""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from .common import GROUP

_PLACES = ("queued", "running", "scheduled", "dead")


def _label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def count_tasks(
    client: aioredis.Redis, stream: str, delayed: str, dead: str, task_prefix: str, limit: int
) -> dict[str, dict[str, int]]:
    """Tasks per name and place (see `RedisTasks.overview`), at most `limit` of each place."""
    counts: dict[str, dict[str, int]] = {}

    def add(name: str, place: str) -> None:
        row = counts.setdefault(name, dict.fromkeys(_PLACES, 0))
        row[place] += 1

    pending = {
        cast(bytes, item["message_id"])
        for item in await client.xpending_range(stream, GROUP, min="-", max="+", count=limit)
    }
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        await client.xrange(stream, "-", "+", count=limit),
    )
    for entry_id, fields in entries:
        # errors="replace": an entry Joey did not write may hold anything (a worker
        # dead-letters it; until one reads it, it is counted under its name as it can be read)
        name = fields.get(b"name", b"?").decode(errors="replace")
        add(name, "running" if entry_id in pending else "queued")
    for place, ids in (
        ("scheduled", await client.zrange(delayed, 0, limit - 1)),
        ("dead", await client.lrange(dead, 0, limit - 1)),
    ):
        async with client.pipeline(transaction=False) as pipe:
            for raw in cast(list[bytes], ids):
                pipe.hget(task_prefix + raw.decode(), "name")
            for name in await pipe.execute():
                if name is not None:
                    add(name.decode(), place)
    return dict(sorted(counts.items()))


def prometheus_text(overview: dict[str, dict[str, int]], raw: dict[bytes, bytes]) -> str:
    """The overview and the summed counters of `{prefix}:stats` in the Prometheus text format."""
    lines = [
        "# HELP joey_tasks Tasks in the queue by task name and state.",
        "# TYPE joey_tasks gauge",
    ]
    for name, row in overview.items():
        for place, n in row.items():
            lines.append(f'joey_tasks{{task="{_label(name)}",state="{place}"}} {n}')
    finished: list[str] = []
    seconds: list[str] = []
    for field, value in sorted(raw.items()):
        name, _, kind = field.decode().rpartition("|")
        if kind == "seconds":
            seconds.append(f'joey_task_run_seconds_total{{task="{_label(name)}"}} '
                           f"{float(value):.6f}")  # fmt: skip
        else:
            finished.append(
                f'joey_tasks_finished_total{{task="{_label(name)}",outcome="{kind}"}} {int(value)}'
            )
    lines += [
        "# HELP joey_tasks_finished_total Runs that ended, by task name and outcome.",
        "# TYPE joey_tasks_finished_total counter",
        *finished,
        "# HELP joey_task_run_seconds_total Time spent running tasks, by task name.",
        "# TYPE joey_task_run_seconds_total counter",
        *seconds,
    ]
    return "\n".join(lines) + "\n"


__all__ = [
    "count_tasks",
    "prometheus_text",
]
