//! Durable streams: an append-only log per stream name, per-consumer offsets
//! that only move forward, and retention by age and/or count.
//!
//! Offsets are positive, strictly increasing within a stream and never
//! reused (they are shared with other streams in the file, so they may skip
//! numbers). Offset 0 means "before the first event".

use super::conn::atomic;
use crate::clock::duration_ms;
use crate::error::{Error, Result};
use crate::model::*;
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;

/// Publishing runs the stream's retention every this many offsets.
pub const PRUNE_EVERY: i64 = 128;
const PRUNE_BATCH: i64 = 1000;

/// Appends an event and returns its offset. Every [`PRUNE_EVERY`] offsets
/// it also applies the stream's retention.
pub fn publish(
    conn: &Connection,
    stream: &str,
    key: Option<&str>,
    payload: &str,
    now: i64,
) -> Result<i64> {
    validate::name("stream", stream)?;
    if let Some(k) = key {
        validate::name("key", k)?;
    }
    validate::json("payload", payload)?;
    conn.prepare_cached(
        "INSERT INTO _honker_stream (stream, event_key, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![stream, key, payload, now])?;
    let offset = conn.last_insert_rowid();
    if offset % PRUNE_EVERY == 0 {
        prune(conn, stream, now)?;
    }
    Ok(offset)
}

/// Up to `limit` events of `stream` after offset `after`, oldest first.
pub fn read_since(conn: &Connection, stream: &str, after: i64, limit: usize) -> Result<Vec<Event>> {
    validate::name("stream", stream)?;
    Ok(conn
        .prepare_cached(
            "SELECT seq, stream, event_key, payload, created_at FROM _honker_stream
             WHERE stream = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3 + 0",
        )?
        .query_map(params![stream, after, limit as i64], |r| {
            Ok(Event {
                offset: r.get(0)?,
                stream: r.get(1)?,
                key: r.get(2)?,
                payload: r.get(3)?,
                created_at_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The newest offset of `stream` (0 if it has no events).
pub fn last_offset(conn: &Connection, stream: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce((SELECT seq FROM _honker_stream WHERE stream = ?1 ORDER BY seq DESC LIMIT 1), 0)",
        )?
        .query_row([stream], |r| r.get(0))?)
}

/// Records that `consumer` has handled `stream` up to and including
/// `offset`. Offsets only move forward: returns false (and changes nothing)
/// when `offset` is not beyond the saved one.
pub fn save_offset(
    conn: &Connection,
    stream: &str,
    consumer: &str,
    offset: i64,
    now: i64,
) -> Result<bool> {
    validate::name("stream", stream)?;
    validate::name("consumer", consumer)?;
    if offset < 0 {
        return Err(Error::invalid(
            "offset",
            format!("must not be negative, got {offset}"),
        ));
    }
    let n = conn
        .prepare_cached(
            "INSERT INTO _honker_stream_offsets (stream, consumer, seq, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stream, consumer) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
             WHERE excluded.seq > _honker_stream_offsets.seq",
        )?
        .execute(params![stream, consumer, offset, now])?;
    Ok(n == 1)
}

/// The offset `consumer` last saved for `stream` (0 if none).
pub fn get_offset(conn: &Connection, stream: &str, consumer: &str) -> Result<i64> {
    validate::name("stream", stream)?;
    validate::name("consumer", consumer)?;
    Ok(conn
        .prepare_cached(
            "SELECT seq FROM _honker_stream_offsets WHERE stream = ?1 AND consumer = ?2",
        )?
        .query_row(params![stream, consumer], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Stores the retention of `stream` in the file, so every process honours it.
pub fn set_retention(conn: &Connection, stream: &str, retention: Retention) -> Result<()> {
    validate::name("stream", stream)?;
    let max_age = match retention.max_age {
        Some(d) => Some(validate::positive_ms(
            "max_age",
            validate::duration_ms("max_age", d)?,
        )?),
        None => None,
    };
    let max_count = match retention.max_count {
        Some(0) => return Err(Error::invalid("max_count", "must be at least 1 when given")),
        Some(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO _honker_stream_config (stream, max_age_ms, max_count) VALUES (?1, ?2, ?3)
         ON CONFLICT (stream) DO UPDATE SET max_age_ms = excluded.max_age_ms, max_count = excluded.max_count",
    )?
    .execute(params![stream, max_age, max_count])?;
    Ok(())
}

/// The retention stored for `stream`.
pub fn get_retention(conn: &Connection, stream: &str) -> Result<Retention> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT max_age_ms, max_count FROM _honker_stream_config WHERE stream = ?1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Retention::default(),
        Some((age, count)) => Retention {
            max_age: age.map(|ms| Duration::from_millis(ms.max(0) as u64)),
            max_count: count.map(|n| n.max(0) as u64),
        },
    })
}

/// Applies `stream`'s retention now; returns how many events were removed.
/// The work is proportional to what is removed.
pub fn prune(conn: &Connection, stream: &str, now: i64) -> Result<usize> {
    validate::name("stream", stream)?;
    let retention = get_retention(conn, stream)?;
    if retention == Retention::default() {
        return Ok(0);
    }
    atomic(conn, |conn| {
        let mut removed = 0;
        if let Some(max) = retention.max_count {
            removed += conn
                .prepare_cached(
                    "DELETE FROM _honker_stream WHERE stream = ?1 AND seq <=
                     (SELECT seq FROM _honker_stream WHERE stream = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![stream, i64::try_from(max).unwrap_or(i64::MAX)])?;
        }
        if let Some(age) = retention.max_age {
            let cutoff = now.saturating_sub(duration_ms(age));
            // Events are appended in time order, so the old ones are at the
            // head: delete from the head in batches until one is young enough.
            let mut stmt = conn.prepare_cached(
                "DELETE FROM _honker_stream WHERE seq IN
                 (SELECT seq FROM _honker_stream WHERE stream = ?1 ORDER BY seq LIMIT ?3 + 0)
                 AND created_at < ?2",
            )?;
            loop {
                let n = stmt.execute(params![stream, cutoff, PRUNE_BATCH])?;
                removed += n;
                if (n as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        Ok(removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::store::sqlite::schema::test_db()
    }

    #[test]
    fn publish_read_and_offsets() {
        let c = db();
        let a = publish(&c, "orders", None, r#"{"id":1}"#, 10).unwrap();
        let _other = publish(&c, "audit", None, "1", 11).unwrap();
        let b = publish(&c, "orders", Some("user:7"), r#"{"id":2}"#, 12).unwrap();
        assert!(b > a);
        let evs = read_since(&c, "orders", 0, 10).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].key.as_deref(), Some("user:7"));
        assert_eq!(read_since(&c, "orders", a, 10).unwrap()[0].offset, b);
        assert_eq!(read_since(&c, "orders", 0, 1).unwrap().len(), 1);
        assert_eq!(last_offset(&c, "orders").unwrap(), b);
        assert_eq!(last_offset(&c, "nothing").unwrap(), 0);

        assert_eq!(get_offset(&c, "orders", "mailer").unwrap(), 0);
        assert!(save_offset(&c, "orders", "mailer", b, 20).unwrap());
        assert!(
            !save_offset(&c, "orders", "mailer", a, 21).unwrap(),
            "offsets never go back"
        );
        assert_eq!(get_offset(&c, "orders", "mailer").unwrap(), b);
        assert_eq!(get_offset(&c, "orders", "other").unwrap(), 0);
        assert_eq!(
            publish(&c, "orders", None, "{nope", 1).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            publish(&c, "", None, "1", 1).unwrap_err().code(),
            "invalid_argument"
        );
        assert!(save_offset(&c, "orders", "mailer", -1, 1).is_err());
    }

    #[test]
    fn retention_by_count_and_age() {
        let c = db();
        for i in 0..50 {
            publish(&c, "s", None, "{}", 1_000 + i).unwrap();
            publish(&c, "keep", None, "{}", 1_000 + i).unwrap();
        }
        set_retention(
            &c,
            "s",
            Retention {
                max_age: None,
                max_count: Some(10),
            },
        )
        .unwrap();
        assert_eq!(prune(&c, "s", 2_000).unwrap(), 40);
        let left = read_since(&c, "s", 0, 100).unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left[0].created_at_ms, 1_040);
        assert_eq!(
            read_since(&c, "keep", 0, 100).unwrap().len(),
            50,
            "other streams untouched"
        );

        set_retention(
            &c,
            "s",
            Retention {
                max_age: Some(Duration::from_millis(5)),
                max_count: None,
            },
        )
        .unwrap();
        // now = 1_050: keep created_at >= 1_045.
        assert_eq!(prune(&c, "s", 1_050).unwrap(), 5);
        assert_eq!(read_since(&c, "s", 0, 100).unwrap()[0].created_at_ms, 1_045);
        assert!(set_retention(
            &c,
            "s",
            Retention {
                max_age: None,
                max_count: Some(0)
            }
        )
        .is_err());
    }

    #[test]
    fn publish_prunes_automatically() {
        let c = db();
        set_retention(
            &c,
            "s",
            Retention {
                max_age: None,
                max_count: Some(5),
            },
        )
        .unwrap();
        for _ in 0..(PRUNE_EVERY * 2) {
            publish(&c, "s", None, "{}", 1).unwrap();
        }
        let n = read_since(&c, "s", 0, 10_000).unwrap().len() as i64;
        assert!(n < PRUNE_EVERY, "publish kept {n} events");
    }
}
