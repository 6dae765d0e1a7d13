//! honker-core errors as JS errors.

use honker_core::{validate, Error};
use napi::Status;
use std::time::Duration;

pub(crate) type CoreResult<T> = honker_core::Result<T>;

/// The message carries the code (`honker:<code>: <message>`); index.js
/// moves it to `.code`.
pub(crate) fn to_js(e: Error) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("honker:{}: {}", e.code(), e),
    )
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> napi::Error {
    to_js(Error::invalid(name, reason))
}

pub(crate) fn secs(what: &'static str, s: Option<f64>) -> napi::Result<Option<Duration>> {
    s.map(|s| validate::secs_f64(what, s))
        .transpose()
        .map_err(to_js)
}

/// A positive TTL or window in (possibly fractional) seconds, as ms.
pub(crate) fn ttl_ms(what: &'static str, s: f64) -> napi::Result<i64> {
    validate::ttl_secs_f64(what, s).map_err(to_js)
}

// Whole numbers arrive as JS numbers (f64) and are checked here: napi's own
// i64/u32 conversions would truncate 1.5, zero NaN and wrap -1 silently.

pub(crate) fn whole(what: &'static str, v: f64) -> napi::Result<i64> {
    validate::whole_f64(what, v).map_err(to_js)
}

pub(crate) fn count(what: &'static str, n: f64) -> napi::Result<usize> {
    validate::count(what, whole(what, n)?).map_err(to_js)
}

pub(crate) fn attempts(what: &'static str, n: f64) -> napi::Result<u32> {
    validate::attempts(what, whole(what, n)?).map_err(to_js)
}
