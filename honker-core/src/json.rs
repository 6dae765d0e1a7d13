//! The JSON shapes of honker's records, once: the SQL functions return
//! them and the command-line tool prints them (`--json`), so a script sees
//! the same fields from either.

use crate::model::{
    JobRecord, LockInfo, QueueControls, QueueSummary, Retention, ScheduleInfo, StreamSummary,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Stored JSON text as a value (text that is not JSON as a string).
pub fn stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

/// Seconds as JSON: an integer when whole (`86400`, not `86400.0`).
pub fn secs(d: Duration) -> Value {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        json!((ms / 1000) as u64)
    } else {
        json!(d.as_secs_f64())
    }
}

/// The task a payload's envelope names, if it is one.
pub fn task_of(payload: &str) -> Option<String> {
    crate::worker::envelope::task_of(payload).ok()
}

/// A job: live, dead or completed.
pub fn job(j: &JobRecord) -> Value {
    json!({
        "id": j.id, "queue": j.queue, "payload": stored(&j.payload), "task": task_of(&j.payload),
        "state": j.state.as_str(), "priority": j.priority, "run_at_ms": j.run_at_ms,
        "attempts": j.attempts, "max_attempts": j.max_attempts, "worker_id": j.worker_id,
        "lease_until_ms": j.lease_until_ms, "expires_at_ms": j.expires_at_ms, "key": j.key,
        "last_error": j.last_error, "created_at_ms": j.created_at_ms,
        "dead_reason": j.dead_reason, "died_at_ms": j.died_at_ms,
        "started_at_ms": j.started_at_ms, "completed_at_ms": j.completed_at_ms,
        "result": j.result.as_deref().map(stored),
    })
}

/// A queue's controls.
pub fn controls(k: &QueueControls) -> Value {
    json!({
        "paused": k.paused,
        "max_in_flight": k.max_in_flight,
        "rate_limit": k.rate_limit.map(|r| json!({"limit": r.limit, "per_s": secs(r.per)})),
        "retention": {
            "completed": k.retention.completed.map(retention),
            "dead": k.retention.dead.map(retention),
        },
        "events": k.events,
    })
}

/// A retention's limits (a stream's, or one table of a queue's).
pub fn retention(r: Retention) -> Value {
    json!({"max_age_s": r.max_age.map(secs), "max_count": r.max_count})
}

/// A queue with its counts and controls, flat.
pub fn queue(q: &QueueSummary) -> Value {
    let mut v = controls(&q.controls);
    v["name"] = json!(q.name);
    v["ready"] = json!(q.stats.ready);
    v["scheduled"] = json!(q.stats.scheduled);
    v["processing"] = json!(q.stats.processing);
    v["dead"] = json!(q.stats.dead);
    v["completed"] = json!(q.stats.completed);
    v
}

/// A stream with its consumers' offsets and lags.
pub fn stream(s: &StreamSummary) -> Value {
    let consumers: Map<String, Value> = s
        .consumers
        .iter()
        .map(|c| (c.name.clone(), json!({"offset": c.offset, "lag": c.lag})))
        .collect();
    json!({"name": s.name, "last_offset": s.last_offset, "consumers": consumers})
}

/// A lock held.
pub fn lock(l: &LockInfo) -> Value {
    json!({"name": l.name, "owner": l.owner, "token": l.token, "expires_at_ms": l.expires_at_ms})
}

/// A schedule.
pub fn schedule(s: &ScheduleInfo) -> Value {
    json!({
        "name": s.name, "queue": s.queue, "cron": s.cron, "payload": stored(&s.payload),
        "priority": s.priority, "expires_ms": s.expires_ms, "paused": s.paused,
        "next_fire_at_ms": s.next_fire_at_ms, "last_fire_at_ms": s.last_fire_at_ms,
        "last_error": s.last_error,
    })
}
