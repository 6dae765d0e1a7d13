//! The runner of one vector: each op on the Rust API, compared with what the
//! vector expects.

use super::*;
use honker::{EnqueueOpts, QueueOpts};
use serde_json::json;

impl Runner {
    pub(super) fn new(path: &Path) -> Runner {
        Runner {
            db: Database::open(path).expect("open a fresh database"),
            schema: None,
            labels: HashMap::new(),
            job_labels: HashMap::new(),
            leases: HashSet::new(),
            jobs: HashMap::new(),
            locks: HashMap::new(),
        }
    }

    /// An id or offset: an integer, or the label of one.
    fn refer(&self, v: &Value) -> Result<i64, Outcome> {
        match v {
            Value::String(s) => self
                .labels
                .get(s)
                .copied()
                .ok_or_else(|| vector(format!("unknown label {s:?}"))),
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap()),
            other => Err(vector(format!(
                "expected an integer or a label, got {other}"
            ))),
        }
    }

    fn job_name(&self, id: i64) -> String {
        self.job_labels
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// The claimed handle for the lease a step names.
    fn handle(&self, args: &Map<String, Value>) -> Result<&Job, Outcome> {
        let lease: Lease = (
            self.refer(arg(args, "job")?)?,
            arg_str(args, "worker")?.to_string(),
            u32::try_from(arg_u64(args, "attempt")?).map_err(|_| vector("attempt too large"))?,
        );
        let forged = args.get("forged").and_then(Value::as_bool).unwrap_or(false);
        let claimed = self.leases.contains(&lease);
        if forged && claimed {
            return Err(vector(format!(
                "lease {lease:?} is marked forged but a claim returned it"
            )));
        }
        if !forged && !claimed {
            return Err(vector(format!(
                "no claim returned lease {lease:?}; mark it \"forged\": true if that is the point"
            )));
        }
        self.jobs.get(&lease).ok_or_else(|| {
            Outcome::Skip(
                "not available in Rust: a forged lease (one no claim returned) cannot be \
                 expressed; Job::ack/retry/fail always act on their own claim's lease"
                    .into(),
            )
        })
    }

    fn queue(&self, args: &Map<String, Value>) -> honker::Queue {
        let name = args
            .get("queue")
            .and_then(Value::as_str)
            .unwrap_or("default");
        self.db.queue(name, QueueOpts::default())
    }

    fn stream(&self, args: &Map<String, Value>) -> Result<honker::Stream, Outcome> {
        Ok(self.db.stream(arg_str(args, "stream")?))
    }

    /// Runs one op; returns its result as JSON (job ids, leases, offsets and
    /// tokens as integers), or the binding's error.
    fn call(
        &mut self,
        op: &str,
        a: &Map<String, Value>,
    ) -> Result<Result<Value, OpError>, Outcome> {
        let r: Result<Value, honker::Error> = match op {
            "enqueue" => {
                let mut opts = EnqueueOpts::default();
                if let Some(v) = a.get("run_at") {
                    let s = v.as_f64().ok_or_else(|| vector("run_at is not a number"))?;
                    opts.run_at = Some(UNIX_EPOCH + Duration::from_secs_f64(s));
                }
                if a.contains_key("delay_s") {
                    opts.delay = Some(Duration::from_secs_f64(arg_f64(a, "delay_s")?));
                }
                if a.contains_key("priority") {
                    opts.priority = arg_i64(a, "priority")?;
                }
                if a.contains_key("max_attempts") {
                    opts.max_attempts = Some(arg_u64(a, "max_attempts")? as u32);
                }
                if a.contains_key("key") {
                    opts.key = Some(arg_str(a, "key")?.to_string());
                }
                self.queue(a)
                    .enqueue(arg(a, "payload")?, opts)
                    .map(Value::from)
            }
            "claim" => {
                let worker = arg_str(a, "worker")?.to_string();
                let n = arg_u64(a, "n")? as usize;
                match self.queue(a).claim_batch(&worker, n) {
                    Ok(jobs) => {
                        let mut out = Vec::new();
                        for job in jobs {
                            let lease = (job.id, worker.clone(), job.attempts);
                            out.push(json!([job.id, worker, job.attempts]));
                            self.leases.insert(lease.clone());
                            self.jobs.insert(lease, job);
                        }
                        Ok(Value::Array(out))
                    }
                    Err(e) => Err(e),
                }
            }
            "ack" => self.handle(a)?.ack().map(Value::from),
            "release" => self.handle(a)?.release().map(Value::from),
            "retry" => {
                let delay = Duration::from_secs_f64(arg_f64(a, "delay_s")?);
                let error = a.get("error").and_then(Value::as_str).unwrap_or("");
                self.handle(a)?.retry(Some(delay), error).map(Value::from)
            }
            "fail" => {
                let error = a.get("error").and_then(Value::as_str).unwrap_or("");
                self.handle(a)?.fail(error).map(Value::from)
            }
            "dead_jobs" => {
                let limit = a.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
                self.queue(a)
                    .dead_jobs(limit)
                    .map(|jobs| jobs.iter().map(|j| j.id).collect::<Vec<_>>().into())
            }
            "requeue_dead" => {
                let id = self.refer(arg(a, "job")?)?;
                self.queue(a).requeue_dead(id).map(|()| Value::Bool(true))
            }
            "get_job_state" => {
                let id = self.refer(arg(a, "job")?)?;
                match self.queue(a).get_job(id) {
                    Ok(None) => Ok(Value::Null),
                    Ok(Some(j)) => Ok(json!({
                        "queue": j.queue,
                        "payload": serde_json::from_str::<Value>(&j.payload)
                            .map_err(|e| mismatch(format!("payload is not JSON: {e}")))?,
                        "state": j.state.as_str(),
                        "priority": j.priority,
                        "attempts": j.attempts,
                        "max_attempts": j.max_attempts,
                        "worker_id": j.worker_id,
                        "key": j.key,
                        "last_error": j.last_error,
                        "dead_reason": j.dead_reason,
                    })),
                    Err(e) => Err(e),
                }
            }
            "cancel" => {
                let id = self.refer(arg(a, "job")?)?;
                self.queue(a).cancel(id).map(Value::from)
            }
            "purge" => self.queue(a).purge().map(|n| Value::from(n as i64)),
            "queues" => self.db.queues().map(|qs| {
                Value::Array(
                    qs.iter()
                        .map(|q| {
                            json!({"name": q.name, "ready": q.stats.ready, "scheduled": q.stats.scheduled,
                                   "processing": q.stats.processing, "dead": q.stats.dead,
                                   "completed": q.stats.completed, "paused": q.controls.paused})
                        })
                        .collect(),
                )
            }),
            "streams" => self.db.streams().map(|ss| {
                Value::Array(
                    ss.iter()
                        .map(|s| {
                            let lags: Map<String, Value> = s
                                .consumers
                                .iter()
                                .map(|c| (c.name.clone(), Value::from(c.lag)))
                                .collect();
                            json!({"name": s.name, "lags": lags})
                        })
                        .collect(),
                )
            }),
            "list_jobs" => (|before: Option<i64>| {
                let state = a
                    .get("state")
                    .and_then(Value::as_str)
                    .map(honker::JobState::from_name)
                    .transpose()?;
                let filter = honker::JobFilter {
                    queue: a.get("queue").and_then(Value::as_str).map(String::from),
                    state,
                    task: a.get("task").and_then(Value::as_str).map(String::from),
                    key: a.get("key").and_then(Value::as_str).map(String::from),
                    before_id: before,
                    limit: a.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize,
                    ..Default::default()
                };
                self.db
                    .jobs(&filter)
                    .map(|jobs| Value::Array(jobs.iter().map(|j| Value::from(j.id)).collect()))
            })(a.get("before").map(|b| self.refer(b)).transpose()?),
            "requeue_dead_all" => {
                let reason = a.get("reason").and_then(Value::as_str);
                self.queue(a)
                    .requeue_dead_all(reason)
                    .map(|n| Value::from(n as i64))
            }
            "cancel_many" => {
                let jobs = arg(a, "jobs")?
                    .as_array()
                    .ok_or_else(|| vector("jobs must be a list"))?;
                let ids = jobs
                    .iter()
                    .map(|j| self.refer(j))
                    .collect::<Result<Vec<i64>, Outcome>>()?;
                self.queue(a)
                    .cancel_many(&ids)
                    .map(|n| Value::from(n as i64))
            }
            "pause" => self.queue(a).pause().map(Value::from),
            "resume" => self.queue(a).resume().map(Value::from),
            "set_max_in_flight" => {
                let max = match a.get("max") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| vector(format!("max must be a u32 or null, got {v}")))?,
                    ),
                };
                self.queue(a)
                    .set_max_in_flight(max)
                    .map(|_| Value::from(true))
            }
            "set_rate_limit" => {
                let rate =
                    match a.get("limit") {
                        None | Some(Value::Null) => None,
                        Some(v) => {
                            let limit = v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(
                                || vector(format!("limit must be a u32 or null, got {v}")),
                            )?;
                            let per_s = a
                                .get("per_s")
                                .and_then(Value::as_f64)
                                .ok_or_else(|| vector("per_s must be a number"))?;
                            Some(honker::QueueRateLimit {
                                limit,
                                per: Duration::from_secs_f64(per_s),
                            })
                        }
                    };
                self.queue(a)
                    .set_rate_limit(rate)
                    .map(|_| Value::from(true))
            }
            "queue_controls" => self.queue(a).controls().map(|c| {
                let rate = c
                    .rate_limit
                    .map(|r| json!({"limit": r.limit, "per_s": secs(r.per)}));
                let keep = |r: Option<honker::Retention>| {
                    r.map(|r| json!({"max_age_s": r.max_age.map(secs), "max_count": r.max_count}))
                };
                json!({"paused": c.paused, "max_in_flight": c.max_in_flight, "rate_limit": rate,
                       "retention": {"completed": keep(c.retention.completed),
                                     "dead": keep(c.retention.dead)},
                       "events": c.events})
            }),
            "set_events" => {
                let on = a
                    .get("on")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| vector("on must be a boolean"))?;
                self.queue(a).set_events(on).map(|_| Value::Bool(true))
            }
            "events" => self
                .db
                .stream(honker::EVENTS_STREAM)
                .read_since(0, 1000)
                .map(|events| {
                    events
                        .iter()
                        .map(|e| {
                            let v: Value = serde_json::from_str(&e.payload).unwrap_or_default();
                            json!([v["type"], v["job_id"]])
                        })
                        .collect()
                }),
            "set_retention" => {
                let keep = |t: &str| match a.get(t) {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(honker::Retention {
                        max_age: v
                            .get("max_age_s")
                            .and_then(Value::as_f64)
                            .map(Duration::from_secs_f64),
                        max_count: v.get("max_count").and_then(Value::as_u64),
                    }),
                };
                let r = honker::QueueRetention {
                    completed: keep("completed"),
                    dead: keep("dead"),
                };
                self.queue(a).set_retention(r).map(|_| Value::Bool(true))
            }
            "prune" => self.queue(a).prune().map(|n| Value::from(n as i64)),
            "rate_limit" => self
                .db
                .try_rate_limit(
                    arg_str(a, "key")?,
                    arg_u64(a, "limit")?,
                    arg_u64(a, "per_s")?,
                )
                .map(Value::from),
            "cron_next" => honker::cron::next_fire(
                arg_str(a, "expr")?,
                a.get("tz").and_then(Value::as_str),
                arg_i64(a, "after_ms")?,
            )
            .map(Value::from),
            "publish" => {
                let s = self.stream(a)?;
                let payload = arg(a, "payload")?;
                match a.get("key").and_then(Value::as_str) {
                    Some(key) => s.publish_with_key(key, payload),
                    None => s.publish(payload),
                }
                .map(Value::from)
            }
            "read_since" => {
                let offset = self.refer(arg(a, "offset")?)?;
                let limit = a.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
                match self.stream(a)?.read_since(offset, limit) {
                    Ok(events) => {
                        let mut out = Vec::new();
                        for e in events {
                            let payload: Value = serde_json::from_str(&e.payload)
                                .map_err(|err| mismatch(format!("payload is not JSON: {err}")))?;
                            out.push(json!({"offset": e.offset, "key": e.key, "payload": payload}));
                        }
                        Ok(Value::Array(out))
                    }
                    Err(e) => Err(e),
                }
            }
            "save_offset" => {
                let offset = self.refer(arg(a, "offset")?)?;
                self.stream(a)?
                    .save_offset(arg_str(a, "consumer")?, offset)
                    .map(Value::from)
            }
            "get_offset" => self
                .stream(a)?
                .get_offset(arg_str(a, "consumer")?)
                .map(Value::from),
            "lock_acquire" => {
                match self.db.try_lock(
                    arg_str(a, "name")?,
                    arg_str(a, "owner")?,
                    arg_u64(a, "ttl_s")?,
                ) {
                    Ok(Some(lock)) => {
                        let token = lock.fencing_token();
                        self.locks.insert(token, lock);
                        Ok(Value::from(token))
                    }
                    Ok(None) => Ok(Value::Null),
                    Err(e) => Err(e),
                }
            }
            "lock_release" => {
                let token = self.refer(arg(a, "lock")?)?;
                let lock = self
                    .locks
                    .remove(&token)
                    .ok_or_else(|| vector(format!("no held lock with token {token}")))?;
                lock.release().map(Value::from)
            }
            "ack_batch" => {
                let items = arg(a, "leases")?
                    .as_array()
                    .ok_or_else(|| vector("leases is not a list"))?;
                let mut jobs = Vec::new();
                for item in items {
                    let item = item
                        .as_object()
                        .ok_or_else(|| vector("a lease is not an object"))?;
                    jobs.push(self.handle(item)?.clone());
                }
                self.queue(a).ack_batch(&jobs).map(Value::from)
            }
            "schedule_add" => self
                .db
                .scheduler()
                .add(honker::ScheduledTask {
                    name: arg_str(a, "name")?.into(),
                    queue: arg_str(a, "queue")?.into(),
                    cron: arg_str(a, "cron")?.into(),
                    payload: arg(a, "payload")?.clone(),
                    priority: 0,
                    expires_s: None,
                })
                .map(|()| Value::Bool(true)),
            "schedule_tick" => self
                .db
                .scheduler()
                .tick()
                .map(|fired| fired.into_iter().map(|f| Value::from(f.name)).collect()),
            "schedule_error" => {
                let prefix = arg_str(a, "name_prefix")?;
                match self.db.scheduler().list() {
                    Ok(list) => {
                        let found: Vec<_> =
                            list.iter().filter(|s| s.name.starts_with(prefix)).collect();
                        if found.len() != 1 {
                            return Err(vector(format!(
                                "{} schedules start with {prefix:?}",
                                found.len()
                            )));
                        }
                        Ok(Value::Bool(found[0].last_error.is_some()))
                    }
                    Err(e) => Err(e),
                }
            }
            "execute" => {
                let sql = match &self.schema {
                    None => arg_str(a, "sql")?.to_string(),
                    Some(schema) => arg_str(a, "sql_postgres")?.replace("{schema}", schema),
                };
                let params: Vec<Value> = a
                    .get("params")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let values: Vec<honker_core::SqlValue> = params
                    .iter()
                    .map(|p| match p {
                        Value::Null => honker_core::SqlValue::Null,
                        Value::Number(n) if n.is_i64() => {
                            honker_core::SqlValue::Integer(n.as_i64().unwrap())
                        }
                        Value::Number(n) => honker_core::SqlValue::Real(n.as_f64().unwrap()),
                        other => {
                            honker_core::SqlValue::Text(other.as_str().unwrap_or_default().into())
                        }
                    })
                    .collect();
                // The engine's own execute: the same on SQLite and PostgreSQL.
                self.db
                    .core()
                    .by(honker_core::Caller::this_thread())
                    .execute(&sql, values)
                    .map(Value::from)
            }
            other => return Err(vector(format!("unknown op {other:?}"))),
        };
        Ok(r.map_err(OpError::from))
    }

    /// `{"after": label}`, true, false, or an exact integer or label.
    fn expect_after(&self, expect: &Value, got: &Value, what: &str) -> Result<(), Outcome> {
        let got = got.as_i64();
        match expect {
            Value::Object(o) if o.len() == 1 && o.contains_key("after") => {
                let floor = self.refer(&o["after"])?;
                if got.is_none_or(|g| g <= floor) {
                    return Err(mismatch(format!(
                        "expected {what} greater than {} ({floor}), got {got:?}",
                        o["after"]
                    )));
                }
            }
            Value::Bool(b) => {
                if got.is_some() != *b {
                    return Err(mismatch(format!("expected {b}, got {what} {got:?}")));
                }
            }
            Value::Number(_) | Value::String(_) => {
                let want = self.refer(expect)?;
                if got != Some(want) {
                    return Err(mismatch(format!(
                        "expected {what} {expect} ({want}), got {got:?}"
                    )));
                }
            }
            other => return Err(vector(format!("bad expectation {other}"))),
        }
        Ok(())
    }

    pub(super) fn step(&mut self, step: &Value) -> Result<(), Outcome> {
        let op = step["op"]
            .as_str()
            .ok_or_else(|| vector("step has no op"))?;
        if !OPS.contains(&op) {
            return Err(vector(format!("unknown op {op:?}")));
        }
        let empty = Map::new();
        let args = step
            .get("args")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let expect = step.get("expect");
        let label = step.get("as").and_then(Value::as_str);
        let got = match self.call(op, args)? {
            Ok(v) => v,
            Err(e) => {
                return match is_error_expectation(expect) {
                    Some(code) if code == e.code => Ok(()),
                    Some(code) => Err(mismatch(format!(
                        "expected error {code:?}, got {:?}: {}",
                        e.code, e.message
                    ))),
                    None => Err(mismatch(format!(
                        "unexpected error {:?}: {}",
                        e.code, e.message
                    ))),
                };
            }
        };
        if let Some(code) = is_error_expectation(expect) {
            return Err(mismatch(format!("expected error {code:?}, got {got}")));
        }
        match op {
            "enqueue" => {
                let id = got.as_i64().unwrap();
                match expect {
                    Some(Value::String(l)) => {
                        let want = self.refer(&Value::String(l.clone()))?;
                        if id != want {
                            return Err(mismatch(format!(
                                "expected the id of {l} ({want}), got {id}"
                            )));
                        }
                    }
                    Some(_) => return Err(vector("enqueue's expect is a job label")),
                    None => {
                        if let Some(l) = self.job_labels.get(&id) {
                            return Err(mismatch(format!(
                                "expected a new job id, got {id} (the id of {l})"
                            )));
                        }
                    }
                }
                if let Some(l) = label {
                    self.labels.insert(l.to_string(), id);
                    self.job_labels.entry(id).or_insert_with(|| l.to_string());
                }
            }
            "events" => {
                let names: Vec<Value> = got
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        let id = v[1].as_i64().unwrap_or(0);
                        format!("{} {}", v[0].as_str().unwrap_or("?"), self.job_name(id)).into()
                    })
                    .collect();
                if let Some(e) = expect {
                    if *e != Value::Array(names.clone()) {
                        return Err(mismatch(format!(
                            "expected {e}, got {}",
                            Value::Array(names)
                        )));
                    }
                }
            }
            "claim" | "dead_jobs" | "list_jobs" => {
                let ids: Vec<i64> = got
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        if op == "claim" {
                            v[0].as_i64()
                        } else {
                            v.as_i64()
                        }
                        .unwrap()
                    })
                    .collect();
                let names: Vec<Value> = ids.iter().map(|&i| self.job_name(i).into()).collect();
                if let Some(e) = expect {
                    if *e != Value::Array(names.clone()) {
                        return Err(mismatch(format!(
                            "expected {e}, got {}",
                            Value::Array(names)
                        )));
                    }
                }
            }
            "get_job_state" => match (expect, &got) {
                (Some(Value::Null), Value::Null) | (None, _) => {}
                (Some(Value::Null), g) => {
                    return Err(mismatch(format!(
                        "expected no job, got state {}",
                        g["state"]
                    )))
                }
                (Some(e), Value::Null) => {
                    return Err(mismatch(format!("expected {e}, got no job")))
                }
                (Some(Value::String(s)), g) => subset(&json!({ "state": s }), g, "job")?,
                (Some(e), g) => subset(e, g, "job")?,
            },
            "publish" | "lock_acquire" => {
                if let Some(e) = expect {
                    let what = if op == "publish" { "offset" } else { "token" };
                    self.expect_after(e, &got, what)?;
                }
                if let Some(l) = label {
                    let v = got
                        .as_i64()
                        .ok_or_else(|| vector(format!("nothing to bind to {l:?}")))?;
                    self.labels.insert(l.to_string(), v);
                }
            }
            "read_since" => {
                if let Some(e) = expect {
                    let want = e
                        .as_array()
                        .ok_or_else(|| vector("read_since expects a list"))?;
                    let got = got.as_array().unwrap();
                    if want.len() != got.len() {
                        return Err(mismatch(format!(
                            "expected {} events, got {}",
                            want.len(),
                            Value::Array(got.clone())
                        )));
                    }
                    for (i, (w, g)) in want.iter().zip(got).enumerate() {
                        let mut w = w.clone();
                        if let Some(o) = w.get("offset").cloned() {
                            w["offset"] = self.refer(&o)?.into();
                        }
                        subset(&w, g, &format!("event[{i}]"))?;
                    }
                }
            }
            "schedule_tick" => {
                if let Some(e) = expect {
                    if *e != got {
                        return Err(mismatch(format!("expected the fires {e}, got {got}")));
                    }
                }
            }
            "queue_controls" | "queues" | "streams" => {
                if let Some(e) = expect {
                    if *e != got {
                        return Err(mismatch(format!("expected {e}, got {got}")));
                    }
                }
            }
            "ack_batch" | "execute" | "purge" | "requeue_dead_all" | "cancel_many" | "prune" => {
                if !got.is_u64() {
                    return Err(mismatch(format!("expected a count, got {got}")));
                }
                if let Some(e) = expect {
                    if *e != got {
                        return Err(mismatch(format!("expected {e}, got {got}")));
                    }
                }
            }
            "get_offset" | "cron_next" => {
                if let Some(e) = expect {
                    let want = self.refer(e)?;
                    if got.as_i64() != Some(want) {
                        return Err(mismatch(format!("expected {e} ({want}), got {got}")));
                    }
                }
            }
            _ => {
                if !got.is_boolean() {
                    return Err(mismatch(format!("expected a boolean result, got {got}")));
                }
                if let Some(e) = expect {
                    if *e != got {
                        return Err(mismatch(format!("expected {e}, got {got}")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Seconds as the vector files write them: an integer when whole.
fn secs(d: Duration) -> Value {
    let ms = d.as_millis() as u64;
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        Value::from(d.as_secs_f64())
    }
}
