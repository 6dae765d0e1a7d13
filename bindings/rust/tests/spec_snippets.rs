//! Every snippet of the Rust API contract (spec/honker-rs-README.md),
//! compiled and run as written. The snippet bodies are verbatim; only the
//! setup around them is added (a temp file, the business table, and for
//! the endless loops another thread that feeds them and then closes the
//! database, which is how a service shuts them down).

// Snippets are verbatim, placeholders and all: their variables may go unused.
#![allow(unused_variables)]

mod common;
use common::TempDb;

#[test]
fn quick_start() {
    let t = TempDb::new();
    let path = t.path();
    std::env::set_current_dir(t.dir.path()).unwrap();
    // ---- snippet: Quick start
    use honker::{Database, EnqueueOpts, QueueOpts};
    use serde_json::json;
    fn main() -> honker::Result<()> {
        let db = Database::open("app.db")?;
        let q = db.queue("emails", QueueOpts::default());
        q.enqueue(&json!({"to": "alice@example.com"}), EnqueueOpts::default())?;
        if let Some(job) = q.claim_one("worker-1")? {
            let body: serde_json::Value = job.payload_as()?;
            // send_email(body) ...
            job.ack()?;
        }
        Ok(())
    }
    // ----
    main().unwrap();
    let db = Database::open(&path).unwrap();
    assert_eq!(
        db.queue("emails", QueueOpts::default()).stats().unwrap(),
        Default::default()
    );
}

#[test]
fn atomic_enqueue_with_business_writes() -> honker::Result<()> {
    use honker::{EnqueueOpts, QueueOpts};
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    db.with_conn(|c| c.execute_batch("CREATE TABLE orders (user_id INTEGER, total INTEGER)"))??;
    let q = db.queue("emails", QueueOpts::default());
    // ---- snippet: Atomic enqueue with business writes
    let tx = db.transaction()?;
    tx.execute(
        "INSERT INTO orders (user_id, total) VALUES (?1, ?2)",
        rusqlite::params![42, 9900],
    )?;
    q.enqueue_tx(&tx, &json!({"order_id": 42}), EnqueueOpts::default())?;
    tx.commit()?;
    // ----
    let job = q.claim_one("w")?.expect("the committed job");
    assert_eq!(job.payload_as::<serde_json::Value>()?["order_id"], 42);
    let orders: i64 =
        db.with_conn(|c| c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)))??;
    assert_eq!(orders, 1);
    Ok(())
}

#[test]
fn advisory_locks() -> honker::Result<()> {
    let t = TempDb::new();
    let db = t.open();
    // ---- snippet: Advisory locks
    if let Some(lock) = db.try_lock("migrations", "host-a", 60)? {
        // exclusive work ...
        lock.heartbeat(60)?; // extend TTL
                             // lock releases on drop, or call lock.release()
    }
    // ----
    let held = db.try_lock("migrations", "host-a", 60)?.unwrap();
    assert!(
        db.try_lock("migrations", "host-b", 60)?.is_none(),
        "the lock excludes others"
    );
    drop(held);
    assert!(
        db.try_lock("migrations", "host-b", 60)?.is_some(),
        "released on drop"
    );
    Ok(())
}

#[test]
fn rate_limiting() -> honker::Result<()> {
    let t = TempDb::new();
    // A clock that stands still, so the 60 s window cannot roll over mid-test.
    let clock = honker::ManualClock::new(1_700_000_000_000);
    let opts = honker::OpenOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..Default::default()
    };
    let db = honker::Database::open_with(t.path(), opts)?;
    for _ in 0..101 {
        // ---- snippet: Rate limiting
        if db.try_rate_limit("api:user:123", 100, 60)? {
            // allowed: up to 100 per 60s
        }
        // ----
    }
    let used: i64 = db.with_conn(|c| {
        c.query_row(
            "SELECT count FROM _honker_rate_limits WHERE key = 'api:user:123'",
            [],
            |r| r.get(0),
        )
    })??;
    assert_eq!(used, 100, "101 calls, 100 allowed");
    assert!(!db.try_rate_limit("api:user:123", 100, 60)?);
    clock.advance(60_000);
    assert!(
        db.try_rate_limit("api:user:123", 100, 60)?,
        "the next window allows again"
    );
    Ok(())
}

#[test]
fn job_results() -> honker::Result<()> {
    use honker::{EnqueueOpts, QueueOpts};
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("emails", QueueOpts::default());
    q.enqueue(&1, EnqueueOpts::default())?;
    let job = q.claim_one("w")?.unwrap();
    // ---- snippet: Job results
    db.save_result(job.id, r#"{"sent_at": 1234}"#, 3600)?;
    // Later, possibly in another process:
    if let Some(value) = db.get_result(job.id)? {
        // ...
    }
    // ----
    assert_eq!(
        db.get_result(job.id)?.as_deref(),
        Some(r#"{"sent_at": 1234}"#)
    );
    let other = t.open();
    assert!(
        other.get_result(job.id)?.is_some(),
        "visible to another connection"
    );
    Ok(())
}

#[test]
#[allow(unused_must_use)] // the snippet discards with_conn's Result, as written
fn escape_hatch() {
    use honker::{EnqueueOpts, QueueOpts};
    let t = TempDb::new();
    let db = t.open();
    db.queue("emails", QueueOpts::default())
        .enqueue(&1, EnqueueOpts::default())
        .unwrap();
    // ---- snippet: Escape hatch
    db.with_conn(|c| {
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM _honker_live WHERE queue = ?",
                ["emails"],
                |r| r.get(0),
            )
            .unwrap();
        n
    });
    // ----
    assert_eq!(
        db.with_conn(|c| c
            .query_row(
                "SELECT COUNT(*) FROM _honker_live WHERE queue = ?",
                ["emails"],
                |r| r.get::<_, i64>(0)
            )
            .unwrap())
            .unwrap(),
        1
    );
}

#[test]
fn scheduler_add_as_written() -> honker::Result<()> {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    // ---- snippet: Scheduler (the registration; `run` is the wake-path issue)
    use honker::ScheduledTask;
    let sched = db.scheduler();
    sched.add(ScheduledTask {
        name: "nightly".into(),
        queue: "backups".into(),
        cron: "0 3 * * *".into(),
        payload: json!({"target": "s3"}),
        priority: 0,
        expires_s: Some(3600),
    })?;
    // ----
    let list = sched.list()?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].cron, "0 3 * * *");
    assert_eq!(
        list[0].next_fire_at_ms % 86_400_000,
        3 * 3_600_000,
        "next 03:00 UTC"
    );
    Ok(())
}

#[test]
fn stream_publish_and_notify_as_written() -> honker::Result<()> {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    // ---- snippet: Streams (publish; `subscribe` is the wake-path issue)
    let s = db.stream("orders");
    s.publish(&json!({"id": 42}))?;
    // ---- snippet: Ephemeral pub/sub (notify; `listen` is the wake-path issue)
    db.notify("orders", &json!({"id": 42}))?;
    // ----
    assert_eq!(s.read_since(0, 10)?[0].payload, r#"{"id":42}"#);
    let n: i64 = db.with_conn(|c| {
        c.query_row(
            "SELECT COUNT(*) FROM _honker_notifications WHERE channel = 'orders'",
            [],
            |r| r.get(0),
        )
    })??;
    assert_eq!(n, 1);
    Ok(())
}

/// Runs `snippet` (which blocks) on a thread, gives `feed` the database to
/// drive it, then closes the database and returns the snippet's result.
fn drive<R: Send + 'static>(
    db: &honker::Database,
    snippet: impl FnOnce(honker::Database) -> R + Send + 'static,
    feed: impl FnOnce(&honker::Database),
) -> R {
    let inner = db.clone();
    let h = std::thread::spawn(move || snippet(inner));
    feed(db);
    db.close().unwrap();
    h.join().unwrap()
}

#[test]
#[rustfmt::skip] // keep the snippet's one-line `let ... else` exactly as the spec writes it
fn wal_waking_workers() {
    use honker::{EnqueueOpts, QueueOpts};
    let t = TempDb::new();
    let db = t.open();
    let producer = t.open();
    let result = drive(
        &db,
        |db| -> honker::Result<()> {
            let q = db.queue("emails", QueueOpts::default());
            // ---- snippet: WAL-waking workers
            let waker = q.claim_waker();
            loop {
                let Some(job) = waker.next("worker-1")? else { break; };
                // handle job ...
                job.ack()?;
            }
            // ----
            Ok(())
        },
        |_| {
            let pq = producer.queue("emails", QueueOpts::default());
            for i in 0..5 {
                pq.enqueue(&i, EnqueueOpts::default()).unwrap();
            }
            // Wait (on commits, with a deadline) until the worker acked all five.
            let w = honker_core::wake::watcher(producer.core());
            let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let mut seen = w.generation();
            while pq.stats().unwrap() != Default::default() {
                assert!(
                    std::time::Instant::now() < end,
                    "the worker never drained the queue"
                );
                seen = w.wait(seen, std::time::Duration::from_millis(100)).unwrap();
            }
        },
    );
    assert_eq!(
        result.unwrap_err().code(),
        "closed",
        "the loop ends when the database closes"
    );
}

#[test]
fn streams_subscribe_as_written() {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    let result = drive(
        &db,
        |db| -> honker::Result<()> {
            // ---- snippet: Streams (durable pub/sub)
            let s = db.stream("orders");
            s.publish(&json!({"id": 42}))?;
            for event in s.subscribe("email-worker")? {
                let event = event?;
                // event.payload_as::<MyType>()? ...
            }
            // ----
            Ok(())
        },
        |db| {
            let other = honker::Database::open(db.core().path()).unwrap();
            let s = other.stream("orders");
            s.publish(&json!({"id": 43})).unwrap();
            // The consumer saves its offset once it has moved past an event
            // and is about to block: wait for it to reach both events.
            let w = honker_core::wake::watcher(db.core());
            let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let mut g = w.generation();
            while s.read_since(0, 10).unwrap().len() < 2
                || s.get_offset("email-worker").unwrap() != s.last_offset().unwrap()
            {
                assert!(std::time::Instant::now() < end, "events not consumed");
                g = w.wait(g, std::time::Duration::from_millis(50)).unwrap();
            }
        },
    );
    assert_eq!(result.unwrap_err().code(), "closed");
}

#[test]
fn ephemeral_pub_sub_as_written() {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    let result = drive(
        &db,
        |db| -> honker::Result<()> {
            // ---- snippet: Ephemeral pub/sub
            db.notify("orders", &json!({"id": 42}))?;
            let mut sub = db.listen("orders")?;
            while let Some(notif) = sub.recv() {
                let n = notif?;
                println!("{}: {}", n.channel, n.payload);
            }
            // ----
            Ok(())
        },
        |db| {
            // Wait for the snippet's listener, send, and wait until it was dispatched.
            let w = honker_core::wake::watcher(db.core());
            let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let mut g = w.generation();
            while w.listener_count("orders") == 0 {
                assert!(
                    std::time::Instant::now() < end,
                    "the snippet never listened"
                );
                g = w.wait(g, std::time::Duration::from_millis(10)).unwrap();
            }
            let mut probe = db.listen("orders").unwrap();
            db.notify("orders", &json!({"id": 43})).unwrap();
            probe
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap()
                .unwrap();
        },
    );
    result.expect("recv returns None once the database closes, ending the loop");
}

#[test]
fn scheduler_run_as_written() {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    let result = drive(
        &db,
        |db| -> honker::Result<()> {
            // ---- snippet: Scheduler
            use honker::ScheduledTask;
            use std::sync::{atomic::AtomicBool, Arc};
            let sched = db.scheduler();
            sched.add(ScheduledTask {
                name: "nightly".into(),
                queue: "backups".into(),
                cron: "0 3 * * *".into(),
                payload: json!({"target": "s3"}),
                priority: 0,
                expires_s: Some(3600),
            })?;
            let stop = Arc::new(AtomicBool::new(false));
            sched.run(stop, "host-a")?;
            // ----
            Ok(())
        },
        |db| {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let w = honker_core::wake::watcher(db.core());
            let mut g = w.generation();
            while db.lock_holder("honker:scheduler").unwrap().is_none() {
                assert!(std::time::Instant::now() < end, "never became leader");
                g = w.wait(g, std::time::Duration::from_millis(50)).unwrap();
            }
        },
    );
    assert_eq!(result.unwrap_err().code(), "closed");
}
