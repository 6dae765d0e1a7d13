use crate::{Database, Result};
use honker_core::wake::keepalive::Keeper;

/// A held advisory lock: a guard. While it lives, a background thread
/// renews it every third of its TTL, so work that takes longer than the TTL
/// keeps the lock; if a renewal finds it gone anyway (the process stalled
/// past the TTL and another owner took it), [`Lock::check`] says so with
/// `Error::LockLost`. Released when dropped or by [`Lock::release`]; if the
/// process dies, it lapses at its TTL.
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
    keeper: Keeper,
}

impl Lock {
    pub(crate) fn new(
        db: Database,
        name: &str,
        owner: &str,
        token: i64,
        ttl_ms: i64,
    ) -> Result<Lock> {
        let keeper = Keeper::start(&db.core, name, token, ttl_ms)?;
        Ok(Lock {
            db,
            name: name.to_string(),
            owner: owner.to_string(),
            token,
            held: true,
            keeper,
        })
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

    /// `Err(Error::LockLost)` if the lock was found gone (by the background
    /// renewal or a [`Lock::heartbeat`]); call it before work that must only
    /// happen under the lock. Reads no file.
    pub fn check(&self) -> Result<()> {
        self.keeper.check()
    }

    /// Extends the lock to `ttl_s` seconds from now (and renews with that
    /// TTL from then on). False if it was lost (lapsed, and possibly taken
    /// by someone else).
    pub fn heartbeat(&self, ttl_s: u64) -> Result<bool> {
        let ttl = honker_core::validate::positive_secs("ttl_s", secs(ttl_s))?;
        let held = self.db.ops().renew_lock(&self.name, self.token, ttl)?;
        if held {
            self.keeper.set_ttl(ttl);
        } else {
            self.keeper.mark_lost();
        }
        Ok(held)
    }

    /// Releases the lock now. False if it had already been lost.
    pub fn release(mut self) -> Result<bool> {
        self.held = false;
        self.keeper.stop();
        self.db.ops().release_lock(&self.name, self.token)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held {
            self.keeper.stop();
            let _ = self.db.ops().release_lock(&self.name, self.token);
        }
    }
}

pub(crate) fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 1000)
}
