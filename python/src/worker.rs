//! The worker runtime (`honker_core::worker`) for Python: the core claims,
//! renews, times out, retries and shuts down; `honker/_worker.py` runs the
//! functions. Every call into the core releases the GIL.

use crate::database::NativeDatabase;
use crate::error::*;
use crate::task::caller;
use crate::waits::*;
use honker_core::wake::wait::{self, JobOutcome};
use honker_core::worker::{
    Activation, Cancel, Outcome, Polled, RetryPolicy, TaskOptions, UnknownTasks, WorkerCore,
    WorkerOptions,
};
use honker_core::Db;
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A job to run: (id, task, payload, attempt, cancel signal).
type Act = (i64, String, String, u32, NativeCancel);

fn act(a: Activation) -> Act {
    (
        a.job.id,
        a.task,
        a.job.payload,
        a.job.attempts,
        NativeCancel { inner: a.cancel },
    )
}

/// The signal that tells a running handler to stop.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeCancel {
    inner: Arc<Cancel>,
}

#[pymethods]
impl NativeCancel {
    /// `timeout`, `lease_lost`, `shutdown`, or None while running.
    fn reason(&self) -> Option<&'static str> {
        self.inner.reason().map(|r| r.as_str())
    }

    /// Waits up to `timeout_s` (GIL released) for the signal.
    fn wait(&self, py: Python<'_>, timeout_s: f64) -> PyResult<Option<&'static str>> {
        let t = secs("timeout_s", Some(timeout_s))?.unwrap_or_default();
        Ok(py.detach(|| self.inner.wait(t)).map(|r| r.as_str()))
    }
}

/// A retry policy from Python: ("exponential", base_s, max_s, jitter) or
/// ("fixed", delay_s, 0, false). A callable policy stays in Python, which
/// passes its delay with the failure.
type RetrySpec = (String, f64, f64, bool);

fn retry(spec: Option<RetrySpec>) -> PyResult<Option<RetryPolicy>> {
    let Some((kind, a, b, jitter)) = spec else {
        return Ok(None);
    };
    let d = |what, s| Ok::<_, PyErr>(secs(what, Some(s))?.unwrap_or_default());
    match kind.as_str() {
        "exponential" => Ok(Some(RetryPolicy::Exponential {
            base: d("base_s", a)?,
            max: d("max_s", b)?,
            jitter,
        })),
        "fixed" => Ok(Some(RetryPolicy::Fixed(d("delay_s", a)?))),
        other => Err(to_py(honker_core::Error::invalid(
            "retry",
            format!("unknown policy kind {other:?}"),
        ))),
    }
}

/// A task's options: (name, timeout_s, retry, store_result, result_ttl_s).
type TaskSpec = (String, Option<f64>, Option<RetrySpec>, bool, f64);

/// The worker runtime of one `honker.Worker`.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeWorker {
    core: WorkerCore,
    db: Db,
}

#[pymethods]
impl NativeDatabase {
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (queues, tasks, *, concurrency, worker_id = None, lease_s = 30.0, grace_s = 10.0, retry_policy = None, leave_unknown_s = None, cancel_events = false, batch = 32))]
    fn worker(
        &self,
        py: Python<'_>,
        queues: Vec<String>,
        tasks: Vec<TaskSpec>,
        concurrency: i64,
        worker_id: Option<String>,
        lease_s: f64,
        grace_s: f64,
        retry_policy: Option<RetrySpec>,
        leave_unknown_s: Option<f64>,
        cancel_events: bool,
        batch: i64,
    ) -> PyResult<NativeWorker> {
        let mut specs = Vec::with_capacity(tasks.len());
        for (name, timeout_s, r, store_result, ttl_s) in tasks {
            let timeout = match timeout_s {
                Some(t) if t <= 0.0 => {
                    return Err(to_py(honker_core::Error::invalid(
                        "timeout_s",
                        format!("task {name:?}: must be positive, not {t}"),
                    )))
                }
                t => secs("timeout_s", t)?,
            };
            let opts = TaskOptions {
                timeout,
                retry: retry(r)?,
                store_result,
                result_ttl: Duration::from_millis(ttl_ms("result_ttl_s", ttl_s)? as u64),
            };
            specs.push((name, opts));
        }
        let opts = WorkerOptions {
            queues,
            concurrency: count("concurrency", concurrency)?,
            worker_id,
            lease: secs("lease_s", Some(lease_s))?.unwrap_or_default(),
            grace: secs("grace_s", Some(grace_s))?.unwrap_or_default(),
            retry: retry(retry_policy)?.unwrap_or_default(),
            unknown_tasks: match leave_unknown_s {
                None => UnknownTasks::DeadLetter,
                Some(s) => {
                    UnknownTasks::Leave(secs("leave_unknown_s", Some(s))?.unwrap_or_default())
                }
            },
            cancel_events,
            batch: count("batch", batch)?,
        };
        let db = self.db.clone();
        let core = py
            .detach(|| honker_core::guard(|| WorkerCore::new(&db, opts, specs)))
            .map_err(to_py)?;
        Ok(NativeWorker {
            core,
            db: self.db.clone(),
        })
    }

    /// Waits up to `timeout_s` for job `id` to end: (True, result JSON or
    /// None) once acked, (False, None) on timeout; `JobFailed` if it died.
    #[pyo3(signature = (id, stop, timeout_s = None))]
    fn wait_result(
        &self,
        py: Python<'_>,
        id: i64,
        stop: &NativeStop,
        timeout_s: Option<f64>,
    ) -> PyResult<(bool, Option<String>)> {
        let timeout = secs("timeout_s", timeout_s)?;
        let me = caller(py)?;
        let stop = Interruptible::new(&stop.flag);
        let db = self.db.clone();
        let got = py.detach(|| wait::wait_outcome(&db, me, id, timeout, &stop));
        match stop.finish(got)? {
            None => Ok((false, None)),
            Some(o @ JobOutcome::Dead(_)) => Err(to_py(o.into_result().unwrap_err())),
            Some(JobOutcome::Completed(r)) => Ok((true, r)),
        }
    }
}

#[pymethods]
impl NativeWorker {
    /// Waits for work: ("run", act), ("cancel", id, reason) or ("done",).
    /// Setting `stop` (or a Ctrl-C on the main thread) starts the shutdown.
    fn poll(&self, py: Python<'_>, stop: &NativeStop) -> PyResult<Py<PyAny>> {
        let s = Interruptible::new(&stop.flag);
        let got = py.detach(|| honker_core::guard(|| self.core.poll(&s)));
        // A signal handler's exception: the shutdown has started; raise it.
        let got = s.finish(got.map(Some))?;
        let out = match got.expect("poll returns a value or an error") {
            Polled::Run(a) => ("run", act(a)).into_pyobject(py)?.into_any().unbind(),
            Polled::Cancel { id, why } => ("cancel", id, why.as_str())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            Polled::Done => ("done",).into_pyobject(py)?.into_any().unbind(),
        };
        Ok(out)
    }

    /// Drain mode: a due job, or None.
    fn drain_next(&self, py: Python<'_>) -> PyResult<Option<Act>> {
        let got = py.detach(|| honker_core::guard(|| self.core.drain_next()));
        Ok(got.map_err(to_py)?.map(act))
    }

    /// Reports a handler's end: ok with its result JSON (or None), or an
    /// error message (with `retry_in_s` from a Python policy, `retry=False`
    /// for no more attempts); `released` gives the job back. Returns the
    /// next job to run, claimed in the same commit.
    #[pyo3(signature = (id, ok, value = None, *, retry_in_s = None, retry = true, released = false))]
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        py: Python<'_>,
        id: i64,
        ok: bool,
        value: Option<String>,
        retry_in_s: Option<f64>,
        retry: bool,
        released: bool,
    ) -> PyResult<Option<Act>> {
        let retry_in = secs("retry_in_s", retry_in_s)?;
        if ok && !released {
            // A job claimed ahead is handed out without I/O: no need to
            // let go of the GIL for that.
            let fast = honker_core::guard(|| Ok(self.core.complete_buffered(id, value.as_deref())));
            if let Some(a) = fast.map_err(to_py)? {
                return Ok(Some(act(a)));
            }
        }
        let got = py.detach(|| {
            honker_core::guard(|| {
                let outcome = Outcome::reported(released, ok, value.as_deref(), retry_in, retry);
                self.core.complete(id, outcome)
            })
        });
        Ok(got.map_err(to_py)?.map(act))
    }

    /// Stops claiming; the grace period starts.
    fn shutdown(&self) {
        self.core.shutdown();
        honker_core::wake::watcher(&self.db).interrupt();
    }

    fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    fn worker_id(&self) -> String {
        self.core.worker_id().to_string()
    }

    fn queues(&self) -> Vec<String> {
        self.core.queues().to_vec()
    }

    fn concurrency(&self) -> usize {
        self.core.concurrency()
    }

    fn is_stopping(&self) -> bool {
        self.core.is_stopping()
    }
}
