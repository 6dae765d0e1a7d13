//! The PostgreSQL [`Engine`]: what `open("postgresql://...")` opens. One
//! connection per handle (the handle serializes its calls, as for SQLite),
//! honker's schema migrated at open, the server's clock, and the
//! LISTEN/NOTIFY feed for the wake path.
//!
//! The URL is libpq's, plus two parameters of honker's own, taken out
//! before connecting: `schema` (default `honker`) and `listen_url` (a
//! percent-encoded URL for the listening connection, for a pooler in
//! transaction mode such as pgbouncer, where LISTEN does not work: give the
//! pooler's URL and, here, the server's).

use crate::errors::from_pg;
use crate::feed::PgFeed;
use crate::store::PgStore;
use honker_core::store::{Engine, Feed, Store};
use honker_core::{Clock, Db, Error, OpenOptions, Result};
use postgres::{Config, NoTls};
use std::str::FromStr;
use std::sync::Arc;

/// The schema honker's tables go in unless the URL says `schema=`.
pub const DEFAULT_SCHEMA: &str = "honker";

/// Registers this engine with honker-core: from now on `postgresql://` and
/// `postgres://` URLs open PostgreSQL databases in every binding of this
/// process. Idempotent.
pub fn register() {
    honker_core::store::register(open_engine);
}

/// Opens the PostgreSQL database at `url` (registering the engine first),
/// with the wake path attached: the same as `honker_core::open(url, opts)`.
pub fn open(url: &str, opts: OpenOptions) -> Result<Db> {
    register();
    honker_core::open(url, opts)
}

/// The URL split: what the client connects with, the schema, the listening
/// connection's URL, and the name the handle shows (no password).
#[derive(Debug)]
struct Target {
    connect: String,
    schema: String,
    listen: Option<String>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split(url: &str) -> Result<Target> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut schema = DEFAULT_SCHEMA.to_string();
    let mut listen = None;
    let mut rest = Vec::new();
    for kv in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty())
    {
        match kv.split_once('=') {
            Some(("schema", v)) => schema = decode(v),
            Some(("listen_url", v)) => listen = Some(decode(v)),
            _ => rest.push(kv),
        }
    }
    crate::check_schema(&schema)?;
    let connect = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(Target {
        connect,
        schema,
        listen,
    })
}

fn config(url: &str, shown: &str) -> Result<Config> {
    Config::from_str(url).map_err(|e| Error::CannotOpen {
        path: shown.to_string(),
        reason: e.to_string(),
    })
}

/// A clock that reads the server's time: this host's, moved by the
/// difference measured at open.
#[derive(Debug)]
struct ServerClock {
    offset_ms: i64,
}

impl Clock for ServerClock {
    fn now_ms(&self) -> i64 {
        honker_core::clock::system_now_ms() + self.offset_ms
    }

    fn is_system(&self) -> bool {
        true
    }
}

struct PgEngine {
    store: PgStore,
    name: String,
    feed: Arc<PgFeed>,
    clock: Option<Arc<dyn Clock>>,
}

fn open_engine(url: &str, opts: &OpenOptions) -> Result<Box<dyn Engine>> {
    let target = split(url)?;
    let shown = format!(
        "{}{}",
        crate::pool::redact(&target.connect),
        if target.schema == DEFAULT_SCHEMA {
            String::new()
        } else {
            format!("#schema={}", target.schema)
        }
    );
    let cfg = config(&target.connect, &shown)?;
    let listen = match &target.listen {
        Some(l) => config(l, &crate::pool::redact(l))?,
        None => cfg.clone(),
    };
    let mut client = cfg.connect(NoTls).map_err(|e| Error::CannotOpen {
        path: shown.clone(),
        reason: from_pg(e).to_string(),
    })?;
    crate::migrate(&mut client, &target.schema)?;
    let server_clock = opts.clock.is_system();
    let clock: Option<Arc<dyn Clock>> = if server_clock {
        let before = honker_core::clock::system_now_ms();
        let server: i64 = client
            .query_one(&format!("SELECT {}.now_ms()", target.schema), &[])
            .map_err(from_pg)?
            .get(0);
        let after = honker_core::clock::system_now_ms();
        Some(Arc::new(ServerClock {
            offset_ms: server - (before + after) / 2,
        }))
    } else {
        None
    };
    Ok(Box::new(PgEngine {
        feed: Arc::new(PgFeed::new(cfg, listen, &target.schema)),
        store: PgStore::new(client, &target.schema, server_clock),
        name: shown,
        clock,
    }))
}

impl Engine for PgEngine {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn begin(&mut self) -> Result<()> {
        self.store.batch("BEGIN")?;
        self.store.set_in_tx(true);
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        let aborted = self.store.set_in_tx(false);
        if aborted {
            let _ = self.store.batch("ROLLBACK");
            return Err(Error::Postgres {
                sqlstate: "25P02".into(),
                message: "an operation failed inside this transaction, so PostgreSQL aborted it: \
                          it was rolled back, nothing in it was committed"
                    .into(),
            });
        }
        self.store.batch("COMMIT").inspect_err(|_| {
            let _ = self.store.batch("ROLLBACK");
        })
    }

    fn rollback(&mut self) -> Result<()> {
        self.store.set_in_tx(false);
        self.store.batch("ROLLBACK")
    }

    fn take_wrote(&mut self) -> bool {
        self.store.take_wrote()
    }

    fn close(&mut self) -> Result<()> {
        // The connection closes when the handle drops the engine.
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn feed(&self) -> Arc<dyn Feed> {
        self.feed.clone()
    }

    fn unsupported(&self, what: &str) -> Error {
        Error::Postgres {
            sqlstate: "0A000".into(),
            message: format!(
                "{what} is SQLite's; this database is PostgreSQL ({})",
                self.name
            ),
        }
    }

    fn clock(&self) -> Option<Arc<dyn Clock>> {
        self.clock.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honkers_own_parameters_are_taken_out_of_the_url() {
        let t = split("postgresql://u:p@h/db?schema=jobs&sslmode=disable").unwrap();
        assert_eq!(t.connect, "postgresql://u:p@h/db?sslmode=disable");
        assert_eq!(t.schema, "jobs");
        let t = split("postgres://h/db?listen_url=postgres%3A%2F%2Fh2%2Fdb").unwrap();
        assert_eq!(t.connect, "postgres://h/db");
        assert_eq!(t.schema, DEFAULT_SCHEMA);
        assert_eq!(t.listen.as_deref(), Some("postgres://h2/db"));
        assert_eq!(
            split("postgres://h/db?schema=Bad-Name").unwrap_err().code(),
            "invalid_argument"
        );
    }
}
