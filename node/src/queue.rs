//! Queue operations.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::handles::*;
use crate::task::*;
use honker_core::wake::wait;
use honker_core::{Lease, QueueOpts};
use napi::Env;
use napi_derive::napi;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[napi]
impl NativeDatabase {
    // -- queues --

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn enqueue(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        payload: String,
        opts: Option<EnqueueOptions>,
        tx: Option<&NativeTx>,
        default_max_attempts: f64,
    ) -> Result<Run<i64>> {
        let opts = enqueue_opts(opts)?;
        let default_max_attempts = attempts("maxAttempts", default_max_attempts)?;
        self.run(sync, tx, move |o| {
            o.enqueue(&queue, &payload, &opts, default_max_attempts)
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number[] : Promise<number[]>"
    )]
    pub fn enqueue_many(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        payloads: Vec<String>,
        opts: Option<EnqueueOptions>,
        tx: Option<&NativeTx>,
        default_max_attempts: f64,
    ) -> Result<Run<Vec<i64>>> {
        let opts = enqueue_opts(opts)?;
        let default_max_attempts = attempts("maxAttempts", default_max_attempts)?;
        self.run(sync, tx, move |o| {
            o.enqueue_many(&queue, &payloads, &opts, default_max_attempts)
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? JobData[] : Promise<JobData[]>"
    )]
    pub fn claim_batch(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        worker: String,
        n: f64,
        visibility_timeout_s: f64,
    ) -> Result<Run<Vec<JobData>>> {
        let vt = secs("visibilityTimeoutS", Some(visibility_timeout_s))?.unwrap_or_default();
        let n = count("n", n)?;
        self.run(sync, None, move |o| {
            o.claim(&queue, &worker, n, vt).map(jobs)
        })
    }

    /// Waits (on its own thread) until a job is claimed; null on timeout or
    /// stop.
    #[napi(ts_return_type = "Promise<JobData | null>")]
    pub fn claim_next<'env>(
        &self,
        env: &'env Env,
        queue: String,
        worker: String,
        stop: &NativeStop,
        visibility_timeout_s: f64,
        max_attempts: f64,
        timeout_s: Option<f64>,
    ) -> Result<napi::bindgen_prelude::Object<'env>> {
        let opts = QueueOpts {
            visibility_timeout: secs("visibilityTimeoutS", Some(visibility_timeout_s))?
                .unwrap_or_default(),
            max_attempts: attempts("maxAttempts", max_attempts)?,
        };
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, flag, by) = (self.db.clone(), stop.flag.clone(), acting());
        wait_on_thread(env, move || {
            Ok(
                wait::claim_next(&db, by.caller(), &queue, &worker, &opts, timeout, &flag)?
                    .map(JobData::from),
            )
        })
    }

    #[napi]
    pub fn stop_flag(&self) -> NativeStop {
        NativeStop {
            db: self.db.clone(),
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn ack(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        id: i64,
        worker: String,
        attempt: u32,
        tx: Option<&NativeTx>,
    ) -> Result<Run<bool>> {
        self.run(sync, tx, move |o| o.ack(Lease::new(id, &worker, attempt)))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn ack_batch(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        leases: Vec<LeaseData>,
        tx: Option<&NativeTx>,
    ) -> Result<Run<i64>> {
        self.run(sync, tx, move |o| {
            let leases: Vec<Lease<'_>> = leases
                .iter()
                .map(|l| Lease::new(l.id, &l.worker, l.attempt))
                .collect();
            Ok(o.ack_batch(&leases)? as i64)
        })
    }

    /// Gives a claimed job back untouched (its attempt not counted).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn release(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        id: i64,
        worker: String,
        attempt: u32,
    ) -> Result<Run<bool>> {
        self.run(sync, None, move |o| {
            o.release(Lease::new(id, &worker, attempt))
        })
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn retry(
        &self,
        id: i64,
        worker: String,
        attempt: u32,
        delay_s: Option<f64>,
        error: Option<String>,
    ) -> Result<AsyncOp<bool>> {
        let delay = secs("delayS", delay_s)?;
        let error = error.unwrap_or_default();
        Ok(self.later(None, move |o| {
            o.retry(Lease::new(id, &worker, attempt), delay, &error)
        }))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn fail(
        &self,
        id: i64,
        worker: String,
        attempt: u32,
        error: Option<String>,
    ) -> AsyncOp<bool> {
        let error = error.unwrap_or_default();
        self.later(None, move |o| {
            o.fail(Lease::new(id, &worker, attempt), &error)
        })
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn heartbeat(
        &self,
        id: i64,
        worker: String,
        attempt: u32,
        extend_s: f64,
    ) -> Result<AsyncOp<bool>> {
        let extend = secs("extendS", Some(extend_s))?.unwrap_or_default();
        Ok(self.later(None, move |o| {
            o.heartbeat(Lease::new(id, &worker, attempt), extend)
        }))
    }

    /// Deletes `queue`'s ready jobs; returns how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn purge(&self, queue: String) -> AsyncOp<i64> {
        self.later(None, move |o| Ok(o.purge(&queue)? as i64))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn cancel(&self, id: f64) -> Result<AsyncOp<bool>> {
        let id = whole("id", id)?;
        Ok(self.later(None, move |o| o.cancel(id)))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? JobData | null : Promise<JobData | null>"
    )]
    pub fn get_job(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        id: f64,
    ) -> Result<Run<Option<JobData>>> {
        let id = whole("id", id)?;
        self.run(sync, None, move |o| Ok(o.get_job(id)?.map(JobData::from)))
    }

    #[napi(ts_return_type = "Promise<JobData[]>")]
    pub fn dead_jobs(&self, queue: String, limit: f64) -> Result<AsyncOp<Vec<JobData>>> {
        let limit = count("limit", limit)?;
        Ok(self.later(None, move |o| o.dead_jobs(&queue, limit).map(jobs)))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn requeue_dead(&self, id: f64) -> Result<AsyncOp<()>> {
        let id = whole("id", id)?;
        Ok(self.later(None, move |o| o.requeue_dead(id)))
    }

    /// Requeues `queue`'s dead jobs (dead for `reason`, if given); how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn requeue_dead_all(&self, queue: String, reason: Option<String>) -> AsyncOp<i64> {
        self.later(None, move |o| {
            Ok(o.requeue_dead_all(&queue, reason.as_deref())? as i64)
        })
    }

    /// Removes each live job of `ids`; how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn cancel_many(&self, ids: Vec<f64>) -> Result<AsyncOp<i64>> {
        let ids = ids
            .into_iter()
            .map(|id| whole("ids", id))
            .collect::<Result<Vec<i64>>>()?;
        Ok(self.later(None, move |o| Ok(o.cancel_many(&ids)? as i64)))
    }

    /// Dead-letters `queue`'s jobs past their start deadline; returns how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn sweep_expired(&self, queue: String) -> AsyncOp<i64> {
        self.later(None, move |o| Ok(o.sweep_expired(Some(&queue))? as i64))
    }

    /// `queue`'s job counts by state.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? QueueStatsData : Promise<QueueStatsData>"
    )]
    pub fn queue_stats(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
    ) -> Result<Run<QueueStatsData>> {
        self.run(sync, None, move |o| o.queue_stats(&queue).map(stats_out))
    }

    /// Pauses `queue` in every process; whether it was running.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn pause(&self, #[napi(ts_arg_type = "S")] sync: bool, queue: String) -> Result<Run<bool>> {
        self.run(sync, None, move |o| o.pause(&queue))
    }

    /// Resumes `queue`; whether it was paused.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn resume(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
    ) -> Result<Run<bool>> {
        self.run(sync, None, move |o| o.resume(&queue))
    }

    /// Limits `queue`'s jobs in flight (null: no limit).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_max_in_flight(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        max: Option<f64>,
    ) -> Result<Run<()>> {
        let max = match max {
            None => None,
            Some(v) => Some(
                honker_core::validate::attempts("max_in_flight", whole("max_in_flight", v)?)
                    .map_err(to_js)?,
            ),
        };
        self.run(sync, None, move |o| o.set_max_in_flight(&queue, max))
    }

    /// Limits `queue`'s claims per window (limit null: no limit).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_rate_limit(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        limit: Option<f64>,
        per_s: Option<f64>,
    ) -> Result<Run<()>> {
        let limit = limit.map(|v| whole("limit", v)).transpose()?;
        let rate = honker_core::validate::queue_rate(limit, per_s).map_err(to_js)?;
        self.run(sync, None, move |o| o.set_rate_limit(&queue, rate))
    }

    /// Stores `queue`'s retention: the limits of its completed jobs (absent:
    /// not kept) and of its dead jobs (absent: kept until requeued).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_queue_retention(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        completed: Option<RetentionData>,
        dead: Option<RetentionData>,
    ) -> Result<Run<()>> {
        let r = honker_core::QueueRetention {
            completed: completed.map(|r| retention_in(Some(r))).transpose()?,
            dead: dead.map(|r| retention_in(Some(r))).transpose()?,
        };
        self.run(sync, None, move |o| o.set_queue_retention(&queue, r))
    }

    /// Turns `queue`'s lifecycle events on or off.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_events(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
        on: bool,
    ) -> Result<Run<()>> {
        self.run(sync, None, move |o| o.set_events(&queue, on))
    }

    /// Applies `queue`'s retention now; how many jobs were removed.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn prune_queue(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
    ) -> Result<Run<i64>> {
        self.run(sync, None, move |o| Ok(o.prune_queue(&queue)? as i64))
    }

    /// `queue`'s controls.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? QueueControlsData : Promise<QueueControlsData>"
    )]
    pub fn queue_controls(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
    ) -> Result<Run<QueueControlsData>> {
        self.run(sync, None, move |o| {
            o.queue_controls(&queue).map(controls_out)
        })
    }

    /// Every queue the file knows, with its counts and controls.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? QueueSummaryData[] : Promise<QueueSummaryData[]>"
    )]
    pub fn queues(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
    ) -> Result<Run<Vec<QueueSummaryData>>> {
        self.run(sync, None, move |o| {
            Ok(o.queues()?
                .into_iter()
                .map(|q| QueueSummaryData {
                    name: q.name,
                    stats: stats_out(q.stats),
                    controls: controls_out(q.controls),
                })
                .collect())
        })
    }

    /// Every stream the file knows, with its last offset and consumers.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? StreamSummaryData[] : Promise<StreamSummaryData[]>"
    )]
    pub fn streams(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
    ) -> Result<Run<Vec<StreamSummaryData>>> {
        self.run(sync, None, move |o| {
            Ok(o.streams()?
                .into_iter()
                .map(|s| StreamSummaryData {
                    name: s.name,
                    last_offset: s.last_offset,
                    consumers: s
                        .consumers
                        .into_iter()
                        .map(|c| ConsumerOffsetData {
                            consumer: c.name,
                            offset: c.offset,
                            lag: c.lag as i64,
                        })
                        .collect(),
                })
                .collect())
        })
    }

    /// The jobs a filter names, newest first.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? JobData[] : Promise<JobData[]>"
    )]
    pub fn list_jobs(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        filter: JobFilterData,
    ) -> Result<Run<Vec<JobData>>> {
        let opt = |what, v: Option<f64>| v.map(|v| whole(what, v)).transpose();
        let filter = honker_core::JobFilter {
            queue: filter.queue,
            state: filter
                .state
                .as_deref()
                .map(honker_core::JobState::from_name)
                .transpose()
                .map_err(to_js)?,
            task: filter.task,
            key: filter.key,
            created_from_ms: opt("createdFromMs", filter.created_from_ms)?,
            created_to_ms: opt("createdToMs", filter.created_to_ms)?,
            before_id: opt("beforeId", filter.before_id)?,
            limit: filter
                .limit
                .map(|n| count("limit", n))
                .transpose()?
                .unwrap_or(0),
        };
        self.run(sync, None, move |o| o.list_jobs(&filter).map(jobs))
    }

    /// The earliest scheduled `run_at` or lease end in `queue`, ms since the
    /// epoch; null if nothing is pending.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number | null : Promise<number | null>"
    )]
    pub fn next_deadline_ms(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        queue: String,
    ) -> Result<Run<Option<i64>>> {
        self.run(sync, None, move |o| o.next_deadline(&queue))
    }
}
