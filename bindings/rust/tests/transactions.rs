mod common;
use common::TempDb;
use honker::{EnqueueOpts, QueueOpts};
use serde_json::json;
use std::time::Duration;

fn setup() -> (TempDb, honker::Database) {
    let t = TempDb::new();
    let db = t.open();
    db.with_conn(|c| {
        c.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER)")
    })
    .unwrap()
    .unwrap();
    (t, db)
}

fn orders(db: &honker::Database) -> i64 {
    db.with_conn(|c| c.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0)))
        .unwrap()
        .unwrap()
}

#[test]
fn drop_rolls_back_business_row_job_event_offset_and_notification() {
    let (_t, db) = setup();
    let q = db.queue("emails", QueueOpts::default());
    let s = db.stream("orders");
    {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])
            .unwrap();
        q.enqueue_tx(&tx, &json!({"order": 1}), EnqueueOpts::default())
            .unwrap();
        s.publish_tx(&tx, &json!({"order": 1})).unwrap();
        s.save_offset_tx(&tx, "c", 5).unwrap();
        db.notify_tx(&tx, "orders", &json!(1)).unwrap();
        // dropped without commit
    }
    assert_eq!(orders(&db), 0);
    assert_eq!(q.stats().unwrap().ready, 0);
    assert!(s.read_since(0, 10).unwrap().is_empty());
    assert_eq!(s.get_offset("c").unwrap(), 0);
    let notes: i64 = db
        .with_conn(|c| {
            c.query_row("SELECT COUNT(*) FROM _honker_notifications", [], |r| {
                r.get(0)
            })
        })
        .unwrap()
        .unwrap();
    assert_eq!(notes, 0);

    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])
        .unwrap();
    let id = q
        .enqueue_tx(&tx, &json!({"order": 2}), EnqueueOpts::default())
        .unwrap();
    tx.rollback().unwrap();
    assert!(q.get_job(id).unwrap().is_none());

    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO orders (user_id) VALUES (?1)", [42])
        .unwrap();
    let id = q
        .enqueue_tx(&tx, &json!({"order": 3}), EnqueueOpts::default())
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(orders(&db), 1);
    assert_eq!(q.claim_one("w").unwrap().unwrap().id, id);
}

#[test]
fn ack_inside_a_transaction_commits_with_the_business_write() {
    let (_t, db) = setup();
    let q = db.queue("emails", QueueOpts::default());
    q.enqueue(&1, EnqueueOpts::default()).unwrap();
    let job = q.claim_one("w").unwrap().unwrap();
    {
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO orders (user_id) VALUES (1)", [])
            .unwrap();
        assert!(job.ack_tx(&tx).unwrap());
    } // rolled back: the job is still held
    assert_eq!(q.stats().unwrap().processing, 1);
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO orders (user_id) VALUES (1)", [])
        .unwrap();
    assert!(job.ack_tx(&tx).unwrap());
    assert_eq!(q.ack_batch_tx(&tx, std::slice::from_ref(&job)).unwrap(), 0);
    tx.commit().unwrap();
    assert!(q.get_job(job.id).unwrap().is_none());
    assert_eq!(orders(&db), 1);
}

#[test]
fn non_tx_call_on_the_owning_thread_is_an_error_not_a_deadlock() {
    let (_t, db) = setup();
    let q = db.queue("emails", QueueOpts::default());
    let tx = db.transaction().unwrap();
    let e = q.enqueue(&1, EnqueueOpts::default()).unwrap_err();
    assert_eq!(e.code(), "transaction_open");
    assert!(e.to_string().contains("_tx"), "{e}");
    assert_eq!(q.claim_one("w").unwrap_err().code(), "transaction_open");
    assert_eq!(db.notify("c", &1).unwrap_err().code(), "transaction_open");
    assert_eq!(db.transaction().unwrap_err().code(), "transaction_open");
    assert_eq!(db.with_conn(|_| ()).unwrap_err().code(), "transaction_open");
    // Another thread waits for the commit and then succeeds.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let h = std::thread::spawn(move || {
        let id = q2.enqueue(&2, EnqueueOpts::default()).unwrap();
        done_tx.send(id).unwrap();
    });
    assert!(
        done_rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "waits while the tx is open"
    );
    q.enqueue_tx(&tx, &1, EnqueueOpts::default()).unwrap();
    tx.commit().unwrap();
    done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    h.join().unwrap();
    assert_eq!(q.stats().unwrap().ready, 2);
}

#[test]
fn a_transaction_of_another_database_is_refused() {
    let (_t, db) = setup();
    let t2 = TempDb::new();
    let other = t2.open();
    let tx = other.transaction().unwrap();
    let e = db
        .queue("q", QueueOpts::default())
        .enqueue_tx(&tx, &1, EnqueueOpts::default())
        .unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
}

#[test]
fn closed_database_errors_clearly() {
    let (_t, db) = setup();
    let q = db.queue("q", QueueOpts::default());
    db.close().unwrap();
    let e = q.enqueue(&1, EnqueueOpts::default()).unwrap_err();
    assert_eq!(e.code(), "closed");
    assert_eq!(e.to_string(), "database is closed");
    assert_eq!(db.transaction().unwrap_err().code(), "closed");
}

#[test]
fn bad_input_gets_named_errors() {
    let (_t, db) = setup();
    let e = db
        .queue("", QueueOpts::default())
        .enqueue(&1, EnqueueOpts::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid argument `queue`: must not be empty");
    assert_eq!(
        db.try_lock("l", "o", 0).unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        db.try_rate_limit("k", 0, 1).unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        db.try_rate_limit("k", 1, 0).unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        db.save_result(1, "not json", 10).unwrap_err().code(),
        "invalid_json"
    );
    assert_eq!(
        db.save_result(1, "1", 0).unwrap_err().code(),
        "invalid_argument"
    );
    let bad = honker::ScheduledTask {
        name: "x".into(),
        queue: "q".into(),
        cron: "61 * * * *".into(),
        payload: json!(null),
        priority: 0,
        expires_s: None,
    };
    let e = db.scheduler().add(bad).unwrap_err();
    assert_eq!(e.code(), "invalid_cron");
    assert!(e.to_string().contains("61 * * * *"), "{e}");
    // A map with non-string keys cannot be JSON.
    let mut m = std::collections::HashMap::new();
    m.insert(vec![1u8], 1);
    let e = db
        .queue("q", QueueOpts::default())
        .enqueue(&m, EnqueueOpts::default())
        .unwrap_err();
    assert_eq!(e.code(), "invalid_json");
    let job_payload: honker::Result<u32> = {
        let q = db.queue("q2", QueueOpts::default());
        q.enqueue(&json!({"a": 1}), EnqueueOpts::default()).unwrap();
        q.claim_one("w").unwrap().unwrap().payload_as()
    };
    assert_eq!(job_payload.unwrap_err().code(), "decode");
}

#[test]
fn lock_guards_and_fencing_tokens() {
    let (_t, db) = setup();
    let a = db.try_lock("m", "host-a", 60).unwrap().unwrap();
    assert!(
        db.try_lock("m", "host-a", 60).unwrap().is_none(),
        "no second guard for the same owner"
    );
    assert_eq!(db.lock_holder("m").unwrap().unwrap().owner, "host-a");
    let t1 = a.fencing_token();
    assert!(a.release().unwrap());
    let b = db.try_lock("m", "host-b", 60).unwrap().unwrap();
    assert!(b.fencing_token() > t1);
    drop(b);
    assert!(db.lock_holder("m").unwrap().is_none());
}
