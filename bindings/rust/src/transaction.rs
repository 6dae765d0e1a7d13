use crate::{Database, Result};
use honker_core::{At, Ops, TxKey};
use rusqlite::{Connection, Params, Row};

/// An open write transaction (`BEGIN IMMEDIATE`). Business writes through
/// [`Transaction::execute`] and honker writes through the `*_tx` methods
/// (`enqueue_tx`, `publish_tx`, `save_offset_tx`, `notify_tx`, `ack_tx`)
/// commit or roll back together.
///
/// Dropping it without [`Transaction::commit`] rolls back. While it is
/// open, other threads' calls on the same [`Database`] wait; calls on this
/// thread that are not `*_tx` fail with `Error::TransactionOpen` rather than
/// deadlock.
pub struct Transaction {
    db: Database,
    key: Option<TxKey>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("open", &self.key.is_some())
            .finish()
    }
}

impl Transaction {
    pub(crate) fn begin(db: &Database) -> Result<Transaction> {
        let key = db.core.begin(crate::caller())?;
        Ok(Transaction {
            db: db.clone(),
            key: Some(key),
        })
    }

    /// The operations inside this transaction, for a handle on `db`.
    pub(crate) fn ops<'a>(&'a self, db: &Database) -> Result<Ops<'a>> {
        if !db.same_file(&self.db) {
            return Err(honker_core::Error::invalid(
                "tx",
                "this transaction belongs to another Database",
            ));
        }
        let key = self
            .key
            .as_ref()
            .ok_or(honker_core::Error::TransactionInactive)?;
        Ok(self.db.core.in_tx(key))
    }

    /// SQLite only: runs `f` on the connection inside the transaction.
    fn run<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let key = self
            .key
            .as_ref()
            .ok_or(honker_core::Error::TransactionInactive)?;
        self.db.core.with_conn(At::Tx(key), |c, _| f(c))
    }

    /// Runs one SQL statement inside the transaction; returns rows changed.
    /// The statement is prepared once and cached on the connection.
    ///
    /// On PostgreSQL the same call works: `?` and `?N` placeholders are
    /// rewritten to `$N`, and the parameters (positional: an array, a
    /// tuple or `params![...]`) are passed as their values.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        if !self.db.core.is_sqlite() {
            let values = crate::portable::values(sql, params)?;
            return self.ops(&self.db)?.execute(sql, values);
        }
        self.run(|c| Ok(c.prepare_cached(sql)?.execute(params)?))
    }

    /// Runs several `;`-separated statements without parameters (on
    /// PostgreSQL, one statement).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        if !self.db.core.is_sqlite() {
            return self.ops(&self.db)?.execute(sql, Vec::new()).map(|_| ());
        }
        self.run(|c| Ok(c.execute_batch(sql)?))
    }

    /// Runs a query expected to return one row and maps it with `f`.
    ///
    /// On PostgreSQL the same call works: the row `f` is given holds the
    /// values PostgreSQL returned, under their column names.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        if !self.db.core.is_sqlite() {
            let values = crate::portable::values(sql, params)?;
            let rows = self.ops(&self.db)?.query(sql, values)?;
            return crate::portable::first_row(rows, f);
        }
        self.run(|c| Ok(c.prepare_cached(sql)?.query_row(params, f)?))
    }

    /// Gives `f` the connection, inside the transaction, for anything else.
    pub fn with_conn<R>(&self, f: impl FnOnce(&Connection) -> R) -> Result<R> {
        let mut panicked = None;
        let r = self.run(|c| crate::users_code(&mut panicked, || f(c)));
        crate::resume_panic(panicked);
        r
    }

    /// Commits. On failure everything is rolled back.
    pub fn commit(mut self) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or(honker_core::Error::TransactionInactive)?;
        self.db.core.commit(key)
    }

    /// Rolls back everything done in the transaction.
    pub fn rollback(mut self) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or(honker_core::Error::TransactionInactive)?;
        self.db.core.rollback(key)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let _ = self.db.core.rollback(key);
        }
    }
}
