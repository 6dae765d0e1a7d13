//! Argument checks shared by every operation and every binding, so each bad
//! input gets the same clear error in every language.

use crate::error::{Error, Result};
use std::time::Duration;

/// Longest name (queue, stream, channel, lock, consumer…) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 512;

/// Rejects empty or absurdly long names.
pub fn name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            what,
            format!("is {} bytes long; the limit is {MAX_NAME_LEN}", value.len()),
        ));
    }
    Ok(())
}

/// Rejects text that is not one JSON value.
pub fn json(what: &'static str, text: &str) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| Error::InvalidJson {
            name: what,
            reason: e.to_string(),
        })
}

/// Rejects zero and negative durations given in milliseconds.
pub fn positive_ms(what: &'static str, ms: i64) -> Result<i64> {
    if ms <= 0 {
        return Err(Error::invalid(
            what,
            format!("must be positive, got {ms} ms"),
        ));
    }
    Ok(ms)
}

/// Rejects zero and negative durations given in whole seconds, returning ms.
pub fn positive_secs(what: &'static str, secs: i64) -> Result<i64> {
    if secs <= 0 {
        return Err(Error::invalid(
            what,
            format!("must be a positive number of seconds, got {secs}"),
        ));
    }
    Ok(secs.saturating_mul(1000))
}

/// Converts seconds given by a binding (a Python float, a JS number) to a
/// `Duration`, rejecting negative, NaN and infinite values.
pub fn secs_f64(what: &'static str, secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        Error::invalid(
            what,
            format!("must be a finite, non-negative number of seconds, got {secs}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("queue", "emails").is_ok());
        let e = name("queue", "").unwrap_err();
        assert_eq!(e.to_string(), "invalid argument `queue`: must not be empty");
        assert!(name("queue", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn json_and_durations() {
        assert!(json("payload", r#"{"a":1}"#).is_ok());
        assert!(json("payload", "42").is_ok());
        assert_eq!(json("payload", "{nope").unwrap_err().code(), "invalid_json");
        assert_eq!(json("payload", "").unwrap_err().code(), "invalid_json");
        assert!(positive_ms("ttl", 0).is_err());
        assert!(positive_secs("ttl", -5)
            .unwrap_err()
            .to_string()
            .contains("-5"));
        assert_eq!(positive_secs("ttl", 2).unwrap(), 2000);
        assert!(secs_f64("delay", -1.0).is_err());
        assert!(secs_f64("delay", f64::NAN).is_err());
        assert_eq!(secs_f64("delay", 1.5).unwrap(), Duration::from_millis(1500));
    }
}
