"""The :class:`Metrics` of an app: its metric families, its scrape route, and what it hands the
parts of Joey that report (the HTTP path, the task queue, the channels, the rate limits, the
session middleware)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import CollectorRegistry, Counter, values
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "joey.metrics needs prometheus_client: pip install 'joey[metrics]'") from exc

from joey.metrics.families import ChannelMetrics, QueueCollector, RateLimitMetrics, TaskMetrics
from joey.metrics.http import HTTPMetrics
from joey.requests import Request
from joey.responses import Response
from joey.routing import Router

if TYPE_CHECKING:
    from joey._engine.http import Engine
    from joey.types import Receive, Scope, Send

    ServeHTTP = Callable[[Scope, Receive, Send], Any]

__all__ = ["DURATION_BUCKETS", "SIZE_BUCKETS", "Metrics"]

logger = logging.getLogger("joey")

#: seconds: the boundaries OpenTelemetry's HTTP semantic conventions advise for
#: ``http.server.request.duration``
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0)
#: bytes: 100 B to 100 MB, a factor of 10 apart
SIZE_BUCKETS = (100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0, 100_000_000.0)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """Prometheus metrics for one app: ``App(metrics=Metrics())``.

    Args:
        path: where the app serves the scrape (``None``: no route; serve
            :meth:`exposition` yourself). The route is left out of the API document and
            of the request metrics.
        duration_buckets: the request-duration histogram's bucket boundaries, in seconds.
        size_buckets: the body-size histograms' boundaries, in bytes.

    :attr:`registry` is what a scrape reads: register your own metrics in it (with several
    workers, metrics made anywhere are gathered from ``PROMETHEUS_MULTIPROC_DIR``).

    Example::

        from prometheus_client import Counter

        metrics = Metrics()
        app = App(metrics=metrics)
        signups = Counter("signups", "Accounts created", registry=metrics.registry)
    """

    def __init__(self, *, path: str | None = "/metrics",
                 duration_buckets: Sequence[float] = DURATION_BUCKETS,
                 size_buckets: Sequence[float] = SIZE_BUCKETS) -> None:
        self.path = path
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError(
                f"{MULTIPROC_ENV} was set after prometheus_client was imported, so this "
                "process would not share its metrics with the other workers: set it before "
                "the server starts (joey run --workers N does)")
        # Each Metrics its own registry: two apps in one process never mix their metrics.
        self._own = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir is None:
            self.registry = self._own
        else:
            # Every process writes its values to files; a scrape adds up those of all of them
            # (and must not read this process's own metrics a second time).
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        own = self._own
        self.http = HTTPMetrics(own, duration_buckets, size_buckets)
        self.tasks = TaskMetrics(own)
        self.channels = ChannelMetrics(own)
        self.rate_limits = RateLimitMetrics(own)
        # read by the scraping process alone: never written to the multiprocess files
        self._queues = QueueCollector()
        self.registry.register(self._queues)
        self.session_store_errors = Counter(
            "joey_session_store_errors", "Session store failures, by operation",
            ["operation"], registry=own)

    # -- exposition ---------------------------------------------------------------------------

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type: OpenMetrics when ``accept`` asks for
        ``application/openmetrics-text``, else the Prometheus text format (0.0.4).

        Example::

            body, content_type = Metrics().exposition()
            assert content_type.startswith("text/plain")
        """
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    async def refresh(self) -> None:
        """Read what is measured at the scrape: the tasks in a Redis queue (the scrape route
        does it; call it before :meth:`exposition` when you serve that yourself). A queue that
        cannot be read within 2 seconds is left out of this scrape, and logged."""
        if not self.tasks.overviews:
            return
        counts: dict[str, dict[str, int]] = {}
        for overview in self.tasks.overviews:
            try:
                async with asyncio.timeout(2):
                    counts.update(await overview())
            except Exception as exc:
                logger.warning("Metrics: the task queue cannot be read (%r); the scrape "
                               "leaves joey_tasks_in_redis out", exc)
                self._queues.counts = None
                return
        self._queues.counts = counts

    async def _scrape(self, request: Request) -> Response:
        accept = request.headers.get("accept", "")
        await self.refresh()
        if self.multiprocess_dir is None:
            body, content_type = self.exposition(accept)
        else:  # reads a file per worker and metric type: not on the event loop
            body, content_type = await asyncio.to_thread(self.exposition, accept)
        return Response(body, headers={"content-type": content_type})

    # -- wiring into an app (App(metrics=...) calls these) -------------------------------------

    def attach(self, app: Any) -> None:
        """Add the scrape route and the shutdown step to ``app`` (``App(metrics=...)`` does)."""
        router = Router(name="metrics")
        if self.path is not None:
            router.get(self.path, name="scrape", include_in_schema=False)(self._scrape)
        router.shutdown_hooks.append(self._process_ends)
        app.include_router(router)

    def instrument(self, engine: Engine, serve: ServeHTTP) -> ServeHTTP:
        """``serve`` (the app's HTTP path) measured; labels the compiled ``engine``'s
        pipelines with their route templates. Run once per compile."""
        from joey.ratelimit import RateLimit

        pending = [dep for route in engine.routes for dep in route.dependencies]
        while pending:  # every rate limit a route declares, however deep
            dep = pending.pop()
            if isinstance(dep.declared, RateLimit):
                dep.declared.report_to(self.rate_limits)
            pending.extend(dep.dependencies)
        return self.http.instrument(engine, serve, self.path)

    def _process_ends(self) -> None:
        # The live gauges (requests in flight, subscribers) of a process that is gone must
        # not be added up any more.
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        mode = f"multiprocess in {self.multiprocess_dir}" if self.multiprocess_dir else (
            "one process")
        return f"<Metrics path={self.path!r} {mode}>"
