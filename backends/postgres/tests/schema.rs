//! Against a real server (`make pg-test` starts a private cluster and sets
//! HONKER_PG_URL): migrations, the pool, errors.

mod common;

use common::{url, Schema};
use honker_postgres::{migrate, version, Pool, PoolOptions, SCHEMA_VERSION};
use std::time::Duration;

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn migrate_creates_the_schema_once_and_records_it() {
    let s = Schema::new("once");
    let mut c = s.pool.get().unwrap();
    assert_eq!(version(&mut c, &s.name).unwrap(), 0);
    assert_eq!(migrate(&mut c, &s.name).unwrap(), SCHEMA_VERSION);
    assert_eq!(
        migrate(&mut c, &s.name).unwrap(),
        SCHEMA_VERSION,
        "idempotent"
    );
    assert_eq!(version(&mut c, &s.name).unwrap(), SCHEMA_VERSION);
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&s.name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in [
        "completed",
        "dead",
        "live",
        "locks",
        "meta",
        "notifications",
        "queues",
        "rate_limits",
        "results",
        "schedules",
        "stream",
        "stream_config",
        "stream_heads",
        "stream_offsets",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} missing: {tables:?}");
    }
    // The queue table's autovacuum settings came with it.
    let opts: Vec<String> = c
        .query_one(
            "SELECT reloptions::text[] FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = 'live'",
            &[&s.name],
        )
        .unwrap()
        .get(0);
    assert!(
        opts.iter()
            .any(|o| o == "autovacuum_vacuum_scale_factor=0.02"),
        "{opts:?}"
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn processes_migrating_at_once_take_turns() {
    let s = Schema::new("race");
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let pool = Pool::new(&url(), PoolOptions::default()).unwrap();
                let name = s.name.clone();
                scope.spawn(move || {
                    let mut c = pool.get().unwrap();
                    migrate(&mut c, &name)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap(), SCHEMA_VERSION);
    }
    let mut c = s.pool.get().unwrap();
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {}.meta", s.name), &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn a_newer_schema_is_refused_and_bad_names_are_named() {
    let s = Schema::new("newer");
    let mut c = s.pool.get().unwrap();
    migrate(&mut c, &s.name).unwrap();
    c.batch_execute(&format!(
        "UPDATE {}.meta SET value = 99 WHERE key = 'schema_version'",
        s.name
    ))
    .unwrap();
    assert_eq!(
        migrate(&mut c, &s.name).unwrap_err().code(),
        "schema_too_new"
    );
    for bad in ["", "Honker", "a-b", "x; DROP TABLE y", "1abc"] {
        assert_eq!(
            migrate(&mut c, bad).unwrap_err().code(),
            "invalid_argument",
            "{bad:?}"
        );
    }
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn server_errors_carry_their_sqlstate() {
    let pool = Pool::new(&url(), PoolOptions::default()).unwrap();
    let mut c = pool.get().unwrap();
    let e = honker_postgres::error(c.batch_execute("SELEC 1").unwrap_err());
    assert_eq!(e.code(), "postgres");
    assert!(e.to_string().starts_with("postgres [42601]"), "{e}");
    let nowhere = Pool::new(
        "postgresql://postgres@%2Fnonexistent%2Fdir:1/postgres",
        PoolOptions::default(),
    )
    .unwrap();
    let e = nowhere.get().err().expect("no server there");
    assert_eq!(e.code(), "postgres");
    assert!(e.to_string().starts_with("postgres [connection]"), "{e}");
    assert_eq!(
        Pool::new("not a url at all ::", PoolOptions::default())
            .err()
            .map(|e| e.code()),
        Some("cannot_open")
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn the_pool_keeps_few_connections_and_waits_for_one() {
    let pool = Pool::new(
        &url(),
        PoolOptions {
            max_size: 1,
            wait: Duration::from_millis(200),
        },
    )
    .unwrap();
    let first = pool.get().unwrap();
    let pid: i32 = {
        let mut c = first;
        let pid = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        let e = pool.get().err().expect("the only connection is taken");
        assert_eq!(e.code(), "busy");
        pid
    };
    // Given back when dropped: the same connection again.
    let mut again = pool.get().unwrap();
    let pid2: i32 = again
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert_eq!(pid, pid2);
    assert_eq!(pool.open_connections(), 1);
    // One left inside a transaction is rolled back before reuse.
    again
        .batch_execute("BEGIN; CREATE TEMP TABLE t (x int)")
        .unwrap();
    drop(again);
    let mut c = pool.get().unwrap();
    assert!(c.batch_execute("SELECT * FROM t").is_err(), "rolled back");
}
