//! Job history: a queue's finished jobs kept in `_honker_completed`, and
//! limits on what its finished and dead jobs keep, stored with its other
//! controls in `_honker_queues`.
//!
//! A queue that keeps no history pays one read of the (small) controls
//! table per acking transaction, no write. A queue that keeps history pays,
//! per acked job, one delete returning the row and one insert (a table page
//! and an index page, both at their ends), and per transaction a few index
//! seeks; pruning runs only once a table is 1/64 past a limit, and then
//! removes a batch (see [`crate::model::QueueRetention`]).
//!
//! Kept jobs are numbered per queue in the order they finished (`seq`), so
//! "how many are kept" is the difference of the first and last number (two
//! seeks), not a count and not a counter written by every ack. The dead
//! table changes rarely; its count is kept in `_honker_queues` while it has
//! a limit.

use super::conn::atomic;
use crate::clock::duration_ms;
use crate::error::{Error, Result};
use crate::model::{Lease, QueueRetention, Retention, PRUNE_BATCH};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;

// ---- configuration ----------------------------------------------------------

/// A table's stored limits (`ms, count`), `None` if it has neither.
fn retention_of(ms: Option<i64>, count: Option<i64>) -> Option<Retention> {
    (ms.is_some() || count.is_some()).then(|| limits(ms, count))
}

/// A queue's retention as stored in its controls row (`keep_completed_ms,
/// keep_completed_count, keep_dead_ms, keep_dead_count`).
pub(super) fn from_columns(
    completed_ms: Option<i64>,
    completed_count: Option<i64>,
    dead_ms: Option<i64>,
    dead_count: Option<i64>,
) -> QueueRetention {
    QueueRetention {
        completed: retention_of(completed_ms, completed_count),
        dead: retention_of(dead_ms, dead_count),
    }
}

/// A limit's columns, checked: at least one limit, a positive age, a count
/// of at least 1.
fn columns(what: &'static str, r: Option<Retention>) -> Result<(Option<i64>, Option<i64>)> {
    let Some(r) = r else {
        return Ok((None, None));
    };
    if r.max_age.is_none() && r.max_count.is_none() {
        return Err(Error::invalid(
            what,
            "give max_age, max_count or both (or no retention at all)",
        ));
    }
    let ms = r
        .max_age
        .map(|d| validate::positive_ms("max_age", validate::duration_ms("max_age", d)?))
        .transpose()?;
    let count = match r.max_count {
        Some(0) => return Err(Error::invalid("max_count", "must be at least 1")),
        Some(n) => Some(i64::try_from(n).map_err(|_| Error::invalid("max_count", "too large"))?),
        None => None,
    };
    Ok((ms, count))
}

/// Stores `queue`'s retention (both tables' limits, replacing the old
/// ones), and takes the count of its dead jobs again. Nothing is pruned
/// until the next ack or dead-lettering (or [`prune`]).
pub fn set(conn: &Connection, queue: &str, r: QueueRetention, now: i64) -> Result<()> {
    validate::name("queue", queue)?;
    let (completed_ms, completed_count) = columns("completed", r.completed)?;
    let (dead_ms, dead_count) = columns("dead", r.dead)?;
    atomic(conn, |conn| {
        let dead: i64 = conn
            .prepare_cached("SELECT count(*) FROM _honker_dead WHERE queue = ?1")?
            .query_row([queue], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO _honker_queues (queue, keep_completed_ms, keep_completed_count, keep_dead_ms,
                                         keep_dead_count, dead_count, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (queue) DO UPDATE SET
                 keep_completed_ms = excluded.keep_completed_ms,
                 keep_completed_count = excluded.keep_completed_count,
                 keep_dead_ms = excluded.keep_dead_ms, keep_dead_count = excluded.keep_dead_count,
                 dead_count = excluded.dead_count, updated_at = excluded.updated_at",
        )?
        .execute(params![
            queue,
            completed_ms,
            completed_count,
            dead_ms,
            dead_count,
            dead,
            now
        ])?;
        Ok(())
    })
}

/// The limits of the rows of a table that keeps them (`ms, count`).
fn limits(ms: Option<i64>, count: Option<i64>) -> Retention {
    Retention {
        max_age: ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        max_count: count.map(|n| n.max(0) as u64),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slack {
    /// Prune once 1/64 past a limit, one batch per transaction.
    Amortized,
    /// Prune to the limits exactly.
    None,
}

impl Slack {
    /// The most rows allowed under a count limit of `max`.
    fn count(self, max: i64) -> i64 {
        match self {
            Slack::Amortized => max.saturating_add(max / 64),
            Slack::None => max,
        }
    }

    /// The time before which the oldest row makes pruning by an age limit
    /// of `age_ms` due, at `cutoff` (now less the age).
    fn due(self, cutoff: i64, age_ms: i64) -> i64 {
        match self {
            Slack::Amortized => cutoff.saturating_sub(age_ms / 64),
            Slack::None => cutoff,
        }
    }
}

/// Runs `delete` (which removes at most [`PRUNE_BATCH`] rows) once, or,
/// with no slack, until it removes fewer; how many it removed.
fn batches(slack: Slack, mut delete: impl FnMut() -> Result<usize>) -> Result<usize> {
    let mut removed = 0;
    loop {
        let n = delete()?;
        removed += n;
        if n < PRUNE_BATCH || slack == Slack::Amortized {
            return Ok(removed);
        }
    }
}

// ---- completed jobs -----------------------------------------------------------

/// Whether any queue keeps its finished jobs or publishes lifecycle
/// events: read once per acking transaction, so that acks of queues that
/// do neither are one delete.
pub(super) fn any_history(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM _honker_queues
                            WHERE keep_completed_ms IS NOT NULL OR keep_completed_count IS NOT NULL
                               OR events)",
        )?
        .query_row([], |r| r.get(0))?)
}

/// A job as its ack deleted it from the live table.
pub(super) struct Acked {
    queue: String,
    payload: String,
    priority: i64,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    worker_id: Option<String>,
    idem_key: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
}

impl Acked {
    pub(super) fn queue(&self) -> &str {
        &self.queue
    }

    pub(super) fn payload(&self) -> &str {
        &self.payload
    }

    pub(super) fn attempts(&self) -> u32 {
        u32::try_from(self.attempts).unwrap_or(0)
    }

    pub(super) fn worker(&self) -> Option<&str> {
        self.worker_id.as_deref()
    }
}

/// Deletes the job of `lease` if the lease is current, returning the row:
/// the ack of a transaction in which some queue keeps its finished jobs.
/// (A delete by primary key and then a one-row insert, not an `INSERT …
/// SELECT`: a statement that may write several rows keeps a statement
/// journal, a copy of each page it touches.)
pub(super) fn delete_returning(
    conn: &Connection,
    lease: Lease<'_>,
    now: i64,
) -> Result<Option<Acked>> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM _honker_live
             WHERE id = ?1 AND state = 'processing' AND worker_id = ?2 AND attempts = ?3
               AND lease_until > ?4
             RETURNING queue, payload, priority, run_at, attempts, max_attempts, worker_id,
                       idem_key, last_error, created_at, started_at",
        )?
        .query_row(params![lease.id, lease.worker, lease.attempt, now], |r| {
            Ok(Acked {
                queue: r.get(0)?,
                payload: r.get(1)?,
                priority: r.get(2)?,
                run_at: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
                worker_id: r.get(6)?,
                idem_key: r.get(7)?,
                last_error: r.get(8)?,
                created_at: r.get(9)?,
                started_at: r.get(10)?,
            })
        })
        .optional()?)
}

/// How a queue keeps its finished jobs in one transaction: its limits and
/// the number its next kept job takes.
pub(super) struct Keeping {
    limits: Retention,
    next: i64,
    added: u64,
}

/// How `queue` records its finished jobs: its [`Keeping`] (`None` if it
/// keeps none) and whether it publishes lifecycle events. One statement:
/// the controls row, and the last number by an index seek.
pub(super) fn history(conn: &Connection, queue: &str) -> Result<(Option<Keeping>, bool)> {
    Ok(conn
        .prepare_cached(
            "SELECT keep_completed_ms, keep_completed_count, events,
                    coalesce((SELECT seq FROM _honker_completed WHERE queue = ?1
                              ORDER BY seq DESC LIMIT 1), 0)
             FROM _honker_queues WHERE queue = ?1",
        )?
        .query_row([queue], |r| {
            let last: i64 = r.get(3)?;
            let keeping = retention_of(r.get(0)?, r.get(1)?).map(|limits| Keeping {
                limits,
                next: last + 1,
                added: 0,
            });
            Ok((keeping, r.get(2)?))
        })
        .optional()?
        .unwrap_or((None, false)))
}

/// Keeps job `id`, acked as `job` at `now`, in the completed table with
/// `result` (or the result already saved for it).
pub(super) fn keep_completed(
    conn: &Connection,
    keeping: &mut Keeping,
    id: i64,
    job: &Acked,
    result: Option<&str>,
    now: i64,
) -> Result<()> {
    let saved;
    let result = match result {
        Some(r) => Some(r),
        None => {
            saved = conn
                .prepare_cached("SELECT value FROM _honker_results WHERE job_id = ?1")?
                .query_row([id], |r| r.get::<_, String>(0))
                .optional()?;
            saved.as_deref()
        }
    };
    conn.prepare_cached(
        "INSERT INTO _honker_completed
             (id, queue, payload, priority, run_at, attempts, max_attempts, worker_id, idem_key,
              last_error, result, created_at, started_at, completed_at, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        id,
        job.queue,
        job.payload,
        job.priority,
        job.run_at,
        job.attempts,
        job.max_attempts,
        job.worker_id,
        job.idem_key,
        job.last_error,
        result,
        job.created_at,
        job.started_at,
        now,
        keeping.next
    ])?;
    keeping.next += 1;
    keeping.added += 1;
    Ok(())
}

/// After this transaction's acks kept some of `queue`'s jobs: prunes what
/// is 1/64 past its limits (a batch at most).
pub(super) fn completed_added(
    conn: &Connection,
    queue: &str,
    keeping: &Keeping,
    now: i64,
) -> Result<()> {
    if keeping.added > 0 {
        trim_completed(conn, queue, keeping.limits, now, Slack::Amortized)?;
    }
    Ok(())
}

/// Removes what `keep` does not keep of `queue`'s completed jobs; how many.
fn trim_completed(
    conn: &Connection,
    queue: &str,
    keep: Retention,
    now: i64,
    slack: Slack,
) -> Result<usize> {
    let batch = PRUNE_BATCH as i64;
    // The first kept job (its number and when it finished) and the last
    // number: two index seeks, in one statement.
    let ends: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, completed_at,
                    (SELECT seq FROM _honker_completed WHERE queue = ?1 ORDER BY seq DESC LIMIT 1)
             FROM _honker_completed WHERE queue = ?1 ORDER BY seq LIMIT 1",
        )?
        .query_row([queue], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((first, oldest, last)) = ends else {
        return Ok(0);
    };
    let mut removed = 0;
    if let Some(max) = keep.max_count {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        if last - first + 1 > slack.count(max) {
            // The newest `max` numbers stay.
            let mut stmt = conn.prepare_cached(
                "DELETE FROM _honker_completed WHERE id IN
                 (SELECT id FROM _honker_completed WHERE queue = ?1 AND seq <= ?2
                  ORDER BY seq LIMIT ?3 + 0)",
            )?;
            removed += batches(slack, || {
                Ok(stmt.execute(params![queue, last - max, batch])?)
            })?;
        }
    }
    if let Some(age) = keep.max_age {
        let age = duration_ms(age);
        let cutoff = now.saturating_sub(age);
        // After a count prune the first job is newer: at worst this prunes
        // by age one transaction later.
        if oldest < slack.due(cutoff, age) {
            // Numbered in the order they finished: the old ones are first.
            let mut stmt = conn.prepare_cached(
                "DELETE FROM _honker_completed WHERE id IN
                 (SELECT id FROM _honker_completed WHERE queue = ?1 ORDER BY seq LIMIT ?3 + 0)
                 AND completed_at < ?2",
            )?;
            removed += batches(slack, || Ok(stmt.execute(params![queue, cutoff, batch])?))?;
        }
    }
    Ok(removed)
}

/// Records a result saved after its job finished on the kept job too.
pub(super) fn set_result(conn: &Connection, job_id: i64, value: &str) -> Result<()> {
    conn.prepare_cached("UPDATE _honker_completed SET result = ?2 WHERE id = ?1")?
        .execute(params![job_id, value])?;
    Ok(())
}

// ---- dead jobs ------------------------------------------------------------------

/// Moves `queue`'s count of dead jobs by `delta` while it has a limit of
/// the dead; its count and limits, if so.
fn add_dead(conn: &Connection, queue: &str, delta: i64) -> Result<Option<(i64, Retention)>> {
    Ok(conn
        .prepare_cached(
            "UPDATE _honker_queues SET dead_count = dead_count + ?2
             WHERE queue = ?1 AND (keep_dead_ms IS NOT NULL OR keep_dead_count IS NOT NULL)
             RETURNING dead_count, keep_dead_ms, keep_dead_count",
        )?
        .query_row(params![queue, delta], |r| {
            Ok((r.get(0)?, limits(r.get(1)?, r.get(2)?)))
        })
        .optional()?)
}

/// After one of `queue`'s jobs went to the dead table: counts it and
/// prunes what is 1/64 past the queue's limits, if it has any (one seek
/// if not).
pub(super) fn dead_added(conn: &Connection, queue: &str, now: i64) -> Result<()> {
    if let Some((count, keep)) = add_dead(conn, queue, 1)? {
        let removed = trim_dead(conn, queue, keep, count, now, Slack::Amortized)?;
        if removed > 0 {
            add_dead(conn, queue, -(removed as i64))?;
        }
    }
    Ok(())
}

/// After `removed` of `queue`'s dead jobs were put back.
pub(super) fn dead_removed(conn: &Connection, queue: &str, removed: u64) -> Result<()> {
    add_dead(conn, queue, -(removed as i64))?;
    Ok(())
}

/// Removes what `keep` does not keep of `queue`'s dead jobs (`count` of
/// them); how many.
fn trim_dead(
    conn: &Connection,
    queue: &str,
    keep: Retention,
    count: i64,
    now: i64,
    slack: Slack,
) -> Result<usize> {
    let batch = PRUNE_BATCH as i64;
    let mut removed = 0;
    if let Some(max) = keep.max_count {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        if count > slack.count(max) {
            let mut excess = count - max;
            let mut stmt = conn.prepare_cached(
                "DELETE FROM _honker_dead WHERE id IN
                 (SELECT id FROM _honker_dead WHERE queue = ?1 ORDER BY died_at, id LIMIT ?2 + 0)",
            )?;
            while excess > 0 {
                let n = stmt.execute(params![queue, excess.min(batch)])?;
                removed += n;
                excess -= n as i64;
                if n == 0 || slack == Slack::Amortized {
                    break;
                }
            }
        }
    }
    if let Some(age) = keep.max_age {
        let age = duration_ms(age);
        let cutoff = now.saturating_sub(age);
        let oldest: Option<i64> = conn
            .prepare_cached("SELECT min(died_at) FROM _honker_dead WHERE queue = ?1")?
            .query_row([queue], |r| r.get(0))?;
        if oldest.is_some_and(|t| t < slack.due(cutoff, age)) {
            let mut stmt = conn.prepare_cached(
                "DELETE FROM _honker_dead WHERE id IN
                 (SELECT id FROM _honker_dead WHERE queue = ?1 AND died_at < ?2
                  ORDER BY died_at, id LIMIT ?3 + 0)",
            )?;
            removed += batches(slack, || Ok(stmt.execute(params![queue, cutoff, batch])?))?;
        }
    }
    Ok(removed)
}

// ---- now ------------------------------------------------------------------------

/// Applies `queue`'s retention now, exactly (no slack, no batch limit);
/// how many completed and dead jobs were removed.
pub fn prune(conn: &Connection, queue: &str, now: i64) -> Result<usize> {
    validate::name("queue", queue)?;
    atomic(conn, |conn| {
        let r = super::controls::get(conn, queue)?.retention;
        let mut removed = 0;
        if let Some(keep) = r.completed {
            removed += trim_completed(conn, queue, keep, now, Slack::None)?;
        }
        if let Some(keep) = r.dead {
            let count: i64 = conn
                .prepare_cached("SELECT count(*) FROM _honker_dead WHERE queue = ?1")?
                .query_row([queue], |r| r.get(0))?;
            let n = trim_dead(conn, queue, keep, count, now, Slack::None)?;
            conn.prepare_cached("UPDATE _honker_queues SET dead_count = ?2 WHERE queue = ?1")?
                .execute(params![queue, count - n as i64])?;
            removed += n;
        }
        Ok(removed)
    })
}
