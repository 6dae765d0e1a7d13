"""OpenTelemetry for the worker, through the standard ``opentelemetry`` API
when it is installed (an optional dependency: ``pip install honker[otel]``,
then configure an SDK as usual); nothing at all when it is not.

Each job a worker runs is a span ``"{task} process"`` (kind CONSUMER) with
the attributes ``messaging.system`` (``"honker"``),
``messaging.destination.name`` (the queue), ``messaging.message.id`` (the job
id), ``honker.task`` and ``honker.attempt``; a failed attempt records its
error and sets the span's status to ERROR. Metrics: the counters
``honker.jobs.completed`` and ``honker.jobs.failed`` and the histogram
``honker.job.duration`` (seconds), each with the attributes
``messaging.destination.name`` and ``honker.task``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the optional dependency is not installed
    _trace = None  # type: ignore[assignment]
    _metrics = None  # type: ignore[assignment]


class _Recorder:
    """What a job's handler reports to its span: how the attempt ended."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: str | None = None

    def failed(self, error: str) -> None:
        self.error = error


class _Telemetry:
    def __init__(self) -> None:
        from honker import _honker

        assert _trace is not None and _metrics is not None
        self.tracer = _trace.get_tracer("honker", _honker.VERSION)
        meter = _metrics.get_meter("honker", _honker.VERSION)
        self.completed = meter.create_counter(
            "honker.jobs.completed", unit="{job}", description="Jobs whose handler returned."
        )
        self.failed = meter.create_counter(
            "honker.jobs.failed", unit="{job}", description="Attempts whose handler raised or timed out."
        )
        self.duration = meter.create_histogram(
            "honker.job.duration", unit="s", description="How long each attempt's handler ran."
        )


_telemetry: _Telemetry | None = None


def enabled() -> bool:
    return _trace is not None


@contextmanager
def job(queue: str, task: str, job_id: int, attempt: int) -> Iterator[_Recorder]:
    """A span (and metrics) around one attempt of a job; a no-op without
    the OpenTelemetry API."""
    global _telemetry
    rec = _Recorder()
    if _trace is None:
        yield rec
        return
    if _telemetry is None:
        _telemetry = _Telemetry()
    t = _telemetry
    attrs: dict[str, Any] = {"messaging.destination.name": queue, "honker.task": task}
    span_attrs = {
        **attrs,
        "messaging.system": "honker",
        "messaging.operation.type": "process",
        "messaging.message.id": str(job_id),
        "honker.attempt": attempt,
    }
    start = time.perf_counter()
    with t.tracer.start_as_current_span(
        f"{task} process", kind=_trace.SpanKind.CONSUMER, attributes=span_attrs
    ) as span:
        yield rec
        if rec.error is not None:
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, rec.error.split("\n", 1)[0]))
            span.add_event("exception", {"exception.message": rec.error})
    t.duration.record(time.perf_counter() - start, attrs)
    (t.failed if rec.error is not None else t.completed).add(1, attrs)
