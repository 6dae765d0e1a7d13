//! The open database, how its calls run, its transactions and raw SQL.

use crate::data::*;
use crate::error::*;
use crate::handles::*;
use crate::task::*;
use honker_core::model::{Fired, ScheduleInfo};
use honker_core::wake::keepalive::Keeper;
use honker_core::{Caller, Db, Error, OpenOptions, Ops, TxKey};
use napi::bindgen_prelude::Either;
use napi::Task;
use napi_derive::napi;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// One open database file.
#[napi]
pub struct NativeDatabase {
    pub(crate) db: Db,
}

pub(crate) type TxSlot = Arc<Mutex<Option<TxKey>>>;

/// A fresh owner token for a transaction.
pub(crate) fn next_tx_owner() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl NativeDatabase {
    /// Runs `f`, in `tx` when given: on this thread (`sync`) or on the libuv
    /// pool. On this thread, outside a transaction, it refuses while one is
    /// open (waiting for it would block the event loop its callback needs).
    pub(crate) fn run<R: Send + 'static>(
        &self,
        sync: bool,
        tx: Option<&NativeTx>,
        f: impl FnOnce(&Ops<'_>) -> CoreResult<R> + Send + 'static,
    ) -> Result<Run<R>>
    where
        Op<R>: Task,
    {
        if sync {
            // On the event loop's thread: never wait for a transaction.
            let me = acting().caller().without_waiting();
            exec(&self.db, me, tx.map(|t| &t.key), f)
                .map(Either::A)
                .map_err(to_js)
        } else {
            Ok(Either::B(self.later(tx, f)))
        }
    }

    /// Runs `f` (in `tx` when given) on the libuv pool.
    pub(crate) fn later<R: Send + 'static>(
        &self,
        tx: Option<&NativeTx>,
        f: impl FnOnce(&Ops<'_>) -> CoreResult<R> + Send + 'static,
    ) -> AsyncOp<R>
    where
        Op<R>: Task,
    {
        let db = self.db.clone();
        let tx = tx.map(|t| t.key.clone());
        let by = acting();
        spawn(move || exec(&db, by.caller(), tx.as_ref(), f))
    }
}

pub(crate) fn exec<R>(
    db: &Db,
    caller: Caller,
    tx: Option<&TxSlot>,
    f: impl FnOnce(&Ops<'_>) -> CoreResult<R>,
) -> CoreResult<R> {
    honker_core::guard(|| match tx {
        Some(slot) => {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner());
            let key = key.as_ref().ok_or(Error::TransactionInactive)?;
            f(&db.in_tx(key))
        }
        None => f(&db.by(caller)),
    })
}

pub(crate) fn schedule_rows(list: Vec<ScheduleInfo>) -> Vec<ScheduleData> {
    list.into_iter()
        .map(|s| ScheduleData {
            name: s.name,
            queue: s.queue,
            schedule: s.cron,
            payload: s.payload,
            priority: s.priority,
            paused: s.paused,
            next_fire_at_ms: s.next_fire_at_ms,
            last_error: s.last_error,
        })
        .collect()
}

pub(crate) fn fires(list: Vec<Fired>) -> Vec<FireData> {
    list.into_iter()
        .map(|f| FireData {
            name: f.name,
            job_id: f.job_id,
            fire_at_ms: f.fire_at_ms,
        })
        .collect()
}

#[napi]
impl NativeDatabase {
    /// Opens (creating if needed) the file: WAL, honker's tables.
    #[napi(constructor)]
    pub fn new(path: String, opts: Option<OpenOptionsData>) -> Result<Self> {
        let defaults = OpenOptions::default();
        let opts = match opts {
            None => defaults,
            Some(o) => OpenOptions {
                busy_timeout: secs("busyTimeoutS", o.busy_timeout_s)?
                    .unwrap_or(defaults.busy_timeout),
                wal_autocheckpoint: match o.wal_autocheckpoint {
                    None => defaults.wal_autocheckpoint,
                    Some(n) => u32::try_from(whole("walAutocheckpoint", n)?).map_err(|_| {
                        invalid(
                            "walAutocheckpoint",
                            format!(
                                "must be a whole number of pages from 0 to {}, got {n}",
                                u32::MAX
                            ),
                        )
                    })?,
                },
                trusted_schema: o.trusted_schema.unwrap_or(false),
                ..defaults
            },
        };
        // `open("postgresql://...")` selects the PostgreSQL backend.
        honker_postgres::register();
        let db = honker_core::guard(|| honker_core::open(&path, opts)).map_err(to_js)?;
        Ok(NativeDatabase { db })
    }

    /// Panics inside an operation, to show the guard at the boundary (the
    /// caller gets code `internal`, the process lives on). For tests.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn panic_for_test(&self) -> AsyncOp<()> {
        self.later(None, |_| panic!("a deliberate panic, for a test"))
    }

    /// Starts renewing a held lock in the background (every third of
    /// `ttlS`) until stopped; the keeper records a loss.
    #[napi]
    pub fn keep_lock(&self, name: String, token: i64, ttl_s: f64) -> Result<NativeKeeper> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        let keeper = Keeper::start(&self.db, &name, token, ttl).map_err(to_js)?;
        Ok(NativeKeeper {
            keeper: Arc::new(Mutex::new(keeper)),
        })
    }

    #[napi]
    pub fn close(&self) -> Result<()> {
        self.db.close().map_err(to_js)
    }

    #[napi]
    pub fn is_closed(&self) -> bool {
        self.db.is_closed()
    }

    // -- transactions --

    /// Opens a write transaction (waits for other processes' writers off
    /// the main thread).
    #[napi(ts_return_type = "Promise<NativeTx>")]
    pub fn begin(&self) -> AsyncOp<NativeTx> {
        let db = self.db.clone();
        // Owned by a token of its own, not the pool thread that opens it:
        // the JS layer keeps other calls back until it ends, and passes the
        // token on calls from inside its callback (`runAs`).
        let owner = acting().owner_or(next_tx_owner());
        spawn(move || {
            Ok(NativeTx {
                key: Arc::new(Mutex::new(Some(db.begin(Caller::host(owner))?))),
                owner,
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit(&self, tx: &NativeTx) -> AsyncOp<()> {
        let (db, slot) = (self.db.clone(), tx.key.clone());
        spawn(move || {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            db.commit(key.ok_or(Error::TransactionInactive)?)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn rollback(&self, tx: &NativeTx) -> AsyncOp<()> {
        let (db, slot) = (self.db.clone(), tx.key.clone());
        spawn(move || {
            let key = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            db.rollback(key.ok_or(Error::TransactionInactive)?)
        })
    }

    /// Runs one statement; returns the number of rows changed.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? number : Promise<number>"
    )]
    pub fn execute(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        sql: String,
        #[napi(ts_arg_type = "unknown[]")] params: Vec<Param>,
        tx: Option<&NativeTx>,
    ) -> Result<Run<i64>> {
        let values = values(params)?;
        self.run(sync, tx, move |o| Ok(o.execute(&sql, values)? as i64))
    }

    /// Runs a query; returns column names and rows.
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? Rows : Promise<Rows>"
    )]
    pub fn query(
        &self,
        #[napi(ts_arg_type = "S")] sync: bool,
        sql: String,
        #[napi(ts_arg_type = "unknown[]")] params: Vec<Param>,
        tx: Option<&NativeTx>,
    ) -> Result<Run<Rows>> {
        let values = values(params)?;
        self.run(sync, tx, move |o| run_query(o, &sql, values))
    }
}
