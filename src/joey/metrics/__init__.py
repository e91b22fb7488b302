"""Prometheus metrics: request rates, errors and latencies per route, and what the task queue,
the channels, the rate limits and the session store do; one scrape for every worker process.

``App(metrics=Metrics())`` measures every HTTP request and serves the Prometheus text format
(OpenMetrics when the scraper asks for it) at ``/metrics``. Labels are the route *template*
(``/items/{id}``, never the raw path: a storm of unknown paths makes no new series), the
method (unknown ones are ``_OTHER``) and the status code. With ``joey run --workers N`` every
worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (the command prepares the
directory) and a scrape, whichever worker answers it, adds up all of them: prometheus_client's
multiprocess mode. See docs/metrics.md for every metric and a Prometheus configuration.

Nothing of this runs for an app without ``metrics=``: the app wraps its HTTP path and its
routes' pipelines when it is compiled, only when it has metrics.

Example::

    from joey import App
    from joey.metrics import Metrics

    app = App(metrics=Metrics())

    @app.get("/items/{id:int}")
    async def item(id: int) -> dict[str, int]:
        return {"id": id}
"""

from joey.metrics.core import Metrics

__all__ = ["Metrics"]
