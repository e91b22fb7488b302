"""JSON log lines for the standard :mod:`logging` module: one object per line, with the request
id, the trace and span ids and the task run of the code that logged it.

Joey logs through :mod:`logging` (``joey`` for errors, ``joey.access`` for the access log of
:class:`~joey.middleware.accesslog.AccessLogMiddleware`, ``joey.tasks`` for task runs); this
module adds no logging stack of its own, only a formatter to put on any handler:

Example::

    import logging

    from joey.observability.logs import JSONFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)

A line looks like this (one line; wrapped here):

```text
{"time": "2026-05-01T12:00:00.123Z", "level": "INFO", "logger": "joey.access",
 "message": "127.0.0.1:52341 \\"GET /items/3 HTTP/1.1\\" 200 12B 0.4ms id=4bf9...",
 "request_id": "4bf92f35...", "trace_id": "0af7651916cd43dd8448eb211c80319c",
 "span_id": "b7ad6b7169203331", "method": "GET", "path": "/items/3", "status_code": 200, ...}
```
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["JSONFormatter"]

# What every LogRecord has: the rest of its attributes came from ``extra=`` and go in the line.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


def _encode_unknown(value: Any) -> str:
    return repr(value)


class JSONFormatter(logging.Formatter):
    """Format each record as one JSON object.

    Keys: ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``; then,
    when known, ``request_id`` (:class:`~joey.middleware.requestid.RequestIDMiddleware`),
    ``trace_id`` and ``span_id`` (the current OpenTelemetry span, when the app traces: see
    :mod:`joey.observability.tracing`), ``task_id``, ``task_name`` and ``task_attempt`` (in
    a task's run: :func:`joey.tasks.current_task`), ``exception`` (the formatted traceback)
    and ``error_type``; then every ``extra=`` field of the record (the access log's
    ``method``, ``path``, ``status_code``, ``duration_ms``...). A value JSON cannot hold is
    written as its ``repr``.

    ``static``: fields added to every line (``{"service": "shop"}``).
    """

    def __init__(self, *, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = dict(static or {})
        self._encode = msgspec.json.Encoder(enc_hook=_encode_unknown).encode
        try:
            from opentelemetry import trace
        except ImportError:  # no `otel` extra: no trace ids to add
            self._current_span: Any = None
        else:
            self._current_span = trace.get_current_span
        from joey.middleware.requestid import get_request_id
        from joey.tasks.attempt import current_task

        self._request_id = get_request_id
        self._task = current_task

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        request_id = getattr(record, "request_id", None) or self._request_id()
        if request_id is not None:
            line["request_id"] = request_id
        if self._current_span is not None:
            context = self._current_span().get_span_context()
            if context.is_valid:
                line["trace_id"] = format(context.trace_id, "032x")
                line["span_id"] = format(context.span_id, "016x")
        run = self._task()
        if run is not None:
            line["task_id"] = run.id
            line["task_name"] = run.name
            line["task_attempt"] = run.attempt
        if record.exc_info and record.exc_info[1] is not None:
            line["error_type"] = type(record.exc_info[1]).__name__
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        return self._encode(line).decode()
