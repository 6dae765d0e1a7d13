//! honker's SQLite connections: their PRAGMAs, the busy handler, and the
//! atomic-section helper every multi-statement operation uses.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::time::{Duration, Instant};

/// Applies honker's connection settings: WAL, `synchronous=NORMAL`, a busy
/// timeout, foreign keys, and a statement cache big enough for every
/// operation.
pub fn configure(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    set_busy_timeout(busy_timeout);
    conn.busy_handler(Some(busy_handler))?;
    conn.set_prepared_statement_cache_capacity(128);
    // Switching to WAL needs a moment of exclusive access; a concurrent
    // opener can make it report busy without calling the busy handler.
    let deadline = crate::validate::deadline(busy_timeout);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
                    return Err(Error::invalid(
                        "path",
                        format!("could not switch the database to WAL mode (still {mode})"),
                    ));
                }
                break;
            }
            Err(e) if is_busy(&e) && deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => return Err(e.into()),
        }
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

thread_local! {
    static BUSY: std::cell::Cell<(Duration, Option<Instant>)> =
        const { std::cell::Cell::new((Duration::from_secs(10), None)) };
}

/// Sets how long [`busy_handler`] keeps retrying on this thread.
pub fn set_busy_timeout(timeout: Duration) {
    BUSY.with(|b| b.set((timeout, None)));
}

/// Runs `f` with [`busy_handler`] retrying for at most `timeout` on this
/// thread, then puts the caller's budget back.
pub fn with_busy_timeout<T>(timeout: Duration, f: impl FnOnce() -> T) -> T {
    let saved = BUSY.with(|b| b.replace((timeout, None)));
    let value = f();
    BUSY.with(|b| b.set(saved));
    value
}

/// SQLite busy handler for honker's connections. SQLite's own handler
/// sleeps 1 ms at the first conflict, which dominates the latency of a
/// worker woken just as the committing process releases its lock; this one
/// retries after 20 µs, doubling up to 2 ms, until the busy timeout set by
/// [`set_busy_timeout`] for this thread has passed.
pub fn busy_handler(count: i32) -> bool {
    BUSY.with(|b| {
        let (timeout, started) = b.get();
        let now = Instant::now();
        let started = match (count, started) {
            (0, _) | (_, None) => {
                b.set((timeout, Some(now)));
                now
            }
            (_, Some(s)) => s,
        };
        let left = started
            .checked_add(timeout)
            .map_or(timeout, |end| end.saturating_duration_since(now));
        if left.is_zero() {
            return false;
        }
        let step = Duration::from_micros(20u64 << count.clamp(0, 7) as u32);
        std::thread::sleep(step.min(Duration::from_millis(2)).min(left));
        true
    })
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Is a statement that writes still running on this connection (so this
/// call comes from a SQL function inside it)?
fn inside_write_statement(conn: &Connection) -> bool {
    use rusqlite::ffi;
    // SAFETY: only inspects the connection's own statement list, on the
    // thread that is using the connection.
    unsafe {
        let db = conn.handle();
        let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            if ffi::sqlite3_stmt_busy(stmt) != 0 && ffi::sqlite3_stmt_readonly(stmt) == 0 {
                return true;
            }
            stmt = ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    false
}

/// Runs a statement without parameters or rows (`BEGIN IMMEDIATE`,
/// `COMMIT`, ...) through the statement cache: parsing it on every call
/// cost more than running it.
pub(crate) fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` atomically: in `BEGIN IMMEDIATE … COMMIT` when the connection is
/// in autocommit mode, in a savepoint inside the caller's open transaction,
/// or, when called from a SQL function inside a statement that writes,
/// within that statement's own transaction. Any error (or panic) rolls back
/// everything `f` did.
pub fn atomic<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    struct Guard<'a> {
        conn: &'a Connection,
        sql: &'static str,
        armed: bool,
    }
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if self.armed {
                let _ = self.conn.execute_batch(self.sql);
            }
        }
    }
    if conn.is_autocommit() && inside_write_statement(conn) {
        // Called from a SQL function inside a statement that writes (for
        // example `INSERT ... SELECT honker_claim_batch(...)`): SQLite defers
        // every commit to the end of that statement and rolls it all back if
        // it fails, so `f` is already atomic with it, and a COMMIT here
        // would be refused ("SQL statements in progress").
        return f(conn);
    }
    if conn.is_autocommit() {
        exec_cached(conn, "BEGIN IMMEDIATE")?;
        let mut guard = Guard {
            conn,
            sql: "ROLLBACK",
            armed: true,
        };
        let value = f(conn)?;
        exec_cached(conn, "COMMIT")?;
        guard.armed = false;
        Ok(value)
    } else {
        exec_cached(conn, "SAVEPOINT _honker_op")?;
        let mut guard = Guard {
            conn,
            sql: "ROLLBACK TO _honker_op; RELEASE _honker_op",
            armed: true,
        };
        let value = f(conn)?;
        exec_cached(conn, "RELEASE _honker_op")?;
        guard.armed = false;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    #[test]
    fn busy_handler_retries_until_the_timeout_then_gives_up() {
        set_busy_timeout(Duration::from_millis(30));
        let start = Instant::now();
        let mut calls = 0;
        while busy_handler(calls) {
            calls += 1;
            assert!(calls < 10_000, "never gave up");
        }
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "gave up early"
        );
        assert!(calls > 5, "retries start fine-grained ({calls} calls)");
        // A new conflict starts a new budget.
        assert!(busy_handler(0));
        set_busy_timeout(Duration::from_secs(10));
    }

    #[test]
    fn atomic_rolls_back_on_error_in_both_modes() {
        let c = mem();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        let r: Result<()> = atomic(&c, |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Err(Error::invalid("x", "boom"))
        });
        assert!(r.is_err());
        assert!(c.is_autocommit());
        // Inside an outer transaction: only the savepoint rolls back.
        c.execute_batch("BEGIN").unwrap();
        c.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let r: Result<()> = atomic(&c, |c| {
            c.execute("INSERT INTO t VALUES (3)", [])?;
            Err(Error::invalid("x", "boom"))
        });
        assert!(r.is_err());
        atomic(&c, |c| Ok(c.execute("INSERT INTO t VALUES (4)", [])?)).unwrap();
        c.execute_batch("COMMIT").unwrap();
        let xs: Vec<i64> = c
            .prepare("SELECT x FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(xs, vec![2, 4]);
    }
}
