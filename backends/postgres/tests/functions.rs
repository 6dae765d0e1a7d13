//! honker's operations as functions in the schema (`{schema}.enqueue`,
//! `claim`, `ack`), called as any client would, against a real server.

mod common;

use common::Schema;
use honker_postgres::migrate;

const T: i64 = 1_700_000_000_000;

fn ids(rows: &[postgres::Row]) -> Vec<i64> {
    let mut v: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| (-r.get::<_, i64>("priority"), r.get("run_at"), r.get("id")))
        .collect();
    v.sort();
    v.into_iter().map(|x| x.2).collect()
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn enqueue_claim_ack_with_leases_priorities_and_keys() {
    let s = Schema::new("fn");
    let mut c = s.pool.get().unwrap();
    migrate(&mut c, &s.name).unwrap();
    let n = &s.name;
    let enq = |c: &mut postgres::Client, payload: &str, opts: &str, now: i64| -> i64 {
        c.query_one(
            &format!("SELECT {n}.enqueue('q', $1, $2::text::jsonb, $3)"),
            &[&payload, &opts, &now],
        )
        .unwrap()
        .get(0)
    };
    let a = enq(&mut c, r#"{"n":1}"#, "{}", T);
    let b = enq(&mut c, r#"{"n":2}"#, r#"{"priority": 5}"#, T);
    let later = enq(&mut c, "3", r#"{"delay_s": 60}"#, T);
    let keyed = enq(&mut c, "4", r#"{"key": "k1"}"#, T);
    assert_eq!(
        enq(&mut c, "5", r#"{"key": "k1"}"#, T),
        keyed,
        "the key names one live job"
    );
    let state = |c: &mut postgres::Client, id: i64| -> Option<String> {
        c.query_opt(&format!("SELECT state FROM {n}.live WHERE id = $1"), &[&id])
            .unwrap()
            .map(|r| r.get(0))
    };
    assert_eq!(state(&mut c, later).as_deref(), Some("scheduled"));

    let claim = |c: &mut postgres::Client, worker: &str, k: i32, now: i64| {
        c.query(
            &format!("SELECT * FROM {n}.claim('q', $1, $2, 30, $3)"),
            &[&worker, &k, &now],
        )
        .unwrap()
    };
    let got = claim(&mut c, "w1", 10, T + 1);
    assert_eq!(
        ids(&got),
        [b, a, keyed],
        "priority, then run_at, then id; the delayed one waits"
    );
    let attempt: i32 = got[0].get("attempts");
    assert_eq!(attempt, 1);
    let ack = |c: &mut postgres::Client, id: i64, worker: &str, attempt: i32, now: i64| -> bool {
        c.query_one(
            &format!("SELECT {n}.ack($1, $2, $3, $4)"),
            &[&id, &worker, &attempt, &now],
        )
        .unwrap()
        .get(0)
    };
    assert!(!ack(&mut c, a, "w2", 1, T + 2), "another worker's lease");
    assert!(!ack(&mut c, a, "w1", 2, T + 2), "another attempt's lease");
    assert!(ack(&mut c, a, "w1", 1, T + 2));
    assert!(!ack(&mut c, a, "w1", 1, T + 2), "acked once");
    assert_eq!(state(&mut c, a), None);

    // The delayed job comes due; an expired lease is taken back.
    let again = claim(&mut c, "w2", 10, T + 60_000);
    assert_eq!(ids(&again), [b, keyed, later], "leases ended at T + 30 s");
    assert!(
        !ack(&mut c, b, "w1", 1, T + 60_001),
        "the old lease is gone"
    );
    let last_error: Option<String> = c
        .query_one(
            &format!("SELECT last_error FROM {n}.live WHERE id = $1"),
            &[&b],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        last_error.as_deref(),
        Some("lease expired (worker w1, attempt 1)")
    );

    // Out of attempts when its lease lapses: dead.
    let one = enq(&mut c, "6", r#"{"max_attempts": 1}"#, T + 60_000);
    assert_eq!(ids(&claim(&mut c, "w3", 1, T + 60_000)), [one]);
    claim(&mut c, "w3", 1, T + 200_000);
    let reason: String = c
        .query_one(
            &format!("SELECT reason FROM {n}.dead WHERE id = $1"),
            &[&one],
        )
        .unwrap()
        .get(0);
    assert_eq!(reason, "lease_expired");
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn concurrent_claimers_never_take_the_same_job() {
    let s = Schema::new("skip");
    let n = s.name.clone();
    {
        let mut c = s.pool.get().unwrap();
        migrate(&mut c, &n).unwrap();
        c.batch_execute(&format!(
            "SELECT {n}.enqueue('q', '1', '{{}}', {T}) FROM generate_series(1, 400)"
        ))
        .unwrap();
    }
    let claimed: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|w| {
                let pool = honker_postgres::Pool::new(&common::url(), Default::default()).unwrap();
                let n = n.clone();
                scope.spawn(move || {
                    let mut c = pool.get().unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let rows = c
                            .query(
                                &format!("SELECT id FROM {n}.claim('q', $1, 7, 30, $2)"),
                                &[&format!("w{w}"), &(T + 1)],
                            )
                            .unwrap();
                        if rows.is_empty() {
                            return mine;
                        }
                        mine.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.concat();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (400, 400),
        "each job claimed once, none missed"
    );
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn bad_arguments_are_named() {
    let s = Schema::new("bad");
    let mut c = s.pool.get().unwrap();
    migrate(&mut c, &s.name).unwrap();
    let n = &s.name;
    for (sql, want) in [
        (
            format!("SELECT {n}.enqueue('', '1')"),
            "invalid argument `queue`",
        ),
        (
            format!("SELECT {n}.enqueue('q', '1', '{{\"delay\": 5}}')"),
            "invalid argument `delay`",
        ),
        (
            format!("SELECT {n}.enqueue('q', '1', '{{\"delay_s\": 1, \"run_at\": 5}}')"),
            "invalid argument `run_at`",
        ),
        (
            format!("SELECT {n}.enqueue('q', '1', '{{\"max_attempts\": 0}}')"),
            "invalid argument `max_attempts`",
        ),
        (
            format!("SELECT * FROM {n}.claim('q', '', 1)"),
            "invalid argument `worker`",
        ),
        (
            format!("SELECT * FROM {n}.claim('q', 'w', 0)"),
            "invalid argument `n`",
        ),
    ] {
        let e = honker_postgres::error(c.batch_execute(&sql).unwrap_err());
        assert!(
            e.to_string().contains("[22023]") && e.to_string().contains(want),
            "{sql}: {e}"
        );
    }
    let e = honker_postgres::error(
        c.batch_execute(&format!("SELECT {n}.enqueue('q', 'not json')"))
            .unwrap_err(),
    );
    assert!(e.to_string().contains("[22P02]"), "{e}");
}

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn retry_fail_release_heartbeat_cancel_are_fenced_by_the_lease() {
    let s = Schema::new("fence");
    let mut c = s.pool.get().unwrap();
    migrate(&mut c, &s.name).unwrap();
    let n = s.name.clone();
    let one = |c: &mut postgres::Client, sql: &str| -> bool {
        c.query_one(&sql.replace("{n}", &n), &[]).unwrap().get(0)
    };
    let id: i64 = c
        .query_one(
            &format!("SELECT {n}.enqueue('q', '1', '{{\"max_attempts\": 2}}', {T})"),
            &[],
        )
        .unwrap()
        .get(0);
    let claim = |c: &mut postgres::Client, now: i64| -> i32 {
        c.query_one(
            &format!("SELECT attempts FROM {n}.claim('q', 'w', 1, 30, {now})"),
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!(claim(&mut c, T), 1);
    assert!(!one(
        &mut c,
        &format!("SELECT {{n}}.heartbeat({id}, 'other', 1, 60, {})", T + 1)
    ));
    assert!(one(
        &mut c,
        &format!("SELECT {{n}}.heartbeat({id}, 'w', 1, 60, {})", T + 1)
    ));
    let lease: i64 = c
        .query_one(
            &format!("SELECT lease_until FROM {n}.live WHERE id = {id}"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(lease, T + 1 + 60_000);
    // Released: ready again, the attempt not counted.
    assert!(one(
        &mut c,
        &format!("SELECT {{n}}.release({id}, 'w', 1, {})", T + 2)
    ));
    assert!(
        !one(
            &mut c,
            &format!("SELECT {{n}}.release({id}, 'w', 1, {})", T + 2)
        ),
        "once"
    );
    assert_eq!(claim(&mut c, T + 3), 1, "the same attempt again");
    // Retried with a delay: scheduled, with its error.
    assert!(!one(
        &mut c,
        &format!("SELECT {{n}}.retry({id}, 'w', 2, 5, 'boom', {})", T + 4)
    ));
    assert!(one(
        &mut c,
        &format!("SELECT {{n}}.retry({id}, 'w', 1, 5, 'boom', {})", T + 4)
    ));
    let (state, run_at, err): (String, i64, String) = c
        .query_one(
            &format!("SELECT state, run_at, last_error FROM {n}.live WHERE id = {id}"),
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(
        (state.as_str(), run_at, err.as_str()),
        ("scheduled", T + 4 + 5_000, "boom")
    );
    // The last attempt's retry dead-letters it.
    assert_eq!(claim(&mut c, T + 10_000), 2);
    assert!(one(
        &mut c,
        &format!(
            "SELECT {{n}}.retry({id}, 'w', 2, NULL, 'again', {})",
            T + 10_001
        )
    ));
    let (reason, last): (String, String) = c
        .query_one(
            &format!("SELECT reason, last_error FROM {n}.dead WHERE id = {id}"),
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((reason.as_str(), last.as_str()), ("max_attempts", "again"));

    // Fail: dead at once; cancel: gone, whatever its state.
    let f: i64 = c
        .query_one(&format!("SELECT {n}.enqueue('q', '2', '{{}}', {T})"), &[])
        .unwrap()
        .get(0);
    assert_eq!(claim(&mut c, T + 20_000), 1);
    assert!(
        !one(
            &mut c,
            &format!("SELECT {{n}}.fail({f}, 'w', 1, 'bad', {})", T + 60_000)
        ),
        "the lease lapsed"
    );
    assert!(one(
        &mut c,
        &format!("SELECT {{n}}.fail({f}, 'w', 1, 'bad', {})", T + 20_001)
    ));
    let reason: String = c
        .query_one(&format!("SELECT reason FROM {n}.dead WHERE id = {f}"), &[])
        .unwrap()
        .get(0);
    assert_eq!(reason, "failed");
    let g: i64 = c
        .query_one(
            &format!("SELECT {n}.enqueue('q', '3', '{{\"delay_s\": 100}}', {T})"),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(one(&mut c, &format!("SELECT {{n}}.cancel({g})")));
    assert!(!one(&mut c, &format!("SELECT {{n}}.cancel({g})")));

    // The default backoff: within the upper half of its step, capped at 1 h.
    for (attempt, lo, hi) in [
        (1, 500, 1_000),
        (3, 2_000, 4_000),
        (40, 1_800_000, 3_600_000),
    ] {
        let ms: i64 = c
            .query_one(&format!("SELECT {n}.backoff_ms({attempt})"), &[])
            .unwrap()
            .get(0);
        assert!((lo..=hi).contains(&ms), "attempt {attempt}: {ms}");
    }
}
