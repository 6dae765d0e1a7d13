//! The blocking operations, written once for every binding: claim the next
//! job, follow a stream, run the scheduler. Each waits on the file's
//! [`Watcher`] (no polling) and checks with a
//! cheap read before it takes the write lock.

pub use super::stop::Stop;
use super::watcher::Watcher;
use crate::error::{Error, Result};
use crate::handle::{Caller, Db};
use crate::model::{Event, FireFailure, JobRecord, QueueOpts};
use crate::store::Store;
use crate::validate;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest single wait; waits are re-armed after it.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

fn ms(d: i64) -> Duration {
    Duration::from_millis(d.max(0) as u64)
}

/// Waits for a commit after generation `seen`, at most `wait`, asking
/// `stop` every [`Stop::poll_every`] on the way.
pub fn wait_or_stop(watcher: &Watcher, seen: u64, wait: Duration, stop: &impl Stop) -> Result<()> {
    let Some(every) = stop.poll_every() else {
        watcher.wait(seen, wait)?;
        return Ok(());
    };
    let until = validate::deadline(wait);
    loop {
        let left = until.map_or(wait, |u| u.saturating_duration_since(Instant::now()));
        if left.is_zero() || stop.is_set() {
            return Ok(());
        }
        if watcher.wait(seen, left.min(every))? != seen || stop.check() {
            return Ok(());
        }
    }
}

/// What one look at the database found: a result, or that there is none
/// yet and what to wait for. The blocking loops here are built on the
/// steps, and so is a host's asynchronous loop (which runs a step off its
/// event loop, then awaits [`Watcher::changed`] raced against a timer).
#[derive(Debug)]
pub enum Step<T> {
    /// Found.
    Ready(T),
    /// Nothing yet: wait for a commit after generation `seen`, at most
    /// `at_most` (a delayed job's `run_at`, a lease's end), then step again.
    Wait {
        /// The watcher's generation read before the look.
        seen: u64,
        /// The longest wait before the next look.
        at_most: Duration,
    },
}

/// `at_most`, cut to what is left before `deadline`; `None` once it has
/// passed (the wait ends empty-handed).
pub fn bounded(at_most: Duration, deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(at_most),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| at_most.min(left))
        }
    }
}

/// One look for a job of `queue_name` to claim for `worker`: claims it if
/// one is due, else says how long to wait at most (until a delayed job's
/// `run_at` or a lease's end). A read comes first: most wake-ups are for
/// someone else.
pub fn claim_step(
    db: &Db,
    caller: Caller,
    queue_name: &str,
    worker: &str,
    opts: &QueueOpts,
) -> Result<Step<JobRecord>> {
    validate::name("queue", queue_name)?;
    validate::name("worker", worker)?;
    let watcher = super::watcher(db);
    watcher.ensure_started()?;
    let ops = db.by(caller);
    loop {
        let seen = watcher.generation();
        let due = ops.has_due(queue_name)?;
        let next = ops.next_deadline(queue_name)?.map(|t| t - db.now_ms());
        if due {
            let mut jobs = ops.claim(queue_name, worker, 1, opts.visibility_timeout)?;
            if let Some(job) = jobs.pop() {
                return Ok(Step::Ready(job));
            }
            continue; // another worker was quicker
        }
        let at_most = next.map(ms).unwrap_or(MAX_WAIT).min(MAX_WAIT);
        return Ok(Step::Wait { seen, at_most });
    }
}

/// Claims the next job of `queue` for `worker`, blocking until one is
/// enqueued, a delayed job's `run_at` arrives, or a lease expires. Returns
/// `Ok(None)` when `timeout` passes or `stop` is set (call
/// `Watcher::interrupt` after setting it to wake the waiter at once).
pub fn claim_next(
    db: &Db,
    caller: Caller,
    queue_name: &str,
    worker: &str,
    opts: &QueueOpts,
    timeout: Option<Duration>,
    stop: &impl Stop,
) -> Result<Option<JobRecord>> {
    let watcher = super::watcher(db);
    let deadline = timeout.and_then(validate::deadline);
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        let (seen, at_most) = match claim_step(db, caller, queue_name, worker, opts)? {
            Step::Ready(job) => return Ok(Some(job)),
            Step::Wait { seen, at_most } => (seen, at_most),
        };
        // Looked at after `seen` was read: a stop set later also moves it.
        if stop.is_set() {
            return Ok(None);
        }
        let Some(wait) = bounded(at_most, deadline) else {
            return Ok(None);
        };
        wait_or_stop(&watcher, seen, wait, stop)?;
    }
}

/// How a job ended, as its enqueuer sees it.
#[allow(clippy::large_enum_variant)] // one per wait, moved straight out
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// It was acked: its saved result (JSON text), or `None` when it saved
    /// none (or the result's TTL has passed).
    Completed(Option<String>),
    /// It is in the dead table.
    Dead(JobRecord),
}

/// One look at job `id`: still live (wait for a commit), or how it ended.
/// The job is read before its result: an ack and its result commit
/// together, so a job found gone has its result visible.
pub fn outcome_step(db: &Db, caller: Caller, id: i64) -> Result<Step<JobOutcome>> {
    let watcher = super::watcher(db);
    watcher.ensure_started()?;
    let ops = db.by(caller);
    let seen = watcher.generation();
    match ops.get_job(id)? {
        Some(job) if job.state == crate::model::JobState::Dead => {
            Ok(Step::Ready(JobOutcome::Dead(job)))
        }
        // Acked, and kept by its queue's retention: the saved result, or
        // (its TTL passed) the one kept with the job.
        Some(job) if job.state == crate::model::JobState::Completed => Ok(Step::Ready(
            JobOutcome::Completed(ops.get_result(id)?.or(job.result)),
        )),
        Some(_) => Ok(Step::Wait {
            seen,
            at_most: MAX_WAIT,
        }),
        None => Ok(Step::Ready(JobOutcome::Completed(ops.get_result(id)?))),
    }
}

/// Waits for job `id` to end (acked, or dead); `Ok(None)` when `timeout`
/// passes or `stop` is set first.
pub fn wait_outcome(
    db: &Db,
    caller: Caller,
    id: i64,
    timeout: Option<Duration>,
    stop: &impl Stop,
) -> Result<Option<JobOutcome>> {
    let watcher = super::watcher(db);
    let deadline = timeout.and_then(validate::deadline);
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        let (seen, at_most) = match outcome_step(db, caller, id)? {
            Step::Ready(o) => return Ok(Some(o)),
            Step::Wait { seen, at_most } => (seen, at_most),
        };
        let Some(wait) = bounded(at_most, deadline) else {
            return Ok(None);
        };
        wait_or_stop(&watcher, seen, wait, stop)?;
    }
}

impl JobOutcome {
    /// The result of a completed job; a dead one is
    /// [`Error::JobFailed`] with its reason and last error.
    pub fn into_result(self) -> Result<Option<String>> {
        match self {
            JobOutcome::Completed(r) => Ok(r),
            JobOutcome::Dead(job) => Err(Error::JobFailed {
                id: job.id,
                reason: job.dead_reason.unwrap_or_else(|| "failed".into()),
                error: job.last_error.unwrap_or_default(),
            }),
        }
    }
}

/// A consumer's position in a stream, with at-least-once delivery: an
/// event's offset is saved only once the consumer has moved past it (asked
/// for the next event, or called [`StreamCursor::commit`]). It is saved
/// lazily, so a busy stream costs one write per batch, not per event: when
/// the buffer runs dry, before waiting, on commit, at least every
/// [`SAVE_EVERY_EVENTS`] events and every [`SAVE_EVERY`], when the cursor
/// is dropped, and when the database is closed under it. So a consumer that
/// leaves its loop any way (a break, an exception, a closed database) is
/// redelivered only the event it had in hand.
#[derive(Debug)]
pub struct StreamCursor {
    pending: Arc<Pending>,
    db: Db,
    buf: VecDeque<Event>,
    fetched_to: i64,
    handed: Option<i64>,
    moved: u32,
    saved_at: Instant,
    batch: usize,
}

/// A cursor saves at least every this many events moved past.
pub const SAVE_EVERY_EVENTS: u32 = 100;
/// A cursor saves at least this often while events are moved past.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The offset a cursor has moved past but not saved yet, shared with the
/// database so that closing it saves the offset first.
#[derive(Debug)]
struct Pending {
    stream: String,
    consumer: String,
    done: std::sync::Mutex<Option<i64>>,
}

impl Pending {
    fn take(&self) -> Option<i64> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn set(&self, offset: i64) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(offset);
    }

    fn save(&self, db: &Db, caller: Caller, offset: i64) -> Result<()> {
        db.by(caller)
            .save_offset(&self.stream, &self.consumer, offset)
            .map(|_| ())
    }
}

impl crate::handle::BeforeClose for Pending {
    fn before_close(&self, store: &dyn Store, now: i64) {
        if let Some(off) = self.take() {
            let _ = store.save_offset(&self.stream, &self.consumer, off, now);
        }
    }
}

impl StreamCursor {
    /// Starts from `consumer`'s saved offset.
    pub fn open(
        db: &Db,
        caller: Caller,
        stream_name: &str,
        consumer: &str,
    ) -> Result<StreamCursor> {
        let saved = db.by(caller).get_offset(stream_name, consumer)?;
        let pending = Arc::new(Pending {
            stream: stream_name.to_string(),
            consumer: consumer.to_string(),
            done: std::sync::Mutex::new(None),
        });
        let hook: Arc<dyn crate::handle::BeforeClose> = pending.clone();
        db.before_close(Arc::downgrade(&hook));
        Ok(StreamCursor {
            pending,
            db: db.clone(),
            buf: VecDeque::new(),
            fetched_to: saved,
            handed: None,
            moved: 0,
            saved_at: Instant::now(),
            batch: 256,
        })
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.pending.consumer
    }

    /// Saves the offset of everything the consumer has moved past.
    pub fn flush(&mut self, db: &Db, caller: Caller) -> Result<()> {
        if let Some(off) = self.pending.take() {
            if let Err(e) = self.pending.save(db, caller, off) {
                self.pending.set(off);
                return Err(e);
            }
        }
        self.moved = 0;
        self.saved_at = Instant::now();
        Ok(())
    }

    /// Marks the event last handed out as handled and saves the offset now.
    pub fn commit(&mut self, db: &Db, caller: Caller) -> Result<()> {
        if let Some(off) = self.handed.take() {
            self.pending.set(off);
        }
        self.flush(db, caller)
    }

    /// Records that the consumer moved past the event it had in hand.
    fn move_on(&mut self, next: Option<i64>) {
        if let Some(off) = std::mem::replace(&mut self.handed, next) {
            self.pending.set(off);
            self.moved = self.moved.saturating_add(1);
        }
    }

    /// Is a periodic save due?
    fn save_due(&self) -> bool {
        self.moved >= SAVE_EVERY_EVENTS || (self.moved > 0 && self.saved_at.elapsed() >= SAVE_EVERY)
    }

    /// The next event if one is already fetched and no save is due, without
    /// touching the database or waiting (a binding answers from here before
    /// it hands a [`StreamCursor::next`] to another thread, which saves).
    /// Marks it handed out, as `next` does.
    pub fn next_buffered(&mut self) -> Option<Event> {
        if self.buf.is_empty() || self.save_due() {
            return None;
        }
        let ev = self.buf.pop_front()?;
        self.move_on(Some(ev.offset));
        Some(ev)
    }

    /// Starts a wait for the next event: the consumer has moved past the
    /// event it had in hand (saved now if a periodic save is due). Then
    /// [`StreamCursor::step`] until it is ready.
    pub fn begin_next(&mut self, db: &Db, caller: Caller) -> Result<()> {
        self.move_on(None);
        if self.save_due() {
            self.flush(db, caller)?;
        }
        Ok(())
    }

    /// One look for the next event (after [`StreamCursor::begin_next`]):
    /// hands it out if one is buffered or published, else says to wait for
    /// a commit.
    pub fn step(&mut self, db: &Db, caller: Caller) -> Result<Step<Event>> {
        let watcher = super::watcher(db);
        loop {
            if let Some(ev) = self.buf.pop_front() {
                self.handed = Some(ev.offset);
                return Ok(Step::Ready(ev));
            }
            self.flush(db, caller)?;
            let seen = watcher.generation();
            let events =
                db.by(caller)
                    .read_since(&self.pending.stream, self.fetched_to, self.batch)?;
            if let Some(last) = events.last() {
                self.fetched_to = last.offset;
                self.buf.extend(events);
                continue;
            }
            watcher.ensure_started()?;
            return Ok(Step::Wait {
                seen,
                at_most: MAX_WAIT,
            });
        }
    }

    /// Takes back `ev`, the event [`StreamCursor::step`] just handed out,
    /// because it never reached the consumer (its wait was cancelled): it
    /// is handed out again next, and not counted as moved past.
    pub fn give_back(&mut self, ev: Event) {
        if self.handed == Some(ev.offset) {
            self.handed = None;
        }
        self.buf.push_front(ev);
    }

    /// The next event, blocking until one is published; `Ok(None)` when
    /// `timeout` passes or `stop` is set.
    pub fn next(
        &mut self,
        db: &Db,
        caller: Caller,
        timeout: Option<Duration>,
        stop: &impl Stop,
    ) -> Result<Option<Event>> {
        self.begin_next(db, caller)?;
        let watcher = super::watcher(db);
        let deadline = timeout.and_then(validate::deadline);
        loop {
            let seen = match self.step(db, caller)? {
                Step::Ready(ev) => return Ok(Some(ev)),
                Step::Wait { seen, .. } => seen,
            };
            if stop.is_set() {
                return Ok(None);
            }
            let Some(wait) = bounded(MAX_WAIT, deadline) else {
                return Ok(None);
            };
            wait_or_stop(&watcher, seen, wait, stop)?;
        }
    }
}

impl Drop for StreamCursor {
    fn drop(&mut self) {
        // Left without a close: save what the consumer moved past (not the
        // event in hand). A closed database has saved it already.
        if let Some(off) = self.pending.take() {
            let _ = self.pending.save(&self.db, Caller::this_thread(), off);
        }
    }
}

/// Options of [`run_scheduler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOpts {
    /// TTL of the leader lock: a standby takes over at most this long after
    /// the leader dies. The leader renews it every quarter of it. Default 10 s.
    pub lock_ttl: Duration,
    /// Name of the leader lock. Default `"honker:scheduler"`.
    pub lock_name: String,
    /// The loop retries a failing step (a busy database, a full disk) after
    /// 100 ms, doubling up to 5 s, and gives up, returning the error, after
    /// this many failures in a row (0: never gives up). Default 10 (about
    /// 40 s of failing).
    pub max_failures: u32,
}

impl Default for SchedulerOpts {
    fn default() -> Self {
        SchedulerOpts {
            lock_ttl: Duration::from_secs(10),
            lock_name: "honker:scheduler".into(),
            max_failures: 10,
        }
    }
}

/// What the scheduler loop tells its host (which logs it through the
/// language's logging) while it carries on.
#[derive(Debug)]
pub enum SchedulerProblem<'a> {
    /// A schedule's fire failed; the schedule moved on to its next boundary
    /// and the other schedules fired.
    FireFailed(&'a FireFailure),
    /// A step of the loop failed; it is retried after `retry_in`, unless
    /// this was failure number `max_failures` in a row, which ends the loop
    /// with the error.
    StepFailed {
        /// The error.
        error: &'a Error,
        /// Failures in a row, this one included.
        in_a_row: u32,
        /// When the loop tries again.
        retry_in: Duration,
    },
}

impl std::fmt::Display for SchedulerProblem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchedulerProblem::FireFailed(x) => write!(
                f,
                "honker scheduler: schedule {:?} could not fire (boundary {} ms): {}; it moves on to its next boundary",
                x.name, x.fire_at_ms, x.error
            ),
            SchedulerProblem::StepFailed {
                error,
                in_a_row,
                retry_in,
            } => write!(
                f,
                "honker scheduler: {error} (failure {in_a_row} in a row; retrying in {} ms)",
                retry_in.as_millis()
            ),
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);

/// How often the scheduler looks at `stop` while idle: its callers may set
/// a plain flag without waking anyone (the Rust API takes the caller's
/// `AtomicBool`).
const STOP_POLL: Duration = Duration::from_millis(50);

/// `stop`, also looked at every [`STOP_POLL`].
struct Polled<'a, S>(&'a S);

impl<S: Stop> Stop for Polled<'_, S> {
    fn is_set(&self) -> bool {
        self.0.is_set()
    }

    fn poll_every(&self) -> Option<Duration> {
        Some(self.0.poll_every().map_or(STOP_POLL, |d| d.min(STOP_POLL)))
    }

    fn check(&self) -> bool {
        self.0.check() || self.0.is_set()
    }
}

/// Runs the scheduler until `stop` is set: only the holder of the leader
/// lock fires, each fire fenced by the lock's token; standbys take over
/// when the lock lapses. A failing step is retried (see
/// [`SchedulerOpts::max_failures`]) and each problem is handed to `report`;
/// `Error::Closed`, a dead watcher, or `max_failures` failures in a row end
/// the loop with the error.
pub fn run_scheduler(
    db: &Db,
    caller: Caller,
    stop: &impl Stop,
    owner: &str,
    opts: &SchedulerOpts,
    report: &mut dyn FnMut(&SchedulerProblem<'_>),
) -> Result<()> {
    validate::name("owner", owner)?;
    validate::name("lock_name", &opts.lock_name)?;
    let ttl_ms = validate::positive_ms(
        "lock_ttl",
        validate::duration_ms("lock_ttl", opts.lock_ttl)?,
    )?;
    let watcher = super::watcher(db);
    watcher.ensure_started()?;
    let ops = db.by(caller);
    let stop = &Polled(stop);
    let renew_every = opts.lock_ttl / 4;
    let mut token: Option<i64> = None;
    let mut renewed = Instant::now();
    let mut failures = 0u32;
    let result = loop {
        if stop.is_set() {
            break Ok(());
        }
        let seen = watcher.generation();
        let step: Result<Duration> = (|| {
            let t = match token {
                Some(t) if renewed.elapsed() < renew_every => t,
                Some(t) => {
                    if !ops.renew_lock(&opts.lock_name, t, ttl_ms)? {
                        token = None;
                        return Ok(Duration::ZERO);
                    }
                    renewed = Instant::now();
                    t
                }
                None => match ops.try_lock(&opts.lock_name, owner, ttl_ms)? {
                    Some(t) => {
                        token = Some(t);
                        renewed = Instant::now();
                        t
                    }
                    None => {
                        // Standby: come back when the leader's lock would lapse.
                        let until = ops
                            .lock_holder(&opts.lock_name)?
                            .map(|h| h.expires_at_ms - db.now_ms());
                        return Ok(until.map(|d| ms(d + 1)).unwrap_or(Duration::ZERO));
                    }
                },
            };
            let soonest = ops.schedule_soonest()?.map(|s| s - db.now_ms());
            if soonest.is_some_and(|d| d <= 0) {
                match ops.schedule_tick_fenced(&opts.lock_name, t)? {
                    None => token = None, // fenced off: someone else leads now
                    Some((_, failed)) => {
                        for f in &failed {
                            report(&SchedulerProblem::FireFailed(f));
                        }
                    }
                }
                return Ok(Duration::ZERO);
            }
            let next = soonest.map(ms).unwrap_or(MAX_WAIT);
            Ok(next.min(renew_every.saturating_sub(renewed.elapsed())))
        })();
        let wait = match step {
            Ok(d) => {
                failures = 0;
                d
            }
            Err(Error::Closed) => break Err(Error::Closed),
            Err(e @ Error::Watcher { .. }) => break Err(e),
            Err(error) => {
                failures = failures.saturating_add(1);
                let retry_in = RETRY_FIRST
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(RETRY_LAST);
                report(&SchedulerProblem::StepFailed {
                    error: &error,
                    in_a_row: failures,
                    retry_in,
                });
                if opts.max_failures > 0 && failures >= opts.max_failures {
                    break Err(error);
                }
                retry_in
            }
        };
        // Sleep until the next boundary, a commit (schedules may have
        // changed), or `stop`.
        wait_or_stop(&watcher, seen, wait, stop)?;
    };
    if let Some(t) = token {
        let _ = ops.release_lock(&opts.lock_name, t);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ScheduleSpec;
    use crate::store::sqlite::{queue, scheduler, stream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A stop nobody wakes the waiter for (like a pending Ctrl-C): it trips
    /// on its third check.
    #[derive(Default)]
    struct Tripwire {
        checks: AtomicUsize,
        tripped: AtomicBool,
    }

    impl Stop for Tripwire {
        fn is_set(&self) -> bool {
            self.tripped.load(Ordering::SeqCst)
        }
        fn poll_every(&self) -> Option<Duration> {
            Some(Duration::from_millis(5))
        }
        fn check(&self) -> bool {
            let n = self.checks.fetch_add(1, Ordering::SeqCst) + 1;
            self.tripped.store(n >= 3, Ordering::SeqCst);
            n >= 3
        }
    }

    #[test]
    fn a_scheduler_that_keeps_failing_says_so_then_gives_up() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("t.db");
        // Every step fails: the leader lock's table is gone.
        db.run_here(|c, _| Ok(c.execute_batch("DROP TABLE _honker_locks")?))
            .unwrap();
        let opts = SchedulerOpts {
            max_failures: 3,
            ..SchedulerOpts::default()
        };
        let mut said = Vec::new();
        let never = AtomicBool::new(false);
        let e = run_scheduler(&db, Caller::this_thread(), &never, "o", &opts, &mut |p| {
            said.push(p.to_string())
        })
        .unwrap_err();
        assert_eq!(e.code(), "sqlite");
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(
            said[0].contains("failure 1 in a row; retrying in 100 ms"),
            "{}",
            said[0]
        );
        assert!(
            said[2].contains("failure 3 in a row; retrying in 400 ms"),
            "{}",
            said[2]
        );
        assert!(said[0].contains("_honker_locks"), "{}", said[0]);
    }

    #[test]
    fn a_schedule_that_cannot_fire_is_reported_and_the_loop_goes_on() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("t.db");
        let spec = |name: &'static str| ScheduleSpec {
            name,
            queue: "q",
            cron: "@every 1s",
            tz: None,
            payload: "1",
            priority: 0,
            expires: None,
        };
        db.run_here(|c, now| {
            scheduler::add(c, &spec("good"), now)?;
            scheduler::add(c, &spec("bad"), now)?;
            // Due now, and unable to fire (a name from an older version).
            c.execute(
                "UPDATE _honker_schedules SET next_fire_at = ?1, name = ?2 WHERE name = 'bad'",
                rusqlite::params![now, "b".repeat(500)],
            )?;
            Ok(c.execute(
                "UPDATE _honker_schedules SET next_fire_at = ?1 WHERE name = 'good'",
                [now],
            )?)
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (said, heard) = std::sync::mpsc::channel();
        let runner = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                run_scheduler(
                    &db,
                    Caller::this_thread(),
                    &stop,
                    "o",
                    &SchedulerOpts::default(),
                    &mut |p| {
                        let _ = said.send(p.to_string());
                    },
                )
            })
        };
        let first = heard.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(
            first.contains("could not fire") && first.contains("bbbb"),
            "{first}"
        );
        // The good schedule fired in the same tick.
        let deadline = Instant::now() + Duration::from_secs(30);
        while db.run_here(|c, _| queue::stats(c, "q")).unwrap().ready == 0 {
            assert!(Instant::now() < deadline, "the good schedule never fired");
            db.watcher()
                .wait(db.watcher().generation(), Duration::from_millis(100))
                .unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        db.watcher().interrupt();
        runner.join().unwrap().unwrap();
    }

    #[test]
    fn a_cursor_saves_what_was_moved_past_however_it_is_left() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("t.db");
        let offs: Vec<i64> = (0..300)
            .map(|i| {
                db.run_here(|c, now| stream::publish(c, "s", None, &i.to_string(), now))
                    .unwrap()
            })
            .collect();
        let saved =
            |db: &Db, who: &str| db.run_here(|c, _| stream::get_offset(c, "s", who)).unwrap();
        let never = AtomicBool::new(false);

        // Periodically while iterating: every SAVE_EVERY_EVENTS events.
        let mut cur = StreamCursor::open(&db, Caller::this_thread(), "s", "busy").unwrap();
        cur.next(&db, Caller::this_thread(), None, &never)
            .unwrap()
            .unwrap();
        let mut handed = 1;
        while let Some(ev) = cur.next_buffered() {
            assert_eq!(ev.offset, offs[handed]);
            handed += 1;
        }
        assert_eq!(
            handed as u32,
            SAVE_EVERY_EVENTS + 1,
            "a save falls due after {SAVE_EVERY_EVENTS} events moved past"
        );
        assert_eq!(saved(&db, "busy"), 0, "next_buffered never writes");
        cur.next(&db, Caller::this_thread(), None, &never)
            .unwrap()
            .unwrap();
        assert_eq!(saved(&db, "busy"), offs[handed - 1]);

        // Dropped mid-loop (a break, an exception): all but the event in hand.
        let mut cur = StreamCursor::open(&db, Caller::this_thread(), "s", "breaks").unwrap();
        for _ in 0..5 {
            cur.next(&db, Caller::this_thread(), None, &never)
                .unwrap()
                .unwrap();
        }
        drop(cur);
        assert_eq!(
            saved(&db, "breaks"),
            offs[3],
            "the fifth, in hand, comes again"
        );
        let mut again = StreamCursor::open(&db, Caller::this_thread(), "s", "breaks").unwrap();
        assert_eq!(
            again
                .next(&db, Caller::this_thread(), None, &never)
                .unwrap()
                .unwrap()
                .offset,
            offs[4]
        );

        // The database closed under it.
        let mut cur = StreamCursor::open(&db, Caller::this_thread(), "s", "closed").unwrap();
        for _ in 0..3 {
            cur.next(&db, Caller::this_thread(), None, &never)
                .unwrap()
                .unwrap();
        }
        let _tx = db.begin_here().unwrap(); // even with a transaction open
        db.close().unwrap();
        drop((cur, again));
        let db = dir.open("t.db");
        assert_eq!(saved(&db, "closed"), offs[1]);
    }

    #[test]
    fn next_buffered_hands_out_fetched_events_like_next() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("t.db");
        let offs: Vec<i64> = (0..3)
            .map(|i| {
                db.run_here(|c, now| stream::publish(c, "s", None, &i.to_string(), now))
                    .unwrap()
            })
            .collect();
        let mut cur = StreamCursor::open(&db, Caller::this_thread(), "s", "c").unwrap();
        assert!(cur.next_buffered().is_none(), "nothing fetched yet");
        let never = AtomicBool::new(false);
        let first = cur
            .next(&db, Caller::this_thread(), None, &never)
            .unwrap()
            .unwrap();
        assert_eq!(first.offset, offs[0]);
        // The rest came in the same fetch: handed out without the database.
        assert_eq!(cur.next_buffered().unwrap().offset, offs[1]);
        cur.flush(&db, Caller::this_thread()).unwrap();
        let saved = |db: &Db| db.run_here(|c, _| stream::get_offset(c, "s", "c")).unwrap();
        assert_eq!(
            saved(&db),
            offs[0],
            "moved past the first; the second is in hand"
        );
        assert_eq!(cur.next_buffered().unwrap().offset, offs[2]);
        assert!(cur.next_buffered().is_none());
        cur.commit(&db, Caller::this_thread()).unwrap();
        assert_eq!(saved(&db), offs[2]);
    }

    #[test]
    fn a_polled_stop_ends_every_kind_of_wait_without_a_wake_up() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("t.db");
        let long = Some(Duration::from_secs(60)); // a safety net, never reached
        let checks = |t: &Tripwire| t.checks.load(Ordering::SeqCst);

        let t = Tripwire::default();
        let got = claim_next(
            &db,
            Caller::this_thread(),
            "q",
            "w",
            &QueueOpts::default(),
            long,
            &t,
        )
        .unwrap();
        assert!(got.is_none());
        assert_eq!(checks(&t), 3, "ended by the tripwire, not the timeout");

        let t = Tripwire::default();
        let mut cursor = StreamCursor::open(&db, Caller::this_thread(), "s", "c").unwrap();
        assert!(cursor
            .next(&db, Caller::this_thread(), long, &t)
            .unwrap()
            .is_none());
        assert_eq!(checks(&t), 3);

        let t = Tripwire::default();
        let listener = db.listen("c").unwrap();
        assert!(listener
            .recv_until(&db.watcher(), long, &t)
            .unwrap()
            .is_none());
        assert_eq!(checks(&t), 3);

        let t = Arc::new(Tripwire::default());
        let (done, ended) = std::sync::mpsc::channel();
        let runner = {
            let (db, t) = (db.clone(), t.clone());
            std::thread::spawn(move || {
                done.send(run_scheduler(
                    &db,
                    Caller::this_thread(),
                    &t,
                    "o",
                    &SchedulerOpts::default(),
                    &mut |_| {},
                ))
                .unwrap()
            })
        };
        let result = ended
            .recv_timeout(Duration::from_secs(60))
            .expect("the scheduler ended");
        assert!(result.is_ok());
        assert_eq!(checks(&t), 3);
        runner.join().unwrap();
        // A plain flag is never polled.
        assert_eq!(AtomicBool::new(false).poll_every(), None);
    }
}
