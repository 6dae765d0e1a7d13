//! The async API (feature `tokio`): waits as futures and streams, woken by
//! commits from this and other processes; transactions held across
//! `.await`; cancellation that loses nothing.
#![cfg(feature = "tokio")]

mod common;
use common::{spawn_role, wait_ok, TempDb, ROLE};
use futures_core::Stream;
use honker::{Database, EnqueueOpts, Error, QueueOpts, ScheduledTask};
use serde_json::json;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The next item of a `futures_core::Stream`.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// `f`, failing the test if it takes longer than [`LONG`].
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LONG, f).await.expect("timed out")
}

#[test]
fn a_claim_stream_is_woken_by_jobs_another_process_enqueues() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("work", QueueOpts::default());
    multi_thread().block_on(async {
        let mut claims = q.claims("parent");
        // The stream is already waiting (empty queue) when the child starts.
        let first = tokio::spawn(async move {
            let job = within(next(&mut claims)).await.unwrap().unwrap();
            (job, claims)
        });
        let (mut child, _rx) = spawn_role(
            "child_entry",
            "enqueuer",
            &[("HONKER_DB", t.path().display().to_string())],
        );
        let (job, mut claims) = first.await.unwrap();
        let mut seen = vec![job.payload_as::<i64>().unwrap()];
        assert!(job.ack_async().await.unwrap());
        while seen.len() < 20 {
            let job = within(next(&mut claims)).await.unwrap().unwrap();
            seen.push(job.payload_as::<i64>().unwrap());
            assert!(job.ack_async().await.unwrap());
        }
        assert_eq!(seen, (0..20).collect::<Vec<i64>>());
        wait_ok(&mut child, LONG);
        // Stopping ends the stream.
        claims.stop_handle().stop();
        assert!(within(next(&mut claims)).await.is_none());
    });
}

#[test]
#[ignore = "run as a child process by the tests above"]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let db = Database::open(std::env::var("HONKER_DB").unwrap()).unwrap();
    match role.as_str() {
        "enqueuer" => {
            let q = db.queue("work", QueueOpts::default());
            for i in 0..20i64 {
                q.enqueue(&i, EnqueueOpts::default()).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn next_async_is_woken_by_a_commit_and_ends_when_stopped() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    current_thread().block_on(async {
        let waker = q.claim_waker();
        let w = waker.clone();
        let waiting = tokio::spawn(async move { w.next_async("w1").await });
        tokio::task::yield_now().await;
        q.enqueue_async(&json!({"n": 1}), EnqueueOpts::default())
            .await
            .unwrap();
        let job = within(waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(job.payload_as::<serde_json::Value>().unwrap()["n"], 1);
        assert!(job.ack_async().await.unwrap());
        // A timeout ends an empty wait with None.
        let none = waker
            .next_timeout_async("w1", Duration::from_millis(20))
            .await
            .unwrap();
        assert!(none.is_none());
        // A stop from another task ends a wait in progress.
        let w = waker.clone();
        let waiting = tokio::spawn(async move { w.next_async("w1").await });
        tokio::task::yield_now().await;
        waker.stop();
        assert!(within(waiting).await.unwrap().unwrap().is_none());
    });
}

#[test]
fn a_transaction_held_across_awaits_belongs_to_its_task_on_any_thread() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    multi_thread().block_on(async {
        let (db2, q2) = (db.clone(), q.clone());
        tokio::spawn(async move {
            let tx = db2.transaction_async().await.unwrap();
            let threads_before = std::thread::current().id();
            let mut hopped = false;
            for _ in 0..200 {
                // Yield until the task resumes on another worker thread.
                tokio::task::yield_now().await;
                tokio::spawn(async {}).await.unwrap();
                if std::thread::current().id() != threads_before {
                    hopped = true;
                    break;
                }
            }
            // On whichever thread: the task's own plain calls are refused,
            // sync or async, instead of waiting for itself.
            let sync = q2.enqueue(&1, EnqueueOpts::default()).unwrap_err();
            assert!(
                matches!(sync, Error::TransactionOpen { own: true }),
                "{sync:?}"
            );
            let asynch = q2
                .enqueue_async(&1, EnqueueOpts::default())
                .await
                .unwrap_err();
            assert!(
                matches!(asynch, Error::TransactionOpen { own: true }),
                "{asynch:?}"
            );
            let id = q2
                .enqueue_tx(&tx, &"in tx", EnqueueOpts::default())
                .unwrap();
            tx.commit_async().await.unwrap();
            (id, hopped)
        })
        .await
        .map(|(id, _hopped)| assert!(q.get_job(id).unwrap().is_some()))
        .unwrap();
    });
}

#[test]
fn on_one_thread_another_tasks_call_waits_for_the_commit_instead_of_deadlocking() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    current_thread().block_on(async {
        let tx = db.transaction_async().await.unwrap();
        let in_tx = q.enqueue_tx(&tx, &"first", EnqueueOpts::default()).unwrap();
        let q2 = q.clone();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let other = tokio::spawn(async move {
            let _ = started_tx.send(());
            q2.enqueue_async(&"second", EnqueueOpts::default()).await
        });
        // The other task is running its call (the runtime's only thread is
        // free: the call waits for the commit on the blocking pool).
        started.await.unwrap();
        tokio::task::yield_now().await;
        assert!(
            !other.is_finished(),
            "it cannot enqueue while the transaction is open"
        );
        tx.commit_async().await.unwrap();
        let after = within(other).await.unwrap().unwrap();
        assert!(after > in_tx);
        assert_eq!(q.stats().unwrap().ready, 2);
    });
}

#[test]
fn a_plain_transaction_begun_in_a_task_is_the_tasks_too() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    multi_thread().block_on(async {
        let q2 = q.clone();
        let db2 = db.clone();
        tokio::spawn(async move {
            let tx = db2.transaction().unwrap();
            tokio::task::yield_now().await;
            let e = q2.enqueue(&1, EnqueueOpts::default()).unwrap_err();
            assert!(matches!(e, Error::TransactionOpen { own: true }), "{e:?}");
            tx.rollback().unwrap();
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_subscription_follows_a_stream_as_a_stream_and_resumes_where_it_left() {
    let t = TempDb::new();
    let db = t.open();
    let s = db.stream("events");
    multi_thread().block_on(async {
        for i in 0..300 {
            s.publish_async(&json!({ "i": i })).await.unwrap();
        }
        let mut sub = s.subscribe_async("c1").await.unwrap();
        for i in 0..300 {
            let ev = within(next(&mut sub)).await.unwrap().unwrap();
            assert_eq!(ev.payload_as::<serde_json::Value>().unwrap()["i"], i);
        }
        // Caught up: a later publish wakes the waiting consumer.
        let stop = sub.stop_handle();
        let waiting = tokio::spawn(async move {
            let ev = sub.next_async().await.unwrap().unwrap();
            (ev, sub)
        });
        tokio::task::yield_now().await;
        s.publish(&json!({"i": 300})).unwrap();
        let (ev, mut sub) = within(waiting).await.unwrap();
        assert_eq!(ev.payload_as::<serde_json::Value>().unwrap()["i"], 300);
        sub.commit_async().await.unwrap();
        assert_eq!(s.get_offset("c1").unwrap(), ev.offset);
        stop.stop();
        assert!(within(sub.next_async()).await.unwrap().is_none());
        drop(sub);
        // A new subscription starts after what was committed.
        s.publish(&json!({"i": 301})).unwrap();
        let mut again = s.subscribe_async("c1").await.unwrap();
        let ev = within(again.next_async()).await.unwrap().unwrap();
        assert_eq!(ev.payload_as::<serde_json::Value>().unwrap()["i"], 301);
    });
}

/// Polls `f` once and drops it if it is not done: a cancellation in flight.
async fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Polls `f` until `done()` says its work finished on the blocking pool,
/// then drops it unread (unless it was ready first). It keeps polling
/// because a step of an earlier cancelled call may take the job first and
/// give it back: `f` must go on waiting to see it again.
async fn poll_then_drop_unread<F: Future>(f: F, done: impl Fn() -> bool) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + LONG;
    loop {
        // Looked at before polling: once the work is done, its answer is
        // dropped unread.
        if done() {
            return None;
        }
        if let Poll::Ready(v) = poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
            return Some(v);
        }
        assert!(Instant::now() < deadline, "the work never finished");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_cancelled_next_async_hands_its_event_out_again() {
    let t = TempDb::new();
    let db = t.open();
    let s = db.stream("events");
    multi_thread().block_on(async {
        let mut sub = s.subscribe("c").unwrap();
        let mut got = Vec::new();
        for i in 0..60i64 {
            // Published after the consumer drained its buffer, so the next
            // call has to fetch it on the blocking pool.
            s.publish(&i).unwrap();
            let early = match i % 3 {
                // Cancelled in flight: the step finishes after the future
                // is gone, and gives its event back.
                0 => poll_once(sub.next_async()).await.map(|r| r.unwrap()),
                // Cancelled at a moment the race decides: before, during or
                // after the step, its answer read or not.
                1 => tokio::time::timeout(Duration::from_micros(50), sub.next_async())
                    .await
                    .ok()
                    .map(|r| r.unwrap()),
                _ => None,
            };
            let ev = match early {
                Some(ev) => ev,
                None => within(sub.next_async()).await.unwrap(),
            };
            got.push(ev.unwrap().payload_as::<i64>().unwrap());
        }
        assert_eq!(got, (0..60).collect::<Vec<i64>>());
        // What was moved past is saved, and nothing after it.
        sub.commit_async().await.unwrap();
        assert_eq!(s.get_offset("c").unwrap(), s.last_offset().unwrap());
    });
}

#[test]
fn a_claim_cancelled_in_flight_gives_the_job_back_uncounted() {
    let t = TempDb::new();
    let db = t.open();
    // A lost job would come back only after an hour.
    let q = db.queue(
        "q",
        QueueOpts {
            visibility_timeout: Duration::from_secs(3600),
            ..QueueOpts::default()
        },
    );
    multi_thread().block_on(async {
        let waker = q.claim_waker();
        for round in 0..40i64 {
            q.enqueue(&round, EnqueueOpts::default()).unwrap();
            let early = if round % 2 == 0 {
                poll_once(waker.next_async("w")).await
            } else {
                // The claim commits, its answer is never read.
                let processing = || q.stats().unwrap().processing == 1;
                poll_then_drop_unread(waker.next_async("w"), processing).await
            };
            let job = match early {
                Some(got) => got.unwrap().unwrap(),
                None => within(waker.next_async("w")).await.unwrap().unwrap(),
            };
            assert_eq!(job.payload_as::<i64>().unwrap(), round);
            assert_eq!(job.attempts, 1, "a given-back claim is not counted");
            assert!(job.ack_async().await.unwrap());
        }
        // claim_batch_async likewise.
        q.enqueue_many(&[1, 2, 3], EnqueueOpts::default()).unwrap();
        let processing = || q.stats().unwrap().processing == 3;
        let mut n = 0;
        if let Some(got) = poll_then_drop_unread(q.claim_batch_async("w", 3), processing).await {
            for job in got.unwrap() {
                assert!(job.ack_async().await.unwrap());
                n += 1;
            }
        }
        while n < 3 {
            let job = within(waker.next_async("w")).await.unwrap().unwrap();
            assert_eq!(job.attempts, 1);
            assert!(job.ack_async().await.unwrap());
            n += 1;
        }
        assert_eq!(q.stats().unwrap().processing, 0);
    });
}

#[test]
fn a_listener_receives_in_order_as_a_stream_and_a_close_ends_its_wait() {
    let t = TempDb::new();
    let db = t.open();
    current_thread().block_on(async {
        let mut l = db.listen("ch").unwrap();
        for i in 0..3 {
            db.notify_async("ch", &i).await.unwrap();
        }
        for i in 0..3 {
            let n = within(next(&mut l)).await.unwrap().unwrap();
            assert_eq!(n.payload_as::<i64>().unwrap(), i);
        }
        let closer = l.closer();
        let waiting = tokio::spawn(async move { l.recv_async().await });
        tokio::task::yield_now().await;
        closer.close();
        assert!(within(waiting).await.unwrap().is_none());
        // A timeout ends an empty wait with None.
        let mut l = db.listen("quiet").unwrap();
        let got = l
            .recv_timeout_async(Duration::from_millis(20))
            .await
            .unwrap();
        assert!(got.is_none());
    });
}

#[test]
fn run_async_fires_schedules_and_dropping_it_gives_up_leadership() {
    let t = TempDb::new();
    let db = t.open();
    let sched = db.scheduler();
    sched
        .add(ScheduledTask {
            name: "tick".into(),
            queue: "ticks".into(),
            cron: "@every 1s".into(),
            payload: json!({"t": 1}),
            priority: 0,
            expires_s: None,
        })
        .unwrap();
    multi_thread().block_on(async {
        let s = sched.clone();
        let running = tokio::spawn(async move {
            s.run_async(Arc::new(AtomicBool::new(false)), "leader-1")
                .await
        });
        let q = db.queue("ticks", QueueOpts::default());
        let job = within(q.claim_waker().next_async("w"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.payload_as::<serde_json::Value>().unwrap()["t"], 1);
        assert!(db.lock_holder("honker:scheduler").unwrap().is_some());
        running.abort();
        let _ = running.await;
        // The loop ends within its stop poll and releases the lock.
        let deadline = Instant::now() + LONG;
        while db.lock_holder("honker:scheduler").unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "the leader lock was never released"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn an_async_method_outside_a_runtime_is_an_error_not_a_panic() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(q.enqueue_async(&1, EnqueueOpts::default()));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Err(Error::InvalidArgument { name, .. })) => assert_eq!(name, "runtime"),
        other => panic!("expected an InvalidArgument error, got {other:?}"),
    }
}
