//! Queue controls: pause, and a limit on jobs in flight, stored in the file
//! (`_honker_queues`) so that every process's claim obeys them inside its
//! own transaction. A change is a commit, so waiting claimers in every
//! process are woken by it like by an enqueue: a resume is seen at once,
//! not polled for.

use super::conn::atomic;
use crate::error::{Error, Result};
use crate::model::QueueControls;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};

/// The controls of `queue` (the default if none were ever set). One seek.
pub fn get(conn: &Connection, queue: &str) -> Result<QueueControls> {
    Ok(conn
        .prepare_cached("SELECT paused, max_in_flight FROM _honker_queues WHERE queue = ?1")?
        .query_row([queue], |r| {
            Ok(QueueControls {
                paused: r.get(0)?,
                max_in_flight: r.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// Pauses (`true`) or resumes `queue`; whether that changed anything.
pub fn set_paused(conn: &Connection, queue: &str, paused: bool, now: i64) -> Result<bool> {
    validate::name("queue", queue)?;
    atomic(conn, |conn| {
        if get(conn, queue)?.paused == paused {
            return Ok(false);
        }
        conn.prepare_cached(
            "INSERT INTO _honker_queues (queue, paused, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        )?
        .execute(params![queue, paused, now])?;
        Ok(true)
    })
}

/// Sets (or, with `None`, lifts) the limit on `queue`'s jobs in flight.
pub fn set_max_in_flight(conn: &Connection, queue: &str, max: Option<u32>, now: i64) -> Result<()> {
    validate::name("queue", queue)?;
    if max == Some(0) {
        return Err(Error::invalid(
            "max_in_flight",
            "must be at least 1 (pause the queue to claim nothing)",
        ));
    }
    conn.prepare_cached(
        "INSERT INTO _honker_queues (queue, max_in_flight, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue) DO UPDATE SET max_in_flight = excluded.max_in_flight,
                                            updated_at = excluded.updated_at",
    )?
    .execute(params![queue, max, now])?;
    Ok(())
}

/// Jobs of `queue` leased and unexpired at `now`.
pub fn in_flight(conn: &Connection, queue: &str, now: i64) -> Result<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM _honker_live
             WHERE queue = ?1 AND state = 'processing' AND lease_until > ?2",
        )?
        .query_row(params![queue, now], |r| r.get::<_, i64>(0))?
        .unsigned_abs())
}

/// How many of `want` jobs a claim of `queue` may take at `now` under its
/// controls: 0 while paused or at its limit.
pub fn claimable(conn: &Connection, queue: &str, want: usize, now: i64) -> Result<usize> {
    let c = get(conn, queue)?;
    if c.paused {
        return Ok(0);
    }
    Ok(match c.max_in_flight {
        None => want,
        Some(max) => {
            let room = u64::from(max).saturating_sub(in_flight(conn, queue, now)?);
            want.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
    })
}
