//! The wake path: one watcher per database file per process, shared by
//! every handle on that file, that tells waiters "something was committed".
//!
//! How a commit is noticed:
//!
//! - Commits made through a handle in this process wake waiters directly
//!   ([`Watcher::local_commit`]), with no file-system round trip.
//! - Commits from other processes: the directory is watched (inotify on
//!   Linux, through the `notify` crate) and events are filtered to the
//!   database's own files. An event is verified against SQLite's own change
//!   counter (`PRAGMA data_version` on the watcher's connection). The
//!   `-wal` write that raises the event happens *before* the commit becomes
//!   visible (the wal-index in `-shm` is updated through mmap, which raises
//!   no event), so when the counter has not moved yet it is re-read after
//!   50 µs, 100 µs, … up to about 6 ms in all.
//! - A slow safety-net poll ([`SAFETY_POLL`]) catches anything else.
//! - The watcher's thread starts when a handle opens the file (its safety
//!   poll also truncates the WAL of an idle file, see [`crate::store::sqlite::wal`]); the
//!   file-system watch starts when the first waiter arrives: the kernel
//!   raises an event on every write into a watched directory, which cost a
//!   process that only writes about a tenth of its enqueue rate.
//! - The watcher only works while someone in this process waits. Every
//!   write to the `-wal` raises an event, and waking a reader thread on
//!   each one costs the writing process (any process writing to the file)
//!   about a third more CPU per commit. So when an event arrives and nobody
//!   here waits, the file-system callback marks the watcher dirty and stops
//!   reading events until a waiter arrives (unread events stay queued in the
//!   kernel, where identical ones merge and wake nobody). A waiter that finds
//!   the watcher dirty makes it verify and re-check as after an event, so a
//!   commit whose event arrived before the waiter is still seen.
//!
//! The watcher reads through its own SQLite connection and never opens the
//! database or `-shm` with file descriptors of its own (closing such a
//! descriptor would drop the process's POSIX locks). If it dies, every
//! waiter gets [`Error::Watcher`] instead of hanging.
//!
//! Notifications are read once per commit by the watcher and handed to the
//! in-process listeners of their channel, in id order, each exactly once.

use super::stop::Stop;
use crate::error::{Error, Result};
use crate::model::Notification;
use crate::store::sqlite::feed::SqliteFeed;
use crate::store::{Feed, Poke as FeedPoke, Source};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the watcher checks for commits when no event arrived.
pub const SAFETY_POLL: Duration = Duration::from_millis(500);
const RECHECK_FIRST: Duration = Duration::from_micros(10);
const RECHECK_LAST: Duration = Duration::from_micros(5120);
/// The watcher gives up (and fails every waiter) after its connection has
/// failed continuously for this long.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A notification queue of one listener.
#[derive(Debug)]
pub struct ListenerQueue {
    channel: String,
    start: i64,
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Notification>,
    closed: bool,
}

impl ListenerQueue {
    /// The channel listened to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    fn push(&self, n: Notification) {
        lock(&self.state).items.push_back(n);
        self.ready.notify_all();
    }

    /// The next notification if one has arrived, without waiting.
    pub fn try_recv(&self) -> Option<Notification> {
        lock(&self.state).items.pop_front()
    }

    /// Stops the listener: blocked and later receives return `Ok(None)`.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }

    /// Has [`ListenerQueue::close`] been called?
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Takes the next notification, waiting up to `timeout` (forever when
    /// `None`). `Ok(None)` on timeout or when closed.
    pub fn recv(
        &self,
        watcher: &Watcher,
        timeout: Option<Duration>,
    ) -> Result<Option<Notification>> {
        self.recv_until(watcher, timeout, &AtomicBool::new(false))
    }

    /// [`ListenerQueue::recv`] that also ends (`Ok(None)`) when `stop`
    /// says so.
    pub fn recv_until(
        &self,
        watcher: &Watcher,
        timeout: Option<Duration>,
        stop: &impl Stop,
    ) -> Result<Option<Notification>> {
        let deadline = timeout.and_then(crate::validate::deadline);
        let mut st = lock(&self.state);
        loop {
            if let Some(n) = st.items.pop_front() {
                return Ok(Some(n));
            }
            if st.closed || stop.is_set() {
                return Ok(None);
            }
            // A dying watcher takes this lock before it notifies, so the
            // check and the wait below cannot miss it: no periodic wake-ups.
            watcher.check_alive()?;
            let _waiting = Waiting::new(&watcher.shared);
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            let slice = stop.poll_every();
            st = match (left, slice) {
                (None, None) => self.ready.wait(st).unwrap_or_else(|p| p.into_inner()),
                (left, slice) => {
                    let wait = left
                        .unwrap_or(Duration::MAX)
                        .min(slice.unwrap_or(Duration::MAX));
                    let (st, timed_out) = self
                        .ready
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner());
                    if timed_out.timed_out()
                        && slice.is_some()
                        && st.items.is_empty()
                        && stop.check()
                    {
                        return Ok(None);
                    }
                    st
                }
            };
        }
    }
}

struct Reader {
    conn: Option<Box<dyn Source>>,
    cursor: i64,
    listeners: HashMap<String, Vec<Weak<ListenerQueue>>>,
}

#[derive(Default)]
struct Pokes {
    fs_event: bool,
    local: bool,
    stop: bool,
    /// An event (or a local commit with listeners) arrived while nobody
    /// waited; the next waiter turns it into a poke.
    dirty: bool,
    /// Counts waiters' arrivals; each releases a parked callback.
    arrivals: u64,
}

struct Shared {
    /// Some listener in this process may want notifications read.
    has_listeners: AtomicBool,
    /// Truncate the WAL when the file is idle (see [`crate::store::sqlite::wal`]).
    truncate_idle_wal: AtomicBool,
    /// Threads in this process blocked waiting for a commit or notification.
    waiting: AtomicUsize,
    /// The file-system callback waits here while nobody waits (see the
    /// module documentation); guarded by `pokes`.
    gate: Condvar,
    pid: u32,
    db_path: PathBuf,
    feed: Arc<dyn Feed>,
    generation: Mutex<(u64, Option<String>)>,
    changed: Condvar,
    /// The tasks of [`Changed`] futures to wake with `changed`; registered
    /// under the `generation` lock, taken after it.
    wakers: Mutex<Wakers>,
    pokes: Mutex<Pokes>,
    poked: Condvar,
    reader: Mutex<Reader>,
}

/// Tasks waiting in [`Changed`] futures, by the future's id.
#[derive(Default)]
struct Wakers {
    next_id: u64,
    list: Vec<(u64, Waker)>,
}

fn wake_all(shared: &Shared) {
    let woken = std::mem::take(&mut lock(&shared.wakers).list);
    for (_, w) in woken {
        w.wake();
    }
}

struct Running {
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The watcher of one database file in this process. Get it with
/// [`Watcher::for_path`]; its thread starts when the file is opened or
/// first waited on, its file-system watch when first waited on.
pub struct Watcher {
    shared: Arc<Shared>,
    running: OnceLock<std::result::Result<Mutex<Running>, String>>,
    /// The feed's watch (for a SQLite file, the file-system watch), set up
    /// when the first waiter arrives: the kernel raises an event on every
    /// write to a watched directory, which a process nobody waits in need
    /// not pay for.
    fs: OnceLock<Option<Box<dyn Send + Sync>>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("path", &self.shared.db_path)
            .finish()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Watcher>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Weak<Watcher>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

impl Watcher {
    /// The watcher shared by every handle on the SQLite file at `path` in
    /// this process.
    pub fn for_path(path: &Path) -> Arc<Watcher> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let feed = Arc::new(SqliteFeed::new(&key));
        Watcher::for_feed(key, feed)
    }

    /// The watcher shared by every handle on the database named `key` in
    /// this process, reading `feed` (another engine's).
    pub fn for_feed(key: PathBuf, feed: Arc<dyn Feed>) -> Arc<Watcher> {
        let mut reg = lock(registry());
        // A child of fork() inherits the registry, and its parent's watchers
        // with it, whose threads did not survive the fork: it gets its own.
        if let Some(w) = reg
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|w| w.shared.pid == std::process::id())
        {
            return w;
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let w = Arc::new(Watcher {
            shared: Arc::new(Shared {
                has_listeners: AtomicBool::new(false),
                truncate_idle_wal: AtomicBool::new(false),
                waiting: AtomicUsize::new(0),
                gate: Condvar::new(),
                pid: std::process::id(),
                db_path: key.clone(),
                feed,
                generation: Mutex::new((0, None)),
                changed: Condvar::new(),
                wakers: Mutex::new(Wakers::default()),
                pokes: Mutex::new(Pokes::default()),
                poked: Condvar::new(),
                reader: Mutex::new(Reader {
                    conn: None,
                    cursor: 0,
                    listeners: HashMap::new(),
                }),
            }),
            running: OnceLock::new(),
            fs: OnceLock::new(),
        });
        reg.insert(key, Arc::downgrade(&w));
        w
    }

    /// The path watched (canonical when it could be resolved).
    pub fn path(&self) -> &Path {
        &self.shared.db_path
    }

    /// Starts the watcher thread and the file-system watch, once (waiters
    /// call this before they read the generation they will wait on).
    pub fn ensure_started(&self) -> Result<()> {
        self.start_thread()?;
        self.fs.get_or_init(|| {
            self.shared
                .feed
                .watch(Arc::new(Poker(Arc::downgrade(&self.shared))))
        });
        self.check_alive()
    }

    /// Starts the watcher thread (its connection and safety poll), once.
    fn start_thread(&self) -> Result<()> {
        match self.running.get_or_init(|| self.start().map(Mutex::new)) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Watcher { reason: e.clone() }),
        }
    }

    fn start(&self) -> std::result::Result<Running, String> {
        let shared = &self.shared;
        {
            let mut r = lock(&shared.reader);
            let mut conn = shared.feed.open().map_err(|e| e.to_string())?;
            r.cursor = conn.latest_notification().map_err(|e| e.to_string())?;
            r.conn = Some(conn);
        }
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("honker-watcher".into())
            .spawn(move || run(s))
            .map_err(|e| format!("cannot start the watcher thread: {e}"))?;
        Ok(Running {
            thread: Some(thread),
        })
    }

    /// Makes the watcher truncate the WAL to zero bytes once nothing has
    /// been committed to the file for a [`SAFETY_POLL`] period (see
    /// [`crate::store::sqlite::wal`]), and starts its thread (not the file-system watch,
    /// which waits for a waiter). A thread that cannot start is reported to
    /// waiters, not here.
    pub fn truncate_wal_when_idle(&self) {
        self.shared.truncate_idle_wal.store(true, Ordering::Relaxed);
        let _ = self.start_thread();
    }

    /// Fails with [`Error::Watcher`] if the watcher has died, and with
    /// [`Error::Forked`] in a child process (threads do not survive `fork()`,
    /// so nothing there would ever wake a waiter).
    pub fn check_alive(&self) -> Result<()> {
        if std::process::id() != self.shared.pid {
            return Err(Error::Forked {
                opened_in: self.shared.pid,
            });
        }
        match &lock(&self.shared.generation).1 {
            Some(reason) => Err(Error::Watcher {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Has a file event (or a local commit with listeners) arrived that the
    /// watcher has not verified yet? It is verified when somebody waits.
    #[doc(hidden)]
    pub fn is_dirty(&self) -> bool {
        lock(&self.shared.pokes).dirty
    }

    /// A counter that moves on every commit noticed.
    pub fn generation(&self) -> u64 {
        lock(&self.shared.generation).0
    }

    /// Waits until the generation moves past `seen`, `timeout` passes, or
    /// [`Watcher::interrupt`] is called. Returns the current generation.
    pub fn wait(&self, seen: u64, timeout: Duration) -> Result<u64> {
        let deadline = crate::validate::deadline(timeout);
        let _waiting = Waiting::new(&self.shared);
        let mut g = lock(&self.shared.generation);
        if g.0 == seen && g.1.is_none() {
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            g = self
                .shared
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(reason) = &g.1 {
            return Err(Error::Watcher {
                reason: reason.clone(),
            });
        }
        Ok(g.0)
    }

    /// The asynchronous [`Watcher::wait`]: a future that resolves with the
    /// current generation once it moves past `seen` (or with
    /// `Error::Watcher` if the watcher dies). It takes no timeout: a host
    /// races it against its own timer, and dropping it cancels it. While it
    /// lives it counts as a waiter (see the module documentation), so read
    /// `seen`, make the future, then look at the database and await it: a
    /// commit in between is not missed. Runtime-agnostic (it only uses the
    /// task's [`Waker`]).
    pub fn changed(self: &Arc<Self>, seen: u64) -> Changed {
        Changed {
            shared: self.shared.clone(),
            seen,
            waiting: Some(OwnedWaiting::new(self.shared.clone())),
            id: None,
        }
    }

    /// Wakes every waiter (so they can notice a stop request or a closed
    /// database). It moves the generation, so a waiter that read it just
    /// before the request still returns at once instead of missing it.
    pub fn interrupt(&self) {
        bump(&self.shared);
    }

    /// Called after a commit through a handle in this process: wakes local
    /// waiters at once and lets the watcher hand out new notifications.
    pub fn local_commit(&self) {
        bump(&self.shared);
        // The watcher thread only has work for a local commit when there are
        // notifications to hand to listeners; waiters were just woken. A
        // listener that is not waiting now gets them when it next waits.
        if self.running.get().is_some() && self.shared.has_listeners.load(Ordering::Acquire) {
            let mut p = lock(&self.shared.pokes);
            if self.shared.waiting.load(Ordering::SeqCst) > 0 {
                p.local = true;
                self.shared.poked.notify_one();
            } else {
                p.dirty = true;
            }
        }
    }

    /// Registers a listener on `channel` that receives every notification
    /// committed from now on. Starts the watcher if needed.
    pub fn listen(&self, channel: &str) -> Result<Arc<ListenerQueue>> {
        crate::validate::name("channel", channel)?;
        self.ensure_started()?;
        let mut r = lock(&self.shared.reader);
        let conn = r.conn.as_mut().ok_or_else(|| Error::Watcher {
            reason: "the watcher's connection is not open".into(),
        })?;
        // Under the reader lock the dispatcher has not read past `start`,
        // so it will hand this listener everything after it, and nothing
        // before.
        let start = conn.latest_notification()?;
        let q = Arc::new(ListenerQueue {
            channel: channel.to_string(),
            start,
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
        });
        r.listeners
            .entry(channel.to_string())
            .or_default()
            .push(Arc::downgrade(&q));
        self.shared.has_listeners.store(true, Ordering::Release);
        Ok(q)
    }

    /// How many listeners in this process are open on `channel`.
    pub fn listener_count(&self, channel: &str) -> usize {
        lock(&self.shared.reader)
            .listeners
            .get(channel)
            .map(|qs| {
                qs.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|q| !q.is_closed())
                    .count()
            })
            .unwrap_or(0)
    }

    /// Marks the watcher dead, as its thread does when its connection keeps
    /// failing: every waiter and listener then gets `Error::Watcher` with
    /// `reason` instead of waiting forever.
    pub fn kill(&self, reason: &str) {
        die(&self.shared, reason);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.shared.pid != std::process::id() {
            // Inherited through fork(): its threads are not in this process
            // (and its locks may be held by a thread that is gone).
            return;
        }
        lock(&self.shared.pokes).stop = true;
        self.shared.poked.notify_all();
        self.shared.gate.notify_all();
        if let Some(Ok(running)) = self.running.get() {
            if let Some(t) = lock(running).thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Counts a thread as waiting while it lives. Arriving, it makes a dirty
/// watcher verify (with the re-checks that follow an event) and lets the
/// file-system callback read events again.
struct Waiting<'a>(&'a Shared);

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared) -> Waiting<'a> {
        arrive(shared);
        Waiting(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn arrive(shared: &Shared) {
    shared.waiting.fetch_add(1, Ordering::SeqCst);
    let mut p = lock(&shared.pokes);
    if std::mem::take(&mut p.dirty) {
        p.fs_event = true;
        shared.poked.notify_one();
    }
    p.arrivals = p.arrivals.wrapping_add(1);
    shared.gate.notify_all();
}

/// [`Waiting`] for a future, which owns what it holds.
struct OwnedWaiting(Arc<Shared>);

impl OwnedWaiting {
    fn new(shared: Arc<Shared>) -> OwnedWaiting {
        arrive(&shared);
        OwnedWaiting(shared)
    }
}

impl Drop for OwnedWaiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The future of [`Watcher::changed`].
pub struct Changed {
    shared: Arc<Shared>,
    seen: u64,
    waiting: Option<OwnedWaiting>,
    /// Where this future's waker is registered, once it is.
    id: Option<u64>,
}

impl std::fmt::Debug for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed").field("seen", &self.seen).finish()
    }
}

impl Future for Changed {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let this = self.get_mut();
        let g = lock(&this.shared.generation);
        if let Some(reason) = &g.1 {
            return Poll::Ready(Err(Error::Watcher {
                reason: reason.clone(),
            }));
        }
        if g.0 != this.seen {
            this.waiting = None;
            return Poll::Ready(Ok(g.0));
        }
        // Registered under the generation lock: a bump after this point
        // wakes the task; one before it was seen above.
        let mut w = lock(&this.shared.wakers);
        let me = match this.id {
            Some(id) => id,
            None => {
                w.next_id = w.next_id.wrapping_add(1);
                this.id = Some(w.next_id);
                w.next_id
            }
        };
        match w.list.iter_mut().find(|(id, _)| *id == me) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => w.list.push((me, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Some(me) = self.id {
            lock(&self.shared.wakers).list.retain(|(id, _)| *id != me);
        }
    }
}

fn bump(shared: &Shared) {
    let mut g = lock(&shared.generation);
    g.0 += 1;
    // Waiters count themselves before they take this lock, so one that is
    // not counted yet will see the new generation when it gets the lock.
    // Skipping the notify spares every commit a futex system call.
    if shared.waiting.load(Ordering::SeqCst) > 0 {
        drop(g);
        shared.changed.notify_all();
        wake_all(shared);
    }
}

fn die(shared: &Shared, reason: &str) {
    {
        // Move the generation too, so no waiter can sleep through the death.
        let mut g = lock(&shared.generation);
        g.0 += 1;
        g.1 = Some(reason.to_string());
    }
    shared.changed.notify_all();
    wake_all(shared);
    let r = lock(&shared.reader);
    for qs in r.listeners.values() {
        for q in qs.iter().filter_map(Weak::upgrade) {
            let _held = lock(&q.state);
            q.ready.notify_all();
        }
    }
}

/// What the feed pokes: the watcher, while it lives.
struct Poker(Weak<Shared>);

impl FeedPoke for Poker {
    fn poke(&self, park: bool) {
        let Some(s) = self.0.upgrade() else { return };
        // A feed whose pokes follow the commit (PostgreSQL's NOTIFY) wakes
        // the waiters here, without a hop through the watcher's thread,
        // which is needed only to hand notifications to listeners.
        if !s.feed.recheck_after_poke() {
            bump(&s);
            if !s.has_listeners.load(Ordering::Acquire) {
                return;
            }
        }
        // A waiter counts itself before it takes this lock, so either this
        // sees it, or it sees `dirty`.
        let mut p = lock(&s.pokes);
        if s.waiting.load(Ordering::SeqCst) > 0 {
            p.fs_event = true;
            s.poked.notify_one();
            return;
        }
        // Nobody waits: mark it, and (when the feed may be held) stop
        // reading until somebody does.
        p.dirty = true;
        if park {
            let parked_at = p.arrivals;
            while p.arrivals == parked_at && !p.stop {
                p = s.gate.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

fn run(shared: Arc<Shared>) {
    // Default timer slack (50 µs) would stretch the short re-check waits.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
    let mut failing_since: Option<Instant> = None;
    loop {
        let after_event = match pause(&shared, SAFETY_POLL) {
            Poke::Stop => return,
            Poke::Event => true,
            Poke::None => false, // the safety-net poll
        };
        match check(&shared, after_event) {
            Ok(changed) => {
                failing_since = None;
                if !changed && !after_event && shared.truncate_idle_wal.load(Ordering::Relaxed) {
                    if let Some(conn) = &mut lock(&shared.reader).conn {
                        conn.idle();
                    }
                }
            }
            Err(e) => {
                // Reopen the connection next time; give up only if it keeps failing.
                lock(&shared.reader).conn = None;
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    die(
                        &shared,
                        &format!("the watcher's connection kept failing: {e}"),
                    );
                    return;
                }
                // Wake waiters so they re-check rather than miss a commit.
                bump(&shared);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Has anything been committed since the last look? Busy counts as yes.
fn changed(shared: &Shared) -> Result<bool> {
    let mut r = lock(&shared.reader);
    match r.conn.as_mut() {
        None => {
            r.conn = Some(shared.feed.open()?);
            Ok(true)
        }
        Some(conn) => conn.changed(),
    }
}

/// Looks for a commit (re-checking for a while after a file event) and
/// hands it on. Returns whether there was one.
fn check(shared: &Shared, after_event: bool) -> Result<bool> {
    if changed(shared)? {
        return on_change(shared);
    }
    if !after_event || !shared.feed.recheck_after_poke() {
        return Ok(false);
    }
    // The event may precede the commit's visibility (the -wal write raises
    // it; the -shm update that publishes the commit follows within
    // microseconds): re-check after 10 µs, 20 µs, … about 10 ms in all.
    // The watcher thread runs with a 1 µs timer slack (Linux), so these
    // short waits are accurate without spinning on a core the committing
    // process may need. A commit raises several events, so a later one
    // often finds nothing new; the back-off therefore waits for the next
    // event rather than sleeping, and a new event restarts it at once.
    'event: loop {
        let mut d = RECHECK_FIRST;
        while d <= RECHECK_LAST {
            let poked = pause(shared, d);
            if changed(shared)? {
                return on_change(shared);
            }
            match poked {
                Poke::Stop => return Ok(false),
                Poke::Event => continue 'event,
                Poke::None => d *= 2,
            }
        }
        return Ok(false);
    }
}

enum Poke {
    None,
    Event,
    Stop,
}

/// Waits up to `d` for a poke (a new file event or a local commit).
fn pause(shared: &Shared, d: Duration) -> Poke {
    let mut p = lock(&shared.pokes);
    if !(p.fs_event || p.local || p.stop) {
        p = shared
            .poked
            .wait_timeout(p, d)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    if p.stop {
        return Poke::Stop;
    }
    let poked = p.fs_event || p.local;
    p.fs_event = false;
    p.local = false;
    if poked {
        Poke::Event
    } else {
        Poke::None
    }
}

fn on_change(shared: &Shared) -> Result<bool> {
    dispatch(shared)?;
    bump(shared);
    Ok(true)
}

/// Hands notifications committed since the last look to their listeners.
fn dispatch(shared: &Shared) -> Result<()> {
    let mut r = lock(&shared.reader);
    let Reader {
        conn,
        cursor,
        listeners,
        ..
    } = &mut *r;
    let Some(conn) = conn.as_mut() else {
        return Ok(());
    };
    listeners.retain(|_, qs| {
        qs.retain(|q| q.strong_count() > 0);
        !qs.is_empty()
    });
    if listeners.is_empty() {
        shared.has_listeners.store(false, Ordering::Release);
        *cursor = conn.latest_notification()?;
        return Ok(());
    }
    loop {
        let batch = conn.notifications_after(*cursor, 1000)?;
        for n in &batch {
            if let Some(qs) = listeners.get(&n.channel) {
                for q in qs.iter().filter_map(Weak::upgrade) {
                    if n.id > q.start {
                        q.push(n.clone());
                    }
                }
            }
            *cursor = n.id;
        }
        if batch.len() < 1000 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_read_counts_as_a_change_and_the_watcher_carries_on() {
        let dir = std::env::temp_dir().join(format!("honker-watcher-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.db");
        let _ = std::fs::remove_file(&path);
        // A rollback-journal file, where an exclusive lock blocks readers.
        let hog = rusqlite::Connection::open(&path).unwrap();
        hog.execute_batch("CREATE TABLE t (x)").unwrap();
        let w = Watcher::for_path(&path);
        {
            let mut r = lock(&w.shared.reader);
            r.conn = Some(w.shared.feed.open().unwrap());
        }
        assert!(!changed(&w.shared).unwrap());
        hog.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
            .unwrap();
        // SQLITE_BUSY: waiters are woken to re-check rather than miss a commit.
        assert!(changed(&w.shared).unwrap());
        hog.execute_batch("COMMIT").unwrap();
        assert!(
            changed(&w.shared).unwrap(),
            "the commit is seen once the lock is gone"
        );
        assert!(!changed(&w.shared).unwrap());
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct Flag(AtomicBool);
    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn changed_resolves_on_a_commit_and_a_dropped_one_leaves_no_waker_behind() {
        let dir =
            std::env::temp_dir().join(format!("honker-watcher-changed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = Watcher::for_path(&dir.join("changed.db"));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let seen = w.generation();
        // Already moved: ready at once.
        let mut moved = w.changed(seen.wrapping_sub(1));
        assert!(matches!(
            Pin::new(&mut moved).poll(&mut cx),
            Poll::Ready(Ok(_))
        ));
        // Not moved: pending, counted as a waiter, its task registered.
        let mut fut = w.changed(seen);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert!(
            Pin::new(&mut fut).poll(&mut cx).is_pending(),
            "polled twice, registered once"
        );
        assert_eq!(lock(&w.shared.wakers).list.len(), 1);
        assert_eq!(w.shared.waiting.load(Ordering::SeqCst), 1);
        w.local_commit();
        assert!(flag.0.load(Ordering::SeqCst), "the commit woke the task");
        assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(g)) if g > seen));
        drop(fut);
        // A future dropped while pending takes its waker and its count along.
        let mut gone = w.changed(w.generation());
        assert!(Pin::new(&mut gone).poll(&mut cx).is_pending());
        drop(gone);
        assert!(lock(&w.shared.wakers).list.is_empty());
        assert_eq!(w.shared.waiting.load(Ordering::SeqCst), 0);
        // A dying watcher fails the waiter instead of leaving it asleep.
        let mut dying = w.changed(w.generation());
        assert!(Pin::new(&mut dying).poll(&mut cx).is_pending());
        w.kill("test");
        assert!(matches!(
            Pin::new(&mut dying).poll(&mut cx),
            Poll::Ready(Err(Error::Watcher { .. }))
        ));
        drop((dying, moved, w));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
