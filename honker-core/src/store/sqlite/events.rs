//! Lifecycle events: a queue that asks for them (`_honker_queues.events`)
//! has each change of its jobs' states published to the stream
//! [`STREAM`], in the transaction that makes the change, keyed by the
//! queue's name. A consumer reads them like any stream, with a saved
//! offset, so it never misses one and resumes where it stopped; an event
//! exists if and only if its change committed.
//!
//! The kinds, one per change (see [`Kind`]): `enqueued`, `started`,
//! `completed`, `failed` (an attempt ended in an error; followed in the
//! same transaction by `retried` or `dead`), `retried`, `dead`, `released`
//! (given back unstarted, the attempt not counted) and `cancelled`.
//!
//! A queue without events pays one primary-key read of its controls row
//! where the change did not read it already (claims read it anyway).

use super::stream;
use crate::error::Result;
use crate::model::Retention;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub use crate::model::EVENTS_STREAM as STREAM;

/// How long the events stream keeps events when events are turned on and
/// it has no retention of its own: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Added (or put back from the dead table), ready or scheduled.
    Enqueued,
    /// Claimed by a worker: an attempt started.
    Started,
    /// Acked.
    Completed,
    /// An attempt ended in an error (a retry, a failure, a lost lease).
    Failed,
    /// Given back for another attempt.
    Retried,
    /// Moved to the dead table.
    Dead,
    /// Given back unstarted, the attempt not counted.
    Released,
    /// Removed (cancelled or purged).
    Cancelled,
}

impl Kind {
    /// The kind's name, as events carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enqueued => "enqueued",
            Kind::Started => "started",
            Kind::Completed => "completed",
            Kind::Failed => "failed",
            Kind::Retried => "retried",
            Kind::Dead => "dead",
            Kind::Released => "released",
            Kind::Cancelled => "cancelled",
        }
    }
}

/// One event: what happened to which job, and what else is known.
pub(super) struct Event<'a> {
    pub kind: Kind,
    pub queue: &'a str,
    pub job_id: i64,
    /// The attempt it concerns (claims so far, the current one included).
    pub attempt: Option<u32>,
    /// The task its payload's envelope names, if it is one.
    pub task: Option<&'a str>,
    pub worker: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Why it died.
    pub reason: Option<&'a str>,
    /// When it is due (enqueued, retried).
    pub run_at_ms: Option<i64>,
}

impl<'a> Event<'a> {
    pub(super) fn new(kind: Kind, queue: &'a str, job_id: i64) -> Event<'a> {
        Event {
            kind,
            queue,
            job_id,
            attempt: None,
            task: None,
            worker: None,
            error: None,
            reason: None,
            run_at_ms: None,
        }
    }
}

/// Whether `queue` publishes lifecycle events.
pub(super) fn enabled(conn: &Connection, queue: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT events FROM _honker_queues WHERE queue = ?1")?
        .query_row([queue], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The task an envelope payload names (None for any other payload).
pub(super) fn task_of(payload: &str) -> Option<String> {
    crate::worker::envelope::task_of(payload).ok()
}

/// Publishes `e`, happened at `now`, in the caller's transaction.
pub(super) fn emit(conn: &Connection, e: &Event<'_>, now: i64) -> Result<()> {
    let mut m = Map::new();
    m.insert("type".into(), json!(e.kind.as_str()));
    m.insert("queue".into(), json!(e.queue));
    m.insert("job_id".into(), json!(e.job_id));
    m.insert("at_ms".into(), json!(now));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("attempt", e.attempt.map(|a| json!(a)));
    put("task", e.task.map(|t| json!(t)));
    put("worker_id", e.worker.map(|w| json!(w)));
    put("error", e.error.map(|x| json!(x)));
    put("reason", e.reason.map(|x| json!(x)));
    put("run_at_ms", e.run_at_ms.map(|t| json!(t)));
    stream::publish(
        conn,
        STREAM,
        Some(e.queue),
        &Value::Object(m).to_string(),
        now,
    )?;
    Ok(())
}

/// Turns `queue`'s lifecycle events on or off. Turning them on gives the
/// events stream a retention of [`DEFAULT_RETENTION`] if it has none.
pub fn set(conn: &Connection, queue: &str, on: bool, now: i64) -> Result<()> {
    validate::name("queue", queue)?;
    super::conn::atomic(conn, |conn| {
        conn.prepare_cached(
            "INSERT INTO _honker_queues (queue, events, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (queue) DO UPDATE SET events = excluded.events,
                                                updated_at = excluded.updated_at",
        )?
        .execute(params![queue, on, now])?;
        if on && stream::get_retention(conn, STREAM)? == Retention::default() {
            stream::set_retention(
                conn,
                STREAM,
                Retention {
                    max_age: Some(DEFAULT_RETENTION),
                    max_count: None,
                },
            )?;
        }
        Ok(())
    })
}
