use crate::{Database, Job, Queue, Result, Stream};
use honker_core::model::Notification;
use honker_core::wake::wait::{self, StreamCursor};
use honker_core::wake::watcher::ListenerQueue;
use honker_core::Event;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Stops a blocked [`ClaimWaker`] or [`Subscription`] from another thread:
/// the blocked call returns `Ok(None)` (the iterator ends) promptly.
#[derive(Clone, Debug)]
pub struct StopHandle {
    pub(crate) flag: Arc<AtomicBool>,
    db: Database,
}

impl StopHandle {
    fn new(db: &Database) -> StopHandle {
        StopHandle {
            flag: Arc::new(AtomicBool::new(false)),
            db: db.clone(),
        }
    }

    /// Requests the stop and wakes the waiter.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        honker_core::wake::watcher(&self.db.core).interrupt();
    }

    /// Has a stop been requested?
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Blocks until the next job of a queue can be claimed: woken by commits in
/// this and other processes (no polling), by a delayed job's `run_at`, or
/// by an expired lease. Get one with [`Queue::claim_waker`]; clones share
/// the stop flag.
#[derive(Clone, Debug)]
pub struct ClaimWaker {
    pub(crate) queue: Queue,
    pub(crate) stop: StopHandle,
}

impl ClaimWaker {
    pub(crate) fn new(queue: Queue) -> ClaimWaker {
        let stop = StopHandle::new(queue.database());
        ClaimWaker { queue, stop }
    }

    /// Claims the next job for `worker`, waiting as long as it takes.
    /// `Ok(None)` once [`ClaimWaker::stop`] was called.
    pub fn next(&self, worker: &str) -> Result<Option<Job>> {
        self.claim(worker, None)
    }

    /// [`ClaimWaker::next`], giving up with `Ok(None)` after `timeout`.
    pub fn next_timeout(&self, worker: &str, timeout: Duration) -> Result<Option<Job>> {
        self.claim(worker, Some(timeout))
    }

    fn claim(&self, worker: &str, timeout: Option<Duration>) -> Result<Option<Job>> {
        let db = self.queue.database();
        let record = wait::claim_next(
            &db.core,
            crate::caller(),
            self.queue.name(),
            worker,
            self.queue.opts(),
            timeout,
            &self.stop.flag,
        )?;
        Ok(record.map(|record| Job::new(record, db.clone())))
    }

    /// Makes blocked and later `next` calls return `Ok(None)`.
    pub fn stop(&self) {
        self.stop.stop()
    }

    /// A handle to stop this waker from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }
}

/// A consumer following a stream: replays from its saved offset, then
/// blocks for new events. Iterate it; each item is an [`Event`].
///
/// At-least-once: an event's offset is saved only after you move past it
/// (ask for the next event, or call [`Subscription::commit`]); saves are
/// batched (when the buffer runs dry, before blocking, on commit, at least
/// every 100 events and every second, on drop, and when the database is
/// closed). Leaving the loop (a `break`, a `?`) redelivers only the event
/// you had in hand; after a crash, events you had not moved past are
/// delivered again.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) db: Database,
    /// Shared with an `_async` wait's worker thread (never contended).
    pub(crate) cursor: Arc<Mutex<StreamCursor>>,
    pub(crate) stop: StopHandle,
    /// Counts the calls that move the cursor (see `aio`'s `Follow`).
    pub(crate) epoch: Arc<std::sync::atomic::AtomicU64>,
    #[cfg(feature = "tokio")]
    pub(crate) pending: Option<crate::aio::Pending<Event>>,
}

/// The cursor, whose lock a panicked holder never leaves half-changed.
pub(crate) fn cursor(c: &Mutex<StreamCursor>) -> MutexGuard<'_, StreamCursor> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

impl Subscription {
    pub(crate) fn open(stream: &Stream, consumer: &str) -> Result<Subscription> {
        let db = stream.database().clone();
        honker_core::validate::name("consumer", consumer)?;
        let cursor = StreamCursor::open(&db.core, crate::caller(), stream.name(), consumer)?;
        let stop = StopHandle::new(&db);
        Ok(Subscription {
            db,
            cursor: Arc::new(Mutex::new(cursor)),
            stop,
            epoch: Default::default(),
            #[cfg(feature = "tokio")]
            pending: None,
        })
    }

    /// The next event, waiting at most `timeout`: `Ok(None)` if none came
    /// (or the subscription was stopped).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        self.take_turn();
        cursor(&self.cursor).next(
            &self.db.core,
            crate::caller(),
            Some(timeout),
            &self.stop.flag,
        )
    }

    /// Marks the event last returned as handled and saves the offset now.
    pub fn commit(&mut self) -> Result<()> {
        self.take_turn();
        cursor(&self.cursor).commit(&self.db.core, crate::caller())
    }

    /// Starts a call that moves the cursor; returns its number.
    pub(crate) fn take_turn(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A handle that ends the iteration from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }
}

impl Iterator for Subscription {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        self.take_turn();
        cursor(&self.cursor)
            .next(&self.db.core, crate::caller(), None, &self.stop.flag)
            .transpose()
    }
}

/// Receives the notifications of one channel committed after it was
/// created, in order, each once. Get one with [`Database::listen`].
#[derive(Debug)]
pub struct Listener {
    pub(crate) db: Database,
    pub(crate) queue: Arc<ListenerQueue>,
    #[cfg(feature = "tokio")]
    pub(crate) pending: Option<crate::aio::Pending<Notification>>,
}

/// Closes a [`Listener`] from another thread.
#[derive(Clone, Debug)]
pub struct ListenerCloser {
    db: Database,
    queue: Arc<ListenerQueue>,
}

impl ListenerCloser {
    /// Blocked and later receives return `None`.
    pub fn close(&self) {
        close(&self.db, &self.queue)
    }
}

/// Closes `queue` and wakes its waiter (an async one waits on the watcher).
fn close(db: &Database, queue: &ListenerQueue) {
    queue.close();
    honker_core::wake::watcher(&db.core).interrupt();
}

impl Listener {
    pub(crate) fn new(db: &Database, channel: &str) -> Result<Listener> {
        Ok(Listener {
            db: db.clone(),
            queue: honker_core::wake::listen(&db.core, channel)?,
            #[cfg(feature = "tokio")]
            pending: None,
        })
    }

    /// The channel listened to.
    pub fn channel(&self) -> &str {
        self.queue.channel()
    }

    /// The next notification, waiting as long as it takes. `None` once the
    /// listener (or its database) is closed.
    pub fn recv(&mut self) -> Option<Result<Notification>> {
        self.queue
            .recv(&honker_core::wake::watcher(&self.db.core), None)
            .transpose()
    }

    /// The next notification, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Notification>> {
        self.queue
            .recv(&honker_core::wake::watcher(&self.db.core), Some(timeout))
    }

    /// The next notification if one is already here.
    pub fn try_recv(&mut self) -> Result<Option<Notification>> {
        self.queue.recv(
            &honker_core::wake::watcher(&self.db.core),
            Some(Duration::ZERO),
        )
    }

    /// Stops listening: blocked and later receives return `None`.
    pub fn close(&self) {
        close(&self.db, &self.queue)
    }

    /// A handle that closes this listener from another thread.
    pub fn closer(&self) -> ListenerCloser {
        ListenerCloser {
            db: self.db.clone(),
            queue: self.queue.clone(),
        }
    }
}

impl Iterator for Listener {
    type Item = Result<Notification>;

    fn next(&mut self) -> Option<Result<Notification>> {
        self.recv()
    }
}
