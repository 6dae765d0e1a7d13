//! Keeping the write-ahead log bounded.
//!
//! SQLite's automatic checkpoint is *passive*: it copies what it can back
//! into the database file without waiting for anyone. The WAL file restarts
//! from its beginning only when a writer starts while every frame has been
//! copied back and no reader still uses the WAL. With several processes
//! claiming and acking all the time there is always somebody in the WAL, so
//! that moment never comes: the file grew past 2 GB in 20 s under four
//! worker processes and never shrank (checkpoint starvation). Three rules
//! bound it:
//!
//! - Every connection honker opens gets a WAL hook ([`install`]) in place of
//!   SQLite's: past `wal_autocheckpoint` frames a commit runs a passive
//!   checkpoint (as SQLite does); past [`HARD_LIMIT_FACTOR`] times that it
//!   runs a *restart* checkpoint, which waits (at most
//!   [`RESTART_BUDGET`]) for the readers in the WAL to finish, so that the
//!   next writer starts the log again from the top.
//! - `journal_size_limit` is the hard limit, so a restarted WAL file is cut
//!   back to it.
//! - When the file has been idle for a safety-poll period, the watcher
//!   truncates the WAL to zero bytes ([`truncate_if_idle`]).
//!
//! A `wal_autocheckpoint` of 0 turns all three off: the application then
//! checkpoints by itself.

use crate::error::Result;
use rusqlite::{ffi, Connection};
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A commit restarts the WAL once it holds this many times
/// `wal_autocheckpoint` frames.
pub const HARD_LIMIT_FACTOR: u32 = 4;

/// Longest a commit waits, inside the restart checkpoint, for readers to
/// leave the WAL. If they have not, a later commit tries again.
pub const RESTART_BUDGET: Duration = Duration::from_millis(200);

/// Installs honker's WAL policy on `conn` for a threshold of
/// `autocheckpoint` frames (pages); 0 turns automatic checkpoints off.
pub fn install(conn: &Connection, autocheckpoint: u32) -> Result<()> {
    let every = c_int::try_from(autocheckpoint).unwrap_or(c_int::MAX);
    if every == 0 {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        return Ok(());
    }
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let hard = i64::from(every).saturating_mul(i64::from(HARD_LIMIT_FACTOR));
    conn.pragma_update(None, "journal_size_limit", hard.saturating_mul(page_size))?;
    // SAFETY: the hook's argument is the threshold itself (no pointer to
    // keep alive); the hook runs on the thread committing on `conn`.
    unsafe {
        ffi::sqlite3_wal_hook(conn.handle(), Some(hook), every as usize as *mut c_void);
    }
    Ok(())
}

/// The threshold [`install`] set on `conn` (0: none). Only for connections
/// honker configured: it puts honker's hook back in place of whatever it
/// finds.
pub fn autocheckpoint(conn: &Connection) -> u32 {
    // SAFETY: sqlite3_wal_hook returns the previous argument; putting it
    // straight back leaves the connection as it was.
    unsafe {
        let db = conn.handle();
        let arg = ffi::sqlite3_wal_hook(db, None, std::ptr::null_mut());
        if arg.is_null() {
            return 0;
        }
        ffi::sqlite3_wal_hook(db, Some(hook), arg);
        arg as usize as u32
    }
}

unsafe extern "C" fn hook(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    let every = arg as usize as c_int;
    if frames < every {
        return ffi::SQLITE_OK;
    }
    let hard = every.saturating_mul(HARD_LIMIT_FACTOR as c_int);
    if frames < hard {
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            name,
            ffi::SQLITE_CHECKPOINT_PASSIVE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    } else {
        super::conn::with_busy_timeout(RESTART_BUDGET, || {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_RESTART,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        });
    }
    // A checkpoint that could not finish is not the commit's failure.
    ffi::SQLITE_OK
}

/// The `-wal` file of the database at `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Truncates the WAL of an idle file to zero bytes, through `conn` (the
/// watcher's connection, whose busy timeout is short). Returns whether it
/// did. A file is idle when nothing was committed since the caller's last
/// look; a reader or writer that is busy right now makes this a no-op, to
/// be tried again at the next idle look. Only a `stat` touches the file
/// outside SQLite (opening and closing a descriptor on the database would
/// drop this process's locks on it).
pub fn truncate_if_idle(conn: &Connection, db: &Path) -> bool {
    if std::fs::metadata(wal_path(db)).map_or(0, |m| m.len()) == 0 {
        return false;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|busy| busy == 0)
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_reads_back_and_zero_turns_it_off() {
        let dir = crate::testutil::Dir::new();
        let c = Connection::open(dir.path().join("a.db")).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        install(&c, 1000).unwrap();
        assert_eq!(autocheckpoint(&c), 1000);
        assert_eq!(autocheckpoint(&c), 1000, "reading it leaves it in place");
        let limit: i64 = c
            .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(limit, 4 * 1000 * 4096);
        install(&c, 0).unwrap();
        assert_eq!(autocheckpoint(&c), 0);
    }
}
