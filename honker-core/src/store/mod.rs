//! Storage: the seam between honker's operations and a storage engine.
//!
//! [`Store`] has one method per storage operation. Each runs atomically
//! (all of it or none) on the engine's current connection, inside the
//! caller's transaction when there is one, and takes the current time in
//! ms where it needs one. The handle ([`crate::handle::Db`]) decides
//! which connection and transaction, and the time; the waits
//! ([`crate::wake`]) are built on the handle. So a second engine fills
//! this trait (and the wake path's), and every binding works on it
//! unchanged. [`conformance`] holds the suite every implementation must
//! pass.
//!
//! SQLite ([`sqlite`]) is built in. Another engine (PostgreSQL, in the
//! `honker-postgres` crate) is an [`Engine`]: a connection the handle owns,
//! its transactions, and a [`Feed`] the wake path reads commits from; it is
//! registered with [`register`] and chosen by the URL given to
//! [`crate::open`]. What the operations rely on from SQLite, which another
//! engine must answer in its own way, is written down in
//! docs/ARCHITECTURE.md ("What the engine assumes of SQLite").

pub mod conformance;
pub mod sqlite;

use crate::error::Result;
use crate::model::{
    AckAndClaim, EnqueueOpts, Event, FireFailure, Fired, JobFilter, JobRecord, Lease, LockInfo,
    Notification, QueueControls, QueueRateLimit, QueueRetention, QueueStats, QueueSummary,
    Retention, Rows, ScheduleInfo, ScheduleSpec, SqlValue, StreamSummary,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A schedule tick's outcome: the fires made, and those that failed (their
/// schedules moved on to their next boundary).
pub type Tick = (Vec<Fired>, Vec<FireFailure>);

/// One method per storage operation. See the module documentation; each
/// method's meaning is that of the SQLite function it names.
pub trait Store {
    // -- queues --

    /// Adds a job; with an idempotency key a live job holds, returns its id.
    fn enqueue(
        &self,
        queue: &str,
        payload: &str,
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<i64>;
    /// Adds jobs with the same options, all or none; their ids in order.
    fn enqueue_many(
        &self,
        queue: &str,
        payloads: &[String],
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<Vec<i64>>;
    /// Claims up to `n` due jobs, best first, leased for `visibility_timeout`.
    fn claim(
        &self,
        queue: &str,
        worker: &str,
        n: usize,
        visibility_timeout: Duration,
        now: i64,
    ) -> Result<Vec<JobRecord>>;
    /// Completes a job if `lease` is current.
    fn ack(&self, lease: Lease<'_>, now: i64) -> Result<bool>;
    /// Completes each job whose lease is current; how many.
    fn ack_batch(&self, leases: &[Lease<'_>], now: i64) -> Result<usize>;
    /// In one transaction: acks each of `op.done` (saving its result) whose
    /// lease is current, then claims up to `op.n` jobs, whether or not the
    /// acks took; returns how many were acked and the jobs claimed. The
    /// worker's path: one commit per job (or per batch) instead of two.
    fn ack_and_claim(&self, op: &AckAndClaim<'_>, now: i64) -> Result<(usize, Vec<JobRecord>)>;
    /// Gives a job back for another attempt (or to the dead table).
    fn retry(
        &self,
        lease: Lease<'_>,
        delay: Option<Duration>,
        error: &str,
        now: i64,
    ) -> Result<bool>;
    /// Gives a claimed job back untouched, its attempt not counted.
    fn release(&self, lease: Lease<'_>, now: i64) -> Result<bool>;
    /// Gives a claimed job back like [`Store::release`] (its attempt not
    /// counted), due again only after `delay`: a worker that will not run
    /// it (a task it has no handler for) leaves it for another.
    fn defer(&self, lease: Lease<'_>, delay: Duration, now: i64) -> Result<bool>;
    /// Sends a job to the dead table.
    fn fail(&self, lease: Lease<'_>, error: &str, now: i64) -> Result<bool>;
    /// Extends a lease.
    fn heartbeat(&self, lease: Lease<'_>, extend: Duration, now: i64) -> Result<bool>;
    /// Removes a live job, whatever its state.
    fn cancel(&self, id: i64, now: i64) -> Result<bool>;
    /// Deletes every ready job of `queue` (due by `now`, not held); how many.
    fn purge(&self, queue: &str, now: i64) -> Result<usize>;
    /// A job: live, dead, or completed and kept.
    fn get_job(&self, id: i64) -> Result<Option<JobRecord>>;
    /// The newest dead jobs of `queue`.
    fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>>;
    /// Puts a dead job back, ready now, with a fresh attempt budget.
    fn requeue_dead(&self, id: i64, now: i64) -> Result<()>;
    /// Deletes each dead job of `ids` for good; how many there were.
    fn discard_dead(&self, ids: &[i64]) -> Result<usize>;
    /// Dead-letters jobs past their start deadline; how many.
    fn sweep_expired(&self, queue: Option<&str>, now: i64) -> Result<usize>;
    /// Is anything claimable in `queue` now? (A read.)
    fn has_due(&self, queue: &str, now: i64) -> Result<bool>;
    /// The next moment something in `queue` becomes claimable.
    fn next_deadline(&self, queue: &str) -> Result<Option<i64>>;
    /// `queue`'s job counts by state.
    fn queue_stats(&self, queue: &str) -> Result<QueueStats>;
    /// Puts back every dead job of `queue` (dead for `reason`, if given)
    /// whose key no live job holds; how many.
    fn requeue_dead_all(&self, queue: &str, reason: Option<&str>, now: i64) -> Result<usize>;
    /// Removes each live job of `ids`; how many.
    fn cancel_many(&self, ids: &[i64], now: i64) -> Result<usize>;
    /// Every queue with jobs (live or dead) or controls, by name.
    fn queues(&self) -> Result<Vec<QueueSummary>>;
    /// Every stream with events, saved offsets or retention, by name.
    fn streams(&self) -> Result<Vec<StreamSummary>>;
    /// Every lock held at `now`, by name.
    fn locks(&self, now: i64) -> Result<Vec<LockInfo>>;
    /// How many jobs the file has ever had (the largest job id).
    fn jobs_enqueued(&self) -> Result<i64>;
    /// The `run_at` of the ready job a claim of `queue` would take next.
    fn queue_head(&self, queue: &str) -> Result<Option<i64>>;
    /// The jobs `filter` names (live, dead and kept completed), newest first.
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>>;
    /// `queue`'s controls (the default if none were set).
    fn queue_controls(&self, queue: &str) -> Result<QueueControls>;
    /// Pauses or resumes `queue`: claims of it take nothing while paused.
    /// Whether it changed.
    fn set_paused(&self, queue: &str, paused: bool, now: i64) -> Result<bool>;
    /// Limits (or, `None`, stops limiting) how many of `queue`'s jobs are
    /// leased at once across every process; claims take at most the room
    /// left. At least 1.
    fn set_max_in_flight(&self, queue: &str, max: Option<u32>, now: i64) -> Result<()>;
    /// Limits (or, `None`, stops limiting) how many of `queue`'s jobs are
    /// claimed per fixed window, across every process.
    fn set_rate_limit(&self, queue: &str, rate: Option<QueueRateLimit>, now: i64) -> Result<()>;
    /// Stores what of `queue`'s finished and dead jobs is kept (both
    /// limits, replacing the old ones). Pruning past them is automatic.
    fn set_queue_retention(&self, queue: &str, retention: QueueRetention, now: i64) -> Result<()>;
    /// Applies `queue`'s retention now, exactly; jobs removed.
    fn prune_queue(&self, queue: &str, now: i64) -> Result<usize>;
    /// Turns `queue`'s lifecycle events on or off: each change of its jobs'
    /// states published to the events stream in the same transaction.
    fn set_events(&self, queue: &str, on: bool, now: i64) -> Result<()>;

    // -- streams --

    /// Appends an event; its offset.
    fn publish(&self, stream: &str, key: Option<&str>, payload: &str, now: i64) -> Result<i64>;
    /// Events after offset `after`, oldest first.
    fn read_since(&self, stream: &str, after: i64, limit: usize) -> Result<Vec<Event>>;
    /// The newest offset (0 if none).
    fn last_offset(&self, stream: &str) -> Result<i64>;
    /// Saves a consumer's offset, only forward.
    fn save_offset(&self, stream: &str, consumer: &str, offset: i64, now: i64) -> Result<bool>;
    /// A consumer's saved offset (0 if none).
    fn get_offset(&self, stream: &str, consumer: &str) -> Result<i64>;
    /// Stores a stream's retention.
    fn set_retention(&self, stream: &str, retention: Retention) -> Result<()>;
    /// A stream's stored retention.
    fn retention(&self, stream: &str) -> Result<Retention>;
    /// Applies a stream's retention now; events removed.
    fn prune_stream(&self, stream: &str, now: i64) -> Result<usize>;

    // -- notifications --

    /// Stores a notification; its id.
    fn notify(&self, channel: &str, payload: &str, now: i64) -> Result<i64>;
    /// The newest notification id (0 if none).
    fn latest_notification(&self) -> Result<i64>;
    /// Notifications after id `after` (on `channel`, or all), oldest first.
    fn notifications_after(
        &self,
        after: i64,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notification>>;
    /// Deletes notifications created before `before_ms`.
    fn prune_notifications(&self, before_ms: i64) -> Result<usize>;

    // -- locks, rate limits, results --

    /// Takes a lock if free; its fencing token.
    fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64, now: i64) -> Result<Option<i64>>;
    /// Extends a lock `token` still holds.
    fn renew_lock(&self, name: &str, token: i64, ttl_ms: i64, now: i64) -> Result<bool>;
    /// Releases a lock `token` still holds.
    fn release_lock(&self, name: &str, token: i64) -> Result<bool>;
    /// Who holds a lock now.
    fn lock_holder(&self, name: &str, now: i64) -> Result<Option<LockInfo>>;
    /// Counts one call against a fixed-window limit; allowed?
    fn try_rate_limit(&self, key: &str, limit: i64, per_ms: i64, now: i64) -> Result<bool>;
    /// Stores a job's result for `ttl_ms`.
    fn save_result(&self, job_id: i64, value: &str, ttl_ms: i64, now: i64) -> Result<()>;
    /// A job's unexpired result.
    fn get_result(&self, job_id: i64, now: i64) -> Result<Option<String>>;
    /// Removes expired results; how many.
    fn sweep_results(&self, now: i64) -> Result<usize>;

    // -- schedules --

    /// Registers or updates a schedule.
    fn schedule_add(&self, spec: &ScheduleSpec<'_>, now: i64) -> Result<()>;
    /// Removes a schedule.
    fn schedule_remove(&self, name: &str) -> Result<bool>;
    /// Every schedule, by name.
    fn schedule_list(&self) -> Result<Vec<ScheduleInfo>>;
    /// Stops a schedule firing.
    fn schedule_pause(&self, name: &str) -> Result<()>;
    /// Resumes a paused schedule from its next boundary.
    fn schedule_resume(&self, name: &str, now: i64) -> Result<()>;
    /// Fires what is due.
    fn schedule_tick(&self, now: i64) -> Result<Tick>;
    /// Fires what is due while `token` holds lock `lock_name`; `None` if not.
    fn schedule_tick_fenced(&self, lock_name: &str, token: i64, now: i64) -> Result<Option<Tick>>;
    /// The earliest next fire of an unpaused schedule.
    fn schedule_soonest(&self) -> Result<Option<i64>>;

    // -- the application's own SQL --

    /// Runs one statement; rows changed.
    fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<usize>;
    /// Runs a query; its rows.
    fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Rows>;
}

/// A storage engine other than the built-in SQLite: one connection a handle
/// owns ([`crate::Db`] serializes the calls on it and enforces the
/// transaction rule, as for SQLite), its transactions, and where the wake
/// path hears of commits.
pub trait Engine: Send {
    /// The operations on this connection: outside a transaction each is
    /// atomic by itself, inside one it is part of it.
    fn store(&self) -> &dyn Store;
    /// Opens a transaction.
    fn begin(&mut self) -> Result<()>;
    /// Commits the open transaction (rolled back if that fails).
    fn commit(&mut self) -> Result<()>;
    /// Rolls the open transaction back.
    fn rollback(&mut self) -> Result<()>;
    /// Did the calls since the last ask write anything? (The handle wakes
    /// this process's waiters after a write outside a transaction.)
    fn take_wrote(&mut self) -> bool;
    /// Closes the connection (an open transaction rolls back).
    fn close(&mut self) -> Result<()>;
    /// What the handle reports as its path: the database's name, with no
    /// password in it. Handles with the same name share a watcher.
    fn name(&self) -> &str;
    /// Where the wake path reads this database's commits and notifications.
    fn feed(&self) -> Arc<dyn Feed>;
    /// Why an operation that only SQLite has (the raw connection) is refused.
    fn unsupported(&self, what: &str) -> crate::Error;
    /// The clock the handle reads "now" from instead of the one it was
    /// opened with, if any (a server's clock, for the wake path's waits).
    fn clock(&self) -> Option<Arc<dyn crate::Clock>> {
        None
    }
}

/// The wake path's view of one database: a connection of its own to look
/// at, and a way to hear of commits made elsewhere (see
/// [`crate::wake::watcher`]).
pub trait Feed: Send + Sync {
    /// Opens the watcher's own connection.
    fn open(&self) -> Result<Box<dyn Source>>;
    /// Starts telling `poke` about commits that other processes (or hosts)
    /// may have made; dropping the value returned stops it. `None`: only
    /// the safety poll will notice them.
    fn watch(&self, poke: Arc<dyn Poke>) -> Option<Box<dyn Send + Sync>>;
    /// Does a poke come before the commit is visible, so that the watcher
    /// must look again for a while? (SQLite's file events do.)
    fn recheck_after_poke(&self) -> bool;
}

/// The watcher's connection.
pub trait Source: Send {
    /// Has anything been committed since the last call? (The first call
    /// on a new source: yes, as something may have been missed.)
    fn changed(&mut self) -> Result<bool>;
    /// The newest notification id (0 if none).
    fn latest_notification(&mut self) -> Result<i64>;
    /// Up to `limit` notifications after id `after`, oldest first.
    fn notifications_after(&mut self, after: i64, limit: usize) -> Result<Vec<Notification>>;
    /// The safety poll found nothing committed (SQLite truncates an idle
    /// WAL here when asked to).
    fn idle(&mut self) {}
}

/// What a [`Feed`] calls when something may have been committed.
pub trait Poke: Send + Sync {
    /// Something may have been committed. With `park`, the caller may be
    /// held (blocked) while nobody in this process waits, until a waiter
    /// arrives: a file-system callback stops reading events then, so a
    /// process that only writes does not pay for them.
    fn poke(&self, park: bool);
}

/// Opens an [`Engine`] for a URL, with the handle's options.
pub type Opener = fn(url: &str, opts: &crate::OpenOptions) -> Result<Box<dyn Engine>>;

static POSTGRES: OnceLock<Opener> = OnceLock::new();

/// Registers the PostgreSQL engine (the `honker-postgres` crate does, from
/// its `register()`): `postgresql://` and `postgres://` URLs open with it.
/// The first registration stays.
pub fn register(opener: Opener) {
    let _ = POSTGRES.set(opener);
}

/// What a target names: a SQLite file, or a PostgreSQL URL.
pub(crate) enum Target<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a str),
}

impl<'a> Target<'a> {
    /// `postgresql://` and `postgres://` are PostgreSQL; `sqlite://` and
    /// anything else is a SQLite path.
    pub(crate) fn of(path: &'a std::path::Path) -> Target<'a> {
        match path.to_str() {
            Some(s) if s.starts_with("postgresql://") || s.starts_with("postgres://") => {
                Target::Postgres(s)
            }
            Some(s) if s.starts_with("sqlite://") => {
                Target::Sqlite(std::path::Path::new(&s["sqlite://".len()..]))
            }
            _ => Target::Sqlite(path),
        }
    }
}

/// The PostgreSQL opener, if one was registered.
pub(crate) fn postgres() -> Option<Opener> {
    POSTGRES.get().copied()
}
