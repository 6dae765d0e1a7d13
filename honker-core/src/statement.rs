//! The application's own SQL, run by the bindings' `tx.execute` and
//! `tx.query` on honker's connection: prepared once and cached, with
//! positional parameters.

use crate::error::Result;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

/// What a query returned: the column names, then each row's values in
/// column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One entry per row, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// Runs one statement; returns the number of rows it changed.
pub fn execute(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<usize> {
    Ok(conn
        .prepare_cached(sql)?
        .execute(params_from_iter(params))?)
}

/// Runs a query and collects every row.
pub fn query(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Rows> {
    let mut st = conn.prepare_cached(sql)?;
    let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let n = columns.len();
    let rows = st
        .query_map(params_from_iter(params), |r| {
            (0..n).map(|i| r.get::<_, Value>(i)).collect()
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Rows { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_then_query_with_parameters() {
        let c = crate::schema::test_db();
        execute(&c, "CREATE TABLE t (a INTEGER, b TEXT)", vec![]).unwrap();
        let n = execute(
            &c,
            "INSERT INTO t VALUES (?, ?), (?, ?)",
            vec![
                Value::Integer(1),
                Value::Text("x".into()),
                Value::Integer(2),
                Value::Null,
            ],
        )
        .unwrap();
        assert_eq!(n, 2);
        let got = query(
            &c,
            "SELECT a, b FROM t WHERE a >= ? ORDER BY a",
            vec![Value::Integer(1)],
        )
        .unwrap();
        assert_eq!(got.columns, ["a", "b"]);
        assert_eq!(
            got.rows,
            [
                vec![Value::Integer(1), Value::Text("x".into())],
                vec![Value::Integer(2), Value::Null]
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
