//! Runs the language-neutral scenario files `tests/vectors/*.json` (see
//! tests/README.md) through the `honker` crate's public API, each on a fresh
//! temporary database. The Python and SQL runners in tests/runners run the
//! same files.
//!
//! `cron_next` uses `honker::cron::next_fire` (the crate re-exports
//! honker-core's cron module as `honker::cron`). A forged lease (one no
//! claim returned) cannot be expressed with the crate's `Job` handles: such
//! steps print a SKIP line and are counted, never passed silently.

use honker::{Database, Job, Lock};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

type Lease = (i64, String, u32);

const OPS: &[&str] = &[
    "enqueue",
    "claim",
    "ack",
    "release",
    "retry",
    "fail",
    "dead_jobs",
    "requeue_dead",
    "get_job_state",
    "cancel",
    "purge",
    "pause",
    "resume",
    "set_max_in_flight",
    "set_rate_limit",
    "queues",
    "streams",
    "list_jobs",
    "requeue_dead_all",
    "cancel_many",
    "queue_controls",
    "set_retention",
    "prune",
    "set_events",
    "events",
    "rate_limit",
    "cron_next",
    "publish",
    "read_since",
    "save_offset",
    "get_offset",
    "lock_acquire",
    "lock_release",
    "ack_batch",
    "schedule_add",
    "schedule_tick",
    "schedule_error",
    "execute",
];

/// Why a step did not pass.
enum Outcome {
    Skip(String),
    Mismatch(String),
    Vector(String),
}

/// An error the binding returned: its engine code and text.
struct OpError {
    code: &'static str,
    message: String,
}

impl From<honker::Error> for OpError {
    fn from(e: honker::Error) -> OpError {
        OpError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

fn mismatch(s: impl Into<String>) -> Outcome {
    Outcome::Mismatch(s.into())
}
fn vector(s: impl Into<String>) -> Outcome {
    Outcome::Vector(s.into())
}

struct Runner {
    db: Database,
    /// The schema this file runs in, on PostgreSQL.
    schema: Option<String>,
    labels: HashMap<String, i64>,
    job_labels: HashMap<i64, String>,
    leases: HashSet<Lease>,
    jobs: HashMap<Lease, Job>,
    locks: HashMap<i64, Lock>,
}

fn arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Outcome> {
    args.get(name)
        .ok_or_else(|| vector(format!("missing argument {name:?}")))
}
fn arg_str<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, Outcome> {
    arg(args, name)?
        .as_str()
        .ok_or_else(|| vector(format!("argument {name:?} is not a string")))
}
fn arg_i64(args: &Map<String, Value>, name: &str) -> Result<i64, Outcome> {
    arg(args, name)?
        .as_i64()
        .ok_or_else(|| vector(format!("argument {name:?} is not an integer")))
}
fn arg_f64(args: &Map<String, Value>, name: &str) -> Result<f64, Outcome> {
    arg(args, name)?
        .as_f64()
        .ok_or_else(|| vector(format!("argument {name:?} is not a number")))
}
fn arg_u64(args: &Map<String, Value>, name: &str) -> Result<u64, Outcome> {
    arg(args, name)?
        .as_u64()
        .ok_or_else(|| vector(format!("argument {name:?} is not a non-negative integer")))
}

/// Compares the fields `expect` names against `got`.
fn subset(expect: &Value, got: &Value, what: &str) -> Result<(), Outcome> {
    let expect = expect
        .as_object()
        .ok_or_else(|| vector(format!("expected an object for {what}")))?;
    for (k, v) in expect {
        let g = got
            .get(k)
            .ok_or_else(|| vector(format!("{what} has no field {k:?}")))?;
        if g != v {
            return Err(mismatch(format!("{what}.{k}: expected {v}, got {g}")));
        }
    }
    Ok(())
}

fn is_error_expectation(expect: Option<&Value>) -> Option<&str> {
    let obj = expect?.as_object()?;
    if obj.len() == 1 {
        obj.get("error")?.as_str()
    } else {
        None
    }
}

#[path = "vectors/runner.rs"]
mod runner;

fn vector_files() -> Vec<PathBuf> {
    // HONKER_VECTORS names another directory (to try edited copies).
    let dir = std::env::var_os("HONKER_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn vectors() {
    let files = vector_files();
    assert!(!files.is_empty(), "no vector files found");
    let (mut failed, mut wholly_skipped, mut steps_run, mut skips) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let scenario: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"));
        let steps = scenario["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no steps"));
        let dir = tempfile::tempdir().unwrap();
        // With a PostgreSQL URL in HONKER_VECTORS_POSTGRES, every file runs
        // on PostgreSQL, in a schema of its own (dropped after).
        let mut runner = match std::env::var("HONKER_VECTORS_POSTGRES") {
            Ok(base) => {
                let schema = format!(
                    "v_{}_{}",
                    std::process::id(),
                    name.trim_end_matches(".json")
                );
                let sep = if base.contains('?') { '&' } else { '?' };
                let mut r = Runner::new(Path::new(&format!("{base}{sep}schema={schema}")));
                r.schema = Some(schema);
                r
            }
            Err(_) => Runner::new(&dir.path().join("vectors.db")),
        };
        let (mut ran, mut skipped) = (0, 0);
        let mut error = None;
        for (i, step) in steps.iter().enumerate() {
            let op = step["op"].as_str().unwrap_or("?");
            match runner.step(step) {
                Ok(()) => ran += 1,
                Err(Outcome::Skip(why)) => {
                    skipped += 1;
                    println!("SKIP {name} step {i} {op}: {why}");
                }
                Err(Outcome::Mismatch(m)) => {
                    error = Some(format!("step {i} {op} {}: mismatch: {m}", step["args"]));
                    break;
                }
                Err(Outcome::Vector(m)) => {
                    error = Some(format!("step {i} {op} {}: vector error: {m}", step["args"]));
                    break;
                }
            }
        }
        if let Some(schema) = &runner.schema {
            runner
                .db
                .core()
                .by(honker_core::Caller::this_thread())
                .execute(&format!("DROP SCHEMA {schema} CASCADE"), vec![])
                .unwrap();
        }
        runner.db.close().unwrap();
        steps_run += ran;
        skips += skipped;
        if let Some(e) = error {
            failed += 1;
            println!("FAIL {name}: {e}");
            failures.push(format!("{name}: {e}"));
        } else if ran == 0 {
            wholly_skipped += 1;
            println!("skip {name} (no step run, {skipped} skipped)");
        } else if skipped > 0 {
            println!("ok   {name} ({ran} steps, {skipped} skipped)");
        } else {
            println!("ok   {name} ({ran} steps)");
        }
    }
    let passed = files.len() - failed - wholly_skipped;
    println!(
        "rust: {} files, {passed} passed, {failed} failed, {wholly_skipped} wholly skipped; \
         {steps_run} steps run, {skips} skipped",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "vector failures:\n{}",
        failures.join("\n")
    );
}
