//! honker on PostgreSQL through the handle every binding uses: opened by
//! URL, woken by LISTEN/NOTIFY, transactions, leases by the server's
//! clock, and claimers in several processes.

mod common;

use common::{url, Schema};
use honker_core::wake::wait;
use honker_core::{Caller, Db, EnqueueOpts, OpenOptions, QueueOpts};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn open(schema: &Schema) -> Db {
    honker_postgres::open(
        &format!("{}?schema={}", url(), schema.name),
        OpenOptions::default(),
    )
    .unwrap()
}

fn raw() -> postgres::Client {
    postgres::Client::connect(&url(), postgres::NoTls).unwrap()
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn a_commit_from_another_client_wakes_a_waiting_claimer() {
    let schema = Schema::new("wake");
    let db = open(&schema);
    let waiter = {
        let db = db.clone();
        std::thread::spawn(move || {
            wait::claim_next(
                &db,
                Caller::this_thread(),
                "emails",
                "w1",
                &QueueOpts::default(),
                Some(Duration::from_secs(20)),
                &AtomicBool::new(false),
            )
        })
    };
    // Any client enqueues by calling the function (as psycopg would).
    let mut c = raw();
    let id: i64 = c
        .query_one(
            &format!(
                "SELECT {}.enqueue('emails', '{{\"to\":\"a\"}}')",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let job = waiter.join().unwrap().unwrap().expect("woken with the job");
    assert_eq!(job.id, id);
    assert_eq!(job.payload, r#"{"to":"a"}"#);
    db.close().unwrap();
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn a_rolled_back_enqueue_wakes_nobody_and_leaves_nothing() {
    let schema = Schema::new("rollback");
    let db = open(&schema);
    let mut listener = raw();
    listener
        .batch_execute(&format!("LISTEN \"{}_wake\"", schema.name))
        .unwrap();
    let mut c = raw();
    let mut tx = c.transaction().unwrap();
    tx.query_one(&format!("SELECT {}.enqueue('q', '1')", schema.name), &[])
        .unwrap();
    tx.rollback().unwrap();
    // Then one that commits: notifications arrive in commit order, so the
    // first to arrive is this one's, and it is the only one.
    let id: i64 = c
        .query_one(&format!("SELECT {}.enqueue('q', '2')", schema.name), &[])
        .unwrap()
        .get(0);
    use postgres::fallible_iterator::FallibleIterator;
    let mut n = listener.notifications();
    let first = n.timeout_iter(Duration::from_secs(10)).next().unwrap();
    assert!(first.is_some(), "the commit notified");
    assert_eq!(n.len(), 0, "the rollback notified nobody");
    let ops = db.by(Caller::this_thread());
    let stats = ops.queue_stats("q").unwrap();
    assert_eq!(
        (stats.ready, stats.scheduled),
        (1, 0),
        "only the committed job"
    );
    assert_eq!(ops.get_job(id).unwrap().unwrap().payload, "2");
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn transactions_commit_or_roll_back_with_the_applications_writes() {
    let schema = Schema::new("tx");
    let db = open(&schema);
    let me = Caller::this_thread();
    db.by(me)
        .execute(
            &format!("CREATE TABLE {}.orders (id bigint)", schema.name),
            vec![],
        )
        .unwrap();
    let tx = db.begin(me).unwrap();
    db.in_tx(&tx)
        .execute(
            &format!("INSERT INTO {}.orders VALUES (1)", schema.name),
            vec![],
        )
        .unwrap();
    let id = db
        .in_tx(&tx)
        .enqueue("ship", "1", &EnqueueOpts::default(), 3)
        .unwrap();
    // The owner's call outside its transaction is refused, as on SQLite.
    assert_eq!(
        db.by(me).queue_stats("ship").unwrap_err().code(),
        "transaction_open"
    );
    db.rollback(tx).unwrap();
    assert!(db.by(me).get_job(id).unwrap().is_none());
    let tx = db.begin(me).unwrap();
    let id = db
        .in_tx(&tx)
        .enqueue("ship", "2", &EnqueueOpts::default(), 3)
        .unwrap();
    db.commit(tx).unwrap();
    assert!(db.by(me).get_job(id).unwrap().is_some());

    // A statement that fails aborts a PostgreSQL transaction: its commit
    // says so and commits nothing.
    let tx = db.begin(me).unwrap();
    db.in_tx(&tx)
        .enqueue("ship", "3", &EnqueueOpts::default(), 3)
        .unwrap();
    assert!(db.in_tx(&tx).execute("SELECT nope", vec![]).is_err());
    let e = db.commit(tx).unwrap_err();
    assert_eq!(e.code(), "postgres");
    assert_eq!(db.by(me).queue_stats("ship").unwrap().ready, 1);
    // SQLite's raw connection is refused with a clear error.
    let e = db
        .with_conn(honker_core::At::Caller(me), |_, _| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("0A000"), "{e}");
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn a_lost_lease_is_reclaimed_by_the_servers_clock() {
    let schema = Schema::new("lease");
    let me = Caller::this_thread();
    let crashed = open(&schema);
    let id = crashed
        .by(me)
        .enqueue("q", "1", &EnqueueOpts::default(), 3)
        .unwrap();
    let server_now = |c: &mut postgres::Client| -> i64 {
        c.query_one(&format!("SELECT {}.now_ms()", schema.name), &[])
            .unwrap()
            .get(0)
    };
    let mut c = raw();
    let before = server_now(&mut c);
    let jobs = crashed
        .by(me)
        .claim("q", "crashed", 1, Duration::from_millis(800))
        .unwrap();
    let after = server_now(&mut c);
    let lease = jobs[0].lease_until_ms.unwrap();
    assert!(
        (before + 800..=after + 800).contains(&lease),
        "the lease ends by the server's clock: {before} {lease} {after}"
    );
    // The worker dies holding it; another takes it once the lease ends.
    crashed.close().unwrap();
    let other = open(&schema);
    let started = Instant::now();
    let job = wait::claim_next(
        &other,
        me,
        "q",
        "w2",
        &QueueOpts::default(),
        Some(Duration::from_secs(20)),
        &AtomicBool::new(false),
    )
    .unwrap()
    .expect("reclaimed");
    assert_eq!((job.id, job.attempts), (id, 2));
    assert!(job.last_error.unwrap().contains("lease expired"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Claims until the queue stays empty, from 4 handles (4 connections) in
/// this process; prints the ids claimed.
#[test]
#[ignore = "run by sixteen_claimers_in_four_processes_never_take_a_job_twice"]
fn claimer_process() {
    let Ok(name) = std::env::var("HONKER_PG_CHILD_SCHEMA") else {
        return;
    };
    let target = format!("{}?schema={name}", url());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let target = target.clone();
            std::thread::spawn(move || {
                let db = honker_postgres::open(&target, OpenOptions::default()).unwrap();
                let ops = db.by(Caller::this_thread());
                let worker = format!("p{}-t{t}", std::process::id());
                let mut ids = Vec::new();
                loop {
                    let jobs = ops.claim("q", &worker, 4, Duration::from_secs(60)).unwrap();
                    if jobs.is_empty() {
                        return ids;
                    }
                    for j in jobs {
                        assert!(ops.ack(j.lease()).unwrap());
                        ids.push(j.id);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        for id in t.join().unwrap() {
            println!("claimed {id}");
        }
    }
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn sixteen_claimers_in_four_processes_never_take_a_job_twice() {
    let schema = Schema::new("procs");
    let db = open(&schema);
    let payloads: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let mut all = db
        .by(Caller::this_thread())
        .enqueue_many("q", &payloads, &EnqueueOpts::default(), 3)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "claimer_process", "--ignored", "--nocapture"])
                .env("HONKER_PG_CHILD_SCHEMA", &schema.name)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut claimed = Vec::new();
    let mut busy = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let mine: Vec<i64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("claimed "))
            .map(|s| s.parse().unwrap())
            .collect();
        busy += usize::from(!mine.is_empty());
        claimed.extend(mine);
    }
    claimed.sort_unstable();
    all.sort_unstable();
    assert_eq!(claimed, all, "every job claimed exactly once");
    assert!(
        busy >= 2,
        "the processes shared the work ({busy} claimed any)"
    );
}
