//! `honker`: look at and act on the queues of a honker database file.
//!
//! Human tables by default, `--json` for scripts. Exit codes: 0 done, 1 an
//! error from the database (its code is printed), 2 a usage error, 3 no
//! such job (or no such database file).
//!
//! The command is this library's [`main_from`]: the `honker` binary calls
//! it, and so do the Python and Node packages (`python -m honker ...`,
//! `npx honker ...`), so every way in runs the same code.

use clap::{Parser, Subcommand};
use honker::{
    Database, EnqueueOpts, JobFilter, JobRecord, JobState, QueueOpts, QueueRetention, QueueSummary,
};
use honker_core::json;
use serde_json::{json, Value};
mod serve;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "honker",
    version,
    about = "Look at and act on the queues of a honker database file.",
    after_help = "Exit codes: 0 done, 1 a database error, 2 a usage error, 3 no such job or file."
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every queue with its job counts and controls.
    Queues { db: PathBuf },
    /// Jobs, newest first: live, dead and completed (kept by a queue's
    /// retention).
    Jobs {
        db: PathBuf,
        /// Only this queue's jobs.
        #[arg(long)]
        queue: Option<String>,
        /// Only jobs in this state: ready, scheduled, processing, dead or
        /// completed.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this task.
        #[arg(long)]
        task: Option<String>,
        /// Only the job with this idempotency key.
        #[arg(long)]
        key: Option<String>,
        /// The next page: jobs with an id below this one.
        #[arg(long)]
        before: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One job, whole.
    Job { db: PathBuf, id: i64 },
    /// A queue's dead jobs, newest first.
    Dead {
        db: PathBuf,
        queue: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Puts dead jobs back: the ids given, or with --all every dead job of a
    /// queue (only those dead for --reason, if given).
    Requeue {
        db: PathBuf,
        ids: Vec<i64>,
        /// Every dead job of this queue.
        #[arg(long, requires = "all_queue", conflicts_with = "ids")]
        all: bool,
        /// The queue for --all.
        #[arg(long = "queue", id = "all_queue")]
        queue: Option<String>,
        /// With --all: only jobs dead for this reason (failed, max_attempts,
        /// lease_expired, expired, unknown_task).
        #[arg(long, requires = "all")]
        reason: Option<String>,
    },
    /// Deletes a queue's ready jobs.
    Purge { db: PathBuf, queue: String },
    /// Deletes dead jobs for good (they will not be requeued).
    Discard {
        db: PathBuf,
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Removes live jobs, whatever their state.
    Cancel {
        db: PathBuf,
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Job counts of every queue, with totals; with --watch again after
    /// every commit that changes them (woken, not polled), until
    /// interrupted.
    Stats {
        db: PathBuf,
        #[arg(long)]
        watch: bool,
    },
    /// Every stream with its last offset and each consumer's lag.
    Streams { db: PathBuf },
    /// Prints a stream's events and follows it, woken by each commit (no
    /// polling), until interrupted. Reads only: saves no offset.
    Tail {
        db: PathBuf,
        stream: String,
        /// Start after this offset (default: the last one, so only new
        /// events print; 0 prints the whole stream first).
        #[arg(long)]
        after: Option<i64>,
        /// Print what is there and stop instead of following.
        #[arg(long)]
        once: bool,
    },
    /// Prints the lifecycle events of the queues that publish them
    /// (enqueued, started, completed, failed, retried, dead, released,
    /// cancelled; turned on per queue with `set_events`) and follows them,
    /// woken by each commit, until interrupted. Reads only.
    Events {
        db: PathBuf,
        /// Only this queue's events.
        #[arg(long)]
        queue: Option<String>,
        /// Start after this offset (default: the last one, so only new
        /// events print; 0 prints every event kept first).
        #[arg(long)]
        after: Option<i64>,
        /// Print what is there and stop instead of following.
        #[arg(long)]
        once: bool,
    },
    /// Serves the web dashboard (queues, jobs, dead jobs, schedules,
    /// streams, locks; live, woken by commits) and Prometheus metrics at
    /// /metrics, until interrupted. On 127.0.0.1 and read-only unless told.
    Serve {
        db: PathBuf,
        /// Where to listen (port 0: any free port; the URL is printed).
        #[arg(long, default_value = "127.0.0.1:8484")]
        listen: String,
        /// A secret every request must bring (needed to listen beyond
        /// 127.0.0.1; the printed URL carries it once, then a cookie):
        /// letters, digits and -._~+/= only.
        #[arg(long, env = "HONKER_TOKEN")]
        token: Option<String>,
        /// Allow requeueing, cancelling, pausing and resuming from the page.
        #[arg(long)]
        allow_actions: bool,
    },
    /// Every schedule with its next fire.
    Schedules { db: PathBuf },
    /// Copies what is waiting in one database to another (a SQLite file
    /// to PostgreSQL, say): live jobs (enqueued again with their payload,
    /// priority, run time, remaining attempts, start deadline and key; a
    /// job a worker held becomes ready), queue controls and schedules, in
    /// one transaction on the destination. Stop the workers first. Dead
    /// jobs and stream events stay behind (requeue dead jobs first to move
    /// them). The source is not changed.
    Copy {
        /// The database to copy from (a file, or a postgresql:// URL).
        from: PathBuf,
        /// The database to copy to (created if it is a new file).
        to: PathBuf,
        /// Only these queues (default: every queue).
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
    /// Pauses a queue: no process claims from it until it is resumed.
    Pause { db: PathBuf, queue: String },
    /// Resumes a paused queue; waiting workers wake at once.
    Resume { db: PathBuf, queue: String },
}

/// How a command ended, beyond success.
enum Failure {
    /// A database error: exit 1 (exit 3 for `not_found`).
    Honker(honker::Error),
    /// Something else the user should fix: exit 3.
    Missing(String),
    /// A command line that cannot be run as given: exit 2.
    Usage(String),
}

impl From<honker::Error> for Failure {
    fn from(e: honker::Error) -> Self {
        Failure::Honker(e)
    }
}

/// Runs the command line `args` (the program's name first) and returns
/// the exit status. For a process that is this command (the `honker`
/// binary, `python -m honker`, `npx honker`): it restores the default
/// action of SIGPIPE, so output piped into `head` and the like ends
/// quietly when the reader goes, as other command-line tools do.
pub fn main_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    #[cfg(unix)]
    // SAFETY: restoring the default action of a signal; the process is
    // this command.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; a usage error says
            // why and exits 2.
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let status = match run(&cli) {
        Ok(()) => 0,
        Err(Failure::Honker(e)) => {
            eprintln!("honker: {e} [{}]", e.code());
            if e.code() == "not_found" {
                3
            } else {
                1
            }
        }
        Err(Failure::Missing(why)) => {
            eprintln!("honker: {why}");
            3
        }
        Err(Failure::Usage(why)) => {
            eprintln!("honker: {why}");
            2
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    status
}

/// Is `path` a PostgreSQL URL rather than a file?
fn is_url(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|s| s.starts_with("postgresql://") || s.starts_with("postgres://"))
}

/// Opens an existing database file (an operator's typo must not create a
/// new, empty one), or a PostgreSQL URL.
fn open(path: &Path) -> Result<Database, Failure> {
    if !is_url(path) && !path.is_file() {
        return Err(Failure::Missing(format!(
            "no database file at {}",
            path.display()
        )));
    }
    Ok(Database::open(path)?)
}

/// A handle for the operations that name a job, not a queue.
fn any_queue(db: &Database) -> honker::Queue {
    db.queue("honker-cli", QueueOpts::default())
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let json = cli.json;
    match &cli.command {
        Command::Queues { db } => {
            let queues = open(db)?.queues()?;
            if json {
                print_json(&Value::Array(queues.iter().map(json::queue).collect()));
            } else {
                print_queues(&queues);
            }
        }
        Command::Jobs {
            db,
            queue,
            state,
            task,
            key,
            before,
            limit,
        } => {
            let filter = JobFilter {
                queue: queue.clone(),
                state: state.as_deref().map(JobState::from_name).transpose()?,
                task: task.clone(),
                key: key.clone(),
                before_id: *before,
                limit: *limit,
                ..JobFilter::default()
            };
            let jobs = open(db)?.jobs(&filter)?;
            print_jobs(&jobs, json);
        }
        Command::Job { db, id } => {
            let db = open(db)?;
            let Some(job) = any_queue(&db).get_job(*id)? else {
                return Err(Failure::Missing(format!("no job {id}")));
            };
            if json {
                print_json(&json::job(&job));
            } else {
                print_job(&job);
            }
        }
        Command::Dead { db, queue, limit } => {
            let db = open(db)?;
            let jobs = db.queue(queue, QueueOpts::default()).dead_jobs(*limit)?;
            print_jobs(&jobs, json);
        }
        Command::Requeue {
            db,
            ids,
            all,
            queue,
            reason,
        } => {
            let db = open(db)?;
            let moved = if *all {
                let q = queue.as_deref().unwrap_or_default();
                db.queue(q, QueueOpts::default())
                    .requeue_dead_all(reason.as_deref())?
            } else {
                if ids.is_empty() {
                    return Err(Failure::Honker(honker::Error::InvalidArgument {
                        name: "ids",
                        reason: "give the ids of dead jobs, or --all --queue NAME".into(),
                    }));
                }
                let q = any_queue(&db);
                for id in ids {
                    q.requeue_dead(*id)?;
                }
                ids.len()
            };
            report(
                json,
                json!({ "requeued": moved }),
                format!("requeued {moved} dead jobs"),
            );
        }
        Command::Purge { db, queue } => {
            let n = open(db)?.queue(queue, QueueOpts::default()).purge()?;
            report(
                json,
                json!({ "purged": n }),
                format!("purged {n} ready jobs of {queue}"),
            );
        }
        Command::Copy { from, to, queues } => {
            let (src, dst) = (open(from)?, Database::open(to)?);
            let copied = copy(&src, &dst, queues)?;
            report(
                json,
                json!({"jobs": copied.jobs, "schedules": copied.schedules,
                       "queues": copied.queues, "dead_left": copied.dead_left}),
                format!(
                    "copied {} jobs of {} queues and {} schedules; {} dead jobs left in the source \
                     (requeue them there first to move them)",
                    copied.jobs, copied.queues, copied.schedules, copied.dead_left
                ),
            );
        }
        Command::Discard { db, ids } => {
            let db = open(db)?;
            let n = db
                .core()
                .by(honker_core::Caller::this_thread())
                .discard_dead(ids)?;
            report(
                json,
                json!({ "discarded": n }),
                format!("discarded {n} of {} dead jobs", ids.len()),
            );
        }
        Command::Cancel { db, ids } => {
            let n = any_queue(&open(db)?).cancel_many(ids)?;
            report(
                json,
                json!({ "cancelled": n }),
                format!("cancelled {n} of {} jobs", ids.len()),
            );
        }
        Command::Stats { db, watch } => {
            let db = open(db)?;
            let watcher = honker_core::wake::watcher(db.core());
            if *watch {
                // Watching from before the first look: no commit is missed.
                watcher.ensure_started()?;
            }
            let mut last = None;
            loop {
                let seen = watcher.generation();
                let queues = db.queues()?;
                let totals = queues.iter().fold([0u64; 5], |t, q| {
                    [
                        t[0] + q.stats.ready,
                        t[1] + q.stats.scheduled,
                        t[2] + q.stats.processing,
                        t[3] + q.stats.dead,
                        t[4] + q.stats.completed,
                    ]
                });
                if last != Some(totals) {
                    last = Some(totals);
                    let at = time(now_ms());
                    if json {
                        let q: Vec<Value> = queues.iter().map(json::queue).collect();
                        println!(
                            "{}",
                            json!({"at": at, "ready": totals[0], "scheduled": totals[1],
                                   "processing": totals[2], "dead": totals[3],
                                   "completed": totals[4], "queues": q})
                        );
                    } else {
                        if *watch {
                            println!("{at}");
                        }
                        print_queues(&queues);
                        println!(
                            "total: {} ready, {} scheduled, {} processing, {} dead, {} completed",
                            totals[0], totals[1], totals[2], totals[3], totals[4]
                        );
                        if *watch {
                            println!();
                        }
                    }
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                }
                if !*watch {
                    break;
                }
                watcher.wait(seen, std::time::Duration::from_secs(3600))?;
                // At most a few screens a second under a stream of commits.
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        Command::Streams { db } => {
            let streams = open(db)?.streams()?;
            if json {
                print_json(&Value::Array(streams.iter().map(json::stream).collect()));
            } else if streams.is_empty() {
                println!("no streams");
            } else {
                let mut rows = Vec::new();
                for s in &streams {
                    if s.consumers.is_empty() {
                        rows.push(vec![
                            s.name.clone(),
                            s.last_offset.to_string(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                        ]);
                    }
                    for c in &s.consumers {
                        rows.push(vec![
                            s.name.clone(),
                            s.last_offset.to_string(),
                            c.name.clone(),
                            c.offset.to_string(),
                            c.lag.to_string(),
                        ]);
                    }
                }
                table(
                    &["STREAM", "LAST OFFSET", "CONSUMER", "OFFSET", "LAG"],
                    rows,
                );
            }
        }
        Command::Tail {
            db,
            stream,
            after,
            once,
        } => {
            let db = open(db)?;
            follow(&db, stream, *after, *once, |e, payload| {
                if json {
                    println!(
                        "{}",
                        json!({"offset": e.offset, "key": e.key, "payload": payload, "created_at_ms": e.created_at_ms})
                    );
                } else {
                    println!("{}\t{}", e.offset, payload);
                }
            })?;
        }
        Command::Events {
            db,
            queue,
            after,
            once,
        } => {
            let db = open(db)?;
            follow(&db, honker::EVENTS_STREAM, *after, *once, |e, v| {
                if queue
                    .as_deref()
                    .is_some_and(|q| e.key.as_deref() != Some(q))
                {
                    return;
                }
                if json {
                    let mut v = v.clone();
                    v["offset"] = json!(e.offset);
                    println!("{v}");
                    return;
                }
                let text = |k: &str| v[k].as_str().map(str::to_string);
                let detail: Vec<String> = [
                    text("task"),
                    v["attempt"].as_u64().map(|a| format!("attempt {a}")),
                    text("worker_id").map(|w| format!("by {w}")),
                    v["run_at_ms"].as_i64().map(|t| format!("due {}", time(t))),
                    text("reason").map(|r| format!("({r})")),
                    text("error").map(|x| format!("error: {}", x.lines().next().unwrap_or(""))),
                ]
                .into_iter()
                .flatten()
                .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    e.offset,
                    v["at_ms"].as_i64().map_or_else(|| "-".into(), time),
                    text("queue").unwrap_or_default(),
                    v["job_id"],
                    text("type").unwrap_or_default(),
                    detail.join(" ")
                );
            })?;
        }
        Command::Serve {
            db,
            listen,
            token,
            allow_actions,
        } => {
            let opened = open(db)?;
            serve::serve(
                db,
                opened,
                serve::Options {
                    listen: listen.clone(),
                    token: token.clone(),
                    allow_actions: *allow_actions,
                },
            )?;
        }
        Command::Schedules { db } => {
            let list = open(db)?.scheduler().list()?;
            if json {
                print_json(&Value::Array(list.iter().map(json::schedule).collect()));
            } else if list.is_empty() {
                println!("no schedules");
            } else {
                table(
                    &[
                        "SCHEDULE",
                        "QUEUE",
                        "CRON",
                        "PAUSED",
                        "NEXT FIRE",
                        "LAST FIRE",
                        "LAST ERROR",
                    ],
                    list.iter()
                        .map(|s| {
                            vec![
                                s.name.clone(),
                                s.queue.clone(),
                                s.cron.clone(),
                                if s.paused { "yes" } else { "no" }.into(),
                                time(s.next_fire_at_ms),
                                dash(s.last_fire_at_ms.map(time)),
                                dash(s.last_error.clone()),
                            ]
                        })
                        .collect(),
                );
            }
        }
        Command::Pause { db, queue } => {
            let changed = open(db)?.queue(queue, QueueOpts::default()).pause()?;
            let text = if changed { "paused" } else { "already paused" };
            report(
                json,
                json!({ "paused": true, "changed": changed }),
                format!("{queue}: {text}"),
            );
        }
        Command::Resume { db, queue } => {
            let changed = open(db)?.queue(queue, QueueOpts::default()).resume()?;
            let text = if changed {
                "resumed"
            } else {
                "already running"
            };
            report(
                json,
                json!({ "paused": false, "changed": changed }),
                format!("{queue}: {text}"),
            );
        }
    }
    Ok(())
}

fn report(json: bool, value: Value, text: String) {
    if json {
        print_json(&value);
    } else {
        println!("{text}");
    }
}

/// Prints `stream`'s events after `after` (default: its last offset) with
/// `print`, then follows it, woken by each commit, until interrupted (or,
/// with `once`, stops).
fn follow(
    db: &Database,
    stream: &str,
    after: Option<i64>,
    once: bool,
    mut print: impl FnMut(&honker::Event, &Value),
) -> Result<(), Failure> {
    let s = db.stream(stream);
    let watcher = honker_core::wake::watcher(db.core());
    watcher.ensure_started()?;
    let mut offset = match after {
        Some(a) => a,
        None => s.last_offset()?,
    };
    loop {
        // Read before the look: a commit after it moves the generation.
        let seen = watcher.generation();
        let events = s.read_since(offset, 500)?;
        for e in &events {
            let payload = serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null);
            print(e, &payload);
            offset = e.offset;
        }
        if !events.is_empty() {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            continue;
        }
        if once {
            return Ok(());
        }
        watcher.wait(seen, std::time::Duration::from_secs(3600))?;
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time in ms since the epoch, as RFC 3339 in UTC.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn print_queues(queues: &[QueueSummary]) {
    if queues.is_empty() {
        println!("no queues");
        return;
    }
    table(
        &[
            "QUEUE",
            "READY",
            "SCHEDULED",
            "PROCESSING",
            "DEAD",
            "COMPLETED",
            "PAUSED",
            "MAX_IN_FLIGHT",
            "RATE_LIMIT",
        ],
        queues
            .iter()
            .map(|q| {
                vec![
                    q.name.clone(),
                    q.stats.ready.to_string(),
                    q.stats.scheduled.to_string(),
                    q.stats.processing.to_string(),
                    q.stats.dead.to_string(),
                    q.stats.completed.to_string(),
                    if q.controls.paused { "yes" } else { "no" }.into(),
                    dash(q.controls.max_in_flight),
                    dash(
                        q.controls
                            .rate_limit
                            .map(|r| format!("{}/{}s", r.limit, r.per.as_secs_f64())),
                    ),
                ]
            })
            .collect(),
    );
}

fn print_jobs(jobs: &[JobRecord], json: bool) {
    if json {
        print_json(&Value::Array(jobs.iter().map(json::job).collect()));
        return;
    }
    if jobs.is_empty() {
        println!("no jobs");
        return;
    }
    table(
        &["ID", "QUEUE", "STATE", "TASK", "ATTEMPTS", "ERROR"],
        jobs.iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.queue.clone(),
                    j.state.as_str().into(),
                    dash(json::task_of(&j.payload)),
                    format!("{}/{}", j.attempts, j.max_attempts),
                    dash(
                        j.last_error
                            .as_deref()
                            .map(|e| e.lines().next().unwrap_or("").to_string()),
                    ),
                ]
            })
            .collect(),
    );
}

/// Stored JSON text, indented (text that is not JSON as it is).
fn pretty(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or_else(|_| text.to_string())
}

fn print_job(j: &JobRecord) {
    let payload = pretty(&j.payload);
    let fields: Vec<(&str, String)> = vec![
        ("id", j.id.to_string()),
        ("queue", j.queue.clone()),
        ("state", j.state.as_str().into()),
        ("task", dash(json::task_of(&j.payload))),
        ("attempts", format!("{}/{}", j.attempts, j.max_attempts)),
        ("priority", j.priority.to_string()),
        ("worker", dash(j.worker_id.clone())),
        ("key", dash(j.key.clone())),
        ("dead reason", dash(j.dead_reason.clone())),
        ("last error", dash(j.last_error.clone())),
        ("run at", time(j.run_at_ms)),
        ("lease until", dash(j.lease_until_ms.map(time))),
        ("created at", time(j.created_at_ms)),
        ("started at", dash(j.started_at_ms.map(time))),
        ("completed at", dash(j.completed_at_ms.map(time))),
        ("died at", dash(j.died_at_ms.map(time))),
        ("result", dash(j.result.as_deref().map(pretty))),
    ];
    for (k, v) in fields {
        // A multi-line value (an error's traceback) stays in its column.
        println!("{k:<16}{}", v.replace('\n', &format!("\n{:16}", "")));
    }
    println!("payload");
    for l in payload.lines() {
        println!("  {l}");
    }
}

/// What [`copy`] moved.
struct Copied {
    jobs: usize,
    queues: usize,
    schedules: usize,
    dead_left: u64,
}

/// Copies `src`'s live jobs, queue controls and schedules (of `only`'s
/// queues, or all) into `dst`, in one transaction there.
fn copy(src: &Database, dst: &Database, only: &[String]) -> Result<Copied, Failure> {
    use honker_core::model::ScheduleSpec;
    use std::time::{Duration, UNIX_EPOCH};
    let me = honker_core::Caller::this_thread();
    let from = src.core().by(me);
    let queues: Vec<QueueSummary> = from
        .queues()?
        .into_iter()
        .filter(|q| only.is_empty() || only.contains(&q.name))
        .collect();
    let schedules: Vec<_> = from
        .schedule_list()?
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.queue))
        .collect();
    let tx = dst.core().begin(me)?;
    let result = (|| -> honker::Result<Copied> {
        let into = dst.core().in_tx(&tx);
        let now = dst.core().now_ms();
        let mut copied = Copied {
            jobs: 0,
            queues: queues.len(),
            schedules: schedules.len(),
            dead_left: 0,
        };
        for q in &queues {
            copied.dead_left += q.stats.dead;
            // Oldest first, so the copies keep their order.
            let mut jobs = Vec::new();
            for state in [JobState::Ready, JobState::Scheduled, JobState::Processing] {
                let mut before = None;
                loop {
                    let page = from.list_jobs(&JobFilter {
                        queue: Some(q.name.clone()),
                        state: Some(state),
                        before_id: before,
                        limit: 1000,
                        ..JobFilter::default()
                    })?;
                    before = page.last().map(|j| j.id);
                    let more = page.len() == 1000;
                    jobs.extend(page);
                    if !more {
                        break;
                    }
                }
            }
            jobs.sort_by_key(|j| j.id);
            for j in &jobs {
                let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
                let opts = EnqueueOpts {
                    run_at: Some(at(j.run_at_ms)),
                    priority: j.priority,
                    // What is left of its budget (a held job's attempt counts,
                    // as a lease that ran out would).
                    max_attempts: Some(j.max_attempts.saturating_sub(j.attempts).max(1)),
                    expires: j
                        .expires_at_ms
                        .map(|t| Duration::from_millis((t - j.run_at_ms.max(now)).max(1) as u64)),
                    key: j.key.clone(),
                    ..EnqueueOpts::default()
                };
                into.enqueue(
                    &q.name,
                    &j.payload,
                    &opts,
                    honker_core::model::DEFAULT_MAX_ATTEMPTS,
                )?;
                copied.jobs += 1;
            }
            let c = q.controls;
            if c.paused {
                into.pause(&q.name)?;
            }
            if c.max_in_flight.is_some() {
                into.set_max_in_flight(&q.name, c.max_in_flight)?;
            }
            if c.rate_limit.is_some() {
                into.set_rate_limit(&q.name, c.rate_limit)?;
            }
            if c.retention != QueueRetention::default() {
                into.set_queue_retention(&q.name, c.retention)?;
            }
            if c.events {
                into.set_events(&q.name, true)?;
            }
        }
        for s in &schedules {
            into.schedule_add(&ScheduleSpec {
                name: &s.name,
                queue: &s.queue,
                cron: &s.cron,
                tz: None,
                payload: &s.payload,
                priority: s.priority,
                expires: s
                    .expires_ms
                    .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            })?;
            if s.paused {
                into.schedule_pause(&s.name)?;
            }
        }
        Ok(copied)
    })();
    match result {
        Ok(copied) => {
            dst.core().commit(tx)?;
            Ok(copied)
        }
        Err(e) => {
            let _ = dst.core().rollback(tx);
            Err(e.into())
        }
    }
}
