use crate::{Database, Result, Transaction};
use honker_core::{Event, Retention};
use serde::Serialize;
use std::sync::Arc;

/// A named durable stream on a [`Database`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stream {
    db: Database,
    name: Arc<str>,
}

impl Stream {
    pub(crate) fn new(db: Database, name: &str) -> Stream {
        Stream {
            db,
            name: name.into(),
        }
    }

    /// The database this stream lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Follows the stream as `consumer`: replays from its saved offset,
    /// then blocks for new events. See [`crate::Subscription`].
    pub fn subscribe(&self, consumer: &str) -> Result<crate::Subscription> {
        crate::Subscription::open(self, consumer)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends an event; returns its offset.
    pub fn publish<P: Serialize + ?Sized>(&self, payload: &P) -> Result<i64> {
        self.publish_inner(None, None, payload)
    }

    /// Appends an event with a key (for the consumer to partition or
    /// deduplicate by); returns its offset.
    pub fn publish_with_key<P: Serialize + ?Sized>(&self, key: &str, payload: &P) -> Result<i64> {
        self.publish_inner(None, Some(key), payload)
    }

    /// Appends an event inside `tx`: it exists only if `tx` commits.
    pub fn publish_tx<P: Serialize + ?Sized>(&self, tx: &Transaction, payload: &P) -> Result<i64> {
        self.publish_inner(Some(tx), None, payload)
    }

    /// [`Stream::publish_with_key`] inside `tx`.
    pub fn publish_with_key_tx<P: Serialize + ?Sized>(
        &self,
        tx: &Transaction,
        key: &str,
        payload: &P,
    ) -> Result<i64> {
        self.publish_inner(Some(tx), Some(key), payload)
    }

    fn publish_inner<P: Serialize + ?Sized>(
        &self,
        tx: Option<&Transaction>,
        key: Option<&str>,
        payload: &P,
    ) -> Result<i64> {
        let payload = honker_core::encode("payload", payload)?;
        match tx {
            Some(tx) => tx.ops(&self.db)?.publish(&self.name, key, &payload),
            None => self.db.ops().publish(&self.name, key, &payload),
        }
    }

    /// Up to `limit` events after `offset`, oldest first.
    pub fn read_since(&self, offset: i64, limit: usize) -> Result<Vec<Event>> {
        self.db.ops().read_since(&self.name, offset, limit)
    }

    /// The newest offset (0 if the stream is empty).
    pub fn last_offset(&self) -> Result<i64> {
        self.db.ops().last_offset(&self.name)
    }

    /// Records that `consumer` handled everything up to `offset`. Offsets
    /// only move forward: false (and no change) if `offset` is not beyond
    /// the saved one.
    pub fn save_offset(&self, consumer: &str, offset: i64) -> Result<bool> {
        self.db.ops().save_offset(&self.name, consumer, offset)
    }

    /// [`Stream::save_offset`] inside `tx`, so the offset moves exactly when
    /// the consumer's own writes commit.
    pub fn save_offset_tx(&self, tx: &Transaction, consumer: &str, offset: i64) -> Result<bool> {
        tx.ops(&self.db)?.save_offset(&self.name, consumer, offset)
    }

    /// The offset `consumer` last saved (0 if none).
    pub fn get_offset(&self, consumer: &str) -> Result<i64> {
        self.db.ops().get_offset(&self.name, consumer)
    }

    /// Stores how much of the stream to keep (in the file, for every
    /// process). Publishing applies it every 128 offsets; [`Stream::prune`]
    /// applies it now.
    pub fn set_retention(&self, retention: Retention) -> Result<()> {
        self.db.ops().set_retention(&self.name, retention)
    }

    /// The stored retention.
    pub fn retention(&self) -> Result<Retention> {
        self.db.ops().retention(&self.name)
    }

    /// Applies the retention now; returns how many events were removed.
    pub fn prune(&self) -> Result<usize> {
        self.db.ops().prune_stream(&self.name)
    }
}
