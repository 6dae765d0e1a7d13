//! Keeping a held lock alive: a lock taken by a guard (Rust's `Lock`,
//! Python's `with db.lock(...)`, Node's `Lock`) is renewed in the
//! background for as long as the guard lives, and a renewal that finds the
//! lock gone (it lapsed and someone else may hold it: the fencing token no
//! longer matches) is recorded, so the holder hears about it instead of
//! carrying on unaware.

use crate::error::{Error, Result};
use crate::handle::{Caller, Db};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Renews every third of the TTL, so two renewals can fail (a busy
/// database) before the lock lapses.
const RENEW_FRACTION: u32 = 3;

#[derive(Debug)]
struct Shared {
    name: String,
    token: i64,
    ttl_ms: AtomicI64,
    lost: AtomicBool,
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Renews lock `name` (held with fencing token `token`) in the background
/// until [`Keeper::stop`] or drop.
#[derive(Debug)]
pub struct Keeper {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    /// Starts renewing the lock for `ttl_ms` every third of that.
    pub fn start(db: &Db, name: &str, token: i64, ttl_ms: i64) -> Result<Keeper> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            token,
            ttl_ms: AtomicI64::new(ttl_ms),
            lost: AtomicBool::new(false),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let (s, db) = (shared.clone(), db.clone());
        let thread = std::thread::Builder::new()
            .name("honker-lock".into())
            .spawn(move || run(&s, &db))
            .map_err(|e| Error::Internal {
                reason: format!("cannot start the lock keeper thread: {e}"),
            })?;
        Ok(Keeper {
            shared,
            thread: Some(thread),
        })
    }

    /// Has a renewal found the lock gone?
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// `Err(Error::LockLost)` if a renewal found the lock gone.
    pub fn check(&self) -> Result<()> {
        if self.is_lost() {
            return Err(Error::LockLost {
                name: self.shared.name.clone(),
                token: self.shared.token,
            });
        }
        Ok(())
    }

    /// Renews with `ttl_ms` from now on (after a manual heartbeat with a new
    /// TTL).
    pub fn set_ttl(&self, ttl_ms: i64) {
        self.shared.ttl_ms.store(ttl_ms, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }

    /// Records that the lock is gone (a manual renewal found it so).
    pub fn mark_lost(&self) {
        self.shared.lost.store(true, Ordering::SeqCst);
    }

    /// Stops renewing and waits for the keeper thread to end (at most one
    /// renewal in flight, which may wait for the database's busy timeout).
    pub fn stop(&mut self) {
        *self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // The keeper may be this very thread's caller only through a
            // drop inside it, which cannot happen: it holds no guard.
            let _ = t.join();
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(s: &Shared, db: &Db) {
    let mut stopped = s.stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // Looked at before every wait: a stop that came before this thread
        // first waited has notified nobody.
        if *stopped {
            return;
        }
        let every = Duration::from_millis(
            (s.ttl_ms.load(Ordering::SeqCst).max(3) / i64::from(RENEW_FRACTION)) as u64,
        );
        let (guard, timeout) = s
            .wake
            .wait_timeout(stopped, every)
            .unwrap_or_else(|p| p.into_inner());
        stopped = guard;
        if *stopped || !timeout.timed_out() {
            continue; // stopped, or a new TTL: wait a third of it
        }
        drop(stopped);
        let ttl = s.ttl_ms.load(Ordering::SeqCst);
        let renewed = db
            .by(Caller::this_thread())
            .renew_lock(&s.name, s.token, ttl);
        stopped = s.stopped.lock().unwrap_or_else(|p| p.into_inner());
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                s.lost.store(true, Ordering::SeqCst);
                return;
            }
            // Closed, or forked away: nothing left to keep.
            Err(Error::Closed | Error::Forked { .. }) => return,
            // Busy, or the owner's transaction open on another thread:
            // try again at the next third.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::sqlite::lock;
    use crate::OpenOptions;

    #[test]
    fn a_keeper_stopped_at_once_ends_at_once() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("k.db");
        let started = std::time::Instant::now();
        for _ in 0..20 {
            // A long TTL: a stop the thread missed would wait 20 s.
            Keeper::start(&db, "m", 1, 60_000).unwrap().stop();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a stop was missed"
        );
    }

    #[test]
    fn a_kept_lock_outlives_its_ttl_and_a_lost_one_is_reported() {
        let dir = crate::testutil::Dir::new();
        let db = dir.open("k.db");
        let ttl = 150;
        let token = db
            .run_here(|c, now| lock::try_acquire(c, "m", "a", ttl, now))
            .unwrap()
            .unwrap();
        let mut keeper = Keeper::start(&db, "m", token, ttl).unwrap();
        // Held across several TTLs: wait for three renewals to land.
        let first_expiry = db
            .run_here(|c, now| lock::holder(c, "m", now))
            .unwrap()
            .unwrap()
            .expires_at_ms;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let h = db.run_here(|c, now| lock::holder(c, "m", now)).unwrap();
            let h = h.expect("the kept lock never lapsed");
            if h.expires_at_ms >= first_expiry + 3 * ttl {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no renewals");
            db.watcher()
                .wait(db.watcher().generation(), Duration::from_millis(50))
                .unwrap();
        }
        assert!(keeper.check().is_ok());
        keeper.stop();
        drop(keeper);

        // Lost: someone else holds it now (its TTL ran out under a clock jump).
        let clock = ManualClock::new(1_000_000);
        let db2 = Db::open(
            dir.path().join("k2.db"),
            OpenOptions {
                clock: Arc::new(clock.clone()),
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let t1 = db2
            .run_here(|c, now| lock::try_acquire(c, "m", "a", 60_000, now))
            .unwrap()
            .unwrap();
        let keeper = Keeper::start(&db2, "m", t1, 60).unwrap();
        clock.advance(120_000);
        db2.run_here(|c, now| lock::try_acquire(c, "m", "b", 60_000, now))
            .unwrap()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !keeper.is_lost() {
            assert!(std::time::Instant::now() < deadline, "loss never seen");
            db2.watcher()
                .wait(db2.watcher().generation(), Duration::from_millis(20))
                .unwrap();
        }
        let e = keeper.check().unwrap_err();
        assert_eq!(e.code(), "lock_lost");
        assert!(e.to_string().contains("\"m\""), "{e}");
    }
}
