//! Schedules and the scheduler loop.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::task::*;
use crate::waits::*;
use honker_core::model::ScheduleSpec;
use honker_core::wake::wait;
use pyo3::prelude::*;

#[pymethods]
impl NativeDatabase {
    // -- schedules --

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, queue, schedule, payload, priority = None, expires_s = None, tz = None))]
    fn schedule_add(
        &self,
        py: Python<'_>,
        name: String,
        queue: String,
        schedule: String,
        payload: String,
        priority: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        tz: Option<String>,
    ) -> PyResult<()> {
        let priority = opt_int("priority", priority)?.unwrap_or(0);
        let expires = secs("expires_s", expires_s)?;
        self.op(py, None, |o| {
            let spec = ScheduleSpec {
                name: &name,
                queue: &queue,
                cron: &schedule,
                tz: tz.as_deref(),
                payload: &payload,
                priority,
                expires,
            };
            o.schedule_add(&spec)
        })
    }

    fn schedule_remove(&self, py: Python<'_>, name: String) -> PyResult<bool> {
        self.op(py, None, |o| o.schedule_remove(&name))
    }

    fn schedule_pause(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.op(py, None, |o| o.schedule_pause(&name))
    }

    fn schedule_resume(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.op(py, None, |o| o.schedule_resume(&name))
    }

    /// Every schedule as (name, queue, cron, payload, priority, paused,
    /// next_fire_at_ms, last_error).
    fn schedule_list(&self, py: Python<'_>) -> PyResult<Vec<ScheduleRow>> {
        let list = self.op(py, None, |o| o.schedule_list())?;
        Ok(list
            .into_iter()
            .map(|s| {
                (
                    s.name,
                    s.queue,
                    s.cron,
                    s.payload,
                    s.priority,
                    s.paused,
                    s.next_fire_at_ms,
                    s.last_error,
                )
            })
            .collect())
    }

    /// Fires what is due; returns (name, job_id, fire_at_ms) per fire.
    fn schedule_tick(&self, py: Python<'_>) -> PyResult<Vec<(String, i64, i64)>> {
        let fired = self.op(py, None, |o| o.schedule_tick())?.0;
        Ok(fired
            .into_iter()
            .map(|f| (f.name, f.job_id, f.fire_at_ms))
            .collect())
    }

    /// The next fire of any unpaused schedule, ms since the epoch.
    fn schedule_soonest(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        self.op(py, None, |o| o.schedule_soonest())
    }

    /// Runs the scheduler until `stop` is set (leader election, fenced fires).
    #[pyo3(signature = (owner, stop, lock_ttl_s = 10.0))]
    fn run_scheduler(
        &self,
        py: Python<'_>,
        owner: String,
        stop: &NativeStop,
        lock_ttl_s: f64,
    ) -> PyResult<()> {
        let opts = wait::SchedulerOpts {
            lock_ttl: secs("lock_ttl_s", Some(lock_ttl_s))?.unwrap_or_default(),
            ..wait::SchedulerOpts::default()
        };
        let stop = Interruptible::new(&stop.flag);
        // Each problem goes to the `honker.scheduler` logger.
        let mut report = |p: &wait::SchedulerProblem<'_>| {
            let msg = p.to_string();
            Python::attach(|py| {
                let logged = py
                    .import("logging")
                    .and_then(|l| l.call_method1("getLogger", ("honker.scheduler",)))
                    .and_then(|l| l.call_method1("warning", (msg,)));
                if let Err(e) = logged {
                    e.write_unraisable(py, None);
                }
            })
        };
        // It returns once stopped: a signal's exception, if any, is raised.
        let me = caller(py)?;
        let got = py.detach(|| {
            wait::run_scheduler(&self.db, me, &stop, &owner, &opts, &mut report).map(|()| None)
        });
        stop.finish::<()>(got).map(|_| ())
    }

    /// Panics inside an operation, to show the guard at the boundary: the
    /// caller gets `InternalError`, never a `PanicException`. For tests.
    fn _panic_for_test(&self, py: Python<'_>) -> PyResult<()> {
        self.op(py, None, |_| panic!("a deliberate panic, for a test"))
    }

    fn listen(&self, py: Python<'_>, channel: String) -> PyResult<NativeListener> {
        let queue = py
            .detach(|| honker_core::wake::listen(&self.db, &channel))
            .map_err(to_py)?;
        Ok(NativeListener {
            db: self.db.clone(),
            queue,
        })
    }
}
