//! The open database, how its calls run, its transactions and raw SQL.

use crate::data::*;
use crate::error::*;
use crate::task::*;
use crate::waits::*;
use honker_core::{Db, Error, OpenOptions, Ops};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Mutex;

/// One open database file.
#[pyclass(frozen, module = "honker._honker")]
pub struct NativeDatabase {
    pub(crate) db: Db,
}

impl NativeDatabase {
    /// Runs `f` in `tx` when given, else on its own (releasing the GIL).
    pub(crate) fn op<R: Send>(
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
}
