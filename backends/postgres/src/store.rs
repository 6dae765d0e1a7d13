//! The [`Store`] over one PostgreSQL connection: each operation is one call
//! of its function in honker's schema (sql/v1_functions.sql), so what a
//! psycopg or node-postgres client calls is what honker runs. Reads for
//! operators (listing) and the schedules (whose cron rules are honker's
//! Rust) are statements of their own here.

use honker_core::model::*;
use honker_core::store::sqlite::scheduler as rules;
use honker_core::store::{Store, Tick};
use honker_core::{validate, Error, Result};
use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Statement};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// honker's operations on one connection, in schema `schema`.
pub struct PgStore {
    client: RefCell<Client>,
    schema: String,
    /// The server keeps the time: `now` arguments are not passed.
    server_clock: bool,
    in_tx: Cell<bool>,
    /// A statement failed inside the open transaction, which PostgreSQL
    /// has therefore aborted.
    aborted: Cell<bool>,
    wrote: Cell<bool>,
    statements: RefCell<HashMap<&'static str, Statement>>,
}

/// Seconds (as the functions take them) of a duration.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

fn state_of(s: &str) -> JobState {
    match s {
        "ready" => JobState::Ready,
        "scheduled" => JobState::Scheduled,
        _ => JobState::Processing,
    }
}

fn attempts(r: &Row, i: usize) -> u32 {
    u32::try_from(r.get::<_, i32>(i)).unwrap_or(0)
}

/// A live job from `LIVE_COLS` starting at column `at`.
fn live_row(r: &Row, at: usize) -> JobRecord {
    JobRecord {
        id: r.get(at),
        queue: r.get(at + 1),
        payload: r.get(at + 2),
        state: state_of(r.get(at + 3)),
        priority: r.get(at + 4),
        run_at_ms: r.get(at + 5),
        attempts: attempts(r, at + 6),
        max_attempts: attempts(r, at + 7),
        worker_id: r.get(at + 8),
        lease_until_ms: r.get(at + 9),
        expires_at_ms: r.get(at + 10),
        key: r.get(at + 11),
        last_error: r.get(at + 12),
        created_at_ms: r.get(at + 13),
        dead_reason: None,
        died_at_ms: None,
        started_at_ms: r.get(at + 14),
        completed_at_ms: None,
        result: None,
    }
}

fn dead_row(r: &Row) -> JobRecord {
    let died_at: i64 = r.get(10);
    JobRecord {
        id: r.get(0),
        queue: r.get(1),
        payload: r.get(2),
        state: JobState::Dead,
        priority: r.get(3),
        run_at_ms: died_at,
        attempts: attempts(r, 4),
        max_attempts: attempts(r, 5),
        worker_id: None,
        lease_until_ms: None,
        expires_at_ms: None,
        key: r.get(6),
        last_error: r.get(7),
        created_at_ms: r.get(9),
        dead_reason: Some(r.get(8)),
        died_at_ms: Some(died_at),
        started_at_ms: r.get(11),
        completed_at_ms: None,
        result: None,
    }
}

fn completed_row(r: &Row) -> JobRecord {
    JobRecord {
        id: r.get(0),
        queue: r.get(1),
        payload: r.get(2),
        state: JobState::Completed,
        priority: r.get(3),
        run_at_ms: r.get(4),
        attempts: attempts(r, 5),
        max_attempts: attempts(r, 6),
        worker_id: r.get(7),
        lease_until_ms: None,
        expires_at_ms: None,
        key: r.get(8),
        last_error: r.get(9),
        result: r.get(10),
        created_at_ms: r.get(11),
        started_at_ms: r.get(12),
        completed_at_ms: Some(r.get(13)),
        dead_reason: None,
        died_at_ms: None,
    }
}

/// The enqueue options as the function takes them (jsonb).
fn options(opts: &EnqueueOpts, default_max_attempts: u32) -> Result<String> {
    let mut m = serde_json::Map::new();
    if let Some(d) = opts.delay {
        validate::duration_ms("delay", d)?;
        m.insert("delay_s".into(), secs(d).into());
    }
    if let Some(t) = opts.run_at {
        let at = validate::instant("run_at", t)?;
        m.insert("run_at".into(), (at as f64 / 1000.0).into());
    }
    if opts.priority != 0 {
        m.insert("priority".into(), opts.priority.into());
    }
    m.insert(
        "max_attempts".into(),
        opts.max_attempts.unwrap_or(default_max_attempts).into(),
    );
    if let Some(d) = opts.expires {
        validate::duration_ms("expires", d)?;
        m.insert("expires_s".into(), secs(d).into());
    }
    if let Some(k) = &opts.key {
        m.insert("key".into(), k.clone().into());
    }
    Ok(serde_json::Value::Object(m).to_string())
}

/// Leases as the functions take them: ids, workers, attempts.
fn lease_arrays<'a>(leases: impl Iterator<Item = Lease<'a>>) -> (Vec<i64>, Vec<&'a str>, Vec<i32>) {
    let mut ids = Vec::new();
    let mut workers = Vec::new();
    let mut attempts = Vec::new();
    for l in leases {
        ids.push(l.id);
        workers.push(l.worker);
        attempts.push(i32::try_from(l.attempt).unwrap_or(i32::MAX));
    }
    (ids, workers, attempts)
}

fn attempt(l: &Lease<'_>) -> i32 {
    i32::try_from(l.attempt).unwrap_or(i32::MAX)
}

impl PgStore {
    /// The store on `client`, honker's tables in `schema` (migrated).
    pub fn new(client: Client, schema: &str, server_clock: bool) -> PgStore {
        PgStore {
            client: RefCell::new(client),
            schema: schema.to_string(),
            server_clock,
            in_tx: Cell::new(false),
            aborted: Cell::new(false),
            wrote: Cell::new(false),
            statements: RefCell::new(HashMap::new()),
        }
    }

    /// An error from the server; inside a transaction, PostgreSQL has
    /// aborted it.
    fn failed(&self, e: postgres::Error) -> Error {
        if self.in_tx.get() {
            self.aborted.set(true);
        }
        crate::errors::from_pg(e)
    }

    /// The time to pass: `None` when the server keeps it.
    fn now(&self, now: i64) -> Option<i64> {
        (!self.server_clock).then_some(now)
    }

    fn statement(&self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let text = sql.replace("{s}", &self.schema);
        let stmt = self
            .client
            .borrow_mut()
            .prepare(&text)
            .map_err(|e| self.failed(e))?;
        self.statements.borrow_mut().insert(sql, stmt.clone());
        Ok(stmt)
    }

    /// Runs a read.
    fn read(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        self.client
            .borrow_mut()
            .query(&stmt, params)
            .map_err(|e| self.failed(e))
    }

    /// Runs a write (the handle wakes this process's waiters after it).
    fn write(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let rows = self.read(sql, params)?;
        self.wrote.set(true);
        Ok(rows)
    }

    fn one<T: for<'a> postgres::types::FromSql<'a>>(rows: Vec<Row>) -> Result<T> {
        rows.first()
            .map(|r| r.get(0))
            .ok_or_else(|| Error::Internal {
                reason: "a honker function returned no row".into(),
            })
    }

    /// Runs `f` atomically: in its own transaction, or a savepoint of the
    /// open one.
    fn atomic<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let (begin, commit, undo) = if self.in_tx.get() {
            (
                "SAVEPOINT honker_op",
                "RELEASE SAVEPOINT honker_op",
                "ROLLBACK TO SAVEPOINT honker_op; RELEASE SAVEPOINT honker_op",
            )
        } else {
            ("BEGIN", "COMMIT", "ROLLBACK")
        };
        self.batch(begin)?;
        match f() {
            Ok(r) => {
                self.batch(commit)?;
                Ok(r)
            }
            Err(e) => {
                if self.batch(undo).is_ok() && self.in_tx.get() {
                    // Rolled back to the savepoint: the transaction goes on.
                    self.aborted.set(false);
                }
                Err(e)
            }
        }
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| self.failed(e))
    }

    /// Marks a transaction open or ended; whether the one that ends was
    /// aborted by a failed statement.
    pub(crate) fn set_in_tx(&self, on: bool) -> bool {
        self.in_tx.set(on);
        self.aborted.replace(false)
    }

    pub(crate) fn take_wrote(&self) -> bool {
        self.wrote.replace(false)
    }

    fn jobs(rows: Vec<Row>) -> Vec<JobRecord> {
        rows.iter().map(|r| live_row(r, 0)).collect()
    }
}

/// A parameter of the application's SQL, converted to whatever type the
/// server inferred for its place.
#[derive(Debug)]
struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        let bad = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot pass {:?} as a {ty} parameter", self.0).into()
        };
        match self.0 {
            SqlValue::Null => Ok(postgres::types::IsNull::Yes),
            SqlValue::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i).map_err(|_| bad())?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i).map_err(|_| bad())?.to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(&Type::TEXT, out),
            },
            SqlValue::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::FLOAT8 => f.to_sql(ty, out),
                _ => f.to_string().to_sql(&Type::TEXT, out),
            },
            SqlValue::Text(s) => s.as_str().to_sql(&Type::TEXT, out),
            SqlValue::Blob(b) => b.as_slice().to_sql(&Type::BYTEA, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column of the application's SQL as a honker value.
fn value(r: &Row, i: usize) -> SqlValue {
    let ty = r.columns()[i].type_().clone();
    let v = match ty {
        Type::INT2 => r
            .get::<_, Option<i16>>(i)
            .map(|v| SqlValue::Integer(v.into())),
        Type::INT4 => r
            .get::<_, Option<i32>>(i)
            .map(|v| SqlValue::Integer(v.into())),
        Type::INT8 => r.get::<_, Option<i64>>(i).map(SqlValue::Integer),
        Type::OID => r
            .get::<_, Option<u32>>(i)
            .map(|v| SqlValue::Integer(v.into())),
        Type::BOOL => r
            .get::<_, Option<bool>>(i)
            .map(|v| SqlValue::Integer(v.into())),
        Type::FLOAT4 => r.get::<_, Option<f32>>(i).map(|v| SqlValue::Real(v.into())),
        Type::FLOAT8 => r.get::<_, Option<f64>>(i).map(SqlValue::Real),
        Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(SqlValue::Blob),
        _ => match r.try_get::<_, Option<String>>(i) {
            Ok(v) => v.map(SqlValue::Text),
            Err(_) => Some(SqlValue::Text(format!("<{ty}>"))),
        },
    };
    v.unwrap_or(SqlValue::Null)
}

impl Store for PgStore {
    fn enqueue(
        &self,
        queue: &str,
        payload: &str,
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<i64> {
        let o = options(opts, default_max_attempts)?;
        Self::one(self.write(
            "SELECT {s}.enqueue($1, $2, $3::text::jsonb, $4)",
            &[&queue, &payload, &o, &self.now(now)],
        )?)
    }

    fn enqueue_many(
        &self,
        queue: &str,
        payloads: &[String],
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<Vec<i64>> {
        let o = options(opts, default_max_attempts)?;
        Self::one(self.write(
            "SELECT {s}.enqueue_many($1, $2, $3::text::jsonb, $4)",
            &[&queue, &payloads, &o, &self.now(now)],
        )?)
    }

    fn claim(
        &self,
        queue: &str,
        worker: &str,
        n: usize,
        visibility_timeout: Duration,
        now: i64,
    ) -> Result<Vec<JobRecord>> {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        validate::duration_ms("visibility_timeout", visibility_timeout)?;
        Ok(Self::jobs(self.write(
            "SELECT id, queue, payload, state, priority, run_at, attempts, max_attempts, worker_id, lease_until, expires_at, idem_key, last_error, created_at, started_at
             FROM {s}.claim($1, $2, $3, $4, $5)",
            &[&queue, &worker, &n, &secs(visibility_timeout), &self.now(now)],
        )?))
    }

    fn ack(&self, lease: Lease<'_>, now: i64) -> Result<bool> {
        Self::one(self.write(
            "SELECT {s}.ack($1, $2, $3, $4)",
            &[&lease.id, &lease.worker, &attempt(&lease), &self.now(now)],
        )?)
    }

    fn ack_batch(&self, leases: &[Lease<'_>], now: i64) -> Result<usize> {
        let (ids, workers, attempts) = lease_arrays(leases.iter().copied());
        Ok(count(Self::one(self.write(
            "SELECT {s}.ack_many($1, $2, $3, NULL, NULL, $4)",
            &[&ids, &workers, &attempts, &self.now(now)],
        )?)?))
    }

    fn ack_and_claim(&self, op: &AckAndClaim<'_>, now: i64) -> Result<(usize, Vec<JobRecord>)> {
        let (ids, workers, attempts) = lease_arrays(op.done.iter().map(|d| d.lease));
        let results: Vec<Option<&str>> = op.done.iter().map(|d| d.result.map(|r| r.0)).collect();
        let ttls: Vec<Option<i64>> = op.done.iter().map(|d| d.result.map(|r| r.1)).collect();
        let n = i32::try_from(op.n).unwrap_or(i32::MAX);
        validate::duration_ms("visibility_timeout", op.visibility_timeout)?;
        let rows = self.write(
            "SELECT acked, (job).id, (job).queue, (job).payload, (job).state, (job).priority, (job).run_at,
                    (job).attempts, (job).max_attempts, (job).worker_id, (job).lease_until, (job).expires_at,
                    (job).idem_key, (job).last_error, (job).created_at, (job).started_at
             FROM {s}.ack_and_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &ids,
                &workers,
                &attempts,
                &results,
                &ttls,
                &op.queue,
                &op.worker,
                &n,
                &secs(op.visibility_timeout),
                &self.now(now),
            ],
        )?;
        let acked = rows.first().map_or(0, |r| count(r.get(0)));
        let jobs = rows
            .iter()
            .filter(|r| r.get::<_, Option<i64>>(1).is_some())
            .map(|r| live_row(r, 1))
            .collect();
        Ok((acked, jobs))
    }

    fn retry(
        &self,
        lease: Lease<'_>,
        delay: Option<Duration>,
        error: &str,
        now: i64,
    ) -> Result<bool> {
        if let Some(d) = delay {
            validate::duration_ms("delay", d)?;
        }
        Self::one(self.write(
            "SELECT {s}.retry($1, $2, $3, $4, $5, $6)",
            &[
                &lease.id,
                &lease.worker,
                &attempt(&lease),
                &delay.map(secs),
                &error,
                &self.now(now),
            ],
        )?)
    }

    fn release(&self, lease: Lease<'_>, now: i64) -> Result<bool> {
        Self::one(self.write(
            "SELECT {s}.release($1, $2, $3, $4)",
            &[&lease.id, &lease.worker, &attempt(&lease), &self.now(now)],
        )?)
    }

    fn defer(&self, lease: Lease<'_>, delay: Duration, now: i64) -> Result<bool> {
        validate::duration_ms("delay", delay)?;
        Self::one(self.write(
            "SELECT {s}.defer($1, $2, $3, $4, $5)",
            &[
                &lease.id,
                &lease.worker,
                &attempt(&lease),
                &secs(delay),
                &self.now(now),
            ],
        )?)
    }

    fn fail(&self, lease: Lease<'_>, error: &str, now: i64) -> Result<bool> {
        Self::one(self.write(
            "SELECT {s}.fail($1, $2, $3, $4, $5)",
            &[
                &lease.id,
                &lease.worker,
                &attempt(&lease),
                &error,
                &self.now(now),
            ],
        )?)
    }

    fn heartbeat(&self, lease: Lease<'_>, extend: Duration, now: i64) -> Result<bool> {
        validate::duration_ms("extend", extend)?;
        Self::one(self.write(
            "SELECT {s}.heartbeat($1, $2, $3, $4, $5)",
            &[
                &lease.id,
                &lease.worker,
                &attempt(&lease),
                &secs(extend),
                &self.now(now),
            ],
        )?)
    }

    fn cancel(&self, id: i64, now: i64) -> Result<bool> {
        Ok(self.cancel_many(&[id], now)? == 1)
    }

    fn purge(&self, queue: &str, now: i64) -> Result<usize> {
        Ok(count(Self::one(self.write(
            "SELECT {s}.purge($1, $2)",
            &[&queue, &self.now(now)],
        )?)?))
    }

    fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
        if let Some(r) = self
            .read(
                "SELECT id, queue, payload, state, priority, run_at, attempts, max_attempts, worker_id, lease_until, expires_at, idem_key, last_error, created_at, started_at
                 FROM {s}.live WHERE id = $1",
                &[&id],
            )?
            .first()
        {
            return Ok(Some(live_row(r, 0)));
        }
        if let Some(r) = self
            .read(
                "SELECT id, queue, payload, priority, attempts, max_attempts, idem_key, last_error, reason, created_at, died_at, started_at
                 FROM {s}.dead WHERE id = $1",
                &[&id],
            )?
            .first()
        {
            return Ok(Some(dead_row(r)));
        }
        Ok(self
            .read(
                "SELECT id, queue, payload, priority, run_at, attempts, max_attempts, worker_id, idem_key, last_error, result, created_at, started_at, completed_at
                 FROM {s}.completed WHERE id = $1",
                &[&id],
            )?
            .first()
            .map(completed_row))
    }

    fn dead_jobs(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>> {
        validate::name("queue", queue)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .read(
                "SELECT id, queue, payload, priority, attempts, max_attempts, idem_key, last_error, reason, created_at, died_at, started_at
                 FROM {s}.dead WHERE queue = $1 ORDER BY died_at DESC, id DESC LIMIT $2",
                &[&queue, &limit],
            )?
            .iter()
            .map(dead_row)
            .collect())
    }

    fn requeue_dead(&self, id: i64, now: i64) -> Result<()> {
        self.write("SELECT {s}.requeue_dead($1, $2)", &[&id, &self.now(now)])?;
        Ok(())
    }

    fn discard_dead(&self, ids: &[i64]) -> Result<usize> {
        Ok(count(Self::one(
            self.write("SELECT {s}.discard_dead($1)", &[&ids])?,
        )?))
    }

    fn sweep_expired(&self, queue: Option<&str>, now: i64) -> Result<usize> {
        Ok(count(Self::one(self.write(
            "SELECT {s}.sweep_expired($1, $2)",
            &[&queue, &self.now(now)],
        )?)?))
    }

    fn has_due(&self, queue: &str, now: i64) -> Result<bool> {
        Self::one(self.read("SELECT {s}.has_due($1, $2)", &[&queue, &self.now(now)])?)
    }

    fn next_deadline(&self, queue: &str) -> Result<Option<i64>> {
        Self::one(self.read("SELECT {s}.next_deadline($1)", &[&queue])?)
    }

    fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        validate::name("queue", queue)?;
        let rows = self.read("SELECT * FROM {s}.queue_stats($1)", &[&queue])?;
        let r = rows.first().ok_or_else(|| Error::Internal {
            reason: "queue_stats returned no row".into(),
        })?;
        let n = |i: usize| r.get::<_, i64>(i).unsigned_abs();
        Ok(QueueStats {
            ready: n(0),
            scheduled: n(1),
            processing: n(2),
            dead: n(3),
            completed: n(4),
        })
    }

    fn requeue_dead_all(&self, queue: &str, reason: Option<&str>, now: i64) -> Result<usize> {
        Ok(count(Self::one(self.write(
            "SELECT {s}.requeue_dead_all($1, $2, $3)",
            &[&queue, &reason, &self.now(now)],
        )?)?))
    }

    fn cancel_many(&self, ids: &[i64], now: i64) -> Result<usize> {
        Ok(count(Self::one(self.write(
            "SELECT {s}.cancel_many($1, $2)",
            &[&ids, &self.now(now)],
        )?)?))
    }

    fn queues(&self) -> Result<Vec<QueueSummary>> {
        let names: Vec<String> = self
            .read(
                "SELECT queue FROM {s}.live UNION SELECT queue FROM {s}.dead
                 UNION SELECT queue FROM {s}.completed UNION SELECT queue FROM {s}.queues
                 ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        names
            .into_iter()
            .map(|name| {
                Ok(QueueSummary {
                    stats: self.queue_stats(&name)?,
                    controls: self.queue_controls(&name)?,
                    name,
                })
            })
            .collect()
    }

    fn streams(&self) -> Result<Vec<StreamSummary>> {
        let names: Vec<String> = self
            .read(
                "SELECT stream FROM {s}.stream_heads UNION SELECT stream FROM {s}.stream_offsets
                 UNION SELECT stream FROM {s}.stream_config ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        names
            .into_iter()
            .map(|name| {
                let consumers = self
                    .read(
                        "SELECT o.consumer, o.seq,
                                (SELECT count(*) FROM {s}.stream e WHERE e.stream = o.stream AND e.seq > o.seq)
                         FROM {s}.stream_offsets o WHERE o.stream = $1 ORDER BY o.consumer",
                        &[&name],
                    )?
                    .iter()
                    .map(|r| StreamConsumer {
                        name: r.get(0),
                        offset: r.get(1),
                        lag: r.get::<_, i64>(2).unsigned_abs(),
                    })
                    .collect();
                Ok(StreamSummary {
                    last_offset: self.last_offset(&name)?,
                    consumers,
                    name,
                })
            })
            .collect()
    }

    fn locks(&self, now: i64) -> Result<Vec<LockInfo>> {
        Ok(self
            .read(
                "SELECT name, owner, token, expires_at FROM {s}.locks
                 WHERE expires_at > coalesce($1, {s}.now_ms()) ORDER BY name",
                &[&self.now(now)],
            )?
            .iter()
            .map(|r| LockInfo {
                name: r.get(0),
                owner: r.get(1),
                token: r.get(2),
                expires_at_ms: r.get(3),
            })
            .collect())
    }

    fn jobs_enqueued(&self) -> Result<i64> {
        Self::one(self.read(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {s}.live_id_seq",
            &[],
        )?)
    }

    fn queue_head(&self, queue: &str) -> Result<Option<i64>> {
        validate::name("queue", queue)?;
        Ok(self
            .read(
                "SELECT run_at FROM {s}.live WHERE queue = $1 AND state = 'ready'
                 ORDER BY priority DESC, run_at, id LIMIT 1",
                &[&queue],
            )?
            .first()
            .map(|r| r.get(0)))
    }

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let limit = filter.checked_limit()?;
        let state = filter.state.map(JobState::as_str);
        let args: [&(dyn ToSql + Sync); 8] = [
            &filter.queue,
            &filter.task,
            &filter.key,
            &filter.created_from_ms,
            &filter.created_to_ms,
            &filter.before_id,
            &limit,
            &state,
        ];
        let mut found: Vec<JobRecord> = Vec::new();
        let live = [JobState::Ready, JobState::Scheduled, JobState::Processing];
        if filter.state.is_none_or(|s| live.contains(&s)) {
            found.extend(Self::jobs(self.read(
                "SELECT id, queue, payload, state, priority, run_at, attempts, max_attempts, worker_id, lease_until, expires_at, idem_key, last_error, created_at, started_at
                 FROM {s}.live WHERE ($8::text IS NULL OR state = $8)
                  AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR {s}.task_of(payload) = $2)
                  AND ($3::text IS NULL OR idem_key = $3) AND ($4::bigint IS NULL OR created_at >= $4)
                  AND ($5::bigint IS NULL OR created_at < $5) AND ($6::bigint IS NULL OR id < $6)
                 ORDER BY id DESC LIMIT $7",
                &args,
            )?));
        }
        if filter.state.is_none_or(|s| s == JobState::Dead) {
            found.extend(
                self.read(
                    "SELECT id, queue, payload, priority, attempts, max_attempts, idem_key, last_error, reason, created_at, died_at, started_at
                     FROM {s}.dead WHERE ($8::text IS NULL OR $8 = 'dead')
                      AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR {s}.task_of(payload) = $2)
                      AND ($3::text IS NULL OR idem_key = $3) AND ($4::bigint IS NULL OR created_at >= $4)
                      AND ($5::bigint IS NULL OR created_at < $5) AND ($6::bigint IS NULL OR id < $6)
                     ORDER BY id DESC LIMIT $7",
                    &args,
                )?
                .iter()
                .map(dead_row),
            );
        }
        if filter.state.is_none_or(|s| s == JobState::Completed) {
            found.extend(
                self.read(
                    "SELECT id, queue, payload, priority, run_at, attempts, max_attempts, worker_id, idem_key, last_error, result, created_at, started_at, completed_at
                     FROM {s}.completed WHERE ($8::text IS NULL OR $8 = 'completed')
                      AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR {s}.task_of(payload) = $2)
                      AND ($3::text IS NULL OR idem_key = $3) AND ($4::bigint IS NULL OR created_at >= $4)
                      AND ($5::bigint IS NULL OR created_at < $5) AND ($6::bigint IS NULL OR id < $6)
                     ORDER BY id DESC LIMIT $7",
                    &args,
                )?
                .iter()
                .map(completed_row),
            );
        }
        found.sort_by_key(|j| std::cmp::Reverse(j.id));
        found.truncate(limit as usize);
        Ok(found)
    }

    fn queue_controls(&self, queue: &str) -> Result<QueueControls> {
        validate::name("queue", queue)?;
        let rows = self.read(
            "SELECT paused, max_in_flight, rate_limit, rate_per_ms, keep_completed_ms,
                    keep_completed_count, keep_dead_ms, keep_dead_count, events
             FROM {s}.queues WHERE queue = $1",
            &[&queue],
        )?;
        let Some(r) = rows.first() else {
            return Ok(QueueControls::default());
        };
        let keep = |ms: Option<i64>, n: Option<i64>| {
            (ms.is_some() || n.is_some()).then(|| Retention {
                max_age: ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                max_count: n.map(|n| n.max(0) as u64),
            })
        };
        let limit: Option<i32> = r.get(2);
        let per: Option<i64> = r.get(3);
        Ok(QueueControls {
            paused: r.get(0),
            max_in_flight: r.get::<_, Option<i32>>(1).map(|m| m.max(0) as u32),
            rate_limit: limit.zip(per).map(|(limit, per)| QueueRateLimit {
                limit: limit.max(0) as u32,
                per: Duration::from_millis(per.max(1) as u64),
            }),
            retention: QueueRetention {
                completed: keep(r.get(4), r.get(5)),
                dead: keep(r.get(6), r.get(7)),
            },
            events: r.get(8),
        })
    }

    fn set_paused(&self, queue: &str, paused: bool, now: i64) -> Result<bool> {
        validate::name("queue", queue)?;
        Self::one(self.write(
            "SELECT {s}.set_paused($1, $2, $3)",
            &[&queue, &paused, &self.now(now)],
        )?)
    }

    fn set_max_in_flight(&self, queue: &str, max: Option<u32>, now: i64) -> Result<()> {
        validate::name("queue", queue)?;
        let max = max.map(|m| i32::try_from(m).unwrap_or(i32::MAX));
        self.write(
            "SELECT {s}.set_max_in_flight($1, $2, $3)",
            &[&queue, &max, &self.now(now)],
        )?;
        Ok(())
    }

    fn set_rate_limit(&self, queue: &str, rate: Option<QueueRateLimit>, now: i64) -> Result<()> {
        validate::name("queue", queue)?;
        let limit = rate.map(|r| i32::try_from(r.limit).unwrap_or(i32::MAX));
        let per = rate
            .map(|r| validate::positive_ms("per", validate::duration_ms("per", r.per)?))
            .transpose()?;
        self.write(
            "SELECT {s}.set_rate_limit($1, $2, $3, $4)",
            &[&queue, &limit, &per, &self.now(now)],
        )?;
        Ok(())
    }

    fn set_queue_retention(&self, queue: &str, retention: QueueRetention, now: i64) -> Result<()> {
        validate::name("queue", queue)?;
        let limits = |r: Option<Retention>| -> Result<Option<String>> {
            let Some(r) = r else { return Ok(None) };
            let mut m = serde_json::Map::new();
            if let Some(d) = r.max_age {
                validate::duration_ms("max_age", d)?;
                m.insert("max_age_s".into(), secs(d).into());
            }
            if let Some(n) = r.max_count {
                m.insert("max_count".into(), n.into());
            }
            Ok(Some(serde_json::Value::Object(m).to_string()))
        };
        let (c, d) = (limits(retention.completed)?, limits(retention.dead)?);
        self.write(
            "SELECT {s}.set_queue_retention($1, $2::text::jsonb, $3::text::jsonb, $4)",
            &[&queue, &c, &d, &self.now(now)],
        )?;
        Ok(())
    }

    fn prune_queue(&self, queue: &str, now: i64) -> Result<usize> {
        Ok(count(Self::one(self.write(
            "SELECT {s}.prune_queue($1, $2)",
            &[&queue, &self.now(now)],
        )?)?))
    }

    fn set_events(&self, queue: &str, on: bool, now: i64) -> Result<()> {
        validate::name("queue", queue)?;
        self.write(
            "SELECT {s}.set_events($1, $2, $3)",
            &[&queue, &on, &self.now(now)],
        )?;
        Ok(())
    }

    fn publish(&self, stream: &str, key: Option<&str>, payload: &str, now: i64) -> Result<i64> {
        Self::one(self.write(
            "SELECT {s}.publish($1, $2, $3, $4)",
            &[&stream, &payload, &key, &self.now(now)],
        )?)
    }

    fn read_since(&self, stream: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
        validate::name("stream", stream)?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        Ok(self
            .read(
                "SELECT seq, event_key, payload, created_at FROM {s}.read_since($1, $2, $3)",
                &[&stream, &after, &limit],
            )?
            .iter()
            .map(|r| Event {
                offset: r.get(0),
                stream: stream.to_string(),
                key: r.get(1),
                payload: r.get(2),
                created_at_ms: r.get(3),
            })
            .collect())
    }

    fn last_offset(&self, stream: &str) -> Result<i64> {
        Self::one(self.read("SELECT {s}.last_offset($1)", &[&stream])?)
    }

    fn save_offset(&self, stream: &str, consumer: &str, offset: i64, now: i64) -> Result<bool> {
        validate::name("stream", stream)?;
        validate::name("consumer", consumer)?;
        Self::one(self.write(
            "SELECT {s}.save_offset($1, $2, $3, $4)",
            &[&stream, &consumer, &offset, &self.now(now)],
        )?)
    }

    fn get_offset(&self, stream: &str, consumer: &str) -> Result<i64> {
        validate::name("stream", stream)?;
        validate::name("consumer", consumer)?;
        Self::one(self.read("SELECT {s}.get_offset($1, $2)", &[&stream, &consumer])?)
    }

    fn set_retention(&self, stream: &str, retention: Retention) -> Result<()> {
        validate::name("stream", stream)?;
        let age = retention
            .max_age
            .map(|d| validate::positive_ms("max_age", validate::duration_ms("max_age", d)?))
            .transpose()?;
        let n = match retention.max_count {
            Some(0) => return Err(Error::invalid("max_count", "must be at least 1")),
            Some(n) => {
                Some(i64::try_from(n).map_err(|_| Error::invalid("max_count", "too large"))?)
            }
            None => None,
        };
        self.write(
            "SELECT {s}.set_stream_retention($1, $2, $3)",
            &[&stream, &age, &n],
        )?;
        Ok(())
    }

    fn retention(&self, stream: &str) -> Result<Retention> {
        let rows = self.read(
            "SELECT max_age_ms, max_count FROM {s}.stream_config WHERE stream = $1",
            &[&stream],
        )?;
        Ok(match rows.first() {
            None => Retention::default(),
            Some(r) => Retention {
                max_age: r
                    .get::<_, Option<i64>>(0)
                    .map(|ms| Duration::from_millis(ms.max(0) as u64)),
                max_count: r.get::<_, Option<i64>>(1).map(|n| n.max(0) as u64),
            },
        })
    }

    fn prune_stream(&self, stream: &str, now: i64) -> Result<usize> {
        validate::name("stream", stream)?;
        Ok(count(Self::one(self.write(
            "SELECT {s}.prune_stream($1, $2)",
            &[&stream, &self.now(now)],
        )?)?))
    }

    fn notify(&self, channel: &str, payload: &str, now: i64) -> Result<i64> {
        Self::one(self.write(
            "SELECT {s}.notify($1, $2, $3)",
            &[&channel, &payload, &self.now(now)],
        )?)
    }

    fn latest_notification(&self) -> Result<i64> {
        Self::one(self.read("SELECT last FROM {s}.notify_head", &[])?)
    }

    fn notifications_after(
        &self,
        after: i64,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .read(
                "SELECT id, channel, payload, created_at FROM {s}.notifications
                 WHERE id > $1 AND ($2::text IS NULL OR channel = $2) ORDER BY id LIMIT $3",
                &[&after, &channel, &limit],
            )?
            .iter()
            .map(notification_row)
            .collect())
    }

    fn prune_notifications(&self, before_ms: i64) -> Result<usize> {
        Ok(self
            .write(
                "WITH gone AS (DELETE FROM {s}.notifications WHERE created_at < $1 RETURNING 1)
                 SELECT count(*) FROM gone",
                &[&before_ms],
            )?
            .first()
            .map_or(0, |r| r.get::<_, i64>(0).unsigned_abs() as usize))
    }

    fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64, now: i64) -> Result<Option<i64>> {
        validate::name("name", name)?;
        validate::name("owner", owner)?;
        validate::positive_ms("ttl", ttl_ms)?;
        Self::one(self.write(
            "SELECT {s}.try_lock($1, $2, $3, $4)",
            &[&name, &owner, &ttl_ms, &self.now(now)],
        )?)
    }

    fn renew_lock(&self, name: &str, token: i64, ttl_ms: i64, now: i64) -> Result<bool> {
        validate::positive_ms("ttl", ttl_ms)?;
        Self::one(self.write(
            "SELECT {s}.renew_lock($1, $2, $3, $4)",
            &[&name, &token, &ttl_ms, &self.now(now)],
        )?)
    }

    fn release_lock(&self, name: &str, token: i64) -> Result<bool> {
        Self::one(self.write("SELECT {s}.release_lock($1, $2)", &[&name, &token])?)
    }

    fn lock_holder(&self, name: &str, now: i64) -> Result<Option<LockInfo>> {
        Ok(self
            .read(
                "SELECT name, owner, token, expires_at FROM {s}.locks
                 WHERE name = $1 AND expires_at > coalesce($2, {s}.now_ms())",
                &[&name, &self.now(now)],
            )?
            .first()
            .map(|r| LockInfo {
                name: r.get(0),
                owner: r.get(1),
                token: r.get(2),
                expires_at_ms: r.get(3),
            }))
    }

    fn try_rate_limit(&self, key: &str, limit: i64, per_ms: i64, now: i64) -> Result<bool> {
        validate::name("key", key)?;
        if limit <= 0 {
            return Err(Error::invalid(
                "limit",
                format!("must be at least 1, got {limit}"),
            ));
        }
        validate::positive_ms("per", per_ms)?;
        Self::one(self.write(
            "SELECT {s}.try_rate_limit($1, $2, $3, $4)",
            &[&key, &limit, &per_ms, &self.now(now)],
        )?)
    }

    fn save_result(&self, job_id: i64, value: &str, ttl_ms: i64, now: i64) -> Result<()> {
        validate::json("value", value)?;
        validate::positive_ms("ttl", ttl_ms)?;
        self.write(
            "SELECT {s}.save_result($1, $2, $3, $4)",
            &[&job_id, &value, &ttl_ms, &self.now(now)],
        )?;
        Ok(())
    }

    fn get_result(&self, job_id: i64, now: i64) -> Result<Option<String>> {
        Self::one(self.read("SELECT {s}.get_result($1, $2)", &[&job_id, &self.now(now)])?)
    }

    fn sweep_results(&self, now: i64) -> Result<usize> {
        Ok(self
            .write(
                "WITH gone AS (DELETE FROM {s}.results WHERE expires_at <= coalesce($1, {s}.now_ms()) RETURNING 1)
                 SELECT count(*) FROM gone",
                &[&self.now(now)],
            )?
            .first()
            .map_or(0, |r| r.get::<_, i64>(0).unsigned_abs() as usize))
    }

    fn schedule_add(&self, spec: &ScheduleSpec<'_>, now: i64) -> Result<()> {
        let (expr, parsed, expires) = rules::check(spec)?;
        let now = self.server_now(now)?;
        self.atomic(|| {
            let existing = self.read(
                "SELECT cron, next_fire_at FROM {s}.schedules WHERE name = $1 FOR UPDATE",
                &[&spec.name],
            )?;
            let next = match existing.first() {
                Some(r) if r.get::<_, String>(0) == expr => r.get(1),
                _ => rules::first_fire(spec, &parsed, now)?,
            };
            self.write(
                "INSERT INTO {s}.schedules (name, queue, cron, payload, priority, expires_ms, next_fire_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                 ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, cron = excluded.cron,
                     payload = excluded.payload, priority = excluded.priority, expires_ms = excluded.expires_ms,
                     next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at",
                &[&spec.name, &spec.queue, &expr, &spec.payload, &spec.priority, &expires, &next, &now],
            )?;
            Ok(())
        })
    }

    fn schedule_remove(&self, name: &str) -> Result<bool> {
        Ok(!self
            .write(
                "DELETE FROM {s}.schedules WHERE name = $1 RETURNING 1",
                &[&name],
            )?
            .is_empty())
    }

    fn schedule_list(&self) -> Result<Vec<ScheduleInfo>> {
        Ok(self
            .read(
                "SELECT name, queue, cron, payload, priority, expires_ms, paused, next_fire_at, last_fire_at, last_error
                 FROM {s}.schedules ORDER BY name",
                &[],
            )?
            .iter()
            .map(schedule_row)
            .collect())
    }

    fn schedule_pause(&self, name: &str) -> Result<()> {
        if self
            .write(
                "UPDATE {s}.schedules SET paused = true WHERE name = $1 RETURNING 1",
                &[&name],
            )?
            .is_empty()
        {
            return Err(schedule_not_found(name));
        }
        Ok(())
    }

    fn schedule_resume(&self, name: &str, now: i64) -> Result<()> {
        let now = self.server_now(now)?;
        self.atomic(|| {
            let rows = self.read(
                "SELECT cron, paused FROM {s}.schedules WHERE name = $1 FOR UPDATE",
                &[&name],
            )?;
            let r = rows.first().ok_or_else(|| schedule_not_found(name))?;
            if !r.get::<_, bool>(1) {
                return Ok(());
            }
            let cron: String = r.get(0);
            let next = honker_core::cron::parse(&cron)?
                .next_after(now)
                .unwrap_or(rules::NEVER);
            self.write(
                "UPDATE {s}.schedules SET paused = false, next_fire_at = $2 WHERE name = $1",
                &[&name, &next],
            )?;
            Ok(())
        })
    }

    fn schedule_tick(&self, now: i64) -> Result<Tick> {
        let now = self.server_now(now)?;
        self.atomic(|| self.tick(now))
    }

    fn schedule_tick_fenced(&self, lock_name: &str, token: i64, now: i64) -> Result<Option<Tick>> {
        let now = self.server_now(now)?;
        self.atomic(|| {
            let holds = !self
                .read(
                    "SELECT 1 FROM {s}.locks WHERE name = $1 AND token = $2 AND expires_at > $3 FOR SHARE",
                    &[&lock_name, &token, &now],
                )?
                .is_empty();
            if !holds {
                return Ok(None);
            }
            self.tick(now).map(Some)
        })
    }

    fn schedule_soonest(&self) -> Result<Option<i64>> {
        Ok(self
            .read(
                "SELECT next_fire_at FROM {s}.schedules WHERE NOT paused ORDER BY next_fire_at LIMIT 1",
                &[],
            )?
            .first()
            .map(|r| r.get::<_, i64>(0))
            .filter(|&t| t != rules::NEVER))
    }

    fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<usize> {
        let params: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let sql = crate::placeholders::rewrite(sql);
        let n = self
            .client
            .borrow_mut()
            .execute(sql.as_str(), &refs)
            .map_err(|e| self.failed(e))?;
        self.wrote.set(true);
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Rows> {
        let params: Vec<Param<'_>> = params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let mut client = self.client.borrow_mut();
        let stmt = client
            .prepare(&crate::placeholders::rewrite(sql))
            .map_err(|e| self.failed(e))?;
        let rows = client.query(&stmt, &refs).map_err(|e| self.failed(e))?;
        Ok(Rows {
            columns: stmt
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            rows: rows
                .iter()
                .map(|r| (0..r.len()).map(|i| value(r, i)).collect())
                .collect(),
        })
    }
}

/// A notification from `id, channel, payload, created_at`.
pub(crate) fn notification_row(r: &Row) -> Notification {
    Notification {
        id: r.get(0),
        channel: r.get(1),
        payload: r.get(2),
        created_at_ms: r.get(3),
    }
}

fn schedule_row(r: &Row) -> ScheduleInfo {
    ScheduleInfo {
        name: r.get(0),
        queue: r.get(1),
        cron: r.get(2),
        payload: r.get(3),
        priority: r.get(4),
        expires_ms: r.get(5),
        paused: r.get(6),
        next_fire_at_ms: r.get(7),
        last_fire_at_ms: r.get(8),
        last_error: r.get(9),
    }
}

fn schedule_not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "schedule",
        id: format!("{name:?}"),
    }
}

impl PgStore {
    /// `now`, or the server's time when it keeps the time (the schedules'
    /// cron rules run here, in Rust).
    fn server_now(&self, now: i64) -> Result<i64> {
        if !self.server_clock {
            return Ok(now);
        }
        Self::one(self.read("SELECT {s}.now_ms()", &[])?)
    }

    /// Fires every due schedule; each fire in a savepoint of its own, a
    /// failed one moving its schedule on with the reason.
    fn tick(&self, now: i64) -> Result<Tick> {
        let due: Vec<ScheduleInfo> = self
            .read(
                "SELECT name, queue, cron, payload, priority, expires_ms, paused, next_fire_at, last_fire_at, last_error
                 FROM {s}.schedules WHERE NOT paused AND next_fire_at <= $1
                 ORDER BY next_fire_at, name FOR UPDATE SKIP LOCKED",
                &[&now],
            )?
            .iter()
            .map(schedule_row)
            .collect();
        let mut fired = Vec::with_capacity(due.len());
        let mut failed = Vec::new();
        for s in due {
            self.batch("SAVEPOINT honker_fire")?;
            match self.fire(&s, now) {
                Ok(f) => {
                    self.batch("RELEASE SAVEPOINT honker_fire")?;
                    fired.push(f);
                }
                Err(error) => {
                    self.batch("ROLLBACK TO SAVEPOINT honker_fire; RELEASE SAVEPOINT honker_fire")?;
                    let next = honker_core::cron::parse(&s.cron)
                        .map(|c| rules::following(&c, s.next_fire_at_ms, now))
                        .unwrap_or(rules::NEVER);
                    self.write(
                        "UPDATE {s}.schedules SET next_fire_at = $3, last_error = $4
                         WHERE name = $1 AND next_fire_at = $2",
                        &[
                            &s.name,
                            &s.next_fire_at_ms,
                            &next,
                            &format!("the fire at {} ms failed: {error}", s.next_fire_at_ms),
                        ],
                    )?;
                    failed.push(FireFailure {
                        name: s.name,
                        fire_at_ms: s.next_fire_at_ms,
                        error,
                    });
                }
            }
        }
        Ok((fired, failed))
    }

    fn fire(&self, s: &ScheduleInfo, now: i64) -> Result<Fired> {
        let schedule = honker_core::cron::parse(&s.cron)?;
        let opts = EnqueueOpts {
            priority: s.priority,
            expires: s
                .expires_ms
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            key: Some(format!("schedule:{}:{}", s.name, s.next_fire_at_ms)),
            ..EnqueueOpts::default()
        };
        let o = options(&opts, DEFAULT_MAX_ATTEMPTS)?;
        let job_id: i64 = Self::one(self.write(
            "SELECT {s}.enqueue($1, $2, $3::text::jsonb, $4)",
            &[&s.queue, &s.payload, &o, &now],
        )?)?;
        let next = rules::following(&schedule, s.next_fire_at_ms, now);
        self.write(
            "UPDATE {s}.schedules SET next_fire_at = $3, last_fire_at = $4, last_error = NULL
             WHERE name = $1 AND next_fire_at = $2",
            &[&s.name, &s.next_fire_at_ms, &next, &now],
        )?;
        Ok(Fired {
            name: s.name.clone(),
            queue: s.queue.clone(),
            job_id,
            fire_at_ms: s.next_fire_at_ms,
        })
    }
}
