//! Job results: a JSON value stored under a job id with a TTL, so the
//! enqueuer (possibly another process) can fetch what the worker produced.

use crate::error::Result;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};

/// Stores `value` (JSON text) for `job_id`, replacing any earlier result,
/// kept for `ttl_ms` (and with the job, if it finished and its queue keeps
/// finished jobs). Also removes a few expired results.
pub fn save(conn: &Connection, job_id: i64, value: &str, ttl_ms: i64, now: i64) -> Result<()> {
    store(conn, job_id, value, ttl_ms, now)?;
    super::retention::set_result(conn, job_id, value)
}

/// [`save`] without the kept job: for an ack that kept the job with its
/// result already.
pub(super) fn store(
    conn: &Connection,
    job_id: i64,
    value: &str,
    ttl_ms: i64,
    now: i64,
) -> Result<()> {
    validate::json("value", value)?;
    let expires_at = validate::after("ttl", now, validate::positive_ms("ttl", ttl_ms)?)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO _honker_results (job_id, value, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![job_id, value, expires_at, now])?;
    conn.prepare_cached(
        "DELETE FROM _honker_results WHERE job_id IN
         (SELECT job_id FROM _honker_results WHERE expires_at <= ?1 ORDER BY expires_at LIMIT 16)",
    )?
    .execute([now])?;
    Ok(())
}

/// The unexpired result of `job_id`, if any.
pub fn get(conn: &Connection, job_id: i64, now: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM _honker_results WHERE job_id = ?1 AND expires_at > ?2")?
        .query_row(params![job_id, now], |r| r.get(0))
        .optional()?)
}

/// Removes every expired result; returns how many.
pub fn sweep(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM _honker_results WHERE expires_at <= ?1")?
        .execute([now])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_get_expire() {
        let c = crate::store::sqlite::schema::test_db();
        save(&c, 7, r#"{"ok":true}"#, 1_000, 0).unwrap();
        assert_eq!(get(&c, 7, 999).unwrap().as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!(get(&c, 7, 1_000).unwrap(), None);
        assert_eq!(get(&c, 8, 0).unwrap(), None);
        save(&c, 9, "1", 10, 2_000).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM _honker_results", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "saving pruned the expired result");
        assert_eq!(sweep(&c, 5_000).unwrap(), 1);
        assert_eq!(
            save(&c, 1, "not json", 10, 0).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            save(&c, 1, "1", -10, 0).unwrap_err().code(),
            "invalid_argument"
        );
    }
}
