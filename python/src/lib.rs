//! `honker._honker`: the native half of the Python package. Thin: it
//! converts values, releases the GIL around every call into SQLite, and maps
//! `honker_core::Error` codes to exception classes. The Python layer
//! (`honker/__init__.py`) adds JSON, keyword options and context managers.

use honker_core::model::{ScheduleSpec, DEFAULT_MAX_ATTEMPTS};
use honker_core::wake::keepalive::Keeper;
use honker_core::wake::wait;
use honker_core::wake::watcher::ListenerQueue;
use honker_core::{
    cron, validate, Caller, Db, EnqueueOpts, Error, JobRecord, Lease, OpenOptions, Ops, QueueOpts,
    Retention, SqlValue, TxKey,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

create_exception!(
    _honker,
    HonkerError,
    PyException,
    "Base class of every honker error."
);

/// One exception class per core error code, made at import from
/// `honker_core::Error::KINDS` (in its order), each a `HonkerError` with
/// the class attribute `code`.
static CLASSES: pyo3::sync::PyOnceLock<Vec<Py<pyo3::types::PyType>>> =
    pyo3::sync::PyOnceLock::new();

fn make_classes(py: Python<'_>) -> PyResult<Vec<Py<pyo3::types::PyType>>> {
    let base = py.get_type::<HonkerError>();
    Error::KINDS
        .iter()
        .map(|k| {
            let name = std::ffi::CString::new(format!("honker._honker.{}", k.class))?;
            let doc = std::ffi::CString::new(k.doc)?;
            let ty = PyErr::new_type(py, &name, Some(&doc), Some(&base), None)?;
            ty.bind(py).setattr("code", k.code)?;
            Ok(ty)
        })
        .collect()
}

fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    let code = e.code();
    Python::attach(|py| {
        let classes = match CLASSES.get_or_try_init(py, || make_classes(py)) {
            Ok(c) => c,
            Err(err) => return err,
        };
        match Error::KINDS.iter().position(|k| k.code == code) {
            Some(i) => PyErr::from_type(classes[i].bind(py).clone(), msg),
            None => HonkerError::new_err(msg),
        }
    })
}

/// A positive TTL or window in (possibly fractional) seconds, as ms.
fn ttl_ms(what: &'static str, s: f64) -> PyResult<i64> {
    validate::ttl_secs_f64(what, s).map_err(to_py)
}

// Counts and attempt budgets arrive as Python ints (i64) and are checked in
// core: an unsigned parameter would turn -1 into a bare OverflowError.

fn count(what: &'static str, n: i64) -> PyResult<usize> {
    validate::count(what, n).map_err(to_py)
}

fn attempts(what: &'static str, n: i64) -> PyResult<u32> {
    validate::attempts(what, n).map_err(to_py)
}

/// A Python int as an i64: one too large for 64 bits is `InvalidArgument`
/// naming it (pyo3 alone raises a bare `OverflowError`).
fn int(what: &'static str, v: &Bound<'_, PyAny>) -> PyResult<i64> {
    v.extract::<i64>().map_err(|e| {
        if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) {
            to_py(Error::invalid(
                what,
                format!("must fit in 64 bits (from -2**63 to 2**63 - 1), got {v}"),
            ))
        } else {
            e
        }
    })
}

fn opt_int(what: &'static str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    v.filter(|v| !v.is_none()).map(|v| int(what, v)).transpose()
}

fn secs(what: &'static str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| validate::secs_f64(what, s))
        .transpose()
        .map_err(to_py)
}

/// A claimed or looked-up job, as plain fields (the Python layer wraps it).
#[pyclass(frozen, get_all, module = "honker._honker")]
pub struct JobData {
    id: i64,
    queue: String,
    payload: String,
    state: &'static str,
    priority: i64,
    run_at_ms: i64,
    attempts: u32,
    max_attempts: u32,
    worker_id: Option<String>,
    lease_until_ms: Option<i64>,
    expires_at_ms: Option<i64>,
    key: Option<String>,
    last_error: Option<String>,
    created_at_ms: i64,
    dead_reason: Option<String>,
    died_at_ms: Option<i64>,
}

impl From<JobRecord> for JobData {
    fn from(j: JobRecord) -> Self {
        JobData {
            id: j.id,
            queue: j.queue,
            payload: j.payload,
            state: j.state.as_str(),
            priority: j.priority,
            run_at_ms: j.run_at_ms,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            worker_id: j.worker_id,
            lease_until_ms: j.lease_until_ms,
            expires_at_ms: j.expires_at_ms,
            key: j.key,
            last_error: j.last_error,
            created_at_ms: j.created_at_ms,
            dead_reason: j.dead_reason,
            died_at_ms: j.died_at_ms,
        }
    }
}

fn enqueue_opts(
    delay_s: Option<f64>,
    run_at_s: Option<f64>,
    priority: Option<&Bound<'_, PyAny>>,
    max_attempts: Option<&Bound<'_, PyAny>>,
    expires_s: Option<f64>,
    key: Option<String>,
) -> PyResult<EnqueueOpts> {
    Ok(EnqueueOpts {
        delay: secs("delay_s", delay_s)?,
        run_at: run_at_s
            .map(|s| validate::epoch_secs_f64("run_at", s))
            .transpose()
            .map_err(to_py)?,
        priority: opt_int("priority", priority)?.unwrap_or(0),
        max_attempts: opt_int("max_attempts", max_attempts)?
            .map(|n| attempts("max_attempts", n))
            .transpose()?,
        expires: secs("expires_s", expires_s)?,
        key,
    })
}

/// A queue's attempt budget (the queue handle's `max_attempts`).
fn default_attempts(v: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    match opt_int("max_attempts", v)? {
        None => Ok(DEFAULT_MAX_ATTEMPTS),
        Some(n) => attempts("max_attempts", n),
    }
}

fn to_value(v: &Bound<'_, PyAny>) -> PyResult<SqlValue> {
    if v.is_none() {
        Ok(SqlValue::Null)
    } else if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        Ok(SqlValue::Integer(b.is_true() as i64))
    } else if let Ok(i) = v.extract::<i64>() {
        Ok(SqlValue::Integer(i))
    } else if let Ok(f) = v.extract::<f64>() {
        Ok(SqlValue::Real(f))
    } else if let Ok(s) = v.extract::<String>() {
        Ok(SqlValue::Text(s))
    } else if let Ok(b) = v.cast::<PyBytes>() {
        Ok(SqlValue::Blob(b.as_bytes().to_vec()))
    } else {
        Err(PyTypeError::new_err(format!(
            "SQL parameters must be None, bool, int, float, str or bytes, got {}",
            v.get_type().name()?
        )))
    }
}

fn from_value(py: Python<'_>, v: SqlValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        SqlValue::Null => py.None(),
        SqlValue::Integer(i) => i.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Real(f) => f.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Text(s) => s.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Blob(b) => PyBytes::new(py, &b).into_any().unbind(),
    })
}

/// An open write transaction; the Python `Transaction` context manager owns it.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeTx {
    key: Mutex<Option<TxKey>>,
}

impl NativeTx {
    /// Runs `f` on the operations inside this transaction (GIL released).
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        db: &Db,
        f: impl FnOnce(&Ops<'_>) -> honker_core::Result<R> + Send,
    ) -> PyResult<R> {
        let key = lock_ok(&self.key);
        let key = key
            .as_ref()
            .ok_or_else(|| to_py(Error::TransactionInactive))?;
        py.detach(|| honker_core::guard(|| f(&db.in_tx(key))))
            .map_err(to_py)
    }
}

thread_local! {
    /// The asyncio task a worker thread calls for (see `run_as`).
    static ACTING_FOR: Cell<Option<u64>> = const { Cell::new(None) };
}

/// `asyncio._get_running_loop` and `asyncio.current_task`, looked up once.
static ASYNCIO: pyo3::sync::PyOnceLock<(Py<PyAny>, Py<PyAny>)> = pyo3::sync::PyOnceLock::new();

/// Who is calling, for the transaction rule: the asyncio task a worker
/// thread runs a call for (`run_as`); on an event loop's thread its current
/// task (or the thread), never waiting, since the loop must not block; else
/// the thread.
fn caller(py: Python<'_>) -> PyResult<Caller> {
    if let Some(task) = ACTING_FOR.with(Cell::get) {
        return Ok(Caller::host(task));
    }
    let (running_loop, current_task) = ASYNCIO.get_or_try_init(py, || {
        let asyncio = py.import("asyncio")?;
        PyResult::Ok((
            asyncio.getattr("_get_running_loop")?.unbind(),
            asyncio.getattr("current_task")?.unbind(),
        ))
    })?;
    let event_loop = running_loop.call0(py)?;
    if event_loop.is_none(py) {
        return Ok(Caller::this_thread());
    }
    let task = current_task.call1(py, (event_loop,))?;
    let me = if task.is_none(py) {
        Caller::this_thread()
    } else {
        Caller::host(task.as_ptr() as u64)
    };
    Ok(me.without_waiting())
}

/// Calls `f()` on this (worker) thread on behalf of the asyncio task whose
/// `id()` is `task`: the `_async` methods run their call through it, so the
/// transaction rule sees the task, not the thread.
#[pyfunction]
fn run_as(task: u64, f: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let before = ACTING_FOR.with(|a| a.replace(Some(task)));
    let got = f.call0();
    ACTING_FOR.with(|a| a.set(before));
    Ok(got?.unbind())
}

/// A blocking notification listener.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeListener {
    db: Db,
    queue: Arc<ListenerQueue>,
}

#[pymethods]
impl NativeListener {
    /// The next notification as (id, channel, payload), waiting up to
    /// `timeout_s` (forever when None); None on timeout or once closed.
    #[pyo3(signature = (timeout_s = None))]
    fn recv(
        &self,
        py: Python<'_>,
        timeout_s: Option<f64>,
    ) -> PyResult<Option<(i64, String, String)>> {
        let timeout = secs("timeout_s", timeout_s)?;
        let never = AtomicBool::new(false);
        let stop = Interruptible::new(&never);
        let watcher = honker_core::wake::watcher(&self.db);
        let got = py.detach(|| self.queue.recv_until(&watcher, timeout, &stop));
        Ok(stop.finish(got)?.map(|n| (n.id, n.channel, n.payload)))
    }

    /// The next notification if one has arrived, without waiting.
    fn try_recv(&self) -> Option<(i64, String, String)> {
        self.queue.try_recv().map(|n| (n.id, n.channel, n.payload))
    }

    fn close(&self) {
        self.queue.close()
    }
}

/// Python's main thread (`threading.main_thread().ident`), where Ctrl-C is
/// handled; set when the module is imported.
static MAIN_THREAD: OnceLock<std::os::raw::c_ulong> = OnceLock::new();

/// How often a blocking call on the main thread looks for a Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// What a blocking call (with the GIL released) stops on: its flag, and on
/// Python's main thread a pending signal, such as Ctrl-C, whose handler
/// raised. The handler's exception is kept for the caller to raise.
struct Interruptible<'a> {
    flag: &'a AtomicBool,
    on_main: bool,
    raised: Mutex<Option<PyErr>>,
}

impl<'a> Interruptible<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        // SAFETY: PyThread_get_thread_ident only reads the calling thread's id.
        let me = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        Interruptible {
            flag,
            on_main: MAIN_THREAD.get() == Some(&me),
            raised: Mutex::new(None),
        }
    }

    /// The wait's result, or the exception a signal handler raised during it.
    fn finish<T>(self, got: honker_core::Result<Option<T>>) -> PyResult<Option<T>> {
        let got = got.map_err(to_py)?;
        match self.raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) if got.is_none() => Err(e),
            _ => Ok(got),
        }
    }
}

impl wait::Stop for Interruptible<'_> {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || lock_ok(&self.raised).is_some()
    }

    fn poll_every(&self) -> Option<Duration> {
        self.on_main.then_some(SIGNAL_POLL)
    }

    fn check(&self) -> bool {
        match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(e) => {
                *lock_ok(&self.raised) = Some(e);
                true
            }
        }
    }
}

/// A lock that a panicked holder left poisoned still guards good data here.
fn lock_ok<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stop flag for blocking calls, settable from any thread.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeStop {
    db: Db,
    flag: Arc<AtomicBool>,
}

#[pymethods]
impl NativeStop {
    fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        honker_core::wake::watcher(&self.db).interrupt();
    }

    fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A stream consumer's cursor (at-least-once; see `honker_core::wait`).
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeCursor {
    db: Db,
    cursor: Mutex<wait::StreamCursor>,
}

#[pymethods]
impl NativeCursor {
    /// The next event as (offset, key, payload), waiting up to `timeout_s`
    /// (forever when None); None on timeout or stop.
    #[pyo3(signature = (stop, timeout_s = None))]
    fn next(
        &self,
        py: Python<'_>,
        stop: &NativeStop,
        timeout_s: Option<f64>,
    ) -> PyResult<Option<(i64, Option<String>, String)>> {
        let timeout = secs("timeout_s", timeout_s)?;
        let me = caller(py)?;
        let stop = Interruptible::new(&stop.flag);
        let got = py.detach(|| {
            let mut cursor = lock_ok(&self.cursor);
            cursor.next(&self.db, me, timeout, &stop)
        });
        Ok(stop.finish(got)?.map(|e| (e.offset, e.key, e.payload)))
    }

    /// The next event if one is already fetched, without the database or a
    /// wait (None as well while another thread uses the cursor).
    fn next_buffered(&self) -> Option<(i64, Option<String>, String)> {
        let ev = self.cursor.try_lock().ok()?.next_buffered()?;
        Some((ev.offset, ev.key, ev.payload))
    }

    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.with_cursor(py, |c, db, me| c.commit(db, me))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with_cursor(py, |c, db, me| c.flush(db, me))
    }
}

impl NativeCursor {
    /// Runs `f` on the locked cursor with the GIL released.
    fn with_cursor<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut wait::StreamCursor, &Db, Caller) -> honker_core::Result<R> + Send,
    ) -> PyResult<R> {
        let me = caller(py)?;
        py.detach(|| f(&mut lock_ok(&self.cursor), &self.db, me))
            .map_err(to_py)
    }
}

/// (name, queue, cron, payload, priority, paused, next_fire_at_ms, last_error)
type ScheduleRow = (
    String,
    String,
    String,
    String,
    i64,
    bool,
    i64,
    Option<String>,
);

/// (name, owner, token, expires_at_ms)
type LockRow = (String, String, i64, i64);

/// The first fire of cron expression `expr` (optionally in zone `tz`)
/// strictly after `after_s` (epoch seconds), in ms since the epoch.
#[pyfunction]
#[pyo3(signature = (expr, after_s, tz = None))]
fn cron_next(py: Python<'_>, expr: String, after_s: f64, tz: Option<String>) -> PyResult<i64> {
    let after = secs("after", Some(after_s))?.unwrap_or_default();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    py.detach(|| honker_core::guard(|| cron::next_fire(&expr, tz.as_deref(), after_ms)))
        .map_err(to_py)
}

/// A held lock renewed in the background (see `honker_core::keepalive`).
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeKeeper {
    keeper: Mutex<Keeper>,
}

#[pymethods]
impl NativeKeeper {
    fn is_lost(&self) -> bool {
        lock_ok(&self.keeper).is_lost()
    }

    fn mark_lost(&self) {
        lock_ok(&self.keeper).mark_lost()
    }

    fn set_ttl(&self, ttl_s: f64) -> PyResult<()> {
        lock_ok(&self.keeper).set_ttl(ttl_ms("ttl_s", ttl_s)?);
        Ok(())
    }

    fn stop(&self, py: Python<'_>) {
        py.detach(|| lock_ok(&self.keeper).stop())
    }
}

/// One open database file.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeDatabase {
    db: Db,
}

impl NativeDatabase {
    /// Runs `f` in `tx` when given, else on its own (releasing the GIL).
    fn op<R: Send>(
        &self,
        py: Python<'_>,
        tx: Option<&NativeTx>,
        f: impl FnOnce(&Ops<'_>) -> honker_core::Result<R> + Send,
    ) -> PyResult<R> {
        match tx {
            Some(tx) => tx.run(py, &self.db, f),
            None => {
                let me = caller(py)?;
                py.detach(|| honker_core::guard(|| f(&self.db.by(me))))
                    .map_err(to_py)
            }
        }
    }
}

#[pymethods]
impl NativeDatabase {
    #[new]
    #[pyo3(signature = (path, busy_timeout_s = 10.0, wal_autocheckpoint = None, trusted_schema = false))]
    fn new(
        py: Python<'_>,
        path: String,
        busy_timeout_s: f64,
        wal_autocheckpoint: Option<&Bound<'_, PyAny>>,
        trusted_schema: bool,
    ) -> PyResult<Self> {
        let busy_timeout = secs("busy_timeout_s", Some(busy_timeout_s))?.unwrap_or_default();
        let wal_autocheckpoint = opt_int("wal_autocheckpoint", wal_autocheckpoint)?
            .unwrap_or(honker_core::handle::DEFAULT_WAL_AUTOCHECKPOINT.into());
        let opts = OpenOptions {
            trusted_schema,
            busy_timeout,
            wal_autocheckpoint: u32::try_from(wal_autocheckpoint).map_err(|_| {
                to_py(Error::invalid(
                    "wal_autocheckpoint",
                    format!(
                        "must be a whole number of pages from 0 to {}, got {wal_autocheckpoint}",
                        u32::MAX
                    ),
                ))
            })?,
            ..OpenOptions::default()
        };
        let db = py
            .detach(|| honker_core::open(&path, opts))
            .map_err(to_py)?;
        Ok(NativeDatabase { db })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.db.close()).map_err(to_py)
    }

    fn is_closed(&self) -> bool {
        self.db.is_closed()
    }

    // -- transactions --

    fn begin(&self, py: Python<'_>) -> PyResult<NativeTx> {
        let me = caller(py)?;
        let key = py.detach(|| self.db.begin(me)).map_err(to_py)?;
        Ok(NativeTx {
            key: Mutex::new(Some(key)),
        })
    }

    fn commit(&self, py: Python<'_>, tx: &NativeTx) -> PyResult<()> {
        let key = lock_ok(&tx.key).take();
        let key = key.ok_or_else(|| to_py(Error::TransactionInactive))?;
        py.detach(|| self.db.commit(key)).map_err(to_py)
    }

    fn rollback(&self, py: Python<'_>, tx: &NativeTx) -> PyResult<()> {
        let key = lock_ok(&tx.key).take();
        let key = key.ok_or_else(|| to_py(Error::TransactionInactive))?;
        py.detach(|| self.db.rollback(key)).map_err(to_py)
    }

    /// Runs one statement (in `tx` when given; prepared once and cached);
    /// returns rows changed.
    #[pyo3(signature = (sql, params, tx = None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: String,
        params: Vec<Bound<'_, PyAny>>,
        tx: Option<&NativeTx>,
    ) -> PyResult<usize> {
        let values = params.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
        self.op(py, tx, |o| o.execute(&sql, values))
    }

    /// Runs a query (in `tx` when given); returns a list of dicts.
    #[pyo3(signature = (sql, params, tx = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Vec<Bound<'py, PyAny>>,
        tx: Option<&NativeTx>,
    ) -> PyResult<Bound<'py, PyList>> {
        let values = params.iter().map(to_value).collect::<PyResult<Vec<_>>>()?;
        let rows = self.op(py, tx, |o| o.query(&sql, values))?;
        let out = PyList::empty(py);
        for row in rows.rows {
            let d = PyDict::new(py);
            for (k, v) in rows.columns.iter().zip(row) {
                d.set_item(k, from_value(py, v)?)?;
            }
            out.append(d)?;
        }
        Ok(out)
    }

    // -- queues --

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (queue, payload, *, tx = None, delay_s = None, run_at_s = None, priority = None, max_attempts = None, expires_s = None, key = None, default_max_attempts = None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        queue: String,
        payload: String,
        tx: Option<&NativeTx>,
        delay_s: Option<f64>,
        run_at_s: Option<f64>,
        priority: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        key: Option<String>,
        default_max_attempts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<i64> {
        let opts = enqueue_opts(delay_s, run_at_s, priority, max_attempts, expires_s, key)?;
        let default_max_attempts = default_attempts(default_max_attempts)?;
        self.op(py, tx, |o| {
            o.enqueue(&queue, &payload, &opts, default_max_attempts)
        })
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (queue, payloads, *, tx = None, delay_s = None, run_at_s = None, priority = None, max_attempts = None, expires_s = None, default_max_attempts = None))]
    fn enqueue_many(
        &self,
        py: Python<'_>,
        queue: String,
        payloads: Vec<String>,
        tx: Option<&NativeTx>,
        delay_s: Option<f64>,
        run_at_s: Option<f64>,
        priority: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        default_max_attempts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<i64>> {
        let opts = enqueue_opts(delay_s, run_at_s, priority, max_attempts, expires_s, None)?;
        let default_max_attempts = default_attempts(default_max_attempts)?;
        self.op(py, tx, |o| {
            o.enqueue_many(&queue, &payloads, &opts, default_max_attempts)
        })
    }

    #[pyo3(signature = (queue, worker, n, visibility_timeout_s = 300.0))]
    fn claim_batch(
        &self,
        py: Python<'_>,
        queue: String,
        worker: String,
        n: &Bound<'_, PyAny>,
        visibility_timeout_s: f64,
    ) -> PyResult<Vec<JobData>> {
        let n = count("n", int("n", n)?)?;
        let vt = secs("visibility_timeout_s", Some(visibility_timeout_s))?.unwrap_or_default();
        let jobs = self.op(py, None, |o| o.claim(&queue, &worker, n, vt))?;
        Ok(jobs.into_iter().map(JobData::from).collect())
    }

    /// Blocks until a job is claimed (woken by commits, run_at, lease ends);
    /// None on timeout or stop.
    #[pyo3(signature = (queue, worker, stop, visibility_timeout_s = 300.0, max_attempts = None, timeout_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn claim_next(
        &self,
        py: Python<'_>,
        queue: String,
        worker: String,
        stop: &NativeStop,
        visibility_timeout_s: f64,
        max_attempts: Option<&Bound<'_, PyAny>>,
        timeout_s: Option<f64>,
    ) -> PyResult<Option<JobData>> {
        let opts = QueueOpts {
            visibility_timeout: secs("visibility_timeout_s", Some(visibility_timeout_s))?
                .unwrap_or_default(),
            max_attempts: default_attempts(max_attempts)?,
        };
        let timeout = secs("timeout_s", timeout_s)?;
        let me = caller(py)?;
        let stop = Interruptible::new(&stop.flag);
        let got =
            py.detach(|| wait::claim_next(&self.db, me, &queue, &worker, &opts, timeout, &stop));
        Ok(stop.finish(got)?.map(JobData::from))
    }

    fn stop_flag(&self) -> NativeStop {
        NativeStop {
            db: self.db.clone(),
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    #[pyo3(signature = (id, worker, attempt, tx = None))]
    fn ack(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        tx: Option<&NativeTx>,
    ) -> PyResult<bool> {
        self.op(py, tx, |o| o.ack(Lease::new(id, &worker, attempt)))
    }

    /// Acks each job whose lease, given as (id, worker, attempt), is current.
    #[pyo3(signature = (leases, tx = None))]
    fn ack_batch(
        &self,
        py: Python<'_>,
        leases: Vec<(i64, String, u32)>,
        tx: Option<&NativeTx>,
    ) -> PyResult<usize> {
        self.op(py, tx, |o| {
            let leases: Vec<Lease<'_>> = leases
                .iter()
                .map(|(id, worker, attempt)| Lease::new(*id, worker, *attempt))
                .collect();
            o.ack_batch(&leases)
        })
    }

    #[pyo3(signature = (id, worker, attempt, delay_s = None, error = String::new()))]
    fn retry(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        delay_s: Option<f64>,
        error: String,
    ) -> PyResult<bool> {
        let delay = secs("delay_s", delay_s)?;
        self.op(py, None, |o| {
            o.retry(Lease::new(id, &worker, attempt), delay, &error)
        })
    }

    fn release(&self, py: Python<'_>, id: i64, worker: String, attempt: u32) -> PyResult<bool> {
        self.op(py, None, |o| o.release(Lease::new(id, &worker, attempt)))
    }

    #[pyo3(signature = (id, worker, attempt, error = String::new()))]
    fn fail(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        error: String,
    ) -> PyResult<bool> {
        self.op(py, None, |o| {
            o.fail(Lease::new(id, &worker, attempt), &error)
        })
    }

    fn heartbeat(
        &self,
        py: Python<'_>,
        id: i64,
        worker: String,
        attempt: u32,
        extend_s: f64,
    ) -> PyResult<bool> {
        let extend = secs("extend_s", Some(extend_s))?.unwrap_or_default();
        self.op(py, None, |o| {
            o.heartbeat(Lease::new(id, &worker, attempt), extend)
        })
    }

    fn cancel(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = int("id", id)?;
        self.op(py, None, |o| o.cancel(id))
    }

    /// Deletes `queue`'s ready jobs; returns how many.
    fn purge(&self, py: Python<'_>, queue: String) -> PyResult<usize> {
        self.op(py, None, |o| o.purge(&queue))
    }

    fn get_job(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<Option<JobData>> {
        let id = int("id", id)?;
        Ok(self.op(py, None, |o| o.get_job(id))?.map(JobData::from))
    }

    fn dead_jobs(
        &self,
        py: Python<'_>,
        queue: String,
        limit: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<JobData>> {
        let limit = count("limit", int("limit", limit)?)?;
        Ok(self
            .op(py, None, |o| o.dead_jobs(&queue, limit))?
            .into_iter()
            .map(JobData::from)
            .collect())
    }

    fn requeue_dead(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = int("id", id)?;
        self.op(py, None, |o| o.requeue_dead(id))
    }

    /// Dead-letters `queue`'s jobs past their start deadline; returns how many.
    fn sweep_expired(&self, py: Python<'_>, queue: String) -> PyResult<usize> {
        self.op(py, None, |o| o.sweep_expired(Some(&queue)))
    }

    /// `queue`'s job counts as (ready, scheduled, processing, dead).
    fn queue_stats(&self, py: Python<'_>, queue: String) -> PyResult<(u64, u64, u64, u64)> {
        let s = self.op(py, None, |o| o.queue_stats(&queue))?;
        Ok((s.ready, s.scheduled, s.processing, s.dead))
    }

    /// The earliest scheduled `run_at` or lease end in `queue`, ms since the
    /// epoch; None if nothing is pending.
    fn next_deadline_ms(&self, py: Python<'_>, queue: String) -> PyResult<Option<i64>> {
        self.op(py, None, |o| o.next_deadline(&queue))
    }

    // -- streams, notify --

    #[pyo3(signature = (stream, payload, key = None, tx = None))]
    fn publish(
        &self,
        py: Python<'_>,
        stream: String,
        payload: String,
        key: Option<String>,
        tx: Option<&NativeTx>,
    ) -> PyResult<i64> {
        self.op(py, tx, |o| o.publish(&stream, key.as_deref(), &payload))
    }

    fn read_since(
        &self,
        py: Python<'_>,
        stream: String,
        offset: &Bound<'_, PyAny>,
        limit: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(i64, Option<String>, String)>> {
        let offset = int("offset", offset)?;
        let limit = count("limit", int("limit", limit)?)?;
        let evs = self.op(py, None, |o| o.read_since(&stream, offset, limit))?;
        Ok(evs
            .into_iter()
            .map(|e| (e.offset, e.key, e.payload))
            .collect())
    }

    #[pyo3(signature = (stream, consumer, offset, tx = None))]
    fn save_offset(
        &self,
        py: Python<'_>,
        stream: String,
        consumer: String,
        offset: &Bound<'_, PyAny>,
        tx: Option<&NativeTx>,
    ) -> PyResult<bool> {
        let offset = int("offset", offset)?;
        self.op(py, tx, |o| o.save_offset(&stream, &consumer, offset))
    }

    fn get_offset(&self, py: Python<'_>, stream: String, consumer: String) -> PyResult<i64> {
        self.op(py, None, |o| o.get_offset(&stream, &consumer))
    }

    fn last_offset(&self, py: Python<'_>, stream: String) -> PyResult<i64> {
        self.op(py, None, |o| o.last_offset(&stream))
    }

    /// Stores `stream`'s retention (neither limit: keep everything).
    #[pyo3(signature = (stream, *, max_age_s = None, max_count = None))]
    fn set_retention(
        &self,
        py: Python<'_>,
        stream: String,
        max_age_s: Option<f64>,
        max_count: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let max_age = secs("max_age_s", max_age_s)?;
        let max_count = opt_int("max_count", max_count)?
            .map(|n| {
                u64::try_from(n).map_err(|_| Error::invalid("max_count", "must not be negative"))
            })
            .transpose()
            .map_err(to_py)?;
        self.op(py, None, |o| {
            o.set_retention(&stream, Retention { max_age, max_count })
        })
    }

    /// `stream`'s stored retention as (max_age_s, max_count).
    fn retention(&self, py: Python<'_>, stream: String) -> PyResult<(Option<f64>, Option<u64>)> {
        let r = self.op(py, None, |o| o.retention(&stream))?;
        Ok((r.max_age.map(|d| d.as_secs_f64()), r.max_count))
    }

    /// Applies `stream`'s retention now; returns how many events were removed.
    fn prune(&self, py: Python<'_>, stream: String) -> PyResult<usize> {
        self.op(py, None, |o| o.prune_stream(&stream))
    }

    fn cursor(&self, py: Python<'_>, stream: String, consumer: String) -> PyResult<NativeCursor> {
        let me = caller(py)?;
        let c = py
            .detach(|| wait::StreamCursor::open(&self.db, me, &stream, &consumer))
            .map_err(to_py)?;
        Ok(NativeCursor {
            db: self.db.clone(),
            cursor: Mutex::new(c),
        })
    }

    #[pyo3(signature = (channel, payload, tx = None))]
    fn notify(
        &self,
        py: Python<'_>,
        channel: String,
        payload: String,
        tx: Option<&NativeTx>,
    ) -> PyResult<i64> {
        self.op(py, tx, |o| o.notify(&channel, &payload))
    }

    // -- locks, rate limits, results --

    fn try_lock(
        &self,
        py: Python<'_>,
        name: String,
        owner: String,
        ttl_s: f64,
    ) -> PyResult<Option<i64>> {
        let ttl = ttl_ms("ttl_s", ttl_s)?;
        self.op(py, None, |o| o.try_lock(&name, &owner, ttl))
    }

    fn renew_lock(&self, py: Python<'_>, name: String, token: i64, ttl_s: f64) -> PyResult<bool> {
        let ttl = ttl_ms("ttl_s", ttl_s)?;
        self.op(py, None, |o| o.renew_lock(&name, token, ttl))
    }

    /// Starts renewing a held lock in the background (every third of
    /// `ttl_s`) until stopped; the keeper records a loss.
    fn keep_lock(&self, name: String, token: i64, ttl_s: f64) -> PyResult<NativeKeeper> {
        let ttl = ttl_ms("ttl_s", ttl_s)?;
        let keeper = Keeper::start(&self.db, &name, token, ttl).map_err(to_py)?;
        Ok(NativeKeeper {
            keeper: Mutex::new(keeper),
        })
    }

    fn release_lock(&self, py: Python<'_>, name: String, token: i64) -> PyResult<bool> {
        self.op(py, None, |o| o.release_lock(&name, token))
    }

    /// Who holds lock `name` now, as (name, owner, token, expires_at_ms).
    fn lock_holder(&self, py: Python<'_>, name: String) -> PyResult<Option<LockRow>> {
        let info = self.op(py, None, |o| o.lock_holder(&name))?;
        Ok(info.map(|i| (i.name, i.owner, i.token, i.expires_at_ms)))
    }

    fn try_rate_limit(
        &self,
        py: Python<'_>,
        key: String,
        limit: &Bound<'_, PyAny>,
        per_s: f64,
    ) -> PyResult<bool> {
        let limit = int("limit", limit)?;
        let per = ttl_ms("per_s", per_s)?;
        self.op(py, None, |o| o.try_rate_limit(&key, limit, per))
    }

    fn save_result(
        &self,
        py: Python<'_>,
        job_id: &Bound<'_, PyAny>,
        value: String,
        ttl_s: f64,
    ) -> PyResult<()> {
        let job_id = int("job_id", job_id)?;
        let ttl = ttl_ms("ttl_s", ttl_s)?;
        self.op(py, None, |o| o.save_result(job_id, &value, ttl))
    }

    fn get_result(&self, py: Python<'_>, job_id: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let job_id = int("job_id", job_id)?;
        self.op(py, None, |o| o.get_result(job_id))
    }

    /// Removes every expired result; returns how many.
    fn sweep_results(&self, py: Python<'_>) -> PyResult<usize> {
        self.op(py, None, |o| o.sweep_results())
    }

    // -- schedules --

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, queue, schedule, payload, priority = None, expires_s = None, tz = None))]
    fn schedule_add(
        &self,
        py: Python<'_>,
        name: String,
        queue: String,
        schedule: String,
        payload: String,
        priority: Option<&Bound<'_, PyAny>>,
        expires_s: Option<f64>,
        tz: Option<String>,
    ) -> PyResult<()> {
        let priority = opt_int("priority", priority)?.unwrap_or(0);
        let expires = secs("expires_s", expires_s)?;
        self.op(py, None, |o| {
            let spec = ScheduleSpec {
                name: &name,
                queue: &queue,
                cron: &schedule,
                tz: tz.as_deref(),
                payload: &payload,
                priority,
                expires,
            };
            o.schedule_add(&spec)
        })
    }

    fn schedule_remove(&self, py: Python<'_>, name: String) -> PyResult<bool> {
        self.op(py, None, |o| o.schedule_remove(&name))
    }

    fn schedule_pause(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.op(py, None, |o| o.schedule_pause(&name))
    }

    fn schedule_resume(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.op(py, None, |o| o.schedule_resume(&name))
    }

    /// Every schedule as (name, queue, cron, payload, priority, paused,
    /// next_fire_at_ms, last_error).
    fn schedule_list(&self, py: Python<'_>) -> PyResult<Vec<ScheduleRow>> {
        let list = self.op(py, None, |o| o.schedule_list())?;
        Ok(list
            .into_iter()
            .map(|s| {
                (
                    s.name,
                    s.queue,
                    s.cron,
                    s.payload,
                    s.priority,
                    s.paused,
                    s.next_fire_at_ms,
                    s.last_error,
                )
            })
            .collect())
    }

    /// Fires what is due; returns (name, job_id, fire_at_ms) per fire.
    fn schedule_tick(&self, py: Python<'_>) -> PyResult<Vec<(String, i64, i64)>> {
        let fired = self.op(py, None, |o| o.schedule_tick())?.0;
        Ok(fired
            .into_iter()
            .map(|f| (f.name, f.job_id, f.fire_at_ms))
            .collect())
    }

    /// The next fire of any unpaused schedule, ms since the epoch.
    fn schedule_soonest(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        self.op(py, None, |o| o.schedule_soonest())
    }

    /// Runs the scheduler until `stop` is set (leader election, fenced fires).
    #[pyo3(signature = (owner, stop, lock_ttl_s = 10.0))]
    fn run_scheduler(
        &self,
        py: Python<'_>,
        owner: String,
        stop: &NativeStop,
        lock_ttl_s: f64,
    ) -> PyResult<()> {
        let opts = wait::SchedulerOpts {
            lock_ttl: secs("lock_ttl_s", Some(lock_ttl_s))?.unwrap_or_default(),
            ..wait::SchedulerOpts::default()
        };
        let stop = Interruptible::new(&stop.flag);
        // Each problem goes to the `honker.scheduler` logger.
        let mut report = |p: &wait::SchedulerProblem<'_>| {
            let msg = p.to_string();
            Python::attach(|py| {
                let logged = py
                    .import("logging")
                    .and_then(|l| l.call_method1("getLogger", ("honker.scheduler",)))
                    .and_then(|l| l.call_method1("warning", (msg,)));
                if let Err(e) = logged {
                    e.write_unraisable(py, None);
                }
            })
        };
        // It returns once stopped: a signal's exception, if any, is raised.
        let me = caller(py)?;
        let got = py.detach(|| {
            wait::run_scheduler(&self.db, me, &stop, &owner, &opts, &mut report).map(|()| None)
        });
        stop.finish::<()>(got).map(|_| ())
    }

    /// Panics inside an operation, to show the guard at the boundary: the
    /// caller gets `InternalError`, never a `PanicException`. For tests.
    fn _panic_for_test(&self, py: Python<'_>) -> PyResult<()> {
        self.op(py, None, |_| panic!("a deliberate panic, for a test"))
    }

    fn listen(&self, py: Python<'_>, channel: String) -> PyResult<NativeListener> {
        let queue = py
            .detach(|| honker_core::wake::listen(&self.db, &channel))
            .map_err(to_py)?;
        Ok(NativeListener {
            db: self.db.clone(),
            queue,
        })
    }
}

#[pymodule]
fn _honker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let main: std::os::raw::c_ulong = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?
        .extract()?;
    let _ = MAIN_THREAD.set(main);
    m.add_class::<NativeDatabase>()?;
    m.add_class::<NativeTx>()?;
    m.add_class::<NativeListener>()?;
    m.add_class::<NativeStop>()?;
    m.add_class::<NativeCursor>()?;
    m.add_class::<JobData>()?;
    m.add_class::<NativeKeeper>()?;
    m.add_function(wrap_pyfunction!(cron_next, m)?)?;
    m.add_function(wrap_pyfunction!(run_as, m)?)?;
    m.add("HonkerError", py.get_type::<HonkerError>())?;
    let classes = CLASSES.get_or_try_init(py, || make_classes(py))?;
    for (kind, ty) in Error::KINDS.iter().zip(classes) {
        m.add(kind.class, ty.clone_ref(py))?;
    }
    m.add("VERSION", honker_core::VERSION)?;
    Ok(())
}
