//! The application's own SQL, run by the bindings' `tx.execute` and
//! `tx.query` on honker's connection: prepared once and cached, with
//! positional parameters.

use crate::error::Result;
use crate::model::*;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

fn to_sqlite(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

fn from_sqlite(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

/// Runs one statement; returns the number of rows it changed.
pub fn execute(conn: &Connection, sql: &str, params: Vec<SqlValue>) -> Result<usize> {
    Ok(conn
        .prepare_cached(sql)?
        .execute(params_from_iter(params.into_iter().map(to_sqlite)))?)
}

/// Runs a query and collects every row.
pub fn query(conn: &Connection, sql: &str, params: Vec<SqlValue>) -> Result<Rows> {
    let mut st = conn.prepare_cached(sql)?;
    let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let n = columns.len();
    let rows = st
        .query_map(params_from_iter(params.into_iter().map(to_sqlite)), |r| {
            (0..n)
                .map(|i| r.get::<_, Value>(i).map(from_sqlite))
                .collect()
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Rows { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_then_query_with_parameters() {
        let c = crate::store::sqlite::schema::test_db();
        execute(&c, "CREATE TABLE t (a INTEGER, b TEXT)", vec![]).unwrap();
        let n = execute(
            &c,
            "INSERT INTO t VALUES (?, ?), (?, ?)",
            vec![
                SqlValue::Integer(1),
                SqlValue::Text("x".into()),
                SqlValue::Integer(2),
                SqlValue::Null,
            ],
        )
        .unwrap();
        assert_eq!(n, 2);
        let got = query(
            &c,
            "SELECT a, b FROM t WHERE a >= ? ORDER BY a",
            vec![SqlValue::Integer(1)],
        )
        .unwrap();
        assert_eq!(got.columns, ["a", "b"]);
        assert_eq!(
            got.rows,
            [
                vec![SqlValue::Integer(1), SqlValue::Text("x".into())],
                vec![SqlValue::Integer(2), SqlValue::Null]
            ]
        );
        assert_eq!(
            execute(&c, "SELECT nope FROM t", vec![])
                .unwrap_err()
                .code(),
            "sqlite"
        );
    }
}
