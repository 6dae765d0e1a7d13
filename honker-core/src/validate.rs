//! Argument checks shared by every operation and every binding, so each bad
//! input gets the same clear error in every language.

use crate::error::{Error, Result};
use std::time::{Duration, Instant, SystemTime};

/// Longest name (queue, stream, channel, lock, consumer…) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 512;

/// Rejects empty or absurdly long names, and names holding a NUL (which C
/// strings, SQLite's shell and other languages' APIs would cut short).
pub fn name(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    if value.contains('\0') {
        return Err(Error::invalid(what, "must not contain a NUL character"));
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

/// The latest instant honker stores or computes, 9999-12-31T23:59:59.999Z,
/// in ms since the epoch. Every deadline (a run time, a lease end, a TTL's
/// end, a cron search start) must fall between the epoch and this.
pub const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

fn out_of_range(what: &'static str, shown: impl std::fmt::Display) -> Error {
    Error::invalid(
        what,
        format!("{shown} is out of range: instants must fall between 1970 and the year 9999"),
    )
}

/// A duration in whole milliseconds, refusing one longer than any deadline
/// can hold.
pub fn duration_ms(what: &'static str, d: Duration) -> Result<i64> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms <= MAX_INSTANT_MS => Ok(ms),
        _ => Err(out_of_range(what, format!("{:.0} s", d.as_secs_f64()))),
    }
}

/// The instant `ms` after `start` (both ms): the end of a delay, lease, TTL
/// or window. Past the year 9999 it is an error naming `what`.
pub fn after(what: &'static str, start: i64, ms: i64) -> Result<i64> {
    match start.checked_add(ms) {
        Some(t) if (0..=MAX_INSTANT_MS).contains(&t) => Ok(t),
        _ => Err(out_of_range(what, format!("{ms} ms from {start} ms"))),
    }
}

/// An instant given in ms since the epoch, checked against the range.
pub fn instant_ms(what: &'static str, ms: i64) -> Result<i64> {
    if (0..=MAX_INSTANT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(out_of_range(what, format!("{ms} ms since the epoch")))
    }
}

/// An instant given as a `SystemTime`, in ms since the epoch.
pub fn instant(what: &'static str, t: SystemTime) -> Result<i64> {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => instant_ms(what, duration_ms(what, d)?),
        Err(_) => Err(out_of_range(what, "a time before 1970")),
    }
}

/// An instant given by a binding in (possibly fractional) seconds since the
/// epoch.
pub fn epoch_secs_f64(what: &'static str, secs: f64) -> Result<SystemTime> {
    if !(secs.is_finite() && (0.0..=MAX_INSTANT_MS as f64 / 1000.0).contains(&secs)) {
        return Err(out_of_range(
            what,
            format!("{} s since the epoch", shown(secs)),
        ));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// The deadline of a wait of `timeout` from now; `None` (no deadline) for a
/// wait too long to be told apart from forever.
pub fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
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

/// A retention given by a binding: an age in seconds (finite, not
/// negative) and a count (not negative), either missing. Whether the
/// limits make sense for their use is checked where they are stored.
pub fn retention(
    max_age_s: Option<f64>,
    max_count: Option<i64>,
) -> Result<crate::model::Retention> {
    Ok(crate::model::Retention {
        max_age: max_age_s.map(|s| secs_f64("max_age_s", s)).transpose()?,
        max_count: max_count
            .map(|n| {
                u64::try_from(n).map_err(|_| {
                    Error::invalid("max_count", format!("must not be negative, got {n}"))
                })
            })
            .transpose()?,
    })
}

/// A queue's claim rate limit given by a binding: `limit` claims (at
/// least 1) per window of `per_s` seconds (positive); no limit when
/// `limit` is missing.
pub fn queue_rate(
    limit: Option<i64>,
    per_s: Option<f64>,
) -> Result<Option<crate::model::QueueRateLimit>> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let per_s = per_s.ok_or_else(|| {
        Error::invalid("per_s", "must be a number of seconds when a limit is given")
    })?;
    Ok(Some(crate::model::QueueRateLimit {
        limit: attempts("limit", limit)?,
        per: Duration::from_millis(ttl_secs_f64("per_s", per_s)?.unsigned_abs()),
    }))
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
        assert_eq!(
            name("queue", "a\0b").unwrap_err().to_string(),
            "invalid argument `queue`: must not contain a NUL character"
        );
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
    fn instants_and_their_range() {
        assert_eq!(after("ttl", 1_000, 500).unwrap(), 1_500);
        for (start, ms) in [(1, MAX_INSTANT_MS), (i64::MAX, 1), (0, -1)] {
            let e = after("ttl", start, ms).unwrap_err();
            assert_eq!(e.code(), "invalid_argument");
            assert!(e.to_string().starts_with("invalid argument `ttl`: "), "{e}");
            assert!(e.to_string().contains("year 9999"), "{e}");
        }
        assert_eq!(
            duration_ms("delay", Duration::from_secs(u64::MAX))
                .unwrap_err()
                .code(),
            "invalid_argument"
        );
        assert_eq!(duration_ms("d", Duration::from_millis(7)).unwrap(), 7);
        assert_eq!(
            instant("run_at", SystemTime::UNIX_EPOCH + Duration::from_secs(2)).unwrap(),
            2_000
        );
        assert!(instant("run_at", SystemTime::UNIX_EPOCH - Duration::from_secs(2)).is_err());
        assert!(instant_ms("after", MAX_INSTANT_MS).is_ok());
        assert!(instant_ms("after", MAX_INSTANT_MS + 1).is_err());
        assert!(instant_ms("after", -1).is_err());
        for bad in [1e19, -1.0, f64::NAN, f64::INFINITY, 9_223_372_036_854_775.0] {
            let e = epoch_secs_f64("run_at", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid argument `run_at`"), "{e}");
        }
        assert_eq!(
            epoch_secs_f64("run_at", 1.5).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1500)
        );
        assert!(deadline(Duration::MAX).is_none());
        assert!(deadline(Duration::from_secs(1)).is_some());
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
