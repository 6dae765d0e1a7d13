//! Plain values crossing the boundary and their conversions.

use crate::error::*;
use honker_core::model::DEFAULT_MAX_ATTEMPTS;
use honker_core::{validate, EnqueueOpts, JobRecord, SqlValue};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(frozen, get_all, module = "honker._honker")]
pub struct JobData {
    id: i64,
    pub(crate) queue: String,
    payload: String,
    state: &'static str,
    priority: i64,
    run_at_ms: i64,
    attempts: u32,
    max_attempts: u32,
    worker_id: Option<String>,
    lease_until_ms: Option<i64>,
    expires_at_ms: Option<i64>,
    pub(crate) key: Option<String>,
    last_error: Option<String>,
    created_at_ms: i64,
    dead_reason: Option<String>,
    died_at_ms: Option<i64>,
    started_at_ms: Option<i64>,
    completed_at_ms: Option<i64>,
    result: Option<String>,
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
            started_at_ms: j.started_at_ms,
            completed_at_ms: j.completed_at_ms,
            result: j.result,
        }
    }
}

pub(crate) fn enqueue_opts(
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
pub(crate) fn default_attempts(v: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    match opt_int("max_attempts", v)? {
        None => Ok(DEFAULT_MAX_ATTEMPTS),
        Some(n) => attempts("max_attempts", n),
    }
}

pub(crate) fn to_value(v: &Bound<'_, PyAny>) -> PyResult<SqlValue> {
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

pub(crate) fn from_value(py: Python<'_>, v: SqlValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        SqlValue::Null => py.None(),
        SqlValue::Integer(i) => i.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Real(f) => f.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Text(s) => s.into_pyobject(py)?.into_any().unbind(),
        SqlValue::Blob(b) => PyBytes::new(py, &b).into_any().unbind(),
    })
}

/// (name, queue, cron, payload, priority, paused, next_fire_at_ms, last_error)
pub(crate) type ScheduleRow = (
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
pub(crate) type LockRow = (String, String, i64, i64);
