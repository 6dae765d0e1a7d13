//! WAL size under sustained multi-process load: N worker processes each
//! enqueue, claim and ack on one file for a while, then stay open and idle.
//! The parent samples the size of the `-wal` file over time and prints a
//! table, the largest size seen, and the size once the load stopped.
//!
//! Run: `cargo run --release -p honker-bench --bin wal -- [--procs 4]
//! [--secs 20] [--idle 3]` (or `make bench-wal`).

use honker::{Database, EnqueueOpts, QueueOpts};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a whole number"))
        .unwrap_or(default)
}

fn wal_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// One worker process: enqueue + claim + ack until the deadline, then stay
/// open (idle) until told to stop by the parent closing stdin.
fn child(path: &Path, secs: u64) {
    let db = Database::open(path).unwrap();
    let q = db.queue("load", QueueOpts::default());
    let me = format!("w{}", std::process::id());
    let until = Instant::now() + Duration::from_secs(secs);
    let mut done = 0u64;
    while Instant::now() < until {
        q.enqueue(&json!({ "n": done }), EnqueueOpts::default())
            .unwrap();
        if let Some(job) = q.claim_one(&me).unwrap() {
            job.ack().unwrap();
            done += 1;
        }
    }
    println!("{done}");
    // Idle but open, like a worker waiting for the next burst.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(db);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]), arg("--secs", 20));
        return;
    }
    let procs = arg("--procs", 4);
    let secs = arg("--secs", 20);
    let idle = arg("--idle", 3);
    let dir = std::env::temp_dir().join(format!("honker-wal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("load.db");
    drop(Database::open(&path).unwrap());
    let me = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..procs)
        .map(|_| {
            Command::new(&me)
                .args([
                    "--child",
                    path.to_str().unwrap(),
                    "--secs",
                    &secs.to_string(),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    println!(
        "{procs} processes, enqueue + claim_one + ack for {secs} s, then idle (open) for {idle} s"
    );
    println!("{:>6}  {:>10}", "t (s)", "-wal (MB)");
    let start = Instant::now();
    let mut max = 0u64;
    let mut next_print = 0.0;
    let total = Duration::from_secs(secs + idle);
    while start.elapsed() < total {
        let size = wal_size(&path);
        max = max.max(size);
        let t = start.elapsed().as_secs_f64();
        if t >= next_print {
            println!("{t:>6.1}  {:>10.2}", size as f64 / 1e6);
            next_print += 1.0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle_size = wal_size(&path);
    let mut jobs = 0u64;
    for mut c in children.drain(..) {
        drop(c.stdin.take());
        let out = c.wait_with_output().unwrap();
        jobs += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
    }
    println!(
        "jobs: {jobs} ({:.0}/s); largest -wal: {:.2} MB; -wal after {idle} s idle with every connection open: {:.2} MB",
        jobs as f64 / secs as f64,
        max as f64 / 1e6,
        idle_size as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
