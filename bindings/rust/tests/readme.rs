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

#[test]
fn top_level_readme_example() -> honker::Result<()> {
    let _cwd = CWD.lock().unwrap_or_else(|p| p.into_inner());
    let t = TempDb::new();
    std::env::set_current_dir(t.dir.path()).unwrap();
    honker::Database::open("app.db")?
        .with_conn(|c| c.execute_batch("CREATE TABLE orders (user_id INTEGER)"))??;
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
    let _cwd = CWD.lock().unwrap_or_else(|p| p.into_inner());
    let t = TempDb::new();
    std::env::set_current_dir(t.dir.path()).unwrap();
    honker::Database::open("app.db")?
        .with_conn(|c| c.execute_batch("CREATE TABLE orders (user_id INTEGER)"))??;
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
