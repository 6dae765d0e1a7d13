//! Queue operations.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::task::*;
use crate::waits::*;
use honker_core::wake::wait;
use honker_core::{Lease, QueueOpts};
use pyo3::prelude::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[pymethods]
impl NativeDatabase {
    // -- queues --

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (queue, payload, *, tx = None, delay_s = None, run_at_s = None, priority = None, max_attempts = None, expires_s = None, key = None, default_max_attempts = None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        queue: String,
        payload: String,
        tx: Option<&NativeTx>,
        delay_s: Option<f64>,
        run_at_s: Option<f64>,
        priority: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        key: Option<String>,
        default_max_attempts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let opts = enqueue_opts(delay_s, run_at_s, priority, max_attempts, expires_s, key)?;
        let default_max_attempts = default_attempts(default_max_attempts)?;
        self.op(py, tx, |o| {
            o.enqueue(&queue, &payload, &opts, default_max_attempts)
        })
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (queue, payloads, *, tx = None, delay_s = None, run_at_s = None, priority = None, max_attempts = None, expires_s = None, default_max_attempts = None))]
    fn enqueue_many(
        &self,
        py: Python<'_>,
        queue: String,
        payloads: Vec<String>,
        tx: Option<&NativeTx>,
        delay_s: Option<f64>,
        run_at_s: Option<f64>,
        priority: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        default_max_attempts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i64>> {
        let opts = enqueue_opts(delay_s, run_at_s, priority, max_attempts, expires_s, None)?;
        let default_max_attempts = default_attempts(default_max_attempts)?;
        self.op(py, tx, |o| {
            o.enqueue_many(&queue, &payloads, &opts, default_max_attempts)
        })
    }

    #[pyo3(signature = (queue, worker, n, visibility_timeout_s = 300.0))]
    fn claim_batch(
        &self,
        py: Python<'_>,
        queue: String,
        worker: String,
        n: &Bound<'_, PyAny>,
        visibility_timeout_s: f64,
    ) -> PyResult<Vec<JobData>> {
        let n = count("n", int("n", n)?)?;
        let vt = secs("visibility_timeout_s", Some(visibility_timeout_s))?.unwrap_or_default();
        let jobs = self.op(py, None, |o| o.claim(&queue, &worker, n, vt))?;
        Ok(jobs.into_iter().map(JobData::from).collect())
    }

    /// Blocks until a job is claimed (woken by commits, run_at, lease ends);
    /// None on timeout or stop.
    #[pyo3(signature = (queue, worker, stop, visibility_timeout_s = 300.0, max_attempts = None, timeout_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn claim_next(
        &self,
        py: Python<'_>,
        queue: String,
        worker: String,
        stop: &NativeStop,
        visibility_timeout_s: f64,
        max_attempts: Option<&Bound<'_, PyAny>>,
        timeout_s: Option<f64>,
    ) -> PyResult<Option<JobData>> {
        let opts = QueueOpts {
            visibility_timeout: secs("visibility_timeout_s", Some(visibility_timeout_s))?
                .unwrap_or_default(),
            max_attempts: default_attempts(max_attempts)?,
        };
        let timeout = secs("timeout_s", timeout_s)?;
        let me = caller(py)?;
        let stop = Interruptible::new(&stop.flag);
        let got =
            py.detach(|| wait::claim_next(&self.db, me, &queue, &worker, &opts, timeout, &stop));
        Ok(stop.finish(got)?.map(JobData::from))
    }

    fn stop_flag(&self) -> NativeStop {
        NativeStop {
            db: self.db.clone(),
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    #[pyo3(signature = (id, worker, attempt, tx = None))]
    fn ack(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        tx: Option<&NativeTx>,
    ) -> PyResult<bool> {
        self.op(py, tx, |o| o.ack(Lease::new(id, &worker, attempt)))
    }

    /// Acks each job whose lease, given as (id, worker, attempt), is current.
    #[pyo3(signature = (leases, tx = None))]
    fn ack_batch(
        &self,
        py: Python<'_>,
        leases: Vec<(i64, String, u32)>,
        tx: Option<&NativeTx>,
    ) -> PyResult<usize> {
        self.op(py, tx, |o| {
            let leases: Vec<Lease<'_>> = leases
                .iter()
                .map(|(id, worker, attempt)| Lease::new(*id, worker, *attempt))
                .collect();
            o.ack_batch(&leases)
        })
    }

    #[pyo3(signature = (id, worker, attempt, delay_s = None, error = String::new()))]
    fn retry(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        delay_s: Option<f64>,
        error: String,
    ) -> PyResult<bool> {
        let delay = secs("delay_s", delay_s)?;
        self.op(py, None, |o| {
            o.retry(Lease::new(id, &worker, attempt), delay, &error)
        })
    }

    fn release(&self, py: Python<'_>, id: i64, worker: String, attempt: u32) -> PyResult<bool> {
        self.op(py, None, |o| o.release(Lease::new(id, &worker, attempt)))
    }

    #[pyo3(signature = (id, worker, attempt, error = String::new()))]
    fn fail(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        error: String,
    ) -> PyResult<bool> {
        self.op(py, None, |o| {
            o.fail(Lease::new(id, &worker, attempt), &error)
        })
    }

    fn heartbeat(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        extend_s: f64,
    ) -> PyResult<bool> {
        let extend = secs("extend_s", Some(extend_s))?.unwrap_or_default();
        self.op(py, None, |o| {
            o.heartbeat(Lease::new(id, &worker, attempt), extend)
        })
    }

    fn cancel(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = int("id", id)?;
        self.op(py, None, |o| o.cancel(id))
    }

    /// Deletes `queue`'s ready jobs; returns how many.
    fn purge(&self, py: Python<'_>, queue: String) -> PyResult<usize> {
        self.op(py, None, |o| o.purge(&queue))
    }

    fn get_job(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Option<JobData>> {
        let id = int("id", id)?;
        Ok(self.op(py, None, |o| o.get_job(id))?.map(JobData::from))
    }

    fn dead_jobs(
        &self,
        py: Python<'_>,
        queue: String,
        limit: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<JobData>> {
        let limit = count("limit", int("limit", limit)?)?;
        Ok(self
            .op(py, None, |o| o.dead_jobs(&queue, limit))?
            .into_iter()
            .map(JobData::from)
            .collect())
    }

    fn requeue_dead(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = int("id", id)?;
        self.op(py, None, |o| o.requeue_dead(id))
    }

    /// Requeues `queue`'s dead jobs (dead for `reason`, if given); how many.
    #[pyo3(signature = (queue, reason=None))]
    fn requeue_dead_all(
        &self,
        py: Python<'_>,
        queue: String,
        reason: Option<String>,
    ) -> PyResult<usize> {
        self.op(py, None, |o| o.requeue_dead_all(&queue, reason.as_deref()))
    }

    /// Removes each live job of `ids`; how many.
    fn cancel_many(&self, py: Python<'_>, ids: Vec<Bound<'_, PyAny>>) -> PyResult<usize> {
        let ids = ids
            .iter()
            .map(|id| int("ids", id))
            .collect::<PyResult<Vec<i64>>>()?;
        self.op(py, None, |o| o.cancel_many(&ids))
    }

    /// Dead-letters `queue`'s jobs past their start deadline; returns how many.
    fn sweep_expired(&self, py: Python<'_>, queue: String) -> PyResult<usize> {
        self.op(py, None, |o| o.sweep_expired(Some(&queue)))
    }

    /// `queue`'s job counts as (ready, scheduled, processing, dead).
    fn queue_stats(&self, py: Python<'_>, queue: String) -> PyResult<(u64, u64, u64, u64, u64)> {
        let s = self.op(py, None, |o| o.queue_stats(&queue))?;
        Ok((s.ready, s.scheduled, s.processing, s.dead, s.completed))
    }

    /// The earliest scheduled `run_at` or lease end in `queue`, ms since the
    /// epoch; None if nothing is pending.
    fn next_deadline_ms(&self, py: Python<'_>, queue: String) -> PyResult<Option<i64>> {
        self.op(py, None, |o| o.next_deadline(&queue))
    }

    /// Pauses `queue` in every process; whether it was running.
    fn pause(&self, py: Python<'_>, queue: String) -> PyResult<bool> {
        self.op(py, None, |o| o.pause(&queue))
    }

    /// Resumes `queue`; whether it was paused.
    fn resume(&self, py: Python<'_>, queue: String) -> PyResult<bool> {
        self.op(py, None, |o| o.resume(&queue))
    }

    /// Limits `queue`'s jobs in flight (None: no limit).
    fn set_max_in_flight(
        &self,
        py: Python<'_>,
        queue: String,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let max = match max {
            None => None,
            Some(v) => Some(
                honker_core::validate::attempts("max_in_flight", int("max_in_flight", v)?)
                    .map_err(to_py)?,
            ),
        };
        self.op(py, None, |o| o.set_max_in_flight(&queue, max))
    }

    /// Every queue the file knows, as (name, (ready, scheduled, processing,
    /// dead, completed), controls as `queue_controls` gives them).
    #[allow(clippy::type_complexity)]
    fn queues(
        &self,
        py: Python<'_>,
    ) -> PyResult<Vec<(String, (u64, u64, u64, u64, u64), ControlsTuple)>> {
        Ok(self
            .op(py, None, |o| o.queues())?
            .into_iter()
            .map(|q| {
                let s = q.stats;
                (
                    q.name,
                    (s.ready, s.scheduled, s.processing, s.dead, s.completed),
                    controls_tuple(q.controls),
                )
            })
            .collect())
    }

    /// Every stream the file knows, as (name, last_offset, [(consumer,
    /// offset, lag)]).
    #[allow(clippy::type_complexity)]
    fn streams(&self, py: Python<'_>) -> PyResult<Vec<(String, i64, Vec<(String, i64, u64)>)>> {
        Ok(self
            .op(py, None, |o| o.streams())?
            .into_iter()
            .map(|s| {
                let consumers = s
                    .consumers
                    .into_iter()
                    .map(|c| (c.name, c.offset, c.lag))
                    .collect();
                (s.name, s.last_offset, consumers)
            })
            .collect())
    }

    /// The jobs a filter names, newest first.
    #[pyo3(signature = (queue, state, task, key, created_from_ms, created_to_ms, before_id, limit))]
    #[allow(clippy::too_many_arguments)]
    fn list_jobs(
        &self,
        py: Python<'_>,
        queue: Option<String>,
        state: Option<String>,
        task: Option<String>,
        key: Option<String>,
        created_from_ms: Option<i64>,
        created_to_ms: Option<i64>,
        before_id: Option<i64>,
        limit: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<JobData>> {
        let filter = honker_core::JobFilter {
            queue,
            state: state
                .as_deref()
                .map(honker_core::JobState::from_name)
                .transpose()
                .map_err(to_py)?,
            task,
            key,
            created_from_ms,
            created_to_ms,
            before_id,
            limit: count("limit", int("limit", limit)?)?,
        };
        Ok(self
            .op(py, None, |o| o.list_jobs(&filter))?
            .into_iter()
            .map(JobData::from)
            .collect())
    }

    /// Limits `queue`'s claims per window (limit None: no limit).
    #[pyo3(signature = (queue, limit, per_s))]
    fn set_rate_limit(
        &self,
        py: Python<'_>,
        queue: String,
        limit: Option<&Bound<'_, PyAny>>,
        per_s: Option<f64>,
    ) -> PyResult<()> {
        let limit = limit.map(|v| int("limit", v)).transpose()?;
        let rate = honker_core::validate::queue_rate(limit, per_s).map_err(to_py)?;
        self.op(py, None, |o| o.set_rate_limit(&queue, rate))
    }

    /// `queue`'s controls as (paused, max_in_flight, (limit, per_s) or
    /// None, (completed, dead), events), each retention (max_age_s,
    /// max_count) or None.
    fn queue_controls(&self, py: Python<'_>, queue: String) -> PyResult<ControlsTuple> {
        Ok(controls_tuple(
            self.op(py, None, |o| o.queue_controls(&queue))?,
        ))
    }

    /// Stores `queue`'s retention: each of `completed` and `dead` None or
    /// (max_age_s, max_count).
    #[pyo3(signature = (queue, completed, dead))]
    fn set_queue_retention(
        &self,
        py: Python<'_>,
        queue: String,
        completed: Option<(Option<f64>, Option<Bound<'_, PyAny>>)>,
        dead: Option<(Option<f64>, Option<Bound<'_, PyAny>>)>,
    ) -> PyResult<()> {
        let keep = |r: Option<(Option<f64>, Option<Bound<'_, PyAny>>)>| {
            r.map(|(age, count)| {
                let count = opt_int("max_count", count.as_ref())?;
                honker_core::validate::retention(age, count).map_err(to_py)
            })
            .transpose()
        };
        let r = honker_core::QueueRetention {
            completed: keep(completed)?,
            dead: keep(dead)?,
        };
        self.op(py, None, |o| o.set_queue_retention(&queue, r))
    }

    /// Turns `queue`'s lifecycle events on or off.
    fn set_events(&self, py: Python<'_>, queue: String, on: bool) -> PyResult<()> {
        self.op(py, None, |o| o.set_events(&queue, on))
    }

    /// Applies `queue`'s retention now; how many jobs were removed.
    fn prune_queue(&self, py: Python<'_>, queue: String) -> PyResult<usize> {
        self.op(py, None, |o| o.prune_queue(&queue))
    }
}

/// A retention as Python sees it: (max_age_s, max_count).
type RetentionTuple = (Option<f64>, Option<u64>);

/// A queue's controls as Python sees them (see `queue_controls`).
type ControlsTuple = (
    bool,
    Option<u32>,
    Option<(u32, f64)>,
    (Option<RetentionTuple>, Option<RetentionTuple>),
    bool,
);

fn controls_tuple(c: honker_core::QueueControls) -> ControlsTuple {
    let keep = |r: Option<honker_core::Retention>| {
        r.map(|r| (r.max_age.map(|d| d.as_secs_f64()), r.max_count))
    };
    (
        c.paused,
        c.max_in_flight,
        c.rate_limit.map(|r| (r.limit, r.per.as_secs_f64())),
        (keep(c.retention.completed), keep(c.retention.dead)),
        c.events,
    )
}
