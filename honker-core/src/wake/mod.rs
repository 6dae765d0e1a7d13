//! The wake path: what tells a waiting worker, consumer or listener that
//! something was committed, and the blocking operations built on it. It
//! sits above the handle: it hears of the handle's commits and close
//! through [`crate::handle::Hooks`], attached by [`attach`].

pub mod keepalive;
pub mod stop;
pub mod wait;
pub mod watcher;

use crate::error::{Error, Result};
use crate::handle::{Db, Hooks};
use std::sync::{Arc, Mutex, Weak};
use watcher::{ListenerQueue, Watcher};

/// What the wake path keeps per handle: the file's watcher (shared by every
/// handle on the file in this process) and the listeners this handle made,
/// which its close ends.
struct Attached {
    watcher: Arc<Watcher>,
    listeners: Mutex<Vec<Weak<ListenerQueue>>>,
}

impl Hooks for Attached {
    fn committed(&self) {
        self.watcher.local_commit();
    }

    fn closed(&self) {
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if let Some(l) = l.upgrade() {
                l.close();
            }
        }
        self.watcher.interrupt();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Attaches the wake path to `db` (once): its commits wake this process's
/// waiters at once, and, when automatic checkpoints are on, the watcher's
/// thread starts so that an idle file's WAL gets truncated
/// ([`crate::store::sqlite::wal`]). `crate::open` does this at open; a wait
/// on a handle opened otherwise does it on first use.
pub fn attach(db: &Db) -> Arc<Watcher> {
    let hooks = db.attach(|| {
        let watcher = match db.feed() {
            Some(feed) => Watcher::for_feed(db.path().to_path_buf(), feed),
            None => {
                let watcher = Watcher::for_path(db.path());
                if db.options().wal_autocheckpoint > 0 {
                    watcher.truncate_wal_when_idle();
                }
                watcher
            }
        };
        Arc::new(Attached {
            watcher,
            listeners: Mutex::new(Vec::new()),
        })
    });
    attached(hooks).watcher.clone()
}

fn attached(hooks: &Arc<dyn Hooks>) -> &Attached {
    hooks
        .as_any()
        .downcast_ref::<Attached>()
        .expect("only the wake path attaches hooks to a handle")
}

/// The watcher of `db`'s file, attaching the wake path if needed.
pub fn watcher(db: &Db) -> Arc<Watcher> {
    match db.hooks() {
        Some(h) => attached(h).watcher.clone(),
        None => attach(db),
    }
}

/// Starts listening on `channel` for notifications committed from now on.
/// Closing `db` closes the listener.
pub fn listen(db: &Db, channel: &str) -> Result<Arc<ListenerQueue>> {
    if db.is_closed() {
        return Err(Error::Closed);
    }
    let watcher = watcher(db);
    let q = watcher.listen(channel)?;
    let hooks = db.hooks().expect("attached above");
    let mut ls = attached(hooks)
        .listeners
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    ls.retain(|l| l.strong_count() > 0);
    ls.push(Arc::downgrade(&q));
    Ok(q)
}
