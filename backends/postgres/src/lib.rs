//! honker's PostgreSQL backend: the same honker past one machine, chosen by
//! a `postgresql://` URL (issue #16, in progress).
//!
//! What is here so far: connections ([`Pool`], a small pool over the
//! synchronous `postgres` crate, which fits the blocking core), the schema
//! ([`migrate`]: versioned, forward-only migrations in a schema of its own,
//! `honker` by default, serialized across processes by an advisory lock),
//! and the first operations as functions in that schema, for any client:
//! `{schema}.enqueue(queue, payload, options jsonb)`, `{schema}.claim(queue,
//! worker, n, visibility_s)` (`FOR UPDATE SKIP LOCKED`) and
//! `{schema}.ack(id, worker, attempt)`, `retry`, `fail`, `release`,
//! `heartbeat` (each fenced by the lease) and `cancel`, and
//! `{schema}.publish`/`read_since` (offsets per stream, given in commit
//! order), with the time from the server's clock. The rest of the operations, the [`honker_core::store::Store`]
//! trait over them, the wake path (LISTEN/NOTIFY) and the bindings'
//! `open(url)` come next.

mod engine;
mod errors;
mod feed;
pub mod placeholders;
mod pool;
mod schema;
mod store;

pub use engine::{open, register, DEFAULT_SCHEMA};
pub use errors::from_pg;
pub use pool::{Pool, PoolOptions, Pooled};
pub use schema::{migrate, version, SCHEMA_VERSION};
pub use store::PgStore;

use honker_core::Error;

/// A PostgreSQL error as honker reports it: code `postgres`, with the
/// server's SQLSTATE (or `connection`).
pub fn error(e: postgres::Error) -> Error {
    Error::Postgres {
        sqlstate: e
            .code()
            .map_or_else(|| "connection".to_string(), |c| c.code().to_string()),
        message: match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        },
    }
}

/// Checks a schema name: a plain SQL identifier (it is written into the
/// migrations' statements, so nothing else is let through).
pub fn check_schema(name: &str) -> honker_core::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            format!(
                "must be a lowercase SQL identifier (a-z, 0-9, _; at most 63 bytes), got {name:?}"
            ),
        ))
    }
}
