"""An app with metrics, for tests/integration/test_metrics_prometheus.py: ``/items/{id}``
answers with the pid of the worker that served it."""

from __future__ import annotations

import os

from joey import App
from joey.metrics import Metrics

app = App(metrics=Metrics())


@app.get("/items/{id:int}")
async def item(id: int) -> dict[str, int]:
    return {"id": id, "pid": os.getpid()}
