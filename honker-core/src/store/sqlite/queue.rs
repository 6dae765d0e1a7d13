//! Durable job queues: enqueue, claim with a lease, ack, retry, fail to the
//! dead table, heartbeat, cancel, expiry and dead-letter requeue.
//!
//! A live job is in one of three states: `ready` (claimable now),
//! `scheduled` (its `run_at` is in the future) or `processing` (leased to a
//! worker until `lease_until`). Each state has its own partial index, so a
//! claim is a handful of index seeks whatever the depth of the queue, the
//! number of jobs in flight or the size of the dead table.
//!
//! Job ids are never reused (see the schema's high-water tombstone), so a
//! stale handle can never touch a newer job.
//!
//! A claim is a lease identified by `(id, worker, attempt)`. Ack, retry, fail
//! and heartbeat check all three and that the lease has not expired; if any
//! differs they change nothing and return `false`.

use super::conn::atomic;
use super::events::{self, Event, Kind};
use super::{controls, retention};
use crate::clock::duration_ms;
use crate::error::{Error, Result};
use crate::model::*;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::time::Duration;

pub(super) const LIVE_COLS: &str =
    "id, queue, payload, state, priority, run_at, attempts, max_attempts, \
     worker_id, lease_until, expires_at, idem_key, last_error, created_at, started_at";

pub(super) fn live_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        queue: r.get(1)?,
        payload: r.get(2)?,
        state: JobState::parse(&r.get::<_, String>(3)?),
        priority: r.get(4)?,
        run_at_ms: r.get(5)?,
        attempts: r.get(6)?,
        max_attempts: r.get(7)?,
        worker_id: r.get(8)?,
        lease_until_ms: r.get(9)?,
        expires_at_ms: r.get(10)?,
        key: r.get(11)?,
        last_error: r.get(12)?,
        created_at_ms: r.get(13)?,
        dead_reason: None,
        died_at_ms: None,
        started_at_ms: r.get(14)?,
        completed_at_ms: None,
        result: None,
    })
}

pub(super) const DEAD_COLS: &str =
    "id, queue, payload, priority, attempts, max_attempts, idem_key, \
     last_error, reason, created_at, died_at, started_at";

pub(super) fn dead_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let died_at: i64 = r.get(10)?;
    Ok(JobRecord {
        id: r.get(0)?,
        queue: r.get(1)?,
        payload: r.get(2)?,
        state: JobState::Dead,
        priority: r.get(3)?,
        run_at_ms: died_at,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        worker_id: None,
        lease_until_ms: None,
        expires_at_ms: None,
        key: r.get(6)?,
        last_error: r.get(7)?,
        created_at_ms: r.get(9)?,
        dead_reason: Some(r.get(8)?),
        died_at_ms: Some(died_at),
        started_at_ms: r.get(11)?,
        completed_at_ms: None,
        result: None,
    })
}

pub(super) const COMPLETED_COLS: &str =
    "id, queue, payload, priority, run_at, attempts, max_attempts, worker_id, idem_key, \
     last_error, result, created_at, started_at, completed_at";

pub(super) fn completed_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        queue: r.get(1)?,
        payload: r.get(2)?,
        state: JobState::Completed,
        priority: r.get(3)?,
        run_at_ms: r.get(4)?,
        attempts: r.get(5)?,
        max_attempts: r.get(6)?,
        worker_id: r.get(7)?,
        lease_until_ms: None,
        expires_at_ms: None,
        key: r.get(8)?,
        last_error: r.get(9)?,
        result: r.get(10)?,
        created_at_ms: r.get(11)?,
        started_at_ms: r.get(12)?,
        completed_at_ms: r.get(13)?,
        dead_reason: None,
        died_at_ms: None,
    })
}

struct NewJob {
    state: &'static str,
    run_at: i64,
    priority: i64,
    max_attempts: u32,
    expires_at: Option<i64>,
}

fn plan(queue: &str, opts: &EnqueueOpts, default_max_attempts: u32, now: i64) -> Result<NewJob> {
    validate::name("queue", queue)?;
    let run_at = match (opts.delay, opts.run_at) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "run_at",
                "give either `delay` or `run_at`, not both",
            ))
        }
        (Some(d), None) => validate::after("delay", now, validate::duration_ms("delay", d)?)?,
        (None, Some(t)) => validate::instant("run_at", t)?,
        (None, None) => now,
    };
    let max_attempts = opts.max_attempts.unwrap_or(default_max_attempts);
    if max_attempts == 0 {
        return Err(Error::invalid("max_attempts", "must be at least 1"));
    }
    let expires_at = match opts.expires {
        Some(d) if d.is_zero() => {
            return Err(Error::invalid("expires", "must be positive when given"))
        }
        Some(d) => Some(validate::after(
            "expires",
            run_at.max(now),
            validate::duration_ms("expires", d)?,
        )?),
        None => None,
    };
    if let Some(k) = &opts.key {
        validate::name("key", k)?;
    }
    Ok(NewJob {
        state: if run_at > now { "scheduled" } else { "ready" },
        run_at,
        priority: opts.priority,
        max_attempts,
        expires_at,
    })
}

fn insert(
    conn: &Connection,
    queue: &str,
    payload: &str,
    job: &NewJob,
    key: Option<&str>,
    now: i64,
) -> Result<i64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO _honker_live (queue, payload, state, priority, run_at, max_attempts, expires_at, idem_key, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(params![
        queue,
        payload,
        job.state,
        job.priority,
        job.run_at,
        job.max_attempts,
        job.expires_at,
        key,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// [`insert`] unless `queue` publishes lifecycle events: then nothing is
/// written and `None` is returned (the caller writes the row and its event
/// together). One statement, so in autocommit mode it needs no explicit
/// transaction: the common enqueue stays one statement.
fn insert_unless_events(
    conn: &Connection,
    queue: &str,
    payload: &str,
    job: &NewJob,
    now: i64,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO _honker_live (queue, payload, state, priority, run_at, max_attempts, expires_at, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
             WHERE NOT EXISTS (SELECT 1 FROM _honker_queues WHERE queue = ?1 AND events)
             RETURNING id",
        )?
        .query_row(
            params![
                queue,
                payload,
                job.state,
                job.priority,
                job.run_at,
                job.max_attempts,
                job.expires_at,
                now
            ],
            |r| r.get(0),
        )
        .optional()?)
}

fn live_id_with_key(conn: &Connection, queue: &str, key: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM _honker_live WHERE queue = ?1 AND idem_key = ?2")?
        .query_row(params![queue, key], |r| r.get(0))
        .optional()?)
}

/// Adds one job and returns its id (or, with an idempotency key that a live
/// job already holds, that job's id).
pub fn enqueue(
    conn: &Connection,
    queue: &str,
    payload: &str,
    opts: &EnqueueOpts,
    default_max_attempts: u32,
    now: i64,
) -> Result<i64> {
    let job = plan(queue, opts, default_max_attempts, now)?;
    validate::json("payload", payload)?;
    // With nothing but the row to write: one statement, no explicit
    // transaction (nor, inside the caller's, a savepoint, whose sub-journal
    // would copy every page the insert touches).
    if opts.key.is_none() {
        if let Some(id) = insert_unless_events(conn, queue, payload, &job, now)? {
            return Ok(id);
        }
    }
    atomic(conn, |conn| {
        if let Some(key) = &opts.key {
            if let Some(id) = live_id_with_key(conn, queue, key)? {
                return Ok(id);
            }
        }
        let id = insert(conn, queue, payload, &job, opts.key.as_deref(), now)?;
        if events::enabled(conn, queue)? {
            enqueued(conn, queue, id, payload, job.run_at, now)?;
        }
        Ok(id)
    })
}

/// The `enqueued` event of job `id`.
fn enqueued(
    conn: &Connection,
    queue: &str,
    id: i64,
    payload: &str,
    run_at: i64,
    now: i64,
) -> Result<()> {
    let task = events::task_of(payload);
    let mut e = Event::new(Kind::Enqueued, queue, id);
    e.task = task.as_deref();
    e.run_at_ms = Some(run_at);
    events::emit(conn, &e, now)
}

/// Adds several jobs with the same options in one transaction and returns
/// their ids in order. All or none are added.
pub fn enqueue_many<S: AsRef<str>>(
    conn: &Connection,
    queue: &str,
    payloads: &[S],
    opts: &EnqueueOpts,
    default_max_attempts: u32,
    now: i64,
) -> Result<Vec<i64>> {
    if opts.key.is_some() {
        return Err(Error::invalid(
            "key",
            "an idempotency key names one job; it cannot be shared by a batch",
        ));
    }
    let job = plan(queue, opts, default_max_attempts, now)?;
    for p in payloads {
        validate::json("payload", p.as_ref())?;
    }
    atomic(conn, |conn| {
        let ids = payloads
            .iter()
            .map(|p| insert(conn, queue, p.as_ref(), &job, None, now))
            .collect::<Result<Vec<i64>>>()?;
        if events::enabled(conn, queue)? {
            for (id, p) in ids.iter().zip(payloads) {
                enqueued(conn, queue, *id, p.as_ref(), job.run_at, now)?;
            }
        }
        Ok(ids)
    })
}

/// Moves a live job to the dead table with `reason`; `error` replaces the
/// job's last error when given.
fn bury(conn: &Connection, id: i64, reason: &str, error: Option<&str>, now: i64) -> Result<bool> {
    let buried: Option<(String, String, u32, Option<String>)> = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO _honker_dead (id, queue, payload, priority, attempts, max_attempts, idem_key, last_error, reason, created_at, died_at, started_at)
             SELECT id, queue, payload, priority, attempts, max_attempts, idem_key, coalesce(?3, last_error), ?2, created_at, ?4, started_at
             FROM _honker_live WHERE id = ?1
             RETURNING queue, payload, attempts, last_error",
        )?
        .query_row(params![id, reason, error, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    conn.prepare_cached("DELETE FROM _honker_live WHERE id = ?1")?
        .execute([id])?;
    keep_high_water(conn, id)?;
    let Some((queue, payload, attempts, last_error)) = buried else {
        return Ok(false);
    };
    retention::dead_added(conn, &queue, now)?;
    if events::enabled(conn, &queue)? {
        let task = events::task_of(&payload);
        let mut e = Event::new(Kind::Dead, &queue, id);
        e.task = task.as_deref();
        e.attempt = Some(attempts);
        e.reason = Some(reason);
        e.error = last_error.as_deref();
        events::emit(conn, &e, now)?;
    }
    Ok(true)
}

/// Job ids are never reused: a new row gets the largest id plus one, so
/// the row with the largest id must never really go. Every deletion from
/// `_honker_live` ends here, in its transaction, with the largest id it
/// deleted: if no row at or above it is left, a tombstone (state 'done', in
/// no index) takes that id back. The next insert gets a higher id and its
/// trigger removes the tombstone. One seek when nothing is needed.
///
/// This is engine code, not an `AFTER DELETE` trigger: a trigger made each
/// ack keep a statement journal (a copy of every page it touched) and ran
/// once per row, where a batch needs one check.
fn keep_high_water(conn: &Connection, deleted: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO _honker_live (id, queue, payload, state, run_at, max_attempts, created_at)
         SELECT ?1, '', 'null', 'done', 0, 0, 0
         WHERE NOT EXISTS (SELECT 1 FROM _honker_live WHERE id >= ?1)",
    )?
    .execute([deleted])?;
    Ok(())
}

/// Is anything due in queue ?1 at ?2: a delayed job, an expired lease, or
/// a job past its start deadline? Three seeks in the partial indexes.
const DUE_PROBE: &str = "SELECT EXISTS (SELECT 1 FROM _honker_live
                    WHERE queue = ?1 AND state = 'scheduled' AND run_at <= ?2)
         OR EXISTS (SELECT 1 FROM _honker_live
                    WHERE queue = ?1 AND state = 'processing' AND lease_until <= ?2)
         OR EXISTS (SELECT 1 FROM _honker_live
                    WHERE queue = ?1 AND expires_at IS NOT NULL AND state <> 'processing'
                      AND expires_at <= ?2)";

/// Makes due work claimable: promotes scheduled jobs whose time has come,
/// takes back expired leases (dead-lettering jobs that are out of attempts)
/// and dead-letters jobs past their start deadline. Runs at the start of
/// every claim; each step is one index seek when there is nothing to do.
fn make_due(conn: &Connection, queue: &str, publish: bool, now: i64) -> Result<()> {
    // Usually there is nothing to do. One read-only probe (three index
    // seeks) is much cheaper than three writing statements, each of which
    // opens cursors on the table and every index even when it matches no row.
    let due: bool = conn
        .prepare_cached(DUE_PROBE)?
        .query_row(params![queue, now], |r| r.get(0))?;
    if !due {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE _honker_live SET state = 'ready'
         WHERE queue = ?1 AND state = 'scheduled' AND run_at <= ?2",
    )?
    .execute(params![queue, now])?;

    let reclaimed: Vec<(i64, u32, u32, String, String)> = conn
        .prepare_cached(
            "UPDATE _honker_live
             SET state = 'ready', worker_id = NULL, lease_until = NULL,
                 last_error = 'lease expired (worker ' || worker_id || ', attempt ' || attempts || ')'
             WHERE queue = ?1 AND state = 'processing' AND lease_until <= ?2
             RETURNING id, attempts, max_attempts, last_error, payload",
        )?
        .query_map(params![queue, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, attempts, max, error, payload) in reclaimed {
        if publish {
            let task = events::task_of(&payload);
            let mut e = Event::new(Kind::Failed, queue, id);
            e.task = task.as_deref();
            e.attempt = Some(attempts);
            e.error = Some(&error);
            events::emit(conn, &e, now)?;
            if attempts < max {
                let mut e = Event::new(Kind::Retried, queue, id);
                e.task = task.as_deref();
                e.attempt = Some(attempts);
                e.run_at_ms = Some(now);
                events::emit(conn, &e, now)?;
            }
        }
        if attempts >= max {
            bury(conn, id, "lease_expired", None, now)?;
        }
    }

    let expired: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM _honker_live
             WHERE queue = ?1 AND expires_at IS NOT NULL AND state <> 'processing' AND expires_at <= ?2",
        )?
        .query_map(params![queue, now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in expired {
        bury(
            conn,
            id,
            "expired",
            Some("expired before a worker started it"),
            now,
        )?;
    }
    Ok(())
}

/// The end of a lease of `length` from `now`: positive, and before the
/// year 9999.
fn lease_end(what: &'static str, length: Duration, now: i64) -> Result<i64> {
    validate::after(
        what,
        now,
        validate::positive_ms(what, validate::duration_ms(what, length)?)?,
    )
}

/// Claims up to `n` due jobs for `worker`, best first (higher priority, then
/// earlier `run_at`, then lower id), leasing each for `visibility_timeout`.
/// Every claim counts as an attempt.
pub fn claim(
    conn: &Connection,
    queue: &str,
    worker: &str,
    n: usize,
    visibility_timeout: Duration,
    now: i64,
) -> Result<Vec<JobRecord>> {
    validate::name("queue", queue)?;
    validate::name("worker", worker)?;
    if n == 0 {
        return Err(Error::invalid("n", "must be at least 1"));
    }
    let lease_until = lease_end("visibility_timeout", visibility_timeout, now)?;
    atomic(conn, |conn| {
        claim_in(conn, queue, worker, n, lease_until, now)
    })
}

/// [`claim`]'s work, its arguments checked, inside the caller's atomic
/// section (a nested one would be a savepoint, whose sub-journal copies
/// every page the claim touches).
fn claim_in(
    conn: &Connection,
    queue: &str,
    worker: &str,
    n: usize,
    lease_until: i64,
    now: i64,
) -> Result<Vec<JobRecord>> {
    // The queue's controls first: paused, at its limit or out of its rate,
    // nothing to do.
    let gate = controls::gate(conn, queue, n, now)?;
    let n = gate.take;
    if n == 0 {
        return Ok(Vec::new());
    }
    make_due(conn, queue, gate.events, now)?;
    // `id = (…)` for one job avoids the ephemeral table `IN (…)` builds.
    // `LIMIT ?4 + 0`, not `LIMIT ?4`: SQLite's planner reads the value
    // bound to a bare LIMIT parameter, which marks the statement to be
    // prepared again each time that parameter is bound: a parse and a
    // plan per claim (a third of a batched worker's time, measured).
    // Every `LIMIT ?` of the engine is written so, for the same reason.
    // The row's queue, state, worker and lease are what this statement
    // sets: they are filled in here, not read back.
    let pick = if n == 1 { "=" } else { "IN" };
    let mut jobs: Vec<JobRecord> = conn
        .prepare_cached(&format!(
            "UPDATE _honker_live
                 SET state = 'processing', worker_id = ?2, lease_until = ?3, attempts = attempts + 1,
                     started_at = ?5
                 WHERE id {pick} (SELECT id FROM _honker_live WHERE queue = ?1 AND state = 'ready'
                                  ORDER BY priority DESC, run_at, id LIMIT ?4 + 0)
                 RETURNING id, payload, priority, run_at, attempts, max_attempts,
                           expires_at, idem_key, last_error, created_at"
        ))?
        .query_map(params![queue, worker, lease_until, n as i64, now], |r| {
            Ok(JobRecord {
                id: r.get(0)?,
                queue: queue.to_string(),
                payload: r.get(1)?,
                state: JobState::Processing,
                priority: r.get(2)?,
                run_at_ms: r.get(3)?,
                attempts: r.get(4)?,
                max_attempts: r.get(5)?,
                worker_id: Some(worker.to_string()),
                lease_until_ms: Some(lease_until),
                expires_at_ms: r.get(6)?,
                key: r.get(7)?,
                last_error: r.get(8)?,
                created_at_ms: r.get(9)?,
                dead_reason: None,
                died_at_ms: None,
                started_at_ms: Some(now),
                completed_at_ms: None,
                result: None,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at_ms.cmp(&b.run_at_ms))
            .then(a.id.cmp(&b.id))
    });
    controls::record(conn, queue, gate, jobs.len())?;
    if gate.events {
        for j in &jobs {
            let task = events::task_of(&j.payload);
            let mut e = Event::new(Kind::Started, queue, j.id);
            e.task = task.as_deref();
            e.attempt = Some(j.attempts);
            e.worker = Some(worker);
            events::emit(conn, &e, now)?;
        }
    }
    Ok(jobs)
}

const ACK: &str = "DELETE FROM _honker_live
     WHERE id = ?1 AND state = 'processing' AND worker_id = ?2 AND attempts = ?3 AND lease_until > ?4";

/// The acks of one transaction. Each deletes its job if its lease is
/// still current, first copying it to the completed table when its queue
/// keeps finished jobs (asked once per transaction: with no such queue an
/// ack is one indexed delete). [`Acks::finish`] then keeps the high-water
/// mark and counts and prunes what was kept.
struct Acks {
    keep: bool,
    acked: usize,
    highest: Option<i64>,
    /// Each queue acked from while `keep`, how it keeps its finished jobs
    /// (`None`: it does not) and whether it publishes events.
    kept: Vec<(String, Option<retention::Keeping>, bool)>,
}

impl Acks {
    fn start(conn: &Connection) -> Result<Acks> {
        Ok(Acks {
            keep: retention::any_history(conn)?,
            acked: 0,
            highest: None,
            kept: Vec::new(),
        })
    }

    /// Acks the job of `lease` (with `result` to keep with it, if its
    /// queue keeps finished jobs); whether the lease was current.
    fn ack(
        &mut self,
        conn: &Connection,
        lease: Lease<'_>,
        result: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let took = if self.keep {
            match retention::delete_returning(conn, lease, now)? {
                None => false,
                Some(job) => {
                    let i = match self.kept.iter().position(|(q, _, _)| q == job.queue()) {
                        Some(i) => i,
                        None => {
                            let (keeping, publish) = retention::history(conn, job.queue())?;
                            self.kept.push((job.queue().to_string(), keeping, publish));
                            self.kept.len() - 1
                        }
                    };
                    let (_, keeping, publish) = &mut self.kept[i];
                    if let Some(keeping) = keeping {
                        retention::keep_completed(conn, keeping, lease.id, &job, result, now)?;
                    }
                    if *publish {
                        let task = events::task_of(job.payload());
                        let mut e = Event::new(Kind::Completed, job.queue(), lease.id);
                        e.task = task.as_deref();
                        e.attempt = Some(job.attempts());
                        e.worker = job.worker();
                        events::emit(conn, &e, now)?;
                    }
                    true
                }
            }
        } else {
            conn.prepare_cached(ACK)?.execute(params![
                lease.id,
                lease.worker,
                lease.attempt,
                now
            ])? == 1
        };
        if took {
            self.acked += 1;
            self.highest = self.highest.max(Some(lease.id));
        }
        Ok(took)
    }

    /// How many were acked.
    fn finish(self, conn: &Connection, now: i64) -> Result<usize> {
        if let Some(id) = self.highest {
            keep_high_water(conn, id)?;
        }
        for (queue, keeping, _) in &self.kept {
            if let Some(keeping) = keeping {
                retention::completed_added(conn, queue, keeping, now)?;
            }
        }
        Ok(self.acked)
    }
}

/// Completes a job: deletes it (or, if its queue keeps finished jobs, moves
/// it to the completed table) if `lease` is still current.
pub fn ack(conn: &Connection, lease: Lease<'_>, now: i64) -> Result<bool> {
    atomic(conn, |conn| {
        let mut acks = Acks::start(conn)?;
        acks.ack(conn, lease, None, now)?;
        Ok(acks.finish(conn, now)? == 1)
    })
}

/// Completes every job whose lease in `leases` is still current, each
/// checked exactly as [`ack`] checks one (id, worker, attempt, unexpired),
/// so a worker whose lease lapsed and was taken over, even by a worker of
/// the same name, acks nothing. Returns how many were acked. Atomic.
pub fn ack_batch(conn: &Connection, leases: &[Lease<'_>], now: i64) -> Result<usize> {
    atomic(conn, |conn| {
        let mut acks = Acks::start(conn)?;
        for l in leases {
            acks.ack(conn, *l, None, now)?;
        }
        acks.finish(conn, now)
    })
}

/// [`ack`] of each job done (saving its result with it when the ack
/// takes), then [`claim`] of up to `op.n` jobs, in one transaction: a
/// worker's per-job path costs one commit. The claim happens whether or
/// not the acks took (the worker's slots are free either way).
pub fn ack_and_claim(
    conn: &Connection,
    op: &AckAndClaim<'_>,
    now: i64,
) -> Result<(usize, Vec<JobRecord>)> {
    // A bad claim argument fails before anything is written, a bad result
    // inside: the acks are undone with it.
    validate::name("queue", op.queue)?;
    validate::name("worker", op.worker)?;
    let lease_until = lease_end("visibility_timeout", op.visibility_timeout, now)?;
    atomic(conn, |conn| {
        let mut acks = Acks::start(conn)?;
        for d in op.done {
            let value = d.result.map(|(value, _)| value);
            if acks.ack(conn, d.lease, value, now)? {
                if let Some((value, ttl_ms)) = d.result {
                    super::result::store(conn, d.lease.id, value, ttl_ms, now)?;
                }
            }
        }
        let acked = acks.finish(conn, now)?;
        let jobs = match op.n {
            0 => Vec::new(),
            n => claim_in(conn, op.queue, op.worker, n, lease_until, now)?,
        };
        Ok((acked, jobs))
    })
}

/// A job a current lease holds, as its retry or failure needs it.
struct Held {
    attempts: u32,
    max_attempts: u32,
    queue: String,
    /// Whether its queue publishes lifecycle events.
    publish: bool,
    /// The task its payload names, when `publish`.
    task: Option<String>,
}

fn holds(conn: &Connection, lease: Lease<'_>, now: i64) -> Result<Option<Held>> {
    let held = conn
        .prepare_cached(
            "SELECT attempts, max_attempts, queue, payload FROM _honker_live
             WHERE id = ?1 AND state = 'processing' AND worker_id = ?2 AND attempts = ?3 AND lease_until > ?4",
        )?
        .query_row(params![lease.id, lease.worker, lease.attempt, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
        })
        .optional()?;
    let Some((attempts, max_attempts, queue, payload)) = held else {
        return Ok(None);
    };
    let publish = events::enabled(conn, &queue)?;
    Ok(Some(Held {
        attempts,
        max_attempts,
        task: publish.then(|| events::task_of(&payload)).flatten(),
        queue,
        publish,
    }))
}

/// The `failed` event of the job of `lease`, whose attempt ended in `error`.
fn failed(conn: &Connection, held: &Held, lease: Lease<'_>, error: &str, now: i64) -> Result<()> {
    if !held.publish {
        return Ok(());
    }
    let mut e = Event::new(Kind::Failed, &held.queue, lease.id);
    e.task = held.task.as_deref();
    e.attempt = Some(held.attempts);
    e.worker = Some(lease.worker);
    e.error = Some(error);
    events::emit(conn, &e, now)
}

/// Publishes `kind` for job `id` (given back by `worker`, due at `run_at`)
/// when `queue` publishes events; `payload` names its task.
#[allow(clippy::too_many_arguments)]
fn given_back(
    conn: &Connection,
    kind: Kind,
    queue: &str,
    id: i64,
    payload: &str,
    attempt: u32,
    worker: &str,
    run_at: i64,
    now: i64,
) -> Result<()> {
    if !events::enabled(conn, queue)? {
        return Ok(());
    }
    let task = events::task_of(payload);
    let mut e = Event::new(kind, queue, id);
    e.task = task.as_deref();
    e.attempt = Some(attempt);
    e.worker = Some(worker);
    e.run_at_ms = Some(run_at);
    events::emit(conn, &e, now)
}

/// The default retry delay after attempt `attempt` (1-based): exponential
/// (1 s, 2 s, 4 s … capped at [`MAX_BACKOFF`]) with equal jitter, i.e. a
/// uniformly random point in the upper half of that step.
pub fn default_backoff(attempt: u32, seed: u64) -> Duration {
    let step_ms = 1000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(32))
        .min(MAX_BACKOFF.as_millis() as u64);
    let half = step_ms / 2;
    // splitmix64: a good spread from a cheap seed.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Duration::from_millis(half + z % (half + 1))
}

/// Gives a job back for another attempt after `delay` (default:
/// [`default_backoff`]), recording `error`. A job that has used all its
/// attempts goes to the dead table (reason `max_attempts`) instead.
/// Returns false, changing nothing, if `lease` is not current.
pub fn retry(
    conn: &Connection,
    lease: Lease<'_>,
    delay: Option<Duration>,
    error: &str,
    now: i64,
) -> Result<bool> {
    let delay = delay
        .map(|d| validate::after("delay", now, validate::duration_ms("delay", d)?))
        .transpose()?;
    atomic(conn, |conn| {
        let Some(held) = holds(conn, lease, now)? else {
            return Ok(false);
        };
        failed(conn, &held, lease, error, now)?;
        let attempts = held.attempts;
        if attempts >= held.max_attempts {
            return bury(conn, lease.id, "max_attempts", Some(error), now);
        }
        let run_at = delay.unwrap_or_else(|| {
            let backoff =
                default_backoff(attempts, (lease.id as u64) ^ (now as u64).rotate_left(17));
            now.saturating_add(duration_ms(backoff))
        });
        let state = if run_at > now { "scheduled" } else { "ready" };
        conn.prepare_cached(
            "UPDATE _honker_live
             SET state = ?2, run_at = ?3, worker_id = NULL, lease_until = NULL, last_error = ?4
             WHERE id = ?1",
        )?
        .execute(params![lease.id, state, run_at, error])?;
        if held.publish {
            let mut e = Event::new(Kind::Retried, &held.queue, lease.id);
            e.task = held.task.as_deref();
            e.attempt = Some(attempts);
            e.worker = Some(lease.worker);
            e.run_at_ms = Some(run_at);
            events::emit(conn, &e, now)?;
        }
        Ok(true)
    })
}

/// Gives a claimed job back as if this claim had not happened: ready again
/// at once, in its old place, and the attempt the claim counted is not
/// counted. For a worker that will not start a job it holds (a cancelled
/// wait, a shutdown). Returns false, changing nothing, if `lease` is not
/// current.
pub fn release(conn: &Connection, lease: Lease<'_>, now: i64) -> Result<bool> {
    give_back(conn, lease, None, now)
}

/// Gives a claimed job back like [`release`] (the attempt not counted),
/// due again only `delay` from now. Returns false, changing nothing, if
/// `lease` is not current.
pub fn defer(conn: &Connection, lease: Lease<'_>, delay: Duration, now: i64) -> Result<bool> {
    let run_at = validate::after("delay", now, validate::duration_ms("delay", delay)?)?;
    give_back(conn, lease, Some(run_at), now)
}

/// Gives the job of `lease` back, the attempt its claim counted not
/// counted: due at `run_at`, or (`None`) at its old `run_at`, in its old
/// place. Its `released` event, when its queue publishes events.
fn give_back(conn: &Connection, lease: Lease<'_>, run_at: Option<i64>, now: i64) -> Result<bool> {
    atomic(conn, |conn| {
        let back: Option<(String, String, i64)> = conn
            .prepare_cached(
                "UPDATE _honker_live
                 SET state = CASE WHEN ?5 > ?4 THEN 'scheduled' ELSE 'ready' END,
                     run_at = coalesce(?5, run_at), worker_id = NULL, lease_until = NULL,
                     attempts = attempts - 1
                 WHERE id = ?1 AND state = 'processing' AND worker_id = ?2 AND attempts = ?3 AND lease_until > ?4
                 RETURNING queue, payload, run_at",
            )?
            .query_row(
                params![lease.id, lease.worker, lease.attempt, now, run_at],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((queue, payload, run_at)) = back else {
            return Ok(false);
        };
        given_back(
            conn,
            Kind::Released,
            &queue,
            lease.id,
            &payload,
            lease.attempt,
            lease.worker,
            run_at,
            now,
        )?;
        Ok(true)
    })
}

/// Sends a job straight to the dead table (reason `failed`) with `error`.
/// Returns false, changing nothing, if `lease` is not current.
pub fn fail(conn: &Connection, lease: Lease<'_>, error: &str, now: i64) -> Result<bool> {
    atomic(conn, |conn| {
        let Some(held) = holds(conn, lease, now)? else {
            return Ok(false);
        };
        failed(conn, &held, lease, error, now)?;
        bury(conn, lease.id, "failed", Some(error), now)
    })
}

/// Extends a lease to `extend` from now. Returns false if it is not current.
pub fn heartbeat(conn: &Connection, lease: Lease<'_>, extend: Duration, now: i64) -> Result<bool> {
    let until = lease_end("extend", extend, now)?;
    let n = conn
        .prepare_cached(
            "UPDATE _honker_live SET lease_until = ?5
             WHERE id = ?1 AND state = 'processing' AND worker_id = ?2 AND attempts = ?3 AND lease_until > ?4",
        )?
        .execute(params![lease.id, lease.worker, lease.attempt, now, until])?;
    Ok(n == 1)
}

/// Removes a live job, whatever its state. A worker holding it then finds
/// its ack, retry, fail and heartbeat refused. Returns false if there was no
/// such live job.
pub fn cancel(conn: &Connection, id: i64, now: i64) -> Result<bool> {
    Ok(cancel_many(conn, &[id], now)? == 1)
}

/// Deletes the live job `id` (not the tombstone); its queue and payload if
/// there was one. The caller keeps the high-water mark.
fn delete_live(conn: &Connection, id: i64) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM _honker_live WHERE id = ?1 AND state <> 'done' RETURNING queue, payload",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The `cancelled` events of jobs removed, `(id, queue, payload)` each,
/// for those whose queue publishes events.
fn cancelled(conn: &Connection, gone: &[(i64, String, String)], now: i64) -> Result<()> {
    let mut publishes: Vec<(&str, bool)> = Vec::new();
    for (id, queue, payload) in gone {
        let publish = match publishes.iter().find(|(q, _)| q == queue) {
            Some(&(_, p)) => p,
            None => {
                let p = events::enabled(conn, queue)?;
                publishes.push((queue, p));
                p
            }
        };
        if publish {
            let task = events::task_of(payload);
            let mut e = Event::new(Kind::Cancelled, queue, *id);
            e.task = task.as_deref();
            events::emit(conn, &e, now)?;
        }
    }
    Ok(())
}

/// Deletes every ready job of `queue` (claimable at `now`, delayed ones
/// whose time has come included; not those still scheduled for later, nor
/// those a worker holds) and returns how many. For an operator clearing a
/// backlog: the jobs are gone, not dead-lettered.
pub fn purge(conn: &Connection, queue: &str, now: i64) -> Result<usize> {
    validate::name("queue", queue)?;
    atomic(conn, |conn| {
        let gone: Vec<(i64, String, String)> = conn
            .prepare_cached(
                "DELETE FROM _honker_live WHERE queue = ?1 \
                 AND (state = 'ready' OR (state = 'scheduled' AND run_at <= ?2)) RETURNING id, queue, payload",
            )?
            .query_map(params![queue, now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(id) = gone.iter().map(|g| g.0).max() {
            keep_high_water(conn, id)?;
        }
        cancelled(conn, &gone, now)?;
        Ok(gone.len())
    })
}

/// Looks a job up by id in the live table, then the dead table, then the
/// completed jobs its queue keeps.
pub fn get_job(conn: &Connection, id: i64) -> Result<Option<JobRecord>> {
    if let Some(j) = conn
        .prepare_cached(&format!(
            "SELECT {LIVE_COLS} FROM _honker_live WHERE id = ?1 AND state <> 'done'"
        ))?
        .query_row([id], live_row)
        .optional()?
    {
        return Ok(Some(j));
    }
    if let Some(j) = conn
        .prepare_cached(&format!(
            "SELECT {DEAD_COLS} FROM _honker_dead WHERE id = ?1"
        ))?
        .query_row([id], dead_row)
        .optional()?
    {
        return Ok(Some(j));
    }
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COMPLETED_COLS} FROM _honker_completed WHERE id = ?1"
        ))?
        .query_row([id], completed_row)
        .optional()?)
}

/// The most recently dead jobs of `queue`, newest first.
pub fn dead_jobs(conn: &Connection, queue: &str, limit: usize) -> Result<Vec<JobRecord>> {
    validate::name("queue", queue)?;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEAD_COLS} FROM _honker_dead WHERE queue = ?1 ORDER BY died_at DESC, id DESC LIMIT ?2 + 0"
        ))?
        .query_map(params![queue, limit as i64], dead_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Puts back every dead job of `queue` (only those dead for `reason`, if
/// given), each as [`requeue_dead`] puts back one. A job whose idempotency
/// key a live job holds stays dead. Returns how many. Atomic.
pub fn requeue_dead_all(
    conn: &Connection,
    queue: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<usize> {
    validate::name("queue", queue)?;
    atomic(conn, |conn| {
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM _honker_dead WHERE queue = ?1 AND (?2 IS NULL OR reason = ?2)
                 ORDER BY id",
            )?
            .query_map(params![queue, reason], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for id in ids {
            match requeue_dead(conn, id, now) {
                Ok(()) => n += 1,
                Err(Error::InvalidArgument { .. }) => {} // its key is taken
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    })
}

/// Removes each live job of `ids`, whatever its state (as [`cancel`]
/// removes one); returns how many were removed. Atomic.
pub fn cancel_many(conn: &Connection, ids: &[i64], now: i64) -> Result<usize> {
    atomic(conn, |conn| {
        let mut gone = Vec::new();
        for &id in ids {
            if let Some((queue, payload)) = delete_live(conn, id)? {
                gone.push((id, queue, payload));
            }
        }
        if let Some(id) = gone.iter().map(|g| g.0).max() {
            keep_high_water(conn, id)?;
        }
        cancelled(conn, &gone, now)?;
        Ok(gone.len())
    })
}

/// Deletes each dead job of `ids` for good (an operator discarding what
/// will not be retried); how many there were. Atomic.
pub fn discard_dead(conn: &Connection, ids: &[i64]) -> Result<usize> {
    atomic(conn, |conn| {
        let mut n = 0;
        for &id in ids {
            let queue: Option<String> = conn
                .prepare_cached("DELETE FROM _honker_dead WHERE id = ?1 RETURNING queue")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            if let Some(queue) = queue {
                retention::dead_removed(conn, &queue, 1)?;
                n += 1;
            }
        }
        Ok(n)
    })
}

/// Puts a dead job back in its queue, ready now, with a fresh attempt budget
/// and the same id. Atomic.
pub fn requeue_dead(conn: &Connection, id: i64, now: i64) -> Result<()> {
    atomic(conn, |conn| {
        let found: Option<(String, Option<String>)> = conn
            .prepare_cached("SELECT queue, idem_key FROM _honker_dead WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((queue, key)) = found else {
            return Err(Error::NotFound {
                kind: "dead job",
                id: id.to_string(),
            });
        };
        if let Some(key) = key {
            if let Some(other) = live_id_with_key(conn, &queue, &key)? {
                return Err(Error::invalid(
                    "id",
                    format!("live job {other} already holds idempotency key {key:?}"),
                ));
            }
        }
        conn.prepare_cached(
            "INSERT INTO _honker_live (id, queue, payload, state, priority, run_at, attempts, max_attempts, idem_key, last_error, created_at)
             SELECT id, queue, payload, 'ready', priority, ?2, 0, max_attempts, idem_key, last_error, created_at
             FROM _honker_dead WHERE id = ?1
             -- The job may have been the newest: its id is then held by the
             -- high-water tombstone, which becomes the job again.
             ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, payload = excluded.payload,
                 state = 'ready', priority = excluded.priority, run_at = excluded.run_at, attempts = 0,
                 max_attempts = excluded.max_attempts, worker_id = NULL, lease_until = NULL,
                 expires_at = NULL, idem_key = excluded.idem_key, last_error = excluded.last_error,
                 created_at = excluded.created_at
             WHERE _honker_live.state = 'done'",
        )?
        .execute(params![id, now])?;
        conn.prepare_cached("DELETE FROM _honker_dead WHERE id = ?1")?
            .execute([id])?;
        retention::dead_removed(conn, &queue, 1)?;
        if events::enabled(conn, &queue)? {
            let payload: String = conn
                .prepare_cached("SELECT payload FROM _honker_live WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?;
            enqueued(conn, &queue, id, &payload, now, now)?;
        }
        Ok(())
    })
}

/// Dead-letters every job (of `queue`, or of all queues) whose start
/// deadline has passed. Claims do this for their own queue on the way; this
/// is for queues nobody is claiming from. Returns how many moved.
pub fn sweep_expired(conn: &Connection, queue: Option<&str>, now: i64) -> Result<usize> {
    atomic(conn, |conn| {
        let ids: Vec<i64> = match queue {
            Some(q) => conn
                .prepare_cached(
                    "SELECT id FROM _honker_live
                     WHERE queue = ?1 AND expires_at IS NOT NULL AND state <> 'processing' AND expires_at <= ?2",
                )?
                .query_map(params![q, now], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            None => conn
                .prepare_cached(
                    "SELECT id FROM _honker_live
                     WHERE expires_at IS NOT NULL AND state <> 'processing' AND expires_at <= ?1",
                )?
                .query_map(params![now], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
        };
        for &id in &ids {
            bury(
                conn,
                id,
                "expired",
                Some("expired before a worker started it"),
                now,
            )?;
        }
        Ok(ids.len())
    })
}

/// A cheap read: is anything claimable in `queue` at `now`? Lets a woken
/// worker skip the write lock when a commit was not for it. Never while
/// the queue is paused or at its limit of jobs in flight.
pub fn has_due(conn: &Connection, queue: &str, now: i64) -> Result<bool> {
    if controls::gate(conn, queue, 1, now)?.take == 0 {
        return Ok(false);
    }
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM _honker_live WHERE queue = ?1 AND state = 'ready')
                 OR EXISTS (SELECT 1 FROM _honker_live WHERE queue = ?1 AND state = 'scheduled' AND run_at <= ?2)
                 OR EXISTS (SELECT 1 FROM _honker_live WHERE queue = ?1 AND state = 'processing' AND lease_until <= ?2)",
        )?
        .query_row(params![queue, now], |r| r.get(0))?)
}

/// The earliest future moment something in `queue` becomes claimable: a
/// scheduled job's `run_at` or a lease's end. `None` if nothing is pending
/// or the queue is paused (only a resume, a commit, makes anything so).
pub fn next_deadline(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    match controls::held_back(conn, queue)? {
        // Nothing becomes claimable until it is resumed: a commit.
        controls::HeldBack::Paused => return Ok(None),
        // Out of its rate: nothing is claimable before the next window.
        controls::HeldBack::Until(t) => return Ok(Some(t)),
        controls::HeldBack::No => {}
    }
    Ok(conn
        .prepare_cached(
            "SELECT min(t) FROM (
                 SELECT (SELECT run_at FROM _honker_live WHERE queue = ?1 AND state = 'scheduled'
                         ORDER BY run_at LIMIT 1) AS t
                 UNION ALL
                 SELECT (SELECT lease_until FROM _honker_live WHERE queue = ?1 AND state = 'processing'
                         ORDER BY lease_until LIMIT 1))",
        )?
        .query_row([queue], |r| r.get(0))?)
}

/// Counts of `queue`'s jobs by state.
pub fn stats(conn: &Connection, queue: &str) -> Result<QueueStats> {
    validate::name("queue", queue)?;
    let count = |sql: &str| -> Result<u64> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row([queue], |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(QueueStats {
        ready: count("SELECT COUNT(*) FROM _honker_live WHERE queue = ?1 AND state = 'ready'")?,
        scheduled: count(
            "SELECT COUNT(*) FROM _honker_live WHERE queue = ?1 AND state = 'scheduled'",
        )?,
        processing: count(
            "SELECT COUNT(*) FROM _honker_live WHERE queue = ?1 AND state = 'processing'",
        )?,
        dead: count("SELECT COUNT(*) FROM _honker_dead WHERE queue = ?1")?,
        completed: count("SELECT COUNT(*) FROM _honker_completed WHERE queue = ?1")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    const VT: Duration = Duration::from_secs(30);

    fn db() -> Connection {
        crate::store::sqlite::schema::test_db()
    }

    fn put(c: &Connection, payload: &str, opts: EnqueueOpts, now: i64) -> i64 {
        enqueue(c, "q", payload, &opts, DEFAULT_MAX_ATTEMPTS, now).unwrap()
    }

    fn claim1(c: &Connection, worker: &str, now: i64) -> Option<JobRecord> {
        claim(c, "q", worker, 1, VT, now).unwrap().pop()
    }

    #[test]
    fn a_claimed_record_is_the_row_as_stored() {
        let c = db();
        let opts = EnqueueOpts {
            priority: 3,
            key: Some("k".into()),
            expires: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        put(&c, "{\"a\":1}", opts.clone(), 100);
        put(&c, "2", EnqueueOpts::default(), 100);
        for batch in [1, 2] {
            let jobs = claim(&c, "q", "w", batch, VT, 200).unwrap();
            assert!(!jobs.is_empty());
            for j in jobs {
                assert_eq!(
                    Some(&j),
                    get_job(&c, j.id).unwrap().as_ref(),
                    "batch {batch}"
                );
                assert_eq!(
                    (j.state, j.worker_id.as_deref()),
                    (JobState::Processing, Some("w"))
                );
                assert!(release(&c, j.lease(), 200).unwrap());
            }
        }
    }

    #[test]
    fn claim_order_is_priority_then_run_at_then_id() {
        let c = db();
        let a = put(&c, "1", EnqueueOpts::default(), 100);
        let b = put(
            &c,
            "2",
            EnqueueOpts {
                priority: 5,
                ..Default::default()
            },
            100,
        );
        let d = put(
            &c,
            "3",
            EnqueueOpts {
                run_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(50)),
                ..Default::default()
            },
            100,
        );
        let e = put(&c, "4", EnqueueOpts::default(), 100);
        let order: Vec<i64> = claim(&c, "q", "w", 10, VT, 200)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(order, vec![b, d, a, e]);
        assert!(
            claim(&c, "other", "w", 10, VT, 200).unwrap().is_empty(),
            "queues are separate"
        );
    }

    #[test]
    fn delayed_job_becomes_claimable_at_run_at_to_the_ms() {
        let c = db();
        let id = put(
            &c,
            "{}",
            EnqueueOpts {
                delay: Some(Duration::from_millis(1500)),
                ..Default::default()
            },
            1_000,
        );
        assert_eq!(get_job(&c, id).unwrap().unwrap().state, JobState::Scheduled);
        assert!(!has_due(&c, "q", 2_499).unwrap());
        assert_eq!(next_deadline(&c, "q").unwrap(), Some(2_500));
        assert!(claim1(&c, "w", 2_499).is_none());
        assert!(has_due(&c, "q", 2_500).unwrap());
        let j = claim1(&c, "w", 2_500).unwrap();
        assert_eq!(
            (j.id, j.attempts, j.lease_until_ms),
            (id, 1, Some(2_500 + 30_000))
        );
        assert_eq!(
            next_deadline(&c, "q").unwrap(),
            Some(32_500),
            "the lease end is the next deadline"
        );
    }

    #[test]
    fn lease_checks_refuse_stale_and_foreign_workers() {
        let c = db();
        let id = put(&c, "{}", EnqueueOpts::default(), 0);
        let j = claim1(&c, "w1", 0).unwrap();
        let foreign = Lease {
            id,
            worker: "w2",
            attempt: 1,
        };
        assert!(!ack(&c, foreign, 1).unwrap());
        assert!(!retry(&c, foreign, None, "x", 1).unwrap());
        assert!(!fail(&c, foreign, "x", 1).unwrap());
        assert!(!heartbeat(&c, foreign, VT, 1).unwrap());
        assert!(heartbeat(&c, j.lease(), Duration::from_secs(60), 10_000).unwrap());
        // Lease now ends at 70_000. Past it, everything is refused.
        assert!(!ack(&c, j.lease(), 70_000).unwrap());
        assert!(!heartbeat(&c, j.lease(), VT, 70_000).unwrap());
        // Reclaimed (same worker name even): a new attempt; the old claim stays refused.
        let j2 = claim1(&c, "w1", 70_000).unwrap();
        assert_eq!((j2.id, j2.attempts), (id, 2));
        assert_eq!(
            j2.last_error.as_deref(),
            Some("lease expired (worker w1, attempt 1)")
        );
        assert!(!ack(&c, j.lease(), 70_001).unwrap());
        assert!(ack(&c, j2.lease(), 70_001).unwrap());
        assert!(get_job(&c, id).unwrap().is_none());
        assert!(
            !ack(&c, j2.lease(), 70_002).unwrap(),
            "ack twice is refused"
        );
    }

    #[test]
    fn retries_then_dead_letter_with_reason() {
        let c = db();
        let id = enqueue(
            &c,
            "q",
            "{}",
            &EnqueueOpts {
                max_attempts: Some(2),
                ..Default::default()
            },
            3,
            0,
        )
        .unwrap();
        let j = claim1(&c, "w", 0).unwrap();
        assert!(retry(
            &c,
            j.lease(),
            Some(Duration::from_millis(500)),
            "boom 1",
            10
        )
        .unwrap());
        let r = get_job(&c, id).unwrap().unwrap();
        assert_eq!(
            (r.state, r.run_at_ms, r.last_error.as_deref()),
            (JobState::Scheduled, 510, Some("boom 1"))
        );
        assert!(claim1(&c, "w", 509).is_none());
        let j = claim1(&c, "w", 510).unwrap();
        assert_eq!(j.attempts, 2);
        assert!(retry(&c, j.lease(), None, "boom 2", 600).unwrap());
        let dead = get_job(&c, id).unwrap().unwrap();
        assert_eq!(dead.state, JobState::Dead);
        assert_eq!(dead.dead_reason.as_deref(), Some("max_attempts"));
        assert_eq!(dead.last_error.as_deref(), Some("boom 2"));
        assert_eq!(dead_jobs(&c, "q", 10).unwrap().len(), 1);
        assert_eq!(
            stats(&c, "q").unwrap(),
            QueueStats {
                dead: 1,
                ..Default::default()
            }
        );

        requeue_dead(&c, id, 1_000).unwrap();
        let back = claim1(&c, "w", 1_000).unwrap();
        assert_eq!((back.id, back.attempts), (id, 1));
        assert_eq!(requeue_dead(&c, 999, 0).unwrap_err().code(), "not_found");
    }

    #[test]
    fn default_backoff_grows_with_jitter() {
        for attempt in 1..=5u32 {
            let step = 1000u64 << (attempt - 1);
            for seed in 0..50 {
                let d = default_backoff(attempt, seed).as_millis() as u64;
                assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d}");
            }
        }
        assert!(default_backoff(40, 1) <= MAX_BACKOFF);
        let spread: std::collections::HashSet<_> = (0..50).map(|s| default_backoff(4, s)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
        let c = db();
        put(&c, "{}", EnqueueOpts::default(), 0);
        let j = claim1(&c, "w", 0).unwrap();
        assert!(retry(&c, j.lease(), None, "e", 0).unwrap());
        let run_at = get_job(&c, j.id).unwrap().unwrap().run_at_ms;
        assert!((500..=1000).contains(&run_at), "{run_at}");
    }

    #[test]
    fn exhausted_lease_goes_dead_not_stuck() {
        let c = db();
        let id = enqueue(
            &c,
            "q",
            "{}",
            &EnqueueOpts {
                max_attempts: Some(1),
                ..Default::default()
            },
            3,
            0,
        )
        .unwrap();
        claim1(&c, "w", 0).unwrap();
        // The worker died. The next claim finds the lease expired with no attempts left.
        assert!(claim1(&c, "w2", 30_000).is_none());
        let dead = get_job(&c, id).unwrap().unwrap();
        assert_eq!(dead.dead_reason.as_deref(), Some("lease_expired"));
        assert_eq!(stats(&c, "q").unwrap().processing, 0);
    }

    #[test]
    fn fail_cancel_and_expiry() {
        let c = db();
        let a = put(&c, "1", EnqueueOpts::default(), 0);
        let j = claim1(&c, "w", 0).unwrap();
        assert!(fail(&c, j.lease(), "bad input", 1).unwrap());
        assert_eq!(
            get_job(&c, a).unwrap().unwrap().dead_reason.as_deref(),
            Some("failed")
        );
        assert!(!fail(&c, j.lease(), "again", 2).unwrap());

        let b = put(&c, "2", EnqueueOpts::default(), 0);
        assert!(cancel(&c, b, 0).unwrap());
        assert!(!cancel(&c, b, 0).unwrap());

        let e = put(
            &c,
            "3",
            EnqueueOpts {
                expires: Some(Duration::from_secs(1)),
                delay: Some(Duration::from_secs(10)),
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            get_job(&c, e).unwrap().unwrap().expires_at_ms,
            Some(11_000),
            "expiry counts from run_at"
        );
        assert!(claim1(&c, "w", 11_000).is_none());
        assert_eq!(
            get_job(&c, e).unwrap().unwrap().dead_reason.as_deref(),
            Some("expired")
        );

        let f = put(
            &c,
            "4",
            EnqueueOpts {
                expires: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            0,
        );
        assert_eq!(sweep_expired(&c, None, 500).unwrap(), 0);
        assert_eq!(sweep_expired(&c, Some("q"), 1_000).unwrap(), 1);
        assert_eq!(get_job(&c, f).unwrap().unwrap().state, JobState::Dead);
    }

    #[test]
    fn idempotency_key_while_live() {
        let c = db();
        let opts = EnqueueOpts {
            key: Some("order-42".into()),
            ..Default::default()
        };
        let a = put(&c, "1", opts.clone(), 0);
        assert_eq!(put(&c, "2", opts.clone(), 1), a);
        assert_ne!(
            enqueue(&c, "other", "1", &opts, 3, 0).unwrap(),
            a,
            "keys are per queue"
        );
        let j = claim1(&c, "w", 2).unwrap();
        assert_eq!(
            put(&c, "3", opts.clone(), 3),
            a,
            "still live while processing"
        );
        assert!(ack(&c, j.lease(), 4).unwrap());
        let b = put(&c, "4", opts, 5);
        assert_ne!(a, b);
        assert!(b > a, "ids are never reused");
    }

    #[test]
    fn batch_ack_fences_like_ack_even_for_the_same_worker_name() {
        let c = db();
        let id = put(&c, "{}", EnqueueOpts::default(), 0);
        let stale = claim1(&c, "w", 0).unwrap();
        // The lease lapses; the same worker name claims it again.
        let current = claim(&c, "q", "w", 1, VT, 30_000).unwrap().pop().unwrap();
        assert_eq!((current.id, current.attempts), (id, 2));
        assert_eq!(ack_batch(&c, &[stale.lease()], 30_001).unwrap(), 0);
        assert_eq!(
            get_job(&c, id).unwrap().unwrap().state,
            JobState::Processing,
            "the stale holder's batch ack left the current claim alone"
        );
        assert_eq!(ack_batch(&c, &[current.lease()], 30_002).unwrap(), 1);
        assert!(get_job(&c, id).unwrap().is_none());
    }

    #[test]
    fn purge_removes_only_the_ready_jobs_of_its_queue() {
        let c = db();
        let ready = put(&c, "1", EnqueueOpts::default(), 0);
        let later = put(
            &c,
            "2",
            EnqueueOpts {
                delay: Some(Duration::from_secs(60)),
                ..Default::default()
            },
            0,
        );
        put(&c, "3", EnqueueOpts::default(), 0);
        let held = claim1(&c, "w", 0).unwrap();
        assert_eq!(held.id, ready);
        enqueue(&c, "other", "4", &EnqueueOpts::default(), 3, 0).unwrap();
        let due = put(
            &c,
            "5",
            EnqueueOpts {
                delay: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            purge(&c, "q", 1_000).unwrap(),
            2,
            "the ready job and the one due now"
        );
        assert!(get_job(&c, due).unwrap().is_none());
        let s = stats(&c, "q").unwrap();
        assert_eq!((s.ready, s.scheduled, s.processing), (0, 1, 1));
        assert_eq!(
            get_job(&c, later).unwrap().unwrap().state,
            JobState::Scheduled
        );
        assert!(
            ack(&c, held.lease(), 1).unwrap(),
            "a held job is not touched"
        );
        assert_eq!(
            stats(&c, "other").unwrap().ready,
            1,
            "other queues untouched"
        );
        assert_eq!(purge(&c, "q", 1_000).unwrap(), 0);
        assert_eq!(purge(&c, "", 1_000).unwrap_err().code(), "invalid_argument");
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let c = db();
        let e =
            enqueue_many(&c, "q", &["1", "{bad", "3"], &EnqueueOpts::default(), 3, 0).unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        assert_eq!(stats(&c, "q").unwrap().ready, 0);
        let ids = enqueue_many(&c, "q", &["1", "2", "3"], &EnqueueOpts::default(), 3, 0).unwrap();
        assert_eq!(ids.len(), 3);
        let jobs = claim(&c, "q", "w", 2, VT, 0).unwrap();
        let never_claimed = Lease::new(ids[2], "w", 1);
        assert_eq!(
            ack_batch(&c, &[jobs[0].lease(), jobs[1].lease(), never_claimed], 1).unwrap(),
            2
        );
        assert!(enqueue_many(
            &c,
            "q",
            &["1"],
            &EnqueueOpts {
                key: Some("k".into()),
                ..Default::default()
            },
            3,
            0
        )
        .is_err());
    }

    #[test]
    fn bad_input_is_named() {
        let c = db();
        let code = |r: Result<i64>| r.unwrap_err().to_string();
        assert!(code(enqueue(&c, "", "1", &EnqueueOpts::default(), 3, 0)).contains("`queue`"));
        assert!(code(enqueue(&c, "q", "nope", &EnqueueOpts::default(), 3, 0)).contains("payload"));
        assert!(code(enqueue(
            &c,
            "q",
            "1",
            &EnqueueOpts {
                max_attempts: Some(0),
                ..Default::default()
            },
            3,
            0
        ))
        .contains("max_attempts"));
        assert!(code(enqueue(
            &c,
            "q",
            "1",
            &EnqueueOpts {
                delay: Some(Duration::ZERO),
                run_at: Some(SystemTime::now()),
                ..Default::default()
            },
            3,
            0
        ))
        .contains("not both"));
        assert!(claim(&c, "q", "", 1, VT, 0).is_err());
        assert!(claim(&c, "q", "w", 0, VT, 0).is_err());
        assert!(claim(&c, "q", "w", 1, Duration::ZERO, 0).is_err());
        assert_eq!(
            stats(&c, "q").unwrap(),
            QueueStats::default(),
            "nothing half-written"
        );
    }

    #[test]
    fn claim_walks_indexes_only() {
        let c = db();
        let plan = |sql: &str| -> String {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.join(" | ")
        };
        let claim_plan = plan(
            "SELECT id FROM _honker_live WHERE queue = 'q' AND state = 'ready' ORDER BY priority DESC, run_at, id LIMIT 1",
        );
        assert!(
            claim_plan.contains("_honker_live_ready") && !claim_plan.contains("TEMP B-TREE"),
            "{claim_plan}"
        );
        let p = plan(
            "SELECT id FROM _honker_live WHERE queue = 'q' AND state = 'scheduled' AND run_at <= 5",
        );
        assert!(p.contains("_honker_live_scheduled"), "{p}");
        let p = plan("SELECT id FROM _honker_live WHERE queue = 'q' AND state = 'processing' AND lease_until <= 5");
        assert!(p.contains("_honker_live_leased"), "{p}");
        let p = plan("SELECT id FROM _honker_live WHERE queue = 'q' AND expires_at IS NOT NULL AND state <> 'processing' AND expires_at <= 5");
        assert!(p.contains("_honker_live_expiring"), "{p}");
        let p = plan(&DUE_PROBE.replace("?1", "'q'").replace("?2", "5"));
        for index in [
            "_honker_live_scheduled",
            "_honker_live_leased",
            "_honker_live_expiring",
        ] {
            assert!(p.contains(index), "{p}");
        }
        assert!(!p.contains("SCAN _honker_live"), "{p}");
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn release_gives_the_job_back_without_counting_the_attempt() {
        let c = crate::store::sqlite::schema::test_db();
        let opts = EnqueueOpts::default();
        let first = enqueue(&c, "q", "1", &opts, 1, 0).unwrap();
        let second = enqueue(&c, "q", "2", &opts, 1, 0).unwrap();
        let job = claim(&c, "q", "w", 1, Duration::from_secs(60), 10)
            .unwrap()
            .remove(0);
        assert_eq!((job.id, job.attempts), (first, 1));
        assert!(release(&c, job.lease(), 20).unwrap());
        assert!(
            !release(&c, job.lease(), 20).unwrap(),
            "not current any more"
        );
        // Back in its old place, and its only attempt is still unused.
        let again = claim(&c, "q", "w2", 1, Duration::from_secs(60), 30)
            .unwrap()
            .remove(0);
        assert_eq!((again.id, again.attempts), (first, 1));
        assert!(
            !release(&c, job.lease(), 40).unwrap(),
            "another worker's lease"
        );
        assert!(ack(&c, again.lease(), 40).unwrap());
        let last = claim(&c, "q", "w", 1, Duration::from_secs(60), 50)
            .unwrap()
            .remove(0);
        assert_eq!(last.id, second);
        // An expired lease cannot be released.
        assert!(!release(&c, last.lease(), 50 + 60_000).unwrap());
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_tombstones_stay_invisible() {
        let c = crate::store::sqlite::schema::test_db();
        let opts = EnqueueOpts::default();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        let mut last = 0;
        let mut now = 0;
        // Every way a live row goes, each removing the newest rows (the
        // queue is drained every round), two at a time where it can.
        for round in 0..9 {
            now += 10_000;
            let attempts = if round >= 6 { 1 } else { 3 };
            let ids = [0, 1].map(|_| enqueue(&c, "q", "1", &opts, attempts, now).unwrap());
            assert!(ids[0] > last, "round {round}: {ids:?} after {last}");
            last = ids[1];
            if round == 5 {
                assert_eq!(purge(&c, "q", now).unwrap(), 2);
            } else {
                let jobs = claim(&c, "q", "w", 2, Duration::from_secs(1), now).unwrap();
                let leases: Vec<Lease<'_>> = jobs.iter().map(|j| j.lease()).collect();
                match round {
                    0 => leases
                        .iter()
                        .for_each(|l| assert!(ack(&c, *l, now).unwrap())),
                    1 => leases
                        .iter()
                        .for_each(|l| assert!(fail(&c, *l, "x", now).unwrap())),
                    2 => ids
                        .iter()
                        .for_each(|id| assert!(cancel(&c, *id, 0).unwrap())),
                    3 => assert_eq!(ack_batch(&c, &leases, now).unwrap(), 2),
                    4 => {
                        let done: Vec<Done<'_>> = leases
                            .iter()
                            .map(|l| Done {
                                lease: *l,
                                result: Some(("1", 60_000)),
                            })
                            .collect();
                        let op = AckAndClaim {
                            done: &done,
                            queue: "q",
                            worker: "w",
                            n: 1,
                            visibility_timeout: Duration::from_secs(1),
                        };
                        assert_eq!(ack_and_claim(&c, &op, now).unwrap(), (2, vec![]));
                    }
                    6 => {
                        // Out of attempts when the lease lapses: buried by the next claim.
                        now += 2_000;
                        assert!(claim(&c, "q", "w", 1, Duration::from_secs(1), now)
                            .unwrap()
                            .is_empty());
                    }
                    7 => leases
                        .iter()
                        .for_each(|l| assert!(retry(&c, *l, None, "x", now).unwrap())),
                    _ => {
                        // Cancelled the newest first, then the one below it.
                        assert!(cancel(&c, ids[1], 0).unwrap());
                        assert!(cancel(&c, ids[0], 0).unwrap());
                    }
                }
            }
            for id in ids {
                assert!(get_job(&c, id)
                    .unwrap()
                    .is_none_or(|r| r.state == JobState::Dead));
                assert!(
                    !cancel(&c, id, 0).unwrap(),
                    "round {round}: the tombstone cannot be cancelled"
                );
            }
            assert_eq!(
                count("SELECT COUNT(*) FROM _honker_live WHERE queue = 'q'"),
                0
            );
            assert_eq!(
                count("SELECT COUNT(*) FROM _honker_live"),
                1,
                "round {round}: exactly one tombstone keeps the high-water mark"
            );
            assert_eq!(
                count("SELECT max(id) FROM _honker_live WHERE state = 'done'"),
                last
            );
        }
        // A requeued dead job keeps its (lower) id and does not disturb the mark.
        let dead = dead_jobs(&c, "q", 1).unwrap().pop().unwrap();
        requeue_dead(&c, dead.id, now).unwrap();
        assert!(enqueue(&c, "q", "1", &opts, 3, now).unwrap() > last);
        let tombstones: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM _honker_live WHERE state = 'done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tombstones, 0, "the insert removed the tombstone");
    }
}
