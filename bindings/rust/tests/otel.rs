//! The worker's OpenTelemetry spans and metrics (feature `otel`), through
//! the global providers, recorded by the SDK's in-memory exporters.
#![cfg(feature = "otel")]

mod common;

use common::TempDb;
use honker::{EnqueueOpts, QueueOpts, WorkerOptions};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{global, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

#[test]
fn a_worker_traces_and_counts_its_jobs() {
    let spans = InMemorySpanExporter::default();
    global::set_tracer_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build(),
    );
    let metrics = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    global::set_meter_provider(meters.clone());

    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("mail", QueueOpts::default());
    let mut w = db.worker(WorkerOptions {
        queues: vec!["mail".into()],
        ..WorkerOptions::default()
    });
    w.task("send", |call| {
        let to: String = call.payload()?;
        if to == "nobody" {
            return Err(honker::Error::invalid("to", "no such address"));
        }
        Ok(to)
    });
    let ok = q
        .enqueue_task("send", "ada", EnqueueOpts::default())
        .unwrap();
    let bad = q
        .enqueue_task(
            "send",
            "nobody",
            EnqueueOpts {
                max_attempts: Some(1),
                ..EnqueueOpts::default()
            },
        )
        .unwrap();
    assert_eq!(w.drain().unwrap(), 2);

    let finished = spans.get_finished_spans().unwrap();
    let by_id = |id: i64| {
        finished
            .iter()
            .find(|s| {
                s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "messaging.message.id"
                        && kv.value == Value::from(id.to_string())
                })
            })
            .unwrap_or_else(|| panic!("no span for job {id}: {finished:?}"))
    };
    let good = by_id(ok);
    assert_eq!(good.name, "send process");
    assert_eq!(good.span_kind, SpanKind::Consumer);
    let attr = |s: &opentelemetry_sdk::trace::SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attr(good, "messaging.system"), Some(Value::from("honker")));
    assert_eq!(
        attr(good, "messaging.destination.name"),
        Some(Value::from("mail"))
    );
    assert_eq!(attr(good, "honker.attempt"), Some(Value::from(1i64)));
    assert!(!matches!(good.status, Status::Error { .. }));
    match &by_id(bad).status {
        Status::Error { description } => assert!(description.contains("no such address")),
        other => panic!("expected an error status, got {other:?}"),
    }

    meters.force_flush().unwrap();
    let exported = metrics.get_finished_metrics().unwrap();
    let mut sums = std::collections::BTreeMap::new();
    let mut counts = std::collections::BTreeMap::new();
    for rm in &exported {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                match m.data() {
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        sums.insert(
                            m.name().to_string(),
                            s.data_points().map(|p| p.value()).sum::<u64>(),
                        );
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        counts.insert(
                            m.name().to_string(),
                            h.data_points().map(|p| p.count()).sum::<u64>(),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(sums.get("honker.jobs.completed"), Some(&1), "{sums:?}");
    assert_eq!(sums.get("honker.jobs.failed"), Some(&1), "{sums:?}");
    assert_eq!(counts.get("honker.job.duration"), Some(&2), "{counts:?}");
}
