//! Exactly once per lease under contention: threads and real processes
//! claiming from one queue of thousands of jobs.

mod common;
use common::{drain, spawn_role, wait_ok, TempDb, ROLE};
use honker::{EnqueueOpts, QueueOpts};
use std::collections::HashMap;
use std::time::Duration;

const JOBS: usize = 3000;

fn fill(db: &honker::Database) -> Vec<i64> {
    let q = db.queue("work", QueueOpts::default());
    let mut ids = Vec::new();
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(500) {
        ids.extend(q.enqueue_many(chunk, EnqueueOpts::default()).unwrap());
    }
    ids
}

/// Claims until the queue is empty; returns the ids it acked.
fn drain_queue(db: &honker::Database, worker: &str, batch: usize) -> Vec<i64> {
    let q = db.queue("work", QueueOpts::default());
    let mut acked = Vec::new();
    loop {
        let jobs = q.claim_batch(worker, batch).unwrap();
        if jobs.is_empty() {
            let s = q.stats().unwrap();
            if s.ready + s.scheduled + s.processing == 0 {
                return acked;
            }
            std::thread::yield_now();
            continue;
        }
        if batch == 1 {
            for job in jobs {
                assert!(job.ack().unwrap(), "a fresh lease acks");
                acked.push(job.id);
            }
        } else {
            assert_eq!(q.ack_batch(&jobs).unwrap(), jobs.len());
            acked.extend(jobs.iter().map(|j| j.id));
        }
    }
}

fn assert_exactly_once(enqueued: &[i64], acked: impl IntoIterator<Item = i64>) {
    let mut seen: HashMap<i64, u32> = HashMap::new();
    for id in acked {
        *seen.entry(id).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "acked more than once: {dupes:?}");
    let missing: Vec<_> = enqueued
        .iter()
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "{} jobs never acked", missing.len());
    assert_eq!(seen.len(), enqueued.len());
}

#[test]
fn threads_each_job_acked_exactly_once() {
    let t = TempDb::new();
    let db = t.open();
    let ids = fill(&db);
    let shared = db.clone();
    let mut handles = Vec::new();
    for i in 0..6 {
        // Half share one connection, half open their own.
        let db = if i % 2 == 0 { shared.clone() } else { t.open() };
        handles.push(std::thread::spawn(move || {
            drain_queue(&db, &format!("t{i}"), [1, 7, 32][i % 3])
        }));
    }
    let acked: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_exactly_once(&ids, acked);
}

#[test]
fn processes_each_job_acked_exactly_once() {
    let t = TempDb::new();
    let db = t.open();
    let ids = fill(&db);
    let mut children = Vec::new();
    for i in 0..4 {
        children.push(spawn_role(
            "child_entry",
            "claimer",
            &[
                ("HONKER_DB", t.path().display().to_string()),
                ("HONKER_WORKER", format!("p{i}")),
                ("HONKER_BATCH", [1, 8, 1, 64][i].to_string()),
            ],
        ));
    }
    let mut acked = Vec::new();
    for (mut child, rx) in children {
        acked.extend(
            drain(&rx, Duration::from_secs(120))
                .iter()
                .map(|l| l.strip_prefix("ack ").unwrap().parse::<i64>().unwrap()),
        );
        wait_ok(&mut child, Duration::from_secs(30));
    }
    assert_exactly_once(&ids, acked);
}

#[test]
fn processes_opening_a_fresh_file_at_once_all_migrate_safely() {
    for _round in 0..3 {
        let t = TempDb::new();
        // Children wait for this file to appear, so they open together.
        let go = t.dir.path().join("go");
        let mut children: Vec<_> = (0..6)
            .map(|i| {
                spawn_role(
                    "child_entry",
                    "opener",
                    &[
                        ("HONKER_DB", t.path().display().to_string()),
                        ("HONKER_GO", go.display().to_string()),
                        ("HONKER_WORKER", format!("o{i}")),
                    ],
                )
            })
            .collect();
        std::fs::write(&go, b"").unwrap();
        for (child, rx) in &mut children {
            assert_eq!(drain(rx, Duration::from_secs(60)).len(), 1);
            wait_ok(child, Duration::from_secs(30));
        }
        let db = t.open();
        let q = db.queue("hello", QueueOpts::default());
        assert_eq!(q.stats().unwrap().ready, 6);
        let versions: i64 = db
            .with_conn(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM _honker_meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(versions, 1);
    }
}

/// Entry point of child processes (runs only when re-executed with a role).
#[test]
#[ignore]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let worker = std::env::var("HONKER_WORKER").unwrap();
    if role == "opener" {
        let go = std::env::var("HONKER_GO").unwrap();
        let start = std::time::Instant::now();
        while !std::path::Path::new(&go).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "never told to go"
            );
            std::thread::yield_now();
        }
        let db = honker::Database::open(std::env::var("HONKER_DB").unwrap()).unwrap();
        let id = db
            .queue("hello", QueueOpts::default())
            .enqueue(&worker, EnqueueOpts::default())
            .unwrap();
        println!("@@enq {id}");
        return;
    }
    assert_eq!(role, "claimer");
    let db = honker::Database::open(std::env::var("HONKER_DB").unwrap()).unwrap();
    let batch: usize = std::env::var("HONKER_BATCH").unwrap().parse().unwrap();
    for id in drain_queue(&db, &worker, batch) {
        println!("@@ack {id}");
    }
}
