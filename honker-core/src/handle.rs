//! The handle every binding shares: one SQLite connection behind a mutex,
//! honker's PRAGMAs and migrations applied at open, an injectable clock,
//! transactions and who owns them, and the operation surface ([`Ops`]).
//!
//! **Transactions.** A transaction belongs to the [`Caller`] that began it:
//! a thread, or a caller the host names (an asyncio task, a Node async
//! context, a tokio task). While it is open, that caller's calls must go
//! through it (any other call fails with [`Error::TransactionOpen`], since
//! waiting would deadlock); other callers wait their turn, unless they may
//! not wait (a call on an event loop's thread), which also fails with
//! [`Error::TransactionOpen`].
//!
//! The layer above (the wake path) hears of commits and of the close
//! through [`Hooks`]; this module knows nothing of it.

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::{
    AckAndClaim, EnqueueOpts, Event, JobFilter, JobRecord, Lease, LockInfo, Notification,
    QueueControls, QueueRateLimit, QueueRetention, QueueStats, QueueSummary, Retention, Rows,
    ScheduleInfo, ScheduleSpec, SqlValue, StreamSummary,
};
use crate::store::sqlite::{conn, schema, SqliteStore};
use crate::store::{Engine, Store, Target, Tick};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Default time a writer waits for another process's write lock: 10 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to open a database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long a write waits for other writers before failing with
    /// [`Error::Busy`]. Default [`DEFAULT_BUSY_TIMEOUT`].
    pub busy_timeout: Duration,
    /// Source of "now" for every deadline. Default: the system clock.
    pub clock: Arc<dyn Clock>,
    /// WAL size, in pages, past which a commit on this handle checkpoints
    /// (SQLite's `wal_autocheckpoint`). Past four times this, a commit
    /// waits briefly for readers so the WAL can start over, and an idle
    /// file's WAL is truncated (see [`crate::store::sqlite::wal`]). 0 turns all automatic
    /// checkpoints off. Default [`DEFAULT_WAL_AUTOCHECKPOINT`].
    pub wal_autocheckpoint: u32,
    /// Lets the file's own schema code (triggers, views) call honker's SQL
    /// functions and other functions with side effects (SQLite's
    /// `trusted_schema`). Off by default: a database file is input, and a
    /// crafted file's trigger could otherwise enqueue jobs, write rows or
    /// release the application's locks when honker merely opens it (or
    /// when the application reads a view of a file it attached). Turn it on
    /// only for files whose schema you wrote, for example a trigger that
    /// enqueues a job when an order is inserted.
    pub trusted_schema: bool,
}

/// Default [`OpenOptions::wal_autocheckpoint`]: SQLite's own 1000 pages.
/// With `synchronous=NORMAL` every checkpoint costs two fsyncs; a larger
/// value checkpoints less often and lets the WAL file grow to that size.
pub const DEFAULT_WAL_AUTOCHECKPOINT: u32 = 1000;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            clock: Arc::new(SystemClock),
            wal_autocheckpoint: DEFAULT_WAL_AUTOCHECKPOINT,
            trusted_schema: false,
        }
    }
}

/// Work to finish just before the database closes (a stream cursor's
/// offset that was moved past but not saved yet).
pub trait BeforeClose: Send + Sync {
    /// Runs on the store, outside any transaction, before it closes.
    fn before_close(&self, store: &dyn Store, now: i64);
}

/// What the layer above a handle (the wake path) hears from it.
pub trait Hooks: Send + Sync + 'static {
    /// Something was committed through this handle.
    fn committed(&self);
    /// The handle was closed: blocked waiters should wake and see it.
    fn closed(&self);
    /// For the layer above to find its own type again.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Who makes a call, for the transaction rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    token: u64,
    may_wait: bool,
}

/// Tokens the host names carry this bit; thread tokens never do.
const HOST: u64 = 1 << 63;

impl Caller {
    /// The calling thread, which may wait for another caller's transaction.
    pub fn this_thread() -> Caller {
        Caller {
            token: THREAD_ID.with(|t| *t),
            may_wait: true,
        }
    }

    /// A caller the host names itself (an asyncio task, a Node async
    /// context, a tokio task) by an id unique among its live callers.
    pub fn host(id: u64) -> Caller {
        Caller {
            token: id | HOST,
            may_wait: true,
        }
    }

    /// The same caller, failing with [`Error::TransactionOpen`] where it
    /// would wait for another caller's transaction: for a call on an event
    /// loop's own thread, which must never block.
    pub fn without_waiting(self) -> Caller {
        Caller {
            may_wait: false,
            ..self
        }
    }
}

/// Where a call runs: for a caller outside any transaction, or inside one.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// Outside any transaction, for this caller (each operation is atomic on
    /// its own).
    Caller(Caller),
    /// Inside this open transaction.
    Tx(&'a TxKey),
}

/// Identifies an open transaction. Obtained from [`Db::begin`]; pass it to
/// calls ([`Db::in_tx`]), then to [`Db::commit`] or [`Db::rollback`].
#[derive(Debug, PartialEq, Eq)]
pub struct TxKey(u64);

#[derive(Debug, Clone, Copy)]
struct TxOwner {
    key: u64,
    owner: u64,
}

struct State {
    conn: Option<Conn>,
    tx: Option<TxOwner>,
}

/// The handle's connection: SQLite's, or another engine's.
enum Conn {
    Sqlite(Connection),
    Engine(Box<dyn Engine>),
}

impl Conn {
    /// Runs `f` on this connection's store.
    fn store<R>(&self, f: impl FnOnce(&dyn Store) -> R) -> R {
        match self {
            Conn::Sqlite(c) => f(&SqliteStore(c)),
            Conn::Engine(e) => f(e.store()),
        }
    }

    /// A mark to tell, after some calls, whether they committed a write.
    fn mark(&mut self) -> u64 {
        match self {
            Conn::Sqlite(c) => c.total_changes(),
            Conn::Engine(e) => {
                e.take_wrote();
                0
            }
        }
    }

    /// Did the calls since `mark` commit a write (outside a transaction)?
    fn committed_since(&mut self, mark: u64) -> bool {
        match self {
            Conn::Sqlite(c) => c.total_changes() != mark && c.is_autocommit(),
            Conn::Engine(e) => e.take_wrote(),
        }
    }

    /// After a panic: nothing half done stays open.
    fn roll_back_open(&mut self) {
        match self {
            Conn::Sqlite(c) => {
                if !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
            }
            Conn::Engine(e) => {
                let _ = e.rollback();
            }
        }
    }

    fn begin(&mut self) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(conn::exec_cached(c, "BEGIN IMMEDIATE")?),
            Conn::Engine(e) => e.begin(),
        }
    }

    /// Commits (`commit`) or rolls back the open transaction; a commit that
    /// fails rolls back.
    fn finish(&mut self, commit: bool) -> Result<()> {
        match self {
            Conn::Sqlite(c) => {
                match conn::exec_cached(c, if commit { "COMMIT" } else { "ROLLBACK" }) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        if !c.is_autocommit() {
                            let _ = c.execute_batch("ROLLBACK");
                        }
                        Err(e.into())
                    }
                }
            }
            Conn::Engine(e) if commit => e.commit(),
            Conn::Engine(e) => e.rollback(),
        }
    }
}

struct Inner {
    pid: u32,
    path: PathBuf,
    state: Mutex<State>,
    /// The token owning the open transaction (0: none), mirrored from
    /// `State::tx` so that asking never waits for the state lock, which a
    /// writer holds while SQLite waits for another process's write lock.
    tx_owner: AtomicU64,
    idle: Condvar,
    opts: OpenOptions,
    hooks: OnceLock<Arc<dyn Hooks>>,
    before_close: Mutex<Vec<std::sync::Weak<dyn BeforeClose>>>,
}

/// A shared handle on one database file. Cloning is cheap and shares the
/// connection.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_ID: u64 = NEXT_ID.fetch_add(1, Ordering::Relaxed);
}

impl Db {
    /// Opens (creating if needed) the database at `path`, switches it to
    /// WAL, and creates or upgrades honker's tables. (`crate::open` also
    /// attaches the wake path; waits attach it on first use otherwise.)
    ///
    /// A `postgresql://` (or `postgres://`) URL opens a PostgreSQL database
    /// instead, with the engine the `honker-postgres` crate registers
    /// ([`crate::store::register`]); `sqlite://path` is the same as `path`.
    pub fn open(path: impl AsRef<Path>, mut opts: OpenOptions) -> Result<Db> {
        if path.as_ref().as_os_str().is_empty() {
            return Err(Error::invalid("path", "must not be empty"));
        }
        let (path, conn) = match Target::of(path.as_ref()) {
            Target::Postgres(url) => {
                let open = crate::store::postgres().ok_or_else(|| Error::CannotOpen {
                    path: url.split('@').next_back().unwrap_or(url).to_string(),
                    reason: "this build of honker has no PostgreSQL backend".into(),
                })?;
                let engine = crate::guard(|| open(url, &opts))?;
                if let Some(clock) = engine.clock() {
                    opts.clock = clock;
                }
                (PathBuf::from(engine.name()), Conn::Engine(engine))
            }
            Target::Sqlite(path) => {
                if path.as_os_str().is_empty() {
                    return Err(Error::invalid("path", "must not be empty"));
                }
                let path = path.to_path_buf();
                let conn = crate::guard(|| Self::connect(&path, &opts))
                    .map_err(|e| Self::opening(&path, &opts, e))?;
                (path, Conn::Sqlite(conn))
            }
        };
        Ok(Db {
            inner: Arc::new(Inner {
                pid: std::process::id(),
                hooks: OnceLock::new(),
                before_close: Mutex::new(Vec::new()),
                path,
                state: Mutex::new(State {
                    conn: Some(conn),
                    tx: None,
                }),
                tx_owner: AtomicU64::new(0),
                idle: Condvar::new(),
                opts,
            }),
        })
    }

    /// Opens and prepares the connection: PRAGMAs, the WAL policy, the SQL
    /// functions, the schema.
    fn connect(path: &Path, opts: &OpenOptions) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn::configure(&conn, opts.busy_timeout)?;
        // A file is input: its triggers and views may not call functions
        // with side effects (honker's, or the application's), unless the
        // application vouches for the schema.
        conn.pragma_update(None, "trusted_schema", opts.trusted_schema)?;
        crate::store::sqlite::wal::install(&conn, opts.wal_autocheckpoint)?;
        #[cfg(feature = "functions")]
        crate::store::sqlite::functions::register(
            &conn,
            if opts.trusted_schema {
                crate::store::sqlite::functions::Callers::TrustedSchema
            } else {
                crate::store::sqlite::functions::Callers::Direct
            },
        )?;
        schema::migrate(&conn)?;
        Ok(conn)
    }

    /// An error while opening, said about the file: a lock held past the
    /// busy timeout is `Busy` (with that timeout), a file SQLite cannot
    /// open, write or read as a database is `CannotOpen` naming the path.
    fn opening(path: &Path, opts: &OpenOptions, e: Error) -> Error {
        use rusqlite::ErrorCode as C;
        match e {
            Error::Busy { .. } => Self::busy_with(e, opts.busy_timeout),
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, msg))
                if matches!(
                    f.code,
                    C::CannotOpen
                        | C::ReadOnly
                        | C::NotADatabase
                        | C::PermissionDenied
                        | C::SystemIoFailure
                        | C::DatabaseCorrupt
                        | C::DiskFull
                ) =>
            {
                let reason = msg.unwrap_or_else(|| f.to_string());
                let hint = match f.code {
                    C::ReadOnly | C::PermissionDenied => {
                        " (honker writes to the file and to its -wal and -shm files beside it: \
                         the file and its directory must be writable)"
                    }
                    C::CannotOpen => {
                        " (does the directory exist, and may this process write to it?)"
                    }
                    _ => "",
                };
                Error::CannotOpen {
                    path: path.display().to_string(),
                    reason: format!("{reason}{hint}"),
                }
            }
            e => e,
        }
    }

    /// The path the database was opened with (for PostgreSQL, its URL
    /// with no password, and the schema).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Where the wake path reads this database's commits: the engine's
    /// feed, or `None` for a SQLite file (the wake path watches the file).
    pub fn feed(&self) -> Option<std::sync::Arc<dyn crate::store::Feed>> {
        match self.lock().conn.as_ref()? {
            Conn::Sqlite(_) => None,
            Conn::Engine(e) => Some(e.feed()),
        }
    }

    /// Now, in ms since the epoch, by this database's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.opts.clock.now_ms()
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &OpenOptions {
        &self.inner.opts
    }

    /// Attaches the layer above (once): it hears of commits and the close.
    /// Returns the hooks attached, these or earlier ones.
    pub fn attach(&self, hooks: impl FnOnce() -> Arc<dyn Hooks>) -> &Arc<dyn Hooks> {
        self.inner.hooks.get_or_init(hooks)
    }

    /// The hooks attached, if any.
    pub fn hooks(&self) -> Option<&Arc<dyn Hooks>> {
        self.inner.hooks.get()
    }

    fn busy_with(e: Error, timeout: Duration) -> Error {
        match e {
            Error::Busy { .. } => Error::Busy {
                timeout_ms: timeout.as_millis() as u64,
            },
            e => e,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses a handle inherited through `fork()`.
    fn check_process(&self) -> Result<()> {
        if std::process::id() != self.inner.pid {
            return Err(Error::Forked {
                opened_in: self.inner.pid,
            });
        }
        Ok(())
    }

    /// Waits until no transaction is open, by the transaction rule.
    fn lock_idle(&self, caller: Caller) -> Result<MutexGuard<'_, State>> {
        self.check_process()?;
        let mut st = self.lock();
        loop {
            match st.tx {
                Some(o) if o.owner == caller.token => {
                    return Err(Error::TransactionOpen { own: true })
                }
                Some(_) if !caller.may_wait => return Err(Error::TransactionOpen { own: false }),
                Some(_) => {
                    st = self
                        .inner
                        .idle
                        .wait(st)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                }
                None => return Ok(st),
            }
        }
    }

    /// Registers work to run on the connection just before it closes, for
    /// as long as `hook` lives.
    pub fn before_close(&self, hook: std::sync::Weak<dyn BeforeClose>) {
        let mut hooks = self
            .inner
            .before_close
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        hooks.retain(|h| h.strong_count() > 0);
        hooks.push(hook);
    }

    /// The operations, for `caller` outside any transaction.
    pub fn by(&self, caller: Caller) -> Ops<'_> {
        self.ops(At::Caller(caller))
    }

    /// The operations inside the open transaction `tx`.
    pub fn in_tx<'a>(&'a self, tx: &'a TxKey) -> Ops<'a> {
        self.ops(At::Tx(tx))
    }

    /// The operations, run where `at` says.
    pub fn ops<'a>(&'a self, at: At<'a>) -> Ops<'a> {
        Ops { db: self, at }
    }

    /// Runs `f` on the SQLite connection where `at` says, with the current
    /// time: the escape hatch to SQLite itself (the Rust crate's
    /// `with_conn`). Everything else goes through [`Ops`].
    /// On any other engine it fails (code `postgres`, SQLSTATE 0A000).
    pub fn with_conn<R>(
        &self,
        at: At<'_>,
        f: impl FnOnce(&Connection, i64) -> Result<R>,
    ) -> Result<R> {
        self.on(at, |c, now| match c {
            Conn::Sqlite(c) => f(c, now),
            Conn::Engine(e) => Err(e.unsupported("the SQLite connection")),
        })
    }

    /// Runs `f` on the store where `at` says, with the current time.
    fn with_store<R>(&self, at: At<'_>, f: impl FnOnce(&dyn Store, i64) -> Result<R>) -> Result<R> {
        self.on(at, |c, now| c.store(|s| f(s, now)))
    }

    fn on<R>(&self, at: At<'_>, f: impl FnOnce(&mut Conn, i64) -> Result<R>) -> Result<R> {
        match at {
            At::Caller(c) => self.run(c, f),
            At::Tx(tx) => self.run_tx(tx, f),
        }
    }

    fn run<R>(&self, caller: Caller, f: impl FnOnce(&mut Conn, i64) -> Result<R>) -> Result<R> {
        let mut st = self.lock_idle(caller)?;
        conn::set_busy_timeout(self.inner.opts.busy_timeout);
        let now = self.now_ms();
        let conn = st.conn.as_mut().ok_or(Error::Closed)?;
        let mark = conn.mark();
        let result = crate::guard(|| f(conn, now));
        if matches!(result, Err(Error::Internal { .. })) {
            // A panic may have left a transaction open: nothing half done stays.
            conn.roll_back_open();
        }
        let committed = conn.committed_since(mark);
        drop(st);
        if committed {
            self.committed();
        }
        result.map_err(|e| Self::busy_with(e, self.inner.opts.busy_timeout))
    }

    fn committed(&self) {
        if let Some(h) = self.inner.hooks.get() {
            h.committed();
        }
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) owned by `caller`.
    pub fn begin(&self, caller: Caller) -> Result<TxKey> {
        let mut st = self.lock_idle(caller)?;
        let conn = st.conn.as_mut().ok_or(Error::Closed)?;
        conn::set_busy_timeout(self.inner.opts.busy_timeout);
        conn.begin()
            .map_err(|e| Self::busy_with(e, self.inner.opts.busy_timeout))?;
        let key = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.set_tx(
            &mut st,
            Some(TxOwner {
                key,
                owner: caller.token,
            }),
        );
        Ok(TxKey(key))
    }

    /// Makes `caller` the owner of `tx`: its plain calls are then the ones
    /// refused while `tx` is open, and others' wait. (A binding that began
    /// `tx` on a worker thread, so as not to block its event loop on the
    /// write lock, hands it to the task that asked.)
    pub fn adopt(&self, tx: &TxKey, caller: Caller) -> Result<()> {
        let mut st = self.lock();
        match st.tx {
            Some(o) if o.key == tx.0 => {
                self.set_tx(
                    &mut st,
                    Some(TxOwner {
                        owner: caller.token,
                        ..o
                    }),
                );
                Ok(())
            }
            _ => Err(Error::TransactionInactive),
        }
    }

    fn run_tx<R>(&self, tx: &TxKey, f: impl FnOnce(&mut Conn, i64) -> Result<R>) -> Result<R> {
        self.check_process()?;
        let mut st = self.lock();
        if !matches!(st.tx, Some(o) if o.key == tx.0) {
            return Err(Error::TransactionInactive);
        }
        let now = self.now_ms();
        let conn = st.conn.as_mut().ok_or(Error::Closed)?;
        conn::set_busy_timeout(self.inner.opts.busy_timeout);
        // A panic inside an operation unwinds through its savepoint, which
        // rolls back; the caller's transaction stays open and usable.
        crate::guard(|| f(conn, now)).map_err(|e| Self::busy_with(e, self.inner.opts.busy_timeout))
    }

    fn finish(&self, tx: TxKey, commit: bool) -> Result<()> {
        let mut st = self.lock();
        if !matches!(st.tx, Some(o) if o.key == tx.0) {
            return Err(Error::TransactionInactive);
        }
        let result = match st.conn.as_mut() {
            None => Err(Error::Closed),
            Some(conn) => conn.finish(commit),
        };
        self.set_tx(&mut st, None);
        drop(st);
        self.inner.idle.notify_all();
        result
    }

    /// Commits `tx`. On failure the transaction is rolled back.
    pub fn commit(&self, tx: TxKey) -> Result<()> {
        self.finish(tx, true)?;
        self.committed();
        Ok(())
    }

    /// Rolls `tx` back.
    pub fn rollback(&self, tx: TxKey) -> Result<()> {
        self.finish(tx, false)
    }

    /// Is a transaction open on this handle? (Never waits.)
    pub fn in_transaction(&self) -> bool {
        self.inner.tx_owner.load(Ordering::SeqCst) != 0
    }

    /// Does `caller` own the transaction open now? (A binding that hands a
    /// call to another thread asks first: that thread would wait for this
    /// caller's commit, which waits for the call. Never waits.)
    pub fn holds_transaction(&self, caller: Caller) -> bool {
        self.inner.tx_owner.load(Ordering::SeqCst) == caller.token
    }

    /// Records the open transaction (under the state lock) and its owner.
    fn set_tx(&self, st: &mut State, tx: Option<TxOwner>) {
        st.tx = tx;
        self.inner
            .tx_owner
            .store(tx.map_or(0, |o| o.owner), Ordering::SeqCst);
    }

    /// Closes the connection (rolling back an open transaction). Every later
    /// call on any clone fails with [`Error::Closed`]. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut st = self.lock();
        self.set_tx(&mut st, None);
        let conn = st.conn.take();
        drop(st);
        self.inner.idle.notify_all();
        if let Some(mut conn) = conn {
            conn.roll_back_open();
            let hooks = std::mem::take(
                &mut *self
                    .inner
                    .before_close
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            let now = self.now_ms();
            for h in hooks.iter().filter_map(std::sync::Weak::upgrade) {
                conn.store(|s| h.before_close(s, now));
            }
            // Blocked waiters wake, call in, and get `Error::Closed`.
            self.closed();
            return match conn {
                Conn::Sqlite(c) => c.close().map_err(|(_, e)| Error::from(e)),
                Conn::Engine(mut e) => e.close(),
            };
        }
        self.closed();
        Ok(())
    }

    fn closed(&self) {
        if let Some(h) = self.inner.hooks.get() {
            h.closed();
        }
    }

    /// Is this a SQLite database (not another engine's)? (A closed handle
    /// answers as it was.)
    pub fn is_sqlite(&self) -> bool {
        !matches!(self.lock().conn, Some(Conn::Engine(_)))
            && !self.inner.path.to_string_lossy().starts_with("postgres")
    }

    /// Has [`Db::close`] been called?
    pub fn is_closed(&self) -> bool {
        self.lock().conn.is_none()
    }
}

/// Shorthands for this crate's tests, as the calling thread.
#[cfg(test)]
impl Db {
    pub(crate) fn run_here<R>(&self, f: impl FnOnce(&Connection, i64) -> Result<R>) -> Result<R> {
        self.with_conn(At::Caller(Caller::this_thread()), f)
    }
    pub(crate) fn run_in<R>(
        &self,
        tx: &TxKey,
        f: impl FnOnce(&Connection, i64) -> Result<R>,
    ) -> Result<R> {
        self.with_conn(At::Tx(tx), f)
    }
    pub(crate) fn begin_here(&self) -> Result<TxKey> {
        self.begin(Caller::this_thread())
    }
    pub(crate) fn held_here(&self) -> bool {
        self.holds_transaction(Caller::this_thread())
    }
    pub(crate) fn watcher(&self) -> Arc<crate::wake::watcher::Watcher> {
        crate::wake::watcher(self)
    }
    pub(crate) fn listen(&self, channel: &str) -> Result<Arc<crate::wake::watcher::ListenerQueue>> {
        crate::wake::listen(self, channel)
    }
}

/// The operations, each written once: run where [`At`] says, with the
/// handle's clock, on its store. Every binding calls these.
pub struct Ops<'a> {
    db: &'a Db,
    at: At<'a>,
}

impl Ops<'_> {
    fn exec<R>(&self, f: impl FnOnce(&dyn Store, i64) -> Result<R>) -> Result<R> {
        self.db.with_store(self.at, f)
    }

    // -- queues --

    /// Adds a job (see [`Store::enqueue`]).
    pub fn enqueue(
        &self,
        queue: &str,
        payload: &str,
        opts: &EnqueueOpts,
        default_max_attempts: u32,
    ) -> Result<i64> {
        self.exec(|s, now| s.enqueue(queue, payload, opts, default_max_attempts, now))
    }
    /// Adds jobs, all or none.
    pub fn enqueue_many(
        &self,
        queue: &str,
        payloads: &[String],
        opts: &EnqueueOpts,
        default_max_attempts: u32,
    ) -> Result<Vec<i64>> {
        self.exec(|s, now| s.enqueue_many(queue, payloads, opts, default_max_attempts, now))
    }
    /// Claims up to `n` due jobs.
    pub fn claim(
        &self,
        queue: &str,
        worker: &str,
        n: usize,
        visibility_timeout: Duration,
    ) -> Result<Vec<JobRecord>> {
        self.exec(|s, now| s.claim(queue, worker, n, visibility_timeout, now))
    }
    /// Completes a job if `lease` is current.
    pub fn ack(&self, lease: Lease<'_>) -> Result<bool> {
        self.exec(|s, now| s.ack(lease, now))
    }
    /// Completes each job whose lease is current.
    pub fn ack_batch(&self, leases: &[Lease<'_>]) -> Result<usize> {
        self.exec(|s, now| s.ack_batch(leases, now))
    }
    /// Acks a job and claims the next ones, in one commit (see
    /// [`Store::ack_and_claim`]).
    pub fn ack_and_claim(&self, op: &AckAndClaim<'_>) -> Result<(usize, Vec<JobRecord>)> {
        self.exec(|s, now| s.ack_and_claim(op, now))
    }
    /// Gives a job back for another attempt.
    pub fn retry(&self, lease: Lease<'_>, delay: Option<Duration>, error: &str) -> Result<bool> {
        self.exec(|s, now| s.retry(lease, delay, error, now))
    }
    /// Gives a job back untouched.
    pub fn release(&self, lease: Lease<'_>) -> Result<bool> {
        self.exec(|s, now| s.release(lease, now))
    }
    /// Gives a job back untouched, due again after `delay`.
    pub fn defer(&self, lease: Lease<'_>, delay: Duration) -> Result<bool> {
        self.exec(|s, now| s.defer(lease, delay, now))
    }
    /// Sends a job to the dead table.
    pub fn fail(&self, lease: Lease<'_>, error: &str) -> Result<bool> {
        self.exec(|s, now| s.fail(lease, error, now))
    }
    /// Extends a lease.
    pub fn heartbeat(&self, lease: Lease<'_>, extend: Duration) -> Result<bool> {
        self.exec(|s, now| s.heartbeat(lease, extend, now))
    }
    /// Removes a live job.
    pub fn cancel(&self, id: i64) -> Result<bool> {
        self.exec(|s, now| s.cancel(id, now))
    }
    /// Deletes a queue's ready jobs (see [`Store::purge`]).
    pub fn purge(&self, queue: &str) -> Result<usize> {
        self.exec(|s, now| s.purge(queue, now))
    }
    /// A job, live or dead.
    pub fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
        self.exec(|s, _| s.get_job(id))
    }
    /// The newest dead jobs of a queue.
    pub fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>> {
        self.exec(|s, _| s.dead_jobs(queue, limit))
    }
    /// Puts a dead job back.
    pub fn requeue_dead(&self, id: i64) -> Result<()> {
        self.exec(|s, now| s.requeue_dead(id, now))
    }
    /// Deletes each dead job of `ids` for good; how many there were.
    pub fn discard_dead(&self, ids: &[i64]) -> Result<usize> {
        self.exec(|s, _| s.discard_dead(ids))
    }
    /// Dead-letters jobs past their start deadline.
    pub fn sweep_expired(&self, queue: Option<&str>) -> Result<usize> {
        self.exec(|s, now| s.sweep_expired(queue, now))
    }
    /// Is anything claimable now?
    pub fn has_due(&self, queue: &str) -> Result<bool> {
        self.exec(|s, now| s.has_due(queue, now))
    }
    /// The next moment something becomes claimable, ms since the epoch.
    pub fn next_deadline(&self, queue: &str) -> Result<Option<i64>> {
        self.exec(|s, _| s.next_deadline(queue))
    }
    /// A queue's job counts.
    pub fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        self.exec(|s, _| s.queue_stats(queue))
    }
    /// Puts back every dead job of a queue (dead for `reason`, if given)
    /// whose idempotency key no live job holds; how many.
    pub fn requeue_dead_all(&self, queue: &str, reason: Option<&str>) -> Result<usize> {
        self.exec(|s, now| s.requeue_dead_all(queue, reason, now))
    }
    /// Removes each live job of `ids`, whatever its state; how many.
    pub fn cancel_many(&self, ids: &[i64]) -> Result<usize> {
        self.exec(|s, now| s.cancel_many(ids, now))
    }
    /// Every queue with jobs (live or dead) or controls, by name, with its
    /// counts and controls.
    pub fn queues(&self) -> Result<Vec<QueueSummary>> {
        self.exec(|s, _| s.queues())
    }
    /// Every stream with events, saved offsets or retention, by name, with
    /// its last offset and its consumers' offsets.
    pub fn streams(&self) -> Result<Vec<StreamSummary>> {
        self.exec(|s, _| s.streams())
    }
    /// The jobs `filter` names, live and dead, newest first.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.exec(|s, _| s.list_jobs(filter))
    }
    /// A queue's controls.
    pub fn queue_controls(&self, queue: &str) -> Result<QueueControls> {
        self.exec(|s, _| s.queue_controls(queue))
    }
    /// Pauses a queue in every process (claims take nothing); whether it
    /// was running.
    pub fn pause(&self, queue: &str) -> Result<bool> {
        self.exec(|s, now| s.set_paused(queue, true, now))
    }
    /// Resumes a paused queue; whether it was paused.
    pub fn resume(&self, queue: &str) -> Result<bool> {
        self.exec(|s, now| s.set_paused(queue, false, now))
    }
    /// Limits how many of a queue's jobs are leased at once across every
    /// process (`None`: no limit).
    pub fn set_max_in_flight(&self, queue: &str, max: Option<u32>) -> Result<()> {
        self.exec(|s, now| s.set_max_in_flight(queue, max, now))
    }
    /// Limits how many of a queue's jobs are claimed per fixed window,
    /// across every process (`None`: no limit).
    pub fn set_rate_limit(&self, queue: &str, rate: Option<QueueRateLimit>) -> Result<()> {
        self.exec(|s, now| s.set_rate_limit(queue, rate, now))
    }
    /// Stores what of a queue's finished and dead jobs is kept (both
    /// limits, replacing the old ones); pruning past them is automatic.
    pub fn set_queue_retention(&self, queue: &str, retention: QueueRetention) -> Result<()> {
        self.exec(|s, now| s.set_queue_retention(queue, retention, now))
    }
    /// Applies a queue's retention now, exactly; jobs removed.
    pub fn prune_queue(&self, queue: &str) -> Result<usize> {
        self.exec(|s, now| s.prune_queue(queue, now))
    }
    /// Every lock held now, by name.
    pub fn locks(&self) -> Result<Vec<LockInfo>> {
        self.exec(|s, now| s.locks(now))
    }
    /// How many jobs the file has ever had (the largest job id).
    pub fn jobs_enqueued(&self) -> Result<i64> {
        self.exec(|s, _| s.jobs_enqueued())
    }
    /// The `run_at` of the ready job a claim of `queue` would take next.
    pub fn queue_head(&self, queue: &str) -> Result<Option<i64>> {
        self.exec(|s, _| s.queue_head(queue))
    }
    /// Turns a queue's lifecycle events on or off.
    pub fn set_events(&self, queue: &str, on: bool) -> Result<()> {
        self.exec(|s, now| s.set_events(queue, on, now))
    }

    // -- streams --

    /// Appends an event.
    pub fn publish(&self, stream: &str, key: Option<&str>, payload: &str) -> Result<i64> {
        self.exec(|s, now| s.publish(stream, key, payload, now))
    }
    /// Events after an offset.
    pub fn read_since(&self, stream: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
        self.exec(|s, _| s.read_since(stream, after, limit))
    }
    /// The newest offset.
    pub fn last_offset(&self, stream: &str) -> Result<i64> {
        self.exec(|s, _| s.last_offset(stream))
    }
    /// Saves a consumer's offset, only forward.
    pub fn save_offset(&self, stream: &str, consumer: &str, offset: i64) -> Result<bool> {
        self.exec(|s, now| s.save_offset(stream, consumer, offset, now))
    }
    /// A consumer's saved offset.
    pub fn get_offset(&self, stream: &str, consumer: &str) -> Result<i64> {
        self.exec(|s, _| s.get_offset(stream, consumer))
    }
    /// Stores a stream's retention.
    pub fn set_retention(&self, stream: &str, retention: Retention) -> Result<()> {
        self.exec(|s, _| s.set_retention(stream, retention))
    }
    /// A stream's retention.
    pub fn retention(&self, stream: &str) -> Result<Retention> {
        self.exec(|s, _| s.retention(stream))
    }
    /// Applies a stream's retention now.
    pub fn prune_stream(&self, stream: &str) -> Result<usize> {
        self.exec(|s, now| s.prune_stream(stream, now))
    }

    // -- notifications --

    /// Stores a notification.
    pub fn notify(&self, channel: &str, payload: &str) -> Result<i64> {
        self.exec(|s, now| s.notify(channel, payload, now))
    }
    /// Notifications after an id.
    pub fn notifications_after(
        &self,
        after: i64,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        self.exec(|s, _| s.notifications_after(after, channel, limit))
    }

    // -- locks, rate limits, results --

    /// Takes a lock if free; its fencing token.
    pub fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> Result<Option<i64>> {
        self.exec(|s, now| s.try_lock(name, owner, ttl_ms, now))
    }
    /// Extends a held lock.
    pub fn renew_lock(&self, name: &str, token: i64, ttl_ms: i64) -> Result<bool> {
        self.exec(|s, now| s.renew_lock(name, token, ttl_ms, now))
    }
    /// Releases a held lock.
    pub fn release_lock(&self, name: &str, token: i64) -> Result<bool> {
        self.exec(|s, _| s.release_lock(name, token))
    }
    /// Who holds a lock now.
    pub fn lock_holder(&self, name: &str) -> Result<Option<LockInfo>> {
        self.exec(|s, now| s.lock_holder(name, now))
    }
    /// Counts a call against a rate limit; allowed?
    pub fn try_rate_limit(&self, key: &str, limit: i64, per_ms: i64) -> Result<bool> {
        self.exec(|s, now| s.try_rate_limit(key, limit, per_ms, now))
    }
    /// Stores a job's result.
    pub fn save_result(&self, job_id: i64, value: &str, ttl_ms: i64) -> Result<()> {
        self.exec(|s, now| s.save_result(job_id, value, ttl_ms, now))
    }
    /// A job's unexpired result.
    pub fn get_result(&self, job_id: i64) -> Result<Option<String>> {
        self.exec(|s, now| s.get_result(job_id, now))
    }
    /// Removes expired results.
    pub fn sweep_results(&self) -> Result<usize> {
        self.exec(|s, now| s.sweep_results(now))
    }

    // -- schedules --

    /// Registers or updates a schedule.
    pub fn schedule_add(&self, spec: &ScheduleSpec<'_>) -> Result<()> {
        self.exec(|s, now| s.schedule_add(spec, now))
    }
    /// Removes a schedule.
    pub fn schedule_remove(&self, name: &str) -> Result<bool> {
        self.exec(|s, _| s.schedule_remove(name))
    }
    /// Every schedule.
    pub fn schedule_list(&self) -> Result<Vec<ScheduleInfo>> {
        self.exec(|s, _| s.schedule_list())
    }
    /// Pauses a schedule.
    pub fn schedule_pause(&self, name: &str) -> Result<()> {
        self.exec(|s, _| s.schedule_pause(name))
    }
    /// Resumes a schedule.
    pub fn schedule_resume(&self, name: &str) -> Result<()> {
        self.exec(|s, now| s.schedule_resume(name, now))
    }
    /// Fires what is due.
    pub fn schedule_tick(&self) -> Result<Tick> {
        self.exec(|s, now| s.schedule_tick(now))
    }
    /// Fires what is due while `token` holds `lock_name`.
    pub fn schedule_tick_fenced(&self, lock_name: &str, token: i64) -> Result<Option<Tick>> {
        self.exec(|s, now| s.schedule_tick_fenced(lock_name, token, now))
    }
    /// The earliest next fire.
    pub fn schedule_soonest(&self) -> Result<Option<i64>> {
        self.exec(|s, _| s.schedule_soonest())
    }

    // -- the application's own SQL --

    /// Runs one statement; rows changed.
    pub fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<usize> {
        self.exec(|s, _| s.execute(sql, params))
    }
    /// Runs a query.
    pub fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Rows> {
        self.exec(|s, _| s.query(sql, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn open() -> (tempdir::Dir, Db) {
        let dir = tempdir::Dir::new();
        let db = Db::open(dir.path().join("t.db"), OpenOptions::default()).unwrap();
        (dir, db)
    }

    use crate::testutil as tempdir;

    #[test]
    fn open_configures_wal_and_schema() {
        let (_d, db) = open();
        let (mode, sync, fk) = db
            .run_here(|c, _| {
                Ok(c.query_row(
                    "SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT synchronous FROM pragma_synchronous), (SELECT foreign_keys FROM pragma_foreign_keys)",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
                )?)
            })
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
        assert_eq!(
            db.run_here(|c, _| schema::version(c)).unwrap(),
            schema::SCHEMA_VERSION
        );
    }

    #[test]
    fn same_thread_call_during_tx_is_refused_other_threads_wait() {
        let (_d, db) = open();
        let tx = db.begin_here().unwrap();
        assert_eq!(
            db.run_here(|_, _| Ok(())).unwrap_err().code(),
            "transaction_open"
        );
        assert_eq!(db.begin_here().unwrap_err().code(), "transaction_open");
        db.run_in(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let other = db.clone();
        assert!(db.held_here());
        let probe = db.clone();
        assert!(
            !std::thread::spawn(move || probe.held_here())
                .join()
                .unwrap(),
            "another thread does not hold it"
        );
        let (sent, got) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let n: i64 = other
                .run_here(|c, _| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
                .unwrap();
            sent.send(n).unwrap();
        });
        // The other thread is parked until commit.
        assert!(got.recv_timeout(Duration::from_millis(50)).is_err());
        db.commit(tx).unwrap();
        assert!(!db.held_here());
        assert_eq!(got.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
        h.join().unwrap();
    }

    #[test]
    fn asking_about_the_transaction_never_waits_for_a_busy_writer() {
        let (_d, db) = open();
        let (inside, entered) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let writer = {
            let db = db.clone();
            // Holds the state lock, as a write waiting for another
            // process's lock inside SQLite does.
            std::thread::spawn(move || {
                db.run_here(|_, _| {
                    inside.send(()).unwrap();
                    wait.recv().unwrap();
                    Ok(())
                })
            })
        };
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        let (answer, answered) = std::sync::mpsc::channel();
        let asker = db.clone();
        std::thread::spawn(move || {
            answer
                .send((asker.in_transaction(), asker.held_here()))
                .unwrap()
        });
        assert_eq!(
            answered.recv_timeout(Duration::from_secs(10)).unwrap(),
            (false, false)
        );
        go.send(()).unwrap();
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn a_transaction_begun_on_one_thread_can_be_adopted_by_another() {
        let (_d, db) = open();
        let worker = db.clone();
        let tx = std::thread::spawn(move || worker.begin_here().unwrap())
            .join()
            .unwrap();
        assert!(!db.held_here());
        db.adopt(&tx, Caller::this_thread()).unwrap();
        assert!(db.held_here());
        assert_eq!(
            db.run_here(|_, _| Ok(())).unwrap_err().code(),
            "transaction_open",
            "this thread owns it now: its plain calls are refused, not parked"
        );
        db.run_in(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        db.commit(TxKey(tx.0)).unwrap();
        assert_eq!(
            db.adopt(&tx, Caller::this_thread()).unwrap_err().code(),
            "transaction_inactive"
        );
    }

    #[test]
    fn rollback_and_inactive_and_closed() {
        let (_d, db) = open();
        let tx = db.begin_here().unwrap();
        db.run_in(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let stale = TxKey(tx.0);
        db.rollback(tx).unwrap();
        assert_eq!(
            db.run_in(&stale, |_, _| Ok(())).unwrap_err().code(),
            "transaction_inactive"
        );
        let exists: bool = db
            .run_here(|c, _| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 't')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert!(!exists);
        db.close().unwrap();
        db.close().unwrap();
        assert_eq!(db.run_here(|_, _| Ok(())).unwrap_err().code(), "closed");
        assert_eq!(db.begin_here().unwrap_err().code(), "closed");
    }

    #[test]
    fn open_errors_name_the_file_and_the_real_timeout() {
        let dir = tempdir::Dir::new();
        let missing = dir.path().join("no-such-dir").join("app.db");
        let e = Db::open(&missing, OpenOptions::default()).unwrap_err();
        assert_eq!(e.code(), "cannot_open");
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        // A file SQLite may only read (as on a read-only mount; root
        // ignores file modes): it cannot be switched to WAL.
        let path = dir.path().join("ro.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let uri = format!("file:{}?mode=ro", path.display());
        let e = Db::open(&uri, OpenOptions::default()).unwrap_err();
        assert_eq!(e.code(), "cannot_open", "{e}");
        assert!(
            e.to_string().contains("ro.db") && e.to_string().contains("writable"),
            "{e}"
        );
        // Another connection holds the write lock of a fresh (not yet WAL) file.
        let fresh = dir.path().join("fresh.db");
        let holder = Connection::open(&fresh).unwrap();
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let opts = OpenOptions {
            busy_timeout: Duration::from_millis(200),
            ..OpenOptions::default()
        };
        let e = Db::open(&fresh, opts).unwrap_err();
        assert_eq!(e.code(), "busy");
        assert!(e.to_string().contains("(200 ms)"), "{e}");
    }

    #[test]
    fn a_panic_inside_an_operation_is_an_internal_error_and_undoes_it() {
        let (_d, db) = open();
        db.run_here(|c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let e = db
            .run_here::<()>(|c, _| {
                c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")?;
                panic!("deliberate")
            })
            .unwrap_err();
        assert_eq!(e.code(), "internal");
        assert!(e.to_string().contains("deliberate"), "{e}");
        let count = |db: &Db| {
            db.run_here(|c, _| {
                Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap()
        };
        assert_eq!(count(&db), 0, "the half-done write was rolled back");
        // Inside a transaction: the transaction survives the panic.
        let tx = db.begin_here().unwrap();
        db.run_in(&tx, |c, _| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
            .unwrap();
        let e = db
            .run_in::<()>(&tx, |c, _| {
                crate::store::sqlite::conn::atomic(c, |c| {
                    c.execute("INSERT INTO t VALUES (3)", [])?;
                    panic!("inside a savepoint")
                })
            })
            .unwrap_err();
        assert_eq!(e.code(), "internal");
        db.commit(tx).unwrap();
        assert_eq!(count(&db), 1, "only the write before the panic committed");
    }

    /// A file prepared by someone else: an empty `_honker_meta` whose
    /// trigger calls honker's functions when the migration writes to it.
    #[cfg(feature = "functions")]
    fn hostile_file(path: &Path) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE _honker_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE loot (x);
             CREATE TRIGGER grab AFTER INSERT ON _honker_meta BEGIN
                 SELECT honker_enqueue('victim', '{\"evil\": true}');
                 INSERT INTO loot VALUES (1);
             END;",
        )
        .unwrap();
    }

    #[cfg(feature = "functions")]
    #[test]
    fn a_crafted_files_schema_cannot_call_honker_functions() {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("hostile.db");
        hostile_file(&path);
        let e = Db::open(&path, OpenOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("unsafe use of honker_enqueue"),
            "{e}"
        );
        let c = Connection::open(&path).unwrap();
        let loot: i64 = c
            .query_row("SELECT COUNT(*) FROM loot", [], |r| r.get(0))
            .unwrap();
        assert_eq!(loot, 0, "the trigger's writes were rolled back with it");
        let tables: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = '_honker_live'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "no half-applied migration");

        // An application that vouches for its own schema may use triggers.
        let own = dir.path().join("own.db");
        let opts = OpenOptions {
            trusted_schema: true,
            ..OpenOptions::default()
        };
        let db = Db::open(&own, opts.clone()).unwrap();
        db.run_here(|c, _| {
            Ok(c.execute_batch(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY);
                 CREATE TRIGGER order_mail AFTER INSERT ON orders BEGIN
                     SELECT honker_enqueue('emails', json_object('order', NEW.id));
                 END;
                 INSERT INTO orders (id) VALUES (7);",
            )?)
        })
        .unwrap();
        let jobs = db
            .run_here(|c, now| {
                crate::store::sqlite::queue::claim(c, "emails", "w", 1, Duration::from_secs(5), now)
            })
            .unwrap();
        assert_eq!(jobs[0].payload, r#"{"order":7}"#);
        // Without the opt-in, the same trigger is refused.
        drop(db);
        let db = Db::open(&own, OpenOptions::default()).unwrap();
        let e = db
            .run_here(|c, _| Ok(c.execute("INSERT INTO orders (id) VALUES (8)", [])?))
            .unwrap_err();
        assert!(
            e.to_string().contains("unsafe use of honker_enqueue"),
            "{e}"
        );
    }

    #[test]
    fn clock_is_injectable() {
        let dir = tempdir::Dir::new();
        let clock = ManualClock::new(42);
        let db = Db::open(
            dir.path().join("c.db"),
            OpenOptions {
                clock: Arc::new(clock.clone()),
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(db.run_here(|_, now| Ok(now)).unwrap(), 42);
        clock.advance(8);
        assert_eq!(db.now_ms(), 50);
    }

    #[test]
    fn wal_autocheckpoint_is_set_per_handle() {
        let dir = tempdir::Dir::new();
        let pages = |db: &Db| {
            db.run_here(|c, _| Ok(crate::store::sqlite::wal::autocheckpoint(c)))
                .unwrap()
        };
        let default = Db::open(dir.path().join("w.db"), OpenOptions::default()).unwrap();
        assert_eq!(pages(&default), DEFAULT_WAL_AUTOCHECKPOINT);
        let off = Db::open(
            dir.path().join("w.db"),
            OpenOptions {
                wal_autocheckpoint: 0,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(pages(&off), 0);
        assert_eq!(pages(&default), DEFAULT_WAL_AUTOCHECKPOINT);
    }
}
