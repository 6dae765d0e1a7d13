//! `honker._honker`: the native half of the Python package. Thin: it
//! converts values, releases the GIL around every call into SQLite, and maps
//! `honker_core::Error` codes to exception classes. The Python layer
//! (`honker/__init__.py`) adds JSON, keyword options and context managers.
//!
//! One file per concern: `error` (exception classes, argument checks),
//! `task` (who a call acts for; the transaction handle), `data` (plain
//! values crossing over), `waits` (listener, stop flag, cursor, lock
//! keeper), `database` (the handle, transactions, SQL) and the operations
//! by concern: `queue`, `stream`, `lock`, `scheduler` (several
//! `#[pymethods]` blocks of one class: pyo3's `multiple-pymethods`).

mod data;
mod database;
mod error;
mod lock;
mod queue;
mod scheduler;
mod stream;
mod task;
mod waits;
mod worker;

use data::JobData;
use database::NativeDatabase;
use error::*;
use honker_core::Error;
use pyo3::prelude::*;
use task::{run_as, NativeTx};
use waits::*;

/// Runs the operator's command (`honker ...`) with `args` (the program's
/// name first) in this process, the GIL released, and returns its exit
/// status: `python -m honker <command>`. For a process that is the
/// command (it restores SIGPIPE's default action).
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> u8 {
    py.detach(|| honker_cli::main_from(args))
}

#[pymodule]
pub(crate) fn _honker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let main: std::os::raw::c_ulong = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?
        .extract()?;
    let _ = MAIN_THREAD.set(main);
    // `open("postgresql://...")` selects the PostgreSQL backend.
    honker_postgres::register();
    m.add("EVENTS_STREAM", honker_core::EVENTS_STREAM)?;
    m.add_class::<NativeDatabase>()?;
    m.add_class::<NativeTx>()?;
    m.add_class::<NativeListener>()?;
    m.add_class::<NativeStop>()?;
    m.add_class::<NativeCursor>()?;
    m.add_class::<JobData>()?;
    m.add_class::<NativeKeeper>()?;
    m.add_class::<worker::NativeWorker>()?;
    m.add_class::<worker::NativeCancel>()?;
    m.add_function(wrap_pyfunction!(cron_next, m)?)?;
    m.add_function(wrap_pyfunction!(run_as, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add("HonkerError", py.get_type::<HonkerError>())?;
    let classes = CLASSES.get_or_try_init(py, || make_classes(py))?;
    for (kind, ty) in Error::KINDS.iter().zip(classes) {
        m.add(kind.class, ty.clone_ref(py))?;
    }
    m.add("VERSION", honker_core::VERSION)?;
    Ok(())
}
