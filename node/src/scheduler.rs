//! Schedules and the scheduler loop.

use crate::data::*;
use crate::database::*;
use crate::error::*;
use crate::handles::*;
use crate::task::*;
use honker_core::model::ScheduleSpec;
use honker_core::wake::wait;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

#[napi]
impl NativeDatabase {
    // -- schedules --

    #[napi(ts_return_type = "Promise<void>")]
    pub fn schedule_add(&self, spec: ScheduleSpecData) -> Result<AsyncOp<()>> {
        let expires = secs("expiresS", spec.expires_s)?;
        let priority = spec
            .priority
            .map(|p| whole("priority", p))
            .transpose()?
            .unwrap_or(0);
        Ok(self.later(None, move |o| {
            let s = ScheduleSpec {
                name: &spec.name,
                queue: &spec.queue,
                cron: &spec.schedule,
                tz: spec.tz.as_deref(),
                payload: &spec.payload,
                priority,
                expires,
            };
            o.schedule_add(&s)
        }))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn schedule_remove(&self, name: String) -> AsyncOp<bool> {
        self.later(None, move |o| o.schedule_remove(&name))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn schedule_pause(&self, name: String) -> AsyncOp<()> {
        self.later(None, move |o| o.schedule_pause(&name))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn schedule_resume(&self, name: String) -> AsyncOp<()> {
        self.later(None, move |o| o.schedule_resume(&name))
    }

    #[napi(ts_return_type = "Promise<ScheduleData[]>")]
    pub fn schedule_list(&self) -> AsyncOp<Vec<ScheduleData>> {
        self.later(None, |o| o.schedule_list().map(schedule_rows))
    }

    /// Fires what is due now.
    #[napi(ts_return_type = "Promise<FireData[]>")]
    pub fn schedule_tick(&self) -> AsyncOp<Vec<FireData>> {
        self.later(None, |o| o.schedule_tick().map(|(fired, _)| fires(fired)))
    }

    /// The next fire of any unpaused schedule, ms since the epoch; null if
    /// there is none.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn schedule_soonest(&self) -> AsyncOp<Option<i64>> {
        self.later(None, |o| o.schedule_soonest())
    }

    /// Runs the scheduler (on its own thread) until `stop` is set; each
    /// problem (a fire that failed, a failing step) goes to `onProblem`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run_scheduler<'env>(
        &self,
        env: &'env Env,
        owner: String,
        stop: &NativeStop,
        lock_ttl_s: Option<f64>,
        #[napi(ts_arg_type = "(message: string) => void")] on_problem: ThreadsafeFunction<
            String,
            (),
            String,
            Status,
            false,
            true,
        >,
    ) -> Result<napi::bindgen_prelude::Object<'env>> {
        let opts = wait::SchedulerOpts {
            lock_ttl: secs("lockTtlS", Some(lock_ttl_s.unwrap_or(10.0)))?.unwrap_or_default(),
            ..wait::SchedulerOpts::default()
        };
        let (db, flag, by) = (self.db.clone(), stop.flag.clone(), acting());
        wait_on_thread(env, move || {
            wait::run_scheduler(&db, by.caller(), &flag, &owner, &opts, &mut |p| {
                on_problem.call(p.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
            })
        })
    }
}
