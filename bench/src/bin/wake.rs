//! Cross-process wake latency and idle cost.
//!
//! Latency: process A commits (notify, enqueue, publish) and takes a
//! CLOCK_MONOTONIC timestamp when the commit call returns; process B, already
//! waiting, takes one when it is woken and holds the item (for a job: has
//! claimed it). Printed beside a baseline waiter that polls
//! `PRAGMA data_version` every 1 ms, measured in the same run.
//!
//! Idle cost: CPU time over 10 s of a process holding one database with 100
//! listeners and 10 claim wakers blocked and nothing happening.
//!
//! Run: `make bench-wake` (release build).

use honker::{Database, EnqueueOpts, QueueOpts};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

// `as i64`: the libc field types differ by platform (macOS: 32-bit tv_usec).
#[allow(clippy::unnecessary_cast)]
fn mono_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

#[allow(clippy::unnecessary_cast)]
fn cpu_ns() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as i64 * 1_000_000_000 + tv.tv_usec as i64 * 1000;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The waiting side (process B). Prints "ready", then one line per item:
/// "<seq> <woken_ns>".
fn child(mode: &str, path: &str) {
    let db = Database::open(path).unwrap();
    let out = std::io::stdout();
    let report = |seq: i64| {
        let t = mono_ns();
        let mut o = out.lock();
        writeln!(o, "{seq} {t}").unwrap();
        o.flush().unwrap();
    };
    match mode {
        "notify" => {
            let mut sub = db.listen("bench").unwrap();
            println!("ready");
            while let Some(n) = sub.recv() {
                let seq: i64 = n.unwrap().payload.parse().unwrap();
                report(seq);
                if seq < 0 {
                    return;
                }
            }
        }
        "queue" => {
            let waker = db.queue("bench", QueueOpts::default()).claim_waker();
            println!("ready");
            while let Some(job) = waker.next("b").unwrap() {
                let seq: i64 = job.payload.parse().unwrap();
                report(seq);
                job.ack().unwrap();
                if seq < 0 {
                    return;
                }
            }
        }
        // The async API (feature tokio) on a current-thread runtime: no
        // thread parked per waiter, each look at the database on tokio's
        // blocking pool.
        "async-notify" | "async-queue" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut listener = db.listen("bench").unwrap();
                let waker = db.queue("bench", QueueOpts::default()).claim_waker();
                println!("ready");
                loop {
                    let seq: i64 = if mode == "async-notify" {
                        let n = listener.recv_async().await.unwrap().unwrap();
                        n.payload.parse().unwrap()
                    } else {
                        let job = waker.next_async("b").await.unwrap().unwrap();
                        let seq = job.payload.parse().unwrap();
                        report(seq);
                        job.ack_async().await.unwrap();
                        if seq < 0 {
                            return;
                        }
                        continue;
                    };
                    report(seq);
                    if seq < 0 {
                        return;
                    }
                }
            }),
        "stream" => {
            let sub = db.stream("bench").subscribe("b").unwrap();
            println!("ready");
            for ev in sub {
                let seq: i64 = ev.unwrap().payload.parse().unwrap();
                report(seq);
                if seq < 0 {
                    return;
                }
            }
        }
        "poll-notify" | "poll-queue" => {
            // Baseline: a waiter polling PRAGMA data_version every 1 ms.
            let conn = rusqlite::Connection::open(path).unwrap();
            let q = db.queue("bench", QueueOpts::default());
            let mut last_id = honker_core::store::sqlite::notify::latest_id(&conn).unwrap();
            let mut version: i64 = conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .unwrap();
            println!("ready");
            loop {
                std::thread::sleep(Duration::from_millis(1));
                let v: i64 = conn
                    .query_row("PRAGMA data_version", [], |r| r.get(0))
                    .unwrap();
                if v == version {
                    continue;
                }
                version = v;
                let seqs: Vec<i64> = if mode == "poll-notify" {
                    let ns = honker_core::store::sqlite::notify::read_after(
                        &conn,
                        last_id,
                        Some("bench"),
                        100,
                    )
                    .unwrap();
                    if let Some(n) = ns.last() {
                        last_id = n.id;
                    }
                    ns.iter().map(|n| n.payload.parse().unwrap()).collect()
                } else {
                    let mut got = Vec::new();
                    while let Some(job) = q.claim_one("b").unwrap() {
                        got.push(job.payload.parse().unwrap());
                        job.ack().unwrap();
                    }
                    got
                };
                for seq in seqs {
                    report(seq);
                    if seq < 0 {
                        return;
                    }
                }
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Where a mode's waiting process comes from: this program, or a listener
/// script run by another language's interpreter.
fn waiter(mode: &str, path: &str, langs: &Langs) -> Command {
    let script = |interpreter: &Option<String>, flag: &str, name: &str| {
        let mut c = Command::new(interpreter.as_deref().expect(flag));
        c.arg(format!("{}/{name}", env!("CARGO_MANIFEST_DIR")));
        c
    };
    let mut cmd = match mode {
        "python-notify" => script(&langs.python, "--python", "wake_listener.py"),
        "node-notify" => script(&langs.node, "--node", "wake_listener.mjs"),
        _ => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["child", mode]);
            c
        }
    };
    cmd.arg(path);
    cmd
}

/// The other languages' interpreters, for the cross-language rows.
struct Langs {
    python: Option<String>,
    node: Option<String>,
}

/// The committing side (process A): returns latencies in ms.
fn measure(mode: &str, samples: usize, langs: &Langs) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!("honker-wake-{}-{mode}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wake.db");
    let db = Database::open(&path).unwrap();
    let mut child = waiter(mode, path.to_str().unwrap(), langs)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let q = db.queue("bench", QueueOpts::default());
    let s = db.stream("bench");
    let send = |seq: i64| match mode {
        "notify" | "poll-notify" | "python-notify" | "node-notify" | "async-notify" => {
            db.notify("bench", &seq).unwrap();
        }
        "queue" | "poll-queue" | "async-queue" => {
            q.enqueue(&seq, EnqueueOpts::default()).unwrap();
        }
        "stream" => {
            s.publish(&seq).unwrap();
        }
        _ => unreachable!(),
    };
    let mut lat = Vec::with_capacity(samples);
    for seq in 0..samples as i64 {
        // Start each sample from idle, as a real producer would find it.
        std::thread::sleep(Duration::from_micros(1500));
        send(seq);
        let committed = mono_ns();
        let line = lines.next().unwrap().unwrap();
        let (got, woken) = line.split_once(' ').unwrap();
        assert_eq!(got.parse::<i64>().unwrap(), seq, "{mode}: out of order");
        lat.push((woken.parse::<i64>().unwrap() - committed) as f64 / 1e6);
    }
    send(-1);
    let _ = lines.next();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    lat
}

fn idle_cost(seconds: u64) -> f64 {
    let dir = std::env::temp_dir().join(format!("honker-idle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Database::open(dir.join("idle.db")).unwrap();
    let mut threads = Vec::new();
    let mut closers = Vec::new();
    for i in 0..100 {
        let mut sub = db.listen(&format!("channel-{i}")).unwrap();
        closers.push(sub.closer());
        threads.push(std::thread::spawn(
            move || while let Some(_n) = sub.recv() {},
        ));
    }
    let mut stops = Vec::new();
    for i in 0..10 {
        let waker = db
            .queue(&format!("queue-{i}"), QueueOpts::default())
            .claim_waker();
        stops.push(waker.stop_handle());
        threads.push(std::thread::spawn(move || {
            while let Ok(Some(_j)) = waker.next("w") {}
        }));
    }
    std::thread::sleep(Duration::from_millis(500)); // let everyone park
    let (c0, w0) = (cpu_ns(), mono_ns());
    std::thread::sleep(Duration::from_secs(seconds));
    let (c1, w1) = (cpu_ns(), mono_ns());
    for c in closers {
        c.close();
    }
    for s in stops {
        s.stop();
    }
    for t in threads {
        t.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    (c1 - c0) as f64 / (w1 - w0) as f64 * 100.0
}

/// Scheduler timing: how late each fire lands after its boundary, and how
/// long `run` takes to return once `stop` is set while idle.
fn scheduler_timing(fires: usize) -> (Vec<f64>, f64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("honker-sched-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Database::open(dir.join("sched.db")).unwrap();
    db.scheduler()
        .add(honker::ScheduledTask {
            name: "tick".into(),
            queue: "ticks".into(),
            cron: "* * * * * *".into(),
            payload: serde_json::json!({}),
            priority: 0,
            expires_s: None,
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || db.scheduler().run(stop, "bench"))
    };
    let waker = db.queue("ticks", QueueOpts::default()).claim_waker();
    let mut late = Vec::new();
    while late.len() < fires {
        let job = waker
            .next_timeout("w", Duration::from_secs(5))
            .unwrap()
            .expect("a fire");
        let boundary: i64 = job
            .key
            .as_deref()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        late.push((job.created_at_ms - boundary) as f64);
        job.ack().unwrap();
    }
    // Idle now (next fire up to 1 s away): time the stop.
    std::thread::sleep(Duration::from_millis(100));
    let t = mono_ns();
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    let stop_ms = (mono_ns() - t) as f64 / 1e6;
    let _ = std::fs::remove_dir_all(&dir);
    (late, stop_ms)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2], &args[3]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let samples = if quick { 300 } else { 2000 };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    // `--python PY --node NODE`: only the cross-language rows (a Rust
    // process notifies; a Python and a Node listener wait), beside the Rust
    // listener and the 1 ms poller of the same run.
    let langs = Langs {
        python: flag("--python"),
        node: flag("--node"),
    };
    let cross = langs.python.is_some() || langs.node.is_some();
    println!("honker wake latency (release: {}), {samples} samples each, ms from commit returned in A to woken and holding the item in B", !cfg!(debug_assertions));
    println!();
    println!("| waiter | p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: |");
    let rows: &[(&str, &str)] = if cross {
        &[
            ("notify", "Rust listen (notify from Rust)"),
            ("python-notify", "Python listen (notify from Rust)"),
            ("node-notify", "Node listen (notify from Rust)"),
            (
                "poll-notify",
                "baseline: Rust poll of data_version every 1 ms (notify from Rust)",
            ),
        ]
    } else {
        &[
            ("notify", "honker listen (notify)"),
            (
                "poll-notify",
                "baseline: poll data_version every 1 ms (notify)",
            ),
            ("queue", "honker claim_waker (enqueue)"),
            (
                "poll-queue",
                "baseline: poll data_version every 1 ms (enqueue)",
            ),
            ("stream", "honker subscribe (publish)"),
            ("async-notify", "honker recv_async, tokio (notify)"),
            ("async-queue", "honker next_async, tokio (enqueue)"),
        ]
    };
    let mut summary = Vec::new();
    for &(mode, label) in rows {
        if (mode == "python-notify" && langs.python.is_none())
            || (mode == "node-notify" && langs.node.is_none())
        {
            continue;
        }
        let mut lat = measure(mode, samples, &langs);
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} |",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
        summary.push((label, percentile(&lat, 0.5), percentile(&lat, 0.99)));
    }
    println!();
    if cross {
        let poll_p50 = summary
            .iter()
            .find(|(l, ..)| l.starts_with("baseline"))
            .map(|&(_, p50, _)| p50)
            .unwrap();
        for (label, p50, p99) in summary.iter().filter(|(l, ..)| !l.starts_with("baseline")) {
            println!(
                "{label}: p50 {p50:.3} ms ({:.2} of the 1 ms poller's), p99 {p99:.3} ms (goal: p99 under a few ms, at most 3)",
                p50 / poll_p50
            );
        }
        return;
    }
    let (mut late, stop_ms) = scheduler_timing(if quick { 3 } else { 10 });
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "scheduler: {} fires of a every-second schedule landed {:.0}-{:.0} ms after their boundary (goal: within 50 ms); stop honoured {:.1} ms after it was set while idle (goal: within 100 ms)",
        late.len(),
        late[0],
        late[late.len() - 1],
        stop_ms
    );
    let secs = if quick { 3 } else { 10 };
    let pct = idle_cost(secs);
    println!("idle: 100 listeners + 10 claim wakers, {secs} s: {pct:.4}% of one core (goal: at most 0.1%)");
}
