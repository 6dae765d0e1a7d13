//! PostgreSQL errors as honker reports them: what honker's functions raise
//! for a bad argument (SQLSTATE 22023, the argument in COLUMN, the reason in
//! DETAIL), a payload that is not JSON (22P02) or a missing row (P0002)
//! becomes the same error as on SQLite; anything else is code `postgres`
//! with the server's SQLSTATE.

use honker_core::Error;

/// The argument names honker's functions raise (the error type holds a
/// `&'static str`).
const ARGUMENTS: &[&str] = &[
    "queue",
    "worker",
    "payload",
    "options",
    "key",
    "delay",
    "run_at",
    "max_attempts",
    "expires",
    "n",
    "visibility_timeout",
    "extend",
    "id",
    "stream",
    "consumer",
    "offset",
    "channel",
    "name",
    "owner",
    "ttl",
    "limit",
    "per",
    "value",
    "max_age",
    "max_count",
    "max_in_flight",
    "rate_limit",
    "completed",
    "dead",
];

fn argument(name: &str) -> &'static str {
    ARGUMENTS
        .iter()
        .find(|a| **a == name)
        .copied()
        .unwrap_or("argument")
}

/// Maps a `postgres` error.
pub fn from_pg(e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let detail = db.detail().unwrap_or(db.message()).to_string();
        match (code, db.column()) {
            ("22023", Some(col)) => return Error::invalid(argument(col), detail),
            ("22P02", Some(col)) => {
                return Error::InvalidJson {
                    name: argument(col),
                    reason: detail,
                }
            }
            ("P0002", Some("dead job")) => {
                return Error::NotFound {
                    kind: "dead job",
                    id: detail,
                }
            }
            _ => {}
        }
    }
    crate::error(e)
}
