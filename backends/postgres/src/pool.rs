//! A small pool of connections to one server: a connection is taken for an
//! operation and given back after, so a process holds few connections
//! whatever its threads do.

use crate::error;
use honker_core::{Error, Result};
use postgres::{Client, Config, NoTls};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How the pool connects and how many connections it keeps.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// At most this many connections at once (default 4).
    pub max_size: usize,
    /// How long taking a connection waits for one to come free before it
    /// fails with `busy` (default 30 s).
    pub wait: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 4,
            wait: Duration::from_secs(30),
        }
    }
}

struct Inner {
    config: Config,
    opts: PoolOptions,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    idle: Vec<Client>,
    open: usize,
}

/// Connections to one PostgreSQL server. Cheap to clone (shared).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool for `url` (`postgresql://` or `postgres://`, or libpq's
    /// `key=value` form). Connects lazily.
    pub fn new(url: &str, opts: PoolOptions) -> Result<Pool> {
        if opts.max_size == 0 {
            return Err(Error::invalid("max_size", "must be at least 1"));
        }
        let config = Config::from_str(url).map_err(|e| Error::CannotOpen {
            path: redact(url),
            reason: e.to_string(),
        })?;
        Ok(Pool {
            inner: Arc::new(Inner {
                config,
                opts,
                state: Mutex::new(State::default()),
                freed: Condvar::new(),
            }),
        })
    }

    /// A connection, idle or new, waiting up to the pool's `wait` while
    /// all are taken.
    pub fn get(&self) -> Result<Pooled> {
        let inner = &self.inner;
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(client) = st.idle.pop() {
                if !client.is_closed() {
                    return Ok(Pooled {
                        client: Some(client),
                        pool: self.clone(),
                    });
                }
                st.open -= 1;
            }
            if st.open < inner.opts.max_size {
                st.open += 1;
                drop(st);
                return match inner.config.connect(NoTls) {
                    Ok(client) => Ok(Pooled {
                        client: Some(client),
                        pool: self.clone(),
                    }),
                    Err(e) => {
                        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                        st.open -= 1;
                        inner.freed.notify_one();
                        Err(error(e))
                    }
                };
            }
            let (next, timeout) = inner
                .freed
                .wait_timeout(st, inner.opts.wait)
                .unwrap_or_else(|p| p.into_inner());
            st = next;
            if timeout.timed_out() && st.idle.is_empty() && st.open >= inner.opts.max_size {
                return Err(Error::Busy {
                    timeout_ms: inner.opts.wait.as_millis() as u64,
                });
            }
        }
    }

    /// Connections open now (idle or taken).
    pub fn open_connections(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
    }
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A connection taken from a [`Pool`]; given back when dropped (closed
/// instead if it broke or was left inside a transaction).
pub struct Pooled {
    client: Option<Client>,
    pool: Pool,
}

impl Deref for Pooled {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(mut client) = self.client.take() else {
            return;
        };
        let inner = &self.pool.inner;
        // A connection that broke, or that a panic left mid-transaction,
        // is not given to the next caller.
        let reusable = !client.is_closed() && client.batch_execute("ROLLBACK").is_ok();
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if reusable {
            st.idle.push(client);
        } else {
            st.open -= 1;
        }
        inner.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact("postgresql://app:s3cret@db.internal:5432/app"),
            "postgresql://app:***@db.internal:5432/app"
        );
        assert_eq!(redact("postgresql://app@db/app"), "postgresql://app@db/app");
        assert_eq!(redact("host=/tmp dbname=x"), "host=/tmp dbname=x");
    }
}
