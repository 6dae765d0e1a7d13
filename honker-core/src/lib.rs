//! `honker-core` is the engine beneath every honker package: durable
//! queues, durable streams with consumer offsets, ephemeral pub/sub, cron
//! schedules, advisory locks, rate limits and job results, all as tables in
//! one SQLite file.
//!
//! Every operation is a function taking a `&rusqlite::Connection` and the
//! current time in milliseconds, so the Rust crate, the Python and Node
//! packages and the SQLite loadable extension all run exactly the same SQL.
//! Applications should use the `honker` crate (or their language's
//! package); this crate is for writing bindings.
//!
//! ```
//! use honker_core::{queue, schema};
//! let conn = rusqlite::Connection::open_in_memory()?;
//! schema::migrate(&conn)?;
//! let id = queue::enqueue(&conn, "emails", r#"{"to":"a@b.c"}"#, &Default::default(), 3, 1_000)?;
//! let jobs = queue::claim(&conn, "emails", "w1", 1, std::time::Duration::from_secs(30), 1_000)?;
//! assert_eq!(jobs[0].id, id);
//! assert!(queue::ack(&conn, jobs[0].lease(), 1_001)?);
//! # Ok::<(), honker_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod clock;
pub mod cron;
pub mod db;
mod error;
pub mod keepalive;
pub mod lock;
pub mod notify;
pub mod queue;
pub mod rate_limit;
pub mod result;
pub mod scheduler;
pub mod schema;
#[cfg(feature = "functions")]
pub mod sql;
pub mod statement;
pub mod stream;
pub mod validate;
pub mod wait;
pub mod wal;
pub mod watcher;

pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{Db, OpenOptions, TxKey};
pub use error::{guard, panic_message, Error, Result};
pub use queue::{EnqueueOpts, JobRecord, JobState, Lease, QueueOpts, QueueStats};
pub use stream::{Event, Retention};

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
