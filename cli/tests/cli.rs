//! The `honker` command as a process, against a file with known jobs.

use honker::{Database, EnqueueOpts, JobState, QueueOpts};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn honker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_honker"))
        .args(args)
        .output()
        .expect("the honker binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = honker(args);
    assert!(
        out.status.success(),
        "honker {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The exit status of `honker args`.
fn code(args: &[&str]) -> Option<i32> {
    honker(args).status.code()
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).expect("--json prints JSON")
}

/// A file with: emails (two ready tasks, one dead), idle (paused, empty).
fn fixture(dir: &Path) -> (String, Vec<i64>) {
    let path = dir.join("app.db");
    let db = Database::open(&path).unwrap();
    let q = db.queue("emails", QueueOpts::default());
    let a = q
        .enqueue_task("send", &("a@example.com",), EnqueueOpts::default())
        .unwrap();
    let b = q
        .enqueue_task("send", &("b@example.com",), EnqueueOpts::default())
        .unwrap();
    let doomed = q
        .enqueue_task(
            "send",
            &("bad",),
            EnqueueOpts {
                max_attempts: Some(1),
                priority: 9,
                ..EnqueueOpts::default()
            },
        )
        .unwrap();
    let job = q.claim_one("w").unwrap().unwrap();
    assert_eq!(job.id, doomed);
    assert!(job.fail("smtp said no").unwrap());
    db.queue("idle", QueueOpts::default()).pause().unwrap();
    db.scheduler()
        .add(honker::ScheduledTask {
            name: "nightly".into(),
            queue: "emails".into(),
            cron: "0 3 * * *".into(),
            payload: serde_json::json!({"task": "digest"}),
            priority: 0,
            expires_s: None,
        })
        .unwrap();
    let orders = db.stream("orders");
    let first = orders.publish(&serde_json::json!({"n": 1})).unwrap();
    orders.publish(&serde_json::json!({"n": 2})).unwrap();
    orders.publish(&serde_json::json!({"n": 3})).unwrap();
    assert!(orders.save_offset("billing", first).unwrap());
    (path.to_str().unwrap().to_string(), vec![a, b, doomed])
}

#[test]
fn queues_jobs_and_one_job_as_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (db, ids) = fixture(dir.path());

    let table = ok(&["queues", &db]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("QUEUE") && lines[0].contains("DEAD"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("emails") && lines[1].contains(" 2 "),
        "{table}"
    );
    assert!(
        lines[2].starts_with("idle") && lines[2].contains("yes"),
        "{table}"
    );
    let q = json(&["queues", &db]);
    assert_eq!(q[0]["name"], "emails");
    assert_eq!(
        (q[0]["ready"].as_u64(), q[0]["dead"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(q[1]["paused"], true);

    let jobs = json(&["jobs", &db, "--queue", "emails"]);
    let got: Vec<i64> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [ids[2], ids[1], ids[0]], "newest first");
    assert_eq!(jobs[0]["task"], "send");
    let dead = json(&["jobs", &db, "--state", "dead"]);
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["last_error"], "smtp said no");
    let page = json(&["jobs", &db, "--limit", "1", "--before", &ids[2].to_string()]);
    assert_eq!(page[0]["id"].as_i64(), Some(ids[1]));
    assert!(ok(&["jobs", &db, "--task", "nothing"]).contains("no jobs"));

    let one = ok(&["job", &db, &ids[2].to_string()]);
    assert!(
        one.contains("smtp said no") && one.contains("dead") && one.contains("bad"),
        "{one}"
    );
    assert_eq!(json(&["job", &db, &ids[0].to_string()])["state"], "ready");
    assert_eq!(
        json(&["dead", &db, "emails"])[0]["id"].as_i64(),
        Some(ids[2])
    );

    let st = json(&["streams", &db]);
    assert_eq!(st[0]["name"], "orders");
    assert_eq!(st[0]["consumers"]["billing"]["lag"], 2, "two events behind");
    let t = ok(&["streams", &db]);
    assert!(t.contains("billing") && t.contains("LAG"), "{t}");

    let s = json(&["schedules", &db]);
    assert_eq!(
        (s[0]["name"].as_str(), s[0]["queue"].as_str()),
        (Some("nightly"), Some("emails"))
    );
    assert!(s[0]["next_fire_at_ms"].as_i64().unwrap() > 0);
    let t = ok(&["schedules", &db]);
    assert!(t.contains("nightly") && t.contains("0 3 * * *"), "{t}");
}

#[test]
fn actions_change_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, ids) = fixture(dir.path());
    let file = Database::open(&db).unwrap();
    let emails = file.queue("emails", QueueOpts::default());

    assert_eq!(json(&["requeue", &db, &ids[2].to_string()])["requeued"], 1);
    assert_eq!(
        emails.get_job(ids[2]).unwrap().unwrap().state,
        JobState::Ready
    );

    assert!(ok(&["pause", &db, "emails"]).contains("paused"));
    assert!(emails.controls().unwrap().paused);
    assert_eq!(json(&["pause", &db, "emails"])["changed"], false);
    assert!(
        emails.claim_one("w").unwrap().is_none(),
        "paused for every handle"
    );
    assert!(ok(&["resume", &db, "emails"]).contains("resumed"));

    let job = emails.claim_one("w").unwrap().unwrap();
    assert!(job.fail("again").unwrap());
    assert_eq!(
        json(&["requeue", &db, "--all", "--queue", "emails", "--reason", "failed"])["requeued"],
        1
    );

    let job = emails.claim_one("w").unwrap().unwrap();
    let gone = job.id;
    assert!(job.fail("for good").unwrap());
    assert_eq!(
        json(&["discard", &db, &gone.to_string(), &ids[0].to_string()])["discarded"],
        1,
        "a live job is not a dead one"
    );
    assert!(emails.get_job(gone).unwrap().is_none());
    let back = Database::open(&db).unwrap();
    back.queue("emails", QueueOpts::default())
        .enqueue(&"again", EnqueueOpts::default())
        .unwrap();

    assert_eq!(
        json(&["cancel", &db, &ids[0].to_string(), "999999"])["cancelled"],
        1
    );
    assert!(emails.get_job(ids[0]).unwrap().is_none());
    assert_eq!(json(&["purge", &db, "emails"])["purged"], 2);
    assert_eq!(emails.stats().unwrap().ready, 0);
}

#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_honker"))
        .args(["job", &db, "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.code().is_none_or(|c| c == 0), "{status}");
}

#[test]
fn exit_codes_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture(dir.path());

    assert_eq!(code(&["job", &db, "424242"]), Some(3), "no such job");
    assert_eq!(code(&["requeue", &db, "424242"]), Some(3), "not a dead job");
    let missing = dir.path().join("nope.db");
    let missing = missing.to_str().unwrap();
    assert_eq!(code(&["queues", missing]), Some(3), "no such file");
    assert!(
        !Path::new(missing).exists(),
        "a typo does not create a database"
    );
    assert_eq!(code(&["jobs", &db, "--state", "finished"]), Some(1));
    let out = honker(&["jobs", &db, "--state", "finished"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_argument"));
    assert_eq!(code(&["pause", &db, ""]), Some(1), "an empty queue name");
    assert_eq!(code(&["frobnicate", &db]), Some(2), "a usage error");
    assert_eq!(
        code(&["requeue", &db, "--all"]),
        Some(2),
        "--all needs --queue"
    );
    assert_eq!(code(&["requeue", &db]), Some(1), "nothing to requeue");
}

/// Starts `honker args` that keeps running (a follower); its output lines
/// arrive on the receiver as it prints them.
fn follow(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_honker"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn tail_prints_a_stream_and_follows_it_woken_by_commits() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture(dir.path());

    let all = ok(&["tail", &db, "orders", "--after", "0", "--once"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 3, "{all}");
    assert!(lines[0].ends_with(r#"{"n":1}"#), "{all}");

    let (mut child, rx) = follow(&["tail", &db, "orders", "--json"]);
    // Published until one arrives: the first may land before the tail has
    // read its starting offset (then it is not new to it, and not printed).
    let file = Database::open(&db).unwrap();
    let orders = file.stream("orders");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        orders.publish(&serde_json::json!({"n": "new"})).unwrap();
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => break line,
            Err(_) => assert!(std::time::Instant::now() < deadline, "tail printed nothing"),
        }
    };
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["payload"]["n"], "new");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn stats_totals_and_watch_prints_again_after_a_commit() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture(dir.path());
    let once = json(&["stats", &db]);
    assert_eq!(
        (once["ready"].as_u64(), once["dead"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(ok(&["stats", &db]).contains("total: 2 ready, 0 scheduled, 0 processing, 1 dead"));

    let (mut child, rx) = follow(&["stats", &db, "--watch", "--json"]);
    let first: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(first["ready"], 2);
    let file = Database::open(&db).unwrap();
    file.queue("emails", QueueOpts::default())
        .enqueue(&1, EnqueueOpts::default())
        .unwrap();
    let next: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(next["ready"], 3, "printed again after the commit");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn completed_jobs_a_queue_keeps_are_listed_with_their_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = Database::open(&path).unwrap();
    let q = db.queue("reports", QueueOpts::default());
    q.set_retention(honker::QueueRetention {
        completed: Some(honker::Retention {
            max_age: None,
            max_count: Some(100),
        }),
        dead: None,
    })
    .unwrap();
    let id = q
        .enqueue_task("render", &(7,), EnqueueOpts::default())
        .unwrap();
    let job = q.claim_one("w").unwrap().unwrap();
    db.save_result(id, r#"{"pages":12}"#, 3600).unwrap();
    assert!(job.ack().unwrap());
    let db = path.to_str().unwrap();

    let done = json(&["jobs", db, "--state", "completed"]);
    assert_eq!(done[0]["id"].as_i64(), Some(id));
    assert_eq!(done[0]["state"], "completed");
    assert_eq!(done[0]["result"]["pages"], 12);
    assert!(done[0]["completed_at_ms"].as_i64() >= done[0]["started_at_ms"].as_i64());
    let one = ok(&["job", db, &id.to_string()]);
    assert!(
        one.contains("completed at") && one.contains("\"pages\": 12"),
        "{one}"
    );
    let queues = ok(&["queues", db]);
    assert!(
        queues.lines().next().unwrap().contains("COMPLETED"),
        "{queues}"
    );
    assert_eq!(json(&["queues", db])[0]["completed"], 1);
    assert_eq!(
        json(&["queues", db])[0]["retention"]["completed"]["max_count"],
        100
    );
    assert!(ok(&["stats", db]).contains("1 completed"));
}

#[test]
fn events_prints_lifecycle_events_and_follows_them() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let file = Database::open(&path).unwrap();
    let mail = file.queue("mail", QueueOpts::default());
    mail.set_events(true).unwrap();
    let other = file.queue("other", QueueOpts::default());
    other.set_events(true).unwrap();
    let id = mail
        .enqueue_task("send", &("ada",), EnqueueOpts::default())
        .unwrap();
    let job = mail.claim_one("w1").unwrap().unwrap();
    assert!(job.retry(None, "smtp down").unwrap());
    other.enqueue(&1, EnqueueOpts::default()).unwrap();
    let db = path.to_str().unwrap();

    let all = ok(&["events", db, "--after", "0", "--once", "--queue", "mail"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    let cols: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(
        (cols[2], cols[3], cols[4]),
        ("mail", id.to_string().as_str(), "enqueued")
    );
    assert!(
        lines[1].contains("started") && lines[1].contains("attempt 1 by w1"),
        "{all}"
    );
    assert!(
        lines[2].contains("failed") && lines[2].contains("error: smtp down"),
        "{all}"
    );
    assert!(
        lines[3].contains("retried") && lines[3].contains("due "),
        "{all}"
    );
    let json_lines = ok(&["events", db, "--after", "0", "--once", "--json"]);
    let kinds: Vec<(String, String)> = json_lines
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert!(v["offset"].as_i64().unwrap() > 0);
            (
                v["queue"].as_str().unwrap().into(),
                v["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 5, "every queue's: {json_lines}");
    assert_eq!(kinds[4], ("other".into(), "enqueued".into()));

    // Following: woken by the commit that publishes an event.
    let (mut child, rx) = follow(&["events", db, "--queue", "other"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        other.enqueue(&2, EnqueueOpts::default()).unwrap();
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => break line,
            Err(_) => assert!(
                std::time::Instant::now() < deadline,
                "events printed nothing"
            ),
        }
    };
    assert!(
        line.contains("\tother\t") && line.contains("enqueued"),
        "{line}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn serve_refuses_a_token_it_could_not_send_and_an_open_address_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture(dir.path());
    for bad in ["", "a;b", "two words", "x\ny"] {
        assert_eq!(
            code(&["serve", &db, "--listen", "127.0.0.1:0", "--token", bad]),
            Some(2),
            "{bad:?}"
        );
    }
    assert_eq!(
        code(&["serve", &db, "--listen", "0.0.0.0:0"]),
        Some(2),
        "beyond this machine without a token"
    );
    assert_eq!(code(&["serve", &db, "--listen", "nowhere"]), Some(2));
}

/// Copies the fixture's file into `to` and checks what arrived.
fn copy_and_check(dir: &Path, to: &str) {
    let (from, _) = fixture(dir);
    let src = Database::open(&from).unwrap();
    let delayed = src
        .queue("emails", QueueOpts::default())
        .enqueue_task(
            "send",
            &("later@example.com",),
            EnqueueOpts {
                delay: Some(std::time::Duration::from_secs(3600)),
                key: Some("later".into()),
                ..EnqueueOpts::default()
            },
        )
        .unwrap();
    let got = json(&["copy", &from, to]);
    assert_eq!(got["jobs"], 3, "{got}");
    assert_eq!(got["dead_left"], 1);
    assert_eq!(got["schedules"], 1);
    let dst = Database::open(to).unwrap();
    let q = dst.queues().unwrap();
    let emails = q.iter().find(|q| q.name == "emails").unwrap();
    assert_eq!((emails.stats.ready, emails.stats.scheduled), (2, 1));
    let idle = q.iter().find(|q| q.name == "idle").unwrap();
    assert!(idle.controls.paused, "controls are copied");
    let later = dst
        .jobs(&honker::JobFilter {
            key: Some("later".into()),
            ..Default::default()
        })
        .unwrap();
    let src_later = src
        .queue("emails", QueueOpts::default())
        .get_job(delayed)
        .unwrap()
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        later[0].run_at_ms, src_later.run_at_ms,
        "run times are kept"
    );
    assert_eq!(later[0].payload, src_later.payload);
    let nightly = dst.scheduler().list().unwrap();
    assert_eq!(nightly[0].name, "nightly");
    // The source is unchanged; the copies are claimable, oldest first.
    assert_eq!(json(&["queues", &from])[0]["ready"], 2);
    let first = dst
        .queue("emails", QueueOpts::default())
        .claim_one("w")
        .unwrap()
        .unwrap();
    assert!(first.payload.contains("a@example.com"), "{}", first.payload);
}

#[test]
fn copy_moves_waiting_jobs_controls_and_schedules_to_another_database() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy.db");
    copy_and_check(dir.path(), to.to_str().unwrap());
}

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn copy_moves_a_sqlite_files_queues_to_postgresql() {
    let url = std::env::var("HONKER_PG_URL").expect("HONKER_PG_URL");
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("cli_copy_{}", std::process::id());
    let to = format!("{url}?schema={schema}");
    copy_and_check(dir.path(), &to);
    let db = Database::open(&to).unwrap();
    let tx = db.transaction().unwrap();
    tx.execute_batch(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    tx.commit().unwrap();
}
