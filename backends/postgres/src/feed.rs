//! How the wake path hears of commits on PostgreSQL: a connection per
//! process (the watcher's thread) LISTENs on `{schema}_wake`, which every
//! honker function that makes work available NOTIFYs once per transaction.
//! A notification arrives only after its transaction committed, so there is
//! nothing to re-check. When the connection drops it is made again (with a
//! back-off), and the reconnection itself counts as a commit: waiters look
//! again at once, in case one was missed meanwhile. The watcher's safety
//! poll still runs on top.

use crate::errors::from_pg;
use honker_core::model::Notification;
use honker_core::store::{Feed, Poke, Source};
use honker_core::Result;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The feed of one database and schema.
pub struct PgFeed {
    /// The listening connection's settings (a separate `listen` URL, for a
    /// pooler in transaction mode, where LISTEN does not work).
    listen: Config,
    /// The watcher's own connection's settings.
    config: Config,
    schema: String,
    /// Moves on every notification heard and every reconnection.
    heard: Arc<AtomicU64>,
}

impl PgFeed {
    pub(crate) fn new(config: Config, listen: Config, schema: &str) -> PgFeed {
        PgFeed {
            listen,
            config,
            schema: schema.to_string(),
            heard: Arc::new(AtomicU64::new(0)),
        }
    }
}

struct PgSource {
    client: Client,
    schema: String,
    heard: Arc<AtomicU64>,
    seen: u64,
}

impl Feed for PgFeed {
    fn open(&self) -> Result<Box<dyn Source>> {
        let client = self.config.connect(NoTls).map_err(from_pg)?;
        Ok(Box::new(PgSource {
            client,
            schema: self.schema.clone(),
            seen: self.heard.load(Ordering::SeqCst),
            heard: self.heard.clone(),
        }))
    }

    fn watch(&self, poke: Arc<dyn Poke>) -> Option<Box<dyn Send + Sync>> {
        let stop = Arc::new(AtomicBool::new(false));
        let (config, channel, heard, done) = (
            self.listen.clone(),
            format!("{}_wake", self.schema),
            self.heard.clone(),
            stop.clone(),
        );
        std::thread::Builder::new()
            .name("honker-pg-listen".into())
            .spawn(move || listen(config, &channel, &heard, &*poke, &done))
            .ok()?;
        Some(Box::new(Stopper(stop)))
    }

    fn recheck_after_poke(&self) -> bool {
        false
    }
}

/// Stops the listening thread when dropped (it notices within 250 ms).
struct Stopper(Arc<AtomicBool>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// How long one wait for a notification lasts before the thread looks at
/// its stop flag.
const TICK: Duration = Duration::from_millis(250);

fn listen(config: Config, channel: &str, heard: &AtomicU64, poke: &dyn Poke, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(50);
    while !stop.load(Ordering::SeqCst) {
        let client = config.connect(NoTls).and_then(|mut c| {
            c.batch_execute(&format!("LISTEN \"{channel}\""))?;
            Ok(c)
        });
        let mut client = match client {
            Ok(c) => c,
            Err(_) => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        // Something may have been committed while nobody listened.
        heard.fetch_add(1, Ordering::SeqCst);
        poke.poke(false);
        'connected: while !stop.load(Ordering::SeqCst) {
            let mut n = client.notifications();
            let mut it = n.timeout_iter(TICK);
            loop {
                match it.next() {
                    Ok(Some(_)) => {
                        heard.fetch_add(1, Ordering::SeqCst);
                        poke.poke(false);
                    }
                    Err(_) => break 'connected,
                    Ok(None) => break,
                }
            }
            drop(it);
            drop(n);
            if client.is_closed() {
                break;
            }
        }
    }
}

impl Source for PgSource {
    fn changed(&mut self) -> Result<bool> {
        let now = self.heard.load(Ordering::SeqCst);
        Ok(std::mem::replace(&mut self.seen, now) != now)
    }

    fn latest_notification(&mut self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                &format!("SELECT last FROM {}.notify_head", self.schema),
                &[],
            )
            .map_err(from_pg)?;
        Ok(row.get(0))
    }

    fn notifications_after(&mut self, after: i64, limit: usize) -> Result<Vec<Notification>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .client
            .query(
                &format!(
                    "SELECT id, channel, payload, created_at FROM {}.notifications
                     WHERE id > $1 ORDER BY id LIMIT $2",
                    self.schema
                ),
                &[&after, &limit],
            )
            .map_err(from_pg)?
            .iter()
            .map(crate::store::notification_row)
            .collect())
    }
}
