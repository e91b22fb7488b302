"""Observability: what an app tells the people who run it.

* :mod:`joey.observability.tracing`: OpenTelemetry traces (``App(tracing=Tracing())``), carried
  from a request into the tasks it enqueues and the channel messages it publishes;
* :mod:`joey.observability.logs`: JSON log lines for the standard :mod:`logging` module, with
  the request id, the trace and span ids, and the task run of each line.

See docs/observability.md.
"""

__all__: list[str] = []
