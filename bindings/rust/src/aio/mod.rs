//! The async API (feature `tokio`): an `_async` twin of every operation
//! that can wait (for SQLite's write lock, for another task's transaction,
//! for a commit), and the waits as futures and streams.
//!
//! How it works, once for every method:
//!
//! - **Who calls.** A call is made by the tokio task that awaits it
//!   ([`current_caller`]), not by the thread the task happens to run on,
//!   so a [`crate::Transaction`] held across an `.await` still belongs to
//!   its task after the task moves threads: the task's own plain calls are
//!   refused with `Error::TransactionOpen` (use the `*_tx` methods), other
//!   tasks' calls wait their turn, off the runtime's threads.
//! - **Where it runs.** The engine call runs on tokio's blocking pool
//!   ([`offload`]), acting for the task; the runtime's worker threads never
//!   wait for a lock.
//! - **Waits.** A wait does one look on the blocking pool (the engine's
//!   `Step`), then awaits the file watcher's `changed` future (woken by
//!   commits in this and other processes, no polling) raced against a
//!   tokio timer. No thread is parked per waiter.
//! - **Cancellation.** Dropping a future cancels it without losing work: a
//!   job claimed in the instant the future was dropped is released (its
//!   attempt is not counted), a stream event is handed out again next, a
//!   transaction begun is rolled back.

mod ops;
mod waits;
mod worker;

pub use waits::Claims;

use honker_core::{Caller, Error};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

use crate::{Database, Result};

thread_local! {
    /// On a blocking-pool thread doing an `_async` method's work: the task
    /// the work is done for.
    static ACTING: Cell<Option<Caller>> = const { Cell::new(None) };
}

/// The caller for a call made here: the task an `_async` method's work is
/// done for, else the tokio task running now, else `None` (the thread).
pub(crate) fn current_caller() -> Option<Caller> {
    ACTING
        .with(Cell::get)
        .or_else(|| tokio::task::try_id().map(|id| Caller::host(task_token(id))))
}

/// A task id as a number: its `Display` is the number tokio keeps (unique
/// among live tasks); a hash of it should that ever change.
fn task_token(id: tokio::task::Id) -> u64 {
    id.to_string().parse().unwrap_or_else(|_| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        h.finish() >> 1
    })
}

/// Runs `work` with [`ACTING`] set to `me`, restoring it after (even if
/// `work` panics).
fn acting_as<R>(me: Caller, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Caller>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTING.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ACTING.with(|a| a.replace(Some(me))));
    work()
}

/// Hands an `_async` method's result to the task awaiting it.
pub(crate) struct Deliver<R>(oneshot::Sender<Result<R>>);

impl<R> Deliver<R> {
    /// Sends `r`; gives the value back when the awaiting future is gone
    /// (cancelled), for the caller to undo.
    pub(crate) fn send(self, r: Result<R>) -> Option<R> {
        match self.0.send(r) {
            Ok(()) => None,
            Err(r) => r.ok(),
        }
    }
}

/// What undoes a result nobody received (a claimed job, a begun
/// transaction): see [`offload_with`].
pub(crate) type Undo<R> = Arc<dyn Fn(R) + Send + Sync>;

/// Runs `work` on tokio's blocking pool for the calling task and awaits it.
pub(crate) async fn offload<R: Send + 'static>(
    work: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    undoable(work, drop).await
}

/// [`offload`] for work that hands out something to give back when the
/// awaiting future is dropped (claimed jobs, a transaction, a lock): `undo`
/// gets it, on the worker thread or where the future is dropped.
pub(crate) async fn undoable<R: Send + 'static>(
    work: impl FnOnce() -> Result<R> + Send + 'static,
    undo: impl Fn(R) + Send + Sync + 'static,
) -> Result<R> {
    let undo: Undo<R> = Arc::new(undo);
    let on_thread = undo.clone();
    offload_with(
        move |out: Deliver<R>| {
            if let Some(r) = out.send(work()) {
                on_thread(r)
            }
        },
        undo,
    )
    .await
}

/// [`offload`] for work whose result must not be lost when the awaiting
/// future is dropped: `work` sends it through [`Deliver`] and undoes it
/// itself if that fails (under whatever lock it holds, so nothing can
/// interleave); a result sent but never received is handed to `undo` when
/// the future is dropped.
pub(crate) async fn offload_with<R: Send + 'static>(
    work: impl FnOnce(Deliver<R>) + Send + 'static,
    undo: Undo<R>,
) -> Result<R> {
    let handle = runtime()?;
    let me = crate::caller();
    let (tx, rx) = oneshot::channel();
    handle.spawn_blocking(move || acting_as(me, || work(Deliver(tx))));
    let mut receiving = Receiving {
        rx,
        undo,
        done: false,
    };
    let got = (&mut receiving.rx).await;
    receiving.done = true;
    got.unwrap_or_else(|_| {
        Err(Error::Internal {
            reason: "the blocking call ended without an answer (a panic, or the tokio runtime \
                     shut down)"
                .into(),
        })
    })
}

/// The tokio runtime the calling task runs in.
fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        Error::invalid(
            "runtime",
            "an _async method must be awaited inside a tokio runtime",
        )
    })
}

/// The receiving end of [`offload_with`]: dropped before its result was
/// read, it undoes the result.
struct Receiving<R> {
    rx: oneshot::Receiver<Result<R>>,
    undo: Undo<R>,
    done: bool,
}

impl<R> Drop for Receiving<R> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Closed first: from here the worker's send fails (and it undoes);
        // a value sent before is read here.
        self.rx.close();
        if let Ok(Ok(v)) = self.rx.try_recv() {
            (self.undo)(v);
        }
    }
}

/// Runs `f` on the blocking pool (the caller need not wait), or here when
/// there is no runtime (a drop after it shut down).
pub(crate) fn in_background(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(f)),
        Err(_) => f(),
    }
}

/// Releases a job nobody received (its attempt is not counted), off the
/// runtime's threads.
pub(crate) fn give_back(job: crate::Job) {
    in_background(move || {
        let _ = job.release();
    })
}

/// Waits for a commit after generation `seen` on `db`'s file (woken by the
/// watcher, from this or any process), at most `wait`.
pub(crate) async fn changed_within(db: &Database, seen: u64, wait: Duration) -> Result<()> {
    let changed = honker_core::wake::watcher(&db.core).changed(seen);
    let timer = sleep(wait)?;
    let mut changed = std::pin::pin!(changed);
    let mut timer = std::pin::pin!(timer);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = changed.as_mut().poll(cx) {
            return Poll::Ready(r.map(|_| ()));
        }
        timer.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// A tokio timer, or an error naming the problem when the runtime was built
/// without timers (tokio panics there; its message is still printed).
fn sleep(d: Duration) -> Result<tokio::time::Sleep> {
    std::panic::catch_unwind(|| tokio::time::sleep(d)).map_err(|_| {
        Error::invalid(
            "runtime",
            "honker's async waits need tokio's timers: build the runtime with enable_time() or \
             enable_all()",
        )
    })
}

/// A wait in progress behind a `Stream`'s `poll_next`.
pub(crate) struct Pending<T>(Pin<Box<dyn Future<Output = Result<Option<T>>> + Send>>);

// SAFETY: the future inside is only ever reached through `&mut Pending`
// (`poll_slot`); nothing reads it through `&Pending` (Debug prints a fixed
// word), so sharing `&Pending` between threads gives access to nothing.
// This keeps `Subscription`, `Listener` and `Claims` `Sync`, as they are
// without the feature (the argument of the `sync_wrapper` crate).
unsafe impl<T> Sync for Pending<T> {}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

/// `poll_next` of a stream whose items come from `make()`'s futures, one
/// at a time; the stream ends when one gives `Ok(None)`.
pub(crate) fn poll_next<T, F>(
    slot: &mut Option<Pending<T>>,
    cx: &mut Context<'_>,
    make: impl FnOnce() -> F,
) -> Poll<Option<Result<T>>>
where
    F: Future<Output = Result<Option<T>>> + Send + 'static,
{
    if slot.is_none() {
        *slot = Some(Pending(Box::pin(make())));
    }
    poll_slot(slot, cx)
}

/// Polls the wait in `slot`, emptying it once it is over.
pub(crate) fn poll_slot<T>(
    slot: &mut Option<Pending<T>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<T>>> {
    let Some(fut) = slot.as_mut() else {
        return Poll::Ready(None);
    };
    match fut.0.as_mut().poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(out) => {
            *slot = None;
            Poll::Ready(out.transpose())
        }
    }
}
