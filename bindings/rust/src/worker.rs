//! Tasks and the worker that runs them: the Rust host of honker-core's
//! worker runtime (`honker_core::worker`). The runtime claims, renews
//! leases, times out, retries and shuts down; this module runs the
//! closures.

use crate::{Database, Error, JobRecord, Result};
use honker_core::wake::stop::Stop;
use honker_core::worker::{envelope, Activation, Outcome, Polled, WorkerCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use honker_core::wake::wait::JobOutcome;
pub use honker_core::worker::{
    CancelReason, Cancelled, RetryPolicy, TaskOptions, UnknownTasks, WorkerOptions,
};

/// What a handler returns: its result as JSON text (`None`: no result), or
/// the error message recorded on the job.
pub(crate) type Ran = std::result::Result<Option<String>, String>;

type SyncHandler = Arc<dyn Fn(&TaskCall) -> Ran + Send + Sync>;
#[cfg(feature = "tokio")]
pub(crate) type AsyncHandler = Arc<
    dyn Fn(TaskCall) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ran> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub(crate) enum Handler {
    Sync(SyncHandler),
    #[cfg(feature = "tokio")]
    Async(AsyncHandler),
}

#[derive(Deserialize, Default)]
struct Args {
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    kwargs: Map<String, Value>,
}

/// One run of a task: the job, its arguments, and the signal that tells
/// the handler to stop (a timeout, a lost lease, a shutdown).
#[derive(Debug)]
pub struct TaskCall {
    act: Activation,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
}

impl TaskCall {
    pub(crate) fn new(act: Activation) -> std::result::Result<TaskCall, String> {
        let a: Args = serde_json::from_str(&act.job.payload)
            .map_err(|e| format!("the task envelope's args or kwargs are malformed: {e}"))?;
        Ok(TaskCall {
            act,
            args: a.args,
            kwargs: a.kwargs,
        })
    }

    /// The job's id.
    pub fn id(&self) -> i64 {
        self.act.job.id
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.act.task
    }

    /// This attempt's number (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.act.job.attempts
    }

    /// The claimed job.
    pub fn job(&self) -> &JobRecord {
        &self.act.job
    }

    /// The first positional argument (what [`Queue::enqueue_task`] and
    /// Node's `task.enqueue(payload)` send), decoded; JSON `null` when
    /// there is none.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        let v = self.args.first().cloned().unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| Error::Decode {
            reason: e.to_string(),
        })
    }

    /// Every positional argument.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The named arguments (a Python enqueuer's keyword arguments).
    pub fn kwargs(&self) -> &Map<String, Value> {
        &self.kwargs
    }

    /// Has the handler been told to stop?
    pub fn is_cancelled(&self) -> bool {
        self.act.cancel.is_cancelled()
    }

    /// Why the handler was told to stop, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.act.cancel.reason()
    }

    /// Waits up to `timeout` for the signal to stop (a sleep that ends
    /// early): `Some(reason)` if it came.
    pub fn wait_cancelled(&self, timeout: Duration) -> Option<CancelReason> {
        self.act.cancel.wait(timeout)
    }

    /// A future that completes when the handler is told to stop.
    pub fn cancelled(&self) -> Cancelled {
        self.act.cancel.cancelled()
    }
}

pub(crate) fn encode_result<R: Serialize>(r: &R) -> Ran {
    let text = serde_json::to_string(r)
        .map_err(|e| format!("the handler's result is not serializable as JSON: {e}"))?;
    Ok((text != "null").then_some(text))
}

/// Runs tasks: a name and a closure each, over one or more queues, up to
/// `concurrency` at once. Get one with [`Database::worker`], register tasks,
/// then [`Worker::run`] (or `run_async` with the `tokio` feature), or
/// [`Worker::drain`] in tests.
///
/// A task's job payload is the envelope `{"task": name, "args": [...],
/// "kwargs": {...}}` (see [`Queue::enqueue_task`]), the same in every
/// language, so a job enqueued from Python or Node is run here if a task of
/// its name is registered. A handler's `Ok` value is saved as the job's
/// result (unless the task says otherwise) and acked in the same commit
/// that claims the next job; an `Err` retries the job by the retry policy
/// until its attempts run out, then dead-letters it; a panic counts as an
/// error.
pub struct Worker {
    db: Database,
    opts: WorkerOptions,
    pub(crate) tasks: Vec<(String, TaskOptions, Handler)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("opts", &self.opts)
            .field(
                "tasks",
                &self.tasks.iter().map(|t| &t.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A stop flag that the waits look at every 50 ms (so a plain
/// `AtomicBool` set from a signal handler is noticed without a wake-up).
struct Every50(Arc<AtomicBool>);

impl Stop for Every50 {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn poll_every(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
    fn check(&self) -> bool {
        self.is_set()
    }
}

pub(crate) fn catch(f: impl FnOnce() -> Ran) -> Ran {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(format!(
            "the handler panicked: {}",
            honker_core::panic_message(p.as_ref())
        ))
    })
}

pub(crate) fn outcome(ran: &Ran) -> Outcome<'_> {
    match ran {
        Ok(r) => Outcome::Completed(r.as_deref()),
        Err(e) => Outcome::Failed {
            error: e,
            retry_in: None,
            retry: true,
        },
    }
}

impl Worker {
    pub(crate) fn new(db: Database, opts: WorkerOptions) -> Worker {
        Worker {
            db,
            opts,
            tasks: Vec::new(),
        }
    }

    /// Registers `handler` for task `name` with the default
    /// [`TaskOptions`].
    pub fn task<F, R, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(&TaskCall) -> std::result::Result<R, E> + Send + Sync + 'static,
        R: Serialize,
        E: std::fmt::Display,
    {
        self.task_with(name, TaskOptions::default(), handler)
    }

    /// Registers `handler` for task `name` with `opts` (timeout, retry
    /// policy, result storage).
    pub fn task_with<F, R, E>(&mut self, name: &str, opts: TaskOptions, handler: F) -> &mut Self
    where
        F: Fn(&TaskCall) -> std::result::Result<R, E> + Send + Sync + 'static,
        R: Serialize,
        E: std::fmt::Display,
    {
        let h: SyncHandler = Arc::new(move |call: &TaskCall| match handler(call) {
            Ok(r) => encode_result(&r),
            Err(e) => Err(e.to_string()),
        });
        self.tasks.push((name.to_string(), opts, Handler::Sync(h)));
        self
    }

    pub(crate) fn core(&self, concurrency: Option<usize>) -> Result<WorkerCore> {
        let mut opts = self.opts.clone();
        if let Some(c) = concurrency {
            opts.concurrency = c;
        }
        let names = self
            .tasks
            .iter()
            .map(|(n, o, _)| (n.clone(), o.clone()))
            .collect();
        WorkerCore::new(&self.db.core, opts, names)
    }

    pub(crate) fn handlers(&self) -> HashMap<String, Handler> {
        self.tasks
            .iter()
            .map(|(n, _, h)| (n.clone(), h.clone()))
            .collect()
    }

    fn sync_handlers(&self) -> Result<HashMap<String, SyncHandler>> {
        self.handlers()
            .into_iter()
            .map(|(n, h)| match h {
                Handler::Sync(s) => Ok((n, s)),
                #[cfg(feature = "tokio")]
                Handler::Async(_) => Err(Error::invalid(
                    "task",
                    format!("{n:?} has an async handler: run this worker with run_async"),
                )),
            })
            .collect()
    }

    /// Runs handlers until `stop` is set (looked at least every 50 ms),
    /// `concurrency` at once on as many threads (this one among them).
    /// Once stopped it claims nothing more, lets running handlers finish
    /// for the grace period, then releases their jobs (the attempt not
    /// counted) and returns. An error of the database (closed, busy past
    /// its timeout) stops the worker the same way and is returned.
    pub fn run(&self, stop: Arc<AtomicBool>) -> Result<()> {
        let handlers = self.sync_handlers()?;
        let core = self.core(None)?;
        let stop = Every50(stop);
        let slot = || -> Result<()> {
            let r = (|| loop {
                match core.poll(&stop)? {
                    Polled::Run(a) => {
                        chain(&core, &handlers, a)?;
                    }
                    Polled::Cancel { .. } => {}
                    Polled::Done => return Ok(()),
                }
            })();
            if r.is_err() {
                core.shutdown();
            }
            r
        };
        std::thread::scope(|s| {
            let others: Vec<_> = (1..core.concurrency()).map(|_| s.spawn(slot)).collect();
            let mut first = slot();
            for t in others {
                let r = t.join().unwrap_or_else(|p| {
                    Err(Error::Internal {
                        reason: honker_core::panic_message(p.as_ref()),
                    })
                });
                if first.is_ok() {
                    first = r;
                }
            }
            first
        })
    }

    /// Drain mode, for tests: runs every job that is due now, one at a time
    /// in the calling thread, and returns how many ran once none is due
    /// (delayed jobs and retries waiting out their backoff are left).
    pub fn drain(&self) -> Result<usize> {
        let handlers = self.sync_handlers()?;
        let core = self.core(Some(1))?;
        let mut ran = 0;
        while let Some(a) = core.drain_next()? {
            ran += chain(&core, &handlers, a)?;
        }
        Ok(ran)
    }
}

/// Runs `first` and each job its completion hands back; how many ran.
fn chain(
    core: &WorkerCore,
    handlers: &HashMap<String, SyncHandler>,
    first: Activation,
) -> Result<usize> {
    let mut next = Some(first);
    let mut ran = 0;
    while let Some(a) = next {
        ran += 1;
        let id = a.job.id;
        let handler = handlers
            .get(&a.task)
            .expect("the core hands out registered tasks only");
        let span = crate::otel::Attempt::start(&a.job.queue, &a.task, id, a.job.attempts);
        let result = match TaskCall::new(a) {
            Ok(call) => span.within(|| catch(|| handler(&call)))(),
            Err(e) => Err(e),
        };
        span.finish(&result);
        next = core.complete(id, outcome(&result))?;
    }
    Ok(ran)
}

impl Database {
    /// A worker over `opts.queues`: register tasks with [`Worker::task`],
    /// then run it.
    pub fn worker(&self, opts: WorkerOptions) -> Worker {
        Worker::new(self.clone(), opts)
    }

    /// Waits up to `timeout` for job `id` to end: `Some(outcome)` (its
    /// saved result, or the dead job), `None` if it is still live when the
    /// timeout passes. Woken by the commit that ends it.
    pub fn wait_job(&self, id: i64, timeout: Duration) -> Result<Option<JobOutcome>> {
        honker_core::wake::wait::wait_outcome(
            &self.core,
            crate::caller(),
            id,
            Some(timeout),
            &AtomicBool::new(false),
        )
    }
}

pub(crate) fn task_envelope<P: Serialize + ?Sized>(task: &str, payload: &P) -> Result<String> {
    let args = format!("[{}]", honker_core::encode("payload", payload)?);
    envelope::encode(task, Some(&args), None)
}
