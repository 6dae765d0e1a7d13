//! The worker runtime, written once: every language's worker (Rust's
//! `honker::Worker`, Python's `db.worker(...)`, Node's `db.worker({...})`)
//! is this core driven by a host that only runs user code.
//!
//! A [`WorkerCore`] runs up to `concurrency` jobs at once over one or more
//! queues. The host asks it for work ([`WorkerCore::poll`], blocking, or
//! [`WorkerCore::drain_next`], which does not wait), runs the handler of
//! the [`Activation`] it gets, and reports the outcome
//! ([`WorkerCore::complete`]). A success is acked, its result saved, and
//! the job the freed slot runs next claimed, all in one commit, and that
//! next job is handed straight back, so a busy worker makes one commit per
//! job and no thread hand-off.
//!
//! A worker whose handlers are quick claims ahead: once it has timed a few
//! handlers it claims, with each ack, as many jobs as it expects to finish
//! in about [`CLAIM_AHEAD_BUDGET`] (at most [`WorkerOptions::batch`]),
//! keeps the extra ones leased to it in a buffer, and acks the jobs it
//! finishes meanwhile together with the commit that empties the buffer.
//! A busy worker of quick tasks thus makes one commit per batch, not per
//! job. A result is visible to its enqueuer at that commit: never more than
//! [`ACK_DELAY`] after its handler returned (the keeper acks what has waited
//! that long). Slow handlers (one taking longer than the budget) get no
//! claim ahead: one job per free slot, as without batching.
//!
//! Meanwhile a keeper thread:
//!
//! - renews the lease of every job in flight every third of the lease, so a
//!   long handler keeps its job, and signals the handler
//!   ([`CancelReason::LeaseLost`]) if a renewal finds the lease gone;
//! - on a task's timeout signals the handler ([`CancelReason::Timeout`]) and
//!   gives the job back for a retry (or to the dead table, out of
//!   attempts) at once: a late result from that handler is ignored;
//! - after [`WorkerCore::shutdown`], once the grace period is over, signals
//!   what is still running ([`CancelReason::Shutdown`]) and releases it,
//!   the attempt not counted;
//! - acks finished jobs whose ack has waited [`ACK_DELAY`], and releases
//!   jobs claimed ahead that have waited a third of their lease without a
//!   free slot (a shutdown releases them at once).
//!
//! Jobs are task envelopes ([`envelope`]). A job naming a task this worker
//! has no handler for is dead-lettered with a reason naming it, or left for
//! another worker ([`UnknownTasks`]); never dropped.

pub mod envelope;
pub mod retry;

pub use retry::RetryPolicy;

#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::handle::{Caller, Db};
use crate::model::{AckAndClaim, Done, JobRecord, Lease};
use crate::wake::stop::Stop;
use crate::wake::wait::{wait_or_stop, MAX_WAIT};
use crate::wake::watcher::Watcher;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Default lease of a job a worker holds: 30 s, renewed every 10 s while
/// its handler runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default grace period of a shutdown: 10 s (Docker's default before it
/// sends SIGKILL).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Default time a task's result is kept: 1 day.
pub const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most jobs one worker runs at once.
pub const MAX_CONCURRENCY: usize = 10_000;
/// Default [`WorkerOptions::batch`]: up to 32 jobs per commit.
pub const DEFAULT_BATCH: usize = 32;
/// Largest [`WorkerOptions::batch`].
pub const MAX_BATCH: usize = 1_000;
/// How much work a worker claims ahead: what its handlers, timed so far,
/// finish in about this long.
pub const CLAIM_AHEAD_BUDGET: Duration = Duration::from_millis(5);
/// Longest a finished job's ack (and result) waits to share a commit.
pub const ACK_DELAY: Duration = Duration::from_millis(5);
/// While stopping, a poller waiting for the last job out looks again at
/// least this often (every change wakes it; this is a safety net).
const STOPPING_RECHECK: Duration = Duration::from_millis(100);

/// A task's options on the worker side.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// How long a handler may run before it is told to stop and its job is
    /// retried. Default none.
    pub timeout: Option<Duration>,
    /// Overrides the worker's retry policy for this task.
    pub retry: Option<RetryPolicy>,
    /// Save the handler's return value as the job's result. Default true
    /// (a `null` result is not saved: the enqueuer reads "no result").
    pub store_result: bool,
    /// How long a saved result is kept. Default 1 day.
    pub result_ttl: Duration,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            timeout: None,
            retry: None,
            store_result: true,
            result_ttl: DEFAULT_RESULT_TTL,
        }
    }
}

/// What a worker does with a job whose task it has no handler for (or
/// whose payload is not a task envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownTasks {
    /// Send it to the dead table, its last error naming the task and the
    /// tasks this worker has. The default.
    DeadLetter,
    /// Give it back untouched (the attempt not counted), due again after
    /// this long, for a worker that has the task.
    Leave(Duration),
}

/// A worker's options. `Default` is one slot, a 30 s lease renewed while
/// the handler runs, a 10 s shutdown grace, exponential retries with
/// jitter, unknown tasks dead-lettered; `queues` must be filled in.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The queues to take jobs from (at least one). When several have work,
    /// claims go round them in turn.
    pub queues: Vec<String>,
    /// Jobs run at once. Default 1.
    pub concurrency: usize,
    /// The name leases are taken under. Default `worker-<pid>-<n>`.
    pub worker_id: Option<String>,
    /// The lease of a job in flight, renewed every third of it. Default
    /// 30 s: a crashed worker's jobs are taken over this long after.
    pub lease: Duration,
    /// How long [`WorkerCore::shutdown`] waits for jobs in flight before it
    /// releases them. Default 10 s.
    pub grace: Duration,
    /// The retry policy of tasks that do not set their own.
    pub retry: RetryPolicy,
    /// What to do with a job of a task nobody here handles.
    pub unknown_tasks: UnknownTasks,
    /// Have [`WorkerCore::poll`] return [`Polled::Cancel`] when a running
    /// job is told to stop (hosts that cancel a task or abort a signal:
    /// Node, asyncio). Default false: the handler looks at
    /// [`Activation::cancel`] itself.
    pub cancel_events: bool,
    /// Most jobs acked and claimed in one commit when handlers are quick
    /// (see the [module documentation](self)); 1 turns claiming ahead off
    /// (one commit per job). Default 32.
    pub batch: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queues: Vec::new(),
            concurrency: 1,
            worker_id: None,
            lease: DEFAULT_LEASE,
            grace: DEFAULT_GRACE,
            retry: RetryPolicy::default(),
            unknown_tasks: UnknownTasks::DeadLetter,
            cancel_events: false,
            batch: DEFAULT_BATCH,
        }
    }
}

/// Why a running job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// Its task's timeout passed; the job was given back for a retry.
    Timeout,
    /// A renewal found its lease gone (it lapsed, or the job was cancelled);
    /// another worker may be running it.
    LeaseLost,
    /// The worker shut down and the grace period ended; the job was
    /// released, its attempt not counted.
    Shutdown,
}

impl CancelReason {
    /// `timeout`, `lease_lost` or `shutdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Timeout => "timeout",
            CancelReason::LeaseLost => "lease_lost",
            CancelReason::Shutdown => "shutdown",
        }
    }

    fn from_u8(v: u8) -> Option<CancelReason> {
        match v {
            1 => Some(CancelReason::Timeout),
            2 => Some(CancelReason::LeaseLost),
            3 => Some(CancelReason::Shutdown),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            CancelReason::Timeout => 1,
            CancelReason::LeaseLost => 2,
            CancelReason::Shutdown => 3,
        }
    }
}

/// The signal that tells a running handler to stop: looked at
/// ([`Cancel::reason`]), waited on ([`Cancel::wait`]) or awaited
/// ([`Cancel::cancelled`]).
#[derive(Debug, Default)]
pub struct Cancel {
    reason: AtomicU8,
    lock: Mutex<Vec<Waker>>,
    cv: Condvar,
}

impl Cancel {
    /// Why the handler was told to stop, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        CancelReason::from_u8(self.reason.load(Ordering::SeqCst))
    }

    /// Has the handler been told to stop?
    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// Blocks until the handler is told to stop or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> Option<CancelReason> {
        let until = crate::validate::deadline(timeout);
        let mut g = lock(&self.lock);
        loop {
            if let Some(r) = self.reason() {
                return Some(r);
            }
            let left = match until {
                Some(u) => u.saturating_duration_since(Instant::now()),
                None => MAX_WAIT,
            };
            if left.is_zero() {
                return None;
            }
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A future that completes when the handler is told to stop.
    pub fn cancelled(self: &Arc<Self>) -> Cancelled {
        Cancelled(self.clone())
    }

    /// Signals the handler (the first reason sticks); true if this call did.
    pub fn set(&self, why: CancelReason) -> bool {
        let mut g = lock(&self.lock);
        let first = self
            .reason
            .compare_exchange(0, why.to_u8(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let wakers = std::mem::take(&mut *g);
        drop(g);
        self.cv.notify_all();
        for w in wakers {
            w.wake();
        }
        first
    }
}

/// The future of [`Cancel::cancelled`].
#[derive(Debug)]
pub struct Cancelled(Arc<Cancel>);

impl std::future::Future for Cancelled {
    type Output = CancelReason;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<CancelReason> {
        if let Some(r) = self.0.reason() {
            return std::task::Poll::Ready(r);
        }
        let mut g = lock(&self.0.lock);
        if let Some(r) = self.0.reason() {
            return std::task::Poll::Ready(r);
        }
        g.retain(|w| !w.will_wake(cx.waker()));
        g.push(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// A job handed to the host to run.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The claimed job (its payload is the task envelope).
    pub job: JobRecord,
    /// The task it names.
    pub task: String,
    /// The task's timeout.
    pub timeout: Option<Duration>,
    /// Tells the handler to stop.
    pub cancel: Arc<Cancel>,
}

/// How a handler ended, as the host reports it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// It returned: ack, saving this result (JSON text) unless the task
    /// does not store results.
    Completed(Option<&'a str>),
    /// It failed with `error`: retry by the retry policy (after `retry_in`
    /// if given) while attempts remain, else dead-letter; with
    /// `retry: false`, dead-letter at once.
    Failed {
        /// The error message recorded on the job.
        error: &'a str,
        /// Overrides the retry policy's delay (a host-side policy).
        retry_in: Option<Duration>,
        /// False: no more attempts.
        retry: bool,
    },
    /// It did not run (the host is going away): give the job back, the
    /// attempt not counted.
    Released,
}

impl<'a> Outcome<'a> {
    /// The outcome a host reports as plain values: `released`, else `ok`
    /// with `value` as the result JSON, else a failure with `value` as the
    /// error (`retry_in` from a host-side policy; `retry` false: no more
    /// attempts).
    pub fn reported(
        released: bool,
        ok: bool,
        value: Option<&'a str>,
        retry_in: Option<Duration>,
        retry: bool,
    ) -> Outcome<'a> {
        if released {
            Outcome::Released
        } else if ok {
            Outcome::Completed(value)
        } else {
            Outcome::Failed {
                error: value.unwrap_or(""),
                retry_in,
                retry,
            }
        }
    }
}

/// What [`WorkerCore::poll`] found.
// Returned once per job and moved straight out: boxing would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Polled {
    /// Run this.
    Run(Activation),
    /// The running job `id` was told to stop (only with
    /// [`WorkerOptions::cancel_events`]).
    Cancel {
        /// The job.
        id: i64,
        /// Why.
        why: CancelReason,
    },
    /// The worker has shut down: nothing is running, or what was is
    /// released. Every later poll says the same.
    Done,
}

#[derive(Debug)]
struct Entry {
    attempt: u32,
    task: String,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    beat_at: Instant,
    started: Instant,
    cancel: Arc<Cancel>,
    /// The keeper has given the job back (timeout, shutdown) or found its
    /// lease gone: the host's outcome changes nothing in the file.
    settled: bool,
}

#[derive(Debug, Default)]
struct State {
    in_flight: HashMap<i64, Entry>,
    /// Slots taken by a claim under way.
    reserved: usize,
    /// Pollers waiting for a slot to come free.
    slot_waiters: usize,
    events: VecDeque<(i64, CancelReason)>,
    /// Set by shutdown: when the grace period ends.
    grace_until: Option<Instant>,
    /// The grace period ended and what was running is released.
    released: bool,
    closed: bool,
    keeper_at: Option<Instant>,
    /// Jobs claimed ahead of a free slot, and when.
    ahead: VecDeque<(JobRecord, Instant)>,
    /// Finished jobs whose ack waits for the next commit.
    pending: Vec<PendingAck>,
    /// When the oldest of `pending` finished.
    pending_since: Option<Instant>,
    /// Writes under way outside the lock: of `pending`, of `ahead`, or the
    /// keeper's releases and timeout retries.
    flushing: usize,
    /// Handlers' running time, averaged (exponentially weighted).
    run_time: Option<Duration>,
    /// [`ACK_DELAY`] (tests lengthen it).
    ack_delay: Duration,
}

/// A finished job's deferred ack: its lease and its result (JSON, ttl ms).
#[derive(Debug)]
struct PendingAck {
    id: i64,
    attempt: u32,
    result: Option<(String, i64)>,
}

impl State {
    /// Nothing claimed ahead or waiting to be acked, and no such write (or
    /// a keeper's release or timeout retry) under way.
    fn settled_ahead(&self) -> bool {
        self.ahead.is_empty() && self.pending.is_empty() && self.flushing == 0
    }

    /// Takes the deferred acks to write them (counted in `flushing` until
    /// [`Inner::flush`] is done).
    fn take_pending(&mut self) -> Vec<PendingAck> {
        let acks = std::mem::take(&mut self.pending);
        self.pending_since = None;
        if !acks.is_empty() {
            self.flushing += 1;
        }
        acks
    }

    /// Takes the jobs claimed ahead that came before `before` (all of them
    /// with `None`) to release them (counted in `flushing` until
    /// [`Inner::release_ahead`] is done).
    fn take_ahead(&mut self, before: Option<Instant>) -> Vec<(JobRecord, Instant)> {
        let n = match before {
            None => self.ahead.len(),
            Some(t) => self.ahead.iter().take_while(|(_, at)| *at < t).count(),
        };
        let jobs: Vec<_> = self.ahead.drain(..n).collect();
        if !jobs.is_empty() {
            self.flushing += 1;
        }
        jobs
    }
}

struct Inner {
    db: Db,
    id: String,
    queues: Vec<String>,
    concurrency: usize,
    lease: Duration,
    grace: Duration,
    retry: RetryPolicy,
    unknown: UnknownTasks,
    cancel_events: bool,
    batch: usize,
    tasks: HashMap<String, TaskOptions>,
    watcher: Arc<Watcher>,
    turn: AtomicUsize,
    seed: AtomicU64,
    st: Mutex<State>,
    /// The keeper's sleep.
    keeper: Condvar,
}

impl Inner {
    /// The wait before job `id`'s next attempt after attempt `attempt` of
    /// `task` failed: the task's retry policy, else the worker's.
    fn backoff(&self, task: &str, attempt: u32, id: i64) -> Duration {
        let policy = self
            .tasks
            .get(task)
            .and_then(|t| t.retry.as_ref())
            .unwrap_or(&self.retry);
        let seed = self.seed.fetch_add(0x9E37_79B9, Ordering::Relaxed) ^ id as u64;
        policy.delay(attempt, seed)
    }

    /// What a successful handler's `result` saves: nothing if the task
    /// does not store results or returned `null`, else the JSON and its ttl.
    fn result_of(&self, task: &str, result: Option<&str>) -> Option<(String, i64)> {
        let opts = self.tasks.get(task);
        let keep = opts.is_none_or(|t| t.store_result);
        let ttl = opts.map_or(DEFAULT_RESULT_TTL, |t| t.result_ttl);
        result
            .filter(|r| keep && r.trim() != "null")
            .map(|r| (r.to_string(), ttl.as_millis() as i64))
    }

    /// How many jobs the next claim takes: one, or (handlers timed and
    /// quick) what they finish in [`CLAIM_AHEAD_BUDGET`], up to the batch.
    fn claim_size(&self, st: &State) -> usize {
        match st.run_time {
            Some(t) if self.batch > 1 => {
                let n = CLAIM_AHEAD_BUDGET.as_nanos() / t.as_nanos().max(1);
                (n as usize).clamp(1, self.batch)
            }
            _ => 1,
        }
    }

    /// Acks `acks` in one commit (saving their results), claiming nothing.
    /// On an error they are put back for a later try.
    fn flush(&self, acks: Vec<PendingAck>) -> Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let done: Vec<Done<'_>> = acks.iter().map(|p| p.done(&self.id)).collect();
        let op = AckAndClaim {
            done: &done,
            queue: &self.queues[0],
            worker: &self.id,
            n: 0,
            visibility_timeout: self.lease,
        };
        let r = self.db.by(Caller::this_thread()).ack_and_claim(&op);
        drop(done);
        let mut st = lock(&self.st);
        st.flushing -= 1;
        if r.is_err() {
            st.pending_since.get_or_insert_with(Instant::now);
            st.pending.extend(acks);
        }
        drop(st);
        self.watcher.interrupt();
        r.map(|_| ())
    }

    /// Gives back jobs claimed ahead, their attempts not counted.
    fn release_ahead(&self, jobs: Vec<(JobRecord, Instant)>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ops = self.db.by(Caller::this_thread());
        let mut first_err = None;
        for (j, _) in &jobs {
            if let Err(e) = ops.release(Lease::new(j.id, &self.id, j.attempts)) {
                first_err.get_or_insert(e);
            }
        }
        lock(&self.st).flushing -= 1;
        self.watcher.interrupt();
        first_err.map_or(Ok(()), Err)
    }
}

impl PendingAck {
    fn done<'a>(&'a self, worker: &'a str) -> Done<'a> {
        Done {
            lease: Lease::new(self.id, worker, self.attempt),
            result: self.result.as_ref().map(|(r, ttl)| (r.as_str(), *ttl)),
        }
    }
}

/// Adds a handler's running time (from `started` to `now`) to the average
/// that decides how far the worker claims ahead.
fn record_run_time(st: &mut State, started: Instant, now: Instant) {
    let took = now.saturating_duration_since(started);
    st.run_time = Some(st.run_time.map_or(took, |avg| (avg * 4 + took) / 5));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The worker runtime: see the [module documentation](self).
pub struct WorkerCore {
    inner: Arc<Inner>,
    keeper: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for WorkerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCore")
            .field("id", &self.inner.id)
            .field("queues", &self.inner.queues)
            .field("concurrency", &self.inner.concurrency)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::large_enum_variant)]
enum Claimed {
    Got(Activation),
    Nothing(Duration),
}

impl WorkerCore {
    /// A worker on `db` for `tasks` (name and options); starts its keeper
    /// thread. Fails with `invalid_argument` naming what is wrong (no
    /// queues, a bad queue or task name, a task twice, concurrency 0).
    pub fn new(
        db: &Db,
        opts: WorkerOptions,
        tasks: Vec<(String, TaskOptions)>,
    ) -> Result<WorkerCore> {
        if opts.queues.is_empty() {
            return Err(Error::invalid("queues", "name at least one queue"));
        }
        let mut queues: Vec<String> = Vec::with_capacity(opts.queues.len());
        for q in opts.queues {
            crate::validate::name("queue", &q)?;
            if !queues.contains(&q) {
                queues.push(q);
            }
        }
        if opts.concurrency == 0 || opts.concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(
                "concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY}, not {}",
                    opts.concurrency
                ),
            ));
        }
        if opts.lease < Duration::from_millis(30) {
            return Err(Error::invalid("lease", "must be at least 30 ms"));
        }
        crate::validate::duration_ms("lease", opts.lease)?;
        crate::validate::duration_ms("grace", opts.grace)?;
        if opts.batch == 0 || opts.batch > MAX_BATCH {
            return Err(Error::invalid(
                "batch",
                format!("must be between 1 and {MAX_BATCH}, not {}", opts.batch),
            ));
        }
        if let UnknownTasks::Leave(d) = opts.unknown_tasks {
            crate::validate::duration_ms("unknown_tasks", d)?;
        }
        let mut map = HashMap::with_capacity(tasks.len());
        for (name, t) in tasks {
            crate::validate::name("task", &name)?;
            if t.timeout == Some(Duration::ZERO) {
                return Err(Error::invalid(
                    "timeout",
                    format!("task {name:?}: must be positive"),
                ));
            }
            crate::validate::duration_ms("result_ttl", t.result_ttl)?;
            if t.store_result && t.result_ttl.as_millis() == 0 {
                return Err(Error::invalid(
                    "result_ttl",
                    format!("task {name:?}: must be positive"),
                ));
            }
            if map.insert(name.clone(), t).is_some() {
                return Err(Error::invalid(
                    "task",
                    format!("{name:?} is registered twice"),
                ));
            }
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let id = match opts.worker_id {
            Some(id) => {
                crate::validate::name("worker_id", &id)?;
                id
            }
            None => format!(
                "worker-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        };
        if db.is_closed() {
            return Err(Error::Closed);
        }
        let watcher = crate::wake::watcher(db);
        watcher.ensure_started()?;
        let inner = Arc::new(Inner {
            db: db.clone(),
            id,
            queues,
            concurrency: opts.concurrency,
            lease: opts.lease,
            grace: opts.grace,
            retry: opts.retry,
            unknown: opts.unknown_tasks,
            cancel_events: opts.cancel_events,
            batch: opts.batch,
            tasks: map,
            watcher,
            turn: AtomicUsize::new(0),
            seed: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64),
            ),
            st: Mutex::new(State {
                ack_delay: ACK_DELAY,
                ..State::default()
            }),
            keeper: Condvar::new(),
        });
        let k = inner.clone();
        let thread = std::thread::Builder::new()
            .name("honker-worker".into())
            .spawn(move || keeper(&k))
            .map_err(|e| Error::Internal {
                reason: format!("cannot start the worker's keeper thread: {e}"),
            })?;
        Ok(WorkerCore {
            inner,
            keeper: Mutex::new(Some(thread)),
        })
    }

    /// The name this worker's leases are taken under.
    pub fn worker_id(&self) -> &str {
        &self.inner.id
    }

    /// The queues it serves.
    pub fn queues(&self) -> &[String] {
        &self.inner.queues
    }

    /// How many jobs it runs at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Jobs handed out and not yet completed.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.st).in_flight.len()
    }

    /// Has [`WorkerCore::shutdown`] been called?
    pub fn is_stopping(&self) -> bool {
        lock(&self.inner.st).grace_until.is_some()
    }

    /// Waits for work: returns a job to run once a slot is free and a job
    /// is due, a cancel event (with [`WorkerOptions::cancel_events`]), or
    /// [`Polled::Done`] once the worker has shut down. Setting `stop` starts
    /// the shutdown (as [`WorkerCore::shutdown`]); poll keeps returning until
    /// `Done`. Several threads may poll at once (each takes its own slot).
    pub fn poll(&self, stop: &impl Stop) -> Result<Polled> {
        let inner = &*self.inner;
        loop {
            if stop.is_set() {
                self.shutdown();
            }
            // Read before the state is looked at: whatever changes it later
            // (a slot freed, an event, the end) moves the generation.
            let seen = inner.watcher.generation();
            let mut st = lock(&inner.st);
            if let Some((id, why)) = st.events.pop_front() {
                return Ok(Polled::Cancel { id, why });
            }
            if st.closed {
                return Err(Error::Closed);
            }
            let stopping = st.grace_until.is_some();
            let finished = st.released || (st.in_flight.is_empty() && st.reserved == 0);
            if stopping && finished {
                if st.settled_ahead() {
                    return Ok(Polled::Done);
                }
                // Acks still waiting and jobs claimed ahead: settle them
                // here, or (someone is already writing them) wait below.
                let acks = st.take_pending();
                let jobs = st.take_ahead(None);
                if !acks.is_empty() || !jobs.is_empty() {
                    drop(st);
                    let flushed = inner.flush(acks);
                    inner.release_ahead(jobs)?;
                    flushed?;
                    continue;
                }
            }
            if stopping || st.in_flight.len() + st.reserved >= inner.concurrency {
                st.slot_waiters += 1;
                drop(st);
                let waited = if stopping {
                    // The stop is acted on, and stays set: waiting on it
                    // would end every wait at once and spin the pollers
                    // through the grace period. Wait for the state to move
                    // instead (a slot freed, the keeper's release, the last
                    // ack all wake us), re-checking now and then.
                    inner.watcher.wait(seen, STOPPING_RECHECK).map(drop)
                } else {
                    wait_or_stop(&inner.watcher, seen, MAX_WAIT, stop)
                };
                lock(&inner.st).slot_waiters -= 1;
                waited?;
                continue;
            }
            st.reserved += 1;
            drop(st);
            let seen = inner.watcher.generation();
            match self.fill(None)? {
                Claimed::Got(a) => return Ok(Polled::Run(a)),
                Claimed::Nothing(at_most) => {
                    if stop.is_set() || self.is_stopping() {
                        continue;
                    }
                    wait_or_stop(&inner.watcher, seen, at_most, stop)?;
                }
            }
        }
    }

    /// Waits for the next cancel event (with
    /// [`WorkerOptions::cancel_events`]) and claims nothing: what a host in
    /// drain mode, which claims with [`WorkerCore::drain_next`], listens on
    /// to tell its handlers to stop. `None` once `stop` is set.
    pub fn next_event(&self, stop: &impl Stop) -> Result<Option<(i64, CancelReason)>> {
        let inner = &*self.inner;
        loop {
            let seen = inner.watcher.generation();
            {
                let mut st = lock(&inner.st);
                if let Some(e) = st.events.pop_front() {
                    return Ok(Some(e));
                }
                if st.closed {
                    return Err(Error::Closed);
                }
            }
            if stop.is_set() {
                return Ok(None);
            }
            wait_or_stop(&inner.watcher, seen, MAX_WAIT, stop)?;
        }
    }

    /// Drain mode, one step: claims and returns a due job if there is one,
    /// `None` if nothing is due now (delayed jobs and retries waiting out
    /// their backoff are left). Does not wait and ignores the concurrency:
    /// a test calls it in a loop, runs each job and completes it, in the
    /// calling thread.
    pub fn drain_next(&self) -> Result<Option<Activation>> {
        let inner = &*self.inner;
        loop {
            // Writes under way (the keeper retrying a timed-out job, which
            // it signals before it writes) may make a job due: counted
            // before the look, waited for after it, then looked again.
            let seen = inner.watcher.generation();
            let writing = {
                let mut st = lock(&inner.st);
                st.reserved += 1;
                st.flushing > 0
            };
            match self.fill(None)? {
                Claimed::Got(a) => return Ok(Some(a)),
                Claimed::Nothing(_) if !writing => return Ok(None),
                Claimed::Nothing(_) => {
                    let mut seen = seen;
                    while lock(&inner.st).flushing > 0 {
                        seen = inner.watcher.wait(seen, STOPPING_RECHECK)?;
                    }
                }
            }
        }
    }

    /// Reports how job `id`'s handler ended. On success the ack, the result
    /// and the claim of the job this slot runs next are one commit; that
    /// next job (or after a failure, the next job claimed) is returned for
    /// the caller to run at once, so a busy slot never waits for a poll.
    /// `None`: nothing is due (or the worker is stopping); the slot is free
    /// for [`WorkerCore::poll`].
    ///
    /// An outcome for a job the keeper has already given back (a timeout, a
    /// shutdown) or whose lease was lost changes nothing in the file. A job
    /// that was not handed out by this worker is `not_found`.
    pub fn complete(&self, id: i64, outcome: Outcome<'_>) -> Result<Option<Activation>> {
        let inner = &*self.inner;
        let now = Instant::now();
        let mut ahead = None;
        let mut acks = Vec::new();
        let mut n = 0;
        let (entry, claim) = {
            let mut st = lock(&inner.st);
            let Some(e) = st.in_flight.remove(&id) else {
                return Err(Error::NotFound {
                    kind: "job in flight on this worker",
                    id: id.to_string(),
                });
            };
            let claim =
                st.grace_until.is_none() && !st.closed && !matches!(outcome, Outcome::Released);
            if claim {
                st.reserved += 1;
            } else {
                self.slot_freed(&st);
            }
            if !matches!(outcome, Outcome::Released) {
                record_run_time(&mut st, e.started, now);
            }
            if let (Outcome::Completed(result), false) = (outcome, e.settled) {
                let this = PendingAck {
                    id,
                    attempt: e.attempt,
                    result: inner.result_of(&e.task, result),
                };
                if claim && !st.ahead.is_empty() {
                    // Jobs were claimed ahead: run the next one now, ack
                    // this one with the commit that empties the buffer
                    // (or the keeper's, after ACK_DELAY).
                    ahead = st.ahead.pop_front();
                    self.defer_ack(&mut st, this, now);
                } else {
                    acks = std::mem::take(&mut st.pending);
                    st.pending_since = None;
                    acks.push(this);
                    st.flushing += 1;
                    n = if claim { inner.claim_size(&st) } else { 0 };
                }
            }
            (e, claim)
        };
        if let Some(first) = ahead {
            return match self.fill(Some(first))? {
                Claimed::Got(a) => Ok(Some(a)),
                Claimed::Nothing(_) => Ok(None),
            };
        }
        let wrote_acks = !acks.is_empty();
        let ops = inner.db.by(Caller::this_thread());
        let lease = Lease::new(id, &inner.id, entry.attempt);
        let done: Result<Option<JobRecord>> = match outcome {
            Outcome::Completed(_) => {
                if entry.settled {
                    Ok(None)
                } else {
                    // The next claim goes round the queues, like poll's.
                    let q = inner.queues.len();
                    let next = if q == 1 {
                        0
                    } else {
                        inner.turn.fetch_add(1, Ordering::Relaxed) % q
                    };
                    let done: Vec<Done<'_>> = acks.iter().map(|p| p.done(&inner.id)).collect();
                    let op = AckAndClaim {
                        done: &done,
                        queue: &inner.queues[next],
                        worker: &inner.id,
                        n,
                        visibility_timeout: inner.lease,
                    };
                    let r = ops.ack_and_claim(&op);
                    drop(done);
                    let mut st = lock(&inner.st);
                    st.flushing -= 1;
                    match r {
                        Ok((_, jobs)) => {
                            let mut jobs = jobs.into_iter();
                            let first = jobs.next();
                            st.ahead.extend(jobs.map(|j| (j, now)));
                            Ok(first)
                        }
                        Err(e) => {
                            // Nothing was acked: the keeper tries again.
                            st.pending_since.get_or_insert(now);
                            st.pending.extend(acks);
                            Err(e)
                        }
                    }
                }
            }
            Outcome::Failed {
                error,
                retry_in,
                retry,
            } => {
                if entry.settled {
                    Ok(None)
                } else if retry {
                    let delay =
                        retry_in.unwrap_or_else(|| inner.backoff(&entry.task, entry.attempt, id));
                    ops.retry(lease, Some(delay), error).map(|_| None)
                } else {
                    ops.fail(lease, error).map(|_| None)
                }
            }
            Outcome::Released => {
                if !entry.settled {
                    ops.release(lease)?;
                }
                Ok(None)
            }
        };
        if !claim {
            if wrote_acks {
                // The last acks went out: a stopping poller may be done.
                inner.watcher.interrupt();
            }
            return done.map(|_| None);
        }
        let next = match done {
            Ok(n) => n,
            Err(e) => {
                self.unreserve();
                return Err(e);
            }
        };
        // A success claimed its successor in the same commit, and found
        // nothing if none came: with one queue, nothing is due.
        if next.is_none()
            && matches!(outcome, Outcome::Completed(_))
            && !entry.settled
            && inner.queues.len() == 1
        {
            self.unreserve();
            return Ok(None);
        }
        match self.fill(next.map(|j| (j, now)))? {
            Claimed::Got(a) => Ok(Some(a)),
            Claimed::Nothing(_) => Ok(None),
        }
    }

    /// Stops claiming; what is running may finish for the grace period,
    /// then the keeper signals it ([`CancelReason::Shutdown`]) and releases
    /// its job without counting the attempt. Idempotent.
    pub fn shutdown(&self) {
        let inner = &*self.inner;
        let mut st = lock(&inner.st);
        if st.grace_until.is_some() {
            // Pollers already know: waking them all again on every poll
            // that sees the stop flag would keep them spinning.
            return;
        }
        st.grace_until = Some(Instant::now() + inner.grace);
        inner.keeper.notify_all();
        drop(st);
        inner.watcher.interrupt();
    }

    /// Wakes the pollers waiting for a slot (or, while stopping, for the
    /// last job out). They wait on the watcher, like a claim, so one wait
    /// hears commits, stops and freed slots alike.
    fn slot_freed(&self, st: &State) {
        if st.slot_waiters > 0 {
            self.inner.watcher.interrupt();
        }
    }

    fn unreserve(&self) {
        let mut st = lock(&self.inner.st);
        st.reserved -= 1;
        self.slot_freed(&st);
    }

    /// With one slot reserved: turns `first` (or else a fresh claim) into
    /// an activation, disposing of jobs of unknown tasks on the way. The
    /// reservation becomes the job in flight, or is given back.
    fn fill(&self, mut first: Option<(JobRecord, Instant)>) -> Result<Claimed> {
        let r = (|| loop {
            let (job, claimed_at) = match first.take() {
                Some(j) => j,
                None => match self.claim_once()? {
                    Ok(j) => j,
                    Err(at_most) => return Ok(Claimed::Nothing(at_most)),
                },
            };
            if let Some(a) = self.admit(job, claimed_at)? {
                return Ok(Claimed::Got(a));
            }
        })();
        if !matches!(r, Ok(Claimed::Got(_))) {
            self.unreserve();
        }
        r
    }

    /// The next job claimed ahead, else one claim, the queues in turn (acks
    /// still waiting are written first): a job and when it was claimed, or
    /// how long until one may be due.
    fn claim_once(&self) -> Result<std::result::Result<(JobRecord, Instant), Duration>> {
        let inner = &*self.inner;
        let acks = {
            let mut st = lock(&inner.st);
            if let Some(j) = st.ahead.pop_front() {
                return Ok(Ok(j));
            }
            st.take_pending()
        };
        inner.flush(acks)?;
        let ops = inner.db.by(Caller::this_thread());
        let n = inner.queues.len();
        let start = if n == 1 {
            0
        } else {
            inner.turn.fetch_add(1, Ordering::Relaxed) % n
        };
        let mut at_most = MAX_WAIT;
        for i in 0..n {
            let q = &inner.queues[(start + i) % n];
            if ops.has_due(q)? {
                let at = Instant::now();
                if let Some(j) = ops.claim(q, &inner.id, 1, inner.lease)?.pop() {
                    return Ok(Ok((j, at)));
                }
            }
            if let Some(t) = ops.next_deadline(q)? {
                let d = Duration::from_millis((t - inner.db.now_ms()).max(0) as u64);
                at_most = at_most.min(d);
            }
        }
        Ok(Err(at_most))
    }

    /// A claimed job in a reserved slot: in flight as an activation, or
    /// (an unknown task) disposed of and `None`.
    fn admit(&self, job: JobRecord, claimed_at: Instant) -> Result<Option<Activation>> {
        let inner = &*self.inner;
        let (task, opts) = match self.known_task(&job.payload) {
            Ok(k) => k,
            Err(why) => {
                let ops = inner.db.by(Caller::this_thread());
                let lease = Lease::new(job.id, &inner.id, job.attempts);
                match inner.unknown {
                    UnknownTasks::DeadLetter => ops.fail(lease, &why)?,
                    UnknownTasks::Leave(d) => ops.defer(lease, d)?,
                };
                return Ok(None);
            }
        };
        let mut st = lock(&inner.st);
        st.reserved -= 1;
        Ok(Some(self.start(&mut st, job, claimed_at, task, opts)))
    }

    /// The task a job's envelope names and its options, or why this worker
    /// cannot run it.
    fn known_task(&self, payload: &str) -> std::result::Result<(String, &TaskOptions), String> {
        let inner = &*self.inner;
        envelope::task_of(payload).and_then(|t| match inner.tasks.get(&t) {
            Some(opts) => Ok((t, opts)),
            None => {
                let mut names: Vec<&str> = inner.tasks.keys().map(String::as_str).collect();
                names.sort_unstable();
                Err(format!(
                    "unknown task {t:?}: worker {:?} has no handler for it (it has: {})",
                    inner.id,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            }
        })
    }

    /// Puts `job` in flight (the state locked) and returns its activation.
    fn start(
        &self,
        st: &mut State,
        job: JobRecord,
        claimed_at: Instant,
        task: String,
        opts: &TaskOptions,
    ) -> Activation {
        let inner = &*self.inner;
        let now = Instant::now();
        let cancel = Arc::new(Cancel::default());
        let deadline = opts.timeout.and_then(|t| now.checked_add(t));
        let entry = Entry {
            attempt: job.attempts,
            task: task.clone(),
            deadline,
            timeout: opts.timeout,
            // Its lease runs from its claim (earlier, if claimed ahead).
            beat_at: claimed_at + inner.lease / 3,
            started: now,
            cancel: cancel.clone(),
            settled: false,
        };
        let wake = deadline.unwrap_or(entry.beat_at).min(entry.beat_at);
        if st.keeper_at.is_none_or(|k| wake < k) {
            st.keeper_at = Some(wake);
            inner.keeper.notify_all();
        }
        st.in_flight.insert(job.id, entry);
        Activation {
            job,
            task,
            timeout: opts.timeout,
            cancel,
        }
    }

    /// Adds a finished job's ack to those waiting for the next commit (the
    /// state locked); the keeper writes it after [`ACK_DELAY`] if nothing
    /// else has.
    fn defer_ack(&self, st: &mut State, ack: PendingAck, now: Instant) {
        if st.pending.is_empty() {
            st.pending_since = Some(now);
            let due = now + st.ack_delay;
            if st.keeper_at.is_none_or(|k| due < k) {
                st.keeper_at = Some(due);
                self.inner.keeper.notify_all();
            }
        }
        st.pending.push(ack);
    }

    /// [`WorkerCore::complete`] of a success when it needs no I/O: the
    /// next job is one claimed ahead, of a task this worker has, so the ack
    /// waits for a later commit and that job is handed out at once. `None`:
    /// nothing was done (the worker is stopping, the job was settled by the
    /// keeper, nothing is claimed ahead, or the next job needs a write);
    /// call [`WorkerCore::complete`]. For hosts where a call that may write
    /// costs a thread hop (Node's event loop).
    pub fn complete_buffered(&self, id: i64, result: Option<&str>) -> Option<Activation> {
        let inner = &*self.inner;
        let mut st = lock(&inner.st);
        if st.grace_until.is_some() || st.closed || st.in_flight.get(&id)?.settled {
            return None;
        }
        let (task, opts) = self.known_task(&st.ahead.front()?.0.payload).ok()?;
        let e = st.in_flight.remove(&id)?;
        let now = Instant::now();
        record_run_time(&mut st, e.started, now);
        let ack = PendingAck {
            id,
            attempt: e.attempt,
            result: inner.result_of(&e.task, result),
        };
        self.defer_ack(&mut st, ack, now);
        let (job, claimed_at) = st.ahead.pop_front()?;
        Some(self.start(&mut st, job, claimed_at, task, opts))
    }

    /// Ends the worker now, as dropping it does: the keeper stops, and
    /// later polls fail with `closed`. Jobs still in flight keep their
    /// leases until they lapse (shut down and poll to `Done` first to
    /// release them). For a host whose handle outlives its use (a garbage
    /// collected one).
    pub fn close(&self) {
        let mut st = lock(&self.inner.st);
        st.closed = true;
        self.inner.keeper.notify_all();
        drop(st);
        self.inner.watcher.interrupt();
        // Not joined: a renewal or release under way (which can wait for
        // the database's busy timeout) finishes on its own, and the thread
        // then sees `closed` and ends; a host dropping its worker must not
        // wait for that.
        drop(lock(&self.keeper).take());
    }
}

impl Drop for WorkerCore {
    /// Stops the keeper. Jobs still in flight keep their leases until they
    /// lapse (call [`WorkerCore::shutdown`] and poll to `Done` first to
    /// release them).
    fn drop(&mut self) {
        self.close();
    }
}

enum Chore {
    Beat(i64, u32),
    TimedOut(i64, u32, String, Duration, Arc<Cancel>),
    Release(i64, u32, Arc<Cancel>),
}

/// The keeper thread: renews leases, enforces timeouts, ends the grace
/// period. It never holds the state lock while it writes.
fn keeper(inner: &Inner) {
    let mut st = lock(&inner.st);
    loop {
        if st.closed {
            return;
        }
        let now = Instant::now();
        let grace_over = !st.released && st.grace_until.is_some_and(|g| now >= g);
        let mut chores = Vec::new();
        for (&id, e) in st.in_flight.iter_mut() {
            if e.settled {
                continue;
            }
            if grace_over {
                e.settled = true;
                chores.push(Chore::Release(id, e.attempt, e.cancel.clone()));
            } else if e.deadline.is_some_and(|d| now >= d) {
                e.settled = true;
                chores.push(Chore::TimedOut(
                    id,
                    e.attempt,
                    e.task.clone(),
                    e.timeout.unwrap_or_default(),
                    e.cancel.clone(),
                ));
            } else if now >= e.beat_at {
                e.beat_at = now + inner.lease / 3;
                chores.push(Chore::Beat(id, e.attempt));
            }
        }
        // Releases and timeouts are written outside the lock, counted as
        // writes under way: a poller must not report the end (and let the
        // process exit), nor drain mode report nothing due, before those
        // writes land.
        let writes = chores.iter().any(|c| !matches!(c, Chore::Beat(..)));
        if writes {
            st.flushing += 1;
        }
        let stopping = st.grace_until.is_some();
        let acks = if st
            .pending_since
            .is_some_and(|t| stopping || now >= t + st.ack_delay)
        {
            st.take_pending()
        } else {
            Vec::new()
        };
        let stale = if stopping {
            st.take_ahead(None)
        } else if let Some(t) = now.checked_sub(inner.lease / 3) {
            st.take_ahead(Some(t))
        } else {
            Vec::new()
        };
        drop(st);
        let mut told = Vec::new();
        let ops = inner.db.by(Caller::this_thread());
        let mut closed = false;
        for r in [inner.flush(acks), inner.release_ahead(stale)] {
            if let Err(Error::Closed | Error::Forked { .. }) = r {
                closed = true;
            }
        }
        for chore in chores {
            match chore {
                Chore::Beat(id, attempt) => {
                    match ops.heartbeat(Lease::new(id, &inner.id, attempt), inner.lease) {
                        Ok(true) => {}
                        Ok(false) => told.push((id, attempt, CancelReason::LeaseLost)),
                        Err(Error::Closed | Error::Forked { .. }) => closed = true,
                        Err(_) => {} // busy: the next third tries again
                    }
                }
                // The job is given back first, then its handler told: a
                // handler that sees the signal finds its job already back.
                Chore::TimedOut(id, attempt, task, t, cancel) => {
                    let delay = inner.backoff(&task, attempt, id);
                    let why = format!("timed out after {:.3} s (task {task:?})", t.as_secs_f64());
                    let lease = Lease::new(id, &inner.id, attempt);
                    if let Err(Error::Closed | Error::Forked { .. }) =
                        ops.retry(lease, Some(delay), &why)
                    {
                        closed = true;
                    }
                    cancel.set(CancelReason::Timeout);
                    told.push((id, attempt, CancelReason::Timeout));
                }
                Chore::Release(id, attempt, cancel) => {
                    if let Err(Error::Closed | Error::Forked { .. }) =
                        ops.release(Lease::new(id, &inner.id, attempt))
                    {
                        closed = true;
                    }
                    cancel.set(CancelReason::Shutdown);
                    told.push((id, attempt, CancelReason::Shutdown));
                }
            }
        }
        st = lock(&inner.st);
        // Only now, the cancel events queued below with it: a poller that
        // saw `released` before them would report the end first.
        if grace_over {
            st.released = true;
        }
        if writes {
            st.flushing -= 1;
        }
        let mut any = grace_over || writes;
        for (id, attempt, why) in told {
            if let Some(e) = st.in_flight.get_mut(&id) {
                if e.attempt != attempt {
                    continue;
                }
                if why == CancelReason::LeaseLost {
                    if e.settled {
                        continue;
                    }
                    e.settled = true;
                    e.cancel.set(why);
                }
                if inner.cancel_events {
                    st.events.push_back((id, why));
                }
                any = true;
            }
        }
        if any {
            inner.watcher.interrupt();
        }
        if closed {
            // The database is gone: nothing left to keep. Pollers see it.
            return;
        }
        let mut next: Option<Instant> = None;
        let mut sooner = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for e in st.in_flight.values().filter(|e| !e.settled) {
            sooner(e.beat_at);
            if let Some(d) = e.deadline {
                sooner(d);
            }
        }
        if let (Some(g), false) = (st.grace_until, st.released) {
            sooner(g);
        }
        if let Some(t) = st.pending_since {
            sooner(t + st.ack_delay);
        }
        if let Some((_, at)) = st.ahead.front() {
            sooner(*at + inner.lease / 3);
        }
        // Idle, it still looks in every third of a lease: a job admitted
        // meanwhile is due its first renewal no sooner, so admitting one
        // need not wake this thread (a context switch per job).
        sooner(Instant::now() + inner.lease / 3);
        st.keeper_at = next;
        let wait = next.map_or(MAX_WAIT, |n| n.saturating_duration_since(Instant::now()));
        if !wait.is_zero() {
            st = inner
                .keeper
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
