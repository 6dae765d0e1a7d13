//! One error type for every honker operation, with a stable [`Error::code`].

/// Everything that can go wrong in honker.
///
/// Bindings map [`Error::code`] to their own error types (a Python exception
/// subclass per code, a Node `Error` with `.code`), so codes never change
/// once released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was out of range or empty (a zero TTL, an empty queue name).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name as the caller sees it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A payload or value that must be JSON was not.
    #[error("invalid JSON in `{name}`: {reason}")]
    InvalidJson {
        /// Which value was not JSON (`payload`, `value`).
        name: &'static str,
        /// The parser's message.
        reason: String,
    },

    /// A cron expression could not be parsed or never fires.
    #[error("invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone {name:?} (expected an IANA name such as \"Europe/Paris\")")]
    InvalidTimezone {
        /// The zone name as given.
        name: String,
    },

    /// A named thing (a dead job, a schedule) does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of thing was looked up.
        kind: &'static str,
        /// Its id or name.
        id: String,
    },

    /// A call outside a transaction while one is open: from the caller
    /// that holds it (`own`: waiting would deadlock; pass the transaction),
    /// or from one that may not wait for another caller's (a call on an
    /// event loop's thread).
    #[error("{}", if *own {
        "this caller holds an open honker transaction, which this call would wait for: \
         pass that transaction to the call (Rust: the `_tx` method; Python: `tx=`; Node: `{ tx }`), \
         or commit or roll back first"
    } else {
        "another caller's honker transaction is open, and this call may not wait for it here \
         (it would block an event loop): make the call where it can wait (Python: its `_async` \
         twin; Node: the Promise form), or after that transaction ends"
    })]
    TransactionOpen {
        /// The caller holds the transaction itself.
        own: bool,
    },

    /// A transaction handle used after commit/rollback or on another database.
    #[error("transaction is no longer active on this database")]
    TransactionInactive,

    /// The database was closed.
    #[error("database is closed")]
    Closed,

    /// The handle was opened in another process and inherited through
    /// `fork()`; SQLite connections must not cross a fork. Open the
    /// database again in this process.
    #[error("this database handle was opened in process {opened_in} and inherited by fork(); open it again in this process")]
    Forked {
        /// The process that opened it.
        opened_in: u32,
    },

    /// The file was written by a newer honker whose schema this one does not know.
    #[error("database schema version {found} is newer than this honker supports ({supported}); upgrade honker")]
    SchemaTooNew {
        /// Version recorded in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },

    /// The database stayed locked by other writers for longer than the busy timeout.
    #[error("database is busy: another writer held the lock for longer than the busy timeout ({timeout_ms} ms)")]
    Busy {
        /// The busy timeout that elapsed.
        timeout_ms: u64,
    },

    /// A payload could not be decoded into the requested type.
    #[error("cannot decode payload: {reason}")]
    Decode {
        /// The deserializer's message.
        reason: String,
    },

    /// The wake path (file watcher) stopped; waiters get this instead of hanging.
    #[error("watcher stopped: {reason}")]
    Watcher {
        /// Why it stopped.
        reason: String,
    },

    /// The database file could not be opened or created (a missing
    /// directory, no permission, a read-only file system, not a database).
    #[error("cannot open database {path:?}: {reason}")]
    CannotOpen {
        /// The path as given.
        path: String,
        /// SQLite's (or the file system's) reason.
        reason: String,
    },

    /// A lock a helper was asked to take is held by someone else (the
    /// helpers that must hold it or fail: Python's `with db.lock(...)`,
    /// Node's `db.withLock`).
    #[error("lock {name:?} is held by someone else")]
    LockHeld {
        /// The lock's name.
        name: String,
    },

    /// A held lock was lost: its TTL ran out before it was renewed, and
    /// another owner may have taken it (the fencing token changed).
    #[error("lock {name:?} was lost (fencing token {token} no longer holds it)")]
    LockLost {
        /// The lock's name.
        name: String,
        /// The token this holder had.
        token: i64,
    },

    /// A job whose outcome was awaited (a task's result) went to the dead
    /// table instead of completing.
    #[error("job {id} failed ({reason}): {error}")]
    JobFailed {
        /// The job's id.
        id: i64,
        /// Why it died (`failed`, `max_attempts`, `lease_expired`, `expired`).
        reason: String,
        /// Its last error message.
        error: String,
    },

    /// A bug in honker: a panic inside the engine, caught before it could
    /// cross into the host (Python, Node, a SQL function). The operation
    /// did not happen (a transaction it had opened was rolled back).
    #[error("internal error in honker (a bug: please report it): {reason}")]
    Internal {
        /// The panic's message.
        reason: String,
    },

    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[source] rusqlite::Error),

    /// An error from PostgreSQL (the server's, with its SQLSTATE, or the
    /// connection's).
    #[error("postgres [{sqlstate}]: {message}")]
    Postgres {
        /// The server's SQLSTATE (`"connection"` when there is none: the
        /// connection failed or was lost).
        sqlstate: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::InvalidJson { .. } => "invalid_json",
            Error::InvalidCron { .. } => "invalid_cron",
            Error::InvalidTimezone { .. } => "invalid_timezone",
            Error::NotFound { .. } => "not_found",
            Error::TransactionOpen { .. } => "transaction_open",
            Error::TransactionInactive => "transaction_inactive",
            Error::Closed => "closed",
            Error::Forked { .. } => "forked",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Busy { .. } => "busy",
            Error::Decode { .. } => "decode",
            Error::Watcher { .. } => "watcher",
            Error::CannotOpen { .. } => "cannot_open",
            Error::LockHeld { .. } => "lock_held",
            Error::LockLost { .. } => "lock_lost",
            Error::JobFailed { .. } => "job_failed",
            Error::Internal { .. } => "internal",
            Error::Sqlite(_) => "sqlite",
            Error::Postgres { .. } => "postgres",
        }
    }

    /// Every code [`Error::code`] can return, for bindings that build one
    /// exception class per code.
    pub const CODES: &'static [&'static str] = &[
        "invalid_argument",
        "invalid_json",
        "invalid_cron",
        "invalid_timezone",
        "not_found",
        "transaction_open",
        "transaction_inactive",
        "closed",
        "forked",
        "schema_too_new",
        "busy",
        "decode",
        "watcher",
        "cannot_open",
        "lock_held",
        "lock_lost",
        "job_failed",
        "internal",
        "sqlite",
        "postgres",
    ];

    /// Every code with the name of its exception class (where a language has
    /// one class per code: Python) and what it means: the one list the
    /// bindings derive their error types from.
    pub const KINDS: &'static [ErrorKind] = &[
        ErrorKind::new("invalid_argument", "InvalidArgument", "An argument was empty or out of range."),
        ErrorKind::new("invalid_json", "InvalidJson", "A payload or value was not JSON."),
        ErrorKind::new("invalid_cron", "InvalidCron", "A cron expression could not be parsed or never fires."),
        ErrorKind::new("invalid_timezone", "InvalidTimezone", "A time zone is not in the IANA database."),
        ErrorKind::new("not_found", "NotFound", "A dead job or schedule does not exist."),
        ErrorKind::new("transaction_open", "TransactionOpen", "A call outside the open transaction that would have to wait for it: from its owner (pass the transaction to the call) or from an event loop that must not block."),
        ErrorKind::new("transaction_inactive", "TransactionInactive", "A transaction used after commit or rollback."),
        ErrorKind::new("closed", "Closed", "The database is closed."),
        ErrorKind::new("forked", "Forked", "A handle inherited through fork(); open the database again in this process."),
        ErrorKind::new("schema_too_new", "SchemaTooNew", "The file was written by a newer honker."),
        ErrorKind::new("busy", "Busy", "Another writer held the lock past the busy timeout."),
        ErrorKind::new("decode", "DecodeError", "A payload could not be decoded."),
        ErrorKind::new("watcher", "WatcherError", "The wake path stopped."),
        ErrorKind::new("cannot_open", "CannotOpen", "The database file could not be opened or created (the message names the path)."),
        ErrorKind::new("lock_held", "LockHeld", "A lock that had to be taken is held by someone else."),
        ErrorKind::new("lock_lost", "LockLost", "A held lock lapsed and may have been taken by another owner."),
        ErrorKind::new("job_failed", "JobFailed", "An awaited job went to the dead table; the message has its reason and last error."),
        ErrorKind::new("internal", "InternalError", "A bug in honker, caught before it could crash the process."),
        ErrorKind::new("sqlite", "SqliteError", "Any other SQLite error."),
        ErrorKind::new("postgres", "PostgresError", "An error from PostgreSQL (the message has its SQLSTATE)."),
    ];

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}

/// Runs `f`, turning a panic inside it into [`Error::Internal`]: the
/// last-resort guard at every boundary between the engine and a host
/// (each binding's calls, each SQL function), so that no panic unwinds into
/// Python, Node or SQLite, or aborts the process.
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::Internal {
            reason: panic_message(payload.as_ref()),
        })
    })
}

/// The message a panic carried.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) {
                return Error::Busy { timeout_ms: 0 };
            }
        }
        Error::Sqlite(e)
    }
}

/// `Result` with honker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One error code as the bindings present it (see [`Error::KINDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind {
    /// The stable code ([`Error::code`]).
    pub code: &'static str,
    /// The exception class for it, in a language with one class per code.
    pub class: &'static str,
    /// What it means, one sentence.
    pub doc: &'static str,
}

impl ErrorKind {
    const fn new(code: &'static str, class: &'static str, doc: &'static str) -> ErrorKind {
        ErrorKind { code, class, doc }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_and_unique() {
        let samples = [
            Error::invalid("ttl", "must be positive"),
            Error::InvalidJson {
                name: "payload",
                reason: "x".into(),
            },
            Error::InvalidCron {
                expr: "x".into(),
                reason: "y".into(),
            },
            Error::InvalidTimezone { name: "x".into() },
            Error::NotFound {
                kind: "job",
                id: "1".into(),
            },
            Error::TransactionOpen { own: true },
            Error::TransactionInactive,
            Error::Closed,
            Error::Forked { opened_in: 1 },
            Error::SchemaTooNew {
                found: 9,
                supported: 1,
            },
            Error::Busy { timeout_ms: 5 },
            Error::Decode { reason: "x".into() },
            Error::Watcher { reason: "x".into() },
            Error::CannotOpen {
                path: "p".into(),
                reason: "r".into(),
            },
            Error::LockHeld { name: "m".into() },
            Error::LockLost {
                name: "m".into(),
                token: 1,
            },
            Error::JobFailed {
                id: 1,
                reason: "failed".into(),
                error: "boom".into(),
            },
            Error::Internal { reason: "x".into() },
            Error::Sqlite(rusqlite::Error::InvalidQuery),
            Error::Postgres {
                sqlstate: "42601".into(),
                message: "syntax error".into(),
            },
        ];
        let codes: Vec<_> = samples.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
        let kinds: Vec<_> = Error::KINDS.iter().map(|k| k.code).collect();
        assert_eq!(kinds, Error::CODES, "KINDS lists every code, in order");
        assert!(samples[0].to_string().contains("ttl"));
    }

    #[test]
    fn guard_turns_a_panic_into_an_internal_error() {
        let e = guard::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(e.code(), "internal");
        assert!(e.to_string().contains("boom 7"), "{e}");
        let e = guard::<()>(|| std::panic::panic_any(42u8)).unwrap_err();
        assert!(e.to_string().contains("without a message"), "{e}");
        assert_eq!(guard(|| Ok(5)).unwrap(), 5);
        assert_eq!(
            guard::<()>(|| Err(Error::Closed)).unwrap_err().code(),
            "closed"
        );
    }
}
