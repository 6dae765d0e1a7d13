//! Streams and notifications.

use crate::database::*;
use crate::error::*;
use crate::task::*;
use crate::waits::*;
use honker_core::wake::wait;
use honker_core::{Error, Retention};
use pyo3::prelude::*;
use std::sync::Mutex;

#[pymethods]
impl NativeDatabase {
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
}
