//! A lock held by the crate's guard keeps itself alive past its TTL, and a
//! loss (another owner took it) is reported by `Lock::check`.

mod common;
use common::TempDb;
use std::time::{Duration, Instant};

/// Waits (on the database's own wake-ups, with a deadline) until `cond`.
fn until(db: &honker::Database, what: &str, mut cond: impl FnMut() -> bool) {
    let w = honker_core::wake::watcher(db.core());
    let end = Instant::now() + Duration::from_secs(30);
    let mut g = w.generation();
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        g = w.wait(g, Duration::from_millis(20)).unwrap();
    }
}

#[test]
fn a_held_lock_outlives_its_ttl_and_reports_its_loss() {
    let t = TempDb::new();
    let db = t.open();
    let lock = db.try_lock("m", "me", 1).unwrap().unwrap();
    let first = db.lock_holder("m").unwrap().unwrap().expires_at_ms;
    until(&db, "renewals past the TTL", || {
        db.lock_holder("m")
            .unwrap()
            .is_some_and(|h| h.expires_at_ms > first + 1_000)
    });
    lock.check().unwrap();
    assert!(lock.release().unwrap());
    assert!(db.lock_holder("m").unwrap().is_none());

    let lock = db.try_lock("m", "me", 1).unwrap().unwrap();
    // Someone else holds it now (as after a stall past the TTL).
    db.with_conn(|c| {
        c.execute(
            "UPDATE _honker_locks SET token = token + 1000, owner = 'thief' WHERE name = 'm'",
            [],
        )
    })
    .unwrap()
    .unwrap();
    until(&db, "the keeper noticing", || lock.check().is_err());
    assert_eq!(lock.check().unwrap_err().code(), "lock_lost");
    assert!(!lock.release().unwrap(), "nothing of ours to release");
    assert_eq!(db.lock_holder("m").unwrap().unwrap().owner, "thief");
}
