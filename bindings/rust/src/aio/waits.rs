//! The waits as futures and streams: claim the next job, follow a stream,
//! listen on a channel, run the scheduler.

use super::{changed_within, give_back, offload, offload_with, poll_next, undoable, Deliver};
use crate::wake::cursor;
use crate::{
    ClaimWaker, Database, Job, Listener, Queue, Result, Scheduler, SchedulerOpts, StopHandle,
    Subscription,
};
use honker_core::model::Notification;
use honker_core::wake::stop::Stop;
use honker_core::wake::wait::{self, Step, StreamCursor};
use honker_core::wake::watcher::ListenerQueue;
use honker_core::{validate, Event};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

impl ClaimWaker {
    /// [`ClaimWaker::next`], awaited: claims the next job for `worker`,
    /// waiting (without a thread) as long as it takes. `Ok(None)` once
    /// [`ClaimWaker::stop`] was called. Dropping the future gives back a job
    /// claimed in that instant (released: its attempt is not counted).
    pub async fn next_async(&self, worker: &str) -> Result<Option<Job>> {
        claim(self.clone(), worker.into(), None).await
    }

    /// [`ClaimWaker::next_async`], giving up with `Ok(None)` after `timeout`.
    pub async fn next_timeout_async(&self, worker: &str, timeout: Duration) -> Result<Option<Job>> {
        claim(self.clone(), worker.into(), Some(timeout)).await
    }
}

async fn claim(
    waker: ClaimWaker,
    worker: Arc<str>,
    timeout: Option<Duration>,
) -> Result<Option<Job>> {
    let db = waker.queue.database().clone();
    let deadline = timeout.and_then(validate::deadline);
    loop {
        if waker.stop.is_stopped() {
            return Ok(None);
        }
        let (q, w, back) = (waker.queue.clone(), worker.clone(), db.clone());
        let step = undoable(
            move || wait::claim_step(&q.database().core, crate::caller(), q.name(), &w, q.opts()),
            move |step| {
                if let Step::Ready(record) = step {
                    give_back(Job::new(record, back.clone()));
                }
            },
        )
        .await?;
        match step {
            Step::Ready(record) => return Ok(Some(Job::new(record, db))),
            Step::Wait { seen, at_most } => {
                // Looked at after `seen` was read: a stop set later moves it.
                if waker.stop.is_stopped() {
                    return Ok(None);
                }
                let Some(wait) = wait::bounded(at_most, deadline) else {
                    return Ok(None);
                };
                changed_within(&db, seen, wait).await?;
            }
        }
    }
}

/// Every job of a queue, claimed for one worker as the stream is polled:
/// a `futures_core::Stream` of `Result<Job>` that waits (woken by commits,
/// no polling) while the queue is empty and ends once its
/// [`StopHandle`] is stopped. Get one with [`Queue::claims`].
#[derive(Debug)]
pub struct Claims {
    waker: ClaimWaker,
    worker: Arc<str>,
    pending: Option<super::Pending<Job>>,
}

impl Queue {
    /// The queue's jobs as a stream for `worker` (feature `tokio`): each
    /// item is claimed when the stream is polled, so a consumer that stops
    /// polling holds nothing. Ack, retry or fail each job as with
    /// [`Queue::claim_one`]. Dropping the stream while it waits gives back a
    /// job claimed in that instant.
    pub fn claims(&self, worker: &str) -> Claims {
        Claims {
            waker: self.claim_waker(),
            worker: worker.into(),
            pending: None,
        }
    }
}

impl Claims {
    /// A handle that ends the stream from anywhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.waker.stop_handle()
    }
}

impl futures_core::Stream for Claims {
    type Item = Result<Job>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Job>>> {
        let Claims {
            waker,
            worker,
            pending,
        } = self.get_mut();
        poll_next(pending, cx, || claim(waker.clone(), worker.clone(), None))
    }
}

/// What a stream consumer's async wait works with.
struct Follow {
    db: Database,
    cursor: Arc<Mutex<StreamCursor>>,
    stop: StopHandle,
    /// Which call is current: a worker-thread step of an earlier call,
    /// cancelled before it got the cursor, sees a newer turn and does
    /// nothing, so it cannot move the consumer past an event in hand.
    epoch: Arc<AtomicU64>,
    turn: u64,
}

impl Subscription {
    fn follow(&mut self) -> Follow {
        // A new call: whatever an earlier (cancelled) one left is dropped
        // first, giving back its event.
        self.pending = None;
        Follow {
            db: self.db.clone(),
            cursor: self.cursor.clone(),
            stop: self.stop.clone(),
            turn: self.take_turn(),
            epoch: self.epoch.clone(),
        }
    }

    /// The next event, awaited (feature `tokio`): replays, then waits
    /// without a thread for new events. `Ok(None)` once stopped. Delivery is
    /// as with the iterator (at-least-once, offsets saved in batches);
    /// dropping the future hands the event it was getting out again next.
    pub async fn next_async(&mut self) -> Result<Option<Event>> {
        next_event(self.follow(), None).await
    }

    /// [`Subscription::next_async`], giving up with `Ok(None)` after
    /// `timeout`.
    pub async fn next_timeout_async(&mut self, timeout: Duration) -> Result<Option<Event>> {
        next_event(self.follow(), Some(timeout)).await
    }

    /// [`Subscription::commit`], awaited.
    pub async fn commit_async(&mut self) -> Result<()> {
        let f = self.follow();
        offload(move || cursor(&f.cursor).commit(&f.db.core, crate::caller())).await
    }
}

async fn next_event(f: Follow, timeout: Option<Duration>) -> Result<Option<Event>> {
    // An event already fetched needs neither the database nor a thread.
    let buffered = match f.cursor.try_lock() {
        Ok(mut c) => c.next_buffered(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().next_buffered(),
        Err(TryLockError::WouldBlock) => None,
    };
    if buffered.is_some() {
        return Ok(buffered);
    }
    let deadline = timeout.and_then(validate::deadline);
    let mut first = true;
    loop {
        let (db, cur, back) = (f.db.clone(), f.cursor.clone(), f.cursor.clone());
        let (epoch, turn) = (f.epoch.clone(), f.turn);
        let begin = std::mem::replace(&mut first, false);
        let step = offload_with(
            move |out: Deliver<Step<Event>>| {
                let mut c = cursor(&cur);
                if epoch.load(Ordering::SeqCst) != turn {
                    return; // cancelled before it began; a newer call took over
                }
                let me = crate::caller();
                let step = match begin {
                    true => c
                        .begin_next(&db.core, me)
                        .and_then(|()| c.step(&db.core, me)),
                    false => c.step(&db.core, me),
                };
                // Still holding the cursor: nothing can come between the
                // step and the give-back.
                if let Some(Step::Ready(ev)) = out.send(step) {
                    c.give_back(ev);
                }
            },
            Arc::new(move |step| {
                if let Step::Ready(ev) = step {
                    cursor(&back).give_back(ev);
                }
            }),
        )
        .await?;
        match step {
            Step::Ready(ev) => return Ok(Some(ev)),
            Step::Wait { seen, at_most } => {
                if f.stop.is_stopped() {
                    return Ok(None);
                }
                let Some(wait) = wait::bounded(at_most, deadline) else {
                    return Ok(None);
                };
                changed_within(&f.db, seen, wait).await?;
            }
        }
    }
}

impl futures_core::Stream for Subscription {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let f = this.follow();
            this.pending = Some(super::Pending(Box::pin(next_event(f, None))));
        }
        super::poll_slot(&mut this.pending, cx)
    }
}

impl Listener {
    /// The next notification, awaited (feature `tokio`), waiting without a
    /// thread as long as it takes. `None` once the listener (or its
    /// database) is closed.
    pub async fn recv_async(&mut self) -> Option<Result<Notification>> {
        self.pending = None;
        recv(self.db.clone(), self.queue.clone(), None)
            .await
            .transpose()
    }

    /// [`Listener::recv_async`], waiting at most `timeout`.
    pub async fn recv_timeout_async(&mut self, timeout: Duration) -> Result<Option<Notification>> {
        self.pending = None;
        recv(self.db.clone(), self.queue.clone(), Some(timeout)).await
    }
}

async fn recv(
    db: Database,
    queue: Arc<ListenerQueue>,
    timeout: Option<Duration>,
) -> Result<Option<Notification>> {
    let watcher = honker_core::wake::watcher(&db.core);
    let deadline: Option<Instant> = timeout.and_then(validate::deadline);
    loop {
        watcher.check_alive()?;
        // The generation is read before the queue is looked at: a
        // notification handed over after the look moves it.
        let seen = watcher.generation();
        if let Some(n) = queue.try_recv() {
            return Ok(Some(n));
        }
        if queue.is_closed() {
            return Ok(None);
        }
        let Some(wait) = wait::bounded(wait::MAX_WAIT, deadline) else {
            return Ok(None);
        };
        changed_within(&db, seen, wait).await?;
    }
}

impl futures_core::Stream for Listener {
    type Item = Result<Notification>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Notification>>> {
        let Listener {
            db, queue, pending, ..
        } = self.get_mut();
        poll_next(pending, cx, || recv(db.clone(), queue.clone(), None))
    }
}

impl Scheduler {
    /// [`Scheduler::run`], awaited (feature `tokio`): the loop runs on one
    /// thread of tokio's blocking pool until `stop` is set or the future is
    /// dropped (either ends it within 50 ms and releases the leader lock).
    pub async fn run_async(&self, stop: Arc<AtomicBool>, owner: &str) -> Result<()> {
        self.run_with_async(stop, owner, SchedulerOpts::default())
            .await
    }

    /// [`Scheduler::run_with`], awaited.
    pub async fn run_with_async(
        &self,
        stop: Arc<AtomicBool>,
        owner: &str,
        opts: SchedulerOpts,
    ) -> Result<()> {
        let dropped = StopOnDrop(Arc::new(AtomicBool::new(false)), self.db.clone());
        let stop = Either(stop, dropped.0.clone());
        let (s, owner) = (self.clone(), owner.to_string());
        offload(move || s.run_until(&stop, &owner, opts, |p| log::warn!("{p}"))).await
    }
}

/// Set when the future holding it is dropped.
struct StopOnDrop(Arc<AtomicBool>, Database);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        honker_core::wake::watcher(&self.1.core).interrupt();
    }
}

/// Set when either flag is.
struct Either(Arc<AtomicBool>, Arc<AtomicBool>);

impl Stop for Either {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst) || self.1.load(Ordering::SeqCst)
    }
}

impl Database {
    /// [`Database::wait_job`], awaited: waits (without a thread, woken by
    /// the commit that ends the job) up to `timeout` for job `id` to end.
    /// Dropping the future stops the wait.
    pub async fn wait_job_async(
        &self,
        id: i64,
        timeout: Duration,
    ) -> Result<Option<crate::JobOutcome>> {
        let deadline = validate::deadline(timeout);
        loop {
            let db = self.clone();
            let step = offload(move || wait::outcome_step(&db.core, crate::caller(), id)).await?;
            match step {
                Step::Ready(o) => return Ok(Some(o)),
                Step::Wait { seen, at_most } => {
                    let Some(wait) = wait::bounded(at_most, deadline) else {
                        return Ok(None);
                    };
                    changed_within(self, seen, wait).await?;
                }
            }
        }
    }
}
