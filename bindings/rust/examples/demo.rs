//! `make demo`: a producer and a worker sharing one SQLite file.
//!
//! The producer takes orders, each in one transaction with the job that
//! emails its customer; one order's payment is declined and rolled back, so
//! its job never exists. The worker (its own connection, as another process
//! would have) sends the emails: one bounces once and is retried, one is for
//! an unknown customer and goes to the dead-letter table. Results are
//! stored for the producer to read back.
//!
//! Run: `cargo run -p honker --example demo [path/to/file.db]`

use honker::{Database, EnqueueOpts, QueueOpts};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize, Debug)]
struct Email {
    order_id: i64,
    to: String,
}

fn main() -> honker::Result<()> {
    let dir = std::env::temp_dir().join(format!("honker-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| dir.join("shop.db"));
    println!("database: {}", path.display());

    // ---- producer -------------------------------------------------------
    let shop = Database::open(&path)?;
    shop.with_conn(|c| {
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)",
        )
    })??;
    let emails = shop.queue("emails", QueueOpts::default());
    let customers = [
        ("alice@example.com", 1200),
        ("bob@example.com", 450),
        ("carol@example.com", 9900),
        ("nobody@invalid", 10),
        ("dave@example.com", 3000),
    ];
    let mut job_ids = Vec::new();
    for (to, total) in customers {
        let tx = shop.transaction()?;
        tx.execute(
            "INSERT INTO orders (customer, total) VALUES (?1, ?2)",
            rusqlite::params![to, total],
        )?;
        let order_id: i64 = tx.query_row("SELECT last_insert_rowid()", [], |r| r.get(0))?;
        let job = emails.enqueue_tx(
            &tx,
            &Email {
                order_id,
                to: to.into(),
            },
            EnqueueOpts::default(),
        )?;
        if to.starts_with("carol") {
            tx.rollback()?;
            println!("producer: order {order_id} for {to}: payment declined, rolled back (order and email job both gone)");
        } else {
            tx.commit()?;
            println!("producer: order {order_id} for {to} committed with email job {job}");
            job_ids.push(job);
        }
    }

    // ---- worker (its own connection, like another process) ---------------
    let worker_db = Database::open(&path)?;
    let inbox = worker_db.queue(
        "emails",
        QueueOpts {
            max_attempts: 2,
            ..QueueOpts::default()
        },
    );
    let mut bounced_once = false;
    // The worker blocks in `next_timeout` until a job is claimable: woken by
    // commits (no polling), and by the retried job's run_at. It stops once
    // the queue has been idle for a second.
    let waker = inbox.claim_waker();
    while let Some(job) = waker.next_timeout("worker-1", Duration::from_secs(1))? {
        let email: Email = job.payload_as()?;
        if email.to.ends_with("@invalid") {
            job.fail("no such mailbox")?;
            println!(
                "worker:   job {} ({}) failed for good -> dead-letter table",
                job.id, email.to
            );
        } else if email.to.starts_with("bob") && !bounced_once {
            bounced_once = true;
            job.retry(Some(Duration::from_millis(50)), "mail server busy")?;
            println!(
                "worker:   job {} ({}) attempt {} bounced, retrying in 50 ms",
                job.id, email.to, job.attempts
            );
        } else {
            worker_db.save_result(job.id, &format!(r#"{{"sent_to":"{}"}}"#, email.to), 3600)?;
            job.ack()?;
            println!(
                "worker:   job {} sent to {} on attempt {}",
                job.id, email.to, job.attempts
            );
        }
    }

    // ---- producer reads back -------------------------------------------
    for id in &job_ids {
        match shop.get_result(*id)? {
            Some(r) => println!("producer: result of job {id}: {r}"),
            None => println!("producer: job {id} has no result"),
        }
    }
    for dead in emails.dead_jobs(10)? {
        println!(
            "producer: dead job {} ({}): {}",
            dead.id,
            dead.dead_reason.as_deref().unwrap_or("?"),
            dead.last_error.as_deref().unwrap_or("")
        );
    }
    let orders: i64 =
        shop.with_conn(|c| c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)))??;
    println!(
        "orders in the table: {orders}; queue now: {:?}",
        emails.stats()?
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
