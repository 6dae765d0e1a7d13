//! Ephemeral pub/sub: `notify` stores a notification in the same transaction
//! as the caller's writes; listeners read those committed after they
//! started. Old notifications are pruned as new ones arrive, so the table
//! holds at most [`RETENTION`] worth, and at most [`MAX_KEPT`] of them (a
//! listener that falls further behind than either misses the oldest).

use crate::clock::duration_ms;
use crate::error::Result;
use crate::model::*;
use crate::validate;
use rusqlite::{params, Connection};
use std::time::Duration;

/// How long a notification is kept for listeners that have fallen behind.
pub const RETENTION: Duration = Duration::from_secs(300);
/// At most this many of the newest notifications are kept, however young.
pub const MAX_KEPT: i64 = 100_000;
/// `notify` prunes every this many notifications.
pub const PRUNE_EVERY: i64 = 256;
const PRUNE_BATCH: i64 = 10_000;

/// Stores a notification for `channel` and returns its id.
pub fn notify(conn: &Connection, channel: &str, payload: &str, now: i64) -> Result<i64> {
    validate::name("channel", channel)?;
    validate::json("payload", payload)?;
    conn.prepare_cached(
        "INSERT INTO _honker_notifications (channel, payload, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![channel, payload, now])?;
    let id = conn.last_insert_rowid();
    if id % PRUNE_EVERY == 0 {
        prune(conn, now.saturating_sub(duration_ms(RETENTION)))?;
        prune_below(conn, id.saturating_sub(MAX_KEPT))?;
    }
    Ok(id)
}

/// Deletes notifications with an id at or below `id` (ids are dense, so
/// this keeps about the newest [`MAX_KEPT`]). Work is proportional to what
/// is deleted: a range of the rowid.
fn prune_below(conn: &Connection, id: i64) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM _honker_notifications WHERE id IN
         (SELECT id FROM _honker_notifications WHERE id <= ?1 ORDER BY id LIMIT ?2 + 0)",
    )?;
    let mut removed = 0;
    loop {
        let n = stmt.execute(params![id, PRUNE_BATCH])?;
        removed += n;
        if (n as i64) < PRUNE_BATCH {
            return Ok(removed);
        }
    }
}

/// The newest notification id (0 if none): a listener starts after it.
pub fn latest_id(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM _honker_notifications")?
        .query_row([], |r| r.get(0))?)
}

/// Up to `limit` notifications after id `after`, on `channel` or on every
/// channel when `None`, oldest first.
pub fn read_after(
    conn: &Connection,
    after: i64,
    channel: Option<&str>,
    limit: usize,
) -> Result<Vec<Notification>> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok(Notification {
            id: r.get(0)?,
            channel: r.get(1)?,
            payload: r.get(2)?,
            created_at_ms: r.get(3)?,
        })
    };
    let rows = match channel {
        Some(ch) => conn
            .prepare_cached(
                "SELECT id, channel, payload, created_at FROM _honker_notifications
                 WHERE id > ?1 AND channel = ?2 ORDER BY id LIMIT ?3 + 0",
            )?
            .query_map(params![after, ch, limit as i64], map)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(
                "SELECT id, channel, payload, created_at FROM _honker_notifications
                 WHERE id > ?1 ORDER BY id LIMIT ?2 + 0",
            )?
            .query_map(params![after, limit as i64], map)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// Deletes notifications created before `before_ms`; returns how many.
/// Work is proportional to what is deleted.
pub fn prune(conn: &Connection, before_ms: i64) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM _honker_notifications WHERE id IN
         (SELECT id FROM _honker_notifications ORDER BY id LIMIT ?2 + 0) AND created_at < ?1",
    )?;
    let mut removed = 0;
    loop {
        let n = stmt.execute(params![before_ms, PRUNE_BATCH])?;
        removed += n;
        if (n as i64) < PRUNE_BATCH {
            return Ok(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_read_and_prune() {
        let c = crate::store::sqlite::schema::test_db();
        assert_eq!(latest_id(&c).unwrap(), 0);
        let a = notify(&c, "orders", r#"{"id":1}"#, 100).unwrap();
        let start = latest_id(&c).unwrap();
        assert_eq!(start, a);
        let b = notify(&c, "orders", r#"{"id":2}"#, 200).unwrap();
        notify(&c, "other", "3", 300).unwrap();
        let got = read_after(&c, start, Some("orders"), 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, b);
        assert_eq!(got[0].payload, r#"{"id":2}"#);
        assert_eq!(read_after(&c, 0, None, 10).unwrap().len(), 3);
        assert_eq!(prune(&c, 250).unwrap(), 2);
        assert_eq!(read_after(&c, 0, None, 10).unwrap().len(), 1);
        assert_eq!(
            notify(&c, "", "1", 1).unwrap_err().code(),
            "invalid_argument"
        );
        assert_eq!(
            notify(&c, "x", "nope", 1).unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn young_notifications_are_bounded_by_count() {
        let c = crate::store::sqlite::schema::test_db();
        // All within the age window: only the count bound applies.
        let total = MAX_KEPT + 3 * PRUNE_EVERY;
        c.execute_batch("BEGIN").unwrap();
        for _ in 0..total {
            notify(&c, "burst", "0", 1_000).unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let (n, oldest, newest): (i64, i64, i64) = c
            .query_row(
                "SELECT COUNT(*), min(id), max(id) FROM _honker_notifications",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert!(n <= MAX_KEPT + PRUNE_EVERY, "{n} kept");
        assert!(n >= MAX_KEPT, "the newest {MAX_KEPT} stay ({n})");
        assert_eq!(newest, total);
        assert_eq!(oldest, newest - n + 1, "the oldest went first");
    }

    #[test]
    fn table_stays_bounded() {
        let c = crate::store::sqlite::schema::test_db();
        let step = duration_ms(RETENTION) / 100;
        for i in 0..(PRUNE_EVERY * 4) {
            notify(&c, "tick", "0", i * step).unwrap();
        }
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM _honker_notifications", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(n <= 100 + PRUNE_EVERY, "{n} notifications kept");
    }
}
