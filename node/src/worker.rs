//! The worker runtime (`honker_core::worker`) for Node: the core claims,
//! renews, times out, retries and shuts down; `lib/worker.ts` runs the
//! handlers on the event loop. A poll (which can wait) runs on its own
//! thread; completing a job (one commit, which claims the next) runs on the
//! libuv pool.

use crate::database::NativeDatabase;
use crate::error::*;
use crate::handles::NativeStop;
use crate::task::*;
use honker_core::wake::wait::{self, JobOutcome};
use honker_core::worker::{
    envelope, Activation, CancelReason, Outcome, Polled, RetryPolicy, TaskOptions, UnknownTasks,
    WorkerCore, WorkerOptions,
};
use honker_core::Db;
use napi::Env;
use napi_derive::napi;
use std::sync::Arc;
use std::time::Duration;

/// A retry policy: `kind` "exponential" (`baseS`, `maxS`, `jitter`) or
/// "fixed" (`baseS`). A function policy stays in JS, which passes its delay
/// with the failure.
#[napi(object)]
pub struct RetrySpec {
    pub kind: String,
    pub base_s: f64,
    pub max_s: f64,
    pub jitter: bool,
}

/// A task's worker-side options.
#[napi(object)]
pub struct TaskSpec {
    pub name: String,
    pub timeout_s: Option<f64>,
    pub retry: Option<RetrySpec>,
    pub store_result: bool,
    pub result_ttl_s: f64,
}

/// A worker's options (defaults applied by the JS layer).
#[napi(object)]
pub struct WorkerSpec {
    pub queues: Vec<String>,
    pub concurrency: f64,
    pub worker_id: Option<String>,
    pub lease_s: f64,
    pub grace_s: f64,
    pub retry: Option<RetrySpec>,
    /// Leave jobs of unknown tasks for another worker, due again after this
    /// many seconds; null: dead-letter them.
    pub leave_unknown_s: Option<f64>,
    /// Most jobs acked and claimed in one commit when handlers are quick
    /// (1: one commit per job).
    pub batch: f64,
}

/// A job to run.
#[napi(object)]
pub struct ActivationData {
    pub id: i64,
    pub task: String,
    /// The task envelope (JSON text).
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub queue: String,
}

impl From<Activation> for ActivationData {
    fn from(a: Activation) -> Self {
        ActivationData {
            id: a.job.id,
            task: a.task,
            payload: a.job.payload,
            attempt: a.job.attempts,
            max_attempts: a.job.max_attempts,
            queue: a.job.queue,
        }
    }
}

/// What a poll found: `kind` "run" (with `job`), "cancel" (with `id` and
/// `reason`: timeout, lease_lost, shutdown) or "done".
#[napi(object)]
pub struct PolledData {
    pub kind: String,
    pub job: Option<ActivationData>,
    pub id: Option<i64>,
    pub reason: Option<String>,
}

fn cancel_data(id: i64, why: CancelReason) -> PolledData {
    PolledData {
        kind: "cancel".into(),
        job: None,
        id: Some(id),
        reason: Some(why.as_str().into()),
    }
}

/// A job's end as awaited by its enqueuer: `done` false on timeout;
/// `value` the saved result (JSON text), if any.
#[napi(object)]
pub struct ResultData {
    pub done: bool,
    pub value: Option<String>,
}

fn retry(spec: Option<RetrySpec>) -> Result<Option<RetryPolicy>> {
    let Some(s) = spec else {
        return Ok(None);
    };
    let d = |what, v| Ok::<_, napi::Error<String>>(secs(what, Some(v))?.unwrap_or_default());
    match s.kind.as_str() {
        "exponential" => Ok(Some(RetryPolicy::Exponential {
            base: d("baseS", s.base_s)?,
            max: d("maxS", s.max_s)?,
            jitter: s.jitter,
        })),
        "fixed" => Ok(Some(RetryPolicy::Fixed(d("delayS", s.base_s)?))),
        other => Err(invalid("retry", format!("unknown policy kind {other:?}"))),
    }
}

/// The envelope of a run of task `task` with payload `payload` (JSON text):
/// `{"task": task, "args": [payload]}`.
#[napi]
// (Registered with Node by the macro, which a `cargo test` build leaves out.)
#[cfg_attr(test, allow(dead_code))]
pub fn task_envelope(task: String, payload: String) -> Result<String> {
    honker_core::guard(|| envelope::encode(&task, Some(&format!("[{payload}]")), None))
        .map_err(to_js)
}

/// The worker runtime of one JS `Worker`.
#[napi]
pub struct NativeWorker {
    core: Arc<WorkerCore>,
    db: Db,
}

#[napi]
impl NativeDatabase {
    #[napi]
    pub fn worker(&self, spec: WorkerSpec, tasks: Vec<TaskSpec>) -> Result<NativeWorker> {
        let mut specs = Vec::with_capacity(tasks.len());
        for t in tasks {
            let timeout = match t.timeout_s {
                Some(s) if s <= 0.0 => {
                    return Err(invalid(
                        "timeoutS",
                        format!("task {:?}: must be positive, not {s}", t.name),
                    ))
                }
                s => secs("timeoutS", s)?,
            };
            let opts = TaskOptions {
                timeout,
                retry: retry(t.retry)?,
                store_result: t.store_result,
                result_ttl: Duration::from_millis(ttl_ms("resultTtlS", t.result_ttl_s)? as u64),
            };
            specs.push((t.name, opts));
        }
        let opts = WorkerOptions {
            queues: spec.queues,
            concurrency: count("concurrency", spec.concurrency)?,
            worker_id: spec.worker_id,
            lease: secs("leaseS", Some(spec.lease_s))?.unwrap_or_default(),
            grace: secs("graceS", Some(spec.grace_s))?.unwrap_or_default(),
            retry: retry(spec.retry)?.unwrap_or_default(),
            unknown_tasks: match spec.leave_unknown_s {
                None => UnknownTasks::DeadLetter,
                Some(s) => UnknownTasks::Leave(secs("leaveUnknownS", Some(s))?.unwrap_or_default()),
            },
            // Handlers are told to stop through their AbortSignal.
            cancel_events: true,
            batch: count("batch", spec.batch)?,
        };
        let db = self.db.clone();
        let core = honker_core::guard(|| WorkerCore::new(&db, opts, specs)).map_err(to_js)?;
        Ok(NativeWorker {
            core: Arc::new(core),
            db,
        })
    }

    /// Waits (on its own thread) up to `timeoutS` for job `id` to end.
    /// Rejects with `job_failed` if it went to the dead table.
    #[napi(ts_return_type = "Promise<ResultData>")]
    pub fn wait_result<'env>(
        &self,
        env: &'env Env,
        id: i64,
        stop: &NativeStop,
        timeout_s: Option<f64>,
    ) -> Result<napi::bindgen_prelude::Object<'env>> {
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, flag, by) = (self.db.clone(), stop.flag.clone(), acting());
        wait_on_thread(env, move || {
            match wait::wait_outcome(&db, by.caller(), id, timeout, &flag)? {
                None => Ok(ResultData {
                    done: false,
                    value: None,
                }),
                Some(JobOutcome::Completed(value)) => Ok(ResultData { done: true, value }),
                Some(dead @ JobOutcome::Dead(_)) => Err(dead
                    .into_result()
                    .expect_err("a dead job's outcome is an error")),
            }
        })
    }
}

#[napi]
impl NativeWorker {
    /// Waits (on its own thread) for work. Stopping `stop` starts the
    /// shutdown; polls go on returning until "done".
    #[napi(ts_return_type = "Promise<PolledData>")]
    pub fn poll<'env>(
        &self,
        env: &'env Env,
        stop: &NativeStop,
    ) -> Result<napi::bindgen_prelude::Object<'env>> {
        let (core, flag) = (self.core.clone(), stop.flag.clone());
        wait_on_thread(env, move || {
            Ok(match core.poll(&flag)? {
                Polled::Run(a) => PolledData {
                    kind: "run".into(),
                    job: Some(a.into()),
                    id: None,
                    reason: None,
                },
                Polled::Cancel { id, why } => cancel_data(id, why),
                Polled::Done => PolledData {
                    kind: "done".into(),
                    job: None,
                    id: None,
                    reason: None,
                },
            })
        })
    }

    /// Drain mode's cancel events: waits (on its own thread) for the next
    /// one, claiming nothing; null once `stop` is stopped.
    #[napi(ts_return_type = "Promise<PolledData | null>")]
    pub fn next_event<'env>(
        &self,
        env: &'env Env,
        stop: &NativeStop,
    ) -> Result<napi::bindgen_prelude::Object<'env>> {
        let (core, flag) = (self.core.clone(), stop.flag.clone());
        wait_on_thread(env, move || {
            Ok(core
                .next_event(&flag)?
                .map(|(id, why)| cancel_data(id, why)))
        })
    }

    /// Drain mode: a due job, or null (on the libuv pool).
    #[napi(ts_return_type = "Promise<ActivationData | null>")]
    pub fn drain_next(&self) -> AsyncOp<Option<ActivationData>> {
        let core = self.core.clone();
        spawn(move || Ok(core.drain_next()?.map(ActivationData::from)))
    }

    /// Reports a handler's end: `ok` with its result JSON (or null), or an
    /// error message (`retryInS` from a JS policy; `retry` false: no more
    /// attempts); `released` gives the job back. Resolves to the next job
    /// to run, claimed in the same commit.
    #[napi(ts_return_type = "Promise<ActivationData | null>")]
    pub fn complete(
        &self,
        id: i64,
        ok: bool,
        value: Option<String>,
        retry_in_s: Option<f64>,
        retry: bool,
        released: bool,
    ) -> Result<AsyncOp<Option<ActivationData>>> {
        let retry_in = secs("retryInS", retry_in_s)?;
        let core = self.core.clone();
        Ok(spawn(move || {
            let outcome = Outcome::reported(released, ok, value.as_deref(), retry_in, retry);
            Ok(core.complete(id, outcome)?.map(ActivationData::from))
        }))
    }

    /// A success reported on the event loop when no I/O is needed: the next
    /// job (claimed ahead earlier) is handed out at once and the ack waits
    /// for a later commit. Null: nothing was done; call `complete`.
    #[napi]
    pub fn complete_buffered(
        &self,
        id: i64,
        value: Option<String>,
    ) -> Result<Option<ActivationData>> {
        honker_core::guard(|| {
            Ok(self
                .core
                .complete_buffered(id, value.as_deref())
                .map(ActivationData::from))
        })
        .map_err(to_js)
    }

    /// Stops claiming; the grace period starts.
    #[napi]
    pub fn shutdown(&self) {
        self.core.shutdown();
        honker_core::wake::watcher(&self.db).interrupt();
    }

    /// Ends the worker's keeper now (after its run or drain).
    #[napi]
    pub fn close(&self) {
        self.core.close();
    }

    #[napi]
    pub fn in_flight(&self) -> u32 {
        self.core.in_flight() as u32
    }

    #[napi]
    pub fn worker_id(&self) -> String {
        self.core.worker_id().to_string()
    }

    #[napi]
    pub fn is_stopping(&self) -> bool {
        self.core.is_stopping()
    }
}
