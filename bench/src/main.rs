//! honker benchmarks, each printed beside raw rusqlite doing the equivalent
//! writes on the same kind of file (WAL, synchronous=NORMAL) in the same run.
//!
//! Run: `make bench` (release build). Figures are in bench/README.md.

use honker::{Database, EnqueueOpts, QueueOpts};
use rusqlite::{params, Connection};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("honker-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn db(&self) -> PathBuf {
        self.0.join("bench.db")
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hand-written minimal SQLite job table: what a careful user would write
/// without honker. Same PRAGMAs as honker.
fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL,
                            run_at INTEGER NOT NULL, worker TEXT, lease_until INTEGER, created_at INTEGER NOT NULL);
         CREATE INDEX jobs_ready ON jobs (queue, run_at, id) WHERE worker IS NULL;",
    )
    .unwrap();
    c
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn raw_insert(c: &Connection, n: u64) {
    let payload = serde_json::to_string(&json!({ "n": n })).unwrap();
    let t = now_ms();
    c.prepare_cached(
        "INSERT INTO jobs (queue, payload, run_at, created_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .unwrap()
    .execute(params!["bench", payload, t, t])
    .unwrap();
}

fn raw_claim(c: &Connection, n: usize) -> Vec<i64> {
    let t = now_ms();
    c.prepare_cached(
        "UPDATE jobs SET worker = 'w', lease_until = ?2
         WHERE id IN (SELECT id FROM jobs WHERE queue = ?1 AND worker IS NULL AND run_at <= ?3 ORDER BY run_at, id LIMIT ?4 + 0)
         RETURNING id, payload",
    )
    .unwrap()
    .query_map(params!["bench", t + 300_000, t, n as i64], |r| r.get(0))
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Inserts `jobs` raw jobs in one transaction (untimed set-up).
fn raw_fill(c: &Connection, jobs: u64) {
    c.execute_batch("BEGIN").unwrap();
    for i in 0..jobs {
        raw_insert(c, i);
    }
    c.execute_batch("COMMIT").unwrap();
}

/// Claims and acks every raw job, `batch` at a time (a batch's acks in one
/// transaction); how many.
fn raw_drain(c: &Connection, batch: usize) -> u64 {
    let mut done = 0u64;
    loop {
        let ids = raw_claim(c, batch);
        if ids.is_empty() {
            return done;
        }
        if batch == 1 {
            raw_ack(c, ids[0]);
        } else {
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            for id in &ids {
                raw_ack(c, *id);
            }
            c.execute_batch("COMMIT").unwrap();
        }
        done += ids.len() as u64;
    }
}

fn raw_ack(c: &Connection, id: i64) {
    c.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND worker = 'w' AND lease_until > ?2")
        .unwrap()
        .execute(params![id, now_ms()])
        .unwrap();
}

struct Row {
    name: String,
    honker: f64,
    raw: f64,
    ratio: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `rounds` alternating rounds of honker then raw, each doing `ops`
/// operations, and reports median rates and the median per-round ratio, so
/// drift in the machine's I/O speed hits both sides alike.
fn compare(
    name: String,
    rounds: usize,
    ops: u64,
    mut honker: impl FnMut(u64),
    mut raw: impl FnMut(u64),
) -> Row {
    let (mut h, mut r, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        honker(ops);
        let hr = ops as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        raw(ops);
        let rr = ops as f64 / t.elapsed().as_secs_f64();
        h.push(hr);
        r.push(rr);
        ratio.push(hr / rr);
    }
    Row {
        name,
        honker: median(h),
        raw: median(r),
        ratio: median(ratio),
    }
}

fn bench_enqueue_single(rounds: usize, ops: u64) -> Row {
    let d = Dir::new("enq1");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let d2 = Dir::new("enq1raw");
    let c = raw(&d2.db());
    let mut i = 0u64;
    let mut j = 0u64;
    compare(
        "enqueue, 1 per transaction".into(),
        rounds,
        ops,
        |n| {
            for _ in 0..n {
                q.enqueue(&json!({ "n": i }), EnqueueOpts::default())
                    .unwrap();
                i += 1;
            }
        },
        |n| {
            for _ in 0..n {
                raw_insert(&c, j);
                j += 1;
            }
        },
    )
}

fn bench_enqueue_batched(rounds: usize, batches: u64, size: u64) -> Row {
    let d = Dir::new("enq100");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let d2 = Dir::new("enq100raw");
    let c = raw(&d2.db());
    compare(
        format!("enqueue, {size} per transaction"),
        rounds,
        batches * size,
        |n| {
            for b in 0..n / size {
                let payloads: Vec<_> = (0..size).map(|i| json!({ "n": b * size + i })).collect();
                q.enqueue_many(&payloads, EnqueueOpts::default()).unwrap();
            }
        },
        |n| {
            for b in 0..n / size {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                for i in 0..size {
                    raw_insert(&c, b * size + i);
                }
                c.execute_batch("COMMIT").unwrap();
            }
        },
    )
}

fn bench_claim_ack(rounds: usize, jobs: u64, batch: usize) -> Row {
    let d = Dir::new("claim");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let d2 = Dir::new("claimraw");
    let c = raw(&d2.db());
    let name = if batch == 1 {
        "claim_one + ack".to_string()
    } else {
        format!("claim_batch({batch}) + ack_batch")
    };
    // Each round fills both queues (untimed) with `jobs`, then drains them (timed).
    let mut rates = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let payloads: Vec<_> = (0..jobs).map(|i| json!({ "n": i })).collect();
        for chunk in payloads.chunks(1000) {
            q.enqueue_many(chunk, EnqueueOpts::default()).unwrap();
        }
        raw_fill(&c, jobs);

        let t = Instant::now();
        let mut done = 0u64;
        loop {
            if batch == 1 {
                let Some(job) = q.claim_one("w").unwrap() else {
                    break;
                };
                assert!(job.ack().unwrap());
                done += 1;
            } else {
                let got = q.claim_batch("w", batch).unwrap();
                if got.is_empty() {
                    break;
                }
                assert_eq!(q.ack_batch(&got).unwrap(), got.len());
                done += got.len() as u64;
            }
        }
        assert_eq!(done, jobs);
        let h = rate(done, t.elapsed());

        let t = Instant::now();
        let done = raw_drain(&c, batch);
        assert_eq!(done, jobs);
        let r = rate(done, t.elapsed());
        rates.0.push(h);
        rates.1.push(r);
        rates.2.push(h / r);
    }
    Row {
        name,
        honker: median(rates.0),
        raw: median(rates.1),
        ratio: median(rates.2),
    }
}

/// The worker runtime's per-job path: ack one job and claim the next in one
/// commit (`Ops::ack_and_claim`), against raw single-row insert
/// transactions (one commit each) in the same round.
fn bench_ack_and_claim(rounds: usize, jobs: u64) -> Row {
    let d = Dir::new("ackclaim");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let ops = db.core().by(honker_core::Caller::this_thread());
    let name = "ack_and_claim, 1 job per commit (raw: single-row insert txn)";
    against_raw_inserts(name, rounds, jobs, || {
        let payloads: Vec<_> = (0..jobs).map(|i| json!({ "n": i })).collect();
        for chunk in payloads.chunks(1000) {
            q.enqueue_many(chunk, EnqueueOpts::default()).unwrap();
        }
        let t = Instant::now();
        let mut job = q.claim_one("w").unwrap().map(|j| j.record().clone());
        let mut done = 0u64;
        while let Some(current) = job {
            let (acked, mut next) = ops
                .ack_and_claim(&honker_core::model::AckAndClaim {
                    done: &[honker_core::model::Done {
                        lease: current.lease(),
                        result: None,
                    }],
                    queue: "bench",
                    worker: "w",
                    n: 1,
                    visibility_timeout: QueueOpts::default().visibility_timeout,
                })
                .unwrap();
            assert_eq!(acked, 1);
            done += 1;
            job = next.pop();
        }
        assert_eq!(done, jobs);
        rate(done, t.elapsed())
    })
}

/// The Rust worker (`honker::Worker`), concurrency 1, no-op handlers, run
/// in drain mode over a full queue, against raw single-row insert
/// transactions in the same round (issue #14's goal: 0.8).
fn bench_worker(rounds: usize, jobs: u64) -> Row {
    let d = Dir::new("worker");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let mut w = db.worker(honker::WorkerOptions {
        queues: vec!["bench".into()],
        ..honker::WorkerOptions::default()
    });
    w.task("noop", |_| Ok::<_, String>(()));
    let name = "Rust worker, concurrency 1, no-op tasks (raw: single-row insert txn)";
    against_raw_inserts(name, rounds, jobs, || {
        enqueue_noops(&q, 0..jobs);
        let t = Instant::now();
        let done = w.drain().unwrap() as u64;
        assert_eq!(done, jobs);
        rate(done, t.elapsed())
    })
}

/// The Rust worker at concurrency 32 (32 handler threads, no-op tasks,
/// claims and acks batched by the worker core), run until `jobs` handlers
/// have run, against the raw batch floor (claim 32 with one `UPDATE …
/// RETURNING`, delete them in one transaction) in the same round (issue
/// #14's goal: 0.7).
fn bench_worker_concurrent(rounds: usize, jobs: u64) -> Row {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let d = Dir::new("worker32");
    let db = Database::open(d.db()).unwrap();
    let q = db.queue("bench", QueueOpts::default());
    let d2 = Dir::new("worker32raw");
    let c = raw(&d2.db());
    let ran = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = db.worker(honker::WorkerOptions {
        queues: vec!["bench".into()],
        concurrency: 32,
        ..honker::WorkerOptions::default()
    });
    let last = Arc::new(std::sync::Mutex::new(None));
    let (ran2, stop2, last2) = (ran.clone(), stop.clone(), last.clone());
    w.task("noop", move |_| {
        if ran2.fetch_add(1, Ordering::SeqCst) + 1 == jobs {
            *last2.lock().unwrap() = Some(Instant::now());
            stop2.store(true, Ordering::SeqCst);
        }
        Ok::<_, String>(())
    });
    let mut rates = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        enqueue_noops(&q, 0..jobs);
        raw_fill(&c, jobs);
        ran.store(0, Ordering::SeqCst);
        stop.store(false, Ordering::SeqCst);
        let t = Instant::now();
        w.run(stop.clone()).unwrap();
        // Timed to the last handler: `run` looks at its stop flag every
        // 50 ms, a wait that is not throughput.
        let end = last.lock().unwrap().take().unwrap();
        let h = rate(jobs, end - t);
        assert_eq!(ran.load(Ordering::SeqCst), jobs);
        assert_eq!(q.stats().unwrap().ready + q.stats().unwrap().processing, 0);

        let t = Instant::now();
        let done = raw_drain(&c, 32);
        assert_eq!(done, jobs);
        let r = rate(done, t.elapsed());
        rates.0.push(h);
        rates.1.push(r);
        rates.2.push(h / r);
    }
    Row {
        name: "Rust worker, concurrency 32, no-op tasks (raw: claim 32 + ack 32 per txn)".into(),
        honker: median(rates.0),
        raw: median(rates.1),
        ratio: median(rates.2),
    }
}

/// Enqueues the no-op task with each of `ids` as its argument, 1,000 per
/// transaction (untimed set-up).
fn enqueue_noops(q: &honker::Queue, ids: std::ops::Range<u64>) {
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(1000) {
        let tx = q.database().transaction().unwrap();
        for i in chunk {
            q.enqueue_task_tx(&tx, "noop", i, EnqueueOpts::default())
                .unwrap();
        }
        tx.commit().unwrap();
    }
}

/// Alternates `round` (which runs `jobs` jobs and returns its rate) with
/// `jobs` raw single-row insert transactions, `rounds` times: the medians
/// and the median per-round ratio.
fn against_raw_inserts(
    name: &str,
    rounds: usize,
    jobs: u64,
    mut round: impl FnMut() -> f64,
) -> Row {
    let d = Dir::new("rawinserts");
    let c = raw(&d.db());
    let mut j = 0u64;
    let mut rates = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let h = round();
        let t = Instant::now();
        for _ in 0..jobs {
            raw_insert(&c, j);
            j += 1;
        }
        let r = rate(jobs, t.elapsed());
        rates.0.push(h);
        rates.1.push(r);
        rates.2.push(h / r);
    }
    Row {
        name: name.into(),
        honker: median(rates.0),
        raw: median(rates.1),
        ratio: median(rates.2),
    }
}

fn rate(ops: u64, d: Duration) -> f64 {
    ops as f64 / d.as_secs_f64()
}

/// A queue kept at a constant depth: refilled (untimed) after each ack.
struct DepthQueue {
    _dir: Dir,
    q: honker::Queue,
    next: u64,
}

impl DepthQueue {
    fn new(depth: u64) -> DepthQueue {
        let dir = Dir::new(&format!("depth{depth}"));
        let db = Database::open(dir.db()).unwrap();
        let q = db.queue("bench", QueueOpts::default());
        let mut next = 0u64;
        while next < depth {
            let n = (depth - next).min(10_000);
            let payloads: Vec<_> = (next..next + n).map(|i| json!({ "n": i })).collect();
            q.enqueue_many(&payloads, EnqueueOpts::default()).unwrap();
            next += n;
        }
        DepthQueue { _dir: dir, q, next }
    }

    /// Microseconds per claim_one + ack over `ops` operations.
    fn claim_ack_us(&mut self, ops: u64) -> f64 {
        let mut timed = Duration::ZERO;
        for _ in 0..ops {
            let t = Instant::now();
            let job = self.q.claim_one("w").unwrap().unwrap();
            assert!(job.ack().unwrap());
            timed += t.elapsed();
            self.q
                .enqueue(&json!({ "n": self.next }), EnqueueOpts::default())
                .unwrap();
            self.next += 1;
        }
        timed.as_secs_f64() * 1e6 / ops as f64
    }
}

/// A queue held at 1,000 pending jobs whose acked jobs its retention keeps
/// (the newest `keep`, filled to that many before timing) or not.
struct HistoryQueue {
    _dir: Dir,
    db: Database,
    q: honker::Queue,
    next: u64,
}

impl HistoryQueue {
    fn new(keep: Option<u64>) -> HistoryQueue {
        let dir = Dir::new(&format!("history{}", keep.unwrap_or(0)));
        let db = Database::open(dir.db()).unwrap();
        let q = db.queue("bench", QueueOpts::default());
        let mut next = 0u64;
        // Every job is a no-op task, so the worker can run any of them.
        let fill = |q: &honker::Queue, n: u64, next: &mut u64| {
            enqueue_noops(q, *next..*next + n);
            *next += n;
        };
        if let Some(keep) = keep {
            q.set_retention(honker::QueueRetention {
                completed: Some(honker::Retention {
                    max_age: None,
                    max_count: Some(keep),
                }),
                dead: None,
            })
            .unwrap();
            fill(&q, keep, &mut next);
            loop {
                let got = q.claim_batch("filler", 1000).unwrap();
                if got.is_empty() {
                    break;
                }
                q.ack_batch(&got).unwrap();
            }
            assert_eq!(q.stats().unwrap().completed, keep);
        }
        fill(&q, 1000, &mut next);
        HistoryQueue {
            _dir: dir,
            db,
            q,
            next,
        }
    }

    /// Microseconds per claim_one and per ack over `ops` jobs (refilled
    /// untimed).
    fn round(&mut self, ops: u64) -> (f64, f64) {
        let (mut claim, mut ack) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ops {
            let t = Instant::now();
            let job = self.q.claim_one("w").unwrap().unwrap();
            claim += t.elapsed();
            let t = Instant::now();
            assert!(job.ack().unwrap());
            ack += t.elapsed();
            self.q
                .enqueue_task("noop", &self.next, EnqueueOpts::default())
                .unwrap();
            self.next += 1;
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6 / ops as f64;
        (us(claim), us(ack))
    }

    /// Jobs per second of a Rust worker (concurrency 1, no-op tasks)
    /// draining `jobs` more jobs than the standing 1,000 (enqueued
    /// untimed), which are put back after.
    fn worker_rate(&mut self, jobs: u64) -> f64 {
        enqueue_noops(&self.q, 0..jobs);
        let mut w = self.db.worker(honker::WorkerOptions {
            queues: vec!["bench".into()],
            ..honker::WorkerOptions::default()
        });
        w.task("noop", |_| Ok::<_, String>(()));
        let t = Instant::now();
        let done = w.drain().unwrap() as u64;
        let r = rate(done, t.elapsed());
        assert_eq!(done, jobs + 1000);
        enqueue_noops(&self.q, 0..1000);
        r
    }
}

/// Claim and ack with retention on (the newest 100,000 acked jobs kept,
/// pruned as they go) against retention off, alternating rounds (issue
/// #15's goal: claims within 1.2x).
fn bench_retention(rounds: usize, ops: u64, keep: u64) {
    let mut off = HistoryQueue::new(None);
    let mut on = HistoryQueue::new(Some(keep));
    let mut r: [Vec<f64>; 6] = Default::default();
    for _ in 0..rounds * 3 {
        let (c0, a0) = off.round(ops);
        let (c1, a1) = on.round(ops);
        r[0].push(c0);
        r[1].push(c1);
        r[2].push(c1 / c0);
        r[3].push(a0);
        r[4].push(a1);
        r[5].push((c1 + a1) / (c0 + a0));
    }
    let [c0, c1, cr, a0, a1, ar] = r.map(median);
    println!("| retention (1,000 pending) | claim_one (µs) | ack (µs) |");
    println!("| --- | ---: | ---: |");
    println!("| off | {c0:.1} | {a0:.1} |");
    println!("| on, {keep} completed jobs kept | {c1:.1} | {a1:.1} |");
    println!();
    println!(
        "claim with {keep} kept / without: {cr:.2}x (median of per-round ratios; goal: at most 1.2x)"
    );
    println!("claim + ack with {keep} kept / without: {ar:.2}x");
    let mut w = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let w0 = off.worker_rate(ops * 4);
        let w1 = on.worker_rate(ops * 4);
        w.0.push(w0);
        w.1.push(w1);
        w.2.push(w1 / w0);
    }
    println!(
        "Rust worker (concurrency 1) jobs/s: {:.0} off, {:.0} with {keep} kept: {:.2} of off",
        median(w.0),
        median(w.1),
        median(w.2)
    );
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    println!(
        "honker bench (release: {}), SQLite {}",
        !cfg!(debug_assertions),
        rusqlite::version()
    );
    println!();
    let rounds = if quick { 3 } else { 9 };
    if std::env::args().any(|a| a == "enqueue") {
        for r in [
            bench_enqueue_single(rounds, 4_000 / scale),
            bench_enqueue_batched(rounds, 100 / scale, 100),
        ] {
            println!(
                "{}: {:.0}/s, raw {:.0}/s, ratio {:.2}",
                r.name, r.honker, r.raw, r.ratio
            );
        }
        return;
    }
    if std::env::args().any(|a| a == "retention") {
        bench_retention(rounds, 2_000 / scale, 100_000);
        return;
    }
    let rows = vec![
        bench_enqueue_single(rounds, 4_000 / scale),
        bench_enqueue_batched(rounds, 100 / scale, 100),
        bench_claim_ack(rounds, 2_000 / scale, 1),
        bench_claim_ack(rounds, 16_000 / scale, 32),
        bench_claim_ack(rounds, 32_000 / scale, 128),
        bench_ack_and_claim(rounds, 2_000 / scale),
        bench_worker(rounds, 2_000 / scale),
        bench_worker_concurrent(rounds, 32_000 / scale),
    ];
    println!("{rounds} alternating rounds each; medians. Ratio: median of per-round honker/raw.");
    println!();
    println!("| operation | honker ops/s | raw SQLite ops/s | honker / raw |");
    println!("| --- | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} |",
            r.name,
            r.honker,
            r.raw,
            r.honker / r.raw
        );
    }
    println!();
    bench_retention(rounds, 2_000 / scale, 100_000);
    let big_depth = 1_000_000 / scale;
    let mut small_q = DepthQueue::new(100);
    let mut big_q = DepthQueue::new(big_depth);
    let (mut small, mut big, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    // Many short alternating rounds: the machine's I/O hiccups land on
    // either side alike, and the median ignores them.
    for _ in 0..rounds * 3 {
        let s = small_q.claim_ack_us(300 / scale);
        let b = big_q.claim_ack_us(300 / scale);
        small.push(s);
        big.push(b);
        ratio.push(b / s);
    }
    println!("| pending jobs | claim_one + ack (µs, median) |");
    println!("| ---: | ---: |");
    println!("| 100 | {:.1} |", median(small));
    println!("| {big_depth} | {:.1} |", median(big));
    println!();
    println!(
        "claim+ack at {big_depth} pending / at 100 pending: {:.2}x (median of per-round ratios; goal: at most 1.5x)",
        median(ratio)
    );
    println!(
        "single enqueue / raw single-row insert transaction: {:.2} (goal: at least 0.85)",
        rows[0].ratio
    );
    println!(
        "Rust worker, concurrency 1 / raw single-row insert transaction: {:.2} (goal: at least 0.8)",
        rows[6].ratio
    );
    println!(
        "Rust worker, concurrency 32 / raw batch floor: {:.2} (goal: at least 0.7)",
        rows[7].ratio
    );
}
