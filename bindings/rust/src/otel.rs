//! OpenTelemetry for the worker (feature `otel`): each attempt a worker
//! runs is a span `"{task} process"` (kind CONSUMER) of the global tracer
//! provider, with the attributes `messaging.system` (`"honker"`),
//! `messaging.destination.name` (the queue), `messaging.message.id` (the job
//! id), `honker.task` and `honker.attempt`, its status ERROR with the error
//! when the attempt fails; and, on the global meter provider, the counters
//! `honker.jobs.completed` and `honker.jobs.failed` and the histogram
//! `honker.job.duration` (seconds) by queue and task. The handler runs with
//! the span current, so its own spans are children. Install the providers
//! before the first job runs. Without the feature: nothing, at no cost.

/// One attempt of a job, traced (with the feature).
pub(crate) struct Attempt {
    #[cfg(feature = "otel")]
    inner: imp::Inner,
}

impl Attempt {
    /// Starts the span of attempt `attempt` of job `id` (task `task` of
    /// `queue`).
    #[allow(unused_variables)]
    pub(crate) fn start(queue: &str, task: &str, id: i64, attempt: u32) -> Attempt {
        Attempt {
            #[cfg(feature = "otel")]
            inner: imp::Inner::start(queue, task, id, attempt),
        }
    }

    /// `f`, to run (on any thread) with the span current.
    pub(crate) fn within<T>(&self, f: impl FnOnce() -> T + Send) -> impl FnOnce() -> T + Send {
        #[cfg(feature = "otel")]
        {
            let cx = self.inner.cx.clone();
            move || {
                let _current = cx.attach();
                f()
            }
        }
        #[cfg(not(feature = "otel"))]
        f
    }

    /// `fut`, to run with the span current.
    #[cfg(feature = "tokio")]
    pub(crate) fn bind<F: std::future::Future>(
        &self,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        #[cfg(feature = "otel")]
        {
            opentelemetry::trace::FutureExt::with_context(fut, self.inner.cx.clone())
        }
        #[cfg(not(feature = "otel"))]
        fut
    }

    /// Ends the span with how the attempt ended, and records it.
    #[allow(unused_variables)]
    pub(crate) fn finish<T>(self, result: &std::result::Result<T, String>) {
        #[cfg(feature = "otel")]
        self.inner.finish(result.as_ref().err());
    }
}

#[cfg(feature = "otel")]
mod imp {
    use opentelemetry::metrics::{Counter, Histogram};
    use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
    use opentelemetry::{global, Context, KeyValue};
    use std::sync::OnceLock;
    use std::time::Instant;

    struct Instruments {
        completed: Counter<u64>,
        failed: Counter<u64>,
        duration: Histogram<f64>,
    }

    fn instruments() -> &'static Instruments {
        static I: OnceLock<Instruments> = OnceLock::new();
        I.get_or_init(|| {
            let meter = global::meter("honker");
            Instruments {
                completed: meter
                    .u64_counter("honker.jobs.completed")
                    .with_unit("{job}")
                    .with_description("Jobs whose handler returned.")
                    .build(),
                failed: meter
                    .u64_counter("honker.jobs.failed")
                    .with_unit("{job}")
                    .with_description("Attempts whose handler failed or timed out.")
                    .build(),
                duration: meter
                    .f64_histogram("honker.job.duration")
                    .with_unit("s")
                    .with_description("How long each attempt's handler ran.")
                    .build(),
            }
        })
    }

    pub(super) struct Inner {
        pub(super) cx: Context,
        attrs: [KeyValue; 2],
        start: Instant,
    }

    impl Inner {
        pub(super) fn start(queue: &str, task: &str, id: i64, attempt: u32) -> Inner {
            let tracer = global::tracer("honker");
            let attrs = [
                KeyValue::new("messaging.destination.name", queue.to_string()),
                KeyValue::new("honker.task", task.to_string()),
            ];
            let mut span_attrs = attrs.to_vec();
            span_attrs.extend([
                KeyValue::new("messaging.system", "honker"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.message.id", id.to_string()),
                KeyValue::new("honker.attempt", i64::from(attempt)),
            ]);
            let span = tracer
                .span_builder(format!("{task} process"))
                .with_kind(SpanKind::Consumer)
                .with_attributes(span_attrs)
                .start(&tracer);
            Inner {
                cx: Context::current_with_span(span),
                attrs,
                start: Instant::now(),
            }
        }

        pub(super) fn finish(self, error: Option<&String>) {
            let i = instruments();
            i.duration
                .record(self.start.elapsed().as_secs_f64(), &self.attrs);
            let span = self.cx.span();
            match error {
                None => i.completed.add(1, &self.attrs),
                Some(e) => {
                    i.failed.add(1, &self.attrs);
                    span.set_status(Status::error(e.lines().next().unwrap_or("").to_string()));
                    span.add_event(
                        "exception",
                        vec![KeyValue::new("exception.message", e.clone())],
                    );
                }
            }
            span.end();
        }
    }
}
