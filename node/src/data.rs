//! Plain values crossing the boundary (`#[napi(object)]`) and their conversions.

use crate::error::*;
use honker_core::SqlValue as Value;
use honker_core::{validate, EnqueueOpts, JobRecord, Ops, Retention};
use napi::bindgen_prelude::{Either, ToNapiValue, TypeName};
use napi_derive::napi;

/// A job as plain fields (the JS `Job` class wraps it).
#[napi(object)]
pub struct JobData {
    pub id: i64,
    pub queue: String,
    pub payload: String,
    pub state: String,
    pub priority: i64,
    pub run_at_ms: i64,
    pub attempts: u32,
    pub max_attempts: u32,
    pub worker_id: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub key: Option<String>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub dead_reason: Option<String>,
    pub died_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub result: Option<String>,
}

impl From<JobRecord> for JobData {
    fn from(j: JobRecord) -> Self {
        JobData {
            id: j.id,
            queue: j.queue,
            payload: j.payload,
            state: j.state.as_str().to_string(),
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

pub(crate) fn jobs(v: Vec<JobRecord>) -> Vec<JobData> {
    v.into_iter().map(JobData::from).collect()
}

/// Enqueue options as the JS layer passes them (seconds; `runAt` as Unix
/// seconds). The JS layer has rejected unknown fields; `tx` is ignored here.
#[napi(object)]
pub struct EnqueueOptions {
    pub delay_s: Option<f64>,
    pub run_at: Option<f64>,
    pub priority: Option<f64>,
    pub max_attempts: Option<f64>,
    pub expires_s: Option<f64>,
    pub key: Option<String>,
}

pub(crate) fn enqueue_opts(o: Option<EnqueueOptions>) -> Result<EnqueueOpts> {
    let Some(o) = o else {
        return Ok(EnqueueOpts::default());
    };
    Ok(EnqueueOpts {
        delay: secs("delayS", o.delay_s)?,
        run_at: o
            .run_at
            .map(|s| validate::epoch_secs_f64("runAt", s))
            .transpose()
            .map_err(to_js)?,
        priority: o
            .priority
            .map(|p| whole("priority", p))
            .transpose()?
            .unwrap_or(0),
        max_attempts: o
            .max_attempts
            .map(|n| attempts("maxAttempts", n))
            .transpose()?,
        expires: secs("expiresS", o.expires_s)?,
        key: o.key,
    })
}

/// An event of a stream.
#[napi(object)]
pub struct EventData {
    pub offset: i64,
    pub key: Option<String>,
    pub payload: String,
}

impl From<honker_core::Event> for EventData {
    fn from(e: honker_core::Event) -> Self {
        EventData {
            offset: e.offset,
            key: e.key,
            payload: e.payload,
        }
    }
}

/// A notification.
#[napi(object)]
pub struct NotificationData {
    pub id: i64,
    pub channel: String,
    pub payload: String,
}

/// A schedule as stored.
#[napi(object)]
pub struct ScheduleData {
    pub name: String,
    pub queue: String,
    pub schedule: String,
    pub payload: String,
    pub priority: i64,
    pub paused: bool,
    pub next_fire_at_ms: i64,
    pub last_error: Option<String>,
}

/// One fire of a schedule (by `tick`).
#[napi(object)]
pub struct FireData {
    pub name: String,
    pub job_id: i64,
    pub fire_at_ms: i64,
}

/// A claim's lease: job id, worker, attempt.
#[napi(object)]
pub struct LeaseData {
    pub id: i64,
    pub worker: String,
    pub attempt: u32,
}

/// Options of `open`. The JS layer has rejected unknown fields.
#[napi(object)]
pub struct OpenOptionsData {
    pub busy_timeout_s: Option<f64>,
    pub wal_autocheckpoint: Option<f64>,
    pub trusted_schema: Option<bool>,
}

/// A queue's job counts by state.
#[napi(object)]
pub struct QueueStatsData {
    pub ready: i64,
    pub scheduled: i64,
    pub processing: i64,
    pub dead: i64,
    pub completed: i64,
}

/// A queue's controls: paused, the most of its jobs leased at once (null:
/// no limit), its claim rate limit and its retention.
#[napi(object)]
pub struct QueueControlsData {
    pub paused: bool,
    pub max_in_flight: Option<u32>,
    pub rate_limit: Option<QueueRateLimitData>,
    pub retention: QueueRetentionData,
    pub events: bool,
}

/// What of a queue's history is kept: its completed jobs' limits (absent:
/// not kept) and its dead jobs' (absent: kept until requeued).
#[napi(object)]
pub struct QueueRetentionData {
    pub completed: Option<RetentionData>,
    pub dead: Option<RetentionData>,
}

/// A queue's claim rate limit: `limit` claims per fixed window of `per_s`
/// seconds.
#[napi(object)]
pub struct QueueRateLimitData {
    pub limit: u32,
    pub per_s: f64,
}

/// A queue as an operator sees it.
#[napi(object)]
pub struct QueueSummaryData {
    pub name: String,
    pub stats: QueueStatsData,
    pub controls: QueueControlsData,
}

/// A stream as an operator sees it; each consumer's saved offset.
#[napi(object)]
pub struct StreamSummaryData {
    pub name: String,
    pub last_offset: i64,
    pub consumers: Vec<ConsumerOffsetData>,
}

/// A consumer of a stream: the offset it saved and the stream's events
/// after it.
#[napi(object)]
pub struct ConsumerOffsetData {
    pub consumer: String,
    pub offset: i64,
    pub lag: i64,
}

/// Which jobs `listJobs` lists; a missing field matches everything. Times
/// in ms since the epoch.
#[napi(object)]
pub struct JobFilterData {
    pub queue: Option<String>,
    pub state: Option<String>,
    pub task: Option<String>,
    pub key: Option<String>,
    pub created_from_ms: Option<f64>,
    pub created_to_ms: Option<f64>,
    pub before_id: Option<f64>,
    pub limit: Option<f64>,
}

pub(crate) fn controls_out(c: honker_core::QueueControls) -> QueueControlsData {
    QueueControlsData {
        paused: c.paused,
        max_in_flight: c.max_in_flight,
        rate_limit: c.rate_limit.map(|r| QueueRateLimitData {
            limit: r.limit,
            per_s: r.per.as_secs_f64(),
        }),
        retention: QueueRetentionData {
            completed: c.retention.completed.map(retention_out),
            dead: c.retention.dead.map(retention_out),
        },
        events: c.events,
    }
}

/// A retention (a stream's, or one table of a queue's), in (possibly
/// fractional) seconds and a count; a missing field is no such limit.
/// Unknown fields are ignored.
#[napi(object)]
pub struct RetentionData {
    pub max_age_s: Option<f64>,
    pub max_count: Option<f64>,
}

/// Who holds a lock.
#[napi(object)]
pub struct LockHolderData {
    pub name: String,
    pub owner: String,
    pub token: i64,
    pub expires_at_ms: i64,
}

pub(crate) fn retention_in(r: Option<RetentionData>) -> Result<Retention> {
    let Some(r) = r else {
        return Ok(Retention::default());
    };
    Ok(Retention {
        max_age: secs("maxAgeS", r.max_age_s)?,
        max_count: r
            .max_count
            .map(|n| count("maxCount", n).map(|n| n as u64))
            .transpose()?,
    })
}

pub(crate) fn retention_out(r: Retention) -> RetentionData {
    RetentionData {
        max_age_s: r.max_age.map(|d| d.as_secs_f64()),
        max_count: r.max_count.map(|n| n as f64),
    }
}

pub(crate) fn stats_out(s: honker_core::QueueStats) -> QueueStatsData {
    QueueStatsData {
        ready: s.ready as i64,
        scheduled: s.scheduled as i64,
        processing: s.processing as i64,
        dead: s.dead as i64,
        completed: s.completed as i64,
    }
}

pub(crate) fn holder_out(i: honker_core::model::LockInfo) -> LockHolderData {
    LockHolderData {
        name: i.name,
        owner: i.owner,
        token: i.token,
        expires_at_ms: i.expires_at_ms,
    }
}

/// A schedule to add.
#[napi(object)]
pub struct ScheduleSpecData {
    pub name: String,
    pub queue: String,
    pub schedule: String,
    pub payload: String,
    pub priority: Option<f64>,
    pub expires_s: Option<f64>,
    pub tz: Option<String>,
}

/// A query's result: column names and rows of values.
#[napi(object, object_from_js = false)]
pub struct Rows {
    pub columns: Vec<String>,
    #[napi(ts_type = "unknown[][]")]
    pub rows: Vec<Vec<SqlValue>>,
}

/// A SQL value: null, number, bigint (integers beyond 2^53), string or Buffer.
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl TypeName for SqlValue {
    fn type_name() -> &'static str {
        "SqlValue"
    }
    fn value_type() -> napi::ValueType {
        napi::ValueType::Unknown
    }
}

impl ToNapiValue for SqlValue {
    unsafe fn to_napi_value(
        env: napi::sys::napi_env,
        val: Self,
    ) -> napi::Result<napi::sys::napi_value> {
        const MAX_SAFE: i64 = (1 << 53) - 1;
        match val {
            SqlValue::Null => ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Null),
            SqlValue::Int(i) if (-MAX_SAFE..=MAX_SAFE).contains(&i) => {
                ToNapiValue::to_napi_value(env, i as f64)
            }
            SqlValue::Int(i) => {
                ToNapiValue::to_napi_value(env, napi::bindgen_prelude::BigInt::from(i))
            }
            SqlValue::Real(f) => ToNapiValue::to_napi_value(env, f),
            SqlValue::Text(s) => ToNapiValue::to_napi_value(env, s),
            SqlValue::Blob(b) => {
                ToNapiValue::to_napi_value(env, napi::bindgen_prelude::Buffer::from(b))
            }
        }
    }
}

impl From<Value> for SqlValue {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => SqlValue::Null,
            Value::Integer(i) => SqlValue::Int(i),
            Value::Real(f) => SqlValue::Real(f),
            Value::Text(s) => SqlValue::Text(s),
            Value::Blob(b) => SqlValue::Blob(b),
        }
    }
}

/// SQL parameters: null/undefined, boolean, number, bigint, string, Buffer.
pub(crate) type Param = napi::bindgen_prelude::Either<
    napi::bindgen_prelude::Either<Option<f64>, bool>,
    napi::bindgen_prelude::Either3<
        String,
        napi::bindgen_prelude::BigInt,
        napi::bindgen_prelude::Buffer,
    >,
>;

pub(crate) fn to_value(p: Param) -> Result<Value> {
    use napi::bindgen_prelude::Either3;
    Ok(match p {
        Either::A(Either::A(None)) => Value::Null,
        Either::A(Either::A(Some(f))) => {
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                Value::Integer(f as i64)
            } else {
                Value::Real(f)
            }
        }
        Either::A(Either::B(b)) => Value::Integer(b as i64),
        Either::B(Either3::A(s)) => Value::Text(s),
        Either::B(Either3::B(b)) => {
            let (v, lossless) = b.get_i64();
            if !lossless {
                return Err(invalid("params", "bigint out of the 64-bit range"));
            }
            Value::Integer(v)
        }
        Either::B(Either3::C(b)) => Value::Blob(b.to_vec()),
    })
}

pub(crate) fn values(params: Vec<Param>) -> Result<Vec<Value>> {
    params.into_iter().map(to_value).collect()
}

pub(crate) fn run_query(o: &Ops<'_>, sql: &str, values: Vec<Value>) -> CoreResult<Rows> {
    let got = o.query(sql, values)?;
    Ok(Rows {
        columns: got.columns,
        rows: got
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(SqlValue::from).collect())
            .collect(),
    })
}
