//! Interop between the loadable extension (in Debian's `sqlite3` shell, a
//! separate process with its own SQLite) and this crate, on one file.
//! Needs the built extension: run by `make test` as
//! `HONKER_EXT=target/x86_64-unknown-linux-gnu/debug/libhonker_ext.so cargo test --test extension_interop -- --ignored`.

mod common;
use common::TempDb;
use honker::{EnqueueOpts, QueueOpts};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn ext() -> String {
    let p =
        std::env::var("HONKER_EXT").expect("HONKER_EXT: path to libhonker_ext.so (see make test)");
    let p = std::fs::canonicalize(p).expect("the extension exists");
    p.to_str()
        .unwrap()
        .trim_end_matches(".so")
        .trim_end_matches(".dylib")
        .to_string()
}

/// Runs `script` in the sqlite3 shell with the extension loaded.
fn sql(t: &TempDb, script: &str) -> String {
    let out = Command::new("sqlite3")
        .arg("-bail")
        .arg(t.path())
        .arg(format!(".load {}", ext()))
        .arg(script)
        .output()
        .expect("Debian's sqlite3 shell is installed");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore]
fn sql_enqueues_in_business_transactions_and_rust_claims() {
    let t = TempDb::new();
    let db = t.open();
    db.with_conn(|c| c.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT)"))
        .unwrap()
        .unwrap();
    sql(
        &t,
        "BEGIN; INSERT INTO orders (user_id) VALUES (1); SELECT honker_enqueue('emails', json_object('user', 1)); COMMIT;
         BEGIN; INSERT INTO orders (user_id) VALUES (2); SELECT honker_enqueue('emails', json_object('user', 2)); ROLLBACK;
         BEGIN; INSERT INTO orders (user_id) VALUES (3); SELECT honker_enqueue('emails', json_object('user', 3), '{\"priority\": 1}'); COMMIT;",
    );
    let q = db.queue("emails", QueueOpts::default());
    let users: Vec<i64> = q
        .claim_batch("rust", 10)
        .unwrap()
        .iter()
        .map(|j| {
            assert!(j.ack().unwrap());
            j.payload_as::<serde_json::Value>().unwrap()["user"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        users,
        vec![3, 1],
        "priority first; the rolled-back job never appears"
    );
    let orders: Vec<i64> = db
        .with_conn(|c| {
            let mut st = c.prepare("SELECT user_id FROM orders ORDER BY id").unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        })
        .unwrap();
    assert_eq!(orders, vec![1, 3]);
}

#[test]
#[ignore]
fn rust_enqueues_and_sql_claims_and_acks() {
    let t = TempDb::new();
    let db = t.open();
    let q = db.queue("work", QueueOpts::default());
    let ids = q
        .enqueue_many(&[json!({"n": 1}), json!({"n": 2})], EnqueueOpts::default())
        .unwrap();
    let out = sql(
        &t,
        "CREATE TEMP TABLE c AS SELECT value AS job FROM json_each(honker_claim_batch('work', 'sql-worker', 10));
         SELECT json_extract(job, '$.id') || ' ' || honker_ack(json_extract(job, '$.id'), 'sql-worker', json_extract(job, '$.attempts')) FROM c ORDER BY 1;",
    );
    let acked: Vec<String> = out.lines().map(String::from).collect();
    assert_eq!(
        acked,
        ids.iter().map(|id| format!("{id} 1")).collect::<Vec<_>>()
    );
    assert_eq!(q.stats().unwrap(), Default::default());
}

#[test]
#[ignore]
fn sql_streams_and_notifications_reach_rust() {
    let t = TempDb::new();
    let db = t.open();
    let mut listener = db.listen("orders").unwrap();
    let waker = db.queue("q", QueueOpts::default()).claim_waker();
    sql(
        &t,
        "SELECT honker_publish('orders', '{\"id\": 1}'); SELECT honker_publish('orders', '{\"id\": 2}', 'k');
         SELECT notify('orders', '{\"id\": 42}'); SELECT honker_enqueue('q', '7');",
    );
    let events = db.stream("orders").read_since(0, 10).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.payload.as_str())
            .collect::<Vec<_>>(),
        [r#"{"id": 1}"#, r#"{"id": 2}"#]
    );
    assert_eq!(events[1].key.as_deref(), Some("k"));
    // The listener and the waker in this process are woken by the shell's commits.
    let n = listener
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("notified");
    assert_eq!(n.payload_as::<serde_json::Value>().unwrap()["id"], 42);
    let job = waker
        .next_timeout("w", Duration::from_secs(20))
        .unwrap()
        .expect("woken");
    assert_eq!(job.payload, "7");
}
