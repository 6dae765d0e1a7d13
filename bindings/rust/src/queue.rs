use crate::{Database, Result, Transaction};
use honker_core::{
    EnqueueOpts, JobRecord, QueueControls, QueueOpts, QueueRateLimit, QueueRetention, QueueStats,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// A named queue on a [`Database`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Database,
    name: Arc<str>,
    opts: QueueOpts,
}

impl Queue {
    pub(crate) fn new(db: Database, name: &str, opts: QueueOpts) -> Queue {
        Queue {
            db,
            name: name.into(),
            opts,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options this handle claims with.
    pub fn opts(&self) -> &QueueOpts {
        &self.opts
    }

    /// The database this queue lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Enqueues a job whose payload is `payload` serialized as JSON. Returns
    /// the job id (with an idempotency key a live job already holds, that
    /// job's id).
    pub fn enqueue<P: Serialize + ?Sized>(&self, payload: &P, opts: EnqueueOpts) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        self.db
            .ops()
            .enqueue(&self.name, &payload, &opts, self.opts.max_attempts)
    }

    /// Enqueues inside `tx`: the job exists only if `tx` commits.
    pub fn enqueue_tx<P: Serialize + ?Sized>(
        &self,
        tx: &Transaction,
        payload: &P,
        opts: EnqueueOpts,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        tx.ops(&self.db)?
            .enqueue(&self.name, &payload, &opts, self.opts.max_attempts)
    }

    /// Enqueues a run of task `task` with `payload` as its one argument
    /// (the envelope `{"task": task, "args": [payload]}`). Returns the job
    /// id; [`Database::wait_job`](crate::Database::wait_job) awaits its result.
    pub fn enqueue_task<P: Serialize + ?Sized>(
        &self,
        task: &str,
        payload: &P,
        opts: EnqueueOpts,
    ) -> Result<i64> {
        let env = crate::worker::task_envelope(task, payload)?;
        self.enqueue_raw(&env, opts)
    }

    pub(crate) fn enqueue_raw(&self, payload: &str, opts: EnqueueOpts) -> Result<i64> {
        self.db
            .ops()
            .enqueue(&self.name, payload, &opts, self.opts.max_attempts)
    }

    /// [`Queue::enqueue_task`] inside `tx`: the job exists only if `tx`
    /// commits.
    pub fn enqueue_task_tx<P: Serialize + ?Sized>(
        &self,
        tx: &Transaction,
        task: &str,
        payload: &P,
        opts: EnqueueOpts,
    ) -> Result<i64> {
        let env = crate::worker::task_envelope(task, payload)?;
        tx.ops(&self.db)?
            .enqueue(&self.name, &env, &opts, self.opts.max_attempts)
    }

    /// Enqueues many jobs with the same options in one transaction; all or
    /// none. Returns their ids in order.
    pub fn enqueue_many<P: Serialize>(
        &self,
        payloads: &[P],
        opts: EnqueueOpts,
    ) -> Result<Vec<i64>> {
        let payloads = encode_all(payloads)?;
        self.db
            .ops()
            .enqueue_many(&self.name, &payloads, &opts, self.opts.max_attempts)
    }

    /// [`Queue::enqueue_many`] inside `tx`.
    pub fn enqueue_many_tx<P: Serialize>(
        &self,
        tx: &Transaction,
        payloads: &[P],
        opts: EnqueueOpts,
    ) -> Result<Vec<i64>> {
        let payloads = encode_all(payloads)?;
        tx.ops(&self.db)?
            .enqueue_many(&self.name, &payloads, &opts, self.opts.max_attempts)
    }

    /// Claims the best due job for `worker`, if any, leasing it for the
    /// queue's visibility timeout.
    pub fn claim_one(&self, worker: &str) -> Result<Option<Job>> {
        Ok(self.claim_batch(worker, 1)?.pop())
    }

    /// Claims up to `n` due jobs for `worker`, best first.
    pub fn claim_batch(&self, worker: &str, n: usize) -> Result<Vec<Job>> {
        let records = self
            .db
            .ops()
            .claim(&self.name, worker, n, self.opts.visibility_timeout)?;
        Ok(records
            .into_iter()
            .map(|record| Job::new(record, self.db.clone()))
            .collect())
    }

    /// Acks, in one transaction, every job of `jobs` whose claim is still
    /// current, each fenced exactly as [`Job::ack`] is (a job whose lease
    /// lapsed and was claimed again, even by a worker of the same name, is
    /// not acked). Returns how many were acked.
    pub fn ack_batch(&self, jobs: &[Job]) -> Result<usize> {
        let leases = leases(jobs);
        self.db.ops().ack_batch(&leases)
    }

    /// [`Queue::ack_batch`] inside `tx`.
    pub fn ack_batch_tx(&self, tx: &Transaction, jobs: &[Job]) -> Result<usize> {
        let leases = leases(jobs);
        tx.ops(&self.db)?.ack_batch(&leases)
    }

    /// Looks up a job (live or dead) by id.
    pub fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
        self.db.ops().get_job(id)
    }

    /// Removes a live job whatever its state; a worker holding it then has
    /// its ack, retry, fail and heartbeat refused. False if no such job.
    pub fn cancel(&self, id: i64) -> Result<bool> {
        self.db.ops().cancel(id)
    }

    /// The `limit` most recently dead jobs of this queue, newest first.
    pub fn dead_jobs(&self, limit: usize) -> Result<Vec<JobRecord>> {
        self.db.ops().dead_jobs(&self.name, limit)
    }

    /// Moves a dead job back to this queue, ready now with a fresh attempt
    /// budget and the same id. `Error::NotFound` if it is not dead.
    pub fn requeue_dead(&self, id: i64) -> Result<()> {
        self.db.ops().requeue_dead(id)
    }

    /// Moves every dead job of this queue back (only those dead for
    /// `reason`, such as `"failed"` or `"lease_expired"`, if given), each as
    /// [`Queue::requeue_dead`] moves one, in one transaction. A job whose
    /// idempotency key a live job holds stays dead. Returns how many moved.
    pub fn requeue_dead_all(&self, reason: Option<&str>) -> Result<usize> {
        self.db.ops().requeue_dead_all(&self.name, reason)
    }

    /// Removes each live job of `ids` whatever its state (as
    /// [`Queue::cancel`] removes one), in one transaction; how many.
    pub fn cancel_many(&self, ids: &[i64]) -> Result<usize> {
        self.db.ops().cancel_many(ids)
    }

    /// Dead-letters every job of this queue past its start deadline; returns
    /// how many. (Claims do this on their way; this is for idle queues.)
    pub fn sweep_expired(&self) -> Result<usize> {
        self.db.ops().sweep_expired(Some(&self.name))
    }

    /// Deletes every ready job of this queue (claimable now, delayed jobs
    /// whose time has come included) and returns how many: for clearing a
    /// backlog. Jobs scheduled for later, jobs a worker holds and dead jobs
    /// stay; purged jobs are gone, not dead-lettered.
    pub fn purge(&self) -> Result<usize> {
        self.db.ops().purge(&self.name)
    }

    /// Counts of this queue's jobs by state.
    pub fn stats(&self) -> Result<QueueStats> {
        self.db.ops().queue_stats(&self.name)
    }

    /// Pauses this queue in every process sharing the file: claims take
    /// nothing until [`Queue::resume`] (enqueues, acks and the jobs already
    /// running go on). Returns whether it was running.
    pub fn pause(&self) -> Result<bool> {
        self.db.ops().pause(&self.name)
    }

    /// Resumes a paused queue; waiting workers in every process wake at
    /// once. Returns whether it was paused.
    pub fn resume(&self) -> Result<bool> {
        self.db.ops().resume(&self.name)
    }

    /// Limits how many of this queue's jobs are leased at once, across
    /// every process (`None`: no limit, the default). Claims take at most
    /// the room left. At least 1.
    pub fn set_max_in_flight(&self, max: Option<u32>) -> Result<()> {
        self.db.ops().set_max_in_flight(&self.name, max)
    }

    /// Limits how many of this queue's jobs are claimed per fixed window
    /// (windows start at every multiple of `per` since the epoch), across
    /// every process (`None`: no limit, the default). Claims take at most
    /// what is left of the current window.
    pub fn set_rate_limit(&self, rate: Option<QueueRateLimit>) -> Result<()> {
        self.db.ops().set_rate_limit(&self.name, rate)
    }

    /// Sets what of this queue's history is kept, for every process
    /// sharing the file (both limits, replacing the old ones). By default
    /// an acked job is deleted and a dead job stays until it is requeued;
    /// with `completed` set, acked jobs are kept (state `completed`, with
    /// their result, attempts, timings and last error) within its limits;
    /// with `dead` set, dead jobs past its limits are pruned. Pruning is
    /// automatic and amortized (see [`QueueRetention`]);
    /// [`Queue::prune`] applies the limits exactly.
    pub fn set_retention(&self, retention: QueueRetention) -> Result<()> {
        self.db.ops().set_queue_retention(&self.name, retention)
    }

    /// Turns this queue's lifecycle events on or off, for every process
    /// sharing the file. While on, each change of its jobs' states
    /// (`enqueued`, `started`, `completed`, `failed`, `retried`, `dead`,
    /// `released`, `cancelled`) is published to the stream
    /// [`EVENTS_STREAM`](crate::EVENTS_STREAM) (`honker:events`), keyed by the
    /// queue's name, in the transaction that makes the change: read it
    /// with a saved offset (`db.stream(EVENTS_STREAM)`) and no event is
    /// missed. Turning them on gives that stream a retention of 7 days if
    /// it has none.
    pub fn set_events(&self, on: bool) -> Result<()> {
        self.db.ops().set_events(&self.name, on)
    }

    /// Applies this queue's retention now, exactly; returns how many
    /// completed and dead jobs were removed.
    pub fn prune(&self) -> Result<usize> {
        self.db.ops().prune_queue(&self.name)
    }

    /// This queue's controls, as stored in the file.
    pub fn controls(&self) -> Result<QueueControls> {
        self.db.ops().queue_controls(&self.name)
    }

    /// A waker that blocks until the next job can be claimed (no polling).
    pub fn claim_waker(&self) -> crate::ClaimWaker {
        crate::ClaimWaker::new(self.clone())
    }

    /// The earliest future moment a scheduled job becomes due or a lease
    /// ends, in ms since the epoch.
    pub fn next_deadline_ms(&self) -> Result<Option<i64>> {
        self.db.ops().next_deadline(&self.name)
    }
}

fn leases(jobs: &[Job]) -> Vec<honker_core::Lease<'_>> {
    jobs.iter().map(|j| j.record.lease()).collect()
}

fn encode_all<P: Serialize>(payloads: &[P]) -> Result<Vec<String>> {
    payloads
        .iter()
        .map(|p| honker_core::encode("payload", p))
        .collect()
}

/// A claimed job: its data and its lease. Ack, retry, fail and heartbeat
/// apply only while this claim's lease is current; otherwise they return
/// `Ok(false)` and change nothing.
#[derive(Debug, Clone)]
pub struct Job {
    record: JobRecord,
    db: Database,
}

impl std::ops::Deref for Job {
    type Target = JobRecord;
    fn deref(&self) -> &JobRecord {
        &self.record
    }
}

impl Job {
    pub(crate) fn new(record: JobRecord, db: Database) -> Job {
        Job { record, db }
    }

    /// Everything stored about the job, as of the claim.
    pub fn record(&self) -> &JobRecord {
        &self.record
    }

    /// Decodes the JSON payload into `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T> {
        self.record.payload_as()
    }

    /// Completes the job (deletes it). False if the lease was lost.
    pub fn ack(&self) -> Result<bool> {
        self.db.ops().ack(self.record.lease())
    }

    /// Completes the job inside `tx`, together with the business writes
    /// that record its effect.
    pub fn ack_tx(&self, tx: &Transaction) -> Result<bool> {
        tx.ops(&self.db)?.ack(self.record.lease())
    }

    /// Gives the job back for another attempt after `delay` (default:
    /// exponential backoff with jitter, 1 s, 2 s, 4 s… up to 1 h), noting
    /// `error`. Out of attempts, it goes to the dead table instead.
    pub fn retry(&self, delay: Option<Duration>, error: &str) -> Result<bool> {
        self.db.ops().retry(self.record.lease(), delay, error)
    }

    /// Gives the job back untouched: ready again at once, in its old place,
    /// and this claim's attempt is not counted. For a worker that will not
    /// start the job (shutting down, say). False if the lease is not current.
    pub fn release(&self) -> Result<bool> {
        self.db.ops().release(self.record.lease())
    }

    /// Sends the job to the dead table with `error`.
    pub fn fail(&self, error: &str) -> Result<bool> {
        self.db.ops().fail(self.record.lease(), error)
    }

    /// Extends the lease to `extend` from now.
    pub fn heartbeat(&self, extend: Duration) -> Result<bool> {
        self.db.ops().heartbeat(self.record.lease(), extend)
    }
}
