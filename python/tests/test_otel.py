"""The worker's OpenTelemetry spans and metrics (the API installed and an SDK
configured with in-memory exporters), and nothing at all without the API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import honker

sdk = pytest.importorskip("opentelemetry.sdk")


def test_a_worker_traces_and_counts_its_jobs(tmp_path: Path) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    db = honker.open(str(tmp_path / "app.db"))
    q = db.queue("mail")

    @q.task
    def send(to: str) -> str:
        if to == "nobody":
            raise ValueError("no such address")
        return to

    ok = send.enqueue("ada")
    bad = send.options(max_attempts=1).enqueue("nobody")
    assert db.worker(["mail"]).drain() == 2

    done = {s.attributes["messaging.message.id"]: s for s in spans.get_finished_spans()}
    assert set(done) == {str(ok.id), str(bad.id)}
    good = done[str(ok.id)]
    assert good.name == "send process" and good.kind == trace.SpanKind.CONSUMER
    assert good.attributes["messaging.system"] == "honker"
    assert good.attributes["messaging.destination.name"] == "mail"
    assert (good.attributes["honker.task"], good.attributes["honker.attempt"]) == ("send", 1)
    assert good.status.is_ok
    failed = done[str(bad.id)]
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert "no such address" in (failed.status.description or "")

    data = reader.get_metrics_data()
    assert data is not None
    points = {m.name: m.data.data_points for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert [p.value for p in points["honker.jobs.completed"]] == [1]
    assert [p.value for p in points["honker.jobs.failed"]] == [1]
    assert [p.count for p in points["honker.job.duration"]] == [2]
    assert dict(points["honker.jobs.completed"][0].attributes) == {
        "messaging.destination.name": "mail",
        "honker.task": "send",
    }


def test_without_the_api_a_worker_runs_and_emits_nothing(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import honker
        from honker import _otel
        assert not _otel.enabled()
        db = honker.open({str(tmp_path / "app.db")!r})
        q = db.queue("q")

        @q.task
        def double(n):
            return 2 * n

        h = double.enqueue(21)
        assert db.worker().drain() == 1
        assert h.result(timeout=10) == 42
        assert "opentelemetry" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
