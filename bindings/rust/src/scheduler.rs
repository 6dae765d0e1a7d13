use crate::{Database, Result};
use honker_core::model::{Fired, ScheduleInfo, ScheduleSpec};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use honker_core::wake::wait::{SchedulerOpts, SchedulerProblem};

/// A periodic task: every time `cron` fires, one job with `payload` is
/// enqueued on `queue`.
///
/// `cron` takes 5 fields, 6 with seconds first, `@hourly`/`@daily`/
/// `@weekly`/`@monthly`/`@yearly`, or `@every 1m30s`. It is evaluated in UTC
/// unless prefixed with a zone: `"CRON_TZ=Europe/Paris 0 3 * * *"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledTask {
    /// Unique name. Adding a task with the same name updates it.
    pub name: String,
    /// Queue the jobs go to.
    pub queue: String,
    /// When to fire.
    pub cron: String,
    /// Payload of each job.
    pub payload: serde_json::Value,
    /// Priority of each job (higher runs first).
    pub priority: i64,
    /// Each job expires if not started within this many seconds of its fire.
    pub expires_s: Option<u64>,
}

/// Registers schedules and fires them. Get one with [`Database::scheduler`].
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub(crate) db: Database,
}

impl Scheduler {
    pub(crate) fn new(db: Database) -> Scheduler {
        Scheduler { db }
    }

    /// Registers or updates a task. Re-adding an unchanged task (as every
    /// process does at start-up) keeps its next fire time.
    pub fn add(&self, task: ScheduledTask) -> Result<()> {
        let payload = honker_core::encode("payload", &task.payload)?;
        let spec = ScheduleSpec {
            name: &task.name,
            queue: &task.queue,
            cron: &task.cron,
            tz: None,
            payload: &payload,
            priority: task.priority,
            expires: task.expires_s.map(Duration::from_secs),
        };
        self.db.ops().schedule_add(&spec)
    }

    /// Removes a task; false if none had that name.
    pub fn remove(&self, name: &str) -> Result<bool> {
        self.db.ops().schedule_remove(name)
    }

    /// Every registered task, by name.
    pub fn list(&self) -> Result<Vec<ScheduleInfo>> {
        self.db.ops().schedule_list()
    }

    /// Stops a task from firing until [`Scheduler::resume`].
    pub fn pause(&self, name: &str) -> Result<()> {
        self.db.ops().schedule_pause(name)
    }

    /// Resumes a paused task from its next boundary after now.
    pub fn resume(&self, name: &str) -> Result<()> {
        self.db.ops().schedule_resume(name)
    }

    /// Fires every due task once (one catch-up fire after downtime) and
    /// returns what fired. `run` calls this as leader; call it yourself to
    /// drive schedules from your own loop.
    pub fn tick(&self) -> Result<Vec<Fired>> {
        Ok(self.db.ops().schedule_tick()?.0)
    }

    /// Runs the scheduler until `stop` is set (checked at least every
    /// 50 ms). Many processes can call it: only the holder of the leader
    /// lock fires, and a standby takes over within the lock TTL (10 s) when
    /// the leader dies. A task that cannot fire is skipped to its next
    /// boundary (the others fire; `ScheduleInfo::last_error` says why), and
    /// a failing step is retried; both are logged at `warn` level through
    /// the `log` crate. After 10 failures in a row (about 40 s) it returns
    /// the error.
    pub fn run(&self, stop: Arc<AtomicBool>, owner: &str) -> Result<()> {
        self.run_with(stop, owner, SchedulerOpts::default())
    }

    /// [`Scheduler::run`] with explicit [`SchedulerOpts`] (lock TTL, lock
    /// name, failures in a row before giving up).
    pub fn run_with(&self, stop: Arc<AtomicBool>, owner: &str, opts: SchedulerOpts) -> Result<()> {
        self.run_reporting(stop, owner, opts, |problem| log::warn!("{problem}"))
    }

    /// [`Scheduler::run_with`], handing each problem to `report` instead of
    /// the `log` crate.
    pub fn run_reporting(
        &self,
        stop: Arc<AtomicBool>,
        owner: &str,
        opts: SchedulerOpts,
        report: impl FnMut(&SchedulerProblem<'_>),
    ) -> Result<()> {
        self.run_until(&stop, owner, opts, report)
    }

    pub(crate) fn run_until(
        &self,
        stop: &impl honker_core::wake::stop::Stop,
        owner: &str,
        opts: SchedulerOpts,
        mut report: impl FnMut(&SchedulerProblem<'_>),
    ) -> Result<()> {
        honker_core::wake::wait::run_scheduler(
            &self.db.core,
            crate::caller(),
            stop,
            owner,
            &opts,
            &mut report,
        )
    }

    /// The next boundary of any unpaused task, ms since the epoch.
    pub fn soonest_ms(&self) -> Result<Option<i64>> {
        self.db.ops().schedule_soonest()
    }
}
