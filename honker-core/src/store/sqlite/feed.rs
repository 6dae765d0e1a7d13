//! How the wake path hears of a SQLite file's commits (see
//! [`crate::wake::watcher`]): a connection of the watcher's own reads the
//! file's change counter (`PRAGMA data_version`) and its notifications, and
//! the file's directory is watched (inotify on Linux, through the `notify`
//! crate) for writes to the database or its `-wal`.
//!
//! The `-wal` write that raises an event happens *before* the commit
//! becomes visible (the wal-index in `-shm` is updated through mmap, which
//! raises no event), so the watcher looks again for a while after a poke
//! ([`Feed::recheck_after_poke`]). The watcher's connection never opens the
//! database or `-shm` with file descriptors of its own (closing such a
//! descriptor would drop the process's POSIX locks).

use super::{conn, notify, wal};
use crate::error::Result;
use crate::model::Notification;
use crate::store::{Feed, Poke, Source};
use ::notify as fs;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The feed of the SQLite file at `path`.
pub struct SqliteFeed {
    path: PathBuf,
}

impl SqliteFeed {
    /// The feed of the file at `path` (canonical, as the watcher keys it).
    pub fn new(path: &Path) -> SqliteFeed {
        SqliteFeed {
            path: path.to_path_buf(),
        }
    }
}

struct SqliteSource {
    conn: Connection,
    path: PathBuf,
    data_version: i64,
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

impl Feed for SqliteFeed {
    fn open(&self) -> Result<Box<dyn Source>> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_millis(50))?;
        let data_version = data_version(&conn)?;
        Ok(Box::new(SqliteSource {
            conn,
            path: self.path.clone(),
            data_version,
        }))
    }

    fn watch(&self, poke: Arc<dyn Poke>) -> Option<Box<dyn Send + Sync>> {
        watch_dir(&self.path, poke).map(|w| Box::new(w) as Box<dyn Send + Sync>)
    }

    fn recheck_after_poke(&self) -> bool {
        true
    }
}

impl Source for SqliteSource {
    /// Busy counts as a change.
    fn changed(&mut self) -> Result<bool> {
        match data_version(&self.conn) {
            Ok(v) if v == self.data_version => Ok(false),
            Ok(v) => {
                self.data_version = v;
                Ok(true)
            }
            Err(e) if conn::is_busy(&e) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    fn latest_notification(&mut self) -> Result<i64> {
        notify::latest_id(&self.conn)
    }

    fn notifications_after(&mut self, after: i64, limit: usize) -> Result<Vec<Notification>> {
        notify::read_after(&self.conn, after, None, limit)
    }

    fn idle(&mut self) {
        wal::truncate_if_idle(&self.conn, &self.path);
    }
}

/// Watches the database's directory; events on the database's own files
/// poke the watcher, parked while nobody waits. `None` if the platform
/// watch cannot be set up (the safety poll still runs).
fn watch_dir(path: &Path, poke: Arc<dyn Poke>) -> Option<fs::RecommendedWatcher> {
    use fs::Watcher as _;
    let dir = path.parent()?.to_path_buf();
    let name = path.file_name()?.to_string_lossy().into_owned();
    let wal = format!("{name}-wal");
    let mut w = fs::recommended_watcher(move |ev: fs::Result<fs::Event>| {
        // An error (such as the kernel's event queue overflowing) or a
        // rescan request may hide a commit: treat it as one.
        let ours = match &ev {
            Err(_) => true,
            Ok(ev) if ev.need_rescan() => true,
            Ok(ev) if matches!(ev.kind, fs::EventKind::Access(_)) => false,
            Ok(ev) => ev.paths.iter().any(|p| {
                p.file_name()
                    .map(|f| f == name.as_str() || f == wal.as_str())
                    .unwrap_or(false)
            }),
        };
        if ours {
            poke.poke(true);
        }
    })
    .ok()?;
    w.watch(&dir, fs::RecursiveMode::NonRecursive).ok()?;
    Some(w)
}
