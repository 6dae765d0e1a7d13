//! honker-core errors as JS errors. Their `.code` is the core's code (one
//! of `Error::CODES`), set here when the error object is made; nothing is
//! parsed back out of a message.

use honker_core::{validate, Error};
use napi::bindgen_prelude::{FromNapiValue, JsError, Unknown};
use napi::Env;
use std::time::Duration;

pub(crate) type CoreResult<T> = honker_core::Result<T>;

/// What a native method returns. The error's first field becomes the thrown
/// JS error's `.code`. (The name must be `Result`: that is how napi-derive
/// recognises a method that can throw.)
pub(crate) type Result<T> = std::result::Result<T, napi::Error<String>>;

/// A core error, thrown as a JS error with `.code` = its code.
pub(crate) fn to_js(e: Error) -> napi::Error<String> {
    napi::Error::new(e.code().to_string(), e.to_string())
}

/// napi's own failure (making a Promise, starting a thread) as `internal`.
pub(crate) fn from_napi(e: napi::Error) -> napi::Error<String> {
    to_js(Error::Internal {
        reason: e.reason.clone(),
    })
}

/// A core error as the JS error value itself, for a Promise settled on the
/// JS thread: napi hands a `napi::Error` made from a JS value back verbatim,
/// so the rejection carries the same `.code` as a thrown error.
pub(crate) fn rejection(env: &Env, e: Error) -> napi::Error {
    // SAFETY: `env` is the live env of the JS thread this runs on.
    let value = unsafe { JsError::from(to_js(e)).into_value(env.raw()) };
    if value.is_null() {
        // The env is tearing down; nobody is left to see the rejection.
        return napi::Error::from_reason("honker: the environment is shutting down");
    }
    // SAFETY: `value` was just made in this env.
    match unsafe { Unknown::from_napi_value(env.raw(), value) } {
        Ok(v) => napi::Error::from(v),
        Err(e) => e,
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> napi::Error<String> {
    to_js(Error::invalid(name, reason))
}

pub(crate) fn secs(what: &'static str, s: Option<f64>) -> Result<Option<Duration>> {
    s.map(|s| validate::secs_f64(what, s))
        .transpose()
        .map_err(to_js)
}

/// A positive TTL or window in (possibly fractional) seconds, as ms.
pub(crate) fn ttl_ms(what: &'static str, s: f64) -> Result<i64> {
    validate::ttl_secs_f64(what, s).map_err(to_js)
}

// Whole numbers arrive as JS numbers (f64) and are checked here: napi's own
// i64/u32 conversions would truncate 1.5, zero NaN and wrap -1 silently.

pub(crate) fn whole(what: &'static str, v: f64) -> Result<i64> {
    validate::whole_f64(what, v).map_err(to_js)
}

pub(crate) fn count(what: &'static str, n: f64) -> Result<usize> {
    validate::count(what, whole(what, n)?).map_err(to_js)
}

pub(crate) fn attempts(what: &'static str, n: f64) -> Result<u32> {
    validate::attempts(what, whole(what, n)?).map_err(to_js)
}
