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

/// Most parameters one statement may pass this way.
const MOST: usize = 100;
/// What a slot no parameter was bound to holds.
const UNSET: &[u8] = b"\0honker: no parameter\0";

/// The values of `params`, in order. They are bound to a statement with
/// [`MOST`] slots, each holding a marker first: rusqlite binds an array or
/// a slice (`params![...]`) and then reports how many it had; a tuple it
/// refuses before binding, which the markers show.
pub(crate) fn values<P: Params>(params: P) -> Result<Vec<SqlValue>> {
    SCRATCH.with(|c| {
        let sql = format!(
            "SELECT {}",
            (1..=MOST).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
        );
        let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
        stmt.clear_bindings();
        for i in 1..=MOST {
            stmt.raw_bind_parameter(i, UNSET).map_err(internal)?;
        }
        let given = match stmt.query_row(params, |_| Ok(())) {
            Ok(()) => MOST,
            Err(rusqlite::Error::InvalidParameterCount(given, _)) if given <= MOST => given,
            Err(rusqlite::Error::InvalidParameterCount(given, _)) => {
                return Err(Error::invalid(
                    "params",
                    format!("{given} parameters; at most {MOST} on this engine"),
                ))
            }
            Err(rusqlite::Error::InvalidParameterName(name)) => {
                return Err(Error::invalid(
                    "params",
                    format!("named parameters ({name}) are SQLite's: use ?1, ?2 ... on this engine"),
                ))
            }
            Err(e) => return Err(internal(e)),
        };
        let mut rows = stmt.raw_query();
        let row = rows.next().map_err(internal)?.ok_or_else(|| {
            internal(rusqlite::Error::QueryReturnedNoRows)
        })?;
        (0..given)
            .map(|i| {
                Ok(match row.get::<_, Value>(i).map_err(internal)? {
                    Value::Blob(b) if b == UNSET => {
                        return Err(Error::invalid(
                            "params",
                            "on this engine pass parameters as an array or rusqlite::params![...], not a tuple",
                        ))
                    }
                    Value::Null => SqlValue::Null,
                    Value::Integer(v) => SqlValue::Integer(v),
                    Value::Real(v) => SqlValue::Real(v),
                    Value::Text(v) => SqlValue::Text(v),
                    Value::Blob(v) => SqlValue::Blob(v),
                })
            })
            .collect()
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
