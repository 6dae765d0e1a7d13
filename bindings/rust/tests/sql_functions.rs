//! The crate registers every honker SQL function on the connection it
//! opens, so custom SQL and the user's own triggers can use them.

mod common;
use common::TempDb;
use honker::QueueOpts;
use std::time::Duration;

#[test]
fn sql_functions_work_on_the_crates_own_connection() {
    let t = TempDb::new();
    let db = t.open();
    let id: i64 = db
        .with_conn(|c| {
            c.query_row(
                "SELECT honker_enqueue('emails', json_object('to', 'a'), '{\"priority\": 2}')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap()
        .unwrap();
    let job = db
        .queue("emails", QueueOpts::default())
        .claim_one("w")
        .unwrap()
        .unwrap();
    assert_eq!((job.id, job.priority), (id, 2));
    let version: String = db
        .with_conn(|c| c.query_row("SELECT honker_version()", [], |r| r.get(0)))
        .unwrap()
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

fn trusting(t: &TempDb) -> honker::Database {
    honker::Database::open_with(
        t.path(),
        honker::OpenOptions {
            trusted_schema: true,
            ..honker::OpenOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn a_users_trigger_calling_notify_reaches_listeners() {
    let t = TempDb::new();
    let db = trusting(&t);
    db.with_conn(|c| {
        c.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);
             CREATE TRIGGER orders_notify AFTER INSERT ON orders
             BEGIN SELECT notify('orders', json_object('id', NEW.id)); END;",
        )
    })
    .unwrap()
    .unwrap();
    let mut sub = db.listen("orders").unwrap();
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO orders (id) VALUES (7)", [])
        .unwrap();
    tx.commit().unwrap();
    let n = sub
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .expect("the trigger notified");
    assert_eq!(n.payload, r#"{"id":7}"#);
    // Without the opt-in, the file's schema may not call them.
    let wary = t.open();
    let e = wary
        .with_conn(|c| c.execute("INSERT INTO orders (id) VALUES (9)", []))
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("unsafe use of notify"), "{e}");
    // A second trusting handle (another connection) has the functions too.
    let other = trusting(&t);
    other
        .with_conn(|c| c.execute("INSERT INTO orders (id) VALUES (8)", []))
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(20))
            .unwrap()
            .unwrap()
            .payload,
        r#"{"id":8}"#
    );
}

#[test]
fn a_panic_in_your_own_closure_is_yours_and_leaves_the_database_usable() {
    let t = TempDb::new();
    let db = t.open();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.with_conn(|c| {
            c.execute_batch("BEGIN IMMEDIATE; CREATE TABLE t (x);")
                .unwrap();
            panic!("the caller's own bug");
        })
    }));
    let payload = caught.expect_err("the panic reaches the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"the caller's own bug")
    );
    // What the closure began was rolled back; the database carries on.
    let exists: bool = db
        .with_conn(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 't')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap()
        .unwrap();
    assert!(!exists);
    db.queue("q", QueueOpts::default())
        .enqueue(&1, Default::default())
        .unwrap();
}
