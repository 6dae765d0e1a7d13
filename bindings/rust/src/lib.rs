//! Durable queues, streams, pub/sub and a cron scheduler on SQLite. One
//! file, zero servers.
//!
//! ```
//! use honker::{Database, EnqueueOpts, QueueOpts};
//! use serde_json::json;
//!
//! # let dir = std::env::temp_dir().join(format!("honker-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("app.db");
//! let db = Database::open(&path)?;
//! let q = db.queue("emails", QueueOpts::default());
//! q.enqueue(&json!({"to": "alice@example.com"}), EnqueueOpts::default())?;
//! if let Some(job) = q.claim_one("worker-1")? {
//!     let body: serde_json::Value = job.payload_as()?;
//!     assert_eq!(body["to"], "alice@example.com");
//!     assert!(job.ack()?);
//! }
//! # Ok::<(), honker::Error>(())
//! ```
//!
//! Jobs can be enqueued in the same transaction as the business write that
//! caused them ([`Database::transaction`], [`Queue::enqueue_tx`]): a
//! rollback drops both.
//!
//! [`Database`] is cheap to clone and shares one connection; operations
//! serialize through it. Several processes (in any language honker
//! supports) can share the same file.
//!
//! With the `tokio` feature, every operation that can wait has an `_async`
//! twin (`enqueue_async`, `transaction_async`, `ack_async`, …), the waits
//! are futures and streams (`ClaimWaker::next_async`, `Queue::claims`,
//! [`Subscription`] and [`Listener`] as `futures_core::Stream`s,
//! `Scheduler::run_async`), and a [`Transaction`] belongs to the tokio task
//! that began it, so it is safe to hold across `.await`.

#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod aio;
mod lock;
mod otel;
mod portable;
mod queue;
mod scheduler;
mod stream;
mod transaction;
mod wake;
mod worker;

pub use honker_core::cron;
pub use honker_core::model::{Fired, LockInfo, Notification, ScheduleInfo};
pub use honker_core::{
    Clock, EnqueueOpts, Error, Event, JobFilter, JobRecord, JobState, ManualClock, OpenOptions,
    QueueControls, QueueOpts, QueueRateLimit, QueueRetention, QueueStats, QueueSummary, Result,
    Retention, StreamConsumer, StreamSummary, SystemClock, EVENTS_STREAM,
};
pub use lock::Lock;
pub use queue::{Job, Queue};
pub use scheduler::{ScheduledTask, Scheduler, SchedulerOpts, SchedulerProblem};
pub use stream::Stream;
pub use transaction::Transaction;
pub use wake::{ClaimWaker, Listener, ListenerCloser, StopHandle, Subscription};
pub use worker::{
    CancelReason, Cancelled, JobOutcome, RetryPolicy, TaskCall, TaskOptions, UnknownTasks, Worker,
    WorkerOptions,
};

#[cfg(feature = "tokio")]
pub use aio::Claims;

use honker_core::{At, Caller, Db, Ops};
use lock::secs;
use serde::Serialize;
use std::path::Path;

/// Who a call here is made by, for the transaction rule: the tokio task it
/// runs in (feature `tokio`; an `_async` method's work acts for the task
/// that awaits it), else the calling thread. So a transaction belongs to
/// the task that began it, whichever thread the task resumes on after an
/// `.await`.
pub(crate) fn caller() -> Caller {
    #[cfg(feature = "tokio")]
    if let Some(c) = aio::current_caller() {
        return c;
    }
    Caller::this_thread()
}

/// Runs the caller's own closure inside an engine call. A panic in it is
/// the caller's, not honker's: it becomes an error for the engine (which
/// then undoes what the closure began) and is kept in `panicked` for
/// [`resume_panic`] to carry on in the caller, as a Rust panic should.
pub(crate) fn users_code<R>(
    panicked: &mut Option<Box<dyn std::any::Any + Send>>,
    f: impl FnOnce() -> R,
) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        *panicked = Some(p);
        Error::Internal {
            reason: "the caller's closure panicked".into(),
        }
    })
}

/// Resumes a panic [`users_code`] kept.
pub(crate) fn resume_panic(panicked: Option<Box<dyn std::any::Any + Send>>) {
    if let Some(p) = panicked {
        std::panic::resume_unwind(p)
    }
}

/// A honker database: one SQLite file holding your tables and honker's (or,
/// opened with a `postgresql://` URL, a PostgreSQL database: see
/// docs/POSTGRES.md). Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct Database {
    pub(crate) core: Db,
}

impl Database {
    /// Opens (creating if needed) the database at `path` with default
    /// options: WAL, `synchronous=NORMAL`, a 10 s busy timeout, the system
    /// clock. Creates or upgrades honker's tables. A `postgresql://` URL
    /// opens PostgreSQL instead (the default feature `postgres`).
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, OpenOptions::default())
    }

    /// Opens with explicit [`OpenOptions`] (busy timeout, clock).
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Database> {
        #[cfg(feature = "postgres")]
        honker_postgres::register();
        Ok(Database {
            core: honker_core::open(path, opts)?,
        })
    }

    /// The engine handle, for bindings and advanced use.
    pub fn core(&self) -> &Db {
        &self.core
    }

    /// The operations, for the calling thread outside any transaction.
    pub(crate) fn ops(&self) -> Ops<'_> {
        self.core.by(crate::caller())
    }

    pub(crate) fn same_file(&self, other: &Database) -> bool {
        self.core.path() == other.core.path()
    }

    /// A handle on queue `name`. The name is checked when the queue is used
    /// (an empty name fails with `Error::InvalidArgument`).
    pub fn queue(&self, name: &str, opts: QueueOpts) -> Queue {
        Queue::new(self.clone(), name, opts)
    }

    /// Every queue the file knows (with jobs, live or dead, or controls),
    /// by name, with its job counts and controls: what an operator looks at.
    pub fn queues(&self) -> Result<Vec<QueueSummary>> {
        self.ops().queues()
    }

    /// Every stream the file knows (with events, saved offsets or
    /// retention), by name, with its last offset and each consumer's saved
    /// offset (`last_offset - offset` is the consumer's lag).
    pub fn streams(&self) -> Result<Vec<StreamSummary>> {
        self.ops().streams()
    }

    /// The jobs `filter` names (queue, state, task, idempotency key,
    /// creation time), live and dead, newest first; page with
    /// `before_id` set to the last id of the previous page.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.ops().list_jobs(filter)
    }

    /// A handle on stream `name`.
    pub fn stream(&self, name: &str) -> Stream {
        Stream::new(self.clone(), name)
    }

    /// The scheduler: register periodic tasks and fire them.
    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.clone())
    }

    /// Opens a write transaction. See [`Transaction`].
    pub fn transaction(&self) -> Result<Transaction> {
        Transaction::begin(self)
    }

    /// Sends `payload` (as JSON) on `channel` to every listener started
    /// before this commit. Returns the notification id.
    pub fn notify<P: Serialize + ?Sized>(&self, channel: &str, payload: &P) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        self.ops().notify(channel, &payload)
    }

    /// Listens on `channel`: the returned [`Listener`] receives every
    /// notification committed from now on, from any process, in order.
    pub fn listen(&self, channel: &str) -> Result<Listener> {
        Listener::new(self, channel)
    }

    /// [`Database::notify`] inside `tx`: delivered only if `tx` commits.
    pub fn notify_tx<P: Serialize + ?Sized>(
        &self,
        tx: &Transaction,
        channel: &str,
        payload: &P,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        tx.ops(self)?.notify(channel, &payload)
    }

    /// Tries to take advisory lock `name` for `owner` for `ttl_s` seconds.
    /// `None` if anyone holds it, `owner` included (a second acquisition
    /// never shares the first one's lease). The returned guard keeps the
    /// lock alive in the background until dropped (see [`Lock`]).
    pub fn try_lock(&self, name: &str, owner: &str, ttl_s: u64) -> Result<Option<Lock>> {
        let ttl = honker_core::validate::positive_secs("ttl_s", secs(ttl_s))?;
        let token = self.ops().try_lock(name, owner, ttl)?;
        token
            .map(|t| Lock::new(self.clone(), name, owner, t, ttl))
            .transpose()
    }

    /// Who holds lock `name` right now, if anyone.
    pub fn lock_holder(&self, name: &str) -> Result<Option<LockInfo>> {
        self.ops().lock_holder(name)
    }

    /// Fixed-window rate limit: true for the first `limit` calls with `key`
    /// in each window of `per_s` seconds, false after.
    pub fn try_rate_limit(&self, key: &str, limit: u64, per_s: u64) -> Result<bool> {
        let per = honker_core::validate::positive_secs("per_s", secs(per_s))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.ops().try_rate_limit(key, limit, per)
    }

    /// Stores `value` (JSON text) as the result of job `job_id` for `ttl_s`
    /// seconds, replacing any earlier result.
    pub fn save_result(&self, job_id: i64, value: &str, ttl_s: u64) -> Result<()> {
        let ttl = honker_core::validate::positive_secs("ttl_s", secs(ttl_s))?;
        self.ops().save_result(job_id, value, ttl)
    }

    /// The unexpired result of job `job_id`, if one was saved.
    pub fn get_result(&self, job_id: i64) -> Result<Option<String>> {
        self.ops().get_result(job_id)
    }

    /// Removes every expired result now (saving a result also removes a few).
    pub fn sweep_results(&self) -> Result<usize> {
        self.ops().sweep_results()
    }

    /// SQLite only: runs `f` with the `rusqlite` connection, for custom SQL
    /// or joins between your tables and honker's (the escape hatch; every
    /// other method is the same on any backend). Fails with
    /// `Error::TransactionOpen` on a thread that holds an open transaction
    /// (use [`Transaction::with_conn`]).
    pub fn with_conn<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> R) -> Result<R> {
        let mut panicked = None;
        let r = self.core.with_conn(At::Caller(crate::caller()), |c, _| {
            users_code(&mut panicked, || f(c))
        });
        resume_panic(panicked);
        r
    }

    /// Closes the connection. Every later call on any clone fails with
    /// `Error::Closed`.
    pub fn close(&self) -> Result<()> {
        self.core.close()
    }
}
