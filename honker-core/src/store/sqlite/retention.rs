//! Job history: a queue's finished jobs kept in `_honker_completed`, and
//! limits on what its finished and dead jobs keep, stored with its other
//! controls in `_honker_queues`.
//!
//! Nothing here costs a queue that keeps no history more than one read of
//! the (small) controls table per acking transaction. A queue that keeps
//! history pays, per transaction, one copy per acked job, one counter
//! update, and one index seek per age limit; pruning runs only once a table
//! is 1/64 past a limit, and then removes a batch (see
//! [`crate::model::QueueRetention`]).

use super::conn::atomic;
use crate::clock::duration_ms;
use crate::error::{Error, Result};
use crate::model::{Lease, QueueRetention, Retention, PRUNE_BATCH};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;

/// One history table and its columns.
#[derive(Clone, Copy)]
enum Table {
    Completed,
    Dead,
}

impl Table {
    /// Counts the rows of `queue` (at a limit's configuration, once).
    fn count_sql(self) -> &'static str {
        match self {
            Table::Completed => "SELECT count(*) FROM _honker_completed WHERE queue = ?1",
            Table::Dead => "SELECT count(*) FROM _honker_dead WHERE queue = ?1",
        }
    }

    /// The time of `queue`'s oldest row.
    fn oldest_sql(self) -> &'static str {
        match self {
            Table::Completed => "SELECT min(completed_at) FROM _honker_completed WHERE queue = ?1",
            Table::Dead => "SELECT min(died_at) FROM _honker_dead WHERE queue = ?1",
        }
    }

    /// Deletes up to ?2 of `queue`'s oldest rows.
    fn delete_oldest_sql(self) -> &'static str {
        match self {
            Table::Completed => {
                "DELETE FROM _honker_completed WHERE id IN
                 (SELECT id FROM _honker_completed WHERE queue = ?1
                  ORDER BY completed_at, id LIMIT ?2 + 0)"
            }
            Table::Dead => {
                "DELETE FROM _honker_dead WHERE id IN
                 (SELECT id FROM _honker_dead WHERE queue = ?1 ORDER BY died_at, id LIMIT ?2 + 0)"
            }
        }
    }

    /// Deletes up to ?3 of `queue`'s rows older than ?2.
    fn delete_older_sql(self) -> &'static str {
        match self {
            Table::Completed => {
                "DELETE FROM _honker_completed WHERE id IN
                 (SELECT id FROM _honker_completed WHERE queue = ?1 AND completed_at < ?2
                  ORDER BY completed_at, id LIMIT ?3 + 0)"
            }
            Table::Dead => {
                "DELETE FROM _honker_dead WHERE id IN
                 (SELECT id FROM _honker_dead WHERE queue = ?1 AND died_at < ?2
                  ORDER BY died_at, id LIMIT ?3 + 0)"
            }
        }
    }

    /// Moves `queue`'s count by ?2 while the table has a limit.
    fn add_count_sql(self) -> &'static str {
        match self {
            Table::Completed => {
                "UPDATE _honker_queues SET completed_count = completed_count + ?2
                 WHERE queue = ?1 AND (keep_completed_ms IS NOT NULL OR keep_completed_count IS NOT NULL)
                 RETURNING completed_count, keep_completed_ms, keep_completed_count"
            }
            Table::Dead => {
                "UPDATE _honker_queues SET dead_count = dead_count + ?2
                 WHERE queue = ?1 AND (keep_dead_ms IS NOT NULL OR keep_dead_count IS NOT NULL)
                 RETURNING dead_count, keep_dead_ms, keep_dead_count"
            }
        }
    }
}

fn retention_of(ms: Option<i64>, count: Option<i64>) -> Option<Retention> {
    (ms.is_some() || count.is_some()).then(|| Retention {
        max_age: ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        max_count: count.map(|n| n.max(0) as u64),
    })
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
/// ones). The counts the limits are checked against are taken again here.
/// Nothing is pruned until the next ack or dead-lettering (or
/// [`prune`]).
pub fn set(conn: &Connection, queue: &str, r: QueueRetention, now: i64) -> Result<()> {
    validate::name("queue", queue)?;
    let (completed_ms, completed_count) = columns("completed", r.completed)?;
    let (dead_ms, dead_count) = columns("dead", r.dead)?;
    atomic(conn, |conn| {
        let count = |t: Table| -> Result<i64> {
            Ok(conn
                .prepare_cached(t.count_sql())?
                .query_row([queue], |r| r.get(0))?)
        };
        let completed = count(Table::Completed)?;
        let dead = count(Table::Dead)?;
        conn.prepare_cached(
            "INSERT INTO _honker_queues (queue, keep_completed_ms, keep_completed_count, keep_dead_ms,
                                         keep_dead_count, completed_count, dead_count, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (queue) DO UPDATE SET
                 keep_completed_ms = excluded.keep_completed_ms,
                 keep_completed_count = excluded.keep_completed_count,
                 keep_dead_ms = excluded.keep_dead_ms, keep_dead_count = excluded.keep_dead_count,
                 completed_count = excluded.completed_count, dead_count = excluded.dead_count,
                 updated_at = excluded.updated_at",
        )?
        .execute(params![
            queue,
            completed_ms,
            completed_count,
            dead_ms,
            dead_count,
            completed,
            dead,
            now
        ])?;
        Ok(())
    })
}

/// Whether any queue keeps its finished jobs: read once per acking
/// transaction, so that acks of queues that keep nothing are one delete.
pub(super) fn any_keeps_completed(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM _honker_queues
                            WHERE keep_completed_ms IS NOT NULL OR keep_completed_count IS NOT NULL)",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Copies the job of `lease` into the completed table, finished at `now`
/// with `result` (or the result already saved for it), if the lease is
/// current and its queue keeps finished jobs; that queue, if so. The
/// caller deletes the live row in the same transaction.
pub(super) fn keep_completed(
    conn: &Connection,
    lease: Lease<'_>,
    result: Option<&str>,
    now: i64,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "INSERT OR REPLACE INTO _honker_completed
                 (id, queue, payload, priority, run_at, attempts, max_attempts, worker_id, idem_key,
                  last_error, result, created_at, started_at, completed_at)
             SELECT l.id, l.queue, l.payload, l.priority, l.run_at, l.attempts, l.max_attempts,
                    l.worker_id, l.idem_key, l.last_error,
                    coalesce(?5, (SELECT value FROM _honker_results WHERE job_id = l.id)),
                    l.created_at, l.started_at, ?4
             FROM _honker_live l JOIN _honker_queues c ON c.queue = l.queue
             WHERE l.id = ?1 AND l.state = 'processing' AND l.worker_id = ?2 AND l.attempts = ?3
               AND l.lease_until > ?4
               AND (c.keep_completed_ms IS NOT NULL OR c.keep_completed_count IS NOT NULL)
             RETURNING queue",
        )?
        .query_row(
            params![lease.id, lease.worker, lease.attempt, now, result],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records a result saved after its job finished on the kept job too.
pub(super) fn set_result(conn: &Connection, job_id: i64, value: &str) -> Result<()> {
    conn.prepare_cached("UPDATE _honker_completed SET result = ?2 WHERE id = ?1")?
        .execute(params![job_id, value])?;
    Ok(())
}

/// After `added` of `queue`'s jobs were kept as completed in this
/// transaction: counts them, and prunes past the queue's limits.
pub(super) fn completed_added(conn: &Connection, queue: &str, added: u64, now: i64) -> Result<()> {
    changed(conn, Table::Completed, queue, added as i64, now)
}

/// After one of `queue`'s jobs went to the dead table: counts it and
/// prunes past the queue's limits, if it has any (one seek if not).
pub(super) fn dead_added(conn: &Connection, queue: &str, now: i64) -> Result<()> {
    changed(conn, Table::Dead, queue, 1, now)
}

/// After `removed` of `queue`'s dead jobs were put back.
pub(super) fn dead_removed(conn: &Connection, queue: &str, removed: u64) -> Result<()> {
    changed(conn, Table::Dead, queue, -(removed as i64), i64::MIN)
}

/// Moves `queue`'s count of `t` by `delta` and, when rows were added,
/// prunes what is 1/64 past a limit (a batch at most).
fn changed(conn: &Connection, t: Table, queue: &str, delta: i64, now: i64) -> Result<()> {
    let limits: Option<(i64, Option<i64>, Option<i64>)> = conn
        .prepare_cached(t.add_count_sql())?
        .query_row(params![queue, delta], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((count, ms, max)) = limits else {
        return Ok(());
    };
    if delta <= 0 {
        return Ok(());
    }
    let keep = Retention {
        max_age: ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        max_count: max.map(|n| n.max(0) as u64),
    };
    let removed = trim(conn, t, queue, keep, count, now, Slack::Amortized)?;
    if removed > 0 {
        conn.prepare_cached(t.add_count_sql())?
            .query_row(params![queue, -(removed as i64)], |_| Ok(()))?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slack {
    /// Prune once 1/64 past a limit, one batch per transaction.
    Amortized,
    /// Prune to the limits exactly.
    None,
}

/// Removes what `keep` does not keep of `queue`'s rows in `t` (`count` of
/// them); how many.
fn trim(
    conn: &Connection,
    t: Table,
    queue: &str,
    keep: Retention,
    count: i64,
    now: i64,
    slack: Slack,
) -> Result<usize> {
    let batch = PRUNE_BATCH as i64;
    let mut removed = 0usize;
    if let Some(max) = keep.max_count {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let allowed = match slack {
            Slack::Amortized => max.saturating_add(max / 64),
            Slack::None => max,
        };
        let mut excess = count.saturating_sub(max);
        if count > allowed {
            let mut stmt = conn.prepare_cached(t.delete_oldest_sql())?;
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
        let due = match slack {
            Slack::Amortized => cutoff.saturating_sub(age / 64),
            Slack::None => cutoff,
        };
        let oldest: Option<i64> = conn
            .prepare_cached(t.oldest_sql())?
            .query_row([queue], |r| r.get(0))?;
        if oldest.is_some_and(|o| o < due) {
            let mut stmt = conn.prepare_cached(t.delete_older_sql())?;
            loop {
                let n = stmt.execute(params![queue, cutoff, batch])?;
                removed += n;
                if (n as i64) < batch || slack == Slack::Amortized {
                    break;
                }
            }
        }
    }
    Ok(removed)
}

/// Applies `queue`'s retention now, exactly (no slack, no batch limit);
/// how many completed and dead jobs were removed.
pub fn prune(conn: &Connection, queue: &str, now: i64) -> Result<usize> {
    validate::name("queue", queue)?;
    atomic(conn, |conn| {
        let r = super::controls::get(conn, queue)?.retention;
        let mut removed = 0;
        for (t, keep) in [(Table::Completed, r.completed), (Table::Dead, r.dead)] {
            let Some(keep) = keep else { continue };
            let count: i64 = conn
                .prepare_cached(t.count_sql())?
                .query_row([queue], |r| r.get(0))?;
            let n = trim(conn, t, queue, keep, count, now, Slack::None)?;
            conn.prepare_cached(t.add_count_sql())?
                .query_row(params![queue, -(n as i64)], |_| Ok(()))
                .optional()?;
            removed += n;
        }
        Ok(removed)
    })
}
