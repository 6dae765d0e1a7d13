//! The Rust role in the cross-language suite (`tests/cross/run.py`).
//!
//! ```text
//! honker-cross producer <db> <queue> <n> <workers> <prefix>  business transactions, a fifth rolled back
//! honker-cross worker <db> <queue> <worker-name>   claim until a {"stop": true} job
//! honker-cross verify <db> <queue>                 exactly the committed orders processed, once each
//! honker-cross notify <db> <channel> <n>           n notifications, printing each commit time
//! honker-cross consume <db> <stream> <name> <last> print each event's i until i == last
//! honker-cross scheduler <db> <owner>              lead or stand by until stdin closes
//! honker-cross lock <db> <name> <owner>            try the lock: print its token (and release) or "none"
//! honker-cross rate <db> <key> <limit> <per_s>     print 1 if allowed, else 0
//! honker-cross task-worker <db> <queue> <name>     run the ship_order task until stdin closes
//! ```
//!
//! Workers record what they did in the business table `processed`, in the
//! same transaction as the ack, so a job's effect is applied exactly once.

use honker::{Database, EnqueueOpts, QueueOpts, ScheduledTask, SchedulerOpts, WorkerOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["producer", db, queue, n, workers, prefix] => producer(db, queue, n, workers, prefix),
        ["worker", db, queue, name] => worker(db, queue, name),
        ["verify", db, queue] => verify(db, queue),
        ["notify", db, channel, n] => notify(db, channel, n),
        ["consume", db, stream, name, last] => consume(db, stream, name, last),
        ["scheduler", db, owner] => scheduler(db, owner),
        ["lock", db, name, owner] => lock(db, name, owner),
        ["rate", db, key, limit, per] => rate(db, key, limit, per),
        ["task-worker", db, queue, name] => task_worker(db, queue, name),
        _ => Err("usage: honker-cross worker|verify|notify ... (see src/main.rs)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("honker-cross {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn producer(path: &str, queue: &str, n: &str, workers: &str, prefix: &str) -> Res {
    let db = Database::open(path)?;
    let q = db.queue(queue, QueueOpts::default());
    for i in 0..n.parse::<u32>()? {
        let reference = format!("{prefix}-{i}");
        let tx = db.transaction()?;
        tx.execute("INSERT INTO orders (ref) VALUES (?1)", [&reference])?;
        q.enqueue_tx(
            &tx,
            &serde_json::json!({ "order_ref": reference }),
            EnqueueOpts::default(),
        )?;
        if i % 5 == 4 {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
    }
    for _ in 0..workers.parse::<u32>()? {
        let stop = EnqueueOpts {
            priority: -1,
            ..EnqueueOpts::default()
        };
        q.enqueue(&serde_json::json!({ "stop": true }), stop)?;
    }
    Ok(())
}

fn worker(path: &str, queue: &str, name: &str) -> Res {
    let db = Database::open(path)?;
    let q = db.queue(queue, QueueOpts::default());
    let waker = q.claim_waker();
    println!("ready");
    loop {
        let Some(job) = waker.next_timeout(name, Duration::from_secs(60))? else {
            return Err("no job for 60 s".into());
        };
        let payload: Value = job.payload_as()?;
        if payload.get("stop").is_some() {
            job.ack()?;
            return Ok(());
        }
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?1, ?2, ?3, 'rust')",
            (job.id, payload["order_ref"].as_str(), name),
        )?;
        if !job.ack_tx(&tx)? {
            return Err(format!("lost the lease on job {}", job.id).into());
        }
        tx.commit()?;
    }
}

/// Runs the `ship_order` task (recording each run in `processed`) until
/// stdin closes, then drains.
fn task_worker(path: &str, queue: &str, name: &str) -> Res {
    let db = Database::open(path)?;
    let mut worker = db.worker(WorkerOptions {
        queues: vec![queue.to_string()],
        concurrency: 4,
        worker_id: Some(name.to_string()),
        ..WorkerOptions::default()
    });
    let (d, me) = (db.clone(), name.to_string());
    worker.task("ship_order", move |call| -> honker::Result<Value> {
        let order_ref: String = call.payload()?;
        let tx = d.transaction()?;
        tx.execute(
            "INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?1, ?2, ?3, 'rust')",
            (call.id(), &order_ref, &me),
        )?;
        tx.commit()?;
        Ok(serde_json::json!({ "order_ref": order_ref, "lang": "rust", "worker": me }))
    });
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        flag.store(true, Ordering::SeqCst);
    });
    println!("ready");
    worker.run(stop)?;
    Ok(())
}

fn verify(path: &str, queue: &str) -> Res {
    let db = Database::open(path)?;
    // Plain counts through the transaction's query_row: the same code on
    // SQLite and PostgreSQL.
    let tx = db.transaction()?;
    let one = |sql: &str, lang: &str| -> Result<i64, honker::Error> {
        if lang.is_empty() {
            tx.query_row(sql, [], |r| r.get::<_, i64>(0))
        } else {
            tx.query_row(sql, [lang], |r| r.get::<_, i64>(0))
        }
    };
    let orders = one("SELECT count(*) FROM orders", "")?;
    let processed = one("SELECT count(*) FROM processed", "")?;
    let distinct = one("SELECT count(DISTINCT order_ref) FROM processed", "")?;
    let strays = one(
        "SELECT count(*) FROM processed WHERE order_ref NOT IN (SELECT ref FROM orders)",
        "",
    )?;
    let mut by_lang = HashMap::new();
    for lang in ["python", "node", "rust"] {
        let n = one("SELECT count(*) FROM processed WHERE lang = ?1", lang)?;
        if n > 0 {
            by_lang.insert(lang.to_string(), n);
        }
    }
    tx.commit()?;
    let stats = db.queue(queue, QueueOpts::default()).stats()?;
    println!(
        "orders committed {orders}, jobs processed {processed} ({distinct} distinct), by {by_lang:?}, \
         rolled-back orders processed {strays}, left in queue {stats:?}"
    );
    if processed != distinct {
        return Err(format!("{} jobs processed twice", processed - distinct).into());
    }
    if strays != 0 {
        return Err(format!("{strays} jobs of rolled-back orders were processed").into());
    }
    if processed != orders {
        return Err(format!("{orders} committed orders but {processed} processed").into());
    }
    if stats.ready + stats.scheduled + stats.processing + stats.dead != 0 {
        return Err(format!("jobs left over: {stats:?}").into());
    }
    Ok(())
}

fn notify(path: &str, channel: &str, n: &str) -> Res {
    let db = Database::open(path)?;
    let n: u32 = n.parse()?;
    for i in 0..n {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?; // the orchestrator paces the sends
        db.notify(channel, &serde_json::json!({ "i": i }))?;
        let at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        println!("{at}");
    }
    Ok(())
}

fn consume(path: &str, stream: &str, name: &str, last: &str) -> Res {
    let db = Database::open(path)?;
    let last: i64 = last.parse()?;
    let mut sub = db.stream(stream).subscribe(name)?;
    println!("ready");
    loop {
        let Some(ev) = sub.next_timeout(Duration::from_secs(60))? else {
            return Err("no event for 60 s".into());
        };
        let payload: Value = serde_json::from_str(&ev.payload)?;
        let i = payload["i"].as_i64().ok_or("event without i")?;
        println!("{i}");
        sub.commit()?;
        if i == last {
            return Ok(());
        }
    }
}

/// The cross-language schedule: one job per second into `ticks`.
fn tick_task() -> ScheduledTask {
    ScheduledTask {
        name: "tick".into(),
        queue: "ticks".into(),
        cron: "* * * * * *".into(),
        payload: serde_json::json!({"from": "schedule"}),
        priority: 0,
        expires_s: None,
    }
}

fn scheduler(path: &str, owner: &str) -> Res {
    let db = Database::open(path)?;
    let scheduler = db.scheduler();
    scheduler.add(tick_task())?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
        on_eof.store(true, Ordering::SeqCst); // run looks at it every 50 ms
    });
    println!("ready");
    let opts = SchedulerOpts {
        lock_ttl: Duration::from_secs(1),
        ..SchedulerOpts::default()
    };
    scheduler.run_with(stop, owner, opts)?;
    Ok(())
}

fn lock(path: &str, name: &str, owner: &str) -> Res {
    let db = Database::open(path)?;
    match db.try_lock(name, owner, 30)? {
        Some(lock) => {
            println!("{}", lock.fencing_token());
            lock.release()?;
        }
        None => println!("none"),
    }
    Ok(())
}

fn rate(path: &str, key: &str, limit: &str, per: &str) -> Res {
    let db = Database::open(path)?;
    let allowed = db.try_rate_limit(key, limit.parse()?, per.parse()?)?;
    println!("{}", u8::from(allowed));
    Ok(())
}
