//! Docs are tests: every ```rust block of README.md and
//! bindings/rust/README.md must appear verbatim (modulo indentation) in a
//! test that runs it: this file or spec_snippets.rs.

// Snippets are verbatim, placeholders and all: their variables may go unused.
#![allow(unused_variables)]

mod common;
use common::TempDb;

/// The snippets open "app.db" in the current directory, which is the
/// process's: one such test at a time.
static CWD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A fresh directory made the current one (for this test alone) with an
/// app.db holding the snippet's business table, made by `schema`.
struct AppDir {
    _cwd: std::sync::MutexGuard<'static, ()>,
    _dir: TempDb,
}

impl AppDir {
    fn new(schema: &str) -> honker::Result<AppDir> {
        let cwd = CWD.lock().unwrap_or_else(|p| p.into_inner());
        let t = TempDb::new();
        std::env::set_current_dir(t.dir.path()).unwrap();
        honker::Database::open("app.db")?.with_conn(|c| c.execute_batch(schema))??;
        Ok(AppDir { _cwd: cwd, _dir: t })
    }
}

#[test]
fn top_level_readme_example() -> honker::Result<()> {
    let _app = AppDir::new("CREATE TABLE orders (user_id INTEGER)")?;
    // ---- snippet: README.md
    use honker::{Database, EnqueueOpts, QueueOpts};
    use serde_json::json;

    let db = Database::open("app.db")?;
    let emails = db.queue("emails", QueueOpts::default());

    let tx = db.transaction()?;
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])?;
    emails.enqueue_tx(
        &tx,
        &json!({"to": "alice@example.com"}),
        EnqueueOpts::default(),
    )?;
    tx.commit()?;

    if let Some(job) = emails.claim_one("worker-1")? {
        let to: serde_json::Value = job.payload_as()?;
        // send the email ...
        job.ack()?;
    }
    // ----
    assert_eq!(emails.stats()?, Default::default());
    let n: i64 =
        db.with_conn(|c| c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)))??;
    assert_eq!(n, 1);
    Ok(())
}

#[test]
fn pub_sub_example_receives_its_notification() -> honker::Result<()> {
    use serde_json::json;
    let t = TempDb::new();
    let db = t.open();
    // ---- snippet: bindings/rust/README.md, Ephemeral pub/sub
    let mut sub = db.listen("orders")?; // listen first: it gets what commits from now on
    db.notify("orders", &json!({"id": 42}))?;
    let n = sub.recv().expect("the listener is open")?;
    println!("{}: {}", n.channel, n.payload); // orders: {"id":42}
                                              // ----
    assert_eq!(
        (n.channel.as_str(), n.payload.as_str()),
        ("orders", r#"{"id":42}"#)
    );
    Ok(())
}

#[test]
fn trusted_schema_example_lets_your_own_trigger_enqueue() -> honker::Result<()> {
    use honker::{Database, OpenOptions, QueueOpts};
    let _cwd = CWD.lock().unwrap_or_else(|p| p.into_inner());
    let t = TempDb::new();
    std::env::set_current_dir(t.dir.path()).unwrap();
    // ---- snippet: bindings/rust/README.md, A database file is input
    let db = Database::open_with(
        "app.db",
        OpenOptions {
            trusted_schema: true,
            ..OpenOptions::default()
        },
    )?;
    // ----
    db.with_conn(|c| {
        c.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);
             CREATE TRIGGER mail AFTER INSERT ON orders
             BEGIN SELECT honker_enqueue('emails', json_object('order', NEW.id)); END;
             INSERT INTO orders (id) VALUES (5);",
        )
    })??;
    let job = db
        .queue("emails", QueueOpts::default())
        .claim_one("w")?
        .unwrap();
    assert_eq!(job.payload, r#"{"order":5}"#);
    Ok(())
}

#[cfg(feature = "tokio")]
#[test]
fn async_example_enqueues_in_a_transaction_and_drains_one_job() -> honker::Result<()> {
    let _app = AppDir::new("CREATE TABLE orders (user_id INTEGER)")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            // ---- snippet: bindings/rust/README.md, Async (tokio)
            use futures::StreamExt;
            use honker::{Database, EnqueueOpts, QueueOpts};

            let db = Database::open("app.db")?;
            let emails = db.queue("emails", QueueOpts::default());

            // The job commits with the business write; the transaction may be held
            // across awaits.
            let tx = db.transaction_async().await?;
            tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])?;
            let email = serde_json::json!({"to": "alice@example.com"});
            emails.enqueue_tx(&tx, &email, EnqueueOpts::default())?;
            tx.commit_async().await?;

            // A worker: the queue as a stream, waiting without a thread, woken by
            // commits from any process.
            let mut jobs = emails.claims("worker-1");
            let stop = jobs.stop_handle(); // stop.stop() ends the stream (on SIGTERM, say)
            while let Some(job) = jobs.next().await {
                let job = job?;
                // ... send the email ...
                job.ack_async().await?;
                stop.stop(); // (this example handles one job)
            }
            let n: i64 =
                db.with_conn(|c| c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)))??;
            assert_eq!(n, 1);
            assert_eq!(emails.stats()?.ready + emails.stats()?.processing, 0);
            Ok(())
        })
}

#[test]
fn top_level_readme_tasks_example() -> honker::Result<()> {
    let _app = AppDir::new("CREATE TABLE orders (user_id INTEGER)")?;
    // ---- snippet: README.md, Tasks and workers
    use honker::{Database, EnqueueOpts, QueueOpts, TaskCall, WorkerOptions};
    use serde_json::{json, Value};

    let db = Database::open("app.db")?;
    let receipts = db.queue("receipts", QueueOpts::default());

    // The producer (a web handler, say): the task's job commits with the order.
    let tx = db.transaction()?;
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])?;
    receipts.enqueue_task_tx(
        &tx,
        "send_receipt",
        &json!({"user": 42}),
        EnqueueOpts::default(),
    )?;
    tx.commit()?;

    // The worker process: handlers by task name, run until shutdown.
    let mut worker = db.worker(WorkerOptions {
        queues: vec!["receipts".into()],
        concurrency: 4,
        ..WorkerOptions::default()
    });
    worker.task("send_receipt", |call: &TaskCall| -> honker::Result<Value> {
        let order: Value = call.payload()?;
        Ok(json!({"sent_to_user": order["user"]})) // the job's result
    });
    let ran = worker.drain()?; // a test runs what is due; a service calls worker.run(stop)
                               // ---- end of snippet
    assert_eq!(ran, 1);
    let job_id: i64 = 1;
    assert_eq!(
        db.get_result(job_id)?.as_deref(),
        Some(r#"{"sent_to_user":42}"#)
    );
    Ok(())
}

type AnyResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The worker process of "Tasks and workers", run on a thread; stopped by
/// the SIGTERM its own handler registration catches.
fn readme_worker_process() -> AnyResult {
    // ---- snippet: bindings/rust/README.md, Tasks and workers (worker)
    use honker::{Database, RetryPolicy, TaskCall, TaskOptions, WorkerOptions};
    use serde_json::{json, Value};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    let db = Database::open("app.db")?;
    let mut worker = db.worker(WorkerOptions {
        queues: vec!["emails".into()],
        concurrency: 8,
        ..WorkerOptions::default()
    });
    let opts = TaskOptions {
        timeout: Some(Duration::from_secs(30)),
        retry: Some(RetryPolicy::Exponential {
            base: Duration::from_secs(2),
            max: Duration::from_secs(600),
            jitter: true,
        }),
        ..TaskOptions::default()
    };
    worker.task_with(
        "send_welcome",
        opts,
        |call: &TaskCall| -> honker::Result<Value> {
            let p: Value = call.payload()?;
            // ... send it; call.is_cancelled() turns true on a timeout, a lost
            // lease, or the end of a shutdown's grace period.
            Ok(json!({"sent_to": p["email"]})) // saved as the job's result
        },
    );

    // Once `stop` is set, nothing more is claimed, running jobs get the grace
    // period (WorkerOptions::grace, 10 s), the rest are released without using
    // an attempt, and run returns.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    worker.run(stop)?;
    Ok(())
}

#[test]
fn tasks_example_a_web_producer_and_a_worker_stopped_by_sigterm() -> AnyResult {
    let _app = AppDir::new("CREATE TABLE users (email TEXT)")?;
    let worker = std::thread::spawn(readme_worker_process);
    let seen = {
        // ---- snippet: bindings/rust/README.md, Tasks and workers (producer)
        use honker::{Database, EnqueueOpts, QueueOpts};
        use serde_json::json;
        use std::time::Duration;

        let db = Database::open("app.db")?;
        let emails = db.queue("emails", QueueOpts::default());

        // The task's job commits with the signup, or neither does.
        let tx = db.transaction()?;
        tx.execute("INSERT INTO users (email) VALUES (?1)", ["ada@example.com"])?;
        let email = json!({"email": "ada@example.com"});
        let id = emails.enqueue_task_tx(&tx, "send_welcome", &email, EnqueueOpts::default())?;
        tx.commit()?;

        // Optionally wait for the result, woken by the commit that ends the job
        // (None after the timeout; a dead job is Error::JobFailed).
        if let Some(outcome) = db.wait_job(id, Duration::from_secs(10))? {
            let result: Option<String> = outcome.into_result()?; // the handler's value as JSON
            println!("{result:?}");
        }
        // ---- end of snippet
        db.wait_job(id, Duration::from_secs(1))?
            .map(|o| o.into_result())
            .transpose()?
    };
    assert_eq!(
        seen,
        Some(Some(r#"{"sent_to":"ada@example.com"}"#.to_string()))
    );
    // The worker has run a job, so its handlers are registered: SIGTERM
    // stops it, as it would stop the worker process.
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM)?;
    worker.join().expect("the worker thread")?;
    Ok(())
}

fn normalize(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("// ----"))
        .map(String::from)
        .collect()
}

fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```rust") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_readme_rust_block_is_run_by_a_test() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let tests: Vec<Vec<String>> = [include_str!("spec_snippets.rs"), include_str!("readme.rs")]
        .into_iter()
        .map(normalize)
        .collect();
    let mut checked = 0;
    for readme in ["README.md", "bindings/rust/README.md"] {
        let text = std::fs::read_to_string(format!("{root}/{readme}")).unwrap();
        for block in rust_blocks(&text) {
            let lines = normalize(&block);
            assert!(
                tests.iter().any(|t| contains_run(t, &lines)),
                "{readme}: this block is not run by any test:\n{block}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} blocks found");
}
