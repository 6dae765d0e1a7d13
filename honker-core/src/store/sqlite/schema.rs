//! Versioned, forward-only migrations recorded in the file.
//!
//! The schema version lives in `_honker_meta` (never in `PRAGMA
//! user_version`, which belongs to the application). Migrations run inside
//! `BEGIN IMMEDIATE`, so two processes opening a fresh file at the same
//! moment serialize: the second one finds the work done.

use super::conn::atomic;
use crate::error::{Error, Result};
use rusqlite::Connection;

/// The version of honker's tables this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 6;

/// Migration `n` brings the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the whole initial schema.
    r#"
    -- Job ids are never reused, without AUTOINCREMENT (whose sqlite_sequence
    -- write would add a page to every enqueue): the row with the highest id
    -- is never really removed. When it is deleted, a tombstone (state
    -- 'done', in no index) takes back its id (a trigger until version 3,
    -- then the engine); the next insert gets a higher id and removes the
    -- tombstone. Both touch only the last leaf page, which the insert
    -- writes anyway.
    CREATE TABLE _honker_live (
        id           INTEGER PRIMARY KEY,
        queue        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        -- ORs, not IN (...): a constant IN list builds an ephemeral index
        -- on every statement that checks it.
        state        TEXT    NOT NULL CHECK (state = 'ready' OR state = 'scheduled'
                                             OR state = 'processing' OR state = 'done'),
        priority     INTEGER NOT NULL DEFAULT 0,
        run_at       INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        worker_id    TEXT,
        lease_until  INTEGER,
        expires_at   INTEGER,
        idem_key     TEXT,
        last_error   TEXT,
        created_at   INTEGER NOT NULL
    );
    -- Claim walks this index: ready rows only, best first.
    CREATE INDEX _honker_live_ready ON _honker_live (queue, priority DESC, run_at, id)
        WHERE state = 'ready';
    -- Delayed rows, promoted to ready when their run_at arrives.
    CREATE INDEX _honker_live_scheduled ON _honker_live (queue, run_at)
        WHERE state = 'scheduled';
    -- Leases, reclaimed when they expire.
    CREATE INDEX _honker_live_leased ON _honker_live (queue, lease_until)
        WHERE state = 'processing';
    -- Jobs with a deadline to start by.
    CREATE INDEX _honker_live_expiring ON _honker_live (queue, expires_at)
        WHERE expires_at IS NOT NULL AND state <> 'processing';
    CREATE UNIQUE INDEX _honker_live_key ON _honker_live (queue, idem_key)
        WHERE idem_key IS NOT NULL;
    CREATE TRIGGER _honker_live_keep_high_water AFTER DELETE ON _honker_live
        WHEN NOT EXISTS (SELECT 1 FROM _honker_live WHERE id > OLD.id)
    BEGIN
        INSERT INTO _honker_live (id, queue, payload, state, run_at, max_attempts, created_at)
        VALUES (OLD.id, '', 'null', 'done', 0, 0, 0);
    END;
    -- An appended row gets max(id) + 1, so a tombstone, if any, is at
    -- NEW.id - 1 (a rowid lookup; a subquery here would cost an ephemeral
    -- table per insert). Rows inserted with an explicit lower id (requeue)
    -- never sit just above the tombstone, which is always the maximum.
    CREATE TRIGGER _honker_live_drop_tombstone AFTER INSERT ON _honker_live
    BEGIN
        DELETE FROM _honker_live WHERE id = NEW.id - 1 AND state = 'done';
    END;

    CREATE TABLE _honker_dead (
        id           INTEGER PRIMARY KEY,
        queue        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        attempts     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        idem_key     TEXT,
        last_error   TEXT,
        reason       TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        died_at      INTEGER NOT NULL
    );
    CREATE INDEX _honker_dead_queue ON _honker_dead (queue, died_at);

    -- Offsets and notification ids may not be reused either; these tables
    -- are append-mostly, so the extra sequence page is cheap here.
    CREATE TABLE _honker_stream (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        stream     TEXT    NOT NULL,
        event_key  TEXT,
        payload    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX _honker_stream_by_name ON _honker_stream (stream, seq);

    CREATE TABLE _honker_stream_offsets (
        stream     TEXT    NOT NULL,
        consumer   TEXT    NOT NULL,
        seq        INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (stream, consumer)
    ) WITHOUT ROWID;

    CREATE TABLE _honker_stream_config (
        stream     TEXT PRIMARY KEY,
        max_age_ms INTEGER,
        max_count  INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE _honker_notifications (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        channel    TEXT    NOT NULL,
        payload    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE _honker_locks (
        name        TEXT PRIMARY KEY,
        owner       TEXT    NOT NULL,
        token       INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE _honker_rate_limits (
        key          TEXT PRIMARY KEY,
        window_start INTEGER NOT NULL,
        window_end   INTEGER NOT NULL,
        count        INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX _honker_rate_limits_end ON _honker_rate_limits (window_end);

    CREATE TABLE _honker_results (
        job_id     INTEGER PRIMARY KEY,
        value      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX _honker_results_expiry ON _honker_results (expires_at);

    CREATE TABLE _honker_schedules (
        name         TEXT PRIMARY KEY,
        queue        TEXT    NOT NULL,
        cron         TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        expires_ms   INTEGER,
        paused       INTEGER NOT NULL DEFAULT 0,
        next_fire_at INTEGER NOT NULL,
        last_fire_at INTEGER,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX _honker_schedules_due ON _honker_schedules (next_fire_at) WHERE paused = 0;

    INSERT INTO _honker_meta (key, value) VALUES ('lock_token', 0);
    "#,
    // 1 -> 2: why a schedule's last fire failed (it moved on to its next
    // boundary; the others fired).
    r#"
    ALTER TABLE _honker_schedules ADD COLUMN last_error TEXT;
    "#,
    // 2 -> 3: the engine keeps the high-water tombstone itself, once per
    // transaction that deletes (queue.rs, keep_high_water): the AFTER
    // DELETE trigger ran per row and made every ack keep a statement
    // journal.
    r#"
    DROP TRIGGER _honker_live_keep_high_water;
    "#,
    // 3 -> 4: queue controls (pause, a limit on jobs in flight), read by
    // every claim. A queue without a row has none.
    r#"
    CREATE TABLE _honker_queues (
        queue         TEXT PRIMARY KEY,
        paused        INTEGER NOT NULL DEFAULT 0,
        max_in_flight INTEGER,
        updated_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4 -> 5: a queue's claim rate limit (limit per fixed window) and the
    // count of the current window.
    r#"
    ALTER TABLE _honker_queues ADD COLUMN rate_limit INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN rate_per_ms INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN rate_window_start INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN rate_count INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5 -> 6: job history. When its last claim started a job; finished jobs
    // kept by their queue's retention (retention.rs), with their result,
    // numbered per queue in the order they finished (`seq`: its count
    // limit is a difference of two index seeks); each queue's retention of
    // finished and dead jobs, and its count of dead jobs (kept while a
    // limit of the dead is set); whether it publishes lifecycle events
    // (events.rs).
    r#"
    ALTER TABLE _honker_live ADD COLUMN started_at INTEGER;
    ALTER TABLE _honker_dead ADD COLUMN started_at INTEGER;
    CREATE TABLE _honker_completed (
        id           INTEGER PRIMARY KEY,
        queue        TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        run_at       INTEGER NOT NULL,
        attempts     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        worker_id    TEXT,
        idem_key     TEXT,
        last_error   TEXT,
        result       TEXT,
        created_at   INTEGER NOT NULL,
        started_at   INTEGER,
        completed_at INTEGER NOT NULL,
        seq          INTEGER NOT NULL
    );
    CREATE INDEX _honker_completed_queue ON _honker_completed (queue, seq);
    ALTER TABLE _honker_queues ADD COLUMN keep_completed_ms INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN keep_completed_count INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN keep_dead_ms INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN keep_dead_count INTEGER;
    ALTER TABLE _honker_queues ADD COLUMN dead_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE _honker_queues ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The schema version recorded in the file (0 for a file honker never touched).
pub fn version(conn: &Connection) -> Result<i64> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_honker_meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM _honker_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(v.unwrap_or(0))
}

/// Creates or upgrades honker's tables and returns the schema version.
/// Idempotent, and safe when several processes call it on a fresh file at
/// once.
pub fn migrate(conn: &Connection) -> Result<i64> {
    let v = version(conn)?;
    if v > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    if v == SCHEMA_VERSION {
        return Ok(v);
    }
    atomic(conn, |conn| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS _honker_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        )?;
        // Re-read under the write lock: another process may have migrated.
        let mut v = version(conn)?;
        if v > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        while v < SCHEMA_VERSION {
            conn.execute_batch(MIGRATIONS[v as usize])?;
            v += 1;
            conn.execute(
                "INSERT INTO _honker_meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [v],
            )?;
        }
        Ok(v)
    })
}

#[cfg(test)]
pub(crate) fn test_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    migrate(&c).unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    #[test]
    fn migrate_is_idempotent_and_recorded() {
        let c = mem();
        assert_eq!(version(&c).unwrap(), 0);
        assert_eq!(migrate(&c).unwrap(), SCHEMA_VERSION);
        assert_eq!(migrate(&c).unwrap(), SCHEMA_VERSION);
        assert_eq!(version(&c).unwrap(), SCHEMA_VERSION);
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM _honker_live WHERE queue = ?",
                ["emails"],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_version_1_file_is_upgraded_in_place() {
        let c = mem();
        c.execute_batch(
            "CREATE TABLE _honker_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        )
        .unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch("INSERT INTO _honker_meta VALUES ('schema_version', 1)")
            .unwrap();
        c.execute_batch(
            "INSERT INTO _honker_schedules (name, queue, cron, payload, priority, next_fire_at, created_at, updated_at)
             VALUES ('s', 'q', '@daily', '1', 0, 5, 0, 0)",
        )
        .unwrap();
        assert_eq!(migrate(&c).unwrap(), SCHEMA_VERSION);
        let triggers: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            triggers,
            ["_honker_live_drop_tombstone"],
            "3: the engine keeps the high water"
        );
        let (name, err): (String, Option<String>) = c
            .query_row("SELECT name, last_error FROM _honker_schedules", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((name.as_str(), err), ("s", None), "rows kept, column added");
    }

    #[test]
    fn newer_schema_is_refused() {
        let c = mem();
        migrate(&c).unwrap();
        c.execute(
            "UPDATE _honker_meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        let e = migrate(&c).unwrap_err();
        assert_eq!(e.code(), "schema_too_new");
    }
}
