//! The blocking APIs within one process (threads and separate handles).
//! Every wait has a deadline; nothing sleeps hoping for an outcome.

mod common;
use common::TempDb;
use honker::{EnqueueOpts, QueueOpts, ScheduledTask, SchedulerOpts};
use serde_json::json;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn claim_waker_wakes_on_enqueue_from_another_handle() {
    let t = TempDb::new();
    let worker_db = t.open();
    let producer = t.open();
    let waker = worker_db
        .queue("emails", QueueOpts::default())
        .claim_waker();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let job = waker
            .next_timeout("w1", LONG)
            .unwrap()
            .expect("woken with a job");
        tx.send(job.payload.clone()).unwrap();
        assert!(job.ack().unwrap());
    });
    producer
        .queue("emails", QueueOpts::default())
        .enqueue(&json!({"to": "a"}), EnqueueOpts::default())
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), r#"{"to":"a"}"#);
    h.join().unwrap();
}

#[test]
fn delayed_job_wakes_its_worker_at_run_at() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("later", QueueOpts::default());
    let waker = q.claim_waker();
    q.enqueue(
        &1,
        EnqueueOpts {
            delay: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    )
    .unwrap();
    let job = waker
        .next_timeout("w", LONG)
        .unwrap()
        .expect("woken at run_at");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(now >= job.run_at_ms, "claimed before run_at");
    // Nothing else arrives: a timed-out wait returns None.
    assert!(waker
        .next_timeout("w", Duration::from_millis(50))
        .unwrap()
        .is_none());
}

#[test]
fn expired_lease_wakes_a_waiting_worker() {
    let t = TempDb::new();
    let db = t.open();
    let short = db.queue(
        "q",
        QueueOpts {
            visibility_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );
    short.enqueue(&1, EnqueueOpts::default()).unwrap();
    let first = short.claim_one("crashed-worker").unwrap().unwrap();
    let again = short
        .claim_waker()
        .next_timeout("w2", LONG)
        .unwrap()
        .expect("reclaimed");
    assert_eq!((again.id, again.attempts), (first.id, 2));
    assert!(!first.ack().unwrap(), "the old lease is refused");
    assert!(again.ack().unwrap());
}

#[test]
fn stop_ends_a_blocked_waker_and_the_spec_loop() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("emails", QueueOpts::default());
    let waker = q.claim_waker();
    let stopper = waker.stop_handle();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut handled = 0;
        // The spec's loop, as written.
        let r: honker::Result<()> = (|| {
            loop {
                let Some(job) = waker.next("worker-1")? else {
                    break;
                };
                // handle job ...
                job.ack()?;
                handled += 1;
                tx.send(()).unwrap();
            }
            Ok(())
        })();
        r.unwrap();
        handled
    });
    q.enqueue(&1, EnqueueOpts::default()).unwrap();
    rx.recv_timeout(LONG).unwrap();
    stopper.stop();
    assert_eq!(h.join().unwrap(), 1);
}

#[test]
fn subscribe_replays_then_follows_and_is_at_least_once() {
    let t = TempDb::new();
    let db = t.open();
    let s = db.stream("orders");
    for i in 1..=3 {
        s.publish(&json!({ "i": i })).unwrap();
    }
    let mut sub = s.subscribe("mailer").unwrap();
    let e1 = sub.next().unwrap().unwrap();
    let e2 = sub.next().unwrap().unwrap();
    assert_eq!(e1.payload, r#"{"i":1}"#);
    // Holding e2, the consumer has moved past e1 only; nothing saved before it was handed out.
    assert!(s.get_offset("mailer").unwrap() < e2.offset);
    drop(sub); // "crash" while holding e2
    assert_eq!(s.get_offset("mailer").unwrap(), e1.offset);

    let mut sub = s.subscribe("mailer").unwrap();
    assert_eq!(
        sub.next().unwrap().unwrap().offset,
        e2.offset,
        "e2 is delivered again"
    );
    assert_eq!(sub.next().unwrap().unwrap().payload, r#"{"i":3}"#);
    // Blocks for new events from another handle.
    let publisher = t.open();
    let h = std::thread::spawn(move || {
        publisher
            .stream("orders")
            .publish(&json!({"i": 4}))
            .unwrap()
    });
    let e4 = sub
        .next_timeout(LONG)
        .unwrap()
        .expect("woken by the publish");
    assert_eq!(e4.payload, r#"{"i":4}"#);
    h.join().unwrap();
    sub.commit().unwrap();
    assert_eq!(s.get_offset("mailer").unwrap(), e4.offset);
    assert!(sub
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    // A stop handle ends a blocked iteration.
    let stop = sub.stop_handle();
    let h = std::thread::spawn(move || sub.next().is_none());
    stop.stop();
    assert!(h.join().unwrap());
}

#[test]
fn listen_gets_only_later_committed_notifications_of_its_channel_in_order() {
    let t = TempDb::new();
    let db = t.open();
    db.notify("orders", &json!({"before": true})).unwrap();
    let mut sub = db.listen("orders").unwrap();
    let other = t.open();
    other.notify("other-channel", &1).unwrap();
    {
        let tx = other.transaction().unwrap();
        other
            .notify_tx(&tx, "orders", &json!({"rolled": "back"}))
            .unwrap();
        tx.rollback().unwrap();
    }
    for i in 0..50 {
        other.notify("orders", &json!({ "id": i })).unwrap();
    }
    for i in 0..50 {
        let n = sub.recv_timeout(LONG).unwrap().expect("delivered");
        assert_eq!(n.channel, "orders");
        assert_eq!(n.payload_as::<serde_json::Value>().unwrap()["id"], i);
    }
    assert!(
        sub.try_recv().unwrap().is_none(),
        "nothing else: no pre-listen, rolled back or foreign notification"
    );
    // The spec's loop ends when the listener is closed.
    let closer = sub.closer();
    let h = std::thread::spawn(move || {
        let mut got = 0;
        while let Some(notif) = sub.recv() {
            let n = notif.unwrap();
            assert_eq!(n.channel, "orders");
            got += 1;
        }
        got
    });
    db.notify("orders", &json!({"id": 42})).unwrap();
    // Wait until it is consumed (a second listener sees the same notification), then close.
    let mut probe = db.listen("orders").unwrap();
    db.notify("orders", &json!({"id": 43})).unwrap();
    probe.recv_timeout(LONG).unwrap().unwrap();
    closer.close();
    assert!(h.join().unwrap() >= 1);
}

#[test]
fn closing_the_database_ends_listeners_and_fails_wakers() {
    let t = TempDb::new();
    let db = t.open();
    let mut sub = db.listen("c").unwrap();
    let waker = db.queue("q", QueueOpts::default()).claim_waker();
    let h = std::thread::spawn(move || waker.next("w").map(|j| j.is_some()));
    let h2 = std::thread::spawn(move || sub.recv().is_none());
    db.close().unwrap();
    assert_eq!(h.join().unwrap().unwrap_err().code(), "closed");
    assert!(h2.join().unwrap());
}

fn every_second(name: &str) -> ScheduledTask {
    ScheduledTask {
        name: name.into(),
        queue: "ticks".into(),
        cron: "@every 1s".into(),
        payload: json!({ "from": name }),
        priority: 0,
        expires_s: None,
    }
}

#[test]
fn scheduler_run_stops_while_idle_and_two_schedulers_never_double_fire() {
    let t = TempDb::new();
    let db = t.open();
    db.scheduler().add(every_second("tick")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = SchedulerOpts {
        lock_ttl: Duration::from_secs(2),
        ..Default::default()
    };
    let runners: Vec<_> = ["host-a", "host-b"]
        .into_iter()
        .map(|owner| {
            let db = t.open();
            let stop = stop.clone();
            let opts = opts.clone();
            std::thread::spawn(move || db.scheduler().run_with(stop, owner, opts))
        })
        .collect();
    // Wait for three fires.
    let waker = db.queue("ticks", QueueOpts::default()).claim_waker();
    let mut boundaries = Vec::new();
    while boundaries.len() < 3 {
        let job = waker
            .next_timeout("w", LONG)
            .unwrap()
            .expect("the scheduler fires");
        boundaries.push(job.key.clone().unwrap());
        job.ack().unwrap();
    }
    let t0 = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in runners {
        r.join().unwrap().unwrap();
    }
    println!("scheduler stop honoured after {:?}", t0.elapsed());
    let mut unique = boundaries.clone();
    unique.dedup();
    assert_eq!(unique, boundaries, "one fire per boundary");
    assert!(
        db.lock_holder("honker:scheduler").unwrap().is_none(),
        "the leader released its lock"
    );
}

#[test]
fn commits_by_a_foreign_connection_wake_through_the_file_watch_across_checkpoints() {
    let t = TempDb::new();
    let db = t.open();
    let mut sub = db.listen("c").unwrap();
    let waker = db.queue("q", QueueOpts::default()).claim_waker();
    // A plain SQLite connection: no in-process shortcut, only the file watch.
    let raw = rusqlite::Connection::open(t.path()).unwrap();
    raw.busy_timeout(Duration::from_secs(10)).unwrap();
    for round in 0..3 {
        honker_core::store::sqlite::notify::notify(&raw, "c", &round.to_string(), 0).unwrap();
        let n = sub
            .recv_timeout(LONG)
            .unwrap()
            .expect("woken by a foreign commit");
        assert_eq!(n.payload, round.to_string());
        honker_core::store::sqlite::queue::enqueue(&raw, "q", "1", &EnqueueOpts::default(), 3, 0)
            .unwrap();
        waker
            .next_timeout("w", LONG)
            .unwrap()
            .expect("claimable")
            .ack()
            .unwrap();
        // Checkpoint and truncate the -wal: the next commit starts it afresh.
        let busy: i64 = raw
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0);
        assert_eq!(
            std::fs::metadata(t.dir.path().join("app.db-wal"))
                .unwrap()
                .len(),
            0
        );
    }
}

#[test]
fn a_foreign_commit_noticed_while_nobody_waits_wakes_the_next_waiter_at_once() {
    let t = TempDb::new();
    let db = t.open();
    let w = honker_core::wake::watcher(db.core());
    w.ensure_started().unwrap();
    let raw = rusqlite::Connection::open(t.path()).unwrap();
    raw.busy_timeout(Duration::from_secs(10)).unwrap();
    for round in 0..10 {
        let seen = w.generation();
        honker_core::store::sqlite::queue::enqueue(&raw, "q", "1", &EnqueueOpts::default(), 3, 0)
            .unwrap();
        // Its file event reaches the watcher while nobody waits: the watcher
        // only marks itself dirty and stops reading events.
        let deadline = Instant::now() + LONG;
        while !w.is_dirty() {
            assert!(
                Instant::now() < deadline,
                "round {round}: no file event arrived"
            );
            std::thread::yield_now();
        }
        let start = Instant::now();
        assert!(w.wait(seen, LONG).unwrap() > seen);
        // The arriving waiter makes it verify at once: not the safety poll.
        assert!(
            start.elapsed() < honker_core::wake::watcher::SAFETY_POLL / 2,
            "round {round}: woken after {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_dead_watcher_fails_its_waiters_instead_of_hanging() {
    let t = TempDb::new();
    let db = t.open();
    let mut sub = db.listen("c").unwrap();
    let waker = db.queue("q", QueueOpts::default()).claim_waker();
    let h = std::thread::spawn(move || waker.next("w").map(|j| j.is_some()));
    let h2 = std::thread::spawn(move || sub.recv().map(|r| r.map(|_| ())));
    // Wait until the waker is parked (it has started the watcher), then kill it.
    honker_core::wake::watcher(db.core())
        .ensure_started()
        .unwrap();
    honker_core::wake::watcher(db.core()).kill("simulated failure");
    let e = h.join().unwrap().unwrap_err();
    assert_eq!(e.code(), "watcher");
    assert!(e.to_string().contains("simulated failure"));
    assert_eq!(h2.join().unwrap().unwrap().unwrap_err().code(), "watcher");
}

#[test]
fn every_handle_on_a_file_shares_one_watcher() {
    let t = TempDb::new();
    let a = t.open();
    let b = t.open();
    let c = a.clone();
    assert!(Arc::ptr_eq(
        &honker_core::wake::watcher(a.core()),
        &honker_core::wake::watcher(b.core())
    ));
    assert!(Arc::ptr_eq(
        &honker_core::wake::watcher(a.core()),
        &honker_core::wake::watcher(c.core())
    ));
    let other = TempDb::new().open();
    assert!(!Arc::ptr_eq(
        &honker_core::wake::watcher(a.core()),
        &honker_core::wake::watcher(other.core())
    ));
}

#[test]
fn scheduler_run_retries_transient_errors_instead_of_dying() {
    let t = TempDb::new();
    // A short busy timeout, so a held write lock surfaces as `busy` errors.
    let db = honker::Database::open_with(
        t.path(),
        honker::OpenOptions {
            busy_timeout: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .unwrap();
    db.scheduler().add(every_second("tick")).unwrap();
    let hog = rusqlite::Connection::open(t.path()).unwrap();
    hog.execute_batch("BEGIN IMMEDIATE").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || db.scheduler().run(stop, "host-a"))
    };
    // While the lock is held, the scheduler's writes fail with `busy` (its
    // lock acquisition first). Hold it long enough for several attempts.
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !runner.is_finished(),
        "a busy database must not end the scheduler"
    );
    hog.execute_batch("ROLLBACK").unwrap();
    let job = db
        .queue("ticks", QueueOpts::default())
        .claim_waker()
        .next_timeout("w", LONG)
        .unwrap()
        .expect("it fires once the lock is free");
    job.ack().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    runner.join().unwrap().unwrap();
}
