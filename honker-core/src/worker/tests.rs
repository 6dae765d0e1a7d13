use super::*;
use crate::model::{EnqueueOpts, JobState};
use crate::testutil::Dir;
use std::sync::atomic::AtomicBool;

const LONG: Duration = Duration::from_secs(30);

fn open(dir: &Dir) -> Db {
    let db = dir.open("w.db");
    crate::wake::attach(&db);
    db
}

fn put(db: &Db, queue: &str, task: &str, args: &str) -> i64 {
    let payload = envelope::encode(task, Some(args), None).unwrap();
    db.by(Caller::this_thread())
        .enqueue(queue, &payload, &EnqueueOpts::default(), 3)
        .unwrap()
}

fn opts(queues: &[&str]) -> WorkerOptions {
    WorkerOptions {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        ..WorkerOptions::default()
    }
}

fn task(name: &str, o: TaskOptions) -> (String, TaskOptions) {
    (name.to_string(), o)
}

fn job(db: &Db, id: i64) -> Option<JobRecord> {
    db.by(Caller::this_thread()).get_job(id).unwrap()
}

/// Runs everything due in drain mode with `run` as the handler of every
/// task; returns the ids run, in order.
fn drain(w: &WorkerCore, mut run: impl FnMut(&Activation) -> Outcome<'static>) -> Vec<i64> {
    let mut ran = Vec::new();
    while let Some(first) = w.drain_next().unwrap() {
        let mut next = Some(first);
        while let Some(a) = next {
            ran.push(a.job.id);
            next = w.complete(a.job.id, run(&a)).unwrap();
        }
    }
    ran
}

#[test]
fn drain_runs_everything_due_and_chains_one_commit_per_job() {
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..5)
        .map(|i| put(&db, "q", "add", &format!("[{i}, 1]")))
        .collect();
    let w = WorkerCore::new(&db, opts(&["q"]), vec![task("add", TaskOptions::default())]).unwrap();
    let first = w.drain_next().unwrap().unwrap();
    assert_eq!((first.job.id, first.task.as_str()), (ids[0], "add"));
    assert_eq!(w.in_flight(), 1);
    // The ack claims the next job in the same commit and hands it back.
    let second = w
        .complete(first.job.id, Outcome::Completed(Some("1")))
        .unwrap()
        .unwrap();
    assert_eq!(second.job.id, ids[1]);
    assert_eq!(w.in_flight(), 1);
    assert_eq!(job(&db, ids[0]), None);
    let rest = drain(&w, |_| Outcome::Completed(Some(r#"{"ok":true}"#)));
    // The job in hand was left in flight by the manual steps: finish it.
    assert_eq!(rest, ids[2..].to_vec());
    assert!(w
        .complete(second.job.id, Outcome::Completed(None))
        .unwrap()
        .is_none());
    let ops = db.by(Caller::this_thread());
    assert_eq!(ops.get_result(ids[0]).unwrap().as_deref(), Some("1"));
    assert_eq!(ops.get_result(ids[1]).unwrap(), None, "no result given");
    assert_eq!(
        ops.get_result(ids[4]).unwrap().as_deref(),
        Some(r#"{"ok":true}"#)
    );
    assert_eq!(w.in_flight(), 0);
    assert!(w.drain_next().unwrap().is_none());
    assert_eq!(
        w.complete(ids[0], Outcome::Completed(None))
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn store_result_false_saves_nothing_and_null_is_not_saved() {
    let dir = Dir::new();
    let db = open(&dir);
    let a = put(&db, "q", "quiet", "[]");
    let b = put(&db, "q", "loud", "[]");
    let tasks = vec![
        task(
            "quiet",
            TaskOptions {
                store_result: false,
                ..TaskOptions::default()
            },
        ),
        task("loud", TaskOptions::default()),
    ];
    let w = WorkerCore::new(&db, opts(&["q"]), tasks).unwrap();
    drain(&w, |a| {
        Outcome::Completed(Some(if a.task == "loud" { "null" } else { "5" }))
    });
    let ops = db.by(Caller::this_thread());
    assert_eq!(ops.get_result(a).unwrap(), None);
    assert_eq!(ops.get_result(b).unwrap(), None);
    assert_eq!(job(&db, a), None);
}

#[test]
fn unknown_tasks_are_dead_lettered_with_a_reason_or_left() {
    let dir = Dir::new();
    let db = open(&dir);
    let unknown = put(&db, "q", "nobody", "[]");
    let raw = db
        .by(Caller::this_thread())
        .enqueue("q", "[1, 2]", &EnqueueOpts::default(), 3)
        .unwrap();
    let known = put(&db, "q", "mine", "[]");
    let w = WorkerCore::new(
        &db,
        opts(&["q"]),
        vec![task("mine", TaskOptions::default())],
    )
    .unwrap();
    assert_eq!(drain(&w, |_| Outcome::Completed(None)), vec![known]);
    let dead = job(&db, unknown).unwrap();
    assert_eq!(dead.state, JobState::Dead);
    let err = dead.last_error.unwrap();
    assert!(
        err.contains("unknown task \"nobody\"") && err.contains("it has: mine"),
        "{err}"
    );
    let dead = job(&db, raw).unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.last_error.unwrap().contains("not a task envelope"));

    // Left for another worker: back in the queue, the attempt not counted.
    let other = put(&db, "q", "theirs", "[]");
    let o = WorkerOptions {
        unknown_tasks: UnknownTasks::Leave(Duration::from_secs(60)),
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("mine", TaskOptions::default())]).unwrap();
    assert!(drain(&w, |_| Outcome::Completed(None)).is_empty());
    let left = job(&db, other).unwrap();
    assert_eq!((left.state, left.attempts), (JobState::Scheduled, 0));
}

#[test]
fn failures_follow_the_tasks_retry_policy_then_dead_letter() {
    let dir = Dir::new();
    let db = open(&dir);
    let fast = put(&db, "q", "fast", "[]");
    let slow = put(&db, "q", "slow", "[]");
    let tasks = vec![
        task(
            "fast",
            TaskOptions {
                retry: Some(RetryPolicy::Fixed(Duration::ZERO)),
                ..TaskOptions::default()
            },
        ),
        task("slow", TaskOptions::default()),
    ];
    let o = WorkerOptions {
        retry: RetryPolicy::Fixed(Duration::from_secs(3600)),
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, tasks).unwrap();
    let fail = |_: &Activation| Outcome::Failed {
        error: "boom",
        retry_in: None,
        retry: true,
    };
    // "fast" retries at once, three attempts, then dead; "slow" waits an hour.
    let ran = drain(&w, fail);
    assert_eq!(ran.iter().filter(|&&i| i == fast).count(), 3, "{ran:?}");
    assert_eq!(ran.iter().filter(|&&i| i == slow).count(), 1, "{ran:?}");
    let f = job(&db, fast).unwrap();
    assert_eq!(
        (f.state, f.dead_reason.as_deref(), f.last_error.as_deref()),
        (JobState::Dead, Some("max_attempts"), Some("boom"))
    );
    let s = job(&db, slow).unwrap();
    assert_eq!((s.state, s.attempts), (JobState::Scheduled, 1));
    assert!(s.run_at_ms >= db.now_ms() + 3_590_000);
    // A host-side delay wins; retry: false dead-letters at once.
    let h = put(&db, "q", "fast", "[]");
    let a = w.drain_next().unwrap().unwrap();
    assert_eq!(a.job.id, h);
    let r = Outcome::Failed {
        error: "later",
        retry_in: Some(Duration::from_secs(60)),
        retry: true,
    };
    assert!(w.complete(h, r).unwrap().is_none());
    assert!(job(&db, h).unwrap().run_at_ms >= db.now_ms() + 59_000);
    let d = put(&db, "q", "fast", "[]");
    let a = w.drain_next().unwrap().unwrap();
    assert_eq!(a.job.id, d);
    w.complete(
        d,
        Outcome::Failed {
            error: "fatal",
            retry_in: None,
            retry: false,
        },
    )
    .unwrap();
    assert_eq!(job(&db, d).unwrap().dead_reason.as_deref(), Some("failed"));
}

#[test]
fn a_timeout_signals_the_handler_and_retries_the_job() {
    let dir = Dir::new();
    let db = open(&dir);
    let id = put(&db, "q", "slow", "[]");
    let t = TaskOptions {
        timeout: Some(Duration::from_millis(100)),
        retry: Some(RetryPolicy::Fixed(Duration::ZERO)),
        ..TaskOptions::default()
    };
    let o = WorkerOptions {
        cancel_events: true,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("slow", t)]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    assert_eq!(a.timeout, Some(Duration::from_millis(100)));
    // The handler waits on its signal, as a long handler would look at it.
    assert_eq!(a.cancel.wait(LONG), Some(CancelReason::Timeout));
    // The job is already back for its next attempt, and the event is out.
    let j = job(&db, id).unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Ready, 1));
    assert!(j.last_error.unwrap().contains("timed out after 0.100 s"));
    match w.poll(&AtomicBool::new(false)).unwrap() {
        Polled::Cancel { id: got, why } => assert_eq!((got, why), (id, CancelReason::Timeout)),
        other => panic!("expected the cancel event, got {other:?}"),
    }
    // The late outcome changes nothing; the slot claims the retry.
    let again = w
        .complete(id, Outcome::Completed(Some("1")))
        .unwrap()
        .unwrap();
    assert_eq!((again.job.id, again.job.attempts), (id, 2));
    assert_eq!(db.by(Caller::this_thread()).get_result(id).unwrap(), None);
    assert!(w
        .complete(id, Outcome::Completed(Some("2")))
        .unwrap()
        .is_none());
    assert_eq!(
        db.by(Caller::this_thread())
            .get_result(id)
            .unwrap()
            .as_deref(),
        Some("2")
    );
}

#[test]
fn a_long_handler_keeps_its_lease_past_the_lease_length() {
    let dir = Dir::new();
    let db = open(&dir);
    let id = put(&db, "q", "long", "[]");
    let lease = Duration::from_millis(150);
    let o = WorkerOptions {
        lease,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("long", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    let first_end = a.job.lease_until_ms.unwrap();
    // Work for several lease lengths; meanwhile nobody can take the job.
    let ops = db.by(Caller::this_thread());
    let until = Instant::now() + 4 * lease;
    while Instant::now() < until {
        assert!(ops.claim("q", "thief", 1, lease).unwrap().is_empty());
        assert_eq!(a.cancel.wait(lease / 4), None);
    }
    let j = job(&db, id).unwrap();
    assert!(
        j.lease_until_ms.unwrap() > first_end,
        "the lease was renewed"
    );
    assert_eq!(j.attempts, 1);
    assert!(w
        .complete(id, Outcome::Completed(Some("7")))
        .unwrap()
        .is_none());
    assert_eq!(ops.get_result(id).unwrap().as_deref(), Some("7"));
}

#[test]
fn a_lost_lease_is_signalled() {
    let dir = Dir::new();
    let db = open(&dir);
    let id = put(&db, "q", "t", "[]");
    let o = WorkerOptions {
        lease: Duration::from_millis(60),
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    assert!(db.by(Caller::this_thread()).cancel(id).unwrap());
    assert_eq!(a.cancel.wait(LONG), Some(CancelReason::LeaseLost));
    assert!(w.complete(id, Outcome::Completed(None)).unwrap().is_none());
}

#[test]
fn poll_waits_for_a_commit_and_shutdown_releases_unfinished_jobs() {
    let dir = Dir::new();
    let db = open(&dir);
    let o = WorkerOptions {
        concurrency: 2,
        grace: Duration::from_millis(200),
        ..opts(&["a", "b"])
    };
    let w = Arc::new(WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (w2, s2) = (w.clone(), stop.clone());
    let poller = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            match w2.poll(&s2).unwrap() {
                Polled::Run(a) => got.push(a),
                Polled::Cancel { .. } => unreachable!("no cancel events asked for"),
                Polled::Done => return got,
            }
        }
    });
    let x = put(&db, "b", "t", "[1]");
    let y = put(&db, "a", "t", "[2]");
    let z = put(&db, "a", "t", "[3]");
    // Both slots fill; the third job waits. Wait for the claims to land.
    let deadline = Instant::now() + LONG;
    while w.in_flight() < 2 {
        assert!(Instant::now() < deadline, "the poller never claimed");
        db.watcher()
            .wait(db.watcher().generation(), Duration::from_millis(20))
            .unwrap();
    }
    let started = Instant::now();
    stop.store(true, Ordering::SeqCst);
    db.watcher().interrupt();
    let got = poller.join().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "waited the grace period"
    );
    let mut ids: Vec<i64> = got.iter().map(|a| a.job.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![x, y]);
    for a in &got {
        assert_eq!(a.cancel.reason(), Some(CancelReason::Shutdown));
        let j = job(&db, a.job.id).unwrap();
        assert_eq!(
            (j.state, j.attempts),
            (JobState::Ready, 0),
            "released, attempt not counted"
        );
    }
    assert_eq!(
        job(&db, z).unwrap().attempts,
        0,
        "never claimed after the stop"
    );
    // Late outcomes change nothing and claim nothing.
    assert!(w
        .complete(x, Outcome::Completed(Some("1")))
        .unwrap()
        .is_none());
    assert_eq!(job(&db, x).unwrap().state, JobState::Ready);
    assert!(matches!(
        w.poll(&AtomicBool::new(false)).unwrap(),
        Polled::Done
    ));
}

#[test]
fn shutdown_lets_running_jobs_finish_within_the_grace() {
    let dir = Dir::new();
    let db = open(&dir);
    let id = put(&db, "q", "t", "[]");
    let next = put(&db, "q", "t", "[]");
    let o = WorkerOptions {
        grace: LONG,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
    let a = match w.poll(&AtomicBool::new(false)).unwrap() {
        Polled::Run(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(a.job.id, id);
    w.shutdown();
    // The ack still lands; the freed slot claims nothing more.
    assert!(w.complete(id, Outcome::Completed(None)).unwrap().is_none());
    assert_eq!(job(&db, id), None);
    assert!(matches!(
        w.poll(&AtomicBool::new(false)).unwrap(),
        Polled::Done
    ));
    assert_eq!(job(&db, next).unwrap().state, JobState::Ready);
}

/// A stop flag asked every 50 ms, like the bindings' (which wake their
/// waiters for signals they cannot deliver).
struct AskedStop(AtomicBool);

impl Stop for AskedStop {
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

/// CPU time this thread has used.
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
        0
    );
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// While a stopped worker waits for its last job, its idle pollers sleep:
/// the stop flag stays set, and a wait that ended on it would spin them
/// through the whole grace period.
#[cfg(unix)]
#[test]
fn idle_pollers_sleep_while_a_stopped_worker_waits_for_its_last_job() {
    let dir = Dir::new();
    let db = open(&dir);
    let id = put(&db, "q", "t", "[]");
    let o = WorkerOptions {
        concurrency: 2,
        grace: LONG,
        ..opts(&["q"])
    };
    let w = Arc::new(WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap());
    let stop = Arc::new(AskedStop(AtomicBool::new(false)));
    let a = match w.poll(&*stop).unwrap() {
        Polled::Run(a) => a,
        other => panic!("{other:?}"),
    };
    stop.0.store(true, Ordering::SeqCst);
    let (w2, s2) = (w.clone(), stop.clone());
    let poller = std::thread::spawn(move || {
        let before = thread_cpu();
        let r = w2.poll(&*s2).unwrap();
        (r, thread_cpu() - before)
    });
    // The job runs on for a while: the poller waits all that time.
    std::thread::sleep(Duration::from_millis(300));
    assert!(w
        .complete(a.job.id, Outcome::Completed(None))
        .unwrap()
        .is_none());
    let (r, cpu) = poller.join().unwrap();
    assert!(matches!(r, Polled::Done), "{r:?}");
    assert_eq!(job(&db, id), None, "acked");
    assert!(
        cpu < Duration::from_millis(50),
        "the idle poller used {cpu:?} of CPU in 300 ms of waiting"
    );
}

#[test]
fn bad_options_are_named() {
    let dir = Dir::new();
    let db = open(&dir);
    let t = || vec![task("t", TaskOptions::default())];
    let code = |o: WorkerOptions, tasks| WorkerCore::new(&db, o, tasks).unwrap_err().to_string();
    assert!(code(opts(&[]), t()).contains("queues"));
    assert!(code(opts(&[""]), t()).contains("queue"));
    assert!(code(
        WorkerOptions {
            concurrency: 0,
            ..opts(&["q"])
        },
        t()
    )
    .contains("concurrency"));
    for batch in [0, MAX_BATCH + 1] {
        assert!(code(
            WorkerOptions {
                batch,
                ..opts(&["q"])
            },
            t()
        )
        .contains("batch"));
    }
    assert!(code(
        opts(&["q"]),
        vec![
            task("t", TaskOptions::default()),
            task("t", TaskOptions::default())
        ]
    )
    .contains("twice"));
    let zero = TaskOptions {
        timeout: Some(Duration::ZERO),
        ..TaskOptions::default()
    };
    assert!(code(opts(&["q"]), vec![task("t", zero)]).contains("timeout"));
    db.close().unwrap();
    assert_eq!(
        WorkerCore::new(&db, opts(&["q"]), t()).unwrap_err().code(),
        "closed"
    );
}

#[test]
fn wait_outcome_sees_a_kept_completed_job_finished() {
    use crate::model::{QueueRetention, Retention};
    use crate::wake::wait::{wait_outcome, JobOutcome};
    let dir = Dir::new();
    let db = open(&dir);
    let me = Caller::this_thread();
    let keep = QueueRetention {
        completed: Some(Retention {
            max_age: None,
            max_count: Some(10),
        }),
        dead: None,
    };
    db.by(me).set_queue_retention("q", keep).unwrap();
    let id = put(&db, "q", "t", "[]");
    let w = WorkerCore::new(&db, opts(&["q"]), vec![task("t", TaskOptions::default())]).unwrap();
    drain(&w, |_| Outcome::Completed(Some("7")));
    let none = AtomicBool::new(false);
    let got = wait_outcome(&db, me, id, Some(LONG), &none).unwrap();
    assert_eq!(got, Some(JobOutcome::Completed(Some("7".into()))));
    // Its TTL passed: the result kept with the job answers.
    db.by(me)
        .execute("DELETE FROM _honker_results", Vec::new())
        .unwrap();
    let got = wait_outcome(&db, me, id, Some(LONG), &none).unwrap();
    assert_eq!(got, Some(JobOutcome::Completed(Some("7".into()))));
}

#[test]
fn wait_outcome_sees_results_and_deaths() {
    use crate::wake::wait::{wait_outcome, JobOutcome};
    let dir = Dir::new();
    let db = open(&dir);
    let ok = put(&db, "q", "t", "[]");
    let bad = put(&db, "q", "t", "[]");
    let none = AtomicBool::new(false);
    let me = Caller::this_thread();
    assert_eq!(
        wait_outcome(&db, me, ok, Some(Duration::from_millis(30)), &none).unwrap(),
        None
    );
    let db2 = db.clone();
    let worker = std::thread::spawn(move || {
        let w =
            WorkerCore::new(&db2, opts(&["q"]), vec![task("t", TaskOptions::default())]).unwrap();
        drain(&w, |a| {
            if a.job.id == bad {
                Outcome::Failed {
                    error: "nope",
                    retry_in: None,
                    retry: false,
                }
            } else {
                Outcome::Completed(Some("42"))
            }
        })
    });
    let got = wait_outcome(&db, me, ok, Some(LONG), &none)
        .unwrap()
        .unwrap();
    assert_eq!(got, JobOutcome::Completed(Some("42".into())));
    let dead = wait_outcome(&db, me, bad, Some(LONG), &none)
        .unwrap()
        .unwrap();
    let e = dead.into_result().unwrap_err();
    assert_eq!(e.code(), "job_failed");
    assert!(e.to_string().contains("nope"), "{e}");
    worker.join().unwrap();
}

#[test]
fn dropping_a_worker_ends_its_keeper_at_once() {
    let dir = Dir::new();
    let db = open(&dir);
    put(&db, "q", "t", "[]");
    let o = WorkerOptions {
        grace: Duration::from_millis(50),
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    w.shutdown();
    assert_eq!(a.cancel.wait(LONG), Some(CancelReason::Shutdown));
    assert!(w
        .complete(a.job.id, Outcome::Completed(None))
        .unwrap()
        .is_none());
    assert!(matches!(
        w.poll(&AtomicBool::new(false)).unwrap(),
        Polled::Done
    ));
    let started = Instant::now();
    drop(w);
    // The keeper sleeps a third of the 30 s lease when idle: a drop that
    // did not wake it would take that long.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn next_event_hands_out_cancel_events_without_claiming() {
    let dir = Dir::new();
    let db = open(&dir);
    let slow = put(&db, "q", "slow", "[]");
    let other = put(&db, "q", "slow", "[]");
    let t = TaskOptions {
        timeout: Some(Duration::from_millis(50)),
        ..TaskOptions::default()
    };
    let o = WorkerOptions {
        cancel_events: true,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("slow", t)]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    assert_eq!(a.job.id, slow);
    let never = AtomicBool::new(false);
    assert_eq!(
        w.next_event(&never).unwrap(),
        Some((slow, CancelReason::Timeout))
    );
    // Waiting for events claimed nothing: the other job is still ready.
    assert_eq!(job(&db, other).unwrap().state, JobState::Ready);
    // A set stop ends the wait.
    assert_eq!(w.next_event(&AtomicBool::new(true)).unwrap(), None);
}

/// Makes the worker believe its handlers take `t` (what it has timed so
/// far decides how far it claims ahead).
fn timed(w: &WorkerCore, t: Duration) {
    let mut st = lock(&w.inner.st);
    st.run_time = Some(t);
    // What runs now started now: the test's own reads since its claim (slow
    // on a loaded machine) do not count as the handler's time.
    let now = std::time::Instant::now();
    for e in st.in_flight.values_mut() {
        e.started = now;
    }
    // And that acks may wait long: the keeper leaves them to the test.
    st.ack_delay = LONG;
}

fn processing(db: &Db, ids: &[i64]) -> usize {
    ids.iter()
        .filter(|&&id| job(db, id).is_some_and(|j| j.state == JobState::Processing))
        .count()
}

#[test]
fn quick_handlers_claim_ahead_and_ack_together() {
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..6)
        .map(|i| put(&db, "q", "t", &format!("[{i}]")))
        .collect();
    let o = WorkerOptions {
        batch: 4,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    assert_eq!(processing(&db, &ids), 1, "nothing timed yet: one job");
    // 10 µs per handler: the next commit acks this job and claims four
    // (the batch), one to run now and three ahead.
    timed(&w, Duration::from_micros(10));
    let b = w
        .complete(a.job.id, Outcome::Completed(Some("0")))
        .unwrap()
        .unwrap();
    assert_eq!(b.job.id, ids[1]);
    assert_eq!(job(&db, ids[0]), None);
    assert_eq!(processing(&db, &ids), 4);
    assert_eq!(w.in_flight(), 1, "jobs claimed ahead are not in flight");
    // The next three come from the buffer; their acks wait.
    let c = w
        .complete(b.job.id, Outcome::Completed(Some("1")))
        .unwrap()
        .unwrap();
    assert_eq!(c.job.id, ids[2]);
    assert_eq!(job(&db, ids[1]).unwrap().state, JobState::Processing);
    let d = w
        .complete(c.job.id, Outcome::Completed(Some("2")))
        .unwrap()
        .unwrap();
    let e = w
        .complete(d.job.id, Outcome::Completed(Some("3")))
        .unwrap()
        .unwrap();
    assert_eq!((d.job.id, e.job.id), (ids[3], ids[4]));
    // The buffer is empty: the next completion acks the three waiting
    // and its own job, and claims the last one, in one commit.
    assert_eq!(processing(&db, &ids), 4);
    let f = w
        .complete(e.job.id, Outcome::Completed(Some("4")))
        .unwrap()
        .unwrap();
    assert_eq!(f.job.id, ids[5]);
    let ops = db.by(Caller::this_thread());
    for (i, id) in ids[1..5].iter().enumerate() {
        assert_eq!(job(&db, *id), None);
        assert_eq!(ops.get_result(*id).unwrap(), Some((i + 1).to_string()));
    }
    assert!(w
        .complete(f.job.id, Outcome::Completed(Some("5")))
        .unwrap()
        .is_none());
    assert!(w.drain_next().unwrap().is_none());
    for id in &ids {
        assert_eq!(job(&db, *id), None, "every job acked once drained");
    }
    assert_eq!(ops.get_result(ids[5]).unwrap().as_deref(), Some("5"));
}

#[test]
fn slow_handlers_and_batch_one_never_claim_ahead() {
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..3).map(|_| put(&db, "q", "t", "[]")).collect();
    for (batch, took) in [
        (32, Duration::from_millis(6)),
        (1, Duration::from_micros(1)),
    ] {
        let o = WorkerOptions {
            batch,
            ..opts(&["q"])
        };
        let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
        let a = w.drain_next().unwrap().unwrap();
        timed(&w, took);
        let b = w
            .complete(a.job.id, Outcome::Completed(None))
            .unwrap()
            .unwrap();
        assert_eq!(processing(&db, &ids), 1, "batch {batch}, handlers {took:?}");
        w.complete(b.job.id, Outcome::Released).unwrap();
    }
}

#[test]
fn a_waiting_ack_lands_while_the_next_job_runs() {
    use crate::wake::wait::{wait_outcome, JobOutcome};
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..3).map(|_| put(&db, "q", "t", "[]")).collect();
    let w = WorkerCore::new(&db, opts(&["q"]), vec![task("t", TaskOptions::default())]).unwrap();
    let a = match w.poll(&AtomicBool::new(false)).unwrap() {
        Polled::Run(a) => a,
        other => panic!("{other:?}"),
    };
    timed(&w, Duration::from_micros(10));
    lock(&w.inner.st).ack_delay = ACK_DELAY;
    let b = w
        .complete(a.job.id, Outcome::Completed(None))
        .unwrap()
        .unwrap();
    let c = w
        .complete(b.job.id, Outcome::Completed(Some("7")))
        .unwrap()
        .unwrap();
    assert_eq!(c.job.id, ids[2]);
    // c runs on and on: the keeper acks b on its own, within ACK_DELAY.
    let got = wait_outcome(
        &db,
        Caller::this_thread(),
        ids[1],
        Some(LONG),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(got, Some(JobOutcome::Completed(Some("7".into()))));
    assert_eq!(job(&db, ids[2]).unwrap().state, JobState::Processing);
}

#[test]
fn shutdown_releases_jobs_claimed_ahead_and_acks_what_waits() {
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..5).map(|_| put(&db, "q", "t", "[]")).collect();
    let o = WorkerOptions {
        grace: LONG,
        ..opts(&["q"])
    };
    let w = WorkerCore::new(&db, o, vec![task("t", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    timed(&w, Duration::from_micros(10));
    let b = w
        .complete(a.job.id, Outcome::Completed(None))
        .unwrap()
        .unwrap();
    let c = w
        .complete(b.job.id, Outcome::Completed(Some("1")))
        .unwrap()
        .unwrap();
    assert_eq!(processing(&db, &ids), 4);
    w.shutdown();
    // The last job in hand finishes: its ack and the one waiting land; the
    // jobs claimed ahead go back, their attempts not counted.
    assert!(w
        .complete(c.job.id, Outcome::Completed(None))
        .unwrap()
        .is_none());
    assert!(matches!(
        w.poll(&AtomicBool::new(false)).unwrap(),
        Polled::Done
    ));
    for id in &ids[..3] {
        assert_eq!(job(&db, *id), None);
    }
    for id in &ids[3..] {
        let j = job(&db, *id).unwrap();
        assert_eq!((j.state, j.attempts), (JobState::Ready, 0));
    }
}

#[test]
fn complete_buffered_hands_out_jobs_claimed_ahead_without_writing() {
    let dir = Dir::new();
    let db = open(&dir);
    let ids: Vec<i64> = (0..3).map(|_| put(&db, "q", "t", "[]")).collect();
    let w = WorkerCore::new(&db, opts(&["q"]), vec![task("t", TaskOptions::default())]).unwrap();
    let a = w.drain_next().unwrap().unwrap();
    // Nothing claimed ahead yet: it does nothing, the job stays in flight.
    assert!(w.complete_buffered(a.job.id, None).is_none());
    assert_eq!(w.in_flight(), 1);
    timed(&w, Duration::from_micros(10));
    let b = w
        .complete(a.job.id, Outcome::Completed(None))
        .unwrap()
        .unwrap();
    let c = w.complete_buffered(b.job.id, Some("\"b\"")).unwrap();
    assert_eq!(c.job.id, ids[2]);
    assert_eq!(
        job(&db, ids[1]).unwrap().state,
        JobState::Processing,
        "the ack waits"
    );
    assert_eq!(w.in_flight(), 1);
    // Not in flight: nothing to do.
    assert!(w.complete_buffered(b.job.id, None).is_none());
    // The buffer is empty: the caller completes the usual way, which
    // writes the waiting ack with its own.
    assert!(w.complete_buffered(c.job.id, None).is_none());
    assert!(w
        .complete(c.job.id, Outcome::Completed(None))
        .unwrap()
        .is_none());
    let ops = db.by(Caller::this_thread());
    assert_eq!(ops.get_result(ids[1]).unwrap().as_deref(), Some("\"b\""));
    for id in &ids {
        assert_eq!(job(&db, *id), None);
    }
}
