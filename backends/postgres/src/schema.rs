//! Versioned, forward-only migrations in a schema of honker's own (default
//! `honker`), like the SQLite file's: the version is recorded in
//! `{schema}.meta`, and every migration runs in one transaction under an
//! advisory lock, so processes starting at once against a new database
//! serialize and the later ones find the work done (PostgreSQL's DDL is
//! transactional: a failed migration leaves nothing behind).
//!
//! The statements are in `sql/`: the tables, and the operations as
//! functions (see the comments there).

use crate::error;
use honker_core::{Error, Result};
use postgres::{Client, Transaction};

/// The version of honker's tables this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The advisory lock every migration holds (a constant both in SQL and
/// here: "honker" in ASCII).
const MIGRATION_LOCK: i64 = 0x686f_6e6b_6572;

/// Migration `n` brings the schema from version `n` to `n + 1`; `{s}` is
/// the schema's name. Each is the tables and the functions of that version
/// (sql/), run in one transaction.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the whole schema, as the SQLite file's version 6 holds it.
    concat!(
        include_str!("../sql/v1.sql"),
        include_str!("../sql/v1_functions.sql")
    ),
];

fn sql(schema: &str, text: &str) -> String {
    text.replace("{s}", schema)
}

/// The schema version recorded in `schema` (0 if honker never touched it).
pub fn version(client: &mut Client, schema: &str) -> Result<i64> {
    crate::check_schema(schema)?;
    read_version(&mut client.transaction().map_err(error)?, schema)
}

fn read_version(tx: &mut Transaction<'_>, schema: &str) -> Result<i64> {
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                            WHERE table_schema = $1 AND table_name = 'meta')",
            &[&schema],
        )
        .map_err(error)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = tx
        .query_opt(
            &sql(
                schema,
                "SELECT value FROM {s}.meta WHERE key = 'schema_version'",
            ),
            &[],
        )
        .map_err(error)?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// Creates or upgrades honker's tables in `schema` and returns the schema
/// version. Idempotent, and safe when several processes call it at once
/// (they take turns on an advisory lock, inside the migration's
/// transaction).
pub fn migrate(client: &mut Client, schema: &str) -> Result<i64> {
    crate::check_schema(schema)?;
    let mut tx = client.transaction().map_err(error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(error)?;
    let mut v = read_version(&mut tx, schema)?;
    if v > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    if v == SCHEMA_VERSION {
        return Ok(v);
    }
    tx.batch_execute(&sql(
        schema,
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value bigint NOT NULL);",
    ))
    .map_err(error)?;
    while v < SCHEMA_VERSION {
        tx.batch_execute(&sql(schema, MIGRATIONS[v as usize]))
            .map_err(error)?;
        v += 1;
        tx.execute(
            &sql(
                schema,
                "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
            &[&v],
        )
        .map_err(error)?;
    }
    tx.commit().map_err(error)?;
    Ok(v)
}
