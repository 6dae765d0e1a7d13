//! The connection handle every binding shares: one SQLite connection behind
//! a mutex, honker's PRAGMAs and migrations applied at open, an injectable
//! clock, and transactions that pin the connection for their owner.
//!
//! Non-transactional calls wait while another thread's transaction is open;
//! on the thread that opened it they fail with
//! [`Error::TransactionOpen`] instead of deadlocking.

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::schema;
use crate::watcher::{ListenerQueue, Watcher};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
    /// file's WAL is truncated (see [`crate::wal`]). 0 turns all automatic
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

/// Work to finish on the connection just before the database closes (a
/// stream cursor's offset that was moved past but not saved yet).
pub trait BeforeClose: Send + Sync {
    /// Runs on the connection, outside any transaction, before it closes.
    fn before_close(&self, conn: &Connection, now: i64);
}

/// Identifies an open transaction. Obtained from [`Db::begin`]; pass it to
/// [`Db::run_tx`], then to [`Db::commit`] or [`Db::rollback`].
#[derive(Debug, PartialEq, Eq)]
pub struct TxKey(u64);

#[derive(Debug, Clone, Copy)]
struct TxOwner {
    key: u64,
    thread: u64,
}

struct State {
    conn: Option<Connection>,
    tx: Option<TxOwner>,
}

struct Inner {
    pid: u32,
    path: PathBuf,
    state: Mutex<State>,
    /// The thread owning the open transaction (0: none), mirrored from
    /// `State::tx` so that asking never waits for the state lock, which a
    /// writer holds while SQLite waits for another process's write lock.
    tx_thread: AtomicU64,
    idle: Condvar,
    opts: OpenOptions,
    watcher: Arc<Watcher>,
    listeners: Mutex<Vec<std::sync::Weak<ListenerQueue>>>,
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

fn this_thread() -> u64 {
    THREAD_ID.with(|t| *t)
}

impl Db {
    /// Opens (creating if needed) the database at `path`, switches it to
    /// WAL, and creates or upgrades honker's tables.
    pub fn open(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::invalid("path", "must not be empty"));
        }
        let conn = Self::connect(&path, &opts).map_err(|e| Self::opening(&path, &opts, e))?;
        let watcher = Watcher::for_path(&path);
        if opts.wal_autocheckpoint > 0 {
            watcher.truncate_wal_when_idle();
        }
        Ok(Db {
            inner: Arc::new(Inner {
                pid: std::process::id(),
                watcher,
                listeners: Mutex::new(Vec::new()),
                before_close: Mutex::new(Vec::new()),
                path,
                state: Mutex::new(State {
                    conn: Some(conn),
                    tx: None,
                }),
                tx_thread: AtomicU64::new(0),
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
        schema::configure(&conn, opts.busy_timeout)?;
        // A file is input: its triggers and views may not call functions
        // with side effects (honker's, or the application's), unless the
        // application vouches for the schema.
        conn.pragma_update(None, "trusted_schema", opts.trusted_schema)?;
        crate::wal::install(&conn, opts.wal_autocheckpoint)?;
        #[cfg(feature = "functions")]
        crate::sql::register(
            &conn,
            if opts.trusted_schema {
                crate::sql::Callers::TrustedSchema
            } else {
                crate::sql::Callers::Direct
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

    /// The path the database was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Now, in ms since the epoch, by this database's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.opts.clock.now_ms()
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &OpenOptions {
        &self.inner.opts
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

    /// Waits until no transaction is open (refusing if this thread holds it).
    fn lock_idle(&self) -> Result<MutexGuard<'_, State>> {
        self.check_process()?;
        let me = this_thread();
        let mut st = self.lock();
        loop {
            match st.tx {
                Some(o) if o.thread == me => return Err(Error::TransactionOpen),
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

    /// The file's watcher (shared by every handle on the file in this
    /// process): wait on it for commits.
    pub fn watcher(&self) -> &Arc<Watcher> {
        &self.inner.watcher
    }

    /// Starts listening on `channel` for notifications committed from now
    /// on. Closing the database closes the listener.
    pub fn listen(&self, channel: &str) -> Result<Arc<ListenerQueue>> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let q = self.inner.watcher.listen(channel)?;
        let mut ls = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        ls.retain(|l| l.strong_count() > 0);
        ls.push(Arc::downgrade(&q));
        Ok(q)
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

    /// Runs `f` on the connection outside any transaction, with the current
    /// time. Waits while another thread's transaction is open. If `f`
    /// committed changes, local waiters are woken.
    pub fn run<R>(&self, f: impl FnOnce(&Connection, i64) -> Result<R>) -> Result<R> {
        let st = self.lock_idle()?;
        schema::set_busy_timeout(self.inner.opts.busy_timeout);
        let conn = st.conn.as_ref().ok_or(Error::Closed)?;
        let before = conn.total_changes();
        let result = crate::guard(|| f(conn, self.now_ms()));
        if matches!(result, Err(Error::Internal { .. })) && !conn.is_autocommit() {
            // A panic may have left a transaction open: nothing half done stays.
            let _ = conn.execute_batch("ROLLBACK");
        }
        let committed = conn.total_changes() != before && conn.is_autocommit();
        drop(st);
        if committed {
            self.inner.watcher.local_commit();
        }
        result.map_err(|e| Self::busy_with(e, self.inner.opts.busy_timeout))
    }

    /// Opens a write transaction (`BEGIN IMMEDIATE`) owned by the caller.
    pub fn begin(&self) -> Result<TxKey> {
        let mut st = self.lock_idle()?;
        let conn = st.conn.as_ref().ok_or(Error::Closed)?;
        schema::set_busy_timeout(self.inner.opts.busy_timeout);
        schema::exec_cached(conn, "BEGIN IMMEDIATE")
            .map_err(|e| Self::busy_with(e.into(), self.inner.opts.busy_timeout))?;
        let key = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.set_tx(
            &mut st,
            Some(TxOwner {
                key,
                thread: this_thread(),
            }),
        );
        Ok(TxKey(key))
    }

    /// Makes the calling thread the owner of `tx`: its plain calls are then
    /// the ones refused while `tx` is open, and other threads' wait. (A
    /// binding that began `tx` on a worker thread, so as not to block its
    /// event loop on the write lock, hands it to the loop's thread.)
    pub fn adopt(&self, tx: &TxKey) -> Result<()> {
        let mut st = self.lock();
        match st.tx {
            Some(o) if o.key == tx.0 => {
                let thread = this_thread();
                self.set_tx(&mut st, Some(TxOwner { thread, ..o }));
                Ok(())
            }
            _ => Err(Error::TransactionInactive),
        }
    }

    /// Runs `f` inside the transaction `tx`.
    pub fn run_tx<R>(
        &self,
        tx: &TxKey,
        f: impl FnOnce(&Connection, i64) -> Result<R>,
    ) -> Result<R> {
        self.check_process()?;
        let st = self.lock();
        if !matches!(st.tx, Some(o) if o.key == tx.0) {
            return Err(Error::TransactionInactive);
        }
        let conn = st.conn.as_ref().ok_or(Error::Closed)?;
        schema::set_busy_timeout(self.inner.opts.busy_timeout);
        // A panic inside an operation unwinds through its savepoint, which
        // rolls back; the caller's transaction stays open and usable.
        crate::guard(|| f(conn, self.now_ms()))
            .map_err(|e| Self::busy_with(e, self.inner.opts.busy_timeout))
    }

    fn finish(&self, tx: TxKey, sql: &str) -> Result<()> {
        let mut st = self.lock();
        if !matches!(st.tx, Some(o) if o.key == tx.0) {
            return Err(Error::TransactionInactive);
        }
        let result = match st.conn.as_ref() {
            None => Err(Error::Closed),
            Some(conn) => match schema::exec_cached(conn, sql) {
                Ok(()) => Ok(()),
                Err(e) => {
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    Err(e.into())
                }
            },
        };
        self.set_tx(&mut st, None);
        drop(st);
        self.inner.idle.notify_all();
        result
    }

    /// Commits `tx`. On failure the transaction is rolled back.
    pub fn commit(&self, tx: TxKey) -> Result<()> {
        self.finish(tx, "COMMIT")?;
        self.inner.watcher.local_commit();
        Ok(())
    }

    /// Rolls `tx` back.
    pub fn rollback(&self, tx: TxKey) -> Result<()> {
        self.finish(tx, "ROLLBACK")
    }

    /// Is a transaction open on this handle? (Never waits.)
    pub fn in_transaction(&self) -> bool {
        self.inner.tx_thread.load(Ordering::SeqCst) != 0
    }

    /// Does the calling thread own the transaction that is open now? (A
    /// binding that hands a call to another thread asks first: that thread
    /// would wait for this one's commit, which waits for the call. Never
    /// waits.)
    pub fn held_by_this_thread(&self) -> bool {
        self.inner.tx_thread.load(Ordering::SeqCst) == this_thread()
    }

    /// Records the open transaction (under the state lock) and its owner.
    fn set_tx(&self, st: &mut State, tx: Option<TxOwner>) {
        st.tx = tx;
        self.inner
            .tx_thread
            .store(tx.map_or(0, |o| o.thread), Ordering::SeqCst);
    }

    /// Closes the connection (rolling back an open transaction). Every later
    /// call on any clone fails with [`Error::Closed`]. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut st = self.lock();
        self.set_tx(&mut st, None);
        let conn = st.conn.take();
        drop(st);
        self.inner.idle.notify_all();
        if let Some(conn) = &conn {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let hooks = std::mem::take(
                &mut *self
                    .inner
                    .before_close
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            let now = self.now_ms();
            for h in hooks.iter().filter_map(std::sync::Weak::upgrade) {
                h.before_close(conn, now);
            }
        }
        for l in self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if let Some(l) = l.upgrade() {
                l.close();
            }
        }
        // Blocked waiters wake, call in, and get `Error::Closed`.
        self.inner.watcher.interrupt();
        if let Some(conn) = conn {
            conn.close().map_err(|(_, e)| Error::from(e))?;
        }
        Ok(())
    }

    /// Has [`Db::close`] been called?
    pub fn is_closed(&self) -> bool {
        self.lock().conn.is_none()
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
            .run(|c, _| {
                Ok(c.query_row(
                    "SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT synchronous FROM pragma_synchronous), (SELECT foreign_keys FROM pragma_foreign_keys)",
                    [],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
                )?)
            })
            .unwrap();
        assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
        assert_eq!(
            db.run(|c, _| schema::version(c)).unwrap(),
            schema::SCHEMA_VERSION
        );
    }

    #[test]
    fn same_thread_call_during_tx_is_refused_other_threads_wait() {
        let (_d, db) = open();
        let tx = db.begin().unwrap();
        assert_eq!(
            db.run(|_, _| Ok(())).unwrap_err().code(),
            "transaction_open"
        );
        assert_eq!(db.begin().unwrap_err().code(), "transaction_open");
        db.run_tx(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let other = db.clone();
        assert!(db.held_by_this_thread());
        let probe = db.clone();
        assert!(
            !std::thread::spawn(move || probe.held_by_this_thread())
                .join()
                .unwrap(),
            "another thread does not hold it"
        );
        let (sent, got) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let n: i64 = other
                .run(|c, _| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
                .unwrap();
            sent.send(n).unwrap();
        });
        // The other thread is parked until commit.
        assert!(got.recv_timeout(Duration::from_millis(50)).is_err());
        db.commit(tx).unwrap();
        assert!(!db.held_by_this_thread());
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
                db.run(|_, _| {
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
                .send((asker.in_transaction(), asker.held_by_this_thread()))
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
        let tx = std::thread::spawn(move || worker.begin().unwrap())
            .join()
            .unwrap();
        assert!(!db.held_by_this_thread());
        db.adopt(&tx).unwrap();
        assert!(db.held_by_this_thread());
        assert_eq!(
            db.run(|_, _| Ok(())).unwrap_err().code(),
            "transaction_open",
            "this thread owns it now: its plain calls are refused, not parked"
        );
        db.run_tx(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        db.commit(TxKey(tx.0)).unwrap();
        assert_eq!(db.adopt(&tx).unwrap_err().code(), "transaction_inactive");
    }

    #[test]
    fn rollback_and_inactive_and_closed() {
        let (_d, db) = open();
        let tx = db.begin().unwrap();
        db.run_tx(&tx, |c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let stale = TxKey(tx.0);
        db.rollback(tx).unwrap();
        assert_eq!(
            db.run_tx(&stale, |_, _| Ok(())).unwrap_err().code(),
            "transaction_inactive"
        );
        let exists: bool = db
            .run(|c, _| {
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
        assert_eq!(db.run(|_, _| Ok(())).unwrap_err().code(), "closed");
        assert_eq!(db.begin().unwrap_err().code(), "closed");
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
        db.run(|c, _| Ok(c.execute_batch("CREATE TABLE t (x)")?))
            .unwrap();
        let e = db
            .run::<()>(|c, _| {
                c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")?;
                panic!("deliberate")
            })
            .unwrap_err();
        assert_eq!(e.code(), "internal");
        assert!(e.to_string().contains("deliberate"), "{e}");
        let count = |db: &Db| {
            db.run(|c, _| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))?))
                .unwrap()
        };
        assert_eq!(count(&db), 0, "the half-done write was rolled back");
        // Inside a transaction: the transaction survives the panic.
        let tx = db.begin().unwrap();
        db.run_tx(&tx, |c, _| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
            .unwrap();
        let e = db
            .run_tx::<()>(&tx, |c, _| {
                crate::schema::atomic(c, |c| {
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
        db.run(|c, _| {
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
            .run(|c, now| crate::queue::claim(c, "emails", "w", 1, Duration::from_secs(5), now))
            .unwrap();
        assert_eq!(jobs[0].payload, r#"{"order":7}"#);
        // Without the opt-in, the same trigger is refused.
        drop(db);
        let db = Db::open(&own, OpenOptions::default()).unwrap();
        let e = db
            .run(|c, _| Ok(c.execute("INSERT INTO orders (id) VALUES (8)", [])?))
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
        assert_eq!(db.run(|_, now| Ok(now)).unwrap(), 42);
        clock.advance(8);
        assert_eq!(db.now_ms(), 50);
    }

    #[test]
    fn wal_autocheckpoint_is_set_per_handle() {
        let dir = tempdir::Dir::new();
        let pages = |db: &Db| db.run(|c, _| Ok(crate::wal::autocheckpoint(c))).unwrap();
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
