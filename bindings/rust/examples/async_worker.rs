//! The async API (feature `tokio`): an axum-style service that takes orders
//! in transactions held across `.await`, two async workers that drain the
//! queue as a stream, and a consumer following the orders stream.
//!
//! Run: `cargo run -p honker --features tokio --example async_worker`

use honker::{Database, EnqueueOpts, QueueOpts};
use std::future::poll_fn;
use std::pin::Pin;

/// The next item of a `futures_core::Stream` (what `StreamExt::next` from
/// the `futures` crate does).
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::main]
async fn main() -> honker::Result<()> {
    let dir = std::env::temp_dir().join(format!("honker-async-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = Database::open(dir.join("shop.db"))?;
    db.with_conn(|c| c.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)"))??;
    let emails = db.queue("emails", QueueOpts::default());
    let orders = db.stream("orders");

    // Two workers, each a task draining the queue as a stream.
    let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for name in ["worker-1", "worker-2"] {
        let mut claims = emails.claims(name);
        let sent_tx = sent_tx.clone();
        workers.push((
            claims.stop_handle(),
            tokio::spawn(async move {
                while let Some(job) = next(&mut claims).await {
                    let job = job?;
                    let to: String = job.payload_as()?;
                    println!("{name}: emailing {to}");
                    job.ack_async().await?;
                    let _ = sent_tx.send(to);
                }
                Ok::<_, honker::Error>(())
            }),
        ));
    }

    // A consumer follows the orders stream from its saved offset.
    let mut sub = orders.subscribe_async("audit").await?;
    let audit = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            if let Some(ev) = sub.next_async().await? {
                seen.push(ev.payload_as::<String>()?);
            }
        }
        sub.commit_async().await?;
        Ok::<_, honker::Error>(seen)
    });

    // Each order: the row, its event and its job commit together. The
    // transaction is held across awaits; other tasks' calls wait for the
    // commit off the runtime's threads.
    for (item, to) in [
        ("lamp", "alice@example.com"),
        ("desk", "bob@example.com"),
        ("chair", "carol@example.com"),
    ] {
        let tx = db.transaction_async().await?;
        tx.execute("INSERT INTO orders (item) VALUES (?1)", [item])?;
        orders.publish_tx(&tx, &item)?;
        emails.enqueue_tx(&tx, &to, EnqueueOpts::default())?;
        tokio::task::yield_now().await;
        tx.commit_async().await?;
    }

    let seen = audit.await.expect("audit task")?;
    println!("audit saw {seen:?}");
    assert_eq!(seen, ["lamp", "desk", "chair"]);

    // Once the three emails are out, stop the workers (each stream ends).
    let mut emailed = Vec::new();
    while emailed.len() < 3 {
        emailed.push(sent.recv().await.expect("a worker"));
    }
    for (stop, worker) in workers {
        stop.stop();
        worker.await.expect("worker task")?;
    }
    emailed.sort();
    println!("emailed {emailed:?}");
    assert_eq!(
        emailed,
        ["alice@example.com", "bob@example.com", "carol@example.com"]
    );
    assert_eq!(emails.stats_async().await?.processing, 0);
    Ok(())
}
