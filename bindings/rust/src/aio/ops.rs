//! The `_async` twins of the short operations: each is its sync method (or
//! the engine operation behind it), run on tokio's blocking pool for the
//! calling task. Payloads are serialized on the task, before the hop.

use super::{give_back, in_background, offload, undoable};
use crate::{
    Database, Fired, Job, JobRecord, Lock, LockInfo, Queue, QueueStats, Result, Scheduler, Stream,
    Subscription, Transaction,
};
use honker_core::EnqueueOpts;
use serde::Serialize;
use std::time::Duration;

/// Runs `f` with a clone of `this` on the blocking pool.
async fn off<T, R>(this: &T, f: impl FnOnce(&T) -> Result<R> + Send + 'static) -> Result<R>
where
    T: Clone + Send + 'static,
    R: Send + 'static,
{
    let this = this.clone();
    offload(move || f(&this)).await
}

impl Database {
    /// [`Database::transaction`], awaited (feature `tokio`): waits off the
    /// runtime for the write lock. The transaction belongs to the awaiting
    /// task and may be held across `.await`s: this task's plain calls are
    /// refused with `Error::TransactionOpen` (use the `*_tx` methods, which
    /// never wait), other tasks' `_async` calls wait for its commit without
    /// blocking the runtime. Dropping the future before it resolves rolls
    /// back a transaction begun in that instant.
    pub async fn transaction_async(&self) -> Result<Transaction> {
        let db = self.clone();
        undoable(move || db.transaction(), drop).await
    }

    /// [`Database::notify`], awaited.
    pub async fn notify_async<P: Serialize + ?Sized>(
        &self,
        channel: &str,
        payload: &P,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        let channel = channel.to_string();
        off(self, move |db| db.ops().notify(&channel, &payload)).await
    }

    /// [`Database::try_lock`], awaited.
    pub async fn try_lock_async(
        &self,
        name: &str,
        owner: &str,
        ttl_s: u64,
    ) -> Result<Option<Lock>> {
        let (name, owner) = (name.to_string(), owner.to_string());
        undoable(
            {
                let db = self.clone();
                move || db.try_lock(&name, &owner, ttl_s)
            },
            // Dropping the guard releases the lock: a write, done off the
            // runtime's threads.
            |lock| in_background(move || drop(lock)),
        )
        .await
    }

    /// [`Database::lock_holder`], awaited.
    pub async fn lock_holder_async(&self, name: &str) -> Result<Option<LockInfo>> {
        let name = name.to_string();
        off(self, move |db| db.lock_holder(&name)).await
    }

    /// [`Database::try_rate_limit`], awaited.
    pub async fn try_rate_limit_async(&self, key: &str, limit: u64, per_s: u64) -> Result<bool> {
        let key = key.to_string();
        off(self, move |db| db.try_rate_limit(&key, limit, per_s)).await
    }

    /// [`Database::save_result`], awaited.
    pub async fn save_result_async(&self, job_id: i64, value: &str, ttl_s: u64) -> Result<()> {
        let value = value.to_string();
        off(self, move |db| db.save_result(job_id, &value, ttl_s)).await
    }

    /// [`Database::get_result`], awaited.
    pub async fn get_result_async(&self, job_id: i64) -> Result<Option<String>> {
        off(self, move |db| db.get_result(job_id)).await
    }
}

impl Transaction {
    /// [`Transaction::commit`], awaited (feature `tokio`). The commit goes
    /// ahead even if the future is dropped before it resolves (it cannot be
    /// taken back); await it to learn whether it succeeded.
    pub async fn commit_async(self) -> Result<()> {
        offload(move || self.commit()).await
    }

    /// [`Transaction::rollback`], awaited.
    pub async fn rollback_async(self) -> Result<()> {
        offload(move || self.rollback()).await
    }
}

impl Queue {
    /// [`Queue::enqueue`], awaited (feature `tokio`).
    pub async fn enqueue_async<P: Serialize + ?Sized>(
        &self,
        payload: &P,
        opts: EnqueueOpts,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        off(self, move |q| {
            let max_attempts = q.opts().max_attempts;
            q.database()
                .ops()
                .enqueue(q.name(), &payload, &opts, max_attempts)
        })
        .await
    }

    /// [`Queue::enqueue_task`], awaited.
    pub async fn enqueue_task_async<P: Serialize + ?Sized>(
        &self,
        task: &str,
        payload: &P,
        opts: EnqueueOpts,
    ) -> Result<i64> {
        let env = crate::worker::task_envelope(task, payload)?;
        off(self, move |q| q.enqueue_raw(&env, opts)).await
    }

    /// [`Queue::enqueue_many`], awaited.
    pub async fn enqueue_many_async<P: Serialize>(
        &self,
        payloads: &[P],
        opts: EnqueueOpts,
    ) -> Result<Vec<i64>> {
        let payloads = payloads
            .iter()
            .map(|p| honker_core::encode("payload", p))
            .collect::<Result<Vec<_>>>()?;
        off(self, move |q| {
            let max_attempts = q.opts().max_attempts;
            q.database()
                .ops()
                .enqueue_many(q.name(), &payloads, &opts, max_attempts)
        })
        .await
    }

    /// [`Queue::claim_one`], awaited (it does not wait for a job: see
    /// [`crate::ClaimWaker::next_async`] and [`Queue::claims`]). Dropping
    /// the future gives back a job claimed in that instant.
    pub async fn claim_one_async(&self, worker: &str) -> Result<Option<Job>> {
        Ok(self.claim_batch_async(worker, 1).await?.pop())
    }

    /// [`Queue::claim_batch`], awaited. Dropping the future gives back the
    /// jobs claimed in that instant.
    pub async fn claim_batch_async(&self, worker: &str, n: usize) -> Result<Vec<Job>> {
        let (q, worker) = (self.clone(), worker.to_string());
        undoable(
            move || q.claim_batch(&worker, n),
            |jobs: Vec<Job>| jobs.into_iter().for_each(give_back),
        )
        .await
    }

    /// [`Queue::ack_batch`], awaited.
    pub async fn ack_batch_async(&self, jobs: &[Job]) -> Result<usize> {
        let jobs = jobs.to_vec();
        off(self, move |q| q.ack_batch(&jobs)).await
    }

    /// [`Queue::get_job`], awaited.
    pub async fn get_job_async(&self, id: i64) -> Result<Option<JobRecord>> {
        off(self, move |q| q.get_job(id)).await
    }

    /// [`Queue::cancel`], awaited.
    pub async fn cancel_async(&self, id: i64) -> Result<bool> {
        off(self, move |q| q.cancel(id)).await
    }

    /// [`Queue::dead_jobs`], awaited.
    pub async fn dead_jobs_async(&self, limit: usize) -> Result<Vec<JobRecord>> {
        off(self, move |q| q.dead_jobs(limit)).await
    }

    /// [`Queue::requeue_dead`], awaited.
    pub async fn requeue_dead_async(&self, id: i64) -> Result<()> {
        off(self, move |q| q.requeue_dead(id)).await
    }

    /// [`Queue::purge`], awaited.
    pub async fn purge_async(&self) -> Result<usize> {
        off(self, |q| q.purge()).await
    }

    /// [`Queue::stats`], awaited.
    pub async fn stats_async(&self) -> Result<QueueStats> {
        off(self, |q| q.stats()).await
    }

    /// [`Queue::pause`], awaited.
    pub async fn pause_async(&self) -> Result<bool> {
        off(self, |q| q.pause()).await
    }

    /// [`Queue::resume`], awaited.
    pub async fn resume_async(&self) -> Result<bool> {
        off(self, |q| q.resume()).await
    }
}

impl Job {
    /// [`Job::ack`], awaited (feature `tokio`).
    pub async fn ack_async(&self) -> Result<bool> {
        off(self, |j| j.ack()).await
    }

    /// [`Job::retry`], awaited.
    pub async fn retry_async(&self, delay: Option<Duration>, error: &str) -> Result<bool> {
        let error = error.to_string();
        off(self, move |j| j.retry(delay, &error)).await
    }

    /// [`Job::release`], awaited.
    pub async fn release_async(&self) -> Result<bool> {
        off(self, |j| j.release()).await
    }

    /// [`Job::fail`], awaited.
    pub async fn fail_async(&self, error: &str) -> Result<bool> {
        let error = error.to_string();
        off(self, move |j| j.fail(&error)).await
    }

    /// [`Job::heartbeat`], awaited.
    pub async fn heartbeat_async(&self, extend: Duration) -> Result<bool> {
        off(self, move |j| j.heartbeat(extend)).await
    }
}

impl Stream {
    /// [`Stream::publish`], awaited (feature `tokio`).
    pub async fn publish_async<P: Serialize + ?Sized>(&self, payload: &P) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        off(self, move |s| {
            s.database().ops().publish(s.name(), None, &payload)
        })
        .await
    }

    /// [`Stream::publish_with_key`], awaited.
    pub async fn publish_with_key_async<P: Serialize + ?Sized>(
        &self,
        key: &str,
        payload: &P,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        let key = key.to_string();
        off(self, move |s| {
            s.database().ops().publish(s.name(), Some(&key), &payload)
        })
        .await
    }

    /// [`Stream::subscribe`], awaited (it reads the consumer's saved
    /// offset); then follow it with [`Subscription::next_async`] or as a
    /// `futures_core::Stream`.
    pub async fn subscribe_async(&self, consumer: &str) -> Result<Subscription> {
        let consumer = consumer.to_string();
        off(self, move |s| s.subscribe(&consumer)).await
    }
}

impl Scheduler {
    /// [`Scheduler::tick`], awaited (feature `tokio`).
    pub async fn tick_async(&self) -> Result<Vec<Fired>> {
        off(self, |s| s.tick()).await
    }
}
