//! Who a call acts for (thread or asyncio task) and the transaction handle.

use crate::error::*;
use crate::waits::*;
use honker_core::{Caller, Db, Error, Ops, TxKey};
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::Mutex;

/// An open write transaction; the Python `Transaction` context manager owns it.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeTx {
    pub(crate) key: Mutex<Option<TxKey>>,
}

impl NativeTx {
    /// Runs `f` on the operations inside this transaction (GIL released).
    pub(crate) fn run<R: Send>(
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
pub(crate) static ASYNCIO: pyo3::sync::PyOnceLock<(Py<PyAny>, Py<PyAny>)> =
    pyo3::sync::PyOnceLock::new();

/// Who is calling, for the transaction rule: the asyncio task a worker
/// thread runs a call for (`run_as`); on an event loop's thread its current
/// task (or the thread), never waiting, since the loop must not block; else
/// the thread.
pub(crate) fn caller(py: Python<'_>) -> PyResult<Caller> {
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
pub(crate) fn run_as(task: u64, f: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let before = ACTING_FOR.with(|a| a.replace(Some(task)));
    let got = f.call0();
    ACTING_FOR.with(|a| a.set(before));
    Ok(got?.unbind())
}
