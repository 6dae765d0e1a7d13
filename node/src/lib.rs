//! The native half of the Node package `honker`. Thin: it converts values,
//! runs every call into SQLite off the main thread (an `AsyncTask` on the
//! libuv pool for short calls, a dedicated thread for waits that can last),
//! and encodes `honker_core::Error` codes in the error message for the JS
//! layer (`index.js`) to turn into `.code`. JSON, option objects,
//! iterators and transactions live in `index.js`; every rule lives in
//! honker-core.
//!
//! An operation that the JS API offers both ways (`enqueue` and
//! `enqueueSync`) is one native method whose first argument, `sync`, picks:
//! `true` runs it on the calling thread and returns the value (refusing with
//! `transaction_open` while a transaction is open on the database, since
//! waiting there would block the event loop the transaction's callback
//! needs), `false` returns a Promise.

#![allow(clippy::too_many_arguments)]

use honker_core::model::{Fired, Notification, ScheduleInfo, ScheduleSpec};
use honker_core::wake::keepalive::Keeper;
use honker_core::wake::wait;
use honker_core::wake::watcher::ListenerQueue;
use honker_core::SqlValue as Value;
use honker_core::{
    cron, validate, Caller, Db, EnqueueOpts, Error, JobRecord, Lease, OpenOptions, Ops, QueueOpts,
    Retention, TxKey,
};
use napi::bindgen_prelude::{Either, ToNapiValue, TypeName};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, Task};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type CoreResult<T> = honker_core::Result<T>;

/// The message carries the code (`honker:<code>: <message>`); index.js
/// moves it to `.code`.
fn to_js(e: Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("honker:{}: {}", e.code(), e),
    )
}

fn invalid(name: &'static str, reason: impl Into<String>) -> napi::Error {
    to_js(Error::invalid(name, reason))
}

fn secs(what: &'static str, s: Option<f64>) -> napi::Result<Option<Duration>> {
    s.map(|s| validate::secs_f64(what, s))
        .transpose()
        .map_err(to_js)
}

/// A positive TTL or window in (possibly fractional) seconds, as ms.
fn ttl_ms(what: &'static str, s: f64) -> napi::Result<i64> {
    validate::ttl_secs_f64(what, s).map_err(to_js)
}

// Whole numbers arrive as JS numbers (f64) and are checked here: napi's own
// i64/u32 conversions would truncate 1.5, zero NaN and wrap -1 silently.

fn whole(what: &'static str, v: f64) -> napi::Result<i64> {
    validate::whole_f64(what, v).map_err(to_js)
}

fn count(what: &'static str, n: f64) -> napi::Result<usize> {
    validate::count(what, whole(what, n)?).map_err(to_js)
}

fn attempts(what: &'static str, n: f64) -> napi::Result<u32> {
    validate::attempts(what, whole(what, n)?).map_err(to_js)
}

/// A short blocking call, run on the libuv thread pool.
pub struct Op<T: Send + 'static> {
    f: Option<Box<dyn FnOnce() -> CoreResult<T> + Send>>,
}

fn op<T: Send + 'static>(f: impl FnOnce() -> CoreResult<T> + Send + 'static) -> Op<T> {
    Op {
        f: Some(Box::new(f)),
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Op<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let f = self
            .f
            .take()
            .ok_or_else(|| napi::Error::from_reason("task ran twice"))?;
        // A panic on a libuv thread would abort the process.
        honker_core::guard(f).map_err(to_js)
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }
}

type AsyncOp<T> = napi::bindgen_prelude::AsyncTask<Op<T>>;

/// The result of an operation that can run either way: its value (run on
/// the calling thread) or a Promise of it (run on the libuv pool).
type Run<T> = Either<T, AsyncOp<T>>;

fn spawn<T: Send + 'static>(f: impl FnOnce() -> CoreResult<T> + Send + 'static) -> AsyncOp<T>
where
    Op<T>: Task,
{
    napi::bindgen_prelude::AsyncTask::new(op(f))
}

/// A wait that may last (for a job, an event, a notification, the
/// scheduler's stop): it runs on its own thread, so it never holds a libuv
/// pool thread that other calls need, and settles the returned Promise.
fn wait_on_thread<'env, T, F>(
    env: &'env Env,
    f: F,
) -> napi::Result<napi::bindgen_prelude::Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    let (deferred, promise) =
        env.create_deferred::<T, Box<dyn FnOnce(Env) -> napi::Result<T>>>()?;
    std::thread::Builder::new()
        .name("honker-wait".into())
        .spawn(move || match honker_core::guard(f) {
            Ok(v) => deferred.resolve(Box::new(move |_| Ok(v))),
            Err(e) => deferred.reject(to_js(e)),
        })
        .map_err(|e| napi::Error::from_reason(format!("cannot start a wait thread: {e}")))?;
    Ok(promise)
}

/// `ready` itself when it is already there (no thread, no wait: the JS
/// layer awaits either), else a Promise of `f` run on its own thread as
/// [`wait_on_thread`].
fn ready_or_wait<'env, T, F>(
    env: &'env Env,
    ready: Option<T>,
    f: F,
) -> napi::Result<Either<T, napi::bindgen_prelude::Object<'env>>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    match ready {
        Some(v) => Ok(Either::A(v)),
        None => wait_on_thread(env, f).map(Either::B),
    }
}

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
        }
    }
}

fn jobs(v: Vec<JobRecord>) -> Vec<JobData> {
    v.into_iter().map(JobData::from).collect()
}

/// Enqueue options as the JS layer passes them (seconds; `runAt` as Unix
/// seconds). index.js has rejected unknown fields; `tx` is ignored here.
#[napi(object)]
pub struct EnqueueOptions {
    pub delay_s: Option<f64>,
    pub run_at: Option<f64>,
    pub priority: Option<f64>,
    pub max_attempts: Option<f64>,
    pub expires_s: Option<f64>,
    pub key: Option<String>,
}

fn enqueue_opts(o: Option<EnqueueOptions>) -> napi::Result<EnqueueOpts> {
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

/// Options of `open`. index.js has rejected unknown fields.
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
}

/// A stream's retention, in (possibly fractional) seconds and events; a
/// missing field is no such limit. Unknown fields are ignored.
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

fn retention_in(r: Option<RetentionData>) -> napi::Result<Retention> {
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

fn retention_out(r: Retention) -> RetentionData {
    RetentionData {
        max_age_s: r.max_age.map(|d| d.as_secs_f64()),
        max_count: r.max_count.map(|n| n as f64),
    }
}

fn stats_out(s: honker_core::QueueStats) -> QueueStatsData {
    QueueStatsData {
        ready: s.ready as i64,
        scheduled: s.scheduled as i64,
        processing: s.processing as i64,
        dead: s.dead as i64,
    }
}

fn holder_out(i: honker_core::model::LockInfo) -> LockHolderData {
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
type Param = napi::bindgen_prelude::Either<
    napi::bindgen_prelude::Either<Option<f64>, bool>,
    napi::bindgen_prelude::Either3<
        String,
        napi::bindgen_prelude::BigInt,
        napi::bindgen_prelude::Buffer,
    >,
>;

fn to_value(p: Param) -> napi::Result<Value> {
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

fn values(params: Vec<Param>) -> napi::Result<Vec<Value>> {
    params.into_iter().map(to_value).collect()
}

fn run_query(o: &Ops<'_>, sql: &str, values: Vec<Value>) -> CoreResult<Rows> {
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

/// An open write transaction; `db.transaction(cb)` in index.js owns it.
#[napi]
pub struct NativeTx {
    key: Arc<Mutex<Option<TxKey>>>,
}

/// A stop flag for waits: `stop()` wakes the waiter at once.
#[napi]
pub struct NativeStop {
    db: Db,
    flag: Arc<AtomicBool>,
}

#[napi]
impl NativeStop {
    #[napi]
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        honker_core::wake::watcher(&self.db).interrupt();
    }

    #[napi]
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A notification listener.
#[napi]
pub struct NativeListener {
    db: Db,
    queue: Arc<ListenerQueue>,
}

#[napi]
impl NativeListener {
    /// The next notification: at once if one has arrived, else a Promise
    /// that waits up to `timeoutS` (forever when null); null on timeout or
    /// once closed.
    #[napi(ts_return_type = "NotificationData | null | Promise<NotificationData | null>")]
    pub fn recv<'env>(
        &self,
        env: &'env Env,
        timeout_s: Option<f64>,
    ) -> napi::Result<Either<Option<NotificationData>, napi::bindgen_prelude::Object<'env>>> {
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, queue) = (self.db.clone(), self.queue.clone());
        let data = |n: Notification| NotificationData {
            id: n.id,
            channel: n.channel,
            payload: n.payload,
        };
        // One already here is handed over without a thread.
        let ready = self.queue.try_recv().map(|n| Some(data(n)));
        ready_or_wait(env, ready, move || {
            Ok(queue
                .recv(&honker_core::wake::watcher(&db), timeout)?
                .map(data))
        })
    }

    #[napi]
    pub fn close(&self) {
        self.queue.close()
    }
}

/// A stream consumer's cursor (at-least-once; see `honker_core::wait`).
#[napi]
pub struct NativeCursor {
    db: Db,
    cursor: Arc<Mutex<wait::StreamCursor>>,
}

fn with_cursor<R>(
    cursor: &Mutex<wait::StreamCursor>,
    f: impl FnOnce(&mut wait::StreamCursor) -> CoreResult<R>,
) -> CoreResult<R> {
    f(&mut cursor.lock().unwrap_or_else(|p| p.into_inner()))
}

#[napi]
impl NativeCursor {
    /// The next event: at once if one is already fetched, else a Promise
    /// that waits up to `timeoutS` (forever when null); null on timeout or
    /// stop.
    #[napi(ts_return_type = "EventData | null | Promise<EventData | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
        stop: &NativeStop,
        timeout_s: Option<f64>,
    ) -> napi::Result<Either<Option<EventData>, napi::bindgen_prelude::Object<'env>>> {
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, cursor, flag) = (self.db.clone(), self.cursor.clone(), stop.flag.clone());
        // An event already fetched is handed over without a thread (unless
        // a commit or flush holds the cursor right now).
        let ready = self
            .cursor
            .try_lock()
            .ok()
            .and_then(|mut c| c.next_buffered())
            .map(|e| Some(EventData::from(e)));
        ready_or_wait(env, ready, move || {
            with_cursor(&cursor, |c| {
                Ok(c.next(&db, Caller::this_thread(), timeout, &flag)?
                    .map(EventData::from))
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit(&self) -> AsyncOp<()> {
        let (db, cursor) = (self.db.clone(), self.cursor.clone());
        spawn(move || with_cursor(&cursor, |c| c.commit(&db, Caller::this_thread())))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush(&self) -> AsyncOp<()> {
        let (db, cursor) = (self.db.clone(), self.cursor.clone());
        spawn(move || with_cursor(&cursor, |c| c.flush(&db, Caller::this_thread())))
    }
}

/// A held lock renewed in the background (see `honker_core::keepalive`).
#[napi]
pub struct NativeKeeper {
    keeper: Arc<Mutex<Keeper>>,
}

#[napi]
impl NativeKeeper {
    #[napi]
    pub fn is_lost(&self) -> bool {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_lost()
    }

    #[napi]
    pub fn mark_lost(&self) {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_lost()
    }

    #[napi]
    pub fn set_ttl(&self, ttl_s: f64) -> napi::Result<()> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_ttl(ttl);
        Ok(())
    }

    /// Stops renewing: on this thread (`sync`), or on the libuv pool (a
    /// renewal in flight may wait for another process's write lock).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn stop(&self, #[napi(ts_arg_type = "S")] sync: bool) -> Run<()> {
        let keeper = self.keeper.clone();
        let stop = move || {
            keeper.lock().unwrap_or_else(|p| p.into_inner()).stop();
            Ok(())
        };
        if sync {
            let _ = stop();
            Either::A(())
        } else {
            Either::B(spawn(stop))
        }
    }
}

/// One open database file.
#[napi]
pub struct NativeDatabase {
    db: Db,
}

type TxSlot = Arc<Mutex<Option<TxKey>>>;

/// A fresh owner token for a transaction.
fn next_tx_owner() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl NativeDatabase {
    /// Runs `f`, in `tx` when given: on this thread (`sync`) or on the libuv
    /// pool. On this thread, outside a transaction, it refuses while one is
    /// open (waiting for it would block the event loop its callback needs).
    fn run<R: Send + 'static>(
        &self,
        sync: bool,
        tx: Option<&NativeTx>,
        f: impl FnOnce(&Ops<'_>) -> CoreResult<R> + Send + 'static,
    ) -> napi::Result<Run<R>>
    where
        Op<R>: Task,
    {
        if sync {
            // On the event loop's thread: never wait for a transaction.
            let me = Caller::this_thread().without_waiting();
            exec(&self.db, me, tx.map(|t| &t.key), f)
                .map(Either::A)
                .map_err(to_js)
        } else {
            Ok(Either::B(self.later(tx, f)))
        }
    }

    /// Runs `f` (in `tx` when given) on the libuv pool.
    fn later<R: Send + 'static>(
        &self,
        tx: Option<&NativeTx>,
        f: impl FnOnce(&Ops<'_>) -> CoreResult<R> + Send + 'static,
    ) -> AsyncOp<R>
    where
        Op<R>: Task,
    {
        let db = self.db.clone();
        let tx = tx.map(|t| t.key.clone());
        spawn(move || exec(&db, Caller::this_thread(), tx.as_ref(), f))
    }
}

fn exec<R>(
    db: &Db,
    caller: Caller,
    tx: Option<&TxSlot>,
    f: impl FnOnce(&Ops<'_>) -> CoreResult<R>,
) -> CoreResult<R> {
    honker_core::guard(|| match tx {
        Some(slot) => {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner());
            let key = key.as_ref().ok_or(Error::TransactionInactive)?;
            f(&db.in_tx(key))
        }
        None => f(&db.by(caller)),
    })
}

fn schedule_rows(list: Vec<ScheduleInfo>) -> Vec<ScheduleData> {
    list.into_iter()
        .map(|s| ScheduleData {
            name: s.name,
            queue: s.queue,
            schedule: s.cron,
            payload: s.payload,
            priority: s.priority,
            paused: s.paused,
            next_fire_at_ms: s.next_fire_at_ms,
            last_error: s.last_error,
        })
        .collect()
}

fn fires(list: Vec<Fired>) -> Vec<FireData> {
    list.into_iter()
        .map(|f| FireData {
            name: f.name,
            job_id: f.job_id,
            fire_at_ms: f.fire_at_ms,
        })
        .collect()
}

#[napi]
impl NativeDatabase {
    /// Opens (creating if needed) the file: WAL, honker's tables.
    #[napi(constructor)]
    pub fn new(path: String, opts: Option<OpenOptionsData>) -> napi::Result<Self> {
        let defaults = OpenOptions::default();
        let opts = match opts {
            None => defaults,
            Some(o) => OpenOptions {
                busy_timeout: secs("busyTimeoutS", o.busy_timeout_s)?
                    .unwrap_or(defaults.busy_timeout),
                wal_autocheckpoint: match o.wal_autocheckpoint {
                    None => defaults.wal_autocheckpoint,
                    Some(n) => u32::try_from(whole("walAutocheckpoint", n)?).map_err(|_| {
                        invalid(
                            "walAutocheckpoint",
                            format!(
                                "must be a whole number of pages from 0 to {}, got {n}",
                                u32::MAX
                            ),
                        )
                    })?,
                },
                trusted_schema: o.trusted_schema.unwrap_or(false),
                ..defaults
            },
        };
        let db = honker_core::guard(|| honker_core::open(&path, opts)).map_err(to_js)?;
        Ok(NativeDatabase { db })
    }

    /// Panics inside an operation, to show the guard at the boundary (the
    /// caller gets code `internal`, the process lives on). For tests.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn panic_for_test(&self) -> AsyncOp<()> {
        self.later(None, |_| panic!("a deliberate panic, for a test"))
    }

    /// Starts renewing a held lock in the background (every third of
    /// `ttlS`) until stopped; the keeper records a loss.
    #[napi]
    pub fn keep_lock(&self, name: String, token: i64, ttl_s: f64) -> napi::Result<NativeKeeper> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        let keeper = Keeper::start(&self.db, &name, token, ttl).map_err(to_js)?;
        Ok(NativeKeeper {
            keeper: Arc::new(Mutex::new(keeper)),
        })
    }

    #[napi]
    pub fn close(&self) -> napi::Result<()> {
        self.db.close().map_err(to_js)
    }

    #[napi]
    pub fn is_closed(&self) -> bool {
        self.db.is_closed()
    }

    // -- transactions --

    /// Opens a write transaction (waits for other processes' writers off
    /// the main thread).
    #[napi(ts_return_type = "Promise<NativeTx>")]
    pub fn begin(&self) -> AsyncOp<NativeTx> {
        let db = self.db.clone();
        spawn(move || {
            Ok(NativeTx {
                // Owned by a token of its own, not this pool thread: the
                // JS layer keeps other calls back until it ends.
                key: Arc::new(Mutex::new(Some(db.begin(Caller::host(next_tx_owner()))?))),
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit(&self, tx: &NativeTx) -> AsyncOp<()> {
        let (db, slot) = (self.db.clone(), tx.key.clone());
        spawn(move || {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            db.commit(key.ok_or(Error::TransactionInactive)?)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn rollback(&self, tx: &NativeTx) -> AsyncOp<()> {
        let (db, slot) = (self.db.clone(), tx.key.clone());
        spawn(move || {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            db.rollback(key.ok_or(Error::TransactionInactive)?)
        })
    }

    /// Runs one statement; returns the number of rows changed.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn execute(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        sql: String,
        #[napi(ts_arg_type = "unknown[]")] params: Vec<Param>,
        tx: Option<&NativeTx>,
    ) -> napi::Result<Run<i64>> {
        let values = values(params)?;
        self.run(sync, tx, move |o| Ok(o.execute(&sql, values)? as i64))
    }

    /// Runs a query; returns column names and rows.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? Rows : Promise<Rows>"
    )]
    pub fn query(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        sql: String,
        #[napi(ts_arg_type = "unknown[]")] params: Vec<Param>,
        tx: Option<&NativeTx>,
    ) -> napi::Result<Run<Rows>> {
        let values = values(params)?;
        self.run(sync, tx, move |o| run_query(o, &sql, values))
    }

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
    ) -> napi::Result<Run<i64>> {
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
    ) -> napi::Result<Run<Vec<i64>>> {
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
    ) -> napi::Result<Run<Vec<JobData>>> {
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
    ) -> napi::Result<napi::bindgen_prelude::Object<'env>> {
        let opts = QueueOpts {
            visibility_timeout: secs("visibilityTimeoutS", Some(visibility_timeout_s))?
                .unwrap_or_default(),
            max_attempts: attempts("maxAttempts", max_attempts)?,
        };
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, flag) = (self.db.clone(), stop.flag.clone());
        wait_on_thread(env, move || {
            Ok(wait::claim_next(
                &db,
                Caller::this_thread(),
                &queue,
                &worker,
                &opts,
                timeout,
                &flag,
            )?
            .map(JobData::from))
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
    ) -> napi::Result<Run<bool>> {
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
    ) -> napi::Result<Run<i64>> {
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
    ) -> napi::Result<Run<bool>> {
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
    ) -> napi::Result<AsyncOp<bool>> {
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
    ) -> napi::Result<AsyncOp<bool>> {
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
    pub fn cancel(&self, id: f64) -> napi::Result<AsyncOp<bool>> {
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
    ) -> napi::Result<Run<Option<JobData>>> {
        let id = whole("id", id)?;
        self.run(sync, None, move |o| Ok(o.get_job(id)?.map(JobData::from)))
    }

    #[napi(ts_return_type = "Promise<JobData[]>")]
    pub fn dead_jobs(&self, queue: String, limit: f64) -> napi::Result<AsyncOp<Vec<JobData>>> {
        let limit = count("limit", limit)?;
        Ok(self.later(None, move |o| o.dead_jobs(&queue, limit).map(jobs)))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn requeue_dead(&self, id: f64) -> napi::Result<AsyncOp<()>> {
        let id = whole("id", id)?;
        Ok(self.later(None, move |o| o.requeue_dead(id)))
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
    ) -> napi::Result<Run<QueueStatsData>> {
        self.run(sync, None, move |o| o.queue_stats(&queue).map(stats_out))
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
    ) -> napi::Result<Run<Option<i64>>> {
        self.run(sync, None, move |o| o.next_deadline(&queue))
    }

    // -- streams, notify --

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn publish(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        payload: String,
        key: Option<String>,
        tx: Option<&NativeTx>,
    ) -> napi::Result<Run<i64>> {
        self.run(sync, tx, move |o| {
            o.publish(&stream, key.as_deref(), &payload)
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? EventData[] : Promise<EventData[]>"
    )]
    pub fn read_since(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        offset: f64,
        limit: f64,
    ) -> napi::Result<Run<Vec<EventData>>> {
        let offset = whole("offset", offset)?;
        let limit = count("limit", limit)?;
        self.run(sync, None, move |o| {
            Ok(o.read_since(&stream, offset, limit)?
                .into_iter()
                .map(EventData::from)
                .collect())
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? boolean : Promise<boolean>"
    )]
    pub fn save_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        consumer: String,
        offset: f64,
        tx: Option<&NativeTx>,
    ) -> napi::Result<Run<bool>> {
        let offset = whole("offset", offset)?;
        self.run(sync, tx, move |o| o.save_offset(&stream, &consumer, offset))
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn get_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        consumer: String,
    ) -> napi::Result<Run<i64>> {
        self.run(sync, None, move |o| o.get_offset(&stream, &consumer))
    }

    /// The newest event's offset (0 if the stream is empty).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn last_offset(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
    ) -> napi::Result<Run<i64>> {
        self.run(sync, None, move |o| o.last_offset(&stream))
    }

    /// Stores `stream`'s retention (neither limit: keep everything).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn set_retention(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
        retention: Option<RetentionData>,
    ) -> napi::Result<Run<()>> {
        let r = retention_in(retention)?;
        self.run(sync, None, move |o| o.set_retention(&stream, r))
    }

    /// `stream`'s stored retention.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? RetentionData : Promise<RetentionData>"
    )]
    pub fn retention(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        stream: String,
    ) -> napi::Result<Run<RetentionData>> {
        self.run(sync, None, move |o| o.retention(&stream).map(retention_out))
    }

    /// Applies `stream`'s retention now; returns how many events were removed.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn prune(&self, stream: String) -> AsyncOp<i64> {
        self.later(None, move |o| Ok(o.prune_stream(&stream)? as i64))
    }

    /// A cursor at `consumer`'s saved offset.
    #[napi(ts_return_type = "Promise<NativeCursor>")]
    pub fn cursor(&self, stream: String, consumer: String) -> AsyncOp<NativeCursor> {
        let db = self.db.clone();
        spawn(move || {
            let cursor = wait::StreamCursor::open(&db, Caller::this_thread(), &stream, &consumer)?;
            Ok(NativeCursor {
                db,
                cursor: Arc::new(Mutex::new(cursor)),
            })
        })
    }

    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn notify(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        channel: String,
        payload: String,
        tx: Option<&NativeTx>,
    ) -> napi::Result<Run<i64>> {
        self.run(sync, tx, move |o| o.notify(&channel, &payload))
    }

    /// Starts listening: notifications committed from now on.
    #[napi]
    pub fn listen(&self, channel: String) -> napi::Result<NativeListener> {
        let queue = honker_core::wake::listen(&self.db, &channel).map_err(to_js)?;
        Ok(NativeListener {
            db: self.db.clone(),
            queue,
        })
    }

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
    ) -> napi::Result<Run<Option<i64>>> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        self.run(sync, None, move |o| o.try_lock(&name, &owner, ttl))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn renew_lock(&self, name: String, token: i64, ttl_s: f64) -> napi::Result<AsyncOp<bool>> {
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
    ) -> napi::Result<Run<bool>> {
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
    ) -> napi::Result<Run<Option<LockHolderData>>> {
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
    ) -> napi::Result<Run<bool>> {
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
    ) -> napi::Result<Run<()>> {
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
    ) -> napi::Result<Run<Option<String>>> {
        let job_id = whole("jobId", job_id)?;
        self.run(sync, None, move |o| o.get_result(job_id))
    }

    /// Removes every expired result now; returns how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn sweep_results(&self) -> AsyncOp<i64> {
        self.later(None, |o| Ok(o.sweep_results()? as i64))
    }

    // -- schedules --

    #[napi(ts_return_type = "Promise<void>")]
    pub fn schedule_add(&self, spec: ScheduleSpecData) -> napi::Result<AsyncOp<()>> {
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
    ) -> napi::Result<napi::bindgen_prelude::Object<'env>> {
        let opts = wait::SchedulerOpts {
            lock_ttl: secs("lockTtlS", Some(lock_ttl_s.unwrap_or(10.0)))?.unwrap_or_default(),
            ..wait::SchedulerOpts::default()
        };
        let (db, flag) = (self.db.clone(), stop.flag.clone());
        wait_on_thread(env, move || {
            wait::run_scheduler(&db, Caller::this_thread(), &flag, &owner, &opts, &mut |p| {
                on_problem.call(p.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
            })
        })
    }
}

/// `cronNext` options. Unknown fields are ignored.
#[napi(object)]
pub struct CronOptions {
    pub tz: Option<String>,
}

/// The first fire of cron expression `expr` (in zone `opts.tz`, else UTC)
/// strictly after `afterS` (epoch seconds, floored to the millisecond), in
/// ms since the epoch. Pure: it touches no database.
#[napi]
pub fn cron_next(expr: String, after_s: f64, opts: Option<CronOptions>) -> napi::Result<i64> {
    let after = secs("after", Some(after_s))?.unwrap_or_default();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let tz = opts.and_then(|o| o.tz);
    honker_core::guard(|| cron::next_fire(&expr, tz.as_deref(), after_ms)).map_err(to_js)
}

/// The honker-core version.
#[napi]
pub fn version() -> String {
    honker_core::VERSION.to_string()
}

/// Every error code, as in honker-core.
#[napi]
pub fn error_codes() -> Vec<String> {
    Error::CODES.iter().map(|s| s.to_string()).collect()
}
