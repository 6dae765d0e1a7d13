//! Schedules, the data side: register, list, pause, resume, and `tick`,
//! which enqueues every due fire exactly once per boundary. Leader election
//! and the run loop live above this (only one process should tick, but two
//! ticking at once still never double-fire: each fire is a conditional
//! update inside one transaction).
//!
//! Missed fires: after downtime, a schedule fires once to catch up (not once
//! per missed boundary), then continues from the next boundary after now.

use super::conn::atomic;
use super::queue;
use crate::cron::{self, CronSchedule};
use crate::error::{Error, Result};
use crate::model::*;
use crate::model::{EnqueueOpts, DEFAULT_MAX_ATTEMPTS};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::time::Duration;

/// Longest schedule name, in bytes: each fire's job carries the
/// idempotency key `schedule:{name}:{fire time}`, which must fit in
/// [`validate::MAX_NAME_LEN`].
pub const MAX_NAME_LEN: usize = validate::MAX_NAME_LEN - 32;

/// A schedule that will never fire again (its expression has no next boundary).
pub const NEVER: i64 = i64::MAX;

/// The expression stored for `spec`: its own, with its time zone written in.
pub fn stored_expr(spec: &ScheduleSpec<'_>, parsed: &CronSchedule) -> String {
    match (spec.tz, parsed.timezone()) {
        (Some(_), Some(zone))
            if !parsed.source().starts_with("CRON_TZ=") && !parsed.source().starts_with("TZ=") =>
        {
            format!("CRON_TZ={zone} {}", parsed.source())
        }
        _ => parsed.source().to_string(),
    }
}

/// A schedule's spec, checked: the expression to store, parsed, and its
/// jobs' start deadline in ms. (Every engine's `schedule_add` starts here.)
pub fn check(spec: &ScheduleSpec<'_>) -> Result<(String, CronSchedule, Option<i64>)> {
    validate::name("name", spec.name)?;
    if spec.name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            "name",
            format!(
                "is {} bytes long; a schedule name is at most {MAX_NAME_LEN} bytes (each fire's \
                 idempotency key adds the fire time to it)",
                spec.name.len()
            ),
        ));
    }
    validate::name("queue", spec.queue)?;
    validate::json("payload", spec.payload)?;
    let expires = match spec.expires {
        Some(d) => Some(validate::positive_ms(
            "expires",
            validate::duration_ms("expires", d)?,
        )?),
        None => None,
    };
    let parsed = cron::parse_with_tz(spec.cron, spec.tz)?;
    let expr = stored_expr(spec, &parsed);
    Ok((expr, parsed, expires))
}

/// The first fire of a schedule registered at `now` (an expression with
/// none before the year 9999 is refused).
pub fn first_fire(spec: &ScheduleSpec<'_>, parsed: &CronSchedule, now: i64) -> Result<i64> {
    parsed
        .next_after(now)
        .filter(|&t| t <= validate::MAX_INSTANT_MS)
        .ok_or_else(|| Error::InvalidCron {
            expr: spec.cron.to_string(),
            reason: "it has no fire time before the year 9999".into(),
        })
}

/// Registers or updates a schedule. Re-adding an unchanged expression keeps
/// its next fire time (so registering at every process start neither
/// postpones nor duplicates a fire); a changed expression is rescheduled
/// from now.
pub fn add(conn: &Connection, spec: &ScheduleSpec<'_>, now: i64) -> Result<()> {
    let (expr, parsed, expires) = check(spec)?;
    atomic(conn, |conn| {
        let existing: Option<(String, i64)> = conn
            .prepare_cached("SELECT cron, next_fire_at FROM _honker_schedules WHERE name = ?1")?
            .query_row([spec.name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let next = match existing {
            Some((old, next)) if old == expr => next,
            _ => first_fire(spec, &parsed, now)?,
        };
        conn.prepare_cached(
            "INSERT INTO _honker_schedules (name, queue, cron, payload, priority, expires_ms, next_fire_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, cron = excluded.cron,
                 payload = excluded.payload, priority = excluded.priority, expires_ms = excluded.expires_ms,
                 next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at",
        )?
        .execute(params![spec.name, spec.queue, expr, spec.payload, spec.priority, expires, next, now])?;
        Ok(())
    })
}

/// Removes a schedule; false if there was none by that name.
pub fn remove(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM _honker_schedules WHERE name = ?1")?
        .execute([name])?
        == 1)
}

fn info_row(r: &Row<'_>) -> rusqlite::Result<ScheduleInfo> {
    Ok(ScheduleInfo {
        name: r.get(0)?,
        queue: r.get(1)?,
        cron: r.get(2)?,
        payload: r.get(3)?,
        priority: r.get(4)?,
        expires_ms: r.get(5)?,
        paused: r.get(6)?,
        next_fire_at_ms: r.get(7)?,
        last_fire_at_ms: r.get(8)?,
        last_error: r.get(9)?,
    })
}

const COLS: &str =
    "name, queue, cron, payload, priority, expires_ms, paused, next_fire_at, last_fire_at, last_error";

/// Every schedule, by name.
pub fn list(conn: &Connection) -> Result<Vec<ScheduleInfo>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM _honker_schedules ORDER BY name"
        ))?
        .query_map([], info_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// One schedule by name.
pub fn get(conn: &Connection, name: &str) -> Result<Option<ScheduleInfo>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM _honker_schedules WHERE name = ?1"
        ))?
        .query_row([name], info_row)
        .optional()?)
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "schedule",
        id: format!("{name:?}"),
    }
}

/// Stops a schedule from firing until resumed.
pub fn pause(conn: &Connection, name: &str) -> Result<()> {
    let n = conn
        .prepare_cached("UPDATE _honker_schedules SET paused = 1 WHERE name = ?1")?
        .execute([name])?;
    if n == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

/// Resumes a paused schedule from its next boundary after now (fires missed
/// while paused are skipped). Resuming a running schedule changes nothing.
pub fn resume(conn: &Connection, name: &str, now: i64) -> Result<()> {
    atomic(conn, |conn| {
        let info = get(conn, name)?.ok_or_else(|| not_found(name))?;
        if !info.paused {
            return Ok(());
        }
        let next = cron::parse(&info.cron)?.next_after(now).unwrap_or(NEVER);
        conn.prepare_cached(
            "UPDATE _honker_schedules SET paused = 0, next_fire_at = ?2 WHERE name = ?1",
        )?
        .execute(params![name, next])?;
        Ok(())
    })
}

/// The next boundary after a fire at `boundary` observed at `now`: the next
/// cron time after now, or for `@every` the next multiple of the interval
/// from the boundary (so intervals do not drift).
pub fn following(schedule: &CronSchedule, boundary: i64, now: i64) -> i64 {
    match schedule.interval_ms() {
        Some(every) => {
            let steps = (now.saturating_sub(boundary)).div_euclid(every) + 1;
            boundary.saturating_add(steps.saturating_mul(every))
        }
        None => schedule.next_after(now).unwrap_or(NEVER),
    }
}

/// Enqueues one job for every unpaused schedule whose boundary is at or
/// before `now`, and moves each to its next boundary. All in one
/// transaction; each boundary fires exactly once even if several processes
/// tick at the same moment. A schedule whose fire fails (bad data stored by
/// an older version, say) does not stop the others: see [`tick_report`].
pub fn tick(conn: &Connection, now: i64) -> Result<Vec<Fired>> {
    tick_report(conn, now).map(|(fired, _)| fired)
}

/// [`tick`], also returning the fires that failed. Each fire runs in a
/// savepoint of its own: one that fails is undone, its schedule moves on to
/// its next boundary with `last_error` saying why, and the other schedules
/// fire.
pub fn tick_report(conn: &Connection, now: i64) -> Result<(Vec<Fired>, Vec<FireFailure>)> {
    atomic(conn, |conn| {
        let due: Vec<ScheduleInfo> = conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM _honker_schedules WHERE paused = 0 AND next_fire_at <= ?1 ORDER BY next_fire_at, name"
            ))?
            .query_map([now], info_row)?
            .collect::<rusqlite::Result<_>>()?;
        let mut fired = Vec::with_capacity(due.len());
        let mut failed = Vec::new();
        for s in due {
            match atomic(conn, |conn| fire(conn, &s, now)) {
                Ok(f) => fired.push(f),
                Err(error) => {
                    skip(conn, &s, now, &error)?;
                    failed.push(FireFailure {
                        name: s.name,
                        fire_at_ms: s.next_fire_at_ms,
                        error,
                    });
                }
            }
        }
        Ok((fired, failed))
    })
}

/// Makes one schedule's due fire: enqueues its job and moves it on.
fn fire(conn: &Connection, s: &ScheduleInfo, now: i64) -> Result<Fired> {
    let schedule = cron::parse(&s.cron)?;
    let expires = s
        .expires_ms
        .map(|ms| {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| Error::invalid("expires", format!("stored as {ms} ms")))
        })
        .transpose()?;
    let opts = EnqueueOpts {
        priority: s.priority,
        expires,
        key: Some(format!("schedule:{}:{}", s.name, s.next_fire_at_ms)),
        ..EnqueueOpts::default()
    };
    let job_id = queue::enqueue(conn, &s.queue, &s.payload, &opts, DEFAULT_MAX_ATTEMPTS, now)?;
    let next = following(&schedule, s.next_fire_at_ms, now);
    conn.prepare_cached(
        "UPDATE _honker_schedules SET next_fire_at = ?3, last_fire_at = ?4, last_error = NULL
         WHERE name = ?1 AND next_fire_at = ?2",
    )?
    .execute(params![s.name, s.next_fire_at_ms, next, now])?;
    Ok(Fired {
        name: s.name.clone(),
        queue: s.queue.clone(),
        job_id,
        fire_at_ms: s.next_fire_at_ms,
    })
}

/// Moves a schedule whose fire failed on to its next boundary (never, if
/// its expression no longer parses), recording why.
fn skip(conn: &Connection, s: &ScheduleInfo, now: i64, error: &Error) -> Result<()> {
    let next = cron::parse(&s.cron)
        .map(|c| following(&c, s.next_fire_at_ms, now))
        .unwrap_or(NEVER);
    conn.prepare_cached(
        "UPDATE _honker_schedules SET next_fire_at = ?3, last_error = ?4
         WHERE name = ?1 AND next_fire_at = ?2",
    )?
    .execute(params![
        s.name,
        s.next_fire_at_ms,
        next,
        format!("the fire at {} ms failed: {error}", s.next_fire_at_ms)
    ])?;
    Ok(())
}

/// [`tick_report`], but only while `token` holds the lock `lock_name`: a leader
/// whose lock lapsed (and may have passed to another process) fires
/// nothing. `None` when fenced off. Atomic.
pub fn tick_fenced(
    conn: &Connection,
    lock_name: &str,
    token: i64,
    now: i64,
) -> Result<Option<(Vec<Fired>, Vec<FireFailure>)>> {
    atomic(conn, |conn| {
        let holds: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM _honker_locks WHERE name = ?1 AND token = ?2 AND expires_at > ?3)",
            )?
            .query_row(params![lock_name, token, now], |r| r.get(0))?;
        if !holds {
            return Ok(None);
        }
        tick_report(conn, now).map(Some)
    })
}

/// The earliest next boundary of any unpaused schedule.
pub fn soonest(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT next_fire_at FROM _honker_schedules WHERE paused = 0 ORDER BY next_fire_at LIMIT 1",
        )?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
        .filter(|&t| t != NEVER))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn db() -> Connection {
        crate::store::sqlite::schema::test_db()
    }

    fn spec<'a>(name: &'a str, cron: &'a str) -> ScheduleSpec<'a> {
        ScheduleSpec {
            name,
            queue: "jobs",
            cron,
            tz: None,
            payload: r#"{"k":1}"#,
            priority: 3,
            expires: Some(Duration::from_secs(60)),
        }
    }

    #[test]
    fn tick_fires_each_boundary_once_with_one_catch_up() {
        let c = db();
        add(&c, &spec("hourly", "0 * * * *"), 10).unwrap();
        let first = get(&c, "hourly").unwrap().unwrap().next_fire_at_ms;
        assert_eq!(first, HOUR);
        assert!(tick(&c, HOUR - 1).unwrap().is_empty());
        let f = tick(&c, HOUR).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].fire_at_ms, HOUR);
        assert!(
            tick(&c, HOUR).unwrap().is_empty(),
            "same boundary never fires twice"
        );
        // Down for 5 hours: one catch-up fire, then the next boundary after now.
        let f = tick(&c, 6 * HOUR + 5).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            get(&c, "hourly").unwrap().unwrap().next_fire_at_ms,
            7 * HOUR
        );
        let job = queue::get_job(&c, f[0].job_id).unwrap().unwrap();
        assert_eq!(job.payload, r#"{"k":1}"#);
        assert_eq!(job.priority, 3);
        assert_eq!(job.expires_at_ms, Some(6 * HOUR + 5 + 60_000));
        assert_eq!(soonest(&c).unwrap(), Some(7 * HOUR));
    }

    #[test]
    fn re_adding_unchanged_keeps_next_fire() {
        let c = db();
        add(&c, &spec("d", "0 0 * * *"), 0).unwrap();
        let next = get(&c, "d").unwrap().unwrap().next_fire_at_ms;
        add(&c, &spec("d", "0 0 * * *"), 20 * HOUR).unwrap();
        assert_eq!(get(&c, "d").unwrap().unwrap().next_fire_at_ms, next);
        // Changing the payload keeps the time too; changing the cron moves it.
        let mut s = spec("d", "0 0 * * *");
        s.payload = "2";
        add(&c, &s, 20 * HOUR).unwrap();
        assert_eq!(get(&c, "d").unwrap().unwrap().next_fire_at_ms, next);
        add(&c, &spec("d", "0 23 * * *"), 20 * HOUR).unwrap();
        assert_eq!(get(&c, "d").unwrap().unwrap().next_fire_at_ms, 23 * HOUR);
    }

    #[test]
    fn pause_resume_remove_and_errors() {
        let c = db();
        add(&c, &spec("p", "@every 10s"), 0).unwrap();
        pause(&c, "p").unwrap();
        assert!(tick(&c, 100_000).unwrap().is_empty());
        resume(&c, "p", 100_000).unwrap();
        assert_eq!(get(&c, "p").unwrap().unwrap().next_fire_at_ms, 110_000);
        assert_eq!(tick(&c, 110_000).unwrap().len(), 1);
        // @every keeps its phase after a late tick.
        assert_eq!(tick(&c, 125_000).unwrap().len(), 1);
        assert_eq!(get(&c, "p").unwrap().unwrap().next_fire_at_ms, 130_000);
        assert!(remove(&c, "p").unwrap());
        assert!(!remove(&c, "p").unwrap());
        assert_eq!(pause(&c, "p").unwrap_err().code(), "not_found");
        assert_eq!(resume(&c, "p", 0).unwrap_err().code(), "not_found");
        assert_eq!(
            add(&c, &spec("x", "nope"), 0).unwrap_err().code(),
            "invalid_cron"
        );
        assert_eq!(
            add(&c, &spec("", "@daily"), 0).unwrap_err().code(),
            "invalid_argument"
        );
        let mut s = spec("x", "@daily");
        s.payload = "{bad";
        assert_eq!(add(&c, &s, 0).unwrap_err().code(), "invalid_json");
        assert!(
            list(&c).unwrap().is_empty(),
            "failed adds left nothing behind"
        );
    }

    #[test]
    fn a_schedule_that_cannot_fire_does_not_stop_the_others() {
        let c = db();
        add(&c, &spec("a-good", "@every 10s"), 0).unwrap();
        add(&c, &spec("z-good", "@every 10s"), 0).unwrap();
        add(&c, &spec("broken", "@every 10s"), 0).unwrap();
        // As an older version could have stored it: a name too long for
        // its fire's idempotency key.
        let long = "n".repeat(500);
        c.execute(
            "UPDATE _honker_schedules SET name = ?1 WHERE name = 'broken'",
            [&long],
        )
        .unwrap();
        let (fired, failed) = tick_report(&c, 10_000).unwrap();
        let names: Vec<&str> = fired.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a-good", "z-good"]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].name, long);
        assert_eq!(failed[0].fire_at_ms, 10_000);
        assert_eq!(failed[0].error.code(), "invalid_argument");
        let broken = get(&c, &long).unwrap().unwrap();
        assert_eq!(broken.next_fire_at_ms, 20_000, "moved on, not stuck");
        assert!(broken.last_error.unwrap().contains("`key`"));
        assert_eq!(queue::stats(&c, "jobs").unwrap().ready, 2);
        // A stored expression that no longer parses: never again, said why.
        c.execute(
            "UPDATE _honker_schedules SET cron = 'garbage' WHERE name = 'z-good'",
            [],
        )
        .unwrap();
        let (fired, failed) = tick_report(&c, 20_000).unwrap();
        assert_eq!(fired.len(), 1);
        let codes: Vec<(&str, &str)> = failed
            .iter()
            .map(|f| (&f.name[..1], f.error.code()))
            .collect();
        assert_eq!(codes, [("n", "invalid_argument"), ("z", "invalid_cron")]);
        assert_eq!(soonest(&c).unwrap(), Some(30_000));
        assert_eq!(get(&c, "a-good").unwrap().unwrap().last_error, None);
    }

    #[test]
    fn add_refuses_what_tick_cannot_fire() {
        let c = db();
        let e = add(&c, &spec(&"n".repeat(MAX_NAME_LEN + 1), "@daily"), 0).unwrap_err();
        assert_eq!(e.code(), "invalid_argument");
        assert!(e.to_string().contains("at most 480 bytes"), "{e}");
        add(&c, &spec(&"n".repeat(MAX_NAME_LEN), "@every 1s"), 0).unwrap();
        let mut s = spec("x", "@daily");
        s.expires = Some(Duration::from_secs(u64::MAX / 2));
        assert_eq!(add(&c, &s, 0).unwrap_err().code(), "invalid_argument");
        let e = add(
            &c,
            &spec("x", "* * * * *"),
            crate::validate::MAX_INSTANT_MS - 5,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_cron");
        let (fired, failed) = tick_report(&c, 1_000).unwrap();
        assert_eq!(
            (fired.len(), failed.len()),
            (1, 0),
            "the longest name fires"
        );
    }

    #[test]
    fn zone_argument_is_stored_in_the_expression() {
        let c = db();
        let mut s = spec("z", "0 9 * * *");
        s.tz = Some("Europe/Paris");
        add(&c, &s, 0).unwrap();
        let info = get(&c, "z").unwrap().unwrap();
        assert_eq!(info.cron, "CRON_TZ=Europe/Paris 0 9 * * *");
        assert_eq!(
            info.next_fire_at_ms,
            8 * HOUR,
            "09:00 in Paris is 08:00 UTC in January"
        );
    }
}
