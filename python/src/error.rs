//! honker-core errors as Python exceptions (classes made from `Error::KINDS`), and argument checks.

use honker_core::{validate, Error};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
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
pub(crate) static CLASSES: pyo3::sync::PyOnceLock<Vec<Py<pyo3::types::PyType>>> =
    pyo3::sync::PyOnceLock::new();

pub(crate) fn make_classes(py: Python<'_>) -> PyResult<Vec<Py<pyo3::types::PyType>>> {
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

pub(crate) fn to_py(e: Error) -> PyErr {
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
pub(crate) fn ttl_ms(what: &'static str, s: f64) -> PyResult<i64> {
    validate::ttl_secs_f64(what, s).map_err(to_py)
}

// Counts and attempt budgets arrive as Python ints (i64) and are checked in
// core: an unsigned parameter would turn -1 into a bare OverflowError.

pub(crate) fn count(what: &'static str, n: i64) -> PyResult<usize> {
    validate::count(what, n).map_err(to_py)
}

pub(crate) fn attempts(what: &'static str, n: i64) -> PyResult<u32> {
    validate::attempts(what, n).map_err(to_py)
}

/// A Python int as an i64: one too large for 64 bits is `InvalidArgument`
/// naming it (pyo3 alone raises a bare `OverflowError`).
pub(crate) fn int(what: &'static str, v: &Bound<'_, PyAny>) -> PyResult<i64> {
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

pub(crate) fn opt_int(what: &'static str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    v.filter(|v| !v.is_none()).map(|v| int(what, v)).transpose()
}

pub(crate) fn secs(what: &'static str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| validate::secs_f64(what, s))
        .transpose()
        .map_err(to_py)
}
