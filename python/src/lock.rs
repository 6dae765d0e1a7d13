//! Locks, rate limits, results.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::waits::*;
use honker_core::wake::keepalive::Keeper;
use pyo3::prelude::*;
use std::sync::Mutex;

#[pymethods]
impl NativeDatabase {
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
}
