//! The native half of the Node package `honker`. Thin: it converts values,
//! runs every call into SQLite off the main thread (an `AsyncTask` on the
//! libuv pool for short calls, a dedicated thread for waits that can last),
//! and makes each `honker_core::Error` a JS error whose `.code` is the
//! core's code (`error.rs`). JSON, option objects, iterators and the
//! transaction callback live in the TypeScript layer (`lib/`); every rule
//! lives in honker-core, which sees the caller a call acts for (`task.rs`).
//!
//! One file per concern: `error` (errors, argument checks), `task` (where a
//! call runs, who it acts for), `data` (plain values crossing over),
//! `handles` (transaction, stop flag, listener, cursor, lock keeper),
//! `database` (the handle, transactions, SQL) and the operations by
//! concern: `queue`, `stream`, `lock`, `scheduler`, `worker`.
//!
//! An operation that the JS API offers both ways (`enqueue` and
//! `enqueueSync`) is one native method whose first argument, `sync`, picks:
//! `true` runs it on the calling thread and returns the value (refusing with
//! `transaction_open` while a transaction is open on the database, since
//! waiting there would block the event loop the transaction's callback
//! needs), `false` returns a Promise.

#![allow(clippy::too_many_arguments)]
pub(crate) mod data;
pub(crate) mod database;
pub(crate) mod error;
pub(crate) mod handles;
pub(crate) mod lock;
pub(crate) mod queue;
pub(crate) mod scheduler;
pub(crate) mod stream;
pub(crate) mod task;
pub(crate) mod worker;

use error::*;
use honker_core::{cron, Error};
use napi_derive::napi;

/// `cronNext` options. Unknown fields are ignored.
#[napi(object)]
pub struct CronOptions {
    pub tz: Option<String>,
}

/// The first fire of cron expression `expr` (in zone `opts.tz`, else UTC)
/// strictly after `afterS` (epoch seconds, floored to the millisecond), in
/// ms since the epoch. Pure: it touches no database.
#[napi]
pub fn cron_next(expr: String, after_s: f64, opts: Option<CronOptions>) -> Result<i64> {
    let after = secs("after", Some(after_s))?.unwrap_or_default();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let tz = opts.and_then(|o| o.tz);
    honker_core::guard(|| cron::next_fire(&expr, tz.as_deref(), after_ms)).map_err(to_js)
}

/// Runs the operator's command (`honker ...`) with `args` (the program's
/// name first) on this thread and returns its exit status: `npx honker
/// <command>`. For a process that is the command (it blocks until the
/// command ends, and restores SIGPIPE's default action).
#[napi]
pub fn run_cli(args: Vec<String>) -> u32 {
    u32::from(honker_cli::main_from(args))
}

/// The stream every queue's lifecycle events are published to.
#[napi]
pub fn events_stream() -> String {
    honker_core::EVENTS_STREAM.to_string()
}

/// The honker-core version.
#[napi]
pub fn version() -> String {
    honker_core::VERSION.to_string()
}

/// Every error code, as in honker-core.
#[napi]
pub fn error_codes() -> Vec<String> {
    Error::CODES.iter().map(|s| s.to_string()).collect()
}
