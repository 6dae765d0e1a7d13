//! Docs are tests: every ```rust block of README.md and
//! bindings/rust/README.md must appear verbatim (modulo indentation) in a
//! test that runs it: this file or spec_snippets.rs.

// Snippets are verbatim, placeholders and all: their variables may go unused.
#![allow(unused_variables)]

mod common;
use common::TempDb;

#[test]
fn top_level_readme_example() -> honker::Result<()> {
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
