"""The metric families the task queue, the channels and the rate limits report to: each
part of Joey that reports holds one of these (``report_to``), set by an app with ``metrics=``;
without it, the part holds ``None`` and reports nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "TASK_BUCKETS",
    "ChannelMetrics",
    "QueueCollector",
    "RateLimitMetrics",
    "TaskMetrics",
]

#: seconds, for task runs: from 10 ms to 10 minutes
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


class TaskMetrics:
    """What the task backends report, by task name (registered names: a bounded set)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["task"]
        self.enqueued = Counter("joey_tasks_enqueued", "Tasks enqueued", labels,
                                registry=registry)
        self.started = Counter("joey_tasks_started", "Task attempts started", labels,
                               registry=registry)
        self.succeeded = Counter("joey_tasks_succeeded", "Task attempts that succeeded",
                                 labels, registry=registry)
        self.failed = Counter("joey_tasks_failed",
                              "Task attempts that failed (retried or dead)", labels,
                              registry=registry)
        self.dead = Counter("joey_tasks_dead", "Tasks dead after their last attempt", labels,
                            registry=registry)
        self.duration = Histogram("joey_task_run_duration", "Duration of task attempts",
                                  labels, unit="seconds", buckets=TASK_BUCKETS,
                                  registry=registry)
        self.queued = Gauge("joey_tasks_queued",
                            "Tasks waiting to start (in-memory queues of every worker)",
                            registry=registry, multiprocess_mode="livesum")
        #: what a scrape asks for the tasks in a shared queue (RedisTasks.overview)
        self.overviews: list[Callable[[], Awaitable[dict[str, dict[str, int]]]]] = []

    def watch(self, backend: Any) -> None:
        """Have scrapes read ``backend``'s queue if it is shared (it has ``overview()``: the
        counts are in Redis, the same for every worker; read once per scrape)."""
        overview = getattr(backend, "overview", None)
        if overview is not None and overview not in self.overviews:
            self.overviews.append(overview)

    def ran(self, task: str, seconds: float, outcome: str) -> None:
        """One attempt of ``task`` ended: ``outcome`` is "succeeded", "failed" or "dead"
        (a dead task's last attempt counts as failed too)."""
        self.duration.labels(task).observe(seconds)
        if outcome == "succeeded":
            self.succeeded.labels(task).inc()
        else:
            self.failed.labels(task).inc()
            if outcome == "dead":
                self.dead.labels(task).inc()


class ChannelMetrics:
    """What the channels report (no channel label: channel names may be unbounded)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.subscribers = Gauge("joey_channel_subscribers",
                                 "Subscriptions to a channel (one per channel subscribed)",
                                 registry=registry, multiprocess_mode="livesum")
        self.published = Counter("joey_channel_messages_published", "Messages published",
                                 registry=registry)
        self.delivered = Counter("joey_channel_messages_delivered",
                                 "Messages queued for a subscriber", registry=registry)
        self.dropped = Counter("joey_channel_messages_dropped",
                               "Messages a slow subscriber lost to its overflow policy",
                               ["overflow"], registry=registry)


class RateLimitMetrics:
    """What the rate limits decide, by limit name (declared names: a bounded set)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "joey_rate_limit_decisions", "Rate limit decisions, by limit and decision "
            "(allowed, limited; failed_open and unavailable when the backend failed)",
            ["limit", "decision"], registry=registry)


class QueueCollector(Collector):
    """``joey_tasks_in_redis{task, state}``: the tasks of the shared queues as the last scrape
    read them (:meth:`~joey.metrics.Metrics.refresh` fills :attr:`counts`)."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.counts is None:  # no shared queue, or it could not be read
            return
        family = GaugeMetricFamily(
            "joey_tasks_in_redis", "Tasks in the Redis queue, by task and state (queued, "
            "running, scheduled, dead), read at the scrape", labels=["task", "state"])
        for task, places in sorted((self.counts or {}).items()):
            for state, count in places.items():
                family.add_metric([task, state], count)
        yield family
