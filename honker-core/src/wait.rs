//! The blocking operations, written once for every binding: claim the next
//! job, follow a stream, run the scheduler. Each waits on the file's
//! [`Watcher`](crate::watcher::Watcher) (no polling) and checks with a
//! cheap read before it takes the write lock.

use crate::db::Db;
use crate::error::{Error, Result};
use crate::queue::{self, JobRecord, QueueOpts};
use crate::stream::{self, Event};
use crate::watcher::Watcher;
use crate::{lock, scheduler, validate};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single wait; waits are re-armed after it.
const MAX_WAIT: Duration = Duration::from_secs(3600);

fn ms(d: i64) -> Duration {
    Duration::from_millis(d.max(0) as u64)
}

/// What a blocking call looks at to end early. An [`AtomicBool`] is the
/// usual one: set it, then call `Watcher::interrupt` to wake the waiter at
/// once.
pub trait Stop {
    /// Has the wait been told to end? Looked at whenever the waiter wakes.
    fn is_set(&self) -> bool;

    /// How often to ask [`Stop::check`] while nothing wakes the waiter.
    /// `None` (the default): never. For a host that delivers interruptions
    /// nobody can wake a waiter for, such as a Ctrl-C that Python can only
    /// act on in its main thread.
    fn poll_every(&self) -> Option<Duration> {
        None
    }

    /// Asked every [`Stop::poll_every`] while idle: true ends the wait (and
    /// [`Stop::is_set`] must say so from then on).
    fn check(&self) -> bool {
        false
    }
}

impl Stop for AtomicBool {
    fn is_set(&self) -> bool {
        self.load(Ordering::SeqCst)
    }
}

impl<S: Stop + ?Sized> Stop for std::sync::Arc<S> {
    fn is_set(&self) -> bool {
        (**self).is_set()
    }

    fn poll_every(&self) -> Option<Duration> {
        (**self).poll_every()
    }

    fn check(&self) -> bool {
        (**self).check()
    }
}

/// Waits for a commit after generation `seen`, at most `wait`, asking
/// `stop` every [`Stop::poll_every`] on the way.
pub fn wait_or_stop(watcher: &Watcher, seen: u64, wait: Duration, stop: &impl Stop) -> Result<()> {
    let Some(every) = stop.poll_every() else {
        watcher.wait(seen, wait)?;
        return Ok(());
    };
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.is_set() {
            return Ok(());
        }
        if watcher.wait(seen, left.min(every))? != seen || stop.check() {
            return Ok(());
        }
    }
}

/// Claims the next job of `queue` for `worker`, blocking until one is
/// enqueued, a delayed job's `run_at` arrives, or a lease expires. Returns
/// `Ok(None)` when `timeout` passes or `stop` is set (call
/// `Watcher::interrupt` after setting it to wake the waiter at once).
pub fn claim_next(
    db: &Db,
    queue_name: &str,
    worker: &str,
    opts: &QueueOpts,
    timeout: Option<Duration>,
    stop: &impl Stop,
) -> Result<Option<JobRecord>> {
    validate::name("queue", queue_name)?;
    validate::name("worker", worker)?;
    let watcher = db.watcher();
    watcher.ensure_started()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        let seen = watcher.generation();
        // A read first: most wake-ups are for someone else.
        let (due, next) = db.run(|c, now| {
            Ok((
                queue::has_due(c, queue_name, now)?,
                queue::next_deadline(c, queue_name)?.map(|t| t - now),
            ))
        })?;
        if due {
            let mut jobs = db.run(|c, now| {
                queue::claim(c, queue_name, worker, 1, opts.visibility_timeout, now)
            })?;
            if let Some(job) = jobs.pop() {
                return Ok(Some(job));
            }
            continue; // another worker was quicker
        }
        let mut wait = next.map(ms).unwrap_or(MAX_WAIT).min(MAX_WAIT);
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            wait = wait.min(left);
        }
        wait_or_stop(watcher, seen, wait, stop)?;
    }
}

/// A consumer's position in a stream, with at-least-once delivery: an
/// event's offset is saved only once the consumer has moved past it (asked
/// for the next event, or called [`StreamCursor::commit`]), and it is saved
/// lazily (when the buffer runs dry, before waiting, and on commit), so a
/// busy stream costs one write per batch, not per event.
#[derive(Debug)]
pub struct StreamCursor {
    stream: String,
    consumer: String,
    buf: VecDeque<Event>,
    fetched_to: i64,
    handed: Option<i64>,
    done: Option<i64>,
    batch: usize,
}

impl StreamCursor {
    /// Starts from `consumer`'s saved offset.
    pub fn open(db: &Db, stream_name: &str, consumer: &str) -> Result<StreamCursor> {
        let saved = db.run(|c, _| stream::get_offset(c, stream_name, consumer))?;
        Ok(StreamCursor {
            stream: stream_name.to_string(),
            consumer: consumer.to_string(),
            buf: VecDeque::new(),
            fetched_to: saved,
            handed: None,
            done: None,
            batch: 256,
        })
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Saves the offset of everything the consumer has moved past.
    pub fn flush(&mut self, db: &Db) -> Result<()> {
        if let Some(off) = self.done {
            db.run(|c, now| stream::save_offset(c, &self.stream, &self.consumer, off, now))?;
            self.done = None;
        }
        Ok(())
    }

    /// Marks the event last handed out as handled and saves the offset now.
    pub fn commit(&mut self, db: &Db) -> Result<()> {
        if let Some(off) = self.handed.take() {
            self.done = Some(off);
        }
        self.flush(db)
    }

    /// The next event if one is already fetched, without touching the
    /// database or waiting (a binding answers from here before it hands a
    /// [`StreamCursor::next`] to another thread). Marks it handed out, as
    /// `next` does.
    pub fn next_buffered(&mut self) -> Option<Event> {
        let ev = self.buf.pop_front()?;
        if let Some(off) = self.handed.replace(ev.offset) {
            self.done = Some(off);
        }
        Some(ev)
    }

    /// The next event, blocking until one is published; `Ok(None)` when
    /// `timeout` passes or `stop` is set.
    pub fn next(
        &mut self,
        db: &Db,
        timeout: Option<Duration>,
        stop: &impl Stop,
    ) -> Result<Option<Event>> {
        if let Some(off) = self.handed.take() {
            self.done = Some(off);
        }
        let watcher = db.watcher();
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.buf.pop_front() {
                self.handed = Some(ev.offset);
                return Ok(Some(ev));
            }
            self.flush(db)?;
            let seen = watcher.generation();
            let events =
                db.run(|c, _| stream::read_since(c, &self.stream, self.fetched_to, self.batch))?;
            if let Some(last) = events.last() {
                self.fetched_to = last.offset;
                self.buf.extend(events);
                continue;
            }
            if stop.is_set() {
                return Ok(None);
            }
            watcher.ensure_started()?;
            let mut wait = MAX_WAIT;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                wait = left;
            }
            wait_or_stop(watcher, seen, wait, stop)?;
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
}

impl Default for SchedulerOpts {
    fn default() -> Self {
        SchedulerOpts {
            lock_ttl: Duration::from_secs(10),
            lock_name: "honker:scheduler".into(),
        }
    }
}

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
/// when the lock lapses. Transient errors are retried; `Error::Closed` ends
/// the loop with that error.
pub fn run_scheduler(db: &Db, stop: &impl Stop, owner: &str, opts: &SchedulerOpts) -> Result<()> {
    validate::name("owner", owner)?;
    validate::name("lock_name", &opts.lock_name)?;
    let ttl_ms = validate::positive_ms("lock_ttl", crate::clock::duration_ms(opts.lock_ttl))?;
    let watcher = db.watcher();
    watcher.ensure_started()?;
    let stop = &Polled(stop);
    let renew_every = opts.lock_ttl / 4;
    let mut token: Option<i64> = None;
    let mut renewed = Instant::now();
    let result = loop {
        if stop.is_set() {
            break Ok(());
        }
        let seen = watcher.generation();
        let step: Result<Duration> = (|| {
            let t = match token {
                Some(t) if renewed.elapsed() < renew_every => t,
                Some(t) => {
                    if !db.run(|c, now| lock::renew(c, &opts.lock_name, t, ttl_ms, now))? {
                        token = None;
                        return Ok(Duration::ZERO);
                    }
                    renewed = Instant::now();
                    t
                }
                None => match db
                    .run(|c, now| lock::try_acquire(c, &opts.lock_name, owner, ttl_ms, now))?
                {
                    Some(t) => {
                        token = Some(t);
                        renewed = Instant::now();
                        t
                    }
                    None => {
                        // Standby: come back when the leader's lock would lapse.
                        let until = db.run(|c, now| {
                            Ok(lock::holder(c, &opts.lock_name, now)?
                                .map(|h| h.expires_at_ms - now))
                        })?;
                        return Ok(until.map(|d| ms(d + 1)).unwrap_or(Duration::ZERO));
                    }
                },
            };
            let soonest = db.run(|c, now| Ok(scheduler::soonest(c)?.map(|s| s - now)))?;
            if soonest.is_some_and(|d| d <= 0) {
                if db
                    .run(|c, now| scheduler::tick_fenced(c, &opts.lock_name, t, now))?
                    .is_none()
                {
                    token = None; // fenced off: someone else leads now
                }
                return Ok(Duration::ZERO);
            }
            let next = soonest.map(ms).unwrap_or(MAX_WAIT);
            Ok(next.min(renew_every.saturating_sub(renewed.elapsed())))
        })();
        let wait = match step {
            Ok(d) => d,
            Err(Error::Closed) => break Err(Error::Closed),
            Err(e @ Error::Watcher { .. }) => break Err(e),
            Err(_) => Duration::from_millis(100), // transient: retry
        };
        // Sleep until the next boundary, a commit (schedules may have
        // changed), or `stop`.
        wait_or_stop(watcher, seen, wait, stop)?;
    };
    if let Some(t) = token {
        let _ = db.run(|c, _| lock::release(c, &opts.lock_name, t));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenOptions;
    use std::sync::atomic::AtomicUsize;
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
    fn next_buffered_hands_out_fetched_events_like_next() {
        let dir = std::env::temp_dir().join(format!("honker-wait-buf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(dir.join("t.db"), OpenOptions::default()).unwrap();
        let offs: Vec<i64> = (0..3)
            .map(|i| {
                db.run(|c, now| stream::publish(c, "s", None, &i.to_string(), now))
                    .unwrap()
            })
            .collect();
        let mut cur = StreamCursor::open(&db, "s", "c").unwrap();
        assert!(cur.next_buffered().is_none(), "nothing fetched yet");
        let never = AtomicBool::new(false);
        let first = cur.next(&db, None, &never).unwrap().unwrap();
        assert_eq!(first.offset, offs[0]);
        // The rest came in the same fetch: handed out without the database.
        assert_eq!(cur.next_buffered().unwrap().offset, offs[1]);
        cur.flush(&db).unwrap();
        let saved = |db: &Db| db.run(|c, _| stream::get_offset(c, "s", "c")).unwrap();
        assert_eq!(
            saved(&db),
            offs[0],
            "moved past the first; the second is in hand"
        );
        assert_eq!(cur.next_buffered().unwrap().offset, offs[2]);
        assert!(cur.next_buffered().is_none());
        cur.commit(&db).unwrap();
        assert_eq!(saved(&db), offs[2]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_polled_stop_ends_every_kind_of_wait_without_a_wake_up() {
        let dir = std::env::temp_dir().join(format!("honker-wait-stop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(dir.join("t.db"), OpenOptions::default()).unwrap();
        let long = Some(Duration::from_secs(60)); // a safety net, never reached
        let checks = |t: &Tripwire| t.checks.load(Ordering::SeqCst);

        let t = Tripwire::default();
        let got = claim_next(&db, "q", "w", &QueueOpts::default(), long, &t).unwrap();
        assert!(got.is_none());
        assert_eq!(checks(&t), 3, "ended by the tripwire, not the timeout");

        let t = Tripwire::default();
        let mut cursor = StreamCursor::open(&db, "s", "c").unwrap();
        assert!(cursor.next(&db, long, &t).unwrap().is_none());
        assert_eq!(checks(&t), 3);

        let t = Tripwire::default();
        let listener = db.listen("c").unwrap();
        assert!(listener
            .recv_until(db.watcher(), long, &t)
            .unwrap()
            .is_none());
        assert_eq!(checks(&t), 3);

        let t = Arc::new(Tripwire::default());
        let (done, ended) = std::sync::mpsc::channel();
        let runner = {
            let (db, t) = (db.clone(), t.clone());
            std::thread::spawn(move || {
                done.send(run_scheduler(&db, &t, "o", &SchedulerOpts::default()))
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
