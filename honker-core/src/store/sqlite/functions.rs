//! Every honker operation as a SQL function (`honker_*`, plus `notify`),
//! registered on a connection by [`register`]: by the loadable extension on
//! the host's connection, and by the bindings on the connections they open,
//! so SQL (and triggers) work the same everywhere. Enabled by the
//! `functions` feature. The functions are documented in
//! bindings/sqlite/README.md.

use super::{
    controls, events, listing, lock, notify, queue, rate_limit, result, retention, scheduler,
    schema, stream,
};
use crate::clock::system_now_ms;
use crate::model::*;
use crate::{cron, validate, Error as HErr};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};
use std::os::raw::c_int;
use std::time::Duration;

type HResult<T> = Result<T, HErr>;

// ---- arguments -------------------------------------------------------------

fn type_name(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

fn raw<'a>(ctx: &'a Context<'_>, i: usize) -> ValueRef<'a> {
    if i < ctx.len() {
        ctx.get_raw(i)
    } else {
        ValueRef::Null
    }
}

fn text(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<String> {
    match raw(ctx, i) {
        ValueRef::Text(t) => {
            String::from_utf8(t.to_vec()).map_err(|_| HErr::invalid(what, "is not valid UTF-8"))
        }
        v => Err(HErr::invalid(
            what,
            format!("must be TEXT, got {}", type_name(v)),
        )),
    }
}

fn opt_text(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<Option<String>> {
    match raw(ctx, i) {
        ValueRef::Null => Ok(None),
        _ => text(ctx, i, what).map(Some),
    }
}

fn int(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<i64> {
    opt_int(ctx, i, what)?.ok_or_else(|| HErr::invalid(what, "must be an INTEGER, got NULL"))
}

fn opt_int(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<Option<i64>> {
    match raw(ctx, i) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n)),
        ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
        v => Err(HErr::invalid(
            what,
            format!("must be an INTEGER, got {}", type_name(v)),
        )),
    }
}

fn opt_secs(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<Option<f64>> {
    match raw(ctx, i) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n as f64)),
        ValueRef::Real(f) => Ok(Some(f)),
        v => Err(HErr::invalid(
            what,
            format!("must be a number of seconds, got {}", type_name(v)),
        )),
    }
}

/// A TTL or window in seconds (positive), as milliseconds.
fn ttl_ms(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<i64> {
    let s = opt_secs(ctx, i, what)?
        .ok_or_else(|| HErr::invalid(what, "must be a number of seconds, got NULL"))?;
    validate::ttl_secs_f64(what, s)
}

/// A payload: JSON text (validated by core), or a number/NULL as JSON.
fn payload(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<String> {
    match raw(ctx, i) {
        ValueRef::Null => Ok("null".into()),
        ValueRef::Integer(n) => Ok(n.to_string()),
        ValueRef::Real(f) => Ok(Json::from(f).to_string()),
        _ => text(ctx, i, what),
    }
}

fn lease<'a>(ctx: &Context<'_>, worker: &'a str) -> HResult<Lease<'a>> {
    let attempt = int(ctx, 2, "attempt")?;
    Ok(Lease {
        id: int(ctx, 0, "id")?,
        worker,
        attempt: u32::try_from(attempt).map_err(|_| HErr::invalid("attempt", "out of range"))?,
    })
}

// ---- results ---------------------------------------------------------------

/// `honker_jobs`' filter: a JSON object with any of `queue`, `state`,
/// `task`, `key`, `created_from_ms`, `created_to_ms`, `before_id`, `limit`.
fn job_filter(text: &str) -> HResult<JobFilter> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct F {
        queue: Option<String>,
        state: Option<String>,
        task: Option<String>,
        key: Option<String>,
        created_from_ms: Option<i64>,
        created_to_ms: Option<i64>,
        before_id: Option<i64>,
        limit: Option<i64>,
    }
    let f: F = serde_json::from_str(text).map_err(|e| HErr::InvalidJson {
        name: "filter",
        reason: format!(
            "expected an object with any of queue, state, task, key, created_from_ms, \
             created_to_ms, before_id, limit: {e}"
        ),
    })?;
    Ok(JobFilter {
        queue: f.queue,
        state: f.state.as_deref().map(JobState::from_name).transpose()?,
        task: f.task,
        key: f.key,
        created_from_ms: f.created_from_ms,
        created_to_ms: f.created_to_ms,
        before_id: f.before_id,
        limit: f
            .limit
            .map(|n| validate::count("limit", n))
            .transpose()?
            .unwrap_or(0),
    })
}

/// One table's limits in `honker_set_retention`: NULL (none), or a JSON
/// object with `max_age_s`, `max_count` or both.
fn retention_arg(ctx: &Context<'_>, i: usize, what: &'static str) -> HResult<Option<Retention>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct R {
        max_age_s: Option<f64>,
        max_count: Option<i64>,
    }
    let Some(text) = opt_text(ctx, i, what)? else {
        return Ok(None);
    };
    let r: R = serde_json::from_str(&text).map_err(|e| HErr::InvalidJson {
        name: what,
        reason: format!("expected null or an object with max_age_s, max_count or both: {e}"),
    })?;
    validate::retention(r.max_age_s, r.max_count).map(Some)
}

fn text_value(j: Json) -> Value {
    Value::Text(j.to_string())
}

fn opt_int_value(v: Option<i64>) -> Value {
    v.map(Value::Integer).unwrap_or(Value::Null)
}

fn bool_value(b: bool) -> Value {
    Value::Integer(b as i64)
}

// ---- registration ----------------------------------------------------------

type Op = fn(&Context<'_>, &Connection, i64) -> HResult<Value>;

/// Who may call the functions that write or read honker's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callers {
    /// Only SQL the application runs itself: the functions are
    /// `SQLITE_DIRECTONLY`, so no trigger, view or other schema code in a
    /// file (one honker merely opens, or one attached to it) can call them.
    /// What honker's own connections use unless the application opts in.
    Direct,
    /// Also the schema, under SQLite's own rule: neither innocuous nor
    /// direct-only, so triggers and views may call them only while the
    /// connection's `trusted_schema` is on. What the loadable extension
    /// uses (the host's connection, the host's choice).
    TrustedSchema,
}

/// Registers every honker SQL function on `db`.
pub fn register(db: &Connection, callers: Callers) -> rusqlite::Result<()> {
    let write = match callers {
        Callers::Direct => FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
        Callers::TrustedSchema => FunctionFlags::SQLITE_UTF8,
    };
    let read = write;
    let pure = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    // No side effects, but not deterministic: with a zone it depends on the
    // tz database.
    let computed = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
    let ops: &[(&'static str, c_int, FunctionFlags, Op)] = &[
        ("honker_version", 0, pure, |_, _, _| {
            Ok(Value::Text(crate::VERSION.into()))
        }),
        ("honker_bootstrap", 0, write, |_, c, _| {
            schema::migrate(c).map(Value::Integer)
        }),
        // queues
        ("honker_enqueue", -1, write, enqueue),
        ("honker_claim_batch", -1, write, claim_batch),
        ("honker_ack", 3, write, |ctx, c, now| {
            let worker = text(ctx, 1, "worker")?;
            queue::ack(c, lease(ctx, &worker)?, now).map(bool_value)
        }),
        ("honker_ack_batch", -1, write, ack_batch),
        ("honker_retry", 5, write, |ctx, c, now| {
            let worker = text(ctx, 1, "worker")?;
            let delay = opt_secs(ctx, 3, "delay_s")?
                .map(|s| validate::secs_f64("delay_s", s))
                .transpose()?;
            let error = opt_text(ctx, 4, "error")?.unwrap_or_default();
            queue::retry(c, lease(ctx, &worker)?, delay, &error, now).map(bool_value)
        }),
        ("honker_release", 3, write, |ctx, c, now| {
            let worker = text(ctx, 1, "worker")?;
            queue::release(c, lease(ctx, &worker)?, now).map(bool_value)
        }),
        ("honker_fail", 4, write, |ctx, c, now| {
            let worker = text(ctx, 1, "worker")?;
            let error = opt_text(ctx, 3, "error")?.unwrap_or_default();
            queue::fail(c, lease(ctx, &worker)?, &error, now).map(bool_value)
        }),
        ("honker_heartbeat", 4, write, |ctx, c, now| {
            let worker = text(ctx, 1, "worker")?;
            let extend = Duration::from_millis(ttl_ms(ctx, 3, "extend_s")? as u64);
            queue::heartbeat(c, lease(ctx, &worker)?, extend, now).map(bool_value)
        }),
        ("honker_cancel", 1, write, |ctx, c, now| {
            queue::cancel(c, int(ctx, 0, "id")?, now).map(bool_value)
        }),
        ("honker_purge", 1, write, |ctx, c, now| {
            queue::purge(c, &text(ctx, 0, "queue")?, now).map(|n| Value::Integer(n as i64))
        }),
        ("honker_get_job", 1, read, |ctx, c, _| {
            Ok(queue::get_job(c, int(ctx, 0, "id")?)?
                .map(|j| text_value(crate::json::job(&j)))
                .unwrap_or(Value::Null))
        }),
        ("honker_dead_jobs", -1, read, |ctx, c, _| {
            let limit = validate::count("limit", opt_int(ctx, 1, "limit")?.unwrap_or(100))?;
            let jobs = queue::dead_jobs(c, &text(ctx, 0, "queue")?, limit)?;
            Ok(text_value(Json::Array(
                jobs.iter().map(crate::json::job).collect(),
            )))
        }),
        ("honker_requeue_dead", 1, write, |ctx, c, now| {
            queue::requeue_dead(c, int(ctx, 0, "id")?, now).map(|_| Value::Integer(1))
        }),
        ("honker_requeue_dead_all", -1, write, |ctx, c, now| {
            let reason = opt_text(ctx, 1, "reason")?;
            queue::requeue_dead_all(c, &text(ctx, 0, "queue")?, reason.as_deref(), now)
                .map(|n| Value::Integer(n as i64))
        }),
        ("honker_cancel_many", 1, write, |ctx, c, now| {
            let ids: Vec<i64> =
                serde_json::from_str(&text(ctx, 0, "ids")?).map_err(|e| HErr::InvalidJson {
                    name: "ids",
                    reason: format!("expected a JSON array of job ids: {e}"),
                })?;
            queue::cancel_many(c, &ids, now).map(|n| Value::Integer(n as i64))
        }),
        ("honker_sweep_expired", -1, write, |ctx, c, now| {
            let q = opt_text(ctx, 0, "queue")?;
            queue::sweep_expired(c, q.as_deref(), now).map(|n| Value::Integer(n as i64))
        }),
        ("honker_next_deadline", 1, read, |ctx, c, _| {
            queue::next_deadline(c, &text(ctx, 0, "queue")?).map(opt_int_value)
        }),
        ("honker_queue_stats", 1, read, |ctx, c, _| {
            let s = queue::stats(c, &text(ctx, 0, "queue")?)?;
            Ok(text_value(
                json!({"ready": s.ready, "scheduled": s.scheduled, "processing": s.processing, "dead": s.dead}),
            ))
        }),
        ("honker_pause", 1, write, |ctx, c, now| {
            controls::set_paused(c, &text(ctx, 0, "queue")?, true, now).map(bool_value)
        }),
        ("honker_resume", 1, write, |ctx, c, now| {
            controls::set_paused(c, &text(ctx, 0, "queue")?, false, now).map(bool_value)
        }),
        ("honker_set_max_in_flight", 2, write, |ctx, c, now| {
            let max = opt_int(ctx, 1, "max_in_flight")?
                .map(|n| validate::attempts("max_in_flight", n))
                .transpose()?;
            controls::set_max_in_flight(c, &text(ctx, 0, "queue")?, max, now)
                .map(|_| Value::Integer(1))
        }),
        ("honker_set_rate_limit", 3, write, |ctx, c, now| {
            let rate = validate::queue_rate(opt_int(ctx, 1, "limit")?, opt_secs(ctx, 2, "per_s")?)?;
            controls::set_rate_limit(c, &text(ctx, 0, "queue")?, rate, now)
                .map(|_| Value::Integer(1))
        }),
        ("honker_set_retention", 3, write, |ctx, c, now| {
            let r = QueueRetention {
                completed: retention_arg(ctx, 1, "completed")?,
                dead: retention_arg(ctx, 2, "dead")?,
            };
            retention::set(c, &text(ctx, 0, "queue")?, r, now).map(|_| Value::Integer(1))
        }),
        ("honker_set_events", 2, write, |ctx, c, now| {
            let on = int(ctx, 1, "on")? != 0;
            events::set(c, &text(ctx, 0, "queue")?, on, now).map(|_| Value::Integer(1))
        }),
        ("honker_prune", 1, write, |ctx, c, now| {
            retention::prune(c, &text(ctx, 0, "queue")?, now).map(|n| Value::Integer(n as i64))
        }),
        ("honker_queues", 0, read, |_, c, _| {
            let queues = listing::queues(c)?;
            Ok(text_value(Json::Array(
                queues.iter().map(crate::json::queue).collect(),
            )))
        }),
        ("honker_streams", 0, read, |_, c, _| {
            let streams = listing::streams(c)?;
            Ok(text_value(Json::Array(
                streams.iter().map(crate::json::stream).collect(),
            )))
        }),
        ("honker_jobs", -1, read, |ctx, c, _| {
            let filter = match opt_text(ctx, 0, "filter")? {
                None => JobFilter::default(),
                Some(text) => job_filter(&text)?,
            };
            let jobs = listing::jobs(c, &filter)?;
            Ok(text_value(Json::Array(
                jobs.iter().map(crate::json::job).collect(),
            )))
        }),
        ("honker_queue_controls", 1, read, |ctx, c, _| {
            let q = text(ctx, 0, "queue")?;
            validate::name("queue", &q)?;
            Ok(text_value(crate::json::controls(&controls::get(c, &q)?)))
        }),
        // streams
        ("honker_publish", -1, write, |ctx, c, now| {
            let key = opt_text(ctx, 2, "key")?;
            stream::publish(
                c,
                &text(ctx, 0, "stream")?,
                key.as_deref(),
                &payload(ctx, 1, "payload")?,
                now,
            )
            .map(Value::Integer)
        }),
        ("honker_read_since", -1, read, |ctx, c, _| {
            let limit = validate::count("limit", opt_int(ctx, 2, "limit")?.unwrap_or(100))?;
            let events =
                stream::read_since(c, &text(ctx, 0, "stream")?, int(ctx, 1, "offset")?, limit)?;
            Ok(text_value(Json::Array(
                events
                    .iter()
                    .map(|e| json!({"offset": e.offset, "stream": e.stream, "key": e.key, "payload": crate::json::stored(&e.payload), "created_at_ms": e.created_at_ms}))
                    .collect(),
            )))
        }),
        ("honker_save_offset", 3, write, |ctx, c, now| {
            stream::save_offset(
                c,
                &text(ctx, 0, "stream")?,
                &text(ctx, 1, "consumer")?,
                int(ctx, 2, "offset")?,
                now,
            )
            .map(bool_value)
        }),
        ("honker_last_offset", 1, read, |ctx, c, _| {
            stream::last_offset(c, &text(ctx, 0, "stream")?).map(Value::Integer)
        }),
        ("honker_get_offset", 2, read, |ctx, c, _| {
            stream::get_offset(c, &text(ctx, 0, "stream")?, &text(ctx, 1, "consumer")?)
                .map(Value::Integer)
        }),
        ("honker_stream_retention", 3, write, |ctx, c, _| {
            let max_age = opt_secs(ctx, 1, "max_age_s")?
                .map(|s| validate::secs_f64("max_age_s", s))
                .transpose()?;
            let max_count = opt_int(ctx, 2, "max_count")?
                .map(|n| {
                    u64::try_from(n).map_err(|_| HErr::invalid("max_count", "must not be negative"))
                })
                .transpose()?;
            stream::set_retention(
                c,
                &text(ctx, 0, "stream")?,
                Retention { max_age, max_count },
            )
            .map(|_| Value::Integer(1))
        }),
        ("honker_stream_prune", 1, write, |ctx, c, now| {
            stream::prune(c, &text(ctx, 0, "stream")?, now).map(|n| Value::Integer(n as i64))
        }),
        // pub/sub
        ("notify", 2, write, do_notify),
        ("honker_notify", 2, write, do_notify),
        ("honker_notifications_since", -1, read, |ctx, c, _| {
            let channel = opt_text(ctx, 1, "channel")?;
            let limit = validate::count("limit", opt_int(ctx, 2, "limit")?.unwrap_or(100))?;
            let ns = notify::read_after(c, int(ctx, 0, "after_id")?, channel.as_deref(), limit)?;
            Ok(text_value(Json::Array(
                ns.iter()
                    .map(|n| json!({"id": n.id, "channel": n.channel, "payload": crate::json::stored(&n.payload), "created_at_ms": n.created_at_ms}))
                    .collect(),
            )))
        }),
        ("honker_notifications_prune", 1, write, |ctx, c, now| {
            let older = ttl_ms(ctx, 0, "older_than_s")?;
            notify::prune(c, now.saturating_sub(older)).map(|n| Value::Integer(n as i64))
        }),
        // locks, rate limits, results
        ("honker_lock_acquire", 3, write, |ctx, c, now| {
            lock::try_acquire(
                c,
                &text(ctx, 0, "name")?,
                &text(ctx, 1, "owner")?,
                ttl_ms(ctx, 2, "ttl_s")?,
                now,
            )
            .map(opt_int_value)
        }),
        ("honker_lock_renew", 3, write, |ctx, c, now| {
            lock::renew(
                c,
                &text(ctx, 0, "name")?,
                int(ctx, 1, "token")?,
                ttl_ms(ctx, 2, "ttl_s")?,
                now,
            )
            .map(bool_value)
        }),
        ("honker_lock_holder", 1, read, |ctx, c, now| {
            Ok(match lock::holder(c, &text(ctx, 0, "name")?, now)? {
                None => Value::Null,
                Some(h) => text_value(json!({
                    "name": h.name, "owner": h.owner, "fencing_token": h.token, "expires_at_ms": h.expires_at_ms,
                })),
            })
        }),
        ("honker_lock_release", 2, write, |ctx, c, _| {
            lock::release(c, &text(ctx, 0, "name")?, int(ctx, 1, "token")?).map(bool_value)
        }),
        ("honker_rate_limit", 3, write, |ctx, c, now| {
            rate_limit::try_acquire(
                c,
                &text(ctx, 0, "key")?,
                int(ctx, 1, "limit")?,
                ttl_ms(ctx, 2, "per_s")?,
                now,
            )
            .map(bool_value)
        }),
        ("honker_result_save", 3, write, |ctx, c, now| {
            result::save(
                c,
                int(ctx, 0, "job_id")?,
                &payload(ctx, 1, "value")?,
                ttl_ms(ctx, 2, "ttl_s")?,
                now,
            )
            .map(|_| Value::Integer(1))
        }),
        ("honker_result_get", 1, read, |ctx, c, now| {
            Ok(result::get(c, int(ctx, 0, "job_id")?, now)?
                .map(Value::Text)
                .unwrap_or(Value::Null))
        }),
        ("honker_result_sweep", 0, write, |_, c, now| {
            result::sweep(c, now).map(|n| Value::Integer(n as i64))
        }),
        // schedules
        ("honker_schedule_add", -1, write, |ctx, c, now| {
            let (name, q, expr, p) = (
                text(ctx, 0, "name")?,
                text(ctx, 1, "queue")?,
                text(ctx, 2, "cron")?,
                payload(ctx, 3, "payload")?,
            );
            let expires = opt_secs(ctx, 5, "expires_s")?
                .map(|s| validate::secs_f64("expires_s", s))
                .transpose()?;
            let tz = opt_text(ctx, 6, "tz")?;
            let spec = ScheduleSpec {
                name: &name,
                queue: &q,
                cron: &expr,
                tz: tz.as_deref(),
                payload: &p,
                priority: opt_int(ctx, 4, "priority")?.unwrap_or(0),
                expires,
            };
            scheduler::add(c, &spec, now).map(|_| Value::Integer(1))
        }),
        ("honker_schedule_remove", 1, write, |ctx, c, _| {
            scheduler::remove(c, &text(ctx, 0, "name")?).map(bool_value)
        }),
        ("honker_schedule_pause", 1, write, |ctx, c, _| {
            scheduler::pause(c, &text(ctx, 0, "name")?).map(|_| Value::Integer(1))
        }),
        ("honker_schedule_resume", 1, write, |ctx, c, now| {
            scheduler::resume(c, &text(ctx, 0, "name")?, now).map(|_| Value::Integer(1))
        }),
        ("honker_schedule_list", 0, read, |_, c, _| {
            let list = scheduler::list(c)?;
            Ok(text_value(Json::Array(
                list.iter().map(crate::json::schedule).collect(),
            )))
        }),
        ("honker_schedule_tick", 0, write, |_, c, now| {
            let fired = scheduler::tick(c, now)?;
            Ok(text_value(Json::Array(
                fired.iter().map(|f| json!({"name": f.name, "queue": f.queue, "job_id": f.job_id, "fire_at_ms": f.fire_at_ms})).collect(),
            )))
        }),
        ("honker_schedule_soonest", 0, read, |_, c, _| {
            scheduler::soonest(c).map(opt_int_value)
        }),
        ("honker_cron_next", -1, computed, |ctx, _, _| {
            let tz = opt_text(ctx, 2, "tz")?;
            cron::next_fire(
                &text(ctx, 0, "cron")?,
                tz.as_deref(),
                int(ctx, 1, "after_ms")?,
            )
            .map(Value::Integer)
        }),
    ];
    for &(name, n_arg, flags, op) in ops {
        db.create_scalar_function(name, n_arg, flags, move |ctx| call(name, op, ctx))?;
    }
    Ok(())
}

/// Runs one SQL function: the operation under the panic guard, its error
/// as `name [code]: message`, so SQL callers can tell errors apart by code
/// as the other languages do.
fn call(name: &str, op: Op, ctx: &Context<'_>) -> rusqlite::Result<Value> {
    crate::guard(|| {
        // SAFETY: the connection is only used during this call.
        let conn = unsafe { ctx.get_connection()? };
        op(ctx, &conn, system_now_ms())
    })
    .map_err(|e| rusqlite::Error::UserFunctionError(format!("{name} [{}]: {e}", e.code()).into()))
}

fn do_notify(ctx: &Context<'_>, c: &Connection, now: i64) -> HResult<Value> {
    notify::notify(
        c,
        &text(ctx, 0, "channel")?,
        &payload(ctx, 1, "payload")?,
        now,
    )
    .map(Value::Integer)
}

fn enqueue(ctx: &Context<'_>, c: &Connection, now: i64) -> HResult<Value> {
    if !(2..=3).contains(&ctx.len()) {
        return Err(HErr::invalid(
            "arguments",
            "honker_enqueue(queue, payload [, options_json])",
        ));
    }
    let q = text(ctx, 0, "queue")?;
    let p = payload(ctx, 1, "payload")?;
    let mut opts = EnqueueOpts::default();
    let mut max_attempts = DEFAULT_MAX_ATTEMPTS;
    if let Some(o) = opt_text(ctx, 2, "options")? {
        let o: Map<String, Json> = serde_json::from_str(&o).map_err(|e| HErr::InvalidJson {
            name: "options",
            reason: format!("expected a JSON object: {e}"),
        })?;
        for (k, v) in o {
            let num = |what: &'static str| {
                v.as_f64()
                    .ok_or_else(|| HErr::invalid(what, format!("must be a number, got {v}")))
            };
            match k.as_str() {
                "delay_s" => opts.delay = Some(validate::secs_f64("delay_s", num("delay_s")?)?),
                "run_at" => opts.run_at = Some(validate::epoch_secs_f64("run_at", num("run_at")?)?),
                "priority" => opts.priority = v.as_i64().ok_or_else(|| HErr::invalid("priority", format!("must be an integer, got {v}")))?,
                "max_attempts" => {
                    let n = v.as_u64().filter(|n| *n >= 1 && *n <= u32::MAX as u64);
                    max_attempts = n.ok_or_else(|| HErr::invalid("max_attempts", format!("must be an integer of at least 1, got {v}")))? as u32;
                    opts.max_attempts = Some(max_attempts);
                }
                "expires_s" => opts.expires = Some(validate::secs_f64("expires_s", num("expires_s")?)?),
                "key" => opts.key = Some(v.as_str().ok_or_else(|| HErr::invalid("key", format!("must be a string, got {v}")))?.to_string()),
                other => {
                    return Err(HErr::invalid(
                        "options",
                        format!("unknown option {other:?} (expected delay_s, run_at, priority, max_attempts, expires_s, key)"),
                    ))
                }
            }
        }
    }
    queue::enqueue(c, &q, &p, &opts, max_attempts, now).map(Value::Integer)
}

/// `honker_ack_batch(jobs_json)`: the claimed jobs as `honker_claim_batch`
/// returned them (each an object with `id`, `worker_id` and `attempts`),
/// so every ack is fenced by its whole lease.
fn ack_batch(ctx: &Context<'_>, c: &Connection, now: i64) -> HResult<Value> {
    #[derive(serde::Deserialize)]
    struct Claimed {
        id: i64,
        worker_id: String,
        attempts: u32,
    }
    if ctx.len() != 1 {
        return Err(HErr::invalid(
            "arguments",
            "honker_ack_batch(jobs_json) takes the claimed jobs (a JSON array of objects with \
             id, worker_id and attempts, as honker_claim_batch returns them): a bare list of ids \
             cannot tell a lapsed claim from the current one",
        ));
    }
    let jobs: Vec<Claimed> =
        serde_json::from_str(&text(ctx, 0, "jobs")?).map_err(|e| HErr::InvalidJson {
            name: "jobs",
            reason: format!(
                "expected a JSON array of claimed jobs ({{\"id\", \"worker_id\", \"attempts\"}}): {e}"
            ),
        })?;
    let leases: Vec<Lease<'_>> = jobs
        .iter()
        .map(|j| Lease::new(j.id, &j.worker_id, j.attempts))
        .collect();
    queue::ack_batch(c, &leases, now).map(|n| Value::Integer(n as i64))
}

fn claim_batch(ctx: &Context<'_>, c: &Connection, now: i64) -> HResult<Value> {
    if !(3..=4).contains(&ctx.len()) {
        return Err(HErr::invalid(
            "arguments",
            "honker_claim_batch(queue, worker, n [, visibility_timeout_s])",
        ));
    }
    let n = int(ctx, 2, "n")?;
    let n = usize::try_from(n)
        .map_err(|_| HErr::invalid("n", format!("must be at least 1, got {n}")))?;
    let vt = match opt_secs(ctx, 3, "visibility_timeout_s")? {
        None => DEFAULT_VISIBILITY_TIMEOUT,
        Some(_) => Duration::from_millis(ttl_ms(ctx, 3, "visibility_timeout_s")? as u64),
    };
    let jobs = queue::claim(
        c,
        &text(ctx, 0, "queue")?,
        &text(ctx, 1, "worker")?,
        n,
        vt,
        now,
    )?;
    Ok(text_value(Json::Array(
        jobs.iter().map(crate::json::job).collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        register(&c, Callers::TrustedSchema).unwrap();
        schema::migrate(&c).unwrap();
        c
    }

    fn err(c: &Connection, sql: &str) -> String {
        c.query_row(sql, [], |r| r.get::<_, Value>(0))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_panic_in_a_function_is_an_error_with_the_internal_code() {
        let c = conn();
        c.create_scalar_function("boom", 0, FunctionFlags::SQLITE_UTF8, |ctx| {
            call("boom", |_, _, _| panic!("deliberate"), ctx)
        })
        .unwrap();
        let e = err(&c, "SELECT boom()");
        assert!(
            e.starts_with("boom [internal]: internal error in honker"),
            "{e}"
        );
        assert!(e.contains("deliberate"), "{e}");
    }

    #[test]
    fn errors_carry_their_code() {
        let c = conn();
        let e = err(&c, "SELECT honker_enqueue('', '{}')");
        assert!(
            e.starts_with("honker_enqueue [invalid_argument]: invalid argument `queue`"),
            "{e}"
        );
        let e = err(
            &c,
            r#"SELECT honker_enqueue('q', '{}', '{"run_at": 1e19}')"#,
        );
        assert!(
            e.starts_with("honker_enqueue [invalid_argument]: invalid argument `run_at`"),
            "{e}"
        );
        let e = err(&c, "SELECT honker_cron_next('* * * * *', 9223372036854775)");
        assert!(
            e.starts_with("honker_cron_next [invalid_argument]: invalid argument `after`"),
            "{e}"
        );
        let e = err(&c, "SELECT honker_cron_next('1/4294967295 * * * *', 0)");
        assert!(e.starts_with("honker_cron_next [invalid_cron]"), "{e}");
    }

    #[test]
    fn batch_ack_takes_whole_leases() {
        let c = conn();
        let id: i64 = c
            .query_row("SELECT honker_enqueue('q', '{}')", [], |r| r.get(0))
            .unwrap();
        let jobs: String = c
            .query_row("SELECT honker_claim_batch('q', 'w', 1)", [], |r| r.get(0))
            .unwrap();
        let e = err(&c, &format!("SELECT honker_ack_batch('[{id}]', 'w')"));
        assert!(
            e.contains("[invalid_argument]") && e.contains("bare list of ids"),
            "{e}"
        );
        let wrong_attempt = jobs.replace("\"attempts\":1", "\"attempts\":2");
        let n: i64 = c
            .query_row("SELECT honker_ack_batch(?1)", [&wrong_attempt], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 0);
        let n: i64 = c
            .query_row("SELECT honker_ack_batch(?1)", [&jobs], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn direct_only_functions_cannot_be_called_from_a_view() {
        let c = Connection::open_in_memory().unwrap();
        register(&c, Callers::Direct).unwrap();
        schema::migrate(&c).unwrap();
        c.execute_batch("CREATE VIEW v AS SELECT honker_enqueue('q', '{}') AS id")
            .unwrap();
        let e = err(&c, "SELECT id FROM v");
        assert!(e.contains("unsafe use of honker_enqueue"), "{e}");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM _honker_live", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // Called directly, it works.
        c.query_row("SELECT honker_enqueue('q', '{}')", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    }
}
