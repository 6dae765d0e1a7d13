//! The README's examples on PostgreSQL: the same code, a URL for a path
//! (run by `make pg-test`, which starts a private server).

use honker::{Database, EnqueueOpts, QueueOpts, TaskCall, WorkerOptions};
use serde_json::{json, Value};

fn url() -> String {
    std::env::var("HONKER_PG_URL").expect("HONKER_PG_URL: run through `make pg-test`")
}

/// A schema of its own, dropped at the end.
struct Fresh(Database, String);

impl Fresh {
    fn new(tag: &str) -> Fresh {
        let schema = format!("rs_{tag}_{}", std::process::id());
        // The application's tables in the same schema (libpq's `options`).
        let db = Database::open(format!(
            "{}?schema={schema}&options=-csearch_path%3D{schema}",
            url()
        ))
        .unwrap();
        let tx = db.transaction().unwrap();
        tx.execute_batch("CREATE TABLE orders (user_id bigint)")
            .unwrap();
        tx.commit().unwrap();
        Fresh(db, schema)
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Ok(tx) = self.0.transaction() {
            let _ = tx.execute_batch(&format!("DROP SCHEMA {} CASCADE", self.1));
            let _ = tx.commit();
        }
    }
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn the_readme_example_runs_on_postgresql() -> honker::Result<()> {
    let fresh = Fresh::new("readme");
    let db = &fresh.0;
    let emails = db.queue("emails", QueueOpts::default());

    let tx = db.transaction()?;
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])?;
    emails.enqueue_tx(
        &tx,
        &json!({"to": "alice@example.com"}),
        EnqueueOpts::default(),
    )?;
    tx.commit()?;

    let job = emails.claim_one("worker-1")?.expect("the job committed");
    let to: Value = job.payload_as()?;
    assert_eq!(to["to"], "alice@example.com");
    assert!(job.ack()?);

    // A rollback drops the order and its job together.
    let tx = db.transaction()?;
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [7])?;
    emails.enqueue_tx(&tx, &json!({"to": "x"}), EnqueueOpts::default())?;
    tx.rollback()?;
    let tx = db.transaction()?;
    let n: i64 = tx.query_row("SELECT count(*) AS n FROM orders", [], |r| r.get("n"))?;
    assert_eq!(n, 1);
    // Tuples of parameters work too; a wrong count is a clear error.
    assert_eq!(
        tx.execute(
            "INSERT INTO orders (user_id) VALUES (CAST(?1 AS bigint) + CAST(?2 AS bigint))",
            (1, 2)
        )?,
        1
    );
    let e = tx
        .execute("INSERT INTO orders (user_id) VALUES (?1)", (1, 2))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    tx.rollback()?;
    assert!(emails.claim_one("worker-1")?.is_none());
    Ok(())
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn the_readme_worker_runs_on_postgresql() -> honker::Result<()> {
    let fresh = Fresh::new("worker");
    let db = &fresh.0;
    let receipts = db.queue("receipts", QueueOpts::default());
    let tx = db.transaction()?;
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])?;
    let id = receipts.enqueue_task_tx(
        &tx,
        "send_receipt",
        &json!({"user": 42}),
        EnqueueOpts::default(),
    )?;
    tx.commit()?;
    let mut worker = db.worker(WorkerOptions {
        queues: vec!["receipts".into()],
        concurrency: 4,
        ..WorkerOptions::default()
    });
    worker.task("send_receipt", |call: &TaskCall| -> honker::Result<Value> {
        let order: Value = call.payload()?;
        Ok(json!({"sent_to_user": order["user"]}))
    });
    let ran = worker.drain()?;
    assert_eq!(ran, 1);
    assert_eq!(
        db.get_result(id)?.as_deref(),
        Some(r#"{"sent_to_user":42}"#)
    );
    Ok(())
}
