//! Locks, rate limits, results.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::task::*;
use napi_derive::napi;

#[napi]
impl NativeDatabase {
    // -- locks, rate limits, results --

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number | null : Promise<number | null>"
    )]
    pub fn try_lock(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        name: String,
        owner: String,
        ttl_s: f64,
    ) -> Result<Run<Option<i64>>> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        self.run(sync, None, move |o| o.try_lock(&name, &owner, ttl))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn renew_lock(&self, name: String, token: i64, ttl_s: f64) -> Result<AsyncOp<bool>> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        Ok(self.later(None, move |o| o.renew_lock(&name, token, ttl)))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn release_lock(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        name: String,
        token: i64,
    ) -> Result<Run<bool>> {
        self.run(sync, None, move |o| o.release_lock(&name, token))
    }

    /// Who holds lock `name` now (null if nobody: an expired lock is free).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? LockHolderData | null : Promise<LockHolderData | null>"
    )]
    pub fn lock_holder(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        name: String,
    ) -> Result<Run<Option<LockHolderData>>> {
        self.run(sync, None, move |o| {
            Ok(o.lock_holder(&name)?.map(holder_out))
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn try_rate_limit(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        key: String,
        limit: f64,
        per_s: f64,
    ) -> Result<Run<bool>> {
        let per = ttl_ms("perS", per_s)?;
        let limit = whole("limit", limit)?;
        self.run(sync, None, move |o| o.try_rate_limit(&key, limit, per))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn save_result(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        job_id: f64,
        value: String,
        ttl_s: f64,
    ) -> Result<Run<()>> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        let job_id = whole("jobId", job_id)?;
        self.run(sync, None, move |o| o.save_result(job_id, &value, ttl))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? string | null : Promise<string | null>"
    )]
    pub fn get_result(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        job_id: f64,
    ) -> Result<Run<Option<String>>> {
        let job_id = whole("jobId", job_id)?;
        self.run(sync, None, move |o| o.get_result(job_id))
    }

    /// Removes every expired result now; returns how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn sweep_results(&self) -> AsyncOp<i64> {
        self.later(None, |o| Ok(o.sweep_results()? as i64))
    }
}
