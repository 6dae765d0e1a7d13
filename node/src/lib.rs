//! The native half of the Node package `honker`. Thin: it converts values,
//! runs every call into SQLite off the main thread (an `AsyncTask` on the
//! libuv pool for short calls, a dedicated thread for waits that can last),
//! and encodes `honker_core::Error` codes in the error message for the JS
//! layer (`index.js`) to turn into `.code`. JSON, option objects,
//! iterators and transactions live in `index.js`; every rule lives in
//! honker-core.
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
pub fn cron_next(expr: String, after_s: f64, opts: Option<CronOptions>) -> napi::Result<i64> {
    let after = secs("after", Some(after_s))?.unwrap_or_default();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let tz = opts.and_then(|o| o.tz);
    honker_core::guard(|| cron::next_fire(&expr, tz.as_deref(), after_ms)).map_err(to_js)
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
