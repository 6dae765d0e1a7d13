//! Queue controls: pause, a limit on jobs in flight and a claim rate limit,
//! stored in the file (`_honker_queues`) so that every process's claim
//! obeys them inside its own transaction. A change is a commit, so waiting
//! claimers in every process are woken by it like by an enqueue: a resume
//! is seen at once, not polled for.

use super::conn::atomic;
use crate::error::{Error, Result};
use crate::model::{QueueControls, QueueRateLimit};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;

/// A queue's stored controls and the count of its current rate window.
#[derive(Debug, Default)]
struct Row {
    controls: QueueControls,
    /// The start of the window `count` belongs to (ms since the epoch).
    window_start: Option<i64>,
    count: u64,
}

fn row(conn: &Connection, queue: &str) -> Result<Row> {
    Ok(conn
        .prepare_cached(
            "SELECT paused, max_in_flight, rate_limit, rate_per_ms, rate_window_start, rate_count,
                    keep_completed_ms, keep_completed_count, keep_dead_ms, keep_dead_count, events
             FROM _honker_queues WHERE queue = ?1",
        )?
        .query_row([queue], |r| {
            let limit: Option<u32> = r.get(2)?;
            let per: Option<i64> = r.get(3)?;
            Ok(Row {
                controls: QueueControls {
                    paused: r.get(0)?,
                    max_in_flight: r.get(1)?,
                    rate_limit: limit.zip(per).map(|(limit, per)| QueueRateLimit {
                        limit,
                        per: Duration::from_millis(per.max(1) as u64),
                    }),
                    retention: super::retention::from_columns(
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ),
                    events: r.get(10)?,
                },
                window_start: r.get(4)?,
                count: r.get::<_, i64>(5)?.unsigned_abs(),
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// The controls of `queue` (the default if none were ever set). One seek.
pub fn get(conn: &Connection, queue: &str) -> Result<QueueControls> {
    Ok(row(conn, queue)?.controls)
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

/// Sets (or, with `None`, lifts) `queue`'s claim rate limit. The count of
/// the current window is kept.
pub fn set_rate_limit(
    conn: &Connection,
    queue: &str,
    rate: Option<QueueRateLimit>,
    now: i64,
) -> Result<()> {
    validate::name("queue", queue)?;
    let (limit, per) = match rate {
        None => (None, None),
        Some(r) => {
            if r.limit == 0 {
                return Err(Error::invalid(
                    "rate_limit",
                    "must be at least 1 (pause the queue to claim nothing)",
                ));
            }
            let per = validate::positive_ms("per", validate::duration_ms("per", r.per)?)?;
            (Some(r.limit), Some(per))
        }
    };
    conn.prepare_cached(
        "INSERT INTO _honker_queues (queue, rate_limit, rate_per_ms, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue) DO UPDATE SET rate_limit = excluded.rate_limit,
                                            rate_per_ms = excluded.rate_per_ms,
                                            updated_at = excluded.updated_at",
    )?
    .execute(params![queue, limit, per, now])?;
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

/// What a claim of `queue` may take under its controls.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// How many jobs: 0 while paused, at its limit or out of its rate.
    pub take: usize,
    /// With a rate limit: the current window's start, to count the claim in.
    window: Option<i64>,
    /// Whether the queue publishes lifecycle events.
    pub events: bool,
}

/// The start of the fixed window of `per_ms` that holds `now`.
fn window_start(now: i64, per_ms: i64) -> i64 {
    now - now.rem_euclid(per_ms.max(1))
}

/// How many of `want` jobs a claim of `queue` may take at `now`.
pub fn gate(conn: &Connection, queue: &str, want: usize, now: i64) -> Result<Gate> {
    let r = row(conn, queue)?;
    let c = r.controls;
    if c.paused {
        return Ok(Gate {
            take: 0,
            window: None,
            events: c.events,
        });
    }
    let mut take = want;
    if let Some(max) = c.max_in_flight {
        let room = u64::from(max).saturating_sub(in_flight(conn, queue, now)?);
        take = take.min(usize::try_from(room).unwrap_or(usize::MAX));
    }
    let mut window = None;
    if let Some(rate) = c.rate_limit {
        let start = window_start(now, rate.per.as_millis() as i64);
        let used = if r.window_start == Some(start) {
            r.count
        } else {
            0
        };
        let room = u64::from(rate.limit).saturating_sub(used);
        take = take.min(usize::try_from(room).unwrap_or(usize::MAX));
        window = Some(start);
    }
    Ok(Gate {
        take,
        window,
        events: c.events,
    })
}

/// Counts `claimed` jobs against the rate window of `gate`, if any.
pub fn record(conn: &Connection, queue: &str, gate: Gate, claimed: usize) -> Result<()> {
    let Some(start) = gate.window else {
        return Ok(());
    };
    if claimed == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE _honker_queues
         SET rate_count = CASE WHEN rate_window_start = ?2 THEN rate_count ELSE 0 END + ?3,
             rate_window_start = ?2
         WHERE queue = ?1",
    )?
    .execute(params![queue, start, claimed as i64])?;
    Ok(())
}

/// What `queue`'s controls hold its claims back for, as a waiter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBack {
    /// Nothing: claims take what is due.
    No,
    /// Paused: nothing is claimable until it is resumed (a commit).
    Paused,
    /// Out of its rate until this time, the end of a window whose count
    /// is spent (it may be past: then nothing holds claims back).
    Until(i64),
}

/// What holds `queue`'s claims back, with one read of its controls.
pub fn held_back(conn: &Connection, queue: &str) -> Result<HeldBack> {
    let r = row(conn, queue)?;
    Ok(match (r.controls.rate_limit, r.window_start) {
        _ if r.controls.paused => HeldBack::Paused,
        (Some(rate), Some(start)) if r.count >= u64::from(rate.limit) => {
            HeldBack::Until(start.saturating_add(rate.per.as_millis() as i64))
        }
        _ => HeldBack::No,
    })
}
