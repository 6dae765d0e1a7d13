//! The WAL stays bounded under sustained load from several processes, and
//! returns to (near) zero once the load stops while every connection stays
//! open. (Before the WAL policy of honker_core::store::sqlite::wal, four processes grew it
//! past 2 GB in 20 s and it never shrank.)

mod common;
use common::{spawn_role, TempDb, ROLE};
use honker::{EnqueueOpts, QueueOpts};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PROCESSES: usize = 4;
const LOAD: Duration = Duration::from_secs(3);
/// Four times the default autocheckpoint of 1000 pages of 4 KiB is 16 MB;
/// a restart checkpoint can lag a few commits behind.
const BOUND: u64 = 40 << 20;

fn wal_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

#[test]
fn the_wal_stays_bounded_under_load_and_empties_when_idle() {
    let t = TempDb::new();
    drop(t.open());
    let stop_file = t.dir.path().join("stop");
    let mut workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            spawn_role(
                "wal_child",
                "load",
                &[
                    ("HONKER_DB", t.path().display().to_string()),
                    ("HONKER_STOP", stop_file.display().to_string()),
                ],
            )
        })
        .collect();
    let mut largest = 0;
    let mut loaded = 0;
    let mut jobs = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while loaded < PROCESSES {
        assert!(
            Instant::now() < deadline,
            "workers did not finish their load"
        );
        largest = largest.max(wal_size(&t.path()));
        for (_, rx) in &workers {
            if let Ok(line) = rx.try_recv() {
                jobs += line
                    .strip_prefix("loaded ")
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
                loaded += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(jobs > 1000, "the load ran ({jobs} jobs)");
    assert!(
        largest <= BOUND,
        "the WAL reached {} MB under load (bound {} MB)",
        largest >> 20,
        BOUND >> 20
    );
    // Idle now, every connection still open: the WAL goes back to zero.
    let idle_deadline = Instant::now() + Duration::from_secs(20);
    while wal_size(&t.path()) > 64 << 10 {
        assert!(
            Instant::now() < idle_deadline,
            "the WAL stayed at {} bytes while idle",
            wal_size(&t.path())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&stop_file, b"").unwrap();
    for (child, _) in &mut workers {
        common::wait_ok(child, Duration::from_secs(30));
    }
    eprintln!(
        "{jobs} jobs from {PROCESSES} processes in {LOAD:?}; largest WAL {:.1} MB",
        largest as f64 / 1e6
    );
}

#[test]
#[ignore]
fn wal_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "load");
    let db = honker::Database::open(std::env::var("HONKER_DB").unwrap()).unwrap();
    let stop = PathBuf::from(std::env::var("HONKER_STOP").unwrap());
    let q = db.queue("load", QueueOpts::default());
    let me = format!("w{}", std::process::id());
    let until = Instant::now() + LOAD;
    let mut done = 0u64;
    while Instant::now() < until {
        q.enqueue(&json!({ "n": done }), EnqueueOpts::default())
            .unwrap();
        if let Some(job) = q.claim_one(&me).unwrap() {
            assert!(job.ack().unwrap());
            done += 1;
        }
    }
    println!("@@loaded {done}");
    // Stay open and idle until the parent has looked at the idle WAL.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(db);
}
