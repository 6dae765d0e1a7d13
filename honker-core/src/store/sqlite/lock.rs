//! Advisory locks with a TTL and a fencing token.
//!
//! Every successful acquisition takes a new token from one counter in the
//! file, so tokens strictly increase across acquisitions (of any lock name),
//! and a holder that lost its lock can be fenced off by comparing tokens.
//! A lock is held until released or until its TTL passes without renewal.

use super::conn::atomic;
use crate::error::Result;
use crate::model::*;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};

/// Takes `name` for `owner` for `ttl_ms` if nobody holds it (an expired lock
/// counts as free). Returns the new fencing token, or `None` if it is held,
/// by anyone, including `owner` itself: a second acquisition never shares
/// the first one's lease. Atomic.
pub fn try_acquire(
    conn: &Connection,
    name: &str,
    owner: &str,
    ttl_ms: i64,
    now: i64,
) -> Result<Option<i64>> {
    validate::name("name", name)?;
    validate::name("owner", owner)?;
    let expires_at = validate::after("ttl", now, validate::positive_ms("ttl", ttl_ms)?)?;
    atomic(conn, |conn| {
        let held: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM _honker_locks WHERE name = ?1 AND expires_at > ?2)",
            )?
            .query_row(params![name, now], |r| r.get(0))?;
        if held {
            return Ok(None);
        }
        let token: i64 = conn
            .prepare_cached(
                "UPDATE _honker_meta SET value = value + 1 WHERE key = 'lock_token' RETURNING value",
            )?
            .query_row([], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO _honker_locks (name, owner, token, expires_at, acquired_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![name, owner, token, expires_at, now])?;
        // Lapsed locks nobody re-took would otherwise stay forever.
        if token % 64 == 0 {
            conn.prepare_cached("DELETE FROM _honker_locks WHERE expires_at <= ?1")?
                .execute([now])?;
        }
        Ok(Some(token))
    })
}

/// Extends the lock to `ttl_ms` from now if `token` still holds it and it
/// has not lapsed. Returns false otherwise.
pub fn renew(conn: &Connection, name: &str, token: i64, ttl_ms: i64, now: i64) -> Result<bool> {
    let expires_at = validate::after("ttl", now, validate::positive_ms("ttl", ttl_ms)?)?;
    Ok(conn
        .prepare_cached(
            "UPDATE _honker_locks SET expires_at = ?4 WHERE name = ?1 AND token = ?2 AND expires_at > ?3",
        )?
        .execute(params![name, token, now, expires_at])?
        == 1)
}

/// Releases the lock if `token` still holds it. Returns false otherwise
/// (it lapsed and someone else may hold it now).
pub fn release(conn: &Connection, name: &str, token: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM _honker_locks WHERE name = ?1 AND token = ?2")?
        .execute(params![name, token])?
        == 1)
}

/// The current holder of `name`, if it is held at `now`.
pub fn holder(conn: &Connection, name: &str, now: i64) -> Result<Option<LockInfo>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, owner, token, expires_at FROM _honker_locks WHERE name = ?1 AND expires_at > ?2",
        )?
        .query_row(params![name, now], |r| {
            Ok(LockInfo {
                name: r.get(0)?,
                owner: r.get(1)?,
                token: r.get(2)?,
                expires_at_ms: r.get(3)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_renew_release_and_tokens() {
        let c = crate::store::sqlite::schema::test_db();
        let t1 = try_acquire(&c, "m", "a", 1_000, 0).unwrap().unwrap();
        assert_eq!(try_acquire(&c, "m", "b", 1_000, 10).unwrap(), None);
        assert_eq!(
            try_acquire(&c, "m", "a", 1_000, 10).unwrap(),
            None,
            "no second guard for the same owner"
        );
        assert!(renew(&c, "m", t1, 1_000, 900).unwrap());
        assert_eq!(holder(&c, "m", 1_500).unwrap().unwrap().owner, "a");
        // Lapses at 1_900: b takes it with a bigger token; a is fenced off.
        let t2 = try_acquire(&c, "m", "b", 1_000, 1_900).unwrap().unwrap();
        assert!(t2 > t1);
        assert!(!renew(&c, "m", t1, 1_000, 1_901).unwrap());
        assert!(!release(&c, "m", t1).unwrap());
        assert!(release(&c, "m", t2).unwrap());
        assert_eq!(holder(&c, "m", 1_902).unwrap(), None);
        let t3 = try_acquire(&c, "m", "a", 1_000, 1_903).unwrap().unwrap();
        assert!(t3 > t2);
        assert_eq!(
            try_acquire(&c, "m", "a", 0, 1).unwrap_err().code(),
            "invalid_argument"
        );
        assert_eq!(
            try_acquire(&c, "", "a", 5, 1).unwrap_err().code(),
            "invalid_argument"
        );
    }
}
