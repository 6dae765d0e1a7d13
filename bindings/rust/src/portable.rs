//! The application's SQL written for SQLite (rusqlite's parameters and
//! rows) on another engine: parameters are read back as values, and a row
//! the engine returned is handed to the caller's closure as a rusqlite row
//! holding the same values under the same names. Both go through a private
//! in-memory SQLite connection, so the closure is the one written for
//! SQLite.

use crate::Result;
use honker_core::model::Rows;
use honker_core::{Error, SqlValue};
use rusqlite::types::Value;
use rusqlite::{Connection, Params, Row};

thread_local! {
    static SCRATCH: Connection = Connection::open_in_memory().expect("an in-memory SQLite database");
}

fn internal(e: rusqlite::Error) -> Error {
    Error::from(e)
}

/// The values of `params` for `sql`, in order: bound to a statement with
/// as many slots as `sql` has placeholders, and read back.
pub(crate) fn values<P: Params>(sql: &str, params: P) -> Result<Vec<SqlValue>> {
    #[cfg(feature = "postgres")]
    let n = honker_postgres::placeholders::count(sql);
    #[cfg(not(feature = "postgres"))]
    let n = {
        let _ = sql;
        0
    };
    SCRATCH.with(|c| {
        let sql = match n {
            0 => "SELECT 0".to_string(),
            n => format!(
                "SELECT {}",
                (1..=n)
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
        let read = stmt.query_row(params, |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, Value>(i)? {
                        Value::Null => SqlValue::Null,
                        Value::Integer(v) => SqlValue::Integer(v),
                        Value::Real(v) => SqlValue::Real(v),
                        Value::Text(v) => SqlValue::Text(v),
                        Value::Blob(v) => SqlValue::Blob(v),
                    })
                })
                .collect()
        });
        read.map_err(|e| match e {
            rusqlite::Error::InvalidParameterCount(given, wanted) => Error::invalid(
                "params",
                format!("the statement takes {wanted} parameters, {given} were given"),
            ),
            rusqlite::Error::InvalidParameterName(name) => Error::invalid(
                "params",
                format!("named parameters ({name}) are SQLite's: use ?1, ?2 ... on this engine"),
            ),
            e => internal(e),
        })
    })
}

/// `f` of the first of `rows` (`QueryReturnedNoRows` if none), as a
/// rusqlite row with the same values and column names.
pub(crate) fn first_row<T, F>(rows: Rows, f: F) -> Result<T>
where
    F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
{
    let Some(first) = rows.rows.into_iter().next() else {
        return Err(internal(rusqlite::Error::QueryReturnedNoRows));
    };
    SCRATCH.with(|c| {
        let cols = rows
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| format!("?{} AS \"{}\"", i + 1, name.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = c.prepare(&format!("SELECT {cols}")).map_err(internal)?;
        let values: Vec<Value> = first
            .into_iter()
            .map(|v| match v {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(v) => Value::Integer(v),
                SqlValue::Real(v) => Value::Real(v),
                SqlValue::Text(v) => Value::Text(v),
                SqlValue::Blob(v) => Value::Blob(v),
            })
            .collect();
        stmt.query_row(rusqlite::params_from_iter(values), f)
            .map_err(internal)
    })
}
