//! `honker-core` is the engine beneath every honker package: durable
//! queues, durable streams with consumer offsets, ephemeral pub/sub, cron
//! schedules, advisory locks, rate limits and job results, all as tables in
//! one database file.
//!
//! Its layers, each a module (see docs/ARCHITECTURE.md):
//!
//! - [`model`]: the values operations take and return, host-neutral;
//! - [`store`]: storage, one method per operation (the [`store::Store`]
//!   trait), with SQLite as its implementation ([`store::sqlite`]) and a
//!   conformance suite any implementation must pass ([`store::conformance`]);
//! - [`handle`]: the handle on one file ([`Db`]): its connection, who owns
//!   the open transaction ([`Caller`]), commit hooks, and the operation
//!   surface every binding calls ([`Ops`]);
//! - [`wake`]: the wake path (watcher, listeners, stop flags) and the
//!   blocking operations built on it (claim the next job, follow a stream,
//!   run the scheduler), subscribed to the handle's commit hooks;
//! - [`cron`] and [`clock`]: schedules and time; [`validate`]: argument rules.
//!
//! Applications use the `honker` crate (or their language's package); this
//! crate is for writing bindings.
//!
//! ```
//! use honker_core::{Caller, EnqueueOpts, OpenOptions};
//! # let dir = std::env::temp_dir().join(format!("honker-core-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let db = honker_core::open(dir.join("app.db"), OpenOptions::default())?;
//! let ops = db.by(Caller::this_thread());
//! let id = ops.enqueue("emails", r#"{"to":"a@b.c"}"#, &EnqueueOpts::default(), 3)?;
//! let jobs = ops.claim("emails", "w1", 1, std::time::Duration::from_secs(30))?;
//! assert_eq!(jobs[0].id, id);
//! assert!(ops.ack(jobs[0].lease())?);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), honker_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod clock;
pub mod cron;
mod error;
pub mod handle;
pub mod json;
pub mod model;
pub mod store;
pub mod validate;
pub mod wake;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{guard, panic_message, Error, ErrorKind, Result};
pub use handle::{At, Caller, Db, OpenOptions, Ops, TxKey};
pub use model::{
    EnqueueOpts, Event, JobFilter, JobRecord, JobState, Lease, QueueControls, QueueOpts,
    QueueRateLimit, QueueRetention, QueueStats, QueueSummary, Retention, SqlValue, StreamConsumer,
    StreamSummary, EVENTS_STREAM, PRUNE_BATCH,
};

/// Opens (creating if needed) the database at `path` with the wake path
/// attached: what every binding opens with.
pub fn open(path: impl AsRef<std::path::Path>, opts: OpenOptions) -> Result<Db> {
    let db = Db::open(path, opts)?;
    wake::attach(&db);
    Ok(db)
}

/// Decodes a JSON payload (of a job, event or notification) into `T`.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &str) -> Result<T> {
    serde_json::from_str(payload).map_err(|e| Error::Decode {
        reason: e.to_string(),
    })
}

/// Encodes a value as a JSON payload.
pub fn encode<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidJson {
        name: what,
        reason: e.to_string(),
    })
}

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Temporary directories and databases for this crate's tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::{Db, OpenOptions};
    use std::path::{Path, PathBuf};

    /// A fresh directory, removed when dropped.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "honker-core-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        /// Opens `name` in this directory with the default options.
        pub fn open(&self, name: &str) -> Db {
            Db::open(self.0.join(name), OpenOptions::default()).unwrap()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
