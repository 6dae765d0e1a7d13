//! Helpers shared by the integration tests: temporary databases and child
//! processes (the test binary re-executed in a named role).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct TempDb {
    pub dir: tempfile::TempDir,
}

impl TempDb {
    pub fn new() -> TempDb {
        TempDb {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("app.db")
    }
    pub fn open(&self) -> honker::Database {
        honker::Database::open(self.path()).unwrap()
    }
}

/// Env var that tells a re-executed test binary which role to play.
pub const ROLE: &str = "HONKER_TEST_ROLE";

/// Starts this test binary again running only `entry` (an `#[ignore]`d test
/// that dispatches on the role), with extra env vars. Lines the child prints
/// starting with "@@" are sent to the returned receiver.
pub fn spawn_role(
    entry: &str,
    role: &str,
    envs: &[(&str, String)],
) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test NAME ... " with no newline before the
            // child's own first line, so look for the marker anywhere.
            if let Some(at) = line.find("@@") {
                if tx.send(line[at + 2..].to_string()).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx)
}

/// Waits for a child to exit, killing it and failing after `deadline`.
pub fn wait_ok(child: &mut Child, deadline: Duration) {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("child did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects every "@@" line until the child's stdout closes (or the deadline).
pub fn drain(rx: &mpsc::Receiver<String>, deadline: Duration) -> Vec<String> {
    let end = Instant::now() + deadline;
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return out,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("child output did not end within {deadline:?}")
            }
        }
    }
}
