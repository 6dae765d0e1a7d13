//! Cron expressions: next fire time after an instant, in UTC or an IANA
//! time zone.
//!
//! Accepted forms:
//!
//! - 5 fields, `minute hour day-of-month month day-of-week`;
//! - 6 fields with seconds first, `second minute hour dom month dow`;
//! - `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
//!   `@hourly`;
//! - `@every 1m30s` (units `d`, `h`, `m`, `s`, `ms`), a fixed interval;
//! - any of these behind `CRON_TZ=Area/City ` (or `TZ=`) to evaluate it in
//!   that zone; UTC otherwise.
//!
//! Fields take `*`, `?`, numbers, ranges `a-b`, steps `*/n` `a-b/n` `a/n`,
//! lists `a,b`, and names `jan`..`dec`, `sun`..`sat` (case-insensitive).
//! Day-of-week is 0-7 with both 0 and 7 meaning Sunday. As in standard
//! cron, when both day-of-month and day-of-week are restricted (neither
//! starts with `*`), a day matching either one fires.
//!
//! Time zones: a local time skipped by a DST change fires once, at the first
//! valid instant after the gap; a local time that occurs twice fires once,
//! at its first occurrence.

use crate::error::{Error, Result};
use chrono::{
    DateTime, Datelike, Duration as CDuration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// How far ahead a search goes before deciding an expression never fires.
const SEARCH_YEARS: i32 = 40;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    source: String,
    kind: Kind,
    tz: Option<Tz>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Fields(Fields),
    Every(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn err(expr: &str, reason: impl Into<String>) -> Error {
    Error::InvalidCron {
        expr: expr.to_string(),
        reason: reason.into(),
    }
}

/// Parses `expr` (which may carry a `CRON_TZ=` prefix).
pub fn parse(expr: &str) -> Result<CronSchedule> {
    parse_with_tz(expr, None)
}

/// Looks up an IANA time zone name.
pub fn parse_tz(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| Error::InvalidTimezone {
        name: name.to_string(),
    })
}

/// Parses `expr`, evaluating it in `tz` when given. A `CRON_TZ=` prefix and
/// a `tz` argument that disagree are an error.
pub fn parse_with_tz(expr: &str, tz: Option<&str>) -> Result<CronSchedule> {
    let trimmed = expr.trim();
    let mut body = trimmed;
    let mut zone: Option<Tz> = None;
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            let (name, rest) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                err(
                    expr,
                    format!("{prefix} must be followed by a zone and an expression"),
                )
            })?;
            zone = Some(parse_tz(name)?);
            body = rest.trim();
            break;
        }
    }
    if let Some(name) = tz {
        let given = parse_tz(name)?;
        if zone.is_some_and(|z| z != given) {
            return Err(err(
                expr,
                format!("its CRON_TZ differs from the time zone {name:?} given"),
            ));
        }
        zone = Some(given);
    }
    if body.is_empty() {
        return Err(err(expr, "empty expression"));
    }
    let kind = if let Some(rest) = body.strip_prefix("@every") {
        Kind::Every(parse_interval(expr, rest.trim())?)
    } else if body.starts_with('@') {
        let fields = match body.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => return Err(err(expr, format!("unknown macro {other:?}"))),
        };
        Kind::Fields(parse_fields(expr, fields)?)
    } else {
        Kind::Fields(parse_fields(expr, body)?)
    };
    let schedule = CronSchedule {
        source: trimmed.to_string(),
        kind,
        tz: zone,
    };
    if let Kind::Fields(f) = &schedule.kind {
        // Reject expressions such as "0 0 30 2 *" that can never fire.
        let start = NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        if f.next_local(start).is_none() {
            return Err(err(expr, "it never fires (no date matches its fields)"));
        }
    }
    Ok(schedule)
}

fn parse_interval(expr: &str, text: &str) -> Result<i64> {
    if text.is_empty() {
        return Err(err(expr, "@every needs a duration such as 1m30s"));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err(
                expr,
                format!("bad duration {text:?}: expected a number at {rest:?}"),
            ));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| err(expr, format!("bad duration {text:?}")))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(err(
                    expr,
                    format!("bad duration {text:?}: missing unit after {n}"),
                ))
            }
            u => {
                return Err(err(
                    expr,
                    format!("bad duration {text:?}: unknown unit {u:?} (use d, h, m, s, ms)"),
                ))
            }
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(n.saturating_mul(unit_ms));
    }
    if total < 1000 {
        return Err(err(expr, "@every interval must be at least 1s"));
    }
    if total > crate::validate::MAX_INSTANT_MS {
        return Err(err(expr, "@every interval is longer than 9999 years"));
    }
    Ok(total)
}

fn parse_fields(expr: &str, body: &str) -> Result<Fields> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let (sec, rest): (&str, &[&str]) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        n => {
            return Err(err(
                expr,
                format!("expected 5 fields (minute hour day month weekday) or 6 with seconds first, got {n}"),
            ))
        }
    };
    let dow = parse_field(expr, "day-of-week", rest[4], 0, 7, &DAYS, 0)?;
    // 7 is Sunday too.
    let dow = (dow | (dow >> 7)) & 0x7f;
    Ok(Fields {
        seconds: parse_field(expr, "second", sec, 0, 59, &[], 0)?,
        minutes: parse_field(expr, "minute", rest[0], 0, 59, &[], 0)?,
        hours: parse_field(expr, "hour", rest[1], 0, 23, &[], 0)?,
        dom: parse_field(expr, "day-of-month", rest[2], 1, 31, &[], 0)?,
        months: parse_field(expr, "month", rest[3], 1, 12, &MONTHS, 1)?,
        dow,
        dom_star: rest[2].starts_with('*') || rest[2].starts_with('?'),
        dow_star: rest[4].starts_with('*') || rest[4].starts_with('?'),
    })
}

fn parse_value(expr: &str, what: &str, text: &str, names: &[&str], base: u32) -> Result<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + base)
        .ok_or_else(|| err(expr, format!("bad {what} value {text:?}")))
}

fn parse_field(
    expr: &str,
    what: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
) -> Result<u64> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| err(expr, format!("bad step {s:?} in {what} field")))?;
                if step == 0 || step > max {
                    return Err(err(
                        expr,
                        format!("step {s} out of range 1-{max} in {what} field"),
                    ));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                parse_value(expr, what, a, names, base)?,
                parse_value(expr, what, b, names, base)?,
            )
        } else {
            let v = parse_value(expr, what, range, names, base)?;
            // "a/n" means from a to the end, every n.
            (v, if item.contains('/') { max } else { v })
        };
        if lo < min || hi > max {
            return Err(err(
                expr,
                format!("{what} value out of range {min}-{max} in {item:?}"),
            ));
        }
        if lo > hi {
            return Err(err(expr, format!("{what} range {item:?} goes backwards")));
        }
        for v in (lo..=hi).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

fn has(bits: u64, v: u32) -> bool {
    bits & (1 << v) != 0
}

impl Fields {
    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = has(self.dom, d.day());
        let dow = has(self.dow, d.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local wall-clock time at or after `start` that matches.
    fn next_local(&self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = start.with_nanosecond(0)?;
        let limit = start.year() + SEARCH_YEARS;
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
        loop {
            if t.year() > limit {
                return None;
            }
            if !has(self.months, t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = midnight(NaiveDate::from_ymd_opt(y, m, 1)?)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = midnight(t.date().succ_opt()?)?;
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t
                    .date()
                    .and_hms_opt(t.hour(), 0, 0)?
                    .checked_add_signed(CDuration::hours(1))?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t
                    .date()
                    .and_hms_opt(t.hour(), t.minute(), 0)?
                    .checked_add_signed(CDuration::minutes(1))?;
                continue;
            }
            if !has(self.seconds, t.second()) {
                t = t.checked_add_signed(CDuration::seconds(1))?;
                continue;
            }
            return Some(t);
        }
    }
}

fn to_ms<T: TimeZone>(dt: &DateTime<T>) -> i64 {
    dt.timestamp_millis()
}

impl CronSchedule {
    /// The expression as given (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The IANA zone it is evaluated in, `None` for UTC.
    pub fn timezone(&self) -> Option<&'static str> {
        self.tz.map(|z| z.name())
    }

    /// For `@every`, the interval in milliseconds.
    pub fn interval_ms(&self) -> Option<i64> {
        match self.kind {
            Kind::Every(ms) => Some(ms),
            Kind::Fields(_) => None,
        }
    }

    /// The first fire time strictly after `after_ms` (ms since the epoch),
    /// or `None` if there is none within the search horizon.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let fields = match &self.kind {
            Kind::Every(ms) => return after_ms.checked_add(*ms),
            Kind::Fields(f) => f,
        };
        // Whole seconds strictly after `after_ms`.
        let start_ms = after_ms
            .div_euclid(1000)
            .checked_add(1)?
            .checked_mul(1000)?;
        let start_utc = Utc.timestamp_millis_opt(start_ms).single()?;
        let Some(tz) = self.tz else {
            return fields
                .next_local(start_utc.naive_utc())
                .map(|n| to_ms(&n.and_utc()));
        };
        let mut local = start_utc.with_timezone(&tz).naive_local();
        for _ in 0..1000 {
            let n = fields.next_local(local)?;
            let instant = match tz.from_local_datetime(&n) {
                chrono::LocalResult::Single(dt) => Some(to_ms(&dt)),
                chrono::LocalResult::Ambiguous(first, second) => {
                    // A repeated local time fires once: at its first
                    // occurrence, or at the second if the first is past.
                    [to_ms(&first), to_ms(&second)]
                        .into_iter()
                        .find(|&ms| ms > after_ms)
                }
                chrono::LocalResult::None => gap_end(&tz, n).filter(|&ms| ms > after_ms),
            };
            if let Some(ms) = instant.filter(|&ms| ms > after_ms) {
                return Some(ms);
            }
            local = n.checked_add_signed(CDuration::seconds(1))?;
        }
        None
    }
}

/// The first valid instant after the DST gap that swallowed local time `n`.
fn gap_end(tz: &Tz, n: NaiveDateTime) -> Option<i64> {
    let mut t = n.with_second(0)?;
    for _ in 0..(48 * 60) {
        t = t.checked_add_signed(CDuration::minutes(1))?;
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return Some(to_ms(&dt));
        }
    }
    None
}

/// Parses `expr` (optionally in zone `tz`) and returns its first fire time
/// strictly after `after_ms`.
pub fn next_fire(expr: &str, tz: Option<&str>, after_ms: i64) -> Result<i64> {
    let s = parse_with_tz(expr, tz)?;
    crate::validate::instant_ms("after", after_ms)?;
    s.next_after(after_ms)
        .filter(|&t| t <= crate::validate::MAX_INSTANT_MS)
        .ok_or_else(|| err(expr, "no fire time before the year 9999"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }
    fn show(ms: i64, tz: Option<&str>) -> String {
        let dt = Utc.timestamp_millis_opt(ms).unwrap();
        match tz {
            None => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Some(z) => dt
                .with_timezone(&parse_tz(z).unwrap())
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
        }
    }
    fn next(expr: &str, after: &str) -> String {
        let s = parse(expr).unwrap();
        show(s.next_after(utc(after)).unwrap(), s.timezone())
    }
    fn series(expr: &str, after: &str, n: usize) -> Vec<String> {
        let s = parse(expr).unwrap();
        let mut t = utc(after);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                show(t, s.timezone())
            })
            .collect()
    }

    #[test]
    fn utc_table() {
        let cases = [
            (
                "*/15 * * * *",
                "2024-01-01T00:07:00Z",
                "2024-01-01T00:15:00Z",
            ),
            ("0 3 * * *", "2024-01-01T03:00:00Z", "2024-01-02T03:00:00Z"),
            (
                "0 3 * * *",
                "2024-01-01T02:59:59.999Z",
                "2024-01-01T03:00:00Z",
            ),
            // Month ends.
            ("0 0 31 * *", "2024-04-01T00:00:00Z", "2024-05-31T00:00:00Z"),
            ("0 12 1 * *", "2024-01-31T13:00:00Z", "2024-02-01T12:00:00Z"),
            (
                "59 23 31 12 *",
                "2024-06-01T00:00:00Z",
                "2024-12-31T23:59:00Z",
            ),
            // Leap years.
            ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 0 29 2 *", "2023-01-01T00:00:00Z", "2024-02-29T00:00:00Z"),
            ("0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"),
            // Names, ranges, steps, lists.
            (
                "30 9 * jan,jul mon-fri",
                "2024-01-05T10:00:00Z",
                "2024-01-08T09:30:00Z",
            ),
            (
                "0 0 * * SUN",
                "2024-01-01T00:00:00Z",
                "2024-01-07T00:00:00Z",
            ),
            ("0 0 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
            (
                "0 8-18/5 * * *",
                "2024-01-01T13:30:00Z",
                "2024-01-01T18:00:00Z",
            ),
            (
                "5/20 * * * *",
                "2024-01-01T00:26:00Z",
                "2024-01-01T00:45:00Z",
            ),
            // dom and dow both restricted: either fires.
            ("0 0 13 * 5", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"),
            ("0 0 13 * 5", "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z"),
            // dow restricted, dom `*`: only dow.
            ("0 0 * * 5", "2024-01-12T00:00:00Z", "2024-01-19T00:00:00Z"),
            // 6 fields, seconds first.
            (
                "*/10 * * * * *",
                "2024-01-01T00:00:05Z",
                "2024-01-01T00:00:10Z",
            ),
            (
                "30 0 0 1 1 *",
                "2024-01-01T00:00:31Z",
                "2025-01-01T00:00:30Z",
            ),
            // Macros.
            ("@hourly", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"),
            ("@daily", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
            ("@weekly", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
            ("@monthly", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"),
            ("@yearly", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"),
            (
                "@every 1m30s",
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:01:30Z",
            ),
        ];
        for (expr, after, want) in cases {
            assert_eq!(next(expr, after), want, "{expr} after {after}");
        }
    }

    #[test]
    fn dst_europe_paris() {
        // Spring forward 2024-03-31 02:00 -> 03:00. 02:30 does not exist:
        // fires once at 03:00 (the first valid instant), then normally.
        assert_eq!(
            series("CRON_TZ=Europe/Paris 30 2 * * *", "2024-03-29T12:00:00Z", 3),
            [
                "2024-03-30T02:30:00+01:00",
                "2024-03-31T03:00:00+02:00",
                "2024-04-01T02:30:00+02:00"
            ]
        );
        // Fall back 2024-10-27 03:00 -> 02:00. 02:30 happens twice: fires once.
        assert_eq!(
            series("CRON_TZ=Europe/Paris 30 2 * * *", "2024-10-26T12:00:00Z", 2),
            ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]
        );
        // Hourly across the gap: 03:00 fires once.
        assert_eq!(
            series("CRON_TZ=Europe/Paris 0 * * * *", "2024-03-31T00:30:00Z", 3),
            [
                "2024-03-31T03:00:00+02:00",
                "2024-03-31T04:00:00+02:00",
                "2024-03-31T05:00:00+02:00"
            ]
        );
        // A daily job away from the change keeps its local time on both sides.
        assert_eq!(
            series("CRON_TZ=Europe/Paris 0 9 * * *", "2024-03-30T12:00:00Z", 2),
            ["2024-03-31T09:00:00+02:00", "2024-04-01T09:00:00+02:00"]
        );
    }

    #[test]
    fn dst_america_new_york() {
        // Spring forward 2024-03-10 02:00 -> 03:00.
        assert_eq!(
            series(
                "CRON_TZ=America/New_York 15 2 * * *",
                "2024-03-09T12:00:00Z",
                3
            ),
            [
                "2024-03-10T03:00:00-04:00",
                "2024-03-11T02:15:00-04:00",
                "2024-03-12T02:15:00-04:00"
            ]
        );
        // Fall back 2024-11-03 02:00 -> 01:00: 01:30 happens twice, fires once.
        assert_eq!(
            series(
                "CRON_TZ=America/New_York 30 1 * * *",
                "2024-11-02T12:00:00Z",
                2
            ),
            ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]
        );
        // Every 30 minutes through the repeated hour: no local time twice.
        let s = series(
            "CRON_TZ=America/New_York */30 * * * *",
            "2024-11-03T04:50:00Z",
            4,
        );
        assert_eq!(
            s,
            [
                "2024-11-03T01:00:00-04:00",
                "2024-11-03T01:30:00-04:00",
                "2024-11-03T02:00:00-05:00",
                "2024-11-03T02:30:00-05:00"
            ]
        );
        // Southern hemisphere, too: Sydney springs forward 2024-10-06 02:00 -> 03:00.
        assert_eq!(
            series(
                "CRON_TZ=Australia/Sydney 30 2 * * *",
                "2024-10-05T12:00:00Z",
                2
            ),
            ["2024-10-06T03:00:00+11:00", "2024-10-07T02:30:00+11:00"]
        );
    }

    #[test]
    fn tz_argument() {
        let s = parse_with_tz("0 9 * * *", Some("Asia/Tokyo")).unwrap();
        assert_eq!(s.timezone(), Some("Asia/Tokyo"));
        assert_eq!(
            show(s.next_after(utc("2024-01-01T00:00:00Z")).unwrap(), None),
            "2024-01-02T00:00:00Z"
        );
        assert_eq!(
            next_fire("0 9 * * *", Some("Asia/Tokyo"), utc("2024-01-01T00:00:00Z")).unwrap(),
            utc("2024-01-02T00:00:00Z")
        );
        assert!(parse_with_tz("CRON_TZ=Europe/Paris 0 9 * * *", Some("Asia/Tokyo")).is_err());
        assert_eq!(
            parse_with_tz("0 9 * * *", Some("Mars/Olympus"))
                .unwrap_err()
                .code(),
            "invalid_timezone"
        );
    }

    #[test]
    fn bad_expressions_are_named() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
            "* * * foo *",
            "@sometimes",
            "@every",
            "@every 0s",
            "@every 5",
            "@every 5y",
            "0 0 30 2 *",
            "CRON_TZ=Europe/Paris",
            "1/4294967295 * * * *",
            "*/60 * * * *",
            "0 */24 * * *",
            "0 0 */32 * *",
            "0 0 * */13 *",
            "0 0 * * */8",
            "*/4294967296 * * * *",
            "@every 99999999999999d",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                matches!(e.code(), "invalid_cron" | "invalid_timezone"),
                "{bad:?}: {e}"
            );
            assert!(
                e.to_string().contains(&format!("{bad:?}")) || e.code() == "invalid_timezone",
                "{e}"
            );
        }
        assert_eq!(
            parse("CRON_TZ=Nowhere/Atall 0 0 * * *").unwrap_err().code(),
            "invalid_timezone"
        );
        assert!(parse("*/59 * * * *").is_ok(), "the largest minute step");
        assert!(parse("0 0 * * */7").is_ok());
    }

    #[test]
    fn instants_out_of_range_are_refused_not_overflowed() {
        for after in [9_223_372_036_854_775, i64::MAX, -1, validate_max() + 1] {
            let e = next_fire("* * * * *", None, after).unwrap_err();
            assert_eq!(e.code(), "invalid_argument", "{after}: {e}");
            assert!(e.to_string().contains("`after`"), "{e}");
        }
        // The last minute before the limit has no successor inside it.
        let e = next_fire("* * * * *", None, validate_max() - 10).unwrap_err();
        assert_eq!(e.code(), "invalid_cron", "{e}");
        assert_eq!(parse("* * * * *").unwrap().next_after(i64::MAX), None);
        assert_eq!(parse("@every 1s").unwrap().next_after(i64::MAX), None);
        assert_eq!(
            parse("CRON_TZ=Europe/Paris 0 0 * * *")
                .unwrap()
                .next_after(i64::MAX - 5),
            None
        );
    }

    fn validate_max() -> i64 {
        crate::validate::MAX_INSTANT_MS
    }
}
