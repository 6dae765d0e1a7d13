//! Waits that can last (listener, stop flag, stream cursor), a lock keeper, and cron.

use crate::error::*;
use crate::task::*;
use honker_core::wake::keepalive::Keeper;
use honker_core::wake::wait;
use honker_core::wake::watcher::ListenerQueue;
use honker_core::{cron, Caller, Db};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A blocking notification listener.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeListener {
    pub(crate) db: Db,
    pub(crate) queue: Arc<ListenerQueue>,
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
pub(crate) static MAIN_THREAD: OnceLock<std::os::raw::c_ulong> = OnceLock::new();

/// How often a blocking call on the main thread looks for a Ctrl-C.
pub(crate) const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// What a blocking call (with the GIL released) stops on: its flag, and on
/// Python's main thread a pending signal, such as Ctrl-C, whose handler
/// raised. The handler's exception is kept for the caller to raise.
pub(crate) struct Interruptible<'a> {
    pub(crate) flag: &'a AtomicBool,
    on_main: bool,
    raised: Mutex<Option<PyErr>>,
}

impl<'a> Interruptible<'a> {
    pub(crate) fn new(flag: &'a AtomicBool) -> Self {
        // SAFETY: PyThread_get_thread_ident only reads the calling thread's id.
        let me = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        Interruptible {
            flag,
            on_main: MAIN_THREAD.get() == Some(&me),
            raised: Mutex::new(None),
        }
    }

    /// The wait's result, or the exception a signal handler raised during it.
    pub(crate) fn finish<T>(self, got: honker_core::Result<Option<T>>) -> PyResult<Option<T>> {
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
pub(crate) fn lock_ok<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stop flag for blocking calls, settable from any thread.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeStop {
    pub(crate) db: Db,
    pub(crate) flag: Arc<AtomicBool>,
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
    pub(crate) db: Db,
    pub(crate) cursor: Mutex<wait::StreamCursor>,
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

/// The first fire of cron expression `expr` (optionally in zone `tz`)
/// strictly after `after_s` (epoch seconds), in ms since the epoch.
#[pyfunction]
#[pyo3(signature = (expr, after_s, tz = None))]
pub(crate) fn cron_next(
    py: Python<'_>,
    expr: String,
    after_s: f64,
    tz: Option<String>,
) -> PyResult<i64> {
    let after = secs("after", Some(after_s))?.unwrap_or_default();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    py.detach(|| honker_core::guard(|| cron::next_fire(&expr, tz.as_deref(), after_ms)))
        .map_err(to_py)
}

/// A held lock renewed in the background (see `honker_core::keepalive`).
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeKeeper {
    pub(crate) keeper: Mutex<Keeper>,
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
