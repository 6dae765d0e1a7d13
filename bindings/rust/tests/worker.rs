//! The Rust worker: tasks as closures, run, drain, results awaited.

mod common;

use common::TempDb;
use honker::{
    CancelReason, EnqueueOpts, JobOutcome, JobState, QueueOpts, RetryPolicy, TaskOptions,
    WorkerOptions,
};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

fn opts(queue: &str) -> WorkerOptions {
    WorkerOptions {
        queues: vec![queue.to_string()],
        ..WorkerOptions::default()
    }
}

#[test]
fn run_handles_tasks_and_the_enqueuer_reads_results() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("math", QueueOpts::default());
    let mut w = db.worker(WorkerOptions {
        concurrency: 3,
        ..opts("math")
    });
    w.task("add", |call| {
        let (a, b): (i64, i64) = call.payload()?;
        Ok::<_, honker::Error>(json!({ "sum": a + b }))
    });
    w.task("fail", |_| Err::<(), _>("no luck"));
    let stop = Arc::new(AtomicBool::new(false));
    let ids: Vec<i64> = (0..20)
        .map(|i| {
            q.enqueue_task("add", &(i, 1), EnqueueOpts::default())
                .unwrap()
        })
        .collect();
    let bad = q
        .enqueue_task(
            "fail",
            &(),
            EnqueueOpts {
                max_attempts: Some(1),
                ..EnqueueOpts::default()
            },
        )
        .unwrap();
    std::thread::scope(|s| {
        let runner = s.spawn(|| w.run(stop.clone()));
        for (i, id) in ids.iter().enumerate() {
            let got = db.wait_job(*id, LONG).unwrap().expect("finished in time");
            let want = json!({ "sum": i as i64 + 1 }).to_string();
            assert_eq!(got, JobOutcome::Completed(Some(want)));
        }
        let dead = db.wait_job(bad, LONG).unwrap().unwrap();
        let err = dead.into_result().unwrap_err();
        assert_eq!(err.code(), "job_failed");
        assert!(err.to_string().contains("no luck"), "{err}");
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap().unwrap();
    });
    assert_eq!(q.stats().unwrap().processing, 0);
}

#[test]
fn drain_runs_what_is_due_with_per_task_retry_policies() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    let tries = Arc::new(AtomicUsize::new(0));
    let mut w = db.worker(WorkerOptions {
        retry: RetryPolicy::Fixed(Duration::from_secs(3600)),
        ..opts("q")
    });
    let n = tries.clone();
    w.task_with(
        "flaky",
        TaskOptions {
            retry: Some(RetryPolicy::Fixed(Duration::ZERO)),
            ..TaskOptions::default()
        },
        move |call| {
            n.fetch_add(1, Ordering::SeqCst);
            if call.attempt() < 3 {
                Err(format!("attempt {} failed", call.attempt()))
            } else {
                Ok("third time")
            }
        },
    );
    w.task("slow_retry", |_| Err::<(), _>("later"));
    w.task("panics", |_| -> Result<(), String> { panic!("kaboom") });
    let flaky = q.enqueue_task("flaky", &1, EnqueueOpts::default()).unwrap();
    let slow = q
        .enqueue_task("slow_retry", &1, EnqueueOpts::default())
        .unwrap();
    let boom = q
        .enqueue_task("panics", &1, EnqueueOpts::default())
        .unwrap();
    let ran = w.drain().unwrap();
    assert_eq!(ran, 5, "flaky three times, the others once");
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert_eq!(
        db.wait_job(flaky, LONG).unwrap(),
        Some(JobOutcome::Completed(Some("\"third time\"".into())))
    );
    let s = q.get_job(slow).unwrap().unwrap();
    assert_eq!((s.state, s.attempts), (JobState::Scheduled, 1));
    let b = q.get_job(boom).unwrap().unwrap();
    assert!(
        b.last_error
            .unwrap()
            .contains("the handler panicked: kaboom"),
        "a panic is an error"
    );
    assert_eq!(w.drain().unwrap(), 0);
}

#[test]
fn a_timed_out_handler_is_told_and_its_job_retried() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    let mut w = db.worker(opts("q"));
    w.task_with(
        "sleepy",
        TaskOptions {
            timeout: Some(Duration::from_millis(100)),
            retry: Some(RetryPolicy::Fixed(Duration::ZERO)),
            ..TaskOptions::default()
        },
        |call| {
            if call.attempt() == 1 {
                // Works until told to stop, as a long handler would.
                let why = call.wait_cancelled(LONG);
                assert_eq!(why, Some(CancelReason::Timeout));
                return Ok::<_, String>("late");
            }
            Ok("second")
        },
    );
    let id = q
        .enqueue_task("sleepy", &(), EnqueueOpts::default())
        .unwrap();
    assert_eq!(w.drain().unwrap(), 2);
    assert_eq!(
        db.wait_job(id, LONG).unwrap(),
        Some(JobOutcome::Completed(Some("\"second\"".into())))
    );
}

#[test]
fn bad_workers_are_errors_not_panics() {
    let t = TempDb::new();
    let db = t.open();
    let mut w = db.worker(WorkerOptions::default());
    w.task("t", |_| Ok::<_, String>(()));
    assert!(w.drain().unwrap_err().to_string().contains("queues"));
    let q = db.queue("q", QueueOpts::default());
    assert_eq!(
        q.enqueue_task("", &1, EnqueueOpts::default())
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_async_runs_async_handlers_and_drops_timed_out_ones() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("q", QueueOpts::default());
    let mut w = db.worker(WorkerOptions {
        concurrency: 4,
        ..opts("q")
    });
    w.task_async("double", TaskOptions::default(), |call| async move {
        let n: i64 = call.payload()?;
        tokio::task::yield_now().await;
        Ok::<_, honker::Error>(n * 2)
    });
    w.task_async(
        "hang",
        TaskOptions {
            timeout: Some(Duration::from_millis(100)),
            retry: Some(RetryPolicy::Fixed(Duration::from_secs(3600))),
            ..TaskOptions::default()
        },
        |_| async move {
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        },
    );
    w.task("sync", |_| Ok::<_, String>("from a thread"));
    let ids: Vec<i64> = (0..10)
        .map(|i| {
            q.enqueue_task("double", &i, EnqueueOpts::default())
                .unwrap()
        })
        .collect();
    let hang = q.enqueue_task("hang", &(), EnqueueOpts::default()).unwrap();
    let sync = q.enqueue_task("sync", &(), EnqueueOpts::default()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(async move {
        w.run_async(async {
            let _ = rx.await;
        })
        .await
    });
    for (i, id) in ids.iter().enumerate() {
        let got = db.wait_job_async(*id, LONG).await.unwrap().unwrap();
        assert_eq!(got, JobOutcome::Completed(Some((2 * i).to_string())));
    }
    assert_eq!(
        db.wait_job_async(sync, LONG).await.unwrap(),
        Some(JobOutcome::Completed(Some("\"from a thread\"".into())))
    );
    // The hung handler is dropped at its timeout; the job waits to retry.
    loop {
        let j = q.get_job_async(hang).await.unwrap().unwrap();
        if j.state == JobState::Scheduled {
            assert!(j.last_error.unwrap().contains("timed out"));
            break;
        }
        db.wait_job_async(hang, Duration::from_millis(50))
            .await
            .unwrap();
    }
    tx.send(()).unwrap();
    runner.await.unwrap().unwrap();
}

#[test]
fn a_pause_from_another_handle_stops_a_running_worker_and_a_resume_wakes_it() {
    let t = TempDb::new();
    let db = t.open();
    let operator = t.open(); // another connection, as another process would have
    let q = db.queue("q", QueueOpts::default());
    let other = db.queue("other", QueueOpts::default());
    let mut w = db.worker(WorkerOptions {
        concurrency: 2,
        queues: vec!["q".into(), "other".into()],
        ..WorkerOptions::default()
    });
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    w.task("t", move |call| {
        let name: String = call.payload()?;
        tx.lock().unwrap().send(name).unwrap();
        Ok::<_, honker::Error>(())
    });
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let runner = s.spawn(|| w.run(stop.clone()));
        q.enqueue_task("t", "a", EnqueueOpts::default()).unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), "a");

        let oq = operator.queue("q", QueueOpts::default());
        assert!(oq.pause().unwrap());
        assert!(q.controls().unwrap().paused, "stored in the file");
        let b = q.enqueue_task("t", "b", EnqueueOpts::default()).unwrap();
        // A job of the other queue, enqueued after b: once it has run, the
        // worker has looked at both queues since b was enqueued.
        other
            .enqueue_task("t", "c", EnqueueOpts::default())
            .unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), "c");
        assert_eq!(q.get_job(b).unwrap().unwrap().state, JobState::Ready);

        assert!(oq.resume().unwrap());
        assert_eq!(rx.recv_timeout(LONG).unwrap(), "b", "woken by the resume");
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap().unwrap();
    });
}
