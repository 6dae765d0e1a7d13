//! The wake path across real processes: each test re-executes this binary
//! in a role (see `child_entry`) and talks to it through the database and
//! the child's "@@" output lines.

mod common;
use common::{drain, spawn_role, wait_ok, TempDb, ROLE};
use honker::{EnqueueOpts, QueueOpts, ScheduledTask, SchedulerOpts};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn env(t: &TempDb, extra: &[(&str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![("HONKER_DB", t.path().display().to_string())];
    for (k, val) in extra {
        v.push((Box::leak(k.to_string().into_boxed_str()), val.clone()));
    }
    v
}

fn expect_line(rx: &mpsc::Receiver<String>, want: &str) {
    let line = rx.recv_timeout(LONG).expect("child line");
    assert_eq!(line, want);
}

#[test]
fn notify_wakes_a_listener_in_another_process() {
    let t = TempDb::new();
    let db = t.open();
    // Committed before the listener exists: never delivered to it.
    db.notify("orders", &json!({"i": -1})).unwrap();
    let (mut child, rx) = spawn_role(
        "child_entry",
        "listener",
        &env(&t, &[("HONKER_N", "100".into())]),
    );
    expect_line(&rx, "ready");
    for i in 0..100 {
        db.notify("other", &i).unwrap();
        db.notify("orders", &json!({ "i": i })).unwrap();
    }
    // The child checks order and count itself.
    expect_line(&rx, "ok 100");
    wait_ok(&mut child, LONG);
}

#[test]
fn ten_thousand_notifications_from_another_process_arrive_once_in_order() {
    let t = TempDb::new();
    let db = t.open();
    let (mut child, rx) = spawn_role(
        "child_entry",
        "listener",
        &env(&t, &[("HONKER_N", "10000".into())]),
    );
    expect_line(&rx, "ready");
    for i in 0..10_000 {
        db.notify("orders", &json!({ "i": i })).unwrap();
    }
    expect_line(&rx, "ok 10000");
    wait_ok(&mut child, LONG);
}

#[test]
fn wakers_in_many_processes_never_double_claim() {
    let t = TempDb::new();
    let db = t.open();
    let workers = 4;
    let children: Vec<_> = (0..workers)
        .map(|i| {
            spawn_role(
                "child_entry",
                "waker",
                &env(&t, &[("HONKER_WORKER", format!("p{i}"))]),
            )
        })
        .collect();
    for (_, rx) in &children {
        expect_line(rx, "ready");
    }
    let q = db.queue("work", QueueOpts::default());
    let mut ids = Vec::new();
    for burst in 0..30 {
        let payloads: Vec<_> = (0..50).map(|i| json!({ "n": burst * 50 + i })).collect();
        ids.extend(q.enqueue_many(&payloads, EnqueueOpts::default()).unwrap());
        ids.push(
            q.enqueue(&json!({"single": burst}), EnqueueOpts::default())
                .unwrap(),
        );
    }
    for _ in 0..workers {
        q.enqueue(
            &json!({"stop": true}),
            EnqueueOpts {
                priority: -1,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let mut seen = HashSet::new();
    for (mut child, rx) in children {
        for line in drain(&rx, LONG) {
            let id: i64 = line.strip_prefix("claimed ").unwrap().parse().unwrap();
            assert!(seen.insert(id), "job {id} claimed twice");
        }
        wait_ok(&mut child, LONG);
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
}

#[test]
fn delayed_job_wakes_a_worker_in_another_process_at_run_at() {
    let t = TempDb::new();
    let db = t.open();
    let (mut child, rx) = spawn_role("child_entry", "delayed", &env(&t, &[]));
    expect_line(&rx, "ready");
    let id = db
        .queue("later", QueueOpts::default())
        .enqueue(
            &1,
            EnqueueOpts {
                delay: Some(Duration::from_millis(400)),
                ..Default::default()
            },
        )
        .unwrap();
    let run_at = db
        .queue("later", QueueOpts::default())
        .get_job(id)
        .unwrap()
        .unwrap()
        .run_at_ms;
    let line = rx.recv_timeout(LONG).unwrap();
    let (got, at) = line
        .strip_prefix("claimed ")
        .unwrap()
        .split_once(' ')
        .unwrap();
    assert_eq!(got.parse::<i64>().unwrap(), id);
    let at: i64 = at.parse().unwrap();
    assert!(at >= run_at, "claimed at {at}, before run_at {run_at}");
    println!("delayed job claimed {} ms after run_at", at - run_at);
    wait_ok(&mut child, LONG);
}

#[test]
fn publish_wakes_a_subscriber_in_another_process() {
    let t = TempDb::new();
    let db = t.open();
    let s = db.stream("orders");
    s.publish(&json!({"i": 0})).unwrap(); // before the subscriber: replayed
    let (mut child, rx) = spawn_role(
        "child_entry",
        "subscriber",
        &env(&t, &[("HONKER_N", "40".into())]),
    );
    expect_line(&rx, "ready");
    for i in 1..40 {
        s.publish(&json!({ "i": i })).unwrap();
    }
    expect_line(&rx, "ok 40");
    wait_ok(&mut child, LONG);
    let last = s.read_since(0, 100).unwrap().last().unwrap().offset;
    assert_eq!(
        s.get_offset("child").unwrap(),
        last,
        "the child committed at the end"
    );
}

#[test]
fn a_standby_scheduler_takes_over_after_the_leader_is_killed() {
    let t = TempDb::new();
    let db = t.open();
    db.scheduler()
        .add(ScheduledTask {
            name: "tick".into(),
            queue: "ticks".into(),
            cron: "@every 1s".into(),
            payload: json!({}),
            priority: 0,
            expires_s: None,
        })
        .unwrap();
    let holder =
        |db: &honker::Database| db.lock_holder("honker:scheduler").unwrap().map(|h| h.owner);
    let wait_for_holder = |want: &str| {
        let end = Instant::now() + LONG;
        let watcher = honker_core::wake::watcher(db.core());
        let mut seen = watcher.generation();
        while holder(&db).as_deref() != Some(want) {
            assert!(Instant::now() < end, "{want} never became leader");
            // Woken by any commit (lock writes included), or re-check after 100 ms.
            seen = watcher.wait(seen, Duration::from_millis(100)).unwrap();
        }
    };
    let (mut leader, _lrx) = spawn_role(
        "child_entry",
        "scheduler",
        &env(&t, &[("HONKER_WORKER", "leader".into())]),
    );
    wait_for_holder("leader");
    let (mut standby, _srx) = spawn_role(
        "child_entry",
        "scheduler",
        &env(&t, &[("HONKER_WORKER", "standby".into())]),
    );
    // Let the leader fire at least once.
    let waker = db.queue("ticks", QueueOpts::default()).claim_waker();
    waker
        .next_timeout("w", LONG)
        .unwrap()
        .expect("the leader fires");
    leader.kill().unwrap(); // SIGKILL
    leader.wait().unwrap();
    let killed = Instant::now();
    wait_for_holder("standby");
    println!(
        "standby took over {:?} after the kill (lock TTL 1 s)",
        killed.elapsed()
    );
    let job = waker
        .next_timeout("w", LONG)
        .unwrap()
        .expect("the standby fires");
    assert!(job.key.as_deref().unwrap().starts_with("schedule:tick:"));
    standby.kill().unwrap();
    standby.wait().unwrap();
    // One job per boundary across both leaders.
    let keys: Vec<String> = db
        .with_conn(|c| {
            let mut st = c
                .prepare(
                    "SELECT idem_key FROM _honker_live WHERE queue = 'ticks' AND state <> 'done'",
                )
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        })
        .unwrap();
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a boundary fired twice: {keys:?}");
}

/// Entry point of child processes (runs only when re-executed with a role).
#[test]
#[ignore]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let db = honker::Database::open(std::env::var("HONKER_DB").unwrap()).unwrap();
    let n: usize = std::env::var("HONKER_N")
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let worker = std::env::var("HONKER_WORKER").unwrap_or_else(|_| "child".into());
    match role.as_str() {
        "listener" => {
            let mut sub = db.listen("orders").unwrap();
            println!("@@ready");
            for i in 0..n {
                let note = sub.recv_timeout(LONG).unwrap().expect("a notification");
                let v: serde_json::Value = note.payload_as().unwrap();
                assert_eq!(v["i"], i, "out of order or duplicated");
            }
            assert!(sub.try_recv().unwrap().is_none());
            println!("@@ok {n}");
        }
        "waker" => {
            let waker = db.queue("work", QueueOpts::default()).claim_waker();
            println!("@@ready");
            loop {
                let job = waker
                    .next_timeout(&worker, LONG)
                    .unwrap()
                    .expect("work or a stop job");
                let stop = job.payload_as::<serde_json::Value>().unwrap()["stop"] == true;
                assert!(job.ack().unwrap());
                if stop {
                    break;
                }
                println!("@@claimed {}", job.id);
            }
        }
        "delayed" => {
            let waker = db.queue("later", QueueOpts::default()).claim_waker();
            println!("@@ready");
            let job = waker.next_timeout(&worker, LONG).unwrap().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            println!("@@claimed {} {now}", job.id);
            job.ack().unwrap();
        }
        "subscriber" => {
            let mut sub = db.stream("orders").subscribe("child").unwrap();
            println!("@@ready");
            for i in 0..n {
                let ev = sub.next_timeout(LONG).unwrap().expect("an event");
                assert_eq!(ev.payload_as::<serde_json::Value>().unwrap()["i"], i);
            }
            sub.commit().unwrap();
            println!("@@ok {n}");
        }
        "scheduler" => {
            let stop = Arc::new(AtomicBool::new(false));
            let opts = SchedulerOpts {
                lock_ttl: Duration::from_secs(1),
                ..Default::default()
            };
            db.scheduler().run_with(stop, &worker, opts).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}
