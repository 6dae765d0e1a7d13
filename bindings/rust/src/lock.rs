use crate::{Database, Result};
use honker_core::lock as core;

/// A held advisory lock. Released when dropped, by [`Lock::release`], or by
/// its TTL running out without a [`Lock::heartbeat`].
///
/// If the drop happens on a thread holding an open [`crate::Transaction`]
/// on the same database, the release cannot run; the lock then lapses at its
/// TTL.
#[derive(Debug)]
pub struct Lock {
    db: Database,
    name: String,
    owner: String,
    token: i64,
    held: bool,
}

impl Lock {
    pub(crate) fn new(db: Database, name: &str, owner: &str, token: i64) -> Lock {
        Lock {
            db,
            name: name.to_string(),
            owner: owner.to_string(),
            token,
            held: true,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner it was acquired for.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// This acquisition's fencing token: strictly greater than every token
    /// handed out before. Pass it along with writes to fence off a holder
    /// whose lock lapsed.
    pub fn fencing_token(&self) -> i64 {
        self.token
    }

    /// Extends the lock to `ttl_s` seconds from now. False if it was lost
    /// (lapsed, and possibly taken by someone else).
    pub fn heartbeat(&self, ttl_s: u64) -> Result<bool> {
        let ttl = honker_core::validate::positive_secs("ttl_s", secs(ttl_s))?;
        self.db
            .core
            .run(|c, now| core::renew(c, &self.name, self.token, ttl, now))
    }

    /// Releases the lock now. False if it had already been lost.
    pub fn release(mut self) -> Result<bool> {
        self.held = false;
        self.db
            .core
            .run(|c, _| core::release(c, &self.name, self.token))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held {
            let _ = self
                .db
                .core
                .run(|c, _| core::release(c, &self.name, self.token));
        }
    }
}

pub(crate) fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 1000)
}
