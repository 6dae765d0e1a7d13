//! The Rust role in the cross-language suite (`tests/cross/run.py`).
//!
//! ```text
//! honker-cross worker <db> <queue> <worker-name>   claim until a {"stop": true} job
//! honker-cross verify <db> <queue>                 exactly the committed orders processed, once each
//! honker-cross notify <db> <channel> <n>           n notifications, printing each commit time
//! ```
//!
//! Workers record what they did in the business table `processed`, in the
//! same transaction as the ack, so a job's effect is applied exactly once.

use honker::{Database, QueueOpts};
use serde_json::Value;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["worker", db, queue, name] => worker(db, queue, name),
        ["verify", db, queue] => verify(db, queue),
        ["notify", db, channel, n] => notify(db, channel, n),
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

fn verify(path: &str, queue: &str) -> Res {
    let db = Database::open(path)?;
    let tx = db.transaction()?;
    let (orders, processed, distinct, strays, by_lang) = tx.with_conn(|c| {
        let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
        let mut st = c.prepare("SELECT lang, count(*) FROM processed GROUP BY lang")?;
        let by_lang = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok::<_, honker::rusqlite::Error>((
            one("SELECT count(*) FROM orders")?,
            one("SELECT count(*) FROM processed")?,
            one("SELECT count(DISTINCT order_ref) FROM processed")?,
            one("SELECT count(*) FROM processed WHERE order_ref NOT IN (SELECT ref FROM orders)")?,
            by_lang,
        ))
    })??;
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
