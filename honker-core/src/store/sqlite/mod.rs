//! The SQLite engine: honker's tables in one SQLite file, each operation a
//! function over a `rusqlite::Connection` and the current time in ms.

pub mod conn;
pub mod controls;
pub mod events;
pub mod feed;
#[cfg(feature = "functions")]
pub mod functions;
pub mod listing;
pub mod lock;
pub mod notify;
pub mod queue;
pub mod rate_limit;
pub mod result;
pub mod retention;
pub mod scheduler;
pub mod schema;
pub mod statement;
pub mod stream;
pub mod wal;

use crate::error::Result;
use crate::model::{
    AckAndClaim, EnqueueOpts, Event, JobFilter, JobRecord, Lease, LockInfo, Notification,
    QueueControls, QueueRateLimit, QueueRetention, QueueStats, QueueSummary, Retention, Rows,
    ScheduleInfo, ScheduleSpec, SqlValue, StreamSummary,
};
use crate::store::{Store, Tick};
use rusqlite::Connection;
use std::time::Duration;

/// The SQLite [`Store`]: every operation on one `rusqlite::Connection`.
#[derive(Clone, Copy)]
pub struct SqliteStore<'c>(pub &'c Connection);

impl Store for SqliteStore<'_> {
    fn enqueue(
        &self,
        q: &str,
        payload: &str,
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<i64> {
        queue::enqueue(self.0, q, payload, opts, default_max_attempts, now)
    }
    fn enqueue_many(
        &self,
        q: &str,
        payloads: &[String],
        opts: &EnqueueOpts,
        default_max_attempts: u32,
        now: i64,
    ) -> Result<Vec<i64>> {
        queue::enqueue_many(self.0, q, payloads, opts, default_max_attempts, now)
    }
    fn claim(
        &self,
        q: &str,
        worker: &str,
        n: usize,
        visibility_timeout: Duration,
        now: i64,
    ) -> Result<Vec<JobRecord>> {
        queue::claim(self.0, q, worker, n, visibility_timeout, now)
    }
    fn ack(&self, lease: Lease<'_>, now: i64) -> Result<bool> {
        queue::ack(self.0, lease, now)
    }
    fn ack_batch(&self, leases: &[Lease<'_>], now: i64) -> Result<usize> {
        queue::ack_batch(self.0, leases, now)
    }
    fn ack_and_claim(&self, op: &AckAndClaim<'_>, now: i64) -> Result<(usize, Vec<JobRecord>)> {
        queue::ack_and_claim(self.0, op, now)
    }
    fn retry(
        &self,
        lease: Lease<'_>,
        delay: Option<Duration>,
        error: &str,
        now: i64,
    ) -> Result<bool> {
        queue::retry(self.0, lease, delay, error, now)
    }
    fn release(&self, lease: Lease<'_>, now: i64) -> Result<bool> {
        queue::release(self.0, lease, now)
    }
    fn defer(&self, lease: Lease<'_>, delay: Duration, now: i64) -> Result<bool> {
        queue::defer(self.0, lease, delay, now)
    }
    fn fail(&self, lease: Lease<'_>, error: &str, now: i64) -> Result<bool> {
        queue::fail(self.0, lease, error, now)
    }
    fn heartbeat(&self, lease: Lease<'_>, extend: Duration, now: i64) -> Result<bool> {
        queue::heartbeat(self.0, lease, extend, now)
    }
    fn cancel(&self, id: i64, now: i64) -> Result<bool> {
        queue::cancel(self.0, id, now)
    }
    fn purge(&self, q: &str, now: i64) -> Result<usize> {
        queue::purge(self.0, q, now)
    }
    fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
        queue::get_job(self.0, id)
    }
    fn dead_jobs(&self, q: &str, limit: usize) -> Result<Vec<JobRecord>> {
        queue::dead_jobs(self.0, q, limit)
    }
    fn requeue_dead(&self, id: i64, now: i64) -> Result<()> {
        queue::requeue_dead(self.0, id, now)
    }
    fn discard_dead(&self, ids: &[i64]) -> Result<usize> {
        queue::discard_dead(self.0, ids)
    }
    fn sweep_expired(&self, q: Option<&str>, now: i64) -> Result<usize> {
        queue::sweep_expired(self.0, q, now)
    }
    fn has_due(&self, q: &str, now: i64) -> Result<bool> {
        queue::has_due(self.0, q, now)
    }
    fn next_deadline(&self, q: &str) -> Result<Option<i64>> {
        queue::next_deadline(self.0, q)
    }
    fn queue_stats(&self, q: &str) -> Result<QueueStats> {
        queue::stats(self.0, q)
    }
    fn requeue_dead_all(&self, q: &str, reason: Option<&str>, now: i64) -> Result<usize> {
        queue::requeue_dead_all(self.0, q, reason, now)
    }
    fn cancel_many(&self, ids: &[i64], now: i64) -> Result<usize> {
        queue::cancel_many(self.0, ids, now)
    }
    fn queues(&self) -> Result<Vec<QueueSummary>> {
        listing::queues(self.0)
    }
    fn streams(&self) -> Result<Vec<StreamSummary>> {
        listing::streams(self.0)
    }
    fn locks(&self, now: i64) -> Result<Vec<LockInfo>> {
        listing::locks(self.0, now)
    }
    fn jobs_enqueued(&self) -> Result<i64> {
        listing::jobs_enqueued(self.0)
    }
    fn queue_head(&self, q: &str) -> Result<Option<i64>> {
        listing::queue_head(self.0, q)
    }
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        listing::jobs(self.0, filter)
    }
    fn queue_controls(&self, q: &str) -> Result<QueueControls> {
        crate::validate::name("queue", q)?;
        controls::get(self.0, q)
    }
    fn set_paused(&self, q: &str, paused: bool, now: i64) -> Result<bool> {
        controls::set_paused(self.0, q, paused, now)
    }
    fn set_max_in_flight(&self, q: &str, max: Option<u32>, now: i64) -> Result<()> {
        controls::set_max_in_flight(self.0, q, max, now)
    }
    fn set_rate_limit(&self, q: &str, rate: Option<QueueRateLimit>, now: i64) -> Result<()> {
        controls::set_rate_limit(self.0, q, rate, now)
    }
    fn set_queue_retention(&self, q: &str, r: QueueRetention, now: i64) -> Result<()> {
        retention::set(self.0, q, r, now)
    }
    fn prune_queue(&self, q: &str, now: i64) -> Result<usize> {
        retention::prune(self.0, q, now)
    }
    fn set_events(&self, q: &str, on: bool, now: i64) -> Result<()> {
        events::set(self.0, q, on, now)
    }

    fn publish(&self, s: &str, key: Option<&str>, payload: &str, now: i64) -> Result<i64> {
        stream::publish(self.0, s, key, payload, now)
    }
    fn read_since(&self, s: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
        stream::read_since(self.0, s, after, limit)
    }
    fn last_offset(&self, s: &str) -> Result<i64> {
        stream::last_offset(self.0, s)
    }
    fn save_offset(&self, s: &str, consumer: &str, offset: i64, now: i64) -> Result<bool> {
        stream::save_offset(self.0, s, consumer, offset, now)
    }
    fn get_offset(&self, s: &str, consumer: &str) -> Result<i64> {
        stream::get_offset(self.0, s, consumer)
    }
    fn set_retention(&self, s: &str, retention: Retention) -> Result<()> {
        stream::set_retention(self.0, s, retention)
    }
    fn retention(&self, s: &str) -> Result<Retention> {
        stream::get_retention(self.0, s)
    }
    fn prune_stream(&self, s: &str, now: i64) -> Result<usize> {
        stream::prune(self.0, s, now)
    }

    fn notify(&self, channel: &str, payload: &str, now: i64) -> Result<i64> {
        notify::notify(self.0, channel, payload, now)
    }
    fn latest_notification(&self) -> Result<i64> {
        notify::latest_id(self.0)
    }
    fn notifications_after(
        &self,
        after: i64,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        notify::read_after(self.0, after, channel, limit)
    }
    fn prune_notifications(&self, before_ms: i64) -> Result<usize> {
        notify::prune(self.0, before_ms)
    }

    fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64, now: i64) -> Result<Option<i64>> {
        lock::try_acquire(self.0, name, owner, ttl_ms, now)
    }
    fn renew_lock(&self, name: &str, token: i64, ttl_ms: i64, now: i64) -> Result<bool> {
        lock::renew(self.0, name, token, ttl_ms, now)
    }
    fn release_lock(&self, name: &str, token: i64) -> Result<bool> {
        lock::release(self.0, name, token)
    }
    fn lock_holder(&self, name: &str, now: i64) -> Result<Option<LockInfo>> {
        lock::holder(self.0, name, now)
    }
    fn try_rate_limit(&self, key: &str, limit: i64, per_ms: i64, now: i64) -> Result<bool> {
        rate_limit::try_acquire(self.0, key, limit, per_ms, now)
    }
    fn save_result(&self, job_id: i64, value: &str, ttl_ms: i64, now: i64) -> Result<()> {
        result::save(self.0, job_id, value, ttl_ms, now)
    }
    fn get_result(&self, job_id: i64, now: i64) -> Result<Option<String>> {
        result::get(self.0, job_id, now)
    }
    fn sweep_results(&self, now: i64) -> Result<usize> {
        result::sweep(self.0, now)
    }

    fn schedule_add(&self, spec: &ScheduleSpec<'_>, now: i64) -> Result<()> {
        scheduler::add(self.0, spec, now)
    }
    fn schedule_remove(&self, name: &str) -> Result<bool> {
        scheduler::remove(self.0, name)
    }
    fn schedule_list(&self) -> Result<Vec<ScheduleInfo>> {
        scheduler::list(self.0)
    }
    fn schedule_pause(&self, name: &str) -> Result<()> {
        scheduler::pause(self.0, name)
    }
    fn schedule_resume(&self, name: &str, now: i64) -> Result<()> {
        scheduler::resume(self.0, name, now)
    }
    fn schedule_tick(&self, now: i64) -> Result<Tick> {
        scheduler::tick_report(self.0, now)
    }
    fn schedule_tick_fenced(&self, lock_name: &str, token: i64, now: i64) -> Result<Option<Tick>> {
        scheduler::tick_fenced(self.0, lock_name, token, now)
    }
    fn schedule_soonest(&self) -> Result<Option<i64>> {
        scheduler::soonest(self.0)
    }

    fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<usize> {
        statement::execute(self.0, sql, params)
    }
    fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Rows> {
        statement::query(self.0, sql, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_store_passes_the_conformance_suite() {
        crate::store::conformance::run(&|check| {
            let conn = Connection::open_in_memory().unwrap();
            schema::migrate(&conn).unwrap();
            check(&SqliteStore(&conn));
        });
    }
}
