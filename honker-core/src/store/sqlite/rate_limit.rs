//! Fixed-window rate limits. A window of `per_ms` starts at every multiple
//! of `per_ms` since the epoch; at most `limit` calls succeed per key per
//! window. Stale windows are pruned as new windows open.

use crate::error::{Error, Result};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};

/// Counts one call against `key` and returns whether it is allowed: true
/// for the first `limit` calls in the current window, false after. One
/// statement, so it is atomic in any mode.
pub fn try_acquire(
    conn: &Connection,
    key: &str,
    limit: i64,
    per_ms: i64,
    now: i64,
) -> Result<bool> {
    validate::name("key", key)?;
    if limit <= 0 {
        return Err(Error::invalid(
            "limit",
            format!("must be at least 1, got {limit}"),
        ));
    }
    validate::positive_ms("per", per_ms)?;
    let start = now.div_euclid(per_ms) * per_ms;
    let end = validate::after("per", start, per_ms)?;
    let count: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO _honker_rate_limits (key, window_start, window_end, count) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (key) DO UPDATE SET
                 count = CASE WHEN window_start = excluded.window_start THEN count + 1 ELSE 1 END,
                 window_start = excluded.window_start,
                 window_end = excluded.window_end
             WHERE window_start <> excluded.window_start OR count < ?4
             RETURNING count",
        )?
        .query_row(params![key, start, end, limit], |r| r.get(0))
        .optional()?;
    if count == Some(1) {
        // A window opened: clear a few stale ones (an index seek when none).
        conn.prepare_cached(
            "DELETE FROM _honker_rate_limits WHERE key IN
             (SELECT key FROM _honker_rate_limits WHERE window_end <= ?1 ORDER BY window_end LIMIT 32)",
        )?
        .execute([now])?;
    }
    Ok(count.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window() {
        let c = crate::store::sqlite::schema::test_db();
        let allowed = (0..5)
            .filter(|_| try_acquire(&c, "k", 3, 1_000, 10_100).unwrap())
            .count();
        assert_eq!(allowed, 3);
        assert!(try_acquire(&c, "other", 3, 1_000, 10_100).unwrap());
        assert!(!try_acquire(&c, "k", 3, 1_000, 10_999).unwrap());
        assert!(
            try_acquire(&c, "k", 3, 1_000, 11_000).unwrap(),
            "new window"
        );
        // Stale windows are pruned when windows open.
        assert!(try_acquire(&c, "z", 1, 1_000, 50_000).unwrap());
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM _honker_rate_limits", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert!(try_acquire(&c, "k", 0, 1_000, 1).is_err());
        assert!(try_acquire(&c, "k", 1, 0, 1).is_err());
    }
}
