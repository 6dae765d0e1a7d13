//! The values every layer shares: options, records and views, converted
//! once by each binding. None of them depends on the storage engine.

use crate::error::Error;
use std::time::{Duration, SystemTime};

/// Default lease length of a claim: 5 minutes.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of claims a job gets before it is dead-lettered: 3.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Longest delay the default retry backoff picks: 1 hour.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Options of a queue handle. Nothing here is stored in the file: each
/// process chooses its own lease length and default attempt budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOpts {
    /// How long a claim holds a job before another worker may take it over.
    /// Default 300 s ([`DEFAULT_VISIBILITY_TIMEOUT`]).
    pub visibility_timeout: Duration,
    /// Claims a job gets when its enqueue does not say. Default 3.
    pub max_attempts: u32,
}

impl Default for QueueOpts {
    fn default() -> Self {
        QueueOpts {
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// Options of one enqueue. `Default` is "run now, priority 0, the queue's
/// attempt budget, never expires, no idempotency key".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOpts {
    /// Run no earlier than this long from now. Exclusive with `run_at`.
    pub delay: Option<Duration>,
    /// Run no earlier than this instant. Exclusive with `delay`.
    pub run_at: Option<SystemTime>,
    /// Higher runs first among jobs that are due. Default 0.
    pub priority: i64,
    /// Overrides the queue's attempt budget for this job (at least 1).
    pub max_attempts: Option<u32>,
    /// Dead-letter the job (reason `expired`) if no worker has started it
    /// within this long after it became due.
    pub expires: Option<Duration>,
    /// Idempotency key: while a live job in this queue has the same key, the
    /// enqueue returns that job's id instead of adding a duplicate.
    pub key: Option<String>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Claimable now.
    Ready,
    /// Waiting for its `run_at`.
    Scheduled,
    /// Leased to a worker.
    Processing,
    /// In the dead table (failed, out of attempts, expired).
    Dead,
    /// Finished (acked) and kept by its queue's retention.
    Completed,
}

impl JobState {
    /// The state's name as stored and as shown to every binding.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Scheduled => "scheduled",
            JobState::Processing => "processing",
            JobState::Dead => "dead",
            JobState::Completed => "completed",
        }
    }

    /// The state named `s` (as [`JobState::as_str`] names it), or an
    /// invalid-argument error naming the states.
    pub fn from_name(s: &str) -> crate::Result<JobState> {
        match s {
            "ready" => Ok(JobState::Ready),
            "scheduled" => Ok(JobState::Scheduled),
            "processing" => Ok(JobState::Processing),
            "dead" => Ok(JobState::Dead),
            "completed" => Ok(JobState::Completed),
            _ => Err(crate::Error::invalid(
                "state",
                format!("must be ready, scheduled, processing, dead or completed, got {s:?}"),
            )),
        }
    }

    pub(crate) fn parse(s: &str) -> JobState {
        match s {
            "ready" => JobState::Ready,
            "scheduled" => JobState::Scheduled,
            "processing" => JobState::Processing,
            _ => JobState::Dead,
        }
    }
}

/// Everything stored about one job. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Unique across the live and dead tables, never reused.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// The payload as JSON text.
    pub payload: String,
    /// Current state.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i64,
    /// When it is (or was) due.
    pub run_at_ms: i64,
    /// Claims so far (including the current one when processing).
    pub attempts: u32,
    /// Claims allowed before it is dead-lettered.
    pub max_attempts: u32,
    /// Holder of the current lease.
    pub worker_id: Option<String>,
    /// End of the current lease.
    pub lease_until_ms: Option<i64>,
    /// Deadline to be started by.
    pub expires_at_ms: Option<i64>,
    /// Idempotency key.
    pub key: Option<String>,
    /// Message of the last retry, failure or lease loss.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at_ms: i64,
    /// Why it died (`failed`, `max_attempts`, `lease_expired`, `expired`).
    pub dead_reason: Option<String>,
    /// When it died.
    pub died_at_ms: Option<i64>,
    /// When its last claim started it (`None` if never claimed).
    pub started_at_ms: Option<i64>,
    /// When it was acked (a completed job kept by its queue's retention).
    pub completed_at_ms: Option<i64>,
    /// The result saved with it (a completed job's, as JSON text).
    pub result: Option<String>,
}

impl JobRecord {
    /// Decodes the JSON payload into `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        crate::decode(&self.payload)
    }
}

/// Identifies one claim of one job: retry, ack, fail and heartbeat apply
/// only while this exact lease is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// Job id.
    pub id: i64,
    /// Worker that claimed it.
    pub worker: &'a str,
    /// The job's attempt number at that claim.
    pub attempt: u32,
}

/// A finished job as [`AckAndClaim`] acks it.
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    /// Acked only while this lease is current.
    pub lease: Lease<'a>,
    /// Its result, saved with the ack when the ack succeeds: JSON text,
    /// kept for the given ms.
    pub result: Option<(&'a str, i64)>,
}

/// [`crate::store::Store::ack_and_claim`]'s arguments: a worker's slots came
/// free; complete their jobs and claim what they run next, in one commit.
#[derive(Debug, Clone, Copy)]
pub struct AckAndClaim<'a> {
    /// The jobs done (often one; a worker that claimed ahead acks several).
    pub done: &'a [Done<'a>],
    /// The queue to claim from.
    pub queue: &'a str,
    /// Who the new jobs are leased to.
    pub worker: &'a str,
    /// How many to claim at most (0: only the ack).
    pub n: usize,
    /// The new jobs' lease.
    pub visibility_timeout: Duration,
}

impl<'a> Lease<'a> {
    /// The lease of job `id` claimed by `worker` at attempt `attempt`.
    pub fn new(id: i64, worker: &'a str, attempt: u32) -> Self {
        Lease {
            id,
            worker,
            attempt,
        }
    }
}

impl JobRecord {
    /// The lease this record was claimed under (meaningful for claimed jobs).
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            id: self.id,
            worker: self.worker_id.as_deref().unwrap_or(""),
            attempt: self.attempts,
        }
    }
}

/// Counts of a queue's jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Claimable now (as of the last claim's promotion of due jobs).
    pub ready: u64,
    /// Waiting for their `run_at`.
    pub scheduled: u64,
    /// Leased to workers.
    pub processing: u64,
    /// In the dead table.
    pub dead: u64,
    /// Finished and kept by the queue's retention.
    pub completed: u64,
}

/// A stream as an operator sees it: its name, its last offset and where
/// each consumer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream's name.
    pub name: String,
    /// The offset of its newest event (0 if it has none).
    pub last_offset: i64,
    /// Each consumer that saved an offset, by name.
    pub consumers: Vec<StreamConsumer>,
}

/// A stream consumer's place: the offset it saved and how many of the
/// stream's events come after it (offsets are shared by every stream, so
/// the lag is counted, not subtracted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConsumer {
    /// The consumer's name.
    pub name: String,
    /// The offset it saved.
    pub offset: i64,
    /// The stream's events after that offset.
    pub lag: u64,
}

/// A queue as an operator sees it: its name, job counts and controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Its jobs by state.
    pub stats: QueueStats,
    /// Its controls.
    pub controls: QueueControls,
}

/// Which jobs [`crate::store::Store::list_jobs`] lists: every field that is
/// set must match. Newest first (highest id first); page with `before_id`
/// (the last id of the previous page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this queue's jobs.
    pub queue: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs whose payload is a task envelope naming this task.
    pub task: Option<String>,
    /// Only the job with this idempotency key.
    pub key: Option<String>,
    /// Only jobs created at or after this time (ms since the epoch).
    pub created_from_ms: Option<i64>,
    /// Only jobs created before this time (ms since the epoch).
    pub created_to_ms: Option<i64>,
    /// Only jobs with a lower id: the next page after this id.
    pub before_id: Option<i64>,
    /// At most this many (0: the default, 100).
    pub limit: usize,
}

/// The page size of [`JobFilter`] when it names none.
pub const DEFAULT_PAGE: usize = 100;

impl JobFilter {
    /// The filter checked (a queue name, if given) and its page size
    /// ([`DEFAULT_PAGE`] for 0), as every store applies them.
    pub fn checked_limit(&self) -> crate::Result<i64> {
        if let Some(q) = &self.queue {
            crate::validate::name("queue", q)?;
        }
        let limit = if self.limit == 0 {
            DEFAULT_PAGE
        } else {
            self.limit
        };
        Ok(i64::try_from(limit).unwrap_or(i64::MAX))
    }
}

/// A queue's controls, stored in the file, so every process claiming from
/// the queue obeys them inside its claim transaction. The default: running,
/// no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueControls {
    /// No job of the queue is claimed while it is paused (enqueues, acks
    /// and jobs already running go on).
    pub paused: bool,
    /// At most this many of the queue's jobs are leased at once, across
    /// every process; `None`: no limit.
    pub max_in_flight: Option<u32>,
    /// At most this many of the queue's jobs are claimed per window,
    /// across every process; `None`: no limit.
    pub rate_limit: Option<QueueRateLimit>,
    /// What of the queue's finished and dead jobs is kept.
    pub retention: QueueRetention,
    /// Whether each change of its jobs' states is published to the
    /// lifecycle events stream (`honker:events`), in the same transaction.
    pub events: bool,
}

/// How much of a queue's history is kept. Each limit of a [`Retention`]
/// applies when set; a `Retention` must set at least one.
///
/// Pruning is automatic and amortized: it runs in the transactions that
/// add to a table (an ack, a dead-lettering), once a table is 1/64 past
/// its limit (in count, or in age), and removes at most
/// [`PRUNE_BATCH`] rows per transaction. So a table holds at most about
/// `max_count * 65 / 64` rows, and a row is kept at least `max_age` and
/// about `max_age * 65 / 64` at most while the queue is busy.
/// [`crate::store::Store::prune_queue`] applies the limits exactly, now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueRetention {
    /// Finished (acked) jobs, with their result, attempts, timings and last
    /// error, are kept within these limits. `None` (the default): an acked
    /// job is deleted.
    pub completed: Option<Retention>,
    /// Dead jobs are pruned beyond these limits. `None` (the default): a
    /// dead job stays until it is requeued.
    pub dead: Option<Retention>,
}

/// The stream every queue's lifecycle events are published to (when the
/// queue asks for them), each keyed by its queue's name.
pub const EVENTS_STREAM: &str = "honker:events";

/// The most rows one transaction's automatic pruning removes from a
/// queue's completed or dead table.
pub const PRUNE_BATCH: usize = 4096;

/// A queue's claim rate limit: at most `limit` claims in each fixed window
/// of `per` (windows start at every multiple of `per` since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRateLimit {
    /// Claims allowed per window, at least 1.
    pub limit: u32,
    /// The window, at least 1 ms.
    pub per: Duration,
}

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the stream; pass it to `save_offset` once handled.
    pub offset: i64,
    /// Stream name.
    pub stream: String,
    /// Optional key given at publish (for partitioning or deduplication by the consumer).
    pub key: Option<String>,
    /// The payload as JSON text.
    pub payload: String,
    /// Publish time, ms since the epoch.
    pub created_at_ms: i64,
}

impl Event {
    /// Decodes the JSON payload into `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        crate::decode(&self.payload)
    }
}

/// How much of a stream to keep. Both limits apply when both are set; with
/// neither (the default) a stream keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Drop events older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many of the newest events.
    pub max_count: Option<u64>,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Increasing id, unique in the file.
    pub id: i64,
    /// Channel it was sent on.
    pub channel: String,
    /// The payload as JSON text.
    pub payload: String,
    /// When it was sent, ms since the epoch.
    pub created_at_ms: i64,
}

impl Notification {
    /// Decodes the JSON payload into `T`.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        crate::decode(&self.payload)
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// Lock name.
    pub name: String,
    /// Owner given at acquisition.
    pub owner: String,
    /// Fencing token of this acquisition.
    pub token: i64,
    /// When the lock lapses unless renewed, ms since the epoch.
    pub expires_at_ms: i64,
}

/// A schedule to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec<'a> {
    /// Unique name; adding the same name again updates it.
    pub name: &'a str,
    /// Queue the fires are enqueued on.
    pub queue: &'a str,
    /// Cron expression (see [`crate::cron`]), optionally with a `CRON_TZ=` prefix.
    pub cron: &'a str,
    /// Time zone to evaluate the expression in (alternative to `CRON_TZ=`).
    pub tz: Option<&'a str>,
    /// Payload of every enqueued job, as JSON text.
    pub payload: &'a str,
    /// Priority of every enqueued job.
    pub priority: i64,
    /// Each fire's job expires if not started within this long.
    pub expires: Option<Duration>,
}

/// A registered schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// Unique name.
    pub name: String,
    /// Target queue.
    pub queue: String,
    /// Expression as stored (with its `CRON_TZ=` prefix when zoned).
    pub cron: String,
    /// Payload, JSON text.
    pub payload: String,
    /// Job priority.
    pub priority: i64,
    /// Job expiry, ms.
    pub expires_ms: Option<i64>,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// Next boundary, ms since the epoch.
    pub next_fire_at_ms: i64,
    /// Last fire, ms since the epoch.
    pub last_fire_at_ms: Option<i64>,
    /// Why the last fire failed, if it did (the schedule then moved on to
    /// its next boundary). Cleared by the next fire that succeeds.
    pub last_error: Option<String>,
}

/// One fire made by a tick ([`crate::Ops::schedule_tick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// Schedule name.
    pub name: String,
    /// Queue the job went to.
    pub queue: String,
    /// The enqueued job.
    pub job_id: i64,
    /// The boundary this fire is for, ms since the epoch.
    pub fire_at_ms: i64,
}

/// A fire a tick could not make: the schedule moved on to its next
/// boundary (its `last_error` says why) and the other schedules fired.
#[derive(Debug)]
pub struct FireFailure {
    /// Schedule name.
    pub name: String,
    /// The boundary that did not fire, ms since the epoch.
    pub fire_at_ms: i64,
    /// What went wrong.
    pub error: Error,
}

/// What a query returned: the column names, then each row's values in
/// column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One entry per row, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// A SQL value, as the application's own SQL (`execute`, `query`) takes and
/// returns it, whatever the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}
