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
            format!(
                "must be a finite, non-negative number of seconds, got {}",
                shown(secs)
            ),
        )
    })
}

/// A TTL or window given by a binding in (possibly fractional) seconds:
/// positive and finite; returned in ms, at least 1.
pub fn ttl_secs_f64(what: &'static str, secs: f64) -> Result<i64> {
    if !secs.is_finite() || secs <= 0.0 {
        return Err(Error::invalid(
            what,
            format!("must be a positive number of seconds, got {}", shown(secs)),
        ));
    }
    Ok((secs * 1000.0).round().max(1.0) as i64)
}

/// A count given by a binding (a batch size, a read limit): not negative.
pub fn count(what: &'static str, n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::invalid(what, format!("must not be negative, got {n}")))
}

/// An attempt budget given by a binding: at least 1 (and at most `u32::MAX`).
pub fn attempts(what: &'static str, n: i64) -> Result<u32> {
    match u32::try_from(n) {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(Error::invalid(
            what,
            format!("must be a whole number from 1 to {}, got {n}", u32::MAX),
        )),
    }
}

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// An integer given as a float by a binding (a JS number): rejects
/// fractions, NaN, infinities and values beyond 2^53 - 1, which a plain
/// conversion would truncate, zero or saturate without a word.
pub fn whole_f64(what: &'static str, v: f64) -> Result<i64> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= MAX_SAFE_INTEGER {
        return Ok(v as i64);
    }
    Err(Error::invalid(
        what,
        format!("must be a whole number, got {}", shown(v)),
    ))
}

/// A float as an error message shows it: 1e300, not 301 digits.
fn shown(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e16 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
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
        assert_eq!(ttl_secs_f64("ttl", 1.5).unwrap(), 1500);
        assert_eq!(ttl_secs_f64("ttl", 1e-9).unwrap(), 1, "at least 1 ms");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = ttl_secs_f64("ttl", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid argument `ttl`: must be a positive number of seconds, got "),
                "{e}"
            );
        }
    }

    #[test]
    fn numbers_from_bindings() {
        assert_eq!(count("n", 0).unwrap(), 0);
        assert_eq!(
            count("n", -1).unwrap_err().to_string(),
            "invalid argument `n`: must not be negative, got -1"
        );
        assert_eq!(attempts("max_attempts", 3).unwrap(), 3);
        for bad in [0, -1, i64::from(u32::MAX) + 1] {
            let e = attempts("max_attempts", bad).unwrap_err();
            assert_eq!(e.code(), "invalid_argument");
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
        assert_eq!(whole_f64("n", 42.0).unwrap(), 42);
        assert_eq!(whole_f64("n", -7.0).unwrap(), -7);
        assert_eq!(whole_f64("n", MAX_SAFE_INTEGER).unwrap(), (1 << 53) - 1);
        assert!(whole_f64("n", 1e300)
            .unwrap_err()
            .to_string()
            .ends_with("got 1e300"));
        for bad in [1.5, f64::NAN, f64::INFINITY, -f64::INFINITY, 1e300] {
            let e = whole_f64("priority", bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("invalid argument `priority`: must be a whole number"),
                "{e}"
            );
        }
    }
}
