//! `honker serve`: the web dashboard and Prometheus metrics of a database
//! file. One page (assets embedded in the binary: no build step), a JSON
//! API under `/api/`, server-sent events at `/api/live` woken by the
//! file's watcher (a commit in any process), and `/metrics`.
//!
//! Safe by default: it listens on 127.0.0.1, checks the `Host` header
//! there (so a web page cannot reach it by DNS rebinding), needs a token to
//! listen anywhere else, and is read-only unless started with
//! `--allow-actions`; an action is a `POST` with the header
//! `X-Honker-Action: 1`, which a page of another origin cannot send
//! without the server's consent.

use crate::Failure;
use honker::Database;
use honker_core::{json, Caller, Ops};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// How many chart points are kept (one a second at most: 10 minutes).
const POINTS: usize = 600;

/// How the dashboard is served.
pub struct Options {
    pub listen: String,
    pub token: Option<String>,
    pub allow_actions: bool,
}

/// One point of the chart: the file's totals at a moment.
#[derive(Clone, Copy)]
struct Point {
    at_ms: i64,
    ready: u64,
    scheduled: u64,
    processing: u64,
    dead: u64,
    /// Jobs that left the live table (acked, dead-lettered, cancelled) per
    /// second since the point before.
    finished_per_s: f64,
}

/// What the sampler keeps: chart points, and lifecycle-event counters by
/// queue (since the server started).
#[derive(Default)]
struct Samples {
    generation: u64,
    points: VecDeque<Point>,
    /// queue -> (completed, failed) events seen.
    counters: BTreeMap<String, (u64, u64)>,
    /// (jobs ever enqueued, live jobs) at the last point.
    last: Option<(i64, u64, Instant)>,
    events_offset: i64,
}

struct State {
    db: Database,
    path: String,
    token: Option<String>,
    allow_actions: bool,
    /// `Host` headers accepted without a token.
    hosts: Vec<String>,
    samples: Mutex<Samples>,
    changed: Condvar,
}

impl State {
    fn ops(&self) -> Ops<'_> {
        self.db.core().by(Caller::this_thread())
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Serves the dashboard of the database at `path` until the process ends.
pub fn serve(path: &Path, db: Database, opts: Options) -> Result<(), Failure> {
    let addr: SocketAddr = opts
        .listen
        .parse()
        .map_err(|e| Failure::Usage(format!("--listen {}: {e}", opts.listen)))?;
    if !is_loopback(&addr) && opts.token.is_none() {
        return Err(Failure::Usage(format!(
            "listening on {addr}, beyond this machine, needs --token (anyone who can reach it could read every job)"
        )));
    }
    if let Some(t) = &opts.token {
        // It goes into a URL and a cookie as it is: letters, digits and
        // -._~+/= only (a base64 or hex secret fits).
        let ok = !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
        if !ok {
            return Err(Failure::Usage(
                "--token must be letters, digits and -._~+/= only, and not empty".into(),
            ));
        }
    }
    let server =
        Server::http(addr).map_err(|e| Failure::Usage(format!("cannot listen on {addr}: {e}")))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Failure::Usage("not an IP address".into()))?;
    let port = bound.port();
    let state = Arc::new(State {
        db,
        path: path.display().to_string(),
        token: opts.token.clone(),
        allow_actions: opts.allow_actions,
        hosts: vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ],
        samples: Mutex::new(Samples::default()),
        changed: Condvar::new(),
    });
    let watcher = honker_core::wake::watcher(state.db.core());
    watcher.ensure_started()?;
    {
        // Lifecycle events are counted from now on.
        let end = state.ops().last_offset(honker_core::EVENTS_STREAM)?;
        state.samples.lock().unwrap().events_offset = end;
        sample(&state)?;
    }
    let sampler = Arc::clone(&state);
    std::thread::spawn(move || loop {
        let seen = watcher.generation();
        let took = Instant::now();
        if let Err(e) = sample(&sampler) {
            eprintln!("honker serve: sampling: {e} [{}]", e.code());
        }
        // Counting a deep queue's jobs takes time: sampling gets a fifth
        // of a core at most, and four looks a second at most.
        let rest = (took.elapsed() * 4).max(Duration::from_millis(250));
        // Woken by a commit in any process (or every 5 s: the chart moves on).
        let _ = watcher.wait(seen, Duration::from_secs(5));
        std::thread::sleep(rest);
    });
    let shown = match &opts.token {
        Some(t) => format!("http://{bound}/?token={t}"),
        None => format!("http://{bound}/"),
    };
    println!(
        "honker dashboard of {} on {shown} ({})",
        state.path,
        if opts.allow_actions {
            "actions allowed"
        } else {
            "read-only"
        }
    );
    let _ = std::io::stdout().flush();
    for request in server.incoming_requests() {
        let state = Arc::clone(&state);
        std::thread::spawn(move || handle(&state, request));
    }
    Ok(())
}

/// Takes a point of the chart (at most one a second, and one whenever the
/// totals changed) and counts new lifecycle events; wakes the live pages.
fn sample(state: &State) -> honker::Result<()> {
    let ops = state.ops();
    let queues = ops.queues()?;
    let enqueued = ops.jobs_enqueued()?;
    let events = ops.read_since(
        honker_core::EVENTS_STREAM,
        state.samples.lock().unwrap().events_offset,
        10_000,
    )?;
    let mut s = state.samples.lock().unwrap();
    for e in &events {
        s.events_offset = e.offset;
        let v: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        let queue = e.key.clone().unwrap_or_default();
        let c = s.counters.entry(queue).or_default();
        match v["type"].as_str() {
            Some("completed") => c.0 += 1,
            Some("failed") => c.1 += 1,
            _ => {}
        }
    }
    let sum = |f: fn(&honker::QueueStats) -> u64| queues.iter().map(|q| f(&q.stats)).sum::<u64>();
    let (ready, scheduled, processing, dead) = (
        sum(|s| s.ready),
        sum(|s| s.scheduled),
        sum(|s| s.processing),
        sum(|s| s.dead),
    );
    let live = ready + scheduled + processing;
    let now = Instant::now();
    let finished_per_s = match s.last {
        Some((e0, l0, t0)) => {
            let dt = now.duration_since(t0).as_secs_f64().max(1e-3);
            let left = (enqueued - e0) as f64 - (live as f64 - l0 as f64);
            left.max(0.0) / dt
        }
        None => 0.0,
    };
    let point = Point {
        at_ms: honker_core::clock::system_now_ms(),
        ready,
        scheduled,
        processing,
        dead,
        finished_per_s,
    };
    let same = s.points.back().is_some_and(|p| {
        (p.ready, p.scheduled, p.processing, p.dead) == (ready, scheduled, processing, dead)
            && finished_per_s == 0.0
    });
    let due = s
        .last
        .is_none_or(|(_, _, t0)| now.duration_since(t0) >= Duration::from_secs(1));
    if due || !same {
        s.last = Some((enqueued, live, now));
        s.points.push_back(point);
        while s.points.len() > POINTS {
            s.points.pop_front();
        }
    }
    if !same || !events.is_empty() {
        s.generation += 1;
        state.changed.notify_all();
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn header_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Decodes `%XX` and `+` of a URL query value.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split_url(url: &str) -> (&str, BTreeMap<String, String>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    (path, params)
}

/// Compares without an early exit, so timing does not tell how much of a
/// guess was right.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether `req` may see the dashboard, and whether it brought the token in
/// its URL (to be kept in a cookie).
fn allowed(state: &State, req: &Request, params: &BTreeMap<String, String>) -> (bool, bool) {
    match &state.token {
        None => {
            let host = header_value(req, "Host").unwrap_or("");
            (state.hosts.iter().any(|h| h == host), false)
        }
        Some(token) => {
            if params.get("token").is_some_and(|t| same_secret(t, token)) {
                return (true, true);
            }
            let bearer = header_value(req, "Authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| same_secret(t.trim(), token));
            let cookie = header_value(req, "Cookie").is_some_and(|c| {
                c.split(';')
                    .filter_map(|kv| kv.trim().split_once('='))
                    .any(|(k, v)| k == "honker_token" && same_secret(v, token))
            });
            (bearer || cookie, false)
        }
    }
}

fn reply(req: Request, status: u16, content_type: &str, body: String, extra: Vec<Header>) {
    let mut r = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:",
        ));
    for h in extra {
        r = r.with_header(h);
    }
    let _ = req.respond(r);
}

fn reply_json(req: Request, status: u16, v: &Value) {
    reply(req, status, "application/json", v.to_string(), Vec::new());
}

fn error_json(req: Request, status: u16, code: &str, message: &str) {
    reply_json(req, status, &json!({"error": code, "message": message}));
}

fn handle(state: &State, mut req: Request) {
    let (path, params) = split_url(req.url());
    let path = path.to_string();
    let (ok, token_in_url) = allowed(state, &req, &params);
    if !ok {
        let why = if state.token.is_some() {
            "a token is needed: open the URL the server printed (?token=...), or send Authorization: Bearer"
        } else {
            "this dashboard answers only on 127.0.0.1, localhost or [::1]"
        };
        return error_json(req, 403, "forbidden", why);
    }
    let mut extra = Vec::new();
    if token_in_url {
        if let Some(t) = &state.token {
            extra.push(header(
                "Set-Cookie",
                &format!("honker_token={t}; Path=/; HttpOnly; SameSite=Strict"),
            ));
        }
    }
    let method = req.method().clone();
    let result = match (&method, path.as_str()) {
        (Method::Get, "/") => {
            return reply(req, 200, "text/html; charset=utf-8", INDEX.into(), extra)
        }
        (Method::Get, "/app.js") => {
            return reply(
                req,
                200,
                "text/javascript; charset=utf-8",
                APP_JS.into(),
                extra,
            )
        }
        (Method::Get, "/app.css") => {
            return reply(req, 200, "text/css; charset=utf-8", APP_CSS.into(), extra)
        }
        (Method::Get, "/metrics") => match metrics(state) {
            Ok(text) => {
                return reply(req, 200, "text/plain; version=0.0.4", text, extra);
            }
            Err(e) => Err(e),
        },
        (Method::Get, "/api/live") => return live(state, req),
        (Method::Get, p) if p.starts_with("/api/") => read(state, p, &params),
        (Method::Post, p) if p.starts_with("/api/") => {
            if !state.allow_actions {
                return error_json(
                    req,
                    403,
                    "read_only",
                    "this dashboard is read-only: start it with --allow-actions to act",
                );
            }
            if header_value(&req, "X-Honker-Action") != Some("1") {
                return error_json(
                    req,
                    403,
                    "forbidden",
                    "an action needs the header X-Honker-Action: 1",
                );
            }
            let mut body = String::new();
            let _ = req.as_reader().take(64 * 1024).read_to_string(&mut body);
            act(state, p)
        }
        _ => Ok(None),
    };
    match result {
        Ok(Some(v)) => reply(req, 200, "application/json", v.to_string(), extra),
        Ok(None) => error_json(req, 404, "not_found", &format!("no such page: {path}")),
        Err(e) => {
            let status = match e.code() {
                "not_found" => 404,
                "invalid_argument" | "invalid_json" => 400,
                _ => 500,
            };
            error_json(req, status, e.code(), &e.to_string())
        }
    }
}

/// The JSON of a `GET /api/...`; `None` for no such page.
fn read(
    state: &State,
    path: &str,
    params: &BTreeMap<String, String>,
) -> honker::Result<Option<Value>> {
    let ops = state.ops();
    let list = |v: Vec<Value>| Some(Value::Array(v));
    Ok(match path {
        "/api/overview" => {
            let queues = ops.queues()?;
            let now = honker_core::clock::system_now_ms();
            let mut out = Vec::new();
            for q in &queues {
                let mut v = json::queue(q);
                v["head_age_ms"] = json!(ops.queue_head(&q.name)?.map(|t| (now - t).max(0)));
                out.push(v);
            }
            Some(json!({
                "path": state.path,
                "actions": state.allow_actions,
                "jobs_enqueued": ops.jobs_enqueued()?,
                "queues": out,
            }))
        }
        "/api/series" => {
            let s = state.samples.lock().unwrap();
            list(
                s.points
                    .iter()
                    .map(|p| {
                        json!({"at_ms": p.at_ms, "ready": p.ready, "scheduled": p.scheduled,
                               "processing": p.processing, "dead": p.dead,
                               "finished_per_s": (p.finished_per_s * 100.0).round() / 100.0})
                    })
                    .collect(),
            )
        }
        "/api/jobs" => {
            let num = |k: &str| -> honker::Result<Option<i64>> {
                params
                    .get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| {
                        v.parse::<i64>().map_err(|_| {
                            honker::Error::invalid("query", format!("{k} must be an integer"))
                        })
                    })
                    .transpose()
            };
            let text = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
            let filter = honker::JobFilter {
                queue: text("queue"),
                state: text("state")
                    .as_deref()
                    .map(honker::JobState::from_name)
                    .transpose()?,
                task: text("task"),
                key: text("key"),
                created_from_ms: None,
                created_to_ms: None,
                before_id: num("before")?,
                limit: num("limit")?.map_or(50, |n| n.clamp(1, 500) as usize),
            };
            list(ops.list_jobs(&filter)?.iter().map(json::job).collect())
        }
        "/api/schedules" => list(ops.schedule_list()?.iter().map(json::schedule).collect()),
        "/api/streams" => list(ops.streams()?.iter().map(json::stream).collect()),
        "/api/locks" => list(ops.locks()?.iter().map(json::lock).collect()),
        p => match p
            .strip_prefix("/api/job/")
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => match ops.get_job(id)? {
                Some(j) => Some(json::job(&j)),
                None => {
                    return Err(honker::Error::NotFound {
                        kind: "job",
                        id: id.to_string(),
                    })
                }
            },
            None => None,
        },
    })
}

/// A `POST /api/...` action; `None` for no such action.
fn act(state: &State, path: &str) -> honker::Result<Option<Value>> {
    let ops = state.ops();
    let parts: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    Ok(match parts.as_slice() {
        ["jobs", id, what] => {
            let id: i64 = id
                .parse()
                .map_err(|_| honker::Error::invalid("id", "must be an integer"))?;
            match *what {
                "requeue" => {
                    ops.requeue_dead(id)?;
                    Some(json!({"requeued": id}))
                }
                "cancel" => Some(json!({"cancelled": ops.cancel(id)?})),
                "discard" => Some(json!({"discarded": ops.discard_dead(&[id])? == 1})),
                _ => None,
            }
        }
        ["queues", name, what] => {
            let name = decode(name);
            match *what {
                "pause" => Some(json!({"changed": ops.pause(&name)?})),
                "resume" => Some(json!({"changed": ops.resume(&name)?})),
                _ => None,
            }
        }
        _ => None,
    })
}

/// `GET /api/live`: server-sent events, one `change` each time the sampler
/// saw the file change (a commit in any process), and a comment every 15 s
/// so proxies keep the connection. Ends when the page goes.
fn live(state: &State, req: Request) {
    let mut w = req.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                Connection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: 1000\n\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    let mut seen = state.samples.lock().unwrap().generation;
    loop {
        let s = state.samples.lock().unwrap();
        let (s, timeout) = state
            .changed
            .wait_timeout_while(s, Duration::from_secs(15), |s| s.generation == seen)
            .unwrap();
        let msg = if timeout.timed_out() {
            ": still here\n\n".to_string()
        } else {
            seen = s.generation;
            format!("event: change\ndata: {seen}\n\n")
        };
        drop(s);
        if w.write_all(msg.as_bytes()).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

/// Prometheus text: gauges of the file as it is, and counters of the
/// lifecycle events seen since the server started.
fn metrics(state: &State) -> honker::Result<String> {
    let ops = state.ops();
    let now = honker_core::clock::system_now_ms();
    let queues = ops.queues()?;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in rows {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let label = |pairs: &[(&str, &str)]| -> String {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                format!("{k}=\"{v}\"")
            })
            .collect();
        format!("{{{}}}", inner.join(","))
    };
    let mut jobs = Vec::new();
    for q in &queues {
        for (st, n) in [
            ("ready", q.stats.ready),
            ("scheduled", q.stats.scheduled),
            ("processing", q.stats.processing),
            ("dead", q.stats.dead),
            ("completed", q.stats.completed),
        ] {
            jobs.push((label(&[("queue", &q.name), ("state", st)]), n.to_string()));
        }
    }
    family("honker_jobs", "gauge", "Jobs by queue and state.", jobs);
    family(
        "honker_jobs_in_flight",
        "gauge",
        "Jobs leased to workers, by queue.",
        queues
            .iter()
            .map(|q| (label(&[("queue", &q.name)]), q.stats.processing.to_string()))
            .collect(),
    );
    let mut heads = Vec::new();
    for q in &queues {
        let age = ops
            .queue_head(&q.name)?
            .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        heads.push((label(&[("queue", &q.name)]), format!("{age}")));
    }
    family(
        "honker_oldest_ready_age_seconds",
        "gauge",
        "How long the ready job a claim would take next has been due, by queue (0: none ready).",
        heads,
    );
    family(
        "honker_queue_paused",
        "gauge",
        "1 while the queue is paused.",
        queues
            .iter()
            .map(|q| {
                (
                    label(&[("queue", &q.name)]),
                    u8::from(q.controls.paused).to_string(),
                )
            })
            .collect(),
    );
    family(
        "honker_jobs_enqueued_total",
        "counter",
        "Jobs ever enqueued in the file (the largest job id).",
        vec![(String::new(), ops.jobs_enqueued()?.to_string())],
    );
    let counters = state.samples.lock().unwrap().counters.clone();
    family(
        "honker_jobs_processed_total",
        "counter",
        "Jobs completed since this server started, by queue (queues that publish lifecycle events).",
        counters
            .iter()
            .map(|(q, c)| (label(&[("queue", q)]), c.0.to_string()))
            .collect(),
    );
    family(
        "honker_jobs_failed_total",
        "counter",
        "Attempts that failed since this server started, by queue (queues that publish lifecycle events).",
        counters
            .iter()
            .map(|(q, c)| (label(&[("queue", q)]), c.1.to_string()))
            .collect(),
    );
    let mut lags = Vec::new();
    for s in ops.streams()? {
        for c in &s.consumers {
            lags.push((
                label(&[("stream", &s.name), ("consumer", &c.name)]),
                c.lag.to_string(),
            ));
        }
    }
    family(
        "honker_stream_consumer_lag",
        "gauge",
        "Events of the stream after the consumer's saved offset.",
        lags,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let (path, p) =
            split_url("/api/jobs?queue=a%20b&state=dead&x=1+2&bad=%zz&t=%4&u=%e2%82%ac%");
        assert_eq!(path, "/api/jobs");
        assert_eq!(p["queue"], "a b");
        assert_eq!(p["x"], "1 2");
        assert_eq!(p["bad"], "%zz");
        assert_eq!(p["t"], "%4");
        assert_eq!(p["u"], "€%");
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
